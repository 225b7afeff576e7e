// Recovery of an interrupted deploy, keyed on the recorded state: slots.json says `deploying`
// (a worker was killed, the host rebooted, or a failed rollback could not save what it restored),
// or the lock was left by a holder that is gone. Every command that takes the lock runs it first,
// and so does the boot-time `recover` unit: traffic goes back on the last committed state (all on
// the live slot), the slot the dead deploy started is stopped, `current` points at the live
// release again, and only once HAProxy's saved state and slots.json both say so is `deploying`
// cleared. Runtime weights are applied first and persisted after, so a save that fails (disk
// full, read-only state dir) never leaves traffic split: the record stays and the next command
// tries again.
import { otherSlot, Slot } from "../../lib/host-layout";
import { appendAudit } from "../state/audit";
import { AgentContext, sleep } from "../context";
import { AgentError, errorMessage } from "../common/errors";
import { describeLock, LockInfo } from "../state/lock";
import { stopSlot } from "./slot-lifecycle";
import { restoreCommitted } from "./live";
import { committedWeights, isPreviousWarm, readSlotsState, SlotsState, writeSlotsState } from "../state/slots-file";

/** What needs recovering, or undefined when the host is in its committed state. */
function interruptedDeploy(state: SlotsState, stale?: LockInfo): string | undefined {
    const parts: string[] = [];
    if (state.deploying) {
        const d = state.deploying;
        parts.push(`an interrupted deploy of ${d.version} on ${d.slot} (pid ${d.pid}, started ${d.startedAt})`);
    }
    if (stale) parts.push(`a stale lock (${describeLock(stale)})`);
    return parts.length ? parts.join(" and ") : undefined;
}

/** Runtime weights of the committed state, retried while HAProxy restarts or rebinds its socket. */
async function restoreCommittedWeights(ctx: AgentContext, live: Slot, weights: Record<Slot, number>): Promise<void> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
        try {
            await ctx.haproxy.setWeights(weights);
            await ctx.haproxy.setState(live, "ready");
            await ctx.haproxy.setState(otherSlot(live), "ready");
            return;
        } catch (e) {
            lastError = e;
            ctx.log.warn(`restoring the committed weights failed (attempt ${attempt + 1}): ${errorMessage(e)}`);
            await sleep(1000);
        }
    }
    throw new AgentError(`recovery could not put traffic back on ${live}: ${errorMessage(lastError)}; nothing else was changed, the next command tries again`);
}

/**
 * Brings the host back to the last committed state when slots.json records a deploy in progress
 * or the lock was stale. Called with the deploy lock held. Returns whether anything was recovered.
 */
export async function recoverInterrupted(ctx: AgentContext, stale?: LockInfo): Promise<boolean> {
    const { log, layout } = ctx;
    const state = readSlotsState(layout.stateFile);
    const what = interruptedDeploy(state, stale);
    if (!what) return false;
    log.warn(`found ${what}; restoring the last committed state`);
    const actions: string[] = [];
    const weights = committedWeights(state);
    if (weights && state.live) {
        await restoreCommittedWeights(ctx, state.live, weights);
        actions.push(`weights ${state.live}=100 ${otherSlot(state.live)}=0`);
        log.info(`recovered: all traffic on ${state.live} (${state.slots[state.live].version}); ${otherSlot(state.live)} at weight 0`);
    }
    const live = state.live ? state.slots[state.live].version : null;
    await restoreCommitted(ctx, state);

    const idle = state.live ? otherSlot(state.live) : undefined;
    const deployingSlot = state.deploying?.slot;
    // The dead deploy's own choice (recorded when it started), else the host's setting; a slot the
    // dead deploy touched is never kept: what runs there is not what slots.json says.
    const keepWarm = (state.lastShift?.keepPreviousWarm ?? ctx.settings.shift.keepPreviousWarm) && isPreviousWarm(state) && deployingSlot !== idle;
    for (const slot of idle ? [idle] : (["blue", "green"] as const)) {
        const info = state.slots[slot];
        if ((info.running || slot === deployingSlot) && !keepWarm) {
            if (!weights) await ctx.haproxy.setWeights({ [slot]: 0 }).catch((e) => log.warn(`weight 0 for ${slot}: ${errorMessage(e)}`));
            // stopSlot records it in slots.json; under a full disk that write fails and the record
            // (still `deploying`) makes the next command stop it again.
            try {
                await stopSlot(ctx, state, slot);
            } catch (e) {
                log.warn(`recording the stop of ${slot}: ${errorMessage(e)}`);
            }
            actions.push(`stopped ${slot} (${info.version})`);
            log.info(`recovered: stopped ${slot} (${info.version}), which the interrupted deploy had started`);
        }
    }

    // Persist, HAProxy's saved state first: it is what a HAProxy restart or a reboot loads.
    try {
        await ctx.haproxy.saveState(layout.haproxyStateFile);
    } catch (e) {
        throw new AgentError(
            `recovery restored the traffic (all on ${state.live ?? "no slot"}) but could not save HAProxy's state: ${errorMessage(e)}; ` +
                "slots.json still records the interrupted deploy, so the next command (or a reboot) tries again",
        );
    }
    const abandoned = state.deploying;
    state.deploying = null;
    try {
        writeSlotsState(layout, state);
    } catch (e) {
        throw new AgentError(
            `recovery restored the traffic but could not write ${layout.stateFile}: ${errorMessage(e)}; the next command (or a reboot) tries again`,
        );
    }
    appendAudit(layout.auditLog, {
        command: "recover",
        version: abandoned?.version ?? stale?.version,
        result: "recovered",
        reason: what,
        abandoned: abandoned ? `${abandoned.version}@${abandoned.slot}` : null,
        live: live && state.live ? `${live}@${state.live}` : null,
        actions,
    });
    log.info(`recovered: the host is back on its last committed state (${live && state.live ? `${live} on ${state.live}` : "nothing live"})`);
    return true;
}
