// The contract between the program and the host agent: a JSON file the program writes on the host
// (layout.agentConfigPath) and the agent reads on every command. Per-deploy inputs (version, plan,
// gates) travel as command-line arguments instead, so they show in `pulumi preview --diff`.
import { HostLayout, hostLayout, SlotPorts, slotPorts } from "./host-layout";
import { MigrationCheck, parseMigrationCheck } from "./migrations";

export const HAPROXY_BACKEND = "app";
export const HAPROXY_FRONTEND = "public";
/** Header that forces a request to one slot (pre-traffic smoke tests); NGINX strips it. */
export const SLOT_HEADER = "X-Slot";
/** Weight both servers carry in haproxy.cfg; runtime weights are set relative to it (0..100 = percent). */
export const CONFIG_WEIGHT = 100;

export type ProcessControl =
    /** `systemctl start|stop|is-active <unitTemplate><slot>` */
    | { kind: "systemd" }
    /** Commands with {slot} placeholders, for hosts without systemd (the integration tests). */
    | { kind: "command"; start: string; stop: string };

export interface AgentSettings {
    appName: string;
    layout: HostLayout;
    slots: SlotPorts;
    haproxy: {
        socket: string;
        stateFile: string;
        backend: string;
        /** Checks then reloads HAProxy (the agent saves runtime state first). */
        reloadCommand: string;
        /** Address the agent sends smoke requests to (HAProxy's frontend). */
        frontend: { host: string; port: number };
    };
    health: {
        path: string;
        /** Host header for health and smoke requests. */
        host: string;
    };
    smokePaths: string[];
    slotHeader: string;
    processControl: ProcessControl;
    release: {
        buildCommand?: string;
        checkCommand?: string;
        /** Directory inside a release whose files are merged into layout.staticDir. */
        staticSubdir: string;
        /** Shared directories linked into each release: name inside release -> shared path. */
        sharedLinks: Record<string, string>;
    };
    /**
     * The release's database migrations, run by activate after prepare and before the new slot
     * starts. Absent (settings written before this existed) or no command: no migration step.
     */
    migrations?: {
        command?: string;
        check: MigrationCheck;
        /** PostgreSQL lock_timeout for the migration and the check, in milliseconds. */
        lockTimeoutMs: number;
    };
    keepPreviousWarm: boolean;
    releasesToKeep: number;
}

export interface AgentSettingsInputs {
    appName: string;
    domain: string;
    healthPath: string;
    smokePaths: string[];
    slotBasePort: number;
    haproxyPort: number;
    buildCommand?: string;
    checkCommand?: string;
    migrateCommand?: string;
    /** "django" (default), "none" or a command. */
    migrationCheck?: string;
    /** Default 5. */
    dbLockTimeoutSeconds?: number;
    keepPreviousWarm: boolean;
    releasesToKeep: number;
    /** Prefix for every path (tests). */
    root?: string;
    processControl?: ProcessControl;
    /** Default: `haproxy -c -f <cfg> && systemctl reload haproxy`. */
    reloadCommand?: string;
}

export function buildAgentSettings(inputs: AgentSettingsInputs): AgentSettings {
    const layout = hostLayout(inputs.appName, { root: inputs.root });
    return {
        appName: inputs.appName,
        layout,
        slots: slotPorts(inputs.slotBasePort),
        haproxy: {
            socket: layout.haproxySocket,
            stateFile: layout.haproxyStateFile,
            backend: HAPROXY_BACKEND,
            reloadCommand: inputs.reloadCommand ?? `haproxy -c -q -f ${layout.haproxyConfigFile} && systemctl reload haproxy`,
            frontend: { host: "127.0.0.1", port: inputs.haproxyPort },
        },
        health: { path: inputs.healthPath, host: inputs.domain },
        smokePaths: inputs.smokePaths,
        slotHeader: SLOT_HEADER,
        processControl: inputs.processControl ?? { kind: "systemd" },
        release: {
            buildCommand: inputs.buildCommand,
            checkCommand: inputs.checkCommand,
            staticSubdir: "static",
            sharedLinks: { media: layout.mediaDir, ".env": layout.envFile },
        },
        migrations: {
            command: inputs.migrateCommand || undefined,
            check: parseMigrationCheck(inputs.migrationCheck),
            lockTimeoutMs: Math.round((inputs.dbLockTimeoutSeconds ?? 5) * 1000),
        },
        keepPreviousWarm: inputs.keepPreviousWarm,
        releasesToKeep: inputs.releasesToKeep,
    };
}
