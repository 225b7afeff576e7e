// prune --keep N: delete old release dirs (and the static files only they referenced), never the
// live release, the previous one, or anything a slot still points at.
import { PruneRequest } from "../../lib/contract/commands";
import { AgentContext } from "../context";
import { pruneReleases } from "../release/prune";
import { withDeployLock } from "../deploy/with-lock";

export async function pruneCommand(ctx: AgentContext, req: PruneRequest): Promise<void> {
    const keep = req.keep ?? ctx.settings.release.releasesToKeep;
    await withDeployLock(ctx, "prune", undefined, async () => {
        pruneReleases(ctx, keep);
    });
}
