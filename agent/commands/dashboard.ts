// dashboard: the resident web dashboard on 127.0.0.1:<port> (the <app>-dashboard service runs it).
// It reads what `status` reads (agent/status/status-report.ts) on a timer, serves the page and the events,
// and runs the actions as the agent's own commands (agent/dashboard/actions.ts). It changes nothing
// itself and runs until SIGTERM/SIGINT.
import * as path from "path";
import { DashboardRequest } from "../../lib/contract/commands";
import { agentActionRunner } from "../dashboard/actions";
import { dashboardAssets } from "../dashboard/assets";
import { DEFAULT_SAMPLER, Sampler } from "../dashboard/sampler";
import { DashboardServer, readToken } from "../dashboard/server";
import { AgentContext } from "../context";
import { AgentError, errorMessage } from "../common/errors";

export async function dashboardCommand(ctx: AgentContext, req: DashboardRequest): Promise<void> {
    const { layout, log, settings } = ctx;
    try {
        readToken(layout.dashboardTokenFile);
    } catch (e) {
        throw new AgentError(`the dashboard needs its token file: ${errorMessage(e)} (the host setup creates it)`);
    }
    const sampler = new Sampler(ctx, DEFAULT_SAMPLER);
    const server = new DashboardServer({
        port: req.dashboardPort ?? settings.dashboard.dashboardPort,
        tokenFile: layout.dashboardTokenFile,
        auditLog: layout.auditLog,
        sampler,
        assets: dashboardAssets(),
        log,
        runAction: agentActionRunner({
            node: process.execPath,
            agentScript: path.resolve(process.argv[1]),
            layout,
            systemd: settings.processControl.kind === "systemd",
        }),
    });
    const address = await server.listen();
    sampler.start();
    log.info(`dashboard on http://${address.address}:${address.port}/ (loopback only; open it through an SSH tunnel)`);
    await new Promise<void>((resolve) => {
        const stop = (sig: string) => {
            log.info(`${sig}: dashboard stopping`);
            resolve();
        };
        process.once("SIGTERM", () => stop("SIGTERM"));
        process.once("SIGINT", () => stop("SIGINT"));
    });
    sampler.stop();
    await server.close();
}
