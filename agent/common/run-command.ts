// Runs commands (process control, proxy reload, and, through agent/processes/transient-unit.ts, the app's
// build/check/migrations) with their output streamed into the progress log, each in a process group
// of its own so a timeout kills all of it.
import { spawn } from "child_process";
import * as fs from "fs";
import { AgentError } from "./errors";
import { Logger } from "./log";

export interface RunOptions {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    /**
     * Run as this uid/gid (only when the agent runs as root). The switch happens in the forked child
     * right before exec, so no root process ever runs with `env` (no PATH, LD_PRELOAD or LD_AUDIT of
     * the app's reaches a root binary the way `runuser` got them). Supplementary groups are dropped.
     */
    asIds?: { uid: number; gid: number };
    log?: Logger;
    /** Prefix of streamed output lines. */
    prefix?: string;
    /** On expiry the whole process group is killed (SIGKILL), not only the shell. */
    timeoutMs?: number;
    /** Text fed on stdin. */
    input?: string;
    /** Keep stdout whole in the result instead of streaming it (machine-readable output). */
    captureStdout?: boolean;
    /**
     * Kill what is left of the process group once the command exits, as systemd does with a unit's
     * cgroup: a background child then neither outlives the step nor holds its output open.
     */
    killGroupOnExit?: boolean;
    /** Told the pid (= process group id) once the command started. */
    onSpawn?: (pid: number) => void;
}

export interface RunResult {
    code: number;
    /** Set when the timeout killed the command. */
    timedOut?: boolean;
    /** Last lines of combined output, for error messages. */
    tail: string;
    /** The last 200 lines of streamed output (stdout and stderr, in arrival order). */
    lines: string[];
    /** All of stdout, when captureStdout was set. */
    stdout?: string;
}

/** How long output may still arrive after the command exited (a background child may hold the pipes). */
const OUTPUT_GRACE_MS = 500;

function killGroup(pid: number | undefined): void {
    if (!pid) return;
    try {
        process.kill(-pid, "SIGKILL");
    } catch {
        // Already gone.
    }
}

/** Runs `sh -c command` in a process group of its own. */
export function runCommand(command: string, opts: RunOptions = {}): Promise<RunResult> {
    return runArgv(["/bin/sh", "-c", command], command, opts);
}

/** Runs argv (no shell) in a process group of its own; `what` names it in errors. */
export function runArgv(argv: readonly string[], what: string, opts: RunOptions = {}): Promise<RunResult> {
    const [exe, ...args] = argv;
    return new Promise((resolve, reject) => {
        const child = spawn(exe, args, {
            cwd: opts.cwd,
            env: opts.env ?? process.env,
            stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
            // A process group of its own, so a timeout reaches every process the command started.
            detached: true,
            ...(opts.asIds ? { uid: opts.asIds.uid, gid: opts.asIds.gid } : {}),
        });
        if (child.pid) opts.onSpawn?.(child.pid);
        const lines: string[] = [];
        let stdout = "";
        let partial = "";
        const emit = (line: string) => {
            lines.push(line);
            if (lines.length > 200) lines.shift();
            opts.log?.info(`${opts.prefix ?? "  | "}${line}`);
        };
        const onData = (chunk: Buffer) => {
            const text = partial + chunk.toString("utf8");
            const parts = text.split("\n");
            partial = parts.pop() ?? "";
            for (const line of parts) emit(line);
        };
        if (opts.captureStdout) child.stdout?.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
        else child.stdout?.on("data", onData);
        child.stderr?.on("data", onData);
        if (opts.input !== undefined) {
            child.stdin?.on("error", () => undefined);
            child.stdin?.end(opts.input);
        }
        let timedOut = false;
        let timer: NodeJS.Timeout | undefined;
        let grace: NodeJS.Timeout | undefined;
        let settled = false;
        if (opts.timeoutMs) {
            timer = setTimeout(() => {
                timedOut = true;
                killGroup(child.pid);
            }, opts.timeoutMs);
        }
        const finish = (code: number | null, signal: NodeJS.Signals | null) => {
            if (settled) return;
            settled = true;
            if (timer) clearTimeout(timer);
            if (grace) clearTimeout(grace);
            child.stdout?.destroy();
            child.stderr?.destroy();
            if (partial) emit(partial);
            resolve({
                code: code ?? (signal === "SIGKILL" ? 137 : 128),
                ...(timedOut ? { timedOut } : {}),
                tail: lines.slice(-10).join("\n"),
                lines,
                ...(opts.captureStdout ? { stdout } : {}),
            });
        };
        child.on("error", (e) => {
            if (settled) return;
            settled = true;
            if (timer) clearTimeout(timer);
            reject(new AgentError(`could not run "${what}": ${e.message}`));
        });
        child.on("exit", (code, signal) => {
            if (opts.killGroupOnExit || timedOut) killGroup(child.pid);
            // Output still in the pipes arrives before "close"; a leftover child holding them open
            // does not hold the caller beyond the grace period.
            grace = setTimeout(() => finish(code, signal), OUTPUT_GRACE_MS);
            child.once("close", () => finish(code, signal));
        });
    });
}

/** "exit 3", or "timed out after 5 s (killed)". */
export function describeExit(r: RunResult, timeoutMs?: number): string {
    return r.timedOut ? `timed out after ${Math.round((timeoutMs ?? 0) / 1000)} s (killed)` : `exit ${r.code}`;
}

/** Runs a command and throws naming it when it fails. */
export async function runChecked(what: string, command: string, opts: RunOptions = {}): Promise<void> {
    const r = await runCommand(command, opts);
    if (r.code !== 0) {
        const last = r.tail.trim().split("\n").slice(-3).join(" / ");
        throw new AgentError(`${what} failed (${describeExit(r, opts.timeoutMs)}): ${command}${last ? ` — ${last}` : ""}`);
    }
}

export function isRoot(): boolean {
    return typeof process.getuid === "function" && process.getuid() === 0;
}

/** uid/gid of a system user, from /etc/passwd (no getpwnam in Node). */
export function lookupUser(name: string): { uid: number; gid: number; home?: string } | undefined {
    try {
        for (const line of fs.readFileSync("/etc/passwd", "utf8").split("\n")) {
            const f = line.split(":");
            if (f[0] === name && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]), home: f[5] || undefined };
        }
    } catch {
        // fall through
    }
    return undefined;
}
