// recover: the boot-time oneshot (and an operator's command). Taking the lock already brings back
// the last committed state when slots.json records an interrupted deploy; on top of that, the
// slots slots.json records as running are started when they are not (after a boot where their
// units are not enabled, as on NixOS), and HAProxy's weights are compared with the committed ones
// (a HAProxy that came up without its saved state gives both slots their config weight) and set
// again when they differ.
import { RequestFor } from "../../lib/contract/commands";
import { Slot, SLOTS } from "../../lib/host-layout";
import { appendAudit } from "../state/audit";
import { AgentContext } from "../context";
import { applyWeights } from "../deploy/slot-lifecycle";
import { restoreCommitted } from "../deploy/live";
import { committedWeights, readSlotsState, SlotsState } from "../state/slots-file";
import { withDeployLock } from "../deploy/with-lock";

export async function recoverCommand(ctx: AgentContext, _req: RequestFor<"recover">): Promise<void> {
    await withDeployLock(ctx, "recover", undefined, async (recovered) => {
        const { log, layout } = ctx;
        const state = readSlotsState(layout.stateFile);
        const started = await startRecordedSlots(ctx, state);
        const committed = committedWeights(state);
        let weightsFixed = false;
        if (committed) {
            const stats = await ctx.haproxy.stats();
            const now = Object.fromEntries(SLOTS.map((s) => [s, stats[s]?.weight ?? null]));
            if (SLOTS.some((s) => now[s] !== committed[s])) {
                log.warn(`HAProxy's weights (${SLOTS.map((s) => `${s}=${now[s]}`).join(" ")}) are not the committed ones; setting them again`);
                await applyWeights(ctx, committed);
                appendAudit(layout.auditLog, {
                    command: "recover",
                    result: "recovered",
                    reason: `weights ${SLOTS.map((s) => `${s}=${now[s]}`).join(" ")} differed from the committed state`,
                    actions: [`weights ${SLOTS.map((s) => `${s}=${committed[s]}`).join(" ")}`],
                });
                weightsFixed = true;
            }
        }
        // `current` and NGINX's backup upstream follow the live slot (also after an upgrade that brought the backup upstream).
        await restoreCommitted(ctx, state);
        if (!recovered && !weightsFixed && started.length === 0) log.info("nothing to recover: the host is in its last committed state");
        Object.assign(ctx.result, { ok: true, command: "recover", recovered: recovered || weightsFixed || started.length > 0, live: state.live, started });
    });
}

/**
 * Starts each slot slots.json records as running (the live one, a warm previous) that is not,
 * with an audit line; returns the slots it started. A slot that fails to start fails the command,
 * so the boot unit shows as failed instead of the site silently answering 502.
 */
async function startRecordedSlots(ctx: AgentContext, state: SlotsState): Promise<Slot[]> {
    const started: Slot[] = [];
    for (const slot of SLOTS) {
        const info = state.slots[slot];
        if (!info.running) continue;
        if ((await ctx.pc.ensureRunning(slot)) !== "started") continue;
        started.push(slot);
        ctx.log.warn(`${slot} (${info.version}) is recorded as running but was not (after a boot where its unit is not enabled, as on NixOS); started it`);
        appendAudit(ctx.layout.auditLog, {
            command: "recover",
            version: info.version ?? undefined,
            result: "recovered",
            reason: `${slot} (${info.version}) recorded as running was not running`,
            actions: [`started ${slot} (${info.version})`],
        });
    }
    return started;
}
