// The agent command lines the host's files carry (units, the proxy step, the rollback script), built
// here only, from the contract's command names and formatXArgs, each a ready shell-quoted line: a
// change to how the agent is called changes this file, never a template.
import { DASHBOARD, DEFAULTS, formatDashboardArgs, formatRecoverArgs, formatReloadProxyArgs, RECOVER, RELOAD_PROXY, ROLLBACK } from "../lib/agent-contract";
import { HostLayout } from "../lib/host-layout";
import { shellJoin } from "../lib/shell-quote";

/** `node <agent.js> <command> --config <agent.json> [args]` (see docs/architecture.md). */
export function agentCommand(layout: HostLayout, command: string, args: readonly string[] = []): string {
    return shellJoin(["node", layout.agentPath, command, "--config", layout.agentConfigPath, ...args]);
}

/**
 * V8 options of the dashboard process: a small old space and young generation, and no JIT at all
 * (it does little work), keep a resident Node.js process near its floor and let its unit forbid
 * writable-executable memory (--no-expose-wasm: jitless has no WebAssembly anyway, and says so at
 * every start otherwise).
 */
export const DASHBOARD_NODE_OPTIONS = ["--max-old-space-size=24", "--max-semi-space-size=1", "--jitless", "--no-expose-wasm"];

/** The Node.js binary of the Debian dashboard unit (NixOS names its own, a store path). */
export const DASHBOARD_NODE = "/usr/bin/node";

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
    /**
     * NixOS: what follows the store's Node.js binary (a path only Nix knows) in the same two units.
     * The agent finds agent.json beside agent.js (the module never names it: it is written over SSH,
     * not into the store).
     */
    nixos: { recover: string; dashboard: string };
}

export function agentCommandLines(layout: HostLayout, dashboardPort: number = DEFAULTS.dashboardPort): AgentCommandLines {
    const dashboard = [...DASHBOARD_NODE_OPTIONS, layout.agentPath, DASHBOARD.name, ...formatDashboardArgs({ port: dashboardPort })];
    return {
        reloadProxy: agentCommand(layout, RELOAD_PROXY.name, formatReloadProxyArgs({})),
        rollback: agentCommand(layout, ROLLBACK.name),
        rollbackScriptFlip: agentCommand(layout, ROLLBACK.name, ["--script-flip"]),
        recover: agentCommand(layout, RECOVER.name, formatRecoverArgs({})),
        dashboard: shellJoin([DASHBOARD_NODE, ...dashboard]),
        nixos: {
            recover: shellJoin([layout.agentPath, RECOVER.name, ...formatRecoverArgs({})]),
            dashboard: shellJoin(dashboard),
        },
    };
}
