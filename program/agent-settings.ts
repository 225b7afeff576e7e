// The program's side of agent.json (its shape is lib/contract/agent-json.ts): the settings table's
// rows bound for agent.json, in their groups and under their own keys, plus how this host runs
// HAProxy, NGINX and the slots.
import { AGENT_JSON_GROUPS, AGENT_SETTINGS_SCHEMA_VERSION, AgentSettings, LIVE_SLOT_PORT_PLACEHOLDER, ProcessControl } from "../lib/contract/agent-json";
import { hostLayout } from "../lib/host-layout";
import { SettingRow, Settings, SETTINGS, withDefaults } from "../lib/settings/table";
import { shellQuote } from "../lib/shell-quote";
import { renderNginxLiveSlot } from "./host-files";
import { HAPROXY_BACKEND, SLOT_HEADER, TRAFFIC_LOG_PORT } from "./haproxy-names";

export type { AgentSettings } from "../lib/contract/agent-json";

/** How this host runs what agent.json describes: a real host's defaults, or a test's stand-ins. */
export interface AgentHostOptions {
    /** Prefix for every path (tests). */
    root?: string;
    processControl?: ProcessControl;
    /** Default: `haproxy -c -f <cfg> && systemctl reload haproxy`. */
    reloadCommand?: string;
    /** Default: `nginx -t -q && systemctl reload nginx`; NixOS's reload checks by itself. */
    nginxReloadCommand?: string;
    /** Default TRAFFIC_LOG_PORT. */
    trafficLogPort?: number;
    osFlavour?: "debian" | "nixos";
}

/** The groups of agent.json: each group's rows bound for it, by key. */
function agentGroups(s: Settings): Pick<AgentSettings, (typeof AGENT_JSON_GROUPS)[number]> {
    const groups: Record<string, Record<string, unknown>> = {};
    for (const group of AGENT_JSON_GROUPS) groups[group] = {};
    for (const row of SETTINGS as readonly SettingRow[]) {
        if (!row.to.includes("agent.json")) continue;
        const value = s[row.key as keyof Settings];
        if (value !== undefined) groups[row.group][row.key] = value;
    }
    return groups as unknown as Pick<AgentSettings, (typeof AGENT_JSON_GROUPS)[number]>;
}

export function buildAgentSettings(settings: Partial<Settings> & Pick<Settings, "appName" | "domain">, host: AgentHostOptions = {}): AgentSettings {
    const s = withDefaults(settings);
    const root = host.root ?? "";
    const layout = hostLayout(s.appName, { root });
    const groups = agentGroups(s);
    return {
        schemaVersion: AGENT_SETTINGS_SCHEMA_VERSION,
        root,
        ...groups,
        release: { ...groups.release, staticSubdir: "static", sharedLinks: { media: layout.mediaDir, ".env": layout.envFile } },
        haproxy: {
            backend: HAPROXY_BACKEND,
            reloadCommand: host.reloadCommand ?? `haproxy -c -q -f ${shellQuote(layout.haproxyConfigFile)} && systemctl reload haproxy`,
            trafficLogPort: host.trafficLogPort ?? TRAFFIC_LOG_PORT,
            slotHeader: SLOT_HEADER,
        },
        nginx: {
            liveSlotConf: renderNginxLiveSlot(s.appName, LIVE_SLOT_PORT_PLACEHOLDER),
            // NixOS's reload checks the configuration itself, and its `nginx -t` lacks the -c.
            reloadCommand: host.nginxReloadCommand ?? (host.osFlavour === "nixos" ? "systemctl reload nginx" : "nginx -t -q && systemctl reload nginx"),
        },
        processControl: host.processControl ?? { kind: "systemd" },
    };
}
