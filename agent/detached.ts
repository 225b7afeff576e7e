// Deploys that move traffic run in a detached worker: its own session (setsid), stdio to a log file
// under deployDir. The foreground process only streams that log and exits with the worker's
// result, so a dropped SSH connection (SIGHUP, EPIPE, SIGKILL of the foreground) never leaves
// traffic split: the worker finishes or rolls back on its own, holding the deploy lock meanwhile.
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { HostLayout, workerFilesByName, workerLogFiles } from "../lib/host-layout";
import { AgentError } from "./errors";
import { readJsonFile } from "./fs-atomic";
import { isProcessAlive, processStartTime } from "./lock";
import { Logger } from "./log";

/** First argv word of the worker invocation (not a user command). */
export const WORKER_COMMAND = "__worker";
const KEEP_LOGS = 50;

export interface DetachedRun {
    logFile: string;
    resultFile: string;
    exitCode: number;
}

/** Who a worker is, written beside its log when it starts: `attach` follows it by this. */
interface WorkerIdentity {
    pid: number;
    procStart?: string;
}

/**
 * Starts `agent __worker --result-file F <argv>` detached and streams its log to `out` until it
 * exits. Returns its exit code. The first line it prints names the worker (its log file), which
 * is what a client whose connection dropped passes to `attach --worker`.
 */
export async function runDetached(
    layout: HostLayout,
    label: string,
    argv: string[],
    out: NodeJS.WritableStream,
    err: NodeJS.WritableStream,
    log: Logger,
): Promise<DetachedRun> {
    const dir = layout.logsDir;
    fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
    pruneLogs(dir);
    const stamp = new Date().toISOString().replace(/[:.]/g, "").replace("T", "-").slice(0, 17);
    const { logFile, resultFile, workerFile } = workerLogFiles(layout, stamp, label, process.pid);
    const fd = fs.openSync(logFile, "a", 0o640);
    const script = process.argv[1];
    const child = spawn(process.execPath, [script, WORKER_COMMAND, "--result-file", resultFile, ...argv], {
        detached: true,
        stdio: ["ignore", fd, fd],
        cwd: layout.deployDir,
        env: process.env,
    });
    fs.closeSync(fd);
    if (child.pid) {
        const identity: WorkerIdentity = { pid: child.pid, procStart: processStartTime(child.pid) };
        fs.writeFileSync(workerFile, JSON.stringify(identity) + "\n", { mode: 0o640 });
    }
    log.info(`deploy worker pid ${child.pid} (log ${logFile}); it completes or rolls back even if this session drops`);

    const exited = new Promise<number>((resolve) => {
        child.on("error", (e) => {
            log.warn(`could not start the deploy worker: ${e.message}`);
            resolve(1);
        });
        child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 + (signal === "SIGKILL" ? 9 : 15) : 1)));
    });
    const exitCode = await followLog(logFile, 0, out, err, exited);
    return { logFile, resultFile, exitCode };
}

/**
 * Follows a worker that an earlier connection started: streams its log from line `skipLines`
 * until it exits, then returns like runDetached (the exit code from its result file).
 */
export async function attachWorker(
    layout: HostLayout,
    name: string,
    skipLines: number,
    out: NodeJS.WritableStream,
    err: NodeJS.WritableStream,
): Promise<DetachedRun> {
    const { logFile, resultFile, workerFile } = workerFilesByName(layout, name);
    if (!fs.existsSync(logFile)) throw new AgentError(`no deploy worker ${name} (no ${logFile})`);
    const identity = readJsonFile<WorkerIdentity>(workerFile);
    const gone = new Promise<number>((resolve) => {
        const timer = setInterval(() => {
            if (identity && isProcessAlive(identity.pid, identity.procStart)) return;
            clearInterval(timer);
            resolve(-1);
        }, 200);
    });
    await followLog(logFile, skipLines, out, err, gone);
    const result = readJsonFile<{ ok?: boolean; exitCode?: number }>(resultFile);
    const exitCode = !result ? 1 : typeof result.exitCode === "number" ? result.exitCode : result.ok === false ? 1 : 0;
    return { logFile, resultFile, exitCode };
}

/** Echoes the log's lines (after the first `skipLines`) to out/err until `done` resolves, then the rest. */
async function followLog(logFile: string, skipLines: number, out: NodeJS.WritableStream, err: NodeJS.WritableStream, done: Promise<number>): Promise<number> {
    // Once the session is gone (EPIPE), stop echoing; the worker is unaffected either way.
    let broken = false;
    out.on("error", () => {
        broken = true;
    });
    err.on("error", () => {
        broken = true;
    });
    let skip = skipLines;
    const echo = (line: string) => {
        if (skip > 0) {
            skip--;
            return;
        }
        if (broken) return;
        try {
            // The worker's final "error: ..." line goes where a foreground command's would.
            (line.startsWith("error: ") ? err : out).write(line + "\n");
        } catch {
            broken = true;
        }
    };
    let offset = 0;
    let partial = "";
    const pump = () => {
        let size: number;
        try {
            size = fs.statSync(logFile).size;
        } catch {
            return;
        }
        if (size <= offset) return;
        const buf = Buffer.alloc(size - offset);
        const rfd = fs.openSync(logFile, "r");
        try {
            fs.readSync(rfd, buf, 0, buf.length, offset);
        } finally {
            fs.closeSync(rfd);
        }
        offset = size;
        const text = partial + buf.toString("utf8");
        const lines = text.split("\n");
        partial = lines.pop() ?? "";
        for (const line of lines) echo(line);
    };
    const timer = setInterval(pump, 100);
    const code = await done;
    clearInterval(timer);
    pump();
    if (partial) echo(partial);
    return code;
}

function pruneLogs(dir: string): void {
    try {
        const logs = fs
            .readdirSync(dir)
            .filter((n) => n.endsWith(".log"))
            .sort();
        for (const name of logs.slice(0, Math.max(0, logs.length - KEEP_LOGS))) {
            fs.rmSync(path.join(dir, name), { force: true });
            fs.rmSync(path.join(dir, name.replace(/\.log$/, ".result.json")), { force: true });
            fs.rmSync(path.join(dir, name.replace(/\.log$/, ".worker.json")), { force: true });
        }
    } catch {
        // Old logs are a convenience; never fail a deploy over them.
    }
}
