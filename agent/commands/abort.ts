// abort: stops the running activate or rollback. It signals the deploy worker that holds the lock
// (SIGTERM, as a stopped service would); the worker's own failure path then moves all traffic back
// to the old release, stops the new slot and writes the audit line, exactly as a failed gate does.
// A shift that already committed is not undone here: that is what rollback is for.
import * as fs from "fs";
import { RequestFor } from "../../lib/contract/commands";
import { AgentContext, sleep } from "../context";
import { WORKER_COMMAND } from "../cli/detached-worker";
import { AgentError } from "../common/errors";
import { describeLock, lockStatus } from "../state/lock";
import { readSlotsState } from "../state/slots-file";
import { SHIFTING_COMMANDS } from "../status/status-report";

/** How long abort waits for the worker to put traffic back and let go of the lock. */
const WAIT_MS = 120_000;

function isDeployWorker(pid: number): boolean {
    try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(WORKER_COMMAND);
    } catch {
        return false;
    }
}

export async function abortCommand(ctx: AgentContext, _req: RequestFor<"abort">): Promise<void> {
    const { layout, log } = ctx;
    const lock = lockStatus(layout.lockFile);
    if (lock.state !== "held") throw new AgentError("no deploy is running: nothing to abort");
    const info = lock.info;
    if (!SHIFTING_COMMANDS.has(info.command)) throw new AgentError(`the lock is held by ${describeLock(info)}, not by a shift: nothing to abort`);
    const state = readSlotsState(layout.stateFile);
    const live = state.live ? state.slots[state.live].version : null;
    if (!state.deploying && live === info.version) {
        throw new AgentError(`${info.command} ${info.version} already committed (it is live; the old slot is draining): use rollback`);
    }
    if (!isDeployWorker(info.pid)) throw new AgentError(`pid ${info.pid} holding the lock is not a deploy worker; refusing to signal it`);

    log.info(`aborting ${describeLock(info)}: its worker moves traffic back to the old release`);
    process.kill(info.pid, "SIGTERM");
    const deadline = Date.now() + WAIT_MS;
    while (lockStatus(layout.lockFile).state === "held" && Date.now() < deadline) await sleep(200);
    if (lockStatus(layout.lockFile).state === "held") throw new AgentError(`the worker (pid ${info.pid}) still holds the lock after ${WAIT_MS / 1000}s`);
    const after = readSlotsState(layout.stateFile);
    const nowLive = after.live ? after.slots[after.live].version : null;
    log.info(`aborted: live ${nowLive ?? "(none)"}${after.live ? ` on ${after.live}` : ""}`);
    Object.assign(ctx.result, { aborted: { command: info.command, version: info.version ?? null, pid: info.pid }, live: nowLive });
}
