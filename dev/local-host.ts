// The end-to-end tests' handle on the local Debian 12 host (scripts/local-host.sh): its lifecycle,
// and SSH/SCP to it with the system `ssh`/`scp` and the host's generated key. Every child process is
// ours and is only ever signalled through its own handle (its PID), never by name.
import { spawn } from "child_process";
import * as fs from "fs";
import { shellQuote } from "../lib/shell-quote";
import * as path from "path";

export const REPO = path.resolve(__dirname, "..");
export const LOCAL_HOST_SCRIPT = path.join(REPO, "scripts", "local-host.sh");

export interface RunResult {
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    ms: number;
}

export interface RunOptions {
    /** Written to the child's stdin, then closed. */
    input?: string | Buffer;
    timeoutMs?: number;
    env?: NodeJS.ProcessEnv;
    /** Copy the child's output to this process's stderr as it comes (long steps, debugging). */
    echo?: boolean;
}

/** Runs a program (no shell) and collects its output; on timeout the child gets SIGTERM, then SIGKILL. */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const child = spawn(file, args, { env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        let killTimer: NodeJS.Timeout | undefined;
        const timer = opts.timeoutMs
            ? setTimeout(() => {
                  stderr += `\n[killed after ${opts.timeoutMs} ms]`;
                  child.kill("SIGTERM");
                  killTimer = setTimeout(() => child.kill("SIGKILL"), 5000);
              }, opts.timeoutMs)
            : undefined;
        child.stdout.on("data", (c: Buffer) => {
            stdout += c.toString("utf8");
            if (opts.echo) process.stderr.write(c);
        });
        child.stderr.on("data", (c: Buffer) => {
            stderr += c.toString("utf8");
            if (opts.echo) process.stderr.write(c);
        });
        child.on("error", reject);
        child.on("close", (code, signal) => {
            if (timer) clearTimeout(timer);
            if (killTimer) clearTimeout(killTimer);
            resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
        });
        // A child that exits without reading its stdin must not crash the test with EPIPE.
        child.stdin.on("error", () => undefined);
        child.stdin.end(opts.input ?? "");
    });
}

function tail(text: string, lines = 30): string {
    return text.trimEnd().split("\n").slice(-lines).join("\n");
}

export class CommandError extends Error {
    constructor(
        readonly what: string,
        readonly result: RunResult,
    ) {
        super(`${what} failed (exit ${result.code ?? result.signal}):\n${tail(result.stderr || result.stdout)}`);
        this.name = "CommandError";
    }
}

export interface LocalHostOptions {
    /** State dir (rootfs, key, known_hosts, pid file). Default: SLOTSHIFT_LOCAL_DIR or <repo>/.local/e2e-host. */
    stateDir?: string;
    /** Default: SLOTSHIFT_SSH_PORT or 2222 (what Pulumi.local.yaml says). */
    sshPort?: number;
}

export class LocalHost {
    readonly stateDir: string;
    readonly sshPort: number;
    readonly address = "127.0.0.1";
    readonly user = "root";

    constructor(opts: LocalHostOptions = {}) {
        // Its own state dir by default: the tests destroy and recreate the host, which must not
        // take a developer's `local` stack host (.local/host) with it.
        this.stateDir = path.resolve(opts.stateDir ?? process.env.SLOTSHIFT_LOCAL_DIR ?? path.join(REPO, ".local", "e2e-host"));
        this.sshPort = opts.sshPort ?? Number(process.env.SLOTSHIFT_SSH_PORT ?? 2222);
    }

    get keyPath(): string {
        return path.join(this.stateDir, "id_ed25519");
    }

    get knownHostsPath(): string {
        return path.join(this.stateDir, "known_hosts");
    }

    get rootfs(): string {
        return path.join(this.stateDir, "rootfs");
    }

    /** The private key the deploy commands log in with (the stack's sshPrivateKey). */
    privateKey(): string {
        return fs.readFileSync(this.keyPath, "utf8");
    }

    /** "ssh-ed25519 AAAA..." of the running host (the stack's sshHostKey). */
    hostKey(): string {
        const line = fs
            .readFileSync(this.knownHostsPath, "utf8")
            .split("\n")
            .find((l) => l.includes(" ssh-ed25519 "));
        if (!line) throw new Error(`no ed25519 host key in ${this.knownHostsPath}`);
        return line.split(" ").slice(1, 3).join(" ");
    }

    private scriptEnv(): NodeJS.ProcessEnv {
        return { ...process.env, SLOTSHIFT_LOCAL_DIR: this.stateDir, SLOTSHIFT_SSH_PORT: String(this.sshPort) };
    }

    private async lifecycle(command: string, timeoutMs: number): Promise<RunResult> {
        const r = await run(LOCAL_HOST_SCRIPT, [command], {
            env: this.scriptEnv(),
            timeoutMs,
            echo: process.env.SLOTSHIFT_E2E_VERBOSE === "1",
        });
        if (r.code !== 0) throw new CommandError(`local-host.sh ${command}`, r);
        return r;
    }

