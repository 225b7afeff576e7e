// The one context object every template renders from. The program builds it from stack settings;
// the config and integration tests build it with test ports and a temp root.
import { CONFIG_WEIGHT, HAPROXY_BACKEND, HAPROXY_FRONTEND, SLOT_HEADER, TRAFFIC_LOG_PORT } from "./haproxy-names";
import { settingDefault } from "../lib/settings/table";
import { appSandbox, DEPLOY_SLICE_PROPERTIES, SandboxDirective } from "../lib/app-sandbox";
import { HAPROXY_STOP_SIGNAL } from "../lib/haproxy-stop";
import {
    DataBind,
    dataVolumeBinds,
    ebsDevicePaths,
    HostLayout,
    hostLayout,
    letsencryptFiles,
    nixosAcmeFiles,
    nixosAcmeSuccessMarker,
    slotAppEnvFile,
    slotEnvFile,
    slotLink,
    SLOTS,
    slotPorts,
    slotStartScript,
    UNIT_INSTANCE,
} from "../lib/host-layout";
import { AgentCommandLines, agentCommandLines } from "./agent-command-lines";

export interface TemplateInputs {
    appName: string;
    domain: string;
    healthPath: string;
    startCommand: string;
    tlsMode: "self-signed" | "acme";
    /** ACME account e-mail (required by the ACME client when tlsMode is acme). */
    acmeEmail?: string;
    slotBasePort: number;
    haproxyPort: number;
    /** Loopback port of the dashboard (default: the setting's). */
    dashboardPort?: number;
    httpPort: number;
    httpsPort: number;
    /** Loopback UDP port of HAProxy's per-request log (default TRAFFIC_LOG_PORT). */
    trafficLogPort?: number;
    /** SSH port the host listens on (firewall, sshd). */
    sshPort?: number;
    allowedSshCidrs?: string[];
    sshPublicKey?: string;
    sshUser?: string;
    /** Install PostgreSQL and give the app user a database of its own (peer auth, no password). */
    postgresql?: boolean;
    /** Prefix for every path (tests). */
    root?: string;
    /**
     * true on a real host: HAProxy/NGINX run as their system services (users, chroot, syslog).
     * false when a test runs them unprivileged in the foreground.
     */
    systemService?: boolean;
    /**
     * Where app slots may open IP connections: "any" (default; mail, outside APIs, DNS) or
     * "loopback" (HAProxy checks and a local database only, enforced by systemd's IP firewall).
     */
    appEgress?: "any" | "loopback";
    /** The host's OS (default debian): NixOS's ACME client answers challenges from its own webroot. */
    osFlavour?: "debian" | "nixos";
    /** The EBS volume holding the host's data (aws), by id. */
    dataVolumeId?: string;
}

export interface DataVolumeContext {
    id: string;
    /** Where the volume may show up, by its id (see ebsDevicePaths). */
    devices: string[];
    mount: string;
    /** ext4 label: at most 16 characters. */
    label: string;
    binds: DataBind[];
    /** Debian: the setup script writes fstab; NixOS declares the mounts in its module. */
    fstab: boolean;
}

export interface TemplateContext {
    app: { name: string; user: string };
    layout: HostLayout;
    domain: string;
    healthPath: string;
    startCommand: string;
    slotHeader: string;
    backend: string;
    frontend: string;
    configWeight: number;
    slots: { name: string; port: number }[];
    ports: { haproxy: number; http: number; https: number; dashboard: number; trafficLog: number };
    tls: {
        mode: string;
        certFile: string;
        keyFile: string;
        acmeWebroot: string;
        acmeEmail: string;
        /** NixOS: the acme module's certificate and key, and the file that says it issued them. */
        nixosAcme: { certFile: string; keyFile: string; successMarker: string };
    };
    ssh: { port: number; allowedCidrs: string[]; publicKey: string; user: string };
    systemService: boolean;
    postgresql: boolean;
    appEgress: "any" | "loopback";
    /** Every agent command line a unit or script runs (program/agent-command-lines.ts). */
    agentCommands: AgentCommandLines;
    /**
     * The slot files of the slot unit's instance (<app>@<slot>): the layout's slot files with
     * systemd's instance specifier (%i) for the slot.
     */
    slotUnit: { link: string; appEnvFile: string; envFile: string; startScript: string };
    /** Directory for pid files and temp paths when not a system service. */
    runDir: string;
    /** The slot unit's sandbox (lib/app-sandbox.ts): the transient build/migrate units share it. */
    slotSandbox: SandboxDirective[];
    /** The deploy slice's CPU and IO weights. */
    deploySliceProperties: readonly SandboxDirective[];
    /** KillSignal of HAProxy's unit (lib/haproxy-stop.ts). */
    haproxyStopSignal: string;
    dataVolume?: DataVolumeContext;
}

