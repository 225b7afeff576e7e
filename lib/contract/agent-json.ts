// agent.json: what the program writes on the host (layout.agentConfigPath) and the agent reads on
// every command. The stack settings it carries travel as the table's groups under their own keys
// (the rows whose destination is agent.json); the rest says how this host runs HAProxy, NGINX and
// the slots. Host paths are not in it: both sides derive them from the app name and root with
// lib/host-layout.ts. Per-deploy inputs (version, plan, gates) travel on the command line instead,
// so they show in `pulumi preview --diff`. No npm dependency: the agent bundles this file.
import { SettingGroup, SettingsTable } from "../settings/table";
import { KindValue } from "../settings/kinds";
import { APP_NAME_PATTERN, APP_NAME_RULE } from "./names";
import { ArgsError } from "./flags";

/**
 * Bumped whenever AgentSettings changes shape. The agent refuses settings of another version, so a
 * program and an agent of different releases fail with a message instead of a TypeError mid-deploy.
 */
export const AGENT_SETTINGS_SCHEMA_VERSION = 4;

/** Stands for the live slot's port in AgentSettings.nginx.liveSlotConf. */
export const LIVE_SLOT_PORT_PLACEHOLDER = "{live-slot-port}";

type BoundForAgentJson<R> = R extends { to: readonly (infer D)[] } ? ("agent.json" extends D ? R : never) : never;
type AgentRow<G extends SettingGroup> = BoundForAgentJson<Extract<SettingsTable[number], { group: G }>>;
type AgentValue<R> = R extends { kind: infer K; default: unknown }
    ? KindValue<K>
    : R extends { kind: infer K; optional: true }
      ? KindValue<K> | undefined
      : R extends { kind: infer K }
        ? KindValue<K>
        : never;

/** The settings of a group that go to agent.json, under their own keys. */
type AgentGroup<G extends SettingGroup> = { [R in AgentRow<G> as R["key"]]: AgentValue<R> };

/** The groups agent.json carries: every group with a row bound for it. */
export const AGENT_JSON_GROUPS = ["app", "release", "migrations", "health", "shift", "proxy", "dashboard"] as const satisfies readonly SettingGroup[];

export type ProcessControl =
    /** `systemctl start|stop|is-active <unitTemplate><slot>` */
    | { kind: "systemd" }
    /**
     * Commands with {slot} placeholders, for hosts without systemd (the integration tests). `pids`,
     * when given, prints the slot's process ids (whitespace separated): the agent then sets their
     * nice level and I/O class as it does a unit's (there are no cgroup weights here).
     */
    | { kind: "command"; start: string; stop: string; pids?: string };

export interface AgentSettings {
    schemaVersion: number;
    /** Prefix of every host path: "" on a host, a temp dir in tests. */
    root: string;
    app: AgentGroup<"app">;
    release: AgentGroup<"release"> & {
        /** Directory inside a release whose files are merged into layout.staticDir. */
        staticSubdir: string;
        /** Shared directories linked into each release: name inside release -> shared path. */
        sharedLinks: Record<string, string>;
    };
    migrations: AgentGroup<"migrations"> & {
        /** First pause before a retry after lock_timeout, in ms; it doubles each time (default 2000; tests shorten it). */
        lockRetryBackoffMs?: number;
    };
    health: AgentGroup<"health">;
    shift: AgentGroup<"shift">;
    proxy: AgentGroup<"proxy">;
    dashboard: AgentGroup<"dashboard">;
    haproxy: {
        backend: string;
        /** Checks then reloads HAProxy (the agent saves runtime state first). */
        reloadCommand: string;
        /** Loopback UDP port HAProxy logs each request to. */
        trafficLogPort: number;
        /** Header that forces a request to one slot (smoke tests); NGINX strips it from public requests. */
        slotHeader: string;
    };
    /**
     * NGINX's backup upstream (layout.nginxLiveSlotFile), pointed at the live slot at every commit.
     * Absent in settings of a program that does not manage it: the agent then leaves NGINX alone.
     */
    nginx?: {
        /**
         * The file's content, rendered from templates/nginx-live-slot.conf.njk with the port left
         * as LIVE_SLOT_PORT_PLACEHOLDER: the agent fills in the port the live slot was started on.
         */
        liveSlotConf: string;
        /** Checks the configuration, then reloads NGINX gracefully (no connection dropped). */
        reloadCommand: string;
    };
    processControl: ProcessControl;
}

/** Checks parsed agent.json; throws an ArgsError naming what is wrong. */
export function checkAgentSettings(raw: unknown, file: string): AgentSettings {
    const s = raw as Partial<AgentSettings> | undefined;
    const version = s?.schemaVersion;
    if (version !== AGENT_SETTINGS_SCHEMA_VERSION) {
        throw new ArgsError(
            `agent settings ${file} have schema version ${version ?? "(none)"}, but this agent reads version ${AGENT_SETTINGS_SCHEMA_VERSION}: ` +
                "the program and the agent come from different releases of slotshift; run `pulumi up` so the host setup installs both again",
        );
    }
    const missing = (
        [
            ["root", s?.root],
            ...AGENT_JSON_GROUPS.map((g) => [g, s?.[g]]),
            ["app.appName", s?.app?.appName],
            ["app.slotBasePort", s?.app?.slotBasePort],
            ["health.healthPath", s?.health?.healthPath],
            ["proxy.haproxyPort", s?.proxy?.haproxyPort],
            ["haproxy.backend", s?.haproxy?.backend],
            ["haproxy.reloadCommand", s?.haproxy?.reloadCommand],
            ["processControl.kind", s?.processControl?.kind],
            ["migrations.migrationCheck", s?.migrations?.migrationCheck],
            ["shift.keepPreviousWarm", s?.shift?.keepPreviousWarm],
            ["release.releasesToKeep", s?.release?.releasesToKeep],
        ] as [string, unknown][]
    ).filter(([, v]) => v === undefined || v === null);
    if (missing.length) throw new ArgsError(`agent settings ${file} lack ${missing.map(([k]) => k).join(", ")}`);
    const appName = s?.app?.appName;
    if (typeof appName !== "string" || !APP_NAME_PATTERN.test(appName)) throw new ArgsError(`agent settings ${file}: app.appName must ${APP_NAME_RULE}`);
    return s as AgentSettings;
}