    /** Boots the host (building its rootfs from the cache, or the cache itself, when missing). */
    start(timeoutMs = 20 * 60_000): Promise<RunResult> {
        return this.lifecycle("start", timeoutMs);
    }

    stop(timeoutMs = 3 * 60_000): Promise<RunResult> {
        return this.lifecycle("stop", timeoutMs);
    }

    /** Stops the host and deletes its rootfs; the cached pristine image stays. */
    destroy(timeoutMs = 5 * 60_000): Promise<RunResult> {
        return this.lifecycle("destroy", timeoutMs);
    }

    /** true when the host's nspawn is running (local-host.sh status exits 0). */
    async isRunning(): Promise<boolean> {
        const r = await run(LOCAL_HOST_SCRIPT, ["status"], { env: this.scriptEnv(), timeoutMs: 30_000 });
        return r.code === 0;
    }

    /** Options shared by ssh and scp: our key, our known_hosts, never a password prompt. */
    commonOptions(): string[] {
        return [
            "-i",
            this.keyPath,
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-o",
            `UserKnownHostsFile=${this.knownHostsPath}`,
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "ConnectTimeout=10",
        ];
    }

    /** `ssh ... root@127.0.0.1 -- command`; the command is one shell command line on the host. */
    /** `sshOptions`: more ssh options, as a stack output's command line has them (e.g. rollbackCommand's). */
    ssh(command: string, opts: RunOptions = {}, sshOptions: readonly string[] = []): Promise<RunResult> {
        return run("ssh", [...this.commonOptions(), ...sshOptions, "-p", String(this.sshPort), `${this.user}@${this.address}`, "--", command], {
            timeoutMs: 10 * 60_000,
            ...opts,
        });
    }

    /** Like ssh(), but throws unless the command exits 0; returns its stdout. */
    async sshOk(command: string, opts: RunOptions = {}): Promise<string> {
        const r = await this.ssh(command, opts);
        if (r.code !== 0) throw new CommandError(`ssh: ${command.length > 80 ? command.slice(0, 77) + "..." : command}`, r);
        return r.stdout;
    }

    /** Runs a bash script on the host (sent over stdin, so nothing lands in a process list). */
    runScript(script: string, args: readonly string[] = [], opts: RunOptions = {}): Promise<RunResult> {
        const quoted = args.map(shellQuote).join(" ");
        return this.ssh(`bash -s -- ${quoted}`, { ...opts, input: script });
    }

    /** Copies local files to the host with scp. */
    async upload(localPaths: string | readonly string[], remotePath: string): Promise<void> {
        const sources = typeof localPaths === "string" ? [localPaths] : [...localPaths];
        const r = await run("scp", [...this.commonOptions(), "-q", "-P", String(this.sshPort), ...sources, `${this.user}@${this.address}:${remotePath}`], {
            timeoutMs: 5 * 60_000,
        });
        if (r.code !== 0) throw new CommandError(`scp ${sources.join(" ")} -> ${remotePath}`, r);
    }

    /** Copies a file from the host with scp. */
    async download(remotePath: string, localPath: string): Promise<void> {
        const r = await run("scp", [...this.commonOptions(), "-q", "-P", String(this.sshPort), `${this.user}@${this.address}:${remotePath}`, localPath], {
            timeoutMs: 5 * 60_000,
        });
        if (r.code !== 0) throw new CommandError(`scp ${remotePath} -> ${localPath}`, r);
    }

    /** Writes content to a file on the host atomically (temp file + rename), with a mode. */
    async writeFile(remotePath: string, content: string | Buffer, mode = "0644"): Promise<void> {
        const q = shellQuote(remotePath);
        await this.sshOk(`set -e; t=$(mktemp ${q}.XXXXXX); cat >"$t"; chmod ${mode} "$t"; mv -f "$t" ${q}`, { input: content });
    }
}

export { shellQuote } from "../lib/shell-quote";

/** Why this machine cannot run the end-to-end tests, or undefined when it can. */
export function missingPrerequisite(): string | undefined {
    if (typeof process.getuid === "function" && process.getuid() !== 0) {
        return "the end-to-end tests boot a systemd-nspawn container and must run as root";
    }
    const need: [string, string][] = [
        ["systemd-nspawn", "systemd-container"],
        ["debootstrap", "debootstrap"],
        ["ssh", "openssh-client"],
        ["scp", "openssh-client"],
    ];
    const dirs = (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin").split(":");
    const missing = need.filter(([bin]) => !dirs.some((d) => fs.existsSync(path.join(d, bin))));
    if (missing.length) return `missing ${missing.map(([b]) => b).join(", ")} (apt-get install ${[...new Set(missing.map(([, p]) => p))].join(" ")})`;
    return undefined;
}
