// The real Pulumi engine driving this repository's program: the CLI from
// scripts/pulumi-toolchain.sh, a file backend, a passphrase for secrets, and a stack config file
// kept outside the repository (`--config-file`), so nothing encrypted ever lands in the tracked
// Pulumi.<stack>.yaml files. Used by `npm run local` (scripts/run-local.ts) and by the engine
// end-to-end test (test/e2e/03-engine.test.ts).
//
// One EngineStack is one stack in one working directory:
//   <dir>/state/                the file backend (PULUMI_BACKEND_URL=file://...)
//   <dir>/home/                 PULUMI_HOME (plugins, workspace settings), apart from ~/.pulumi
//   <dir>/Pulumi.<stack>.yaml   the stack's config: the tracked stack file's values, the
//                               passphrase salt and the encrypted secrets
//   <dir>/project/              a Pulumi.yaml with the project's name only: the `pulumi stack`
//                               commands run there, because `stack init` writes and `stack rm`
//                               deletes the Pulumi.<stack>.yaml beside the Pulumi.yaml they find,
//                               which must never be the tracked one
import { spawn } from "child_process";
import { EnginePriority } from "./low-priority";
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { REPO } from "../local-host";

const TOOLCHAIN_SCRIPT = path.join(REPO, "scripts", "pulumi-toolchain.sh");
/** Commands that read the stack's config, and so take --config-file. */
const CONFIG_COMMANDS = new Set(["up", "update", "preview", "destroy", "refresh", "config", "import", "watch"]);
/** The config namespace of every key the program reads (Pulumi.yaml's project name). */
const NAMESPACE = "slotshift";

export interface PulumiRun {
    args: string[];
    code: number | null;
    /** stdout and stderr, interleaved as they arrived. */
    out: string;
    /** Each output line with the time it arrived (ms since the command started). */
    lines: { at: number; text: string }[];
    ms: number;
}

class EngineError extends Error {
    constructor(readonly run: PulumiRun) {
        super(`pulumi ${run.args.join(" ")} exited ${run.code}:\n${tail(run.out, 60)}`);
        this.name = "EngineError";
    }
}

