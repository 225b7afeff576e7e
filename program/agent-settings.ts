// The program's side of agent.json: builds AgentSettings (the shape lives in lib/agent-contract.ts)
// from the stack settings, and the HAProxy names the templates and the agent share.
import { AGENT_SETTINGS_SCHEMA_VERSION, AgentSettings, DEFAULTS, LIVE_SLOT_PORT_PLACEHOLDER, ProcessControl } from "../lib/agent-contract";
import { hostLayout, slotPorts } from "../lib/host-layout";
import { renderNginxLiveSlot } from "./host-files";
import { parseMigrationCheck } from "../lib/migrations";
import { shellQuote } from "../lib/shell-quote";

export type { AgentSettings, ProcessControl } from "../lib/agent-contract";

export const HAPROXY_BACKEND = "app";
export const HAPROXY_FRONTEND = "public";
/** Header that forces a request to one slot (pre-traffic smoke tests); NGINX strips it. */
export const SLOT_HEADER = "X-Slot";
/** Weight both servers carry in haproxy.cfg; runtime weights are set relative to it (0..100 = percent). */
export const CONFIG_WEIGHT = 100;

export interface AgentSettingsInputs {
    appName: string;
    domain: string;
    healthPath: string;
    smokePaths: string[];
    slotBasePort: number;
    haproxyPort: number;
    /** Default DEFAULTS.trafficLogPort. */
    trafficLogPort?: number;
    buildCommand?: string;
    checkCommand?: string;
    migrateCommand?: string;
    /** "django", "none" or a command; default DEFAULTS.migrationCheck. */
    migrationCheck?: string;
    /** Default DEFAULTS.dbLockTimeoutSeconds. */
    dbLockTimeoutSeconds?: number;
    /** Default DEFAULTS.dbStatementTimeoutSeconds. */
    dbStatementTimeoutSeconds?: number;
    /** Default DEFAULTS.dbLockRetries. */
    dbLockRetries?: number;
    /** Default DEFAULTS.migrationRehearsal; needs startCommand. */
    migrationRehearsal?: boolean;
    /**
     * The slots' start command (the next activation's); with a migrateCommand it also enables the
     * rehearsal, which starts the live release with the live slot's own. Default "" (settings for
     * commands that never start a slot).
     */
    startCommand?: string;
    keepPreviousWarm: boolean;
    releasesToKeep: number;
    /** Prefix for every path (tests). */
    root?: string;
    processControl?: ProcessControl;
    /** Default: `haproxy -c -f <cfg> && systemctl reload haproxy`. */
    reloadCommand?: string;
    /** Default: `nginx -t -q && systemctl reload nginx` (NixOS: its reload checks by itself). */
    nginxReloadCommand?: string;
}

export function buildAgentSettings(inputs: AgentSettingsInputs): AgentSettings {
    const root = inputs.root ?? "";
    const layout = hostLayout(inputs.appName, { root });
    const slots = slotPorts(inputs.slotBasePort);
    return {
        schemaVersion: AGENT_SETTINGS_SCHEMA_VERSION,
        appName: inputs.appName,
        root,
        slots,
        haproxy: {
            backend: HAPROXY_BACKEND,
            reloadCommand: inputs.reloadCommand ?? `haproxy -c -q -f ${shellQuote(layout.haproxyConfigFile)} && systemctl reload haproxy`,
            frontend: { host: "127.0.0.1", port: inputs.haproxyPort },
            trafficLogPort: inputs.trafficLogPort ?? DEFAULTS.trafficLogPort,
        },
        health: { path: inputs.healthPath, host: inputs.domain },
        startCommand: inputs.startCommand ?? "",
        smokePaths: inputs.smokePaths,
        slotHeader: SLOT_HEADER,
        nginx: {
            liveSlotConf: renderNginxLiveSlot(inputs.appName, LIVE_SLOT_PORT_PLACEHOLDER),
            reloadCommand: inputs.nginxReloadCommand ?? "nginx -t -q && systemctl reload nginx",
        },
        processControl: inputs.processControl ?? { kind: "systemd" },
        release: {
            buildCommand: inputs.buildCommand,
            checkCommand: inputs.checkCommand,
            staticSubdir: "static",
            sharedLinks: { media: layout.mediaDir, ".env": layout.envFile },
        },
        migrations: {
            command: inputs.migrateCommand || undefined,
            check: parseMigrationCheck(inputs.migrationCheck ?? DEFAULTS.migrationCheck),
            lockTimeoutMs: Math.round((inputs.dbLockTimeoutSeconds ?? DEFAULTS.dbLockTimeoutSeconds) * 1000),
            statementTimeoutMs: Math.round((inputs.dbStatementTimeoutSeconds ?? DEFAULTS.dbStatementTimeoutSeconds) * 1000),
            lockRetries: inputs.dbLockRetries ?? DEFAULTS.dbLockRetries,
            ...(inputs.migrateCommand && inputs.startCommand && (inputs.migrationRehearsal ?? DEFAULTS.migrationRehearsal)
                ? { rehearsal: { startCommand: inputs.startCommand } }
                : {}),
        },
        keepPreviousWarm: inputs.keepPreviousWarm,
        releasesToKeep: inputs.releasesToKeep,
    };
}
