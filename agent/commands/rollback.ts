// rollback: traffic back to the previous release. Warm and passing checks -> one weight flip, in
// the foreground process itself (no detached worker: the flip is one runtime API line, and the
// time to 100 % on the previous release is what an operator waits for). Otherwise it is started
// again and passes the same gates as an activation, in a detached worker like an activation.
import { parseScriptFlip, RollbackRequest } from "../../lib/contract/commands";
import { appendAudit, slotLabel } from "../state/audit";
import { AgentContext } from "../context";
import { deployRelease } from "../deploy/deploy";
import { AgentError } from "../common/errors";
import { classifyHealth } from "../deploy/gates";
import { seconds, secondsOf } from "../common/log";
import { isPrepared } from "../release/releases";
import { resolveShiftOptions } from "../deploy/shift-options";
import { retireOldSlotSafely } from "../deploy/slot-lifecycle";
import { commitLive, previousIsWarm } from "../deploy/live";
import { readSlotsState } from "../state/slots-file";
import { withAdoptedDeployLock, withDeployLock } from "../deploy/with-lock";
import { withoutPort } from "../deploy/slot-launch";

/**
 * Whether a rollback now would be a pure weight flip (the previous release warm on its slot and
 * passing HAProxy's checks): then it runs in the foreground; otherwise in a detached worker. Read
 * without the lock; the command checks again under it.
 */
export async function rollbackIsWarmFlip(ctx: AgentContext, req: RollbackRequest): Promise<boolean> {
    // The rollback script flipped already and holds the lock for this process: never a worker.
    if (req.scriptFlip) return true;
    const state = readSlotsState(ctx.layout.stateFile);
    const prev = state.previous;
    if (!state.live || !prev || !previousIsWarm(ctx, state)) return false;
    const stats = await ctx.haproxy.stats();
    return classifyHealth(stats[prev.slot]).state === "up";
}

export async function rollbackCommand(ctx: AgentContext, req: RollbackRequest): Promise<void> {
    // deploy/rollback flipped the weights and holds the lock, taken before it exec'd this process.
    const byScript = req.scriptFlip ? parseScriptFlip(req.scriptFlip) : undefined;
    const lock = byScript ? withAdoptedDeployLock : withDeployLock;
    await lock(ctx, "rollback", undefined, async () => {
        const { layout, log } = ctx;
        const state = readSlotsState(layout.stateFile);
        const opts = resolveShiftOptions(req, ctx.settings.shift.keepPreviousWarm, state.lastShift);
        const live = state.live;
        const prev = state.previous;
        if (!live) throw new AgentError("nothing is live: there is nothing to roll back");
        if (!prev) throw new AgentError(`no previous release is recorded: ${state.slots[live].version} on ${live} stays live`);
        const liveVer = state.slots[live].version;
        const prevName = `${prev.slot} (${prev.version})`;
        const stats = await ctx.haproxy.stats();
        const health = classifyHealth(stats[prev.slot]);
        const warm = previousIsWarm(ctx, state);

        if (byScript && !(warm && health.state === "up")) {
            // Under the lock nothing changed since the script's checks; should it have, the committed
            // weights come back before anything else.
            await ctx.haproxy.setWeights({ [live]: 100, [prev.slot]: 0 });
            throw new AgentError(
                `the rollback script flipped to ${prevName}, but it is not a warm flip now (${health.detail}); all traffic is back on ${live} (${liveVer}): run the rollback again`,
            );
        }
        if (!(warm && health.state === "up")) {
            if (!isPrepared(ctx, prev.version))
                throw new AgentError(`the previous release ${prev.version} is no longer on the host (pruned); deploy it again with prepare + activate`);
            log.info(
                `previous release ${prevName} is ${warm ? `warm but not passing checks (${health.detail})` : "not running"}; starting it and passing the same gates`,
            );
            // Its own health check, start command and app environment, as it ran before.
            const activation = prev.activation ? withoutPort(prev.activation) : undefined;
            await deployRelease(ctx, { command: "rollback", version: prev.version, opts, activation });
            return;
        }

        const t0 = byScript?.startedAt ?? Date.now();
        log.info(
            byScript
                ? `rollback: the rollback script flipped all traffic to ${prevName} (warm, ${health.detail}) from ${live} (${liveVer})`
                : `rollback: ${prevName} is warm (${health.detail}); flipping all traffic to it from ${live} (${liveVer})`,
        );
        // One runtime API line: both weights change together (again after the script: it costs nothing).
        await ctx.haproxy.setWeights({ [prev.slot]: 100, [live]: 0 });
        const flipAt = byScript?.flippedAt ?? Date.now();
        await ctx.haproxy.saveState(layout.haproxyStateFile);
        log.info(`weights flipped: ${prev.slot} 100%, ${live} 0% (${flipAt - t0} ms)`);

        await commitLive(ctx, state, prev.slot, liveVer ? live : null);

        const durations: Record<string, number> = { flip: flipAt - t0 };
        await retireOldSlotSafely(ctx, state, live, opts, durations);
        durations.total = Date.now() - t0;
        appendAudit(layout.auditLog, {
            command: "rollback",
            version: prev.version,
            from: slotLabel(liveVer, live),
            to: slotLabel(prev.version, prev.slot),
            result: "ok",
            mode: "warm-flip",
            ...(byScript ? { by: "rollback script" } : {}),
            durations: secondsOf(durations),
        });
        Object.assign(ctx.result, {
            ok: true,
            command: "rollback",
            mode: "warm-flip",
            version: prev.version,
            slot: prev.slot,
            from: slotLabel(liveVer, live),
            to: slotLabel(prev.version, prev.slot),
            flipAt,
            // When this process started (the rollback script, when it flipped): how much of the time to the flip was its own.
            processStartedAt: byScript?.startedAt ?? Math.round(performance.timeOrigin),
            ...(byScript ? { flippedBy: "rollback script" } : {}),
            durations: secondsOf(durations),
        });
        log.info(`rollback to ${prev.version} done in ${seconds(durations.total)}`);
    });
}
