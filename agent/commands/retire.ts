// retire VERSION (TrafficShift's delete): stop the release's slot unless it is live (then exit 0
// without touching it) or the warm previous release that the settings keep; then prune.
import { RetireRequest } from "../../lib/contract/commands";
import { settingDefault } from "../../lib/settings/table";
import { SLOTS } from "../../lib/host-layout";
import { appendAudit } from "../state/audit";
import { AgentContext } from "../context";
import { pruneReleases } from "../release/prune";
import { drainAndStop } from "../deploy/slot-lifecycle";
import { isPreviousWarm, readSlotsState, writeSlotsState } from "../state/slots-file";
import { withDeployLock } from "../deploy/with-lock";

export async function retireCommand(ctx: AgentContext, req: RetireRequest): Promise<void> {
    const { version } = req;
    await withDeployLock(ctx, "retire", version, async () => {
        const { layout, log } = ctx;
        const state = readSlotsState(layout.stateFile);
        let action: string;
        if (state.live && state.slots[state.live].version === version) {
            action = "kept (live)";
            log.info(`${version} is live on ${state.live}; it is not stopped`);
        } else if ((req.keepPreviousWarm ?? ctx.settings.shift.keepPreviousWarm) && isPreviousWarm(state) && state.previous?.version === version) {
            action = "kept (warm previous)";
            log.info(`${version} is the warm previous release on ${state.previous.slot}; kept running for an instant rollback`);
        } else {
            // The same bound as the shift's own drain: the command's, else the last activation's.
            const drainSeconds = req.drainTimeout ?? state.lastShift?.drainTimeout ?? settingDefault("drainTimeout");
            const slots = SLOTS.filter((s) => s !== state.live && state.slots[s].version === version && state.slots[s].running);
            for (const slot of slots) {
                log.info(`stopping ${slot} (${version})`);
                await drainAndStop(ctx, state, slot, drainSeconds * 1000);
            }
            action = slots.length ? `stopped ${slots.join(", ")}` : "not running";
            if (!slots.length) log.info(`${version} is not running in any slot`);
            writeSlotsState(layout, state);
        }
        const pruned = pruneReleases(ctx, ctx.settings.release.releasesToKeep);
        appendAudit(layout.auditLog, { command: "retire", version, result: "ok", action, pruned });
        Object.assign(ctx.result, { ok: true, command: "retire", version, action, pruned });
    });
}
