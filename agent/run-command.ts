// Runs shell commands (build/check hooks, process control, proxy reload) with their output streamed
// into the progress log, optionally as the app user.
import { spawn } from "child_process";
import * as fs from "fs";
import { AgentError } from "./errors";
import { Logger } from "./log";

export interface RunOptions {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    /** Run as this user (only when the agent runs as root). */
    asUser?: string;
    log?: Logger;
    /** Prefix of streamed output lines. */
    prefix?: string;
    timeoutMs?: number;
    /** Text fed on stdin. */
    input?: string;
    /** Keep stdout whole in the result instead of streaming it (machine-readable output). */
    captureStdout?: boolean;
}

export interface RunResult {
    code: number;
    /** Last lines of combined output, for error messages. */
    tail: string;
    /** The last 200 lines of streamed output (stdout and stderr, in arrival order). */
    lines: string[];
    /** All of stdout, when captureStdout was set. */
    stdout?: string;
}

function which(program: string): boolean {
    return (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":").some((dir) => {
        try {
            fs.accessSync(`${dir}/${program}`, fs.constants.X_OK);
            return true;
        } catch {
            return false;
        }
    });
}

/** argv that runs `sh -c command` as the given user: runuser (util-linux), else setpriv. */
export function commandArgv(command: string, asUser?: string): string[] {
    if (!asUser) return ["/bin/sh", "-c", command];
    if (which("runuser")) return ["runuser", "-u", asUser, "--", "/bin/sh", "-c", command];
    return ["setpriv", `--reuid=${asUser}`, `--regid=${asUser}`, "--init-groups", "--", "/bin/sh", "-c", command];
}

export function runCommand(command: string, opts: RunOptions = {}): Promise<RunResult> {
    const [exe, ...args] = commandArgv(command, opts.asUser);
    return new Promise((resolve, reject) => {
        const child = spawn(exe, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
        const lines: string[] = [];
        let stdout = "";
        let partial = "";
        const onData = (chunk: Buffer) => {
            const text = partial + chunk.toString("utf8");
            const parts = text.split("\n");
            partial = parts.pop() ?? "";
            for (const line of parts) emit(line);
        };
        const emit = (line: string) => {
            lines.push(line);
            if (lines.length > 200) lines.shift();
            opts.log?.info(`${opts.prefix ?? "  | "}${line}`);
        };
        if (opts.captureStdout) child.stdout?.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
        else child.stdout?.on("data", onData);
        child.stderr?.on("data", onData);
        if (opts.input !== undefined) child.stdin?.end(opts.input);
        let timer: NodeJS.Timeout | undefined;
        if (opts.timeoutMs) {
            timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs);
        }
        child.on("error", (e) => {
            if (timer) clearTimeout(timer);
            reject(new AgentError(`could not run "${command}": ${e.message}`));
        });
        child.on("close", (code, signal) => {
            if (timer) clearTimeout(timer);
            if (partial) emit(partial);
            resolve({ code: code ?? (signal ? 128 : 1), tail: lines.slice(-10).join("\n"), lines, ...(opts.captureStdout ? { stdout } : {}) });
        });
    });
}

/** Runs a command and throws naming it when it fails. */
export async function runChecked(what: string, command: string, opts: RunOptions = {}): Promise<void> {
    const r = await runCommand(command, opts);
    if (r.code !== 0) {
        const last = r.tail.trim().split("\n").slice(-3).join(" / ");
        throw new AgentError(`${what} failed (exit ${r.code}): ${command}${last ? ` — ${last}` : ""}`);
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
