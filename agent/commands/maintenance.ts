// maintenance: while the flag file exists NGINX answers every public request with the maintenance
// page (the site template tests for it per request, so it takes effect at once, without a reload).
// Under the deploy lock, so it never lands in the middle of a shift, and audited.
import * as fs from "fs";
import { MaintenanceRequest } from "../../lib/contract/commands";
import { appendAudit } from "../state/audit";
import { AgentContext } from "../context";
import { writeFileAtomic } from "../common/fs-atomic";
import { withDeployLock } from "../deploy/with-lock";

export async function maintenanceCommand(ctx: AgentContext, req: MaintenanceRequest): Promise<void> {
    await withDeployLock(ctx, "maintenance", undefined, async () => {
        const { layout, log } = ctx;
        const flag = layout.maintenanceFlag;
        const was = fs.existsSync(flag);
        // Readable by NGINX's workers, which only test that it exists.
        if (req.on) writeFileAtomic(flag, `${new Date().toISOString()}\n`, { mode: 0o644 });
        else fs.rmSync(flag, { force: true });
        const mode = req.on ? "on" : "off";
        const changed = was !== req.on;
        log.info(`maintenance ${mode}${changed ? "" : " (already)"}: ${req.on ? "every public request gets the maintenance page" : "the app serves again"}`);
        appendAudit(layout.auditLog, { command: "maintenance", result: changed ? "ok" : "noop", mode });
        Object.assign(ctx.result, { maintenance: req.on, changed });
    });
}
