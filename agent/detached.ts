// Deploys that move traffic run in a detached worker: its own session (setsid), stdio to a log file
// under deployDir. The foreground process only streams that log and exits with the worker's
// result, so a dropped SSH connection (SIGHUP, EPIPE, SIGKILL of the foreground) never leaves
// traffic split: the worker finishes or rolls back on its own, holding the deploy lock meanwhile.
import { spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { HostLayout } from "../lib/host-layout";
import { Logger } from "./log";

/** First argv word of the worker invocation (not a user command). */
export const WORKER_COMMAND = "__worker";
const KEEP_LOGS = 50;

export interface DetachedRun {
    logFile: string;
    resultFile: string;
    exitCode: number;
}

function logsDir(layout: HostLayout): string {
    return path.join(layout.deployDir, "logs");
}

/**
 * Starts `agent __worker --result-file F <argv>` detached and streams its log to `out` until it
 * exits. Returns its exit code.
 */
export async function runDetached(
    layout: HostLayout,
    label: string,
    argv: string[],
    out: NodeJS.WritableStream,
    err: NodeJS.WritableStream,
    log: Logger,
): Promise<DetachedRun> {
    const dir = logsDir(layout);
    fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
    pruneLogs(dir);
    const stamp = new Date().toISOString().replace(/[:.]/g, "").replace("T", "-").slice(0, 17);
    const logFile = path.join(dir, `${stamp}-${label}-${process.pid}.log`);
    const resultFile = logFile.replace(/\.log$/, ".result.json");
    const fd = fs.openSync(logFile, "a", 0o640);
    const script = process.argv[1];
    const child = spawn(process.execPath, [script, WORKER_COMMAND, "--result-file", resultFile, ...argv], {
        detached: true,
        stdio: ["ignore", fd, fd],
        cwd: layout.deployDir,
        env: process.env,
    });
    fs.closeSync(fd);
    log.info(`deploy worker pid ${child.pid} (log ${logFile}); it completes or rolls back even if this session drops`);

    // Once the session is gone (EPIPE), stop echoing; the worker is unaffected either way.
    let broken = false;
    out.on("error", () => {
        broken = true;
    });
    err.on("error", () => {
        broken = true;
    });
    const echo = (line: string) => {
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
    const exitCode = await new Promise<number>((resolve) => {
        const timer = setInterval(pump, 100);
        child.on("error", (e) => {
            clearInterval(timer);
            log.warn(`could not start the deploy worker: ${e.message}`);
            resolve(1);
        });
        child.on("exit", (code, signal) => {
            clearInterval(timer);
            resolve(code ?? (signal ? 128 + (signal === "SIGKILL" ? 9 : 15) : 1));
        });
    });
    pump();
    if (partial) echo(partial);
    return { logFile, resultFile, exitCode };
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
        }
    } catch {
        // Old logs are a convenience; never fail a deploy over them.
    }
}
