// migrate VERSION [--allow-contract-operations ...] [--check-only]: the migration step of activate on its own,
// for an operator or CI: --check-only runs the migration-safety gate against the live release and
// migrates nothing. Under the deploy lock, like every state-changing command.
import { MigrateRequest } from "../../lib/contract/commands";
import { releaseDir } from "../../lib/host-layout";
import { appendAudit } from "../state/audit";
import { AgentContext } from "../context";
import { AgentError, errorMessage, GateError } from "../common/errors";
import { runMigrationStep } from "../migrations/migration-step";
import { isPrepared } from "../release/releases";
import { liveVersion, readSlotsState } from "../state/slots-file";
import { withDeployLock } from "../deploy/with-lock";

export async function migrateCommand(ctx: AgentContext, req: MigrateRequest): Promise<void> {
    const { version } = req;
    const checkOnly = req.checkOnly ?? false;
    const allow = req.allowContractOperations ?? [];
    await withDeployLock(ctx, checkOnly ? "migrate-check" : "migrate", version, async () => {
        if (!isPrepared(ctx, version)) throw new AgentError(`release ${version} is not prepared (no ${releaseDir(ctx.layout, version)}); run prepare first`);
        const live = liveVersion(readSlotsState(ctx.layout.stateFile));
        const command = checkOnly ? "migrate-check" : "migrate";
        try {
            const outcome = await runMigrationStep(ctx, { version, liveVersion: live, allow, checkOnly });
            Object.assign(ctx.result, { version, live, ...outcome });
            if (!checkOnly)
                appendAudit(ctx.layout.auditLog, { command, version, result: outcome.ran ? "ok" : "noop", applied: outcome.applied, allowed: outcome.allowed });
        } catch (e) {
            const gate = e instanceof GateError ? e.gate : "migration";
            appendAudit(ctx.layout.auditLog, { command, version, result: "failed", gate, reason: errorMessage(e) });
            Object.assign(ctx.result, { version, live, gate });
            throw e;
        }
    });
}
