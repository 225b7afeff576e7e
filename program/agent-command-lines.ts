// The agent command lines the host's files carry (units, the proxy step, the rollback script), built
// here only, with the contract (lib/contract/commands.ts), each a ready shell-quoted line: a change
// to how the agent is called changes the contract, never a template.
import { agentInvocation, flagOf } from "../lib/contract/commands";
import { HostLayout } from "../lib/host-layout";
import { settingDefault } from "../lib/settings/table";
import { shellJoin } from "../lib/shell-quote";

/**
 * V8 options of the dashboard process: a small old space and young generation, and no JIT at all
 * (it does little work), keep a resident Node.js process near its floor and let its unit forbid
 * writable-executable memory (--no-expose-wasm: jitless has no WebAssembly anyway, and says so at
 * every start otherwise).
 */
const DASHBOARD_NODE_OPTIONS = ["--max-old-space-size=24", "--max-semi-space-size=1", "--jitless", "--no-expose-wasm"];

/** The Node.js binary of the Debian dashboard unit (NixOS names its own, a store path). */
const DASHBOARD_NODE = "/usr/bin/node";

export interface AgentCommandLines {
    /** The proxy step's, after a changed haproxy.cfg: runtime state saved, config checked, reloaded. */
    reloadProxy: string;
    /** What deploy/rollback execs; the operator's arguments follow it. */
    rollback: string;
    /** What deploy/rollback execs after its own flip: STARTED:FLIPPED, then the operator's arguments, follow it. */
    rollbackScriptFlip: string;
    /** The recover unit's ExecStart (Debian). */
    recover: string;
    /** The dashboard unit's ExecStart (Debian): its Node.js binary and V8 options first. */
    dashboard: string;
    /** NixOS: what follows the store's Node.js binary (a path only Nix knows) in the same two units. */
    nixos: { recover: string; dashboard: string };
}

export function agentCommandLines(layout: HostLayout, dashboardPort: number = settingDefault("dashboardPort")): AgentCommandLines {
    // The dashboard and the NixOS units find agent.json beside agent.js (the NixOS module never names it).
    const [, ...recover] = agentInvocation(layout, "recover", {}, { configBesideAgent: true });
    const [, ...dashboard] = agentInvocation(layout, "dashboard", { dashboardPort }, { configBesideAgent: true });
    return {
        reloadProxy: shellJoin(agentInvocation(layout, "reload-proxy", {})),
        rollback: shellJoin(agentInvocation(layout, "rollback", {})),
        rollbackScriptFlip: shellJoin([...agentInvocation(layout, "rollback", {}), flagOf("rollback", "scriptFlip")]),
        recover: shellJoin(agentInvocation(layout, "recover", {})),
        dashboard: shellJoin([DASHBOARD_NODE, ...DASHBOARD_NODE_OPTIONS, ...dashboard]),
        nixos: {
            recover: shellJoin(recover),
            dashboard: shellJoin([...DASHBOARD_NODE_OPTIONS, ...dashboard]),
        },
    };
}
