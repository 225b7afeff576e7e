// status: what each slot runs, its weight, HAProxy's view of it, requests in flight, the live
// release and the lock. Read-only: it never takes the lock (it reports a stale one).
import { NoRequest } from "../../lib/agent-contract";
import { SLOTS } from "../../lib/host-layout";
import { AgentContext } from "../context";
import { errorMessage } from "../errors";
import { readLinkOrUndefined } from "../fs-atomic";
import { SlotStats } from "../haproxy-runtime";
import { describeLock, lockStatus } from "../lock";
import { slotTarget } from "../slot-ops";
import { isPreviousWarm, readSlotsState } from "../slots-state";

export async function statusCommand(ctx: AgentContext, _req: NoRequest, json: boolean): Promise<void> {
    const { layout, settings } = ctx;
    const state = readSlotsState(layout.stateFile);
    let stats: SlotStats = {};
    let haproxyError: string | undefined;
    try {
        stats = await ctx.runtime.stats();
    } catch (e) {
        haproxyError = errorMessage(e);
    }
    const lock = lockStatus(layout.lockFile);
    const warm = isPreviousWarm(state);
    const slots = SLOTS.map((slot) => {
        const info = state.slots[slot];
        const s = stats[slot];
        const role =
            state.live === slot
                ? "live"
                : state.deploying?.slot === slot
                  ? "deploying"
                  : warm && state.previous?.slot === slot
                    ? "warm"
                    : info.running
                      ? "running"
                      : "stopped";
        return {
            slot,
            port: settings.slots[slot],
            version: info.version,
            linkedRelease: slotTarget(ctx, slot) ?? null,
            role,
            running: info.running,
            weight: s ? s.weight : null,
            status: s ? s.status : null,
            checkStatus: s ? s.checkStatus : null,
            sessions: s ? s.scur : null,
            totalSessions: s ? s.stot : null,
        };
    });
    const liveVersion = state.live ? state.slots[state.live].version : null;
    const report = {
        app: settings.appName,
        live: state.live ? { slot: state.live, version: liveVersion } : null,
        current: readLinkOrUndefined(layout.currentLink) ?? null,
        previous: state.previous ? { ...state.previous, warm } : null,
        deploying: state.deploying,
        // Recorded as in progress while nobody holds the lock: the next locking command recovers it.
        interrupted: !!state.deploying && lock.state !== "held",
        slots,
        lock: lock.state === "free" ? null : { state: lock.state, ...lock.info },
        haproxyError: haproxyError ?? null,
        updatedAt: state.updatedAt,
    };
    if (json) {
        process.stdout.write(JSON.stringify(report, null, 2) + "\n");
        return;
    }
    const out: string[] = [];
    out.push(`${settings.appName}: live ${liveVersion ? `${liveVersion} on ${state.live}` : "(none)"}; current -> ${report.current ?? "(none)"}`);
    if (state.previous) out.push(`previous: ${state.previous.version} on ${state.previous.slot} (${warm ? "warm" : "cold"})`);
    if (state.deploying)
        out.push(
            `deploying: ${state.deploying.version} on ${state.deploying.slot} (pid ${state.deploying.pid}, since ${state.deploying.startedAt})` +
                (report.interrupted ? "; INTERRUPTED: the next activate/rollback/retire/prune (or agent recover) restores the committed state" : ""),
        );
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
    if (lock.state === "held") out.push(`lock: held by ${describeLock(lock.info)}`);
    else if (lock.state === "stale")
        out.push(`lock: STALE, holder is gone (${describeLock(lock.info)}); the next activate/rollback/retire/prune (or "agent recover") recovers it`);
    else out.push("lock: free");
    process.stdout.write(out.join("\n") + "\n");
}
