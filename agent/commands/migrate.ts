// migrate VERSION [--allow-contract ...] [--check-only]: the migration step of activate on its own,
// for an operator or CI: --check-only runs the migration-safety gate against the live release and
// migrates nothing. Under the deploy lock, like every state-changing command.
import { appendAudit } from "../audit";
import { boolFlag, checkFlags, ParsedArgs, stringFlag } from "../cli-args";
import { AgentContext } from "../context";
import { AgentError, errorMessage, GateError } from "../errors";
import { runMigrationStep } from "../migrate";
import { isPrepared } from "../releases";
import { checkVersion } from "../settings";
import { liveVersion, readSlotsState } from "../slots-state";
import { withDeployLock } from "../with-lock";
import { allowContractFlag } from "./activate";

export async function migrateCommand(ctx: AgentContext, args: ParsedArgs): Promise<void> {
    checkFlags(args, ["version", "allow-contract", "check-only"]);
    const version = checkVersion(stringFlag(args, "version") ?? args.positionals[0]);
    const allow = allowContractFlag(args);
    const checkOnly = boolFlag(args, "check-only");
    await withDeployLock(ctx, checkOnly ? "migrate-check" : "migrate", version, async () => {
        if (!isPrepared(ctx, version)) throw new AgentError(`release ${version} is not prepared (no ${ctx.layout.releasesDir}/${version}); run prepare first`);
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
