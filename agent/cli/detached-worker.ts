// Deploys that move traffic run in a detached worker: where systemd runs the slots, a transient
// system unit (systemd-run: its own cgroup, so neither the end of the SSH session nor logind's
// KillUserProcesses touches it, and `systemctl status` / `journalctl -u` show it); elsewhere its
// own session (setsid). Its output goes to a log file under deployDir. The foreground process only
// streams that log and exits with the worker's result, so a dropped SSH connection (SIGHUP, EPIPE,
// SIGKILL of the foreground) never leaves traffic split: the worker finishes or rolls back on its
// own, holding the deploy lock meanwhile, and `attach` follows it again from another connection.
import { formatAgentMessage, WorkerAnnouncement } from "../../lib/contract/messages";
import { execFile, spawn } from "child_process";
import * as fs from "fs";
import { HostLayout, workerFilesByName, workerLogFiles, workerNameOfLog } from "../../lib/host-layout";
import { AgentError } from "../common/errors";
import { readJsonFile } from "../common/fs-atomic";
import { isProcessAlive, processStartTime } from "../state/lock";
import { Logger, logLine } from "../common/log";

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
    /** The transient systemd unit it runs in, where systemd started it. */
    unit?: string;
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
    opts: { transientUnit: boolean } = { transientUnit: false },
): Promise<DetachedRun> {
    const dir = layout.logsDir;
    fs.mkdirSync(dir, { recursive: true, mode: 0o750 });
    pruneLogs(layout);
    const stamp = new Date().toISOString().replace(/[:.]/g, "").replace("T", "-").slice(0, 17);
    const { name, logFile, resultFile, workerFile } = workerLogFiles(layout, stamp, label, process.pid);
    const workerArgv = [process.argv[1], WORKER_COMMAND, "--result-file", resultFile, ...argv];
    if (opts.transientUnit && systemdRuns()) {
        const unit = transientUnitName(layout.appName, name);
        const started = await startTransientUnit(unit, `${layout.appName} deploy worker (${label})`, layout.deployDir, logFile, [
            process.execPath,
            ...workerArgv,
        ]);
        if (started.ok) {
            const pid = started.pid;
            if (pid)
                fs.writeFileSync(workerFile, JSON.stringify({ pid, procStart: processStartTime(pid), unit } satisfies WorkerIdentity) + "\n", { mode: 0o640 });
            announce(out, {
                type: "worker",
                worker: name,
                pid: pid ?? 0,
                log: logFile,
                unit: `${unit}.service`,
                text: logLine(
                    `deploy worker pid ${pid} (log ${logFile}); it completes or rolls back even if this session drops (systemd unit ${unit}.service: systemctl status ${unit}, journalctl -u ${unit})`,
                ),
            });
            const gone = pid ? untilGone(pid, processStartTime(pid)) : Promise.resolve(-1);
            await followLog(logFile, 0, out, err, gone);
            return { logFile, resultFile, exitCode: exitCodeOf(resultFile) };
        }
        log.warn(`could not start the deploy worker as systemd unit ${unit}: ${started.error}; starting it as a detached process`);
    }
    const fd = fs.openSync(logFile, "a", 0o640);
    const child = spawn(process.execPath, workerArgv, {
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
    announce(out, {
        type: "worker",
        worker: name,
        pid: child.pid ?? 0,
        log: logFile,
        text: logLine(`deploy worker pid ${child.pid} (log ${logFile}); it completes or rolls back even if this session drops`),
    });

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
 * The first line of a detached command (the only one before the worker's log): the worker, for a
 * program that must follow it again after a dropped session, with the same for a person.
 */
function announce(out: NodeJS.WritableStream, message: WorkerAnnouncement): void {
    out.write(formatAgentMessage(message) + "\n");
}

/** systemd is PID 1 (sd_booted's test) and systemd-run is there. */
function systemdRuns(): boolean {
    return (
        fs.existsSync("/run/systemd/system") &&
        ["/usr/bin/systemd-run", "/run/current-system/sw/bin/systemd-run", "/bin/systemd-run"].some((p) => fs.existsSync(p))
    );
}

/** <app>-deploy-<worker>, with anything a unit name cannot hold replaced. */
function transientUnitName(appName: string, worker: string): string {
    return `${appName}-deploy-${worker}`.replace(/[^A-Za-z0-9:_.-]/g, "_").slice(0, 240);
}

/**
 * The worker as a transient system service: its own cgroup, so it outlives the SSH session (and
 * logind's KillUserProcesses), shows in `systemctl status` and the journal, and is cleaned up
 * (--collect) once it exited. Its output is appended to the log file, which the foreground follows.
 */
function startTransientUnit(
    unit: string,
    description: string,
    cwd: string,
    logFile: string,
    command: string[],
): Promise<{ ok: true; pid: number | undefined } | { ok: false; error: string }> {
    const args = [
        `--unit=${unit}`,
        `--description=${description}`,
        "--collect",
        "--quiet",
        `--working-directory=${cwd}`,
        `--property=StandardOutput=append:${logFile}`,
        `--property=StandardError=append:${logFile}`,
        // The worker never stops half way on its own unit's stop timeout: it rolls back on SIGTERM.
        "--property=TimeoutStopSec=15min",
        // The same PATH as the foreground (root's, from the session that started the deploy).
        `--setenv=PATH=${process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin"}`,
        ...(process.env.SLOTSHIFT_DEBUG ? [`--setenv=SLOTSHIFT_DEBUG=${process.env.SLOTSHIFT_DEBUG}`] : []),
        "--",
        ...command,
    ];
    return new Promise((resolve) => {
        execFile("systemd-run", args, { timeout: 60_000 }, (e, _stdout, stderr) => {
            if (e) return resolve({ ok: false, error: (stderr || e.message).trim() });
            execFile("systemctl", ["show", "--property=MainPID", "--value", `${unit}.service`], { timeout: 30_000 }, (e2, stdout) => {
                const pid = Number(String(stdout).trim());
                resolve({ ok: true, pid: !e2 && pid > 0 ? pid : undefined });
            });
        });
    });
}

function untilGone(pid: number, procStart: string | undefined): Promise<number> {
    return new Promise((resolve) => {
        const timer = setInterval(() => {
            if (isProcessAlive(pid, procStart)) return;
            clearInterval(timer);
            resolve(-1);
        }, 200);
    });
}

/** The exit code a worker recorded in its result file (1 without one). */
function exitCodeOf(resultFile: string): number {
    const result = readJsonFile<{ ok?: boolean; exitCode?: number }>(resultFile);
    return !result ? 1 : typeof result.exitCode === "number" ? result.exitCode : result.ok === false ? 1 : 0;
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
    const gone = identity ? untilGone(identity.pid, identity.procStart) : Promise.resolve(-1);
    await followLog(logFile, skipLines, out, err, gone);
    return { logFile, resultFile, exitCode: exitCodeOf(resultFile) };
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

function pruneLogs(layout: HostLayout): void {
    try {
        // In the order of their log files' names (which start with the time the worker started).
        const workers = fs
            .readdirSync(layout.logsDir)
            .sort()
            .flatMap((n) => workerNameOfLog(n) ?? []);
        for (const name of workers.slice(0, Math.max(0, workers.length - KEEP_LOGS))) {
            const files = workerFilesByName(layout, name);
            for (const file of [files.logFile, files.resultFile, files.workerFile]) fs.rmSync(file, { force: true });
        }
    } catch {
        // Old logs are a convenience; never fail a deploy over them.
    }
}
