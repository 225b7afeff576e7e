// THE command line between the program and the host agent: every command, its flags (one
// declaration each, lib/contract/flags.ts) and the checks across them. The program, the host's
// unit files, the rollback script and the dashboard build every agent command line with
// `agentInvocation`; the agent reads it with `parseCommand`. A unit test runs format -> parse for
// every command. No npm dependency: the agent bundles this file.
import { HostLayout } from "../host-layout";
import { count, text } from "../settings/kinds";
import { settingRow } from "../settings/table";
import { SHA256_PATTERN, versionProblem, workerNameProblem } from "./names";
import {
    ArgsError,
    commandFlag,
    commandSwitch,
    FlagDef,
    flagUsage,
    formatFlags,
    groupFlags,
    parseFlags,
    RawArgs,
    RequestOf,
    settingFlag,
    switchNames,
    tokenize,
} from "./flags";

export { ArgsError } from "./flags";
export type { RawArgs } from "./flags";

const version = text({ problem: versionProblem });
const versionFlag = commandFlag("version", version, "release version", { value: "V", required: true, positional: true });

/** Flags every command takes. */
export const GLOBAL_FLAGS = [
    commandFlag("config", text(), "agent settings (default: agent.json beside agent.js)", { value: "FILE" }),
    commandSwitch("json", "one JSON result object on stdout; progress on stderr"),
    commandSwitch("help", "this text"),
] as const;

/** The shift's flags, which activate and rollback share: every setting of the shift group bound for the command line. */
const SHIFT_FLAGS = groupFlags("shift", { keepPreviousWarm: { default: "agent.json's keepPreviousWarm" } });

const ALLOW_CONTRACT = settingFlag("allowContractOperations", { help: "acknowledged contract operations, MIGRATION:OPERATION:TARGET, comma-separated" });

export interface CommandSpec<Flags extends readonly FlagDef[] = readonly FlagDef[]> {
    name: string;
    summary: string;
    flags: Flags;
    /** Checks across flags (exactly one of two, ...); throws ArgsError. */
    check?(request: RequestOf<Flags>): void;
}

function spec<const Flags extends readonly FlagDef[]>(
    name: string,
    summary: string,
    flags: Flags,
    check?: (request: RequestOf<Flags>) => void,
): CommandSpec<Flags> {
    return { name, summary, flags, check };
}

function exactlyOne(a: unknown, b: unknown, message: string): void {
    if ((a !== undefined && a !== false) === (b !== undefined && b !== false)) throw new ArgsError(message);
}

const PREPARE = spec(
    "prepare",
    "unpack, build, check, link shared dirs, merge static",
    [
        versionFlag,
        commandFlag("source", text(), "a .tar.gz on the host or an https:// URL", { value: "PATH|URL", positional: true }),
        commandSwitch("sourceStdin", "read the source (PATH or URL) from the first line of stdin: a URL may carry credentials"),
        commandFlag(
            "sha256",
            text({ pattern: SHA256_PATTERN, rule: "be 64 lowercase hex digits" }),
            "the archive's sha256 (required for an https source); a version never changes its bytes",
            { value: "HEX" },
        ),
        settingFlag("releaseDownloadMaxMiB"),
        settingFlag("releaseDownloadTimeout"),
    ],
    (r) => exactlyOne(r.source, r.sourceStdin, "prepare needs exactly one of --source PATH|URL and --source-stdin"),
);

const ACTIVATE = spec("activate", "migration-safety gate + migrations (once per version), then the gated shift", [versionFlag, ...SHIFT_FLAGS, ALLOW_CONTRACT]);

const MIGRATE = spec("migrate", "the same gate and migrations without a shift; --check-only migrates nothing", [
    versionFlag,
    ALLOW_CONTRACT,
    commandSwitch("checkOnly", "run the migration-safety gate only"),
]);

/** deploy/rollback's flag: it holds the lock and flipped the weights itself (ms since the epoch). */
const SCRIPT_FLIP = commandFlag(
    "scriptFlip",
    text({
        problem: (v) => {
            const m = /^(\d{10,16}):(\d{10,16})$/.exec(v);
            return m && Number(m[2]) >= Number(m[1]) ? undefined : "must be STARTED:FLIPPED, two times in ms since the epoch, the second not before the first";
        },
    }),
    "set by deploy/rollback, which holds the lock and flipped the weights itself (ms since the epoch); the agent records that flip",
    { value: "STARTED:FLIPPED" },
);

