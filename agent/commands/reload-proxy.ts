// reload-proxy: save HAProxy's runtime state (weights, drain/ready) into the server-state file, then
// run the configured check-and-reload command. The new worker loads the file, so weights survive.
// It does not take the deploy lock: a running deploy re-asserts its weights on its next poll.
import { RequestFor } from "../../lib/contract/commands";
import { SLOTS } from "../../lib/host-layout";
import { AgentContext, sleep } from "../context";
import { AgentError, errorMessage } from "../common/errors";
import { lockStatus } from "../state/lock";
import { seconds } from "../common/log";
import { runChecked } from "../common/run-command";
import { applyWeights } from "../deploy/slot-lifecycle";
import { committedWeights, readSlotsState } from "../state/slots-file";

export async function reloadProxyCommand(ctx: AgentContext, _req: RequestFor<"reload-proxy">): Promise<void> {
    const { log, haproxy, settings } = ctx;
    const t0 = Date.now();
    let before: Record<string, number> | undefined;
    let oldPid: number | undefined;
    try {
        const stats = await haproxy.stats();
        before = Object.fromEntries(SLOTS.map((s) => [s, stats[s]?.weight ?? 0]));
        oldPid = await haproxy.pid();
        await haproxy.saveState(ctx.layout.haproxyStateFile);
        log.info(`saved HAProxy runtime state (${SLOTS.map((s) => `${s}=${before?.[s]}`).join(" ")}) to ${ctx.layout.haproxyStateFile}`);
    } catch (e) {
        // HAProxy down: nothing to save; the reload (start) still has to happen.
        log.warn(`HAProxy runtime API unavailable, state not saved: ${errorMessage(e)}`);
    }
    await runChecked("proxy reload", settings.haproxy.reloadCommand, { log, timeoutMs: 120_000 });

    // Wait for the new worker to answer on the socket, then check the weights came back.
    const deadline = Date.now() + 30_000;
    for (;;) {
        try {
            const pid = await haproxy.pid();
            if (oldPid === undefined || pid !== oldPid) break;
        } catch {
            // Socket being rebound.
        }
        if (Date.now() > deadline) throw new AgentError("HAProxy did not come back on its runtime API within 30 s after the reload");
        await sleep(200);
    }
    const stats = await haproxy.stats();
    const after = Object.fromEntries(SLOTS.map((s) => [s, stats[s]?.weight ?? 0]));
    log.info(`HAProxy reloaded in ${seconds(Date.now() - t0)}; weights ${SLOTS.map((s) => `${s}=${after[s]}`).join(" ")}`);
    if (before && SLOTS.some((s) => before?.[s] !== after[s])) {
        const lock = lockStatus(ctx.layout.lockFile);
        const committed = committedWeights(readSlotsState(ctx.layout.stateFile));
        if (lock.state !== "held" && committed) {
            log.warn("weights did not survive the reload; restoring the committed ones");
            await applyWeights(ctx, committed);
        } else if (lock.state === "held") {
            log.warn("weights did not survive the reload; the running deploy sets them again");
        }
    }
    Object.assign(ctx.result, { ok: true, command: "reload-proxy", weights: after });
}
