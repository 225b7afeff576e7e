// The one context object every template renders from. The program builds it from stack settings;
// the config and integration tests build it with test ports and a temp root.
import { CONFIG_WEIGHT, HAPROXY_BACKEND, HAPROXY_FRONTEND, SLOT_HEADER, TRAFFIC_LOG_PORT } from "./haproxy-names";
import { settingDefault } from "../lib/settings/table";
import { appSandbox, DEPLOY_SLICE_PROPERTIES, SandboxDirective } from "../lib/app-sandbox";
import { HAPROXY_STOP_SIGNAL } from "../lib/haproxy-stop";
import { DataBind, dataVolumeBinds, ebsDevicePaths, HostLayout, hostLayout, letsencryptFiles, SLOTS, slotPorts } from "../lib/host-layout";

/**
 * V8 options of the dashboard process: a small old space and young generation, and no JIT at all
 * (it does little work), keep a resident Node.js process near its floor and let its unit forbid
 * writable-executable memory (--no-expose-wasm: jitless has no WebAssembly anyway, and says so at
 * every start otherwise).
 */
export const DASHBOARD_NODE_OPTIONS = ["--max-old-space-size=24", "--max-semi-space-size=1", "--jitless", "--no-expose-wasm"];

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
    tls: { mode: string; certFile: string; keyFile: string; acmeWebroot: string; acmeEmail: string };
    ssh: { port: number; allowedCidrs: string[]; publicKey: string; user: string };
    systemService: boolean;
    postgresql: boolean;
    appEgress: "any" | "loopback";
    /** The dashboard service: its Node.js binary and V8 options (the port is ports.dashboard). */
    dashboard: { node: string; nodeOptions: string[] };
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
    const root = inputs.root ?? "";
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
            dashboard: inputs.dashboardPort ?? settingDefault("dashboardPort"),
            trafficLog: inputs.trafficLogPort ?? TRAFFIC_LOG_PORT,
        },
        tls: {
            mode: inputs.tlsMode,
            certFile: acme ? letsencryptFiles(layout, inputs.domain).certFile : layout.selfSignedCertFile,
            keyFile: acme ? letsencryptFiles(layout, inputs.domain).keyFile : layout.selfSignedKeyFile,
            acmeWebroot: inputs.osFlavour === "nixos" ? layout.nixosAcmeWebroot : layout.debianAcmeWebroot,
            acmeEmail: inputs.acmeEmail ?? "",
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
        dashboard: { node: "/usr/bin/node", nodeOptions: DASHBOARD_NODE_OPTIONS },
        runDir: `${root}/run`,
        slotSandbox: appSandbox(layout, { readWritePaths: [layout.mediaDir], egress: inputs.appEgress ?? "any" }),
        deploySliceProperties: DEPLOY_SLICE_PROPERTIES,
        haproxyStopSignal: HAPROXY_STOP_SIGNAL,
        ...(inputs.dataVolumeId ? { dataVolume: buildDataVolumeContext(layout, inputs.dataVolumeId, inputs.osFlavour ?? "debian") } : {}),
    };
}