const ROLLBACK = spec("rollback", "back to the previous release (instant when warm; deploy/rollback flips before Node.js starts)", [
    ...SHIFT_FLAGS,
    SCRIPT_FLIP,
]);

/** The two times of --script-flip. */
export function parseScriptFlip(value: string): { startedAt: number; flippedAt: number } {
    const [startedAt, flippedAt] = value.split(":").map(Number);
    return { startedAt, flippedAt };
}

const STATUS = spec("status", "slots, versions, weights, health, sessions, lock", []);

const RETIRE = spec("retire", "stop V's slot unless live (or warm previous); prune", [
    versionFlag,
    settingFlag("drainTimeout", { help: "how long its open requests may take", default: "the last activation's" }),
    settingFlag("keepPreviousWarm", { help: "keep V running when it is the warm previous release", default: "agent.json's keepPreviousWarm" }),
]);

// How many to keep now: an operator's one-off count, not the standing policy (releasesToKeep, which
// must keep two); the live and the previous release are never pruned whatever it says.
const PRUNE = spec("prune", "delete old releases (never live or previous)", [
    commandFlag("keep", count(1, 100, { unit: "releases" }), "release dirs to keep", {
        value: "N",
        default: `agent.json's releasesToKeep, ${settingRow("releasesToKeep").default} unless configured`,
    }),
]);

const WRITE_ENV = spec("write-env", "KEY=value lines on stdin -> shared env file (root:<app> 0640)", []);
const RELOAD_PROXY = spec("reload-proxy", "save HAProxy runtime state, check config, reload", []);
const ABORT = spec("abort", "stop the running activate or rollback: its worker moves traffic back to the old release", []);

const MAINTENANCE = spec(
    "maintenance",
    "NGINX answers every request with the maintenance page (--on), or serves the app again (--off)",
    [commandSwitch("on", "show the maintenance page to every visitor"), commandSwitch("off", "serve the app again")],
    (r) => exactlyOne(r.on, r.off, "maintenance needs exactly one of --on and --off"),
);

const DASHBOARD = spec("dashboard", "the web dashboard on 127.0.0.1 (a resident process; the host's <app>-dashboard service runs it)", [
    settingFlag("dashboardPort"),
]);

const RECOVER = spec(
    "recover",
    "back to the last committed state after an interrupted deploy, and the slots that ran started again (run at boot; every locking command does the first part)",
    [],
);

/** The placeholders `attach`'s command line carries in the program (the SSH step fills them in after a dropped connection). */
const ATTACH_PLACEHOLDERS = { worker: "{worker}", skipLines: "{lines}" } as const;

const ATTACH = spec("attach", "follow a running deploy worker again (after a dropped connection): its output from line N, then its result", [
    commandFlag("worker", text({ problem: workerNameProblem }), "the worker the command announced (its log file's name in the logs dir, without .log)", {
        value: "NAME",
        required: true,
    }),
    commandFlag("skipLines", count(0, Number.MAX_SAFE_INTEGER), "output lines already received", { value: "N", default: "0" }),
]);

/** Every command, by name, in the order the usage lists them. */
export const COMMANDS = {
    prepare: PREPARE,
    activate: ACTIVATE,
    migrate: MIGRATE,
    rollback: ROLLBACK,
    status: STATUS,
    retire: RETIRE,
    prune: PRUNE,
    "write-env": WRITE_ENV,
    "reload-proxy": RELOAD_PROXY,
    abort: ABORT,
    maintenance: MAINTENANCE,
    dashboard: DASHBOARD,
    recover: RECOVER,
    attach: ATTACH,
} as const;

export type AgentCommandName = keyof typeof COMMANDS;
/** The request a command's flags parse into. */
export type RequestFor<C extends AgentCommandName> = RequestOf<(typeof COMMANDS)[C]["flags"]>;

export type PrepareRequest = RequestFor<"prepare">;
export type ActivateRequest = RequestFor<"activate">;
export type MigrateRequest = RequestFor<"migrate">;
export type RollbackRequest = RequestFor<"rollback">;
export type RetireRequest = RequestFor<"retire">;
export type PruneRequest = RequestFor<"prune">;
export type MaintenanceRequest = RequestFor<"maintenance">;
export type DashboardRequest = RequestFor<"dashboard">;

