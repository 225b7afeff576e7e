// activate VERSION: the migration step, then the gated deploy into the idle slot (agent/deploy/deploy/deploy.ts):
// start, readiness, smoke, the weight steps with a gate each, commit, retire the old slot. Any
// failed gate puts all traffic back on the old slot and stops the new one.
import { ActivateRequest } from "../../lib/contract/commands";
import { AgentContext } from "../context";
import { deployRelease } from "../deploy/deploy";
import { resolveShiftOptions } from "../deploy/shift-options";
import { withDeployLock } from "../deploy/with-lock";

export async function activateCommand(ctx: AgentContext, req: ActivateRequest): Promise<void> {
    const opts = resolveShiftOptions(req, ctx.settings.shift.keepPreviousWarm);
    await withDeployLock(ctx, "activate", req.version, () =>
        deployRelease(ctx, { command: "activate", version: req.version, opts, migrate: { allow: req.allowContractOperations ?? [] } }),
    );
}
