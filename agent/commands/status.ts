// status: what each slot runs, its weight, HAProxy's view of it, requests in flight, the live
// release, the lock and a running deploy's phase (agent/status/status-report.ts, which the dashboard
// serves too). Read-only: it never takes the lock (it reports a stale one).
import { RequestFor } from "../../lib/contract/commands";
import { AgentContext } from "../context";
import { describeLock } from "../state/lock";
import { readStatusReport } from "../status/status-report";

export async function statusCommand(ctx: AgentContext, _req: RequestFor<"status">, json: boolean): Promise<void> {
    const { settings } = ctx;
    const report = await readStatusReport(ctx, { logTailLines: 0 });
    const { slots, lock, haproxyError } = report;
    const liveVersion = report.live?.version ?? null;
    if (json) {
        process.stdout.write(JSON.stringify(report, null, 2) + "\n");
        return;
    }
    const out: string[] = [];
    out.push(`${settings.app.appName}: live ${liveVersion ? `${liveVersion} on ${report.live?.slot}` : "(none)"}; current -> ${report.current ?? "(none)"}`);
    const { previous, deploying, deploy } = report;
    if (previous) out.push(`previous: ${previous.version} on ${previous.slot} (${previous.warm ? "warm" : "cold"})`);
    if (deploying)
        out.push(
            `deploying: ${deploying.version} on ${deploying.slot} (pid ${deploying.pid}, since ${deploying.startedAt})` +
                // Recorded as in progress while nobody holds the lock: the next locking command recovers it.
                (lock?.state !== "held" ? "; INTERRUPTED: the next activate/rollback/retire/prune (or agent recover) restores the committed state" : ""),
        );
    if (deploy)
        out.push(
            `${deploy.command} ${deploy.version ?? ""}: ${deploy.phase}${deploy.step ? ` step ${deploy.step.index}/${deploy.step.count} (${deploy.step.percent}%)` : ""}`,
        );
    if (report.maintenance) out.push("maintenance: ON (every public request gets the maintenance page)");
    const rows = [["slot", "port", "version", "role", "weight", "haproxy", "check", "in-flight"]];
    for (const s of slots) {
        rows.push([
            s.slot,
            String(s.port),
            s.version ?? "-",
            s.role,
            s.weight === null ? "?" : `${s.weight}%`,
            s.status ?? "?",
            s.checkStatus ?? "?",
            s.sessions === null ? "?" : String(s.sessions),
        ]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows)
        out.push(
            r
                .map((c, i) => c.padEnd(widths[i]))
                .join("  ")
                .trimEnd(),
        );
    if (haproxyError) out.push(`HAProxy: unreachable (${haproxyError})`);
    if (lock?.state === "held") out.push(`lock: held by ${describeLock(lock)}`);
    else if (lock?.state === "stale")
        out.push(`lock: STALE, holder is gone (${describeLock(lock)}); the next activate/rollback/retire/prune (or agent recover) recovers it`);
    else out.push("lock: free");
    process.stdout.write(out.join("\n") + "\n");
}
