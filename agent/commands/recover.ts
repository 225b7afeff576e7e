// recover: the boot-time oneshot (and an operator's command). Taking the lock already brings back
// the last committed state when slots.json records an interrupted deploy; on top of that, HAProxy's
// weights are compared with the committed ones (a HAProxy that came up without its saved state
// gives both slots their config weight) and set again when they differ.
import { NoRequest } from "../../lib/agent-contract";
import { SLOTS } from "../../lib/host-layout";
import { appendAudit } from "../audit";
import { AgentContext } from "../context";
import { applyWeights, pointNginxAtLive } from "../slot-ops";
import { committedWeights, readSlotsState } from "../slots-state";
import { withDeployLock } from "../with-lock";

export async function recoverCommand(ctx: AgentContext, _req: NoRequest): Promise<void> {
    await withDeployLock(ctx, "recover", undefined, async (recovered) => {
        const { log, layout } = ctx;
        const state = readSlotsState(layout.stateFile);
        const committed = committedWeights(state);
        let weightsFixed = false;
        if (committed) {
            const stats = await ctx.runtime.stats();
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
        // Also after an upgrade that brought NGINX's backup upstream: it leads to the live slot from now on.
        if (state.live) await pointNginxAtLive(ctx, state, state.live);
        if (!recovered && !weightsFixed) log.info("nothing to recover: the host is in its last committed state");
        Object.assign(ctx.result, { ok: true, command: "recover", recovered: recovered || weightsFixed, live: state.live });
    });
}