export function tail(text: string, lines: number): string {
    return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Runs scripts/pulumi-toolchain.sh (builds the CLI and the Node.js language host once, minutes on a
 * cold cache) and returns the directory to put in front of PATH. Its progress lines go to `onLine`.
 */
export function provideToolchain(onLine?: (line: string) => void): Promise<string> {
    return new Promise((resolve, reject) => {
        const child = spawn("bash", [TOOLCHAIN_SCRIPT], { cwd: REPO, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
        child.stderr.on(
            "data",
            lineSplitter((line) => {
                stderr += `${line}\n`;
                onLine?.(line);
            }),
        );
        child.on("error", reject);
        child.on("close", (code) => {
            const bin = stdout.trim().split("\n").pop() ?? "";
            if (code === 0 && bin && fs.existsSync(path.join(bin, "pulumi"))) resolve(bin);
            else reject(new Error(`scripts/pulumi-toolchain.sh failed (exit ${code}): ${tail(stderr, 5)}`));
        });
    });
}

/** Calls `emit` with each whole line of a byte stream. */
function lineSplitter(emit: (line: string) => void): (chunk: Buffer) => void {
    let partial = "";
    return (chunk: Buffer) => {
        partial += chunk.toString("utf8");
        let nl: number;
        while ((nl = partial.indexOf("\n")) >= 0) {
            emit(partial.slice(0, nl));
            partial = partial.slice(nl + 1);
        }
    };
}

/** A stack file (Pulumi.<stack>.yaml) as data. */
export interface StackFile {
    encryptionsalt?: string;
    config: Record<string, unknown>;
}

function readStackFile(file: string): StackFile {
    const doc = (parseYaml(fs.readFileSync(file, "utf8")) ?? {}) as Partial<StackFile>;
    return { ...doc, config: doc.config ?? {} };
}

const isSecure = (v: unknown) => typeof v === "object" && v !== null && "secure" in v;

export interface EngineStackOptions {
    stack: string;
    /** Working directory: state, PULUMI_HOME and the stack's config file (see the top of this file). */
    dir: string;
    /** The toolchain's bin directory (provideToolchain). */
    bin: string;
    /** Default: PULUMI_CONFIG_PASSPHRASE(_FILE) from the environment, else a file created in `dir`. */
    passphrase?: string;
    /** Every line of every pulumi command's output, as it arrives. */
    onLine?: (line: string) => void;
    /** Appends every command and its output to this file. */
    logFile?: string;
    /** Runs every pulumi command at this priority (low-priority.ts; `npm run local`). */
    priority?: EnginePriority;
}

export class EngineStack {
    readonly stack: string;
    readonly dir: string;
    readonly configFile: string;
    readonly env: NodeJS.ProcessEnv;
    /** See the top of this file. */
    private readonly projectStub: string;
    private readonly onLine?: (line: string) => void;
    private readonly logFile?: string;
    private readonly priority?: EnginePriority;

    constructor(opts: EngineStackOptions) {
        this.stack = opts.stack;
        this.dir = path.resolve(opts.dir);
        this.configFile = path.join(this.dir, `Pulumi.${opts.stack}.yaml`);
        this.onLine = opts.onLine;
        this.logFile = opts.logFile;
        this.priority = opts.priority;
        fs.mkdirSync(path.join(this.dir, "state"), { recursive: true, mode: 0o700 });
        fs.mkdirSync(path.join(this.dir, "home"), { recursive: true, mode: 0o700 });
        this.projectStub = path.join(this.dir, "project");
        fs.mkdirSync(this.projectStub, { recursive: true });
        const project = (parseYaml(fs.readFileSync(path.join(REPO, "Pulumi.yaml"), "utf8")) as { name: string }).name;
        fs.writeFileSync(path.join(this.projectStub, "Pulumi.yaml"), `name: ${project}\nruntime: nodejs\n`);
        const env: NodeJS.ProcessEnv = {
            ...process.env,
            PATH: `${opts.bin}:${process.env.PATH ?? "/usr/bin:/bin"}`,
            PULUMI_HOME: path.join(this.dir, "home"),
            PULUMI_BACKEND_URL: `file://${path.join(this.dir, "state")}`,
            // Nothing may be fetched: the program needs no provider plugin but the dynamic-provider shim.
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            // The program is type-checked by `npm test`; transpiling only saves seconds per command.
            PULUMI_NODEJS_TRANSPILE_ONLY: "true",
        };
        delete env.PULUMI_ACCESS_TOKEN;
        if (opts.passphrase !== undefined) {
            env.PULUMI_CONFIG_PASSPHRASE = opts.passphrase;
            delete env.PULUMI_CONFIG_PASSPHRASE_FILE;
        } else if (env.PULUMI_CONFIG_PASSPHRASE === undefined && env.PULUMI_CONFIG_PASSPHRASE_FILE === undefined) {
            env.PULUMI_CONFIG_PASSPHRASE_FILE = ensurePassphraseFile(path.join(this.dir, "passphrase"));
        }
        this.env = env;
    }

    /**
     * Runs `pulumi ARGS`. `stack`: "config" (default) runs in the repository with --stack and
     * --config-file (up, preview, destroy, config); "name" adds --stack only and "none" nothing,
     * and both run in the project stub (the `pulumi stack` commands). Resolves with the exit
     * code: callers decide what a failure means.
     */
    run(
        args: string[],
        opts: { input?: string; stack?: "config" | "name" | "none"; onLine?: (line: string) => void; onSpawn?: (pid: number) => void } = {},
    ): Promise<PulumiRun> {
        const mode = opts.stack ?? "config";
        const full =
            mode === "none" ? args : mode === "name" ? [...args, "--stack", this.stack] : [...args, "--stack", this.stack, "--config-file", this.configFile];
        const onLine = opts.onLine ?? this.onLine;
        return new Promise((resolve, reject) => {
            const started = Date.now();
            const prefix = this.priority?.prefix ?? [];
            const argv = [...prefix, "pulumi", ...full];
            const ownSession = this.priority?.ownSession ?? false;
            const child = spawn(argv[0], argv.slice(1), {
                cwd: mode === "config" ? REPO : this.projectStub,
                env: this.env,
                stdio: ["pipe", "pipe", "pipe"],
                detached: ownSession,
            });
            if (child.pid) this.priority?.started(child.pid);
            if (child.pid) opts.onSpawn?.(child.pid);
            // In a session of its own it no longer gets the terminal's Ctrl-C: pass it on (pulumi then
            // cancels the update cleanly) instead of leaving it running behind us.
            const forward = (sig: NodeJS.Signals) => child.kill(sig);
            if (ownSession) for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, forward);
            let out = "";
            const lines: PulumiRun["lines"] = [];
            const collect = lineSplitter((text) => {
                lines.push({ at: Date.now() - started, text });
                onLine?.(text);
            });
            const onData = (c: Buffer) => {
                out += c.toString("utf8");
                collect(c);
            };
            child.stdout.on("data", onData);
            child.stderr.on("data", onData);
            child.on("error", reject);
            child.on("close", (code) => {
                for (const sig of ["SIGINT", "SIGTERM"] as const) process.off(sig, forward);
                const r: PulumiRun = { args: full, code, out, lines, ms: Date.now() - started };
                if (this.logFile) fs.appendFileSync(this.logFile, `\n$ pulumi ${full.join(" ")}   # exit ${code}, ${(r.ms / 1000).toFixed(1)} s\n${out}`);
                resolve(r);
            });
            child.stdin.on("error", () => undefined);
            child.stdin.end(opts.input ?? "");
        });
    }

    /**
     * A pulumi command line a person typed (`npm run local -- pulumi ...`), completed with this
     * stack, and where to run it: `pulumi stack ...` in the project stub (so `stack rm` cannot
     * delete a tracked stack file), the commands that read config with --config-file.
     */
    commandLine(args: readonly string[]): { args: string[]; cwd: string } {
        if (args[0] === "stack") return { args: [...args, "--stack", this.stack], cwd: this.projectStub };
        const config = CONFIG_COMMANDS.has(args[0]) ? ["--config-file", this.configFile] : [];
        return { args: [...args, "--stack", this.stack, ...config], cwd: REPO };
    }

    /** Like run(), but throws an EngineError unless pulumi exits 0. */
    async ok(args: string[], opts: Parameters<EngineStack["run"]>[1] = {}): Promise<PulumiRun> {
        const r = await this.run(args, opts);
        if (r.code !== 0) throw new EngineError(r);
        return r;
    }

    async exists(): Promise<boolean> {
        const r = await this.ok(["stack", "ls", "--json"], { stack: "none", onLine: () => undefined });
        return (JSON.parse(r.out) as { name: string }[]).some((s) => s.name === this.stack);
    }

    /**
     * Creates the stack when it does not exist, then (re)writes its config file from `base` (the
     * tracked stack file's config), keeping the passphrase salt and every secret already set. So
     * a changed tracked file takes effect on the next run, and the secrets stay where they are.
     */
    async prepare(base: Record<string, unknown>): Promise<{ created: boolean }> {
        let salt: string | undefined;
        const previous = fs.existsSync(this.configFile) ? readStackFile(this.configFile) : undefined;
        let created = false;
        if (!(await this.exists())) {
            salt = await this.initElsewhere();
            created = true;
        } else {
            // The salt must be the one the state was encrypted with; the state has it too.
            salt = previous?.encryptionsalt ?? (await this.exportState()).deployment?.secrets_providers?.state?.salt;
        }
        const config: Record<string, unknown> = { ...base };
        if (!created && previous) {
            for (const [k, v] of Object.entries(previous.config)) if (isSecure(v)) config[k] = v;
        }
        this.writeStackFile({ ...(salt ? { encryptionsalt: salt } : {}), config });
        return { created };
    }

    /** `pulumi stack init` in the project stub, which gets the new stack file: only its salt is kept. */
    private async initElsewhere(): Promise<string | undefined> {
        const created = path.join(this.projectStub, `Pulumi.${this.stack}.yaml`);
        fs.rmSync(created, { force: true });
        await this.ok(["stack", "init", this.stack, "--secrets-provider", "passphrase", "--no-select", "--non-interactive"], { stack: "none" });
        const salt = fs.existsSync(created) ? readStackFile(created).encryptionsalt : undefined;
        fs.rmSync(created, { force: true });
        return salt;
    }

    private writeStackFile(doc: StackFile): void {
        const header =
            "# Written by dev/engine/pulumi.ts from the tracked stack file, plus the passphrase salt and\n" +
            "# the encrypted secrets. Rewritten on every run and only the secrets carry over: change other\n" +
            "# values in the tracked file.\n";
        const tmp = `${this.configFile}.tmp`;
        fs.writeFileSync(tmp, header + stringifyYaml(doc, { lineWidth: 0 }), { mode: 0o600 });
        fs.renameSync(tmp, this.configFile);
    }

    /** `pulumi config set slotshift:KEY` with the value on stdin (never on a command line). */
    async set(key: string, value: string, secret = false): Promise<void> {
        await this.ok(["config", "set", ...(secret ? ["--secret"] : []), `${NAMESPACE}:${key}`], { input: value, onLine: () => undefined });
    }

    /** The value of slotshift:KEY (secrets decrypted), or undefined when unset. */
    async get(key: string): Promise<string | undefined> {
        const r = await this.run(["config", "get", `${NAMESPACE}:${key}`], { onLine: () => undefined });
        return r.code === 0 ? r.out.replace(/\n$/, "") : undefined;
    }

    up(extra: string[] = [], opts: { onLine?: (line: string) => void; onSpawn?: (pid: number) => void } = {}): Promise<PulumiRun> {
        return this.run(["up", "--yes", "--skip-preview", "--non-interactive", "--color", "never", "--suppress-progress", ...extra], opts);
    }

    preview(extra: string[] = []): Promise<PulumiRun> {
        return this.run(["preview", "--non-interactive", "--color", "never", "--suppress-progress", ...extra]);
    }

    destroy(): Promise<PulumiRun> {
        return this.run(["destroy", "--yes", "--skip-preview", "--non-interactive", "--color", "never", "--suppress-progress"]);
    }

    async removeStack(): Promise<void> {
        await this.ok(["stack", "rm", "--yes", "--force", "--preserve-config", this.stack], { stack: "none" });
    }

    /** The stack's outputs (secrets stay masked). */
    async outputs(): Promise<Record<string, unknown>> {
        const r = await this.ok(["stack", "output", "--json"], { stack: "name", onLine: () => undefined });
        return JSON.parse(r.out || "{}") as Record<string, unknown>;
    }

    /** `pulumi stack export` as text (what an attacker with the state file would see). */
    async exportText(): Promise<string> {
        return (await this.ok(["stack", "export"], { stack: "name", onLine: () => undefined })).out;
    }

    async exportState(): Promise<{ deployment?: { resources?: unknown[]; secrets_providers?: { state?: { salt?: string } } } }> {
        return JSON.parse(await this.exportText());
    }
}

/** A random passphrase kept in a 0600 file beside the state it protects. */
function ensurePassphraseFile(file: string): string {
    if (!fs.existsSync(file)) {
        const crypto = require("crypto") as typeof import("crypto");
        fs.writeFileSync(file, `${crypto.randomBytes(24).toString("base64url")}\n`, { mode: 0o600, flag: "wx" });
    }
    return file;
}

/** The `config` map of a tracked stack file (e.g. Pulumi.local.yaml). */
export function trackedConfig(stackFile: string): Record<string, unknown> {
    return readStackFile(stackFile).config;
}

/** "activate v2 done in 11.8s (health 1.7s, shift 10.0s, drain 0.0s)" from the agent's output. */
export interface ShiftTimes {
    totalS: number;
    healthS: number;
    shiftS: number;
    drainS: number;
}

export function parseShiftTimes(out: string, version: string): ShiftTimes | undefined {
    // "(migrate Xs, " appears when the release ran migrations.
    const re = new RegExp(
        `activate ${version.replace(/[.+]/g, "\\$&")} done in ([\\d.]+)s \\((?:migrate [\\d.]+s, )?health ([\\d.]+)s, shift ([\\d.]+)s, drain ([\\d.]+)s\\)`,
    );
    const m = re.exec(out);
    return m ? { totalS: Number(m[1]), healthS: Number(m[2]), shiftS: Number(m[3]), drainS: Number(m[4]) } : undefined;
}