const COMMAND_LIST: readonly CommandSpec[] = Object.values(COMMANDS);

/** Flags that never take a value, across every command: the tokenizer needs them before it knows the command. */
const ALL_SWITCHES: ReadonlySet<string> = new Set([...GLOBAL_FLAGS, ...COMMAND_LIST.flatMap((c) => c.flags)].flatMap((f) => switchNames(f)));

/** Splits argv into the command, its words and its flags. */
export function tokenizeArgs(argv: readonly string[]): RawArgs {
    return tokenize(argv, ALL_SWITCHES);
}

/** A command's request from the tokens; throws ArgsError. */
export function parseCommand<C extends AgentCommandName>(command: C, args: RawArgs): RequestFor<C> {
    const s = COMMANDS[command] as CommandSpec;
    const request = parseFlags(s.name, s.flags, args, GLOBAL_FLAGS);
    s.check?.(request);
    return request as RequestFor<C>;
}

/** A request's flags, as the agent reads them back. */
export function formatCommand<C extends AgentCommandName>(command: C, request: RequestFor<C>): string[] {
    const s = COMMANDS[command] as CommandSpec;
    s.check?.(request as never);
    return [command, ...formatFlags(s.flags, request as never)];
}

/** The global flags a caller may add (`--json`). */
export interface InvocationOptions {
    json?: boolean;
    /** The node binary (default "node", the host's). */
    node?: string;
    /** The agent's script (default layout.agentPath): the running agent's own, when it starts another command. */
    agentPath?: string;
    /** Leave out `--config`: the agent then reads agent.json beside agent.js (a NixOS unit, which must not name it in the store). */
    configBesideAgent?: boolean;
}

/**
 * The whole agent invocation on the host: `node <deployDir>/agent.js <command> --config
 * <deployDir>/agent.json [flags]`. Every line that reaches the agent — the program's steps, the
 * unit files, the rollback script, the dashboard's buttons — is built here.
 */
export function agentInvocation<C extends AgentCommandName>(layout: HostLayout, command: C, request: RequestFor<C>, opts: InvocationOptions = {}): string[] {
    const [name, ...flags] = formatCommand(command, request);
    const config = opts.configBesideAgent ? [] : ["--config", layout.agentConfigPath];
    return [opts.node ?? "node", opts.agentPath ?? layout.agentPath, name, ...config, ...flags, ...(opts.json ? ["--json"] : [])];
}

/** A command's flag as written on its command line (`--script-flip`), for a caller that appends its value itself. */
export function flagOf<C extends AgentCommandName>(command: C, field: keyof RequestFor<C> & string): string {
    const flag = (COMMANDS[command] as CommandSpec).flags.find((f) => f.field === field);
    if (!flag) throw new Error(`${command} has no flag for ${field}`);
    return `--${flag.name}`;
}

/** `attach`'s invocation with the placeholders the SSH step fills in (ATTACH_PLACEHOLDERS). */
export function attachInvocationTemplate(layout: HostLayout): string[] {
    return [
        "node",
        layout.agentPath,
        "attach",
        "--config",
        layout.agentConfigPath,
        "--worker",
        ATTACH_PLACEHOLDERS.worker,
        "--skip-lines",
        ATTACH_PLACEHOLDERS.skipLines,
    ];
}

/** The usage text, from the specs. */
export function usageText(detachedNote: (name: string) => string): string {
    const lines = ["usage: agent.js <command> --config <deployDir>/agent.json [options]", ""];
    for (const c of COMMAND_LIST) {
        const synopsis = c.flags
            .map((f) => {
                const names =
                    f.kind.kind === "switch"
                        ? switchNames(f)
                              .map((n) => `--${n}`)
                              .join("|")
                        : `--${f.name} ${f.value}`;
                return f.required ? names : `[${names}]`;
            })
            .join(" ");
        lines.push(`  ${c.name.padEnd(13)}${synopsis}`);
        lines.push(`  ${"".padEnd(13)}${c.summary}${detachedNote(c.name)}`);
        for (const f of c.flags) lines.push(`  ${"".padEnd(15)}${flagUsage(f)}`);
    }
    lines.push("", "every command:");
    for (const f of GLOBAL_FLAGS) lines.push(`  ${flagUsage(f)}`);
    lines.push("", "Exit codes: 0 ok, 1 failed (traffic restored), 2 usage, 3 another deploy holds the lock.", "");
    return lines.join("\n");
}