export function buildDataVolumeContext(layout: HostLayout, volumeId: string, osFlavour: "debian" | "nixos"): DataVolumeContext {
    return {
        id: volumeId,
        devices: ebsDevicePaths(volumeId),
        mount: layout.dataMount,
        label: "slotshift-data",
        binds: dataVolumeBinds(layout),
        fstab: osFlavour === "debian",
    };
}

export function buildTemplateContext(inputs: TemplateInputs): TemplateContext {
    const layout = hostLayout(inputs.appName, { root: inputs.root });
    const ports = slotPorts(inputs.slotBasePort);
    const acme = inputs.tlsMode === "acme";
    const dashboardPort = inputs.dashboardPort ?? settingDefault("dashboardPort");
    return {
        app: { name: inputs.appName, user: layout.appUser },
        layout,
        domain: inputs.domain,
        healthPath: inputs.healthPath,
        startCommand: inputs.startCommand,
        slotHeader: SLOT_HEADER,
        backend: HAPROXY_BACKEND,
        frontend: HAPROXY_FRONTEND,
        configWeight: CONFIG_WEIGHT,
        slots: SLOTS.map((name) => ({ name, port: ports[name] })),
        ports: {
            haproxy: inputs.haproxyPort,
            http: inputs.httpPort,
            https: inputs.httpsPort,
            dashboard: dashboardPort,
            trafficLog: inputs.trafficLogPort ?? TRAFFIC_LOG_PORT,
        },
        tls: {
            mode: inputs.tlsMode,
            certFile: acme ? letsencryptFiles(layout, inputs.domain).certFile : layout.selfSignedCertFile,
            keyFile: acme ? letsencryptFiles(layout, inputs.domain).keyFile : layout.selfSignedKeyFile,
            acmeWebroot: inputs.osFlavour === "nixos" ? layout.nixosAcmeWebroot : layout.debianAcmeWebroot,
            acmeEmail: inputs.acmeEmail ?? "",
            nixosAcme: { ...nixosAcmeFiles(layout, inputs.domain), successMarker: nixosAcmeSuccessMarker(layout, inputs.domain) },
        },
        ssh: {
            port: inputs.sshPort ?? settingDefault("sshPort"),
            allowedCidrs: inputs.allowedSshCidrs ?? [],
            publicKey: inputs.sshPublicKey ?? "",
            user: inputs.sshUser ?? "admin",
        },
        systemService: inputs.systemService ?? true,
        postgresql: inputs.postgresql ?? false,
        appEgress: inputs.appEgress ?? "any",
        agentCommands: agentCommandLines(layout, dashboardPort),
        slotUnit: {
            link: slotLink(layout, UNIT_INSTANCE),
            appEnvFile: slotAppEnvFile(layout, UNIT_INSTANCE),
            envFile: slotEnvFile(layout, UNIT_INSTANCE),
            startScript: slotStartScript(layout, UNIT_INSTANCE),
        },
        runDir: layout.runDir,
        slotSandbox: appSandbox(layout, { readWritePaths: [layout.mediaDir], egress: inputs.appEgress ?? "any" }),
        deploySliceProperties: DEPLOY_SLICE_PROPERTIES,
        haproxyStopSignal: HAPROXY_STOP_SIGNAL,
        ...(inputs.dataVolumeId ? { dataVolume: buildDataVolumeContext(layout, inputs.dataVolumeId, inputs.osFlavour ?? "debian") } : {}),
    };
}
