// Recovery after a deploy died holding the lock (its worker was killed, the host rebooted): put
// traffic back on the last committed state from slots.json and stop what the dead deploy started.
import { otherSlot } from "../lib/host-layout";
import { appendAudit } from "./audit";
import { AgentContext } from "./context";
import { errorMessage } from "./errors";
import { describeLock, LockInfo } from "./lock";
import { applyWeights, stopSlot, swapCurrent } from "./slot-ops";
import { committedWeights, isPreviousWarm, readSlotsState, writeSlotsState } from "./slots-state";

export async function recoverStaleLock(ctx: AgentContext, stale: LockInfo): Promise<void> {
    const { log } = ctx;
    log.warn(`stale lock: the deploy holding it is gone (${describeLock(stale)}); restoring the last committed state`);
    const state = readSlotsState(ctx.layout.stateFile);
    const weights = committedWeights(state);
    const actions: string[] = [];
    if (weights && state.live) {
        await applyWeights(ctx, weights);
        await ctx.runtime.setState(state.live, "ready");
        await ctx.runtime.setState(otherSlot(state.live), "ready");
        actions.push(`weights ${state.live}=100 ${otherSlot(state.live)}=0`);
        log.info(`recovered: all traffic on ${state.live} (${state.slots[state.live].version}); ${otherSlot(state.live)} at weight 0`);
        const live = state.slots[state.live].version;
        if (live) swapCurrent(ctx, live);
    }
    const idle = state.live ? otherSlot(state.live) : undefined;
    // The dead deploy's own choice (recorded when it started), else the host's setting.
    const keepWarm = (state.lastShift?.keepWarm ?? ctx.settings.keepPreviousWarm) && isPreviousWarm(state) && state.deploying?.slot !== idle;
    for (const slot of idle ? [idle] : (["blue", "green"] as const)) {
        if (state.slots[slot].running && !keepWarm) {
            try {
                await stopSlot(ctx, state, slot);
                actions.push(`stopped ${slot} (${state.slots[slot].version})`);
                log.info(`recovered: stopped ${slot} (${state.slots[slot].version}), which the dead deploy had started`);
            } catch (e) {
                log.warn(`could not stop ${slot}: ${errorMessage(e)}`);
            }
        }
    }
    const abandoned = state.deploying;
    state.deploying = null;
    writeSlotsState(ctx.layout.stateFile, state);
    appendAudit(ctx.layout.auditLog, {
        command: "recover",
        version: stale.version,
        result: "recovered",
        reason: `stale lock of ${describeLock(stale)}`,
        abandoned: abandoned ? `${abandoned.version}@${abandoned.slot}` : null,
        actions,
    });
}
