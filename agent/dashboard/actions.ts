// The dashboard's buttons run the agent's own command line (rollback, abort, maintenance --on/--off),
// so they take the same code paths as an operator's `agent.js <command>` over SSH: the lock, the
// recovery of a dead deploy, the detached worker, the audit line. On a systemd host each runs as a
// transient unit of its own (systemd-run), outside the dashboard's sandbox and cgroup: restarting
// the dashboard never kills a shift it started.
import { spawn } from "child_process";
import { agentInvocation } from "../../lib/contract/commands";
import { HostLayout } from "../../lib/host-layout";

export type ActionName = "rollback" | "abort" | "maintenance-on" | "maintenance-off";

export const ACTIONS: readonly ActionName[] = ["rollback", "abort", "maintenance-on", "maintenance-off"];

/** The agent command line of each action, formatted by the contract. */
function actionArgv(action: ActionName, o: Pick<RunnerOptions, "node" | "agentScript" | "layout">): string[] {
    const as = { node: o.node, agentPath: o.agentScript, json: true };
    switch (action) {
        case "rollback":
            return agentInvocation(o.layout, "rollback", {}, as);
        case "abort":
            return agentInvocation(o.layout, "abort", {}, as);
        case "maintenance-on":
            return agentInvocation(o.layout, "maintenance", { on: true }, as);
        case "maintenance-off":
            return agentInvocation(o.layout, "maintenance", { off: true }, as);
    }
}

export interface ActionOutcome {
    exitCode: number;
    /** The command's --json result object, when it printed one. */
    result: Record<string, unknown> | null;
    /** Its progress lines (stderr with --json). */
    output: string;
}

export type ActionRunner = (action: ActionName) => Promise<ActionOutcome>;

export interface RunnerOptions {
    node: string;
    agentScript: string;
    layout: HostLayout;
    /** Through systemd-run (a systemd host), or as a plain child process (tests, hosts without systemd). */
    systemd: boolean;
}

export function agentActionRunner(o: RunnerOptions): ActionRunner {
    return (action) => {
        const agent = actionArgv(action, o);
        const argv = o.systemd
            ? [
                  "systemd-run",
                  "--quiet",
                  "--collect",
                  "--wait",
                  "--pipe",
                  `--unit=${o.layout.dashboardUnit}-${action}-${Date.now()}`,
                  // The foreground waits for its detached worker; should it be stopped, the worker goes on.
                  "--property=KillMode=process",
                  "--",
                  ...agent,
              ]
            : agent;
        return new Promise((resolve) => {
            const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], cwd: "/" });
            const out: Buffer[] = [];
            const err: Buffer[] = [];
            child.stdout.on("data", (c: Buffer) => out.push(c));
            child.stderr.on("data", (c: Buffer) => err.push(c));
            child.on("error", (e) => resolve({ exitCode: 127, result: null, output: `cannot run ${argv[0]}: ${e.message}` }));
            child.on("close", (code) => {
                const stdout = Buffer.concat(out).toString("utf8");
                let result: Record<string, unknown> | null = null;
                const last = stdout.trim().split("\n").pop();
                try {
                    result = last ? (JSON.parse(last) as Record<string, unknown>) : null;
                } catch {
                    result = null;
                }
                resolve({ exitCode: code ?? 1, result, output: Buffer.concat(err).toString("utf8").slice(-8000) });
            });
        });
    };
}
