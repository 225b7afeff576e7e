// The contract between the program and the host agent, on both sides of the SSH boundary:
//   - the defaults of every setting the two share (the config schema takes its defaults from here),
//   - the version and app-name patterns,
//   - every agent command's flags and their types: formatXArgs builds the command line the program
//     sends, parseXArgs reads it in the agent (a round-trip test keeps them inverse),
//   - the shape of agent.json, with a schema version the agent checks.
// No npm dependency: the agent bundles this file.
import { joinContractOperations, MigrationCheck, parseContractOperation, splitContractOperations } from "./migrations";
import { formatShiftPlan, parseDuration, parseShiftPlan, ShiftStep } from "./shift-plan";

// --- defaults ------------------------------------------------------------------------------------

/** Every default of the stack config, defined once. Pulumi.yaml's `default:` entries are checked against these by a unit test. */
export const DEFAULTS = {
    buildCommand: "",
    checkCommand: "",
    migrateCommand: "",
    migrationCheck: "django",
    allowContractOperations: [] as string[],
    dbLockTimeoutSeconds: 5,
    dbStatementTimeoutSeconds: 600,
    dbLockRetries: 3,
    migrationRehearsal: true,
    appEnv: "",
    releaseSha256: "",
    releaseDownloadMaxMiB: 2048,
    releaseDownloadTimeoutSeconds: 600,
    healthPath: "/healthz",
    smokePaths: ["/"] as string[],
    shiftPlan: ["10%:30s", "50%:30s", "100%"] as string[],
    maxErrorRatio: 0.01,
    minRequestsPerStep: 10,
    maxStepExtensionSeconds: 60,
    maxLatencyRatio: 3,
    healthTimeoutSeconds: 120,
    drainTimeoutSeconds: 60,
    keepPreviousWarm: true,
    releasesToKeep: 5,
    tlsMode: "self-signed" as "self-signed" | "acme",
    acmeEmail: "",
    osFlavour: "debian" as "debian" | "nixos",
    nixosRelease: "26.05",
    instanceType: "t3.small",
    rootVolumeGiB: 20,
    dataVolumeGiB: 20,
    allowHostReplacement: false,
    subnetId: "",
    allowedSshCidrs: [] as string[],
    allowSshFromAnywhere: false,
    sshPublicKey: "",
    sshUser: "",
    sshHostKey: "",
    hostAddress: "",
    sshPort: 22,
    protect: false,
    slotBasePort: 8001,
    haproxyPort: 8080,
    /** Not a stack config key: the loopback UDP port where HAProxy logs each request for the deploy agent. */
    trafficLogPort: 8514,
    httpPort: 80,
    httpsPort: 443,
    postgresql: false,
    appEgress: "any" as "any" | "loopback",
    /** Loopback port of the dashboard on the host (reached through an SSH tunnel). */
    dashboardPort: 8090,
} as const;

/** The default plan in the agent's command-line form ("10:30,50:30,100:0"). */
export const DEFAULT_PLAN: readonly ShiftStep[] = parseShiftPlan(DEFAULTS.shiftPlan);

// --- names ---------------------------------------------------------------------------------------

/** Versions become directory names, unit descriptions and CLI arguments: keep them inert. */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/;
export const VERSION_RULE =
    "must be 1-63 characters of letters, digits, '.', '_', '+' or '-', starting with a letter or digit (no '/', spaces, quotes or shell metacharacters)";

/** App names become a Unix user, a directory and unit names. */
export const APP_NAME_PATTERN = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;
export const APP_NAME_RULE = "must be 2-32 lowercase letters, digits or '-', starting with a letter";

/** Why a version is not acceptable, or undefined when it is. */
export function versionProblem(version: string): string | undefined {
    if (!VERSION_PATTERN.test(version)) return VERSION_RULE;
    if (version.includes("..")) return "must not contain '..'";
    return undefined;
}

// --- command lines -------------------------------------------------------------------------------

/** A bad agent command line; the agent exits 2 (usage) with this message. */
export class ArgsError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "ArgsError";
    }
}

export interface FlagSpec {
    name: string;
    /** Placeholder of the value in the usage text; a flag without one is a switch. */
    value?: string;
    help: string;
}

/** Flags every command takes. */
export const GLOBAL_FLAGS: readonly FlagSpec[] = [
    { name: "config", value: "FILE", help: "agent settings (default: agent.json beside agent.js)" },
    { name: "json", help: "one JSON result object on stdout; progress on stderr" },
    { name: "help", help: "this text" },
];

/** Tokenized argv: the command, positional words and --flags (value, or true for a switch). */
export interface RawArgs {
    command: string | undefined;
    positionals: string[];
    flags: Map<string, string | true>;
}

export function rawFlag(args: RawArgs, name: string): string | undefined {
    const v = args.flags.get(name);
    if (v === true) throw new ArgsError(`option --${name} needs a value`);
    return v;
}

export function rawSwitch(args: RawArgs, name: string): boolean {
    const v = args.flags.get(name);
    if (v === undefined) return false;
    if (v === true || v === "true" || v === "1" || v === "yes") return true;
    if (v === "false" || v === "0" || v === "no") return false;
    throw new ArgsError(`option --${name} is a switch, not "${v}"`);
}

/** Splits argv into command, positionals and flags; `switches` never take a value. */
export function tokenize(argv: readonly string[], switches: ReadonlySet<string> = ALL_SWITCHES): RawArgs {
    const positionals: string[] = [];
    const flags = new Map<string, string | true>();
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === "--") {
            positionals.push(...argv.slice(i + 1));
            break;
        }
        if (arg.startsWith("--")) {
            const eq = arg.indexOf("=");
            const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
            if (name === "") throw new ArgsError(`bad option "${arg}"`);
            if (eq > 0) {
                flags.set(name, arg.slice(eq + 1));
            } else if (switches.has(name)) {
                flags.set(name, true);
            } else {
                const value = argv[i + 1];
                if (value === undefined || value.startsWith("--")) throw new ArgsError(`option --${name} needs a value`);
                flags.set(name, value);
                i++;
            }
        } else {
            positionals.push(arg);
        }
    }
    return { command: positionals.shift(), positionals, flags };
}

/** Rejects options the command does not know, so a typo never silently falls back to a default. */
function checkKnownFlags(args: RawArgs, spec: CommandSpec): void {
    const known = new Set([...spec.flags, ...GLOBAL_FLAGS].map((f) => f.name));
    for (const name of args.flags.keys()) {
        if (!known.has(name)) throw new ArgsError(`unknown option --${name} for ${spec.name}`);
    }
}

function checkedVersion(v: string | undefined): string {
    if (!v) throw new ArgsError("missing version (--version V)");
    const problem = versionProblem(v);
    if (problem) throw new ArgsError(`version "${v}" ${problem}`);
    return v;
}

function durationSeconds(args: RawArgs, name: string): number | undefined {
    const v = rawFlag(args, name);
    if (v === undefined) return undefined;
    try {
        const s = parseDuration(v);
        if (s <= 0) throw new Error("must be positive");
        return s;
    } catch (e) {
        throw new ArgsError(`--${name}: ${(e as Error).message}`);
    }
}

function contractList(args: RawArgs): string[] {
    const list = splitContractOperations(rawFlag(args, "allow-contract") ?? "");
    for (const item of list) {
        try {
            parseContractOperation(item);
        } catch (e) {
            throw new ArgsError(`--allow-contract: ${(e as Error).message}`);
        }
    }
    return list;
}

/** The version from --version, or the first positional word (`prepare v2 --source ...`). */
function versionArg(args: RawArgs): { version: string; rest: string[] } {
    const flag = rawFlag(args, "version");
    if (flag !== undefined) return { version: checkedVersion(flag), rest: args.positionals };
    return { version: checkedVersion(args.positionals[0]), rest: args.positionals.slice(1) };
}

function noMore(spec: CommandSpec, rest: readonly string[]): void {
    if (rest.length > 0) throw new ArgsError(`unexpected argument "${rest[0]}" for ${spec.name}`);
}

/** What every command's spec declares; the agent's command table adds how each one runs. */
export interface CommandSpec {
    name: string;
    /** Usage line after the command name. */
    synopsis: string;
    summary: string;
    flags: readonly FlagSpec[];
}

// The shift options activate and rollback share. Absent ones fall back (in the agent) to the last
// activation's, then to DEFAULTS.
export interface ShiftRequest {
    plan?: ShiftStep[];
    maxErrorRatio?: number;
    /** Judged requests a step needs; 0 lets a step pass without traffic. */
    minRequests?: number;
    /** How long a step below minRequests is held longer before it fails. */
    maxStepExtensionSeconds?: number;
    /** New slot's average response time over the old one's that fails a step; 0 turns the gate off. */
    maxLatencyRatio?: number;
    healthTimeoutSeconds?: number;
    drainTimeoutSeconds?: number;
    /**
     * Keep the previous release running at weight 0 after this shift. The program always sends it
     * (from keepPreviousWarm, as retire's); without it agent.json's keepPreviousWarm applies.
     * slots.json records the choice, so recovery after a dead deploy follows the same one.
     */
    keepWarm?: boolean;
}

const SHIFT_FLAGS: readonly FlagSpec[] = [
    { name: "plan", value: "PLAN", help: `PERCENT:PAUSE steps (default ${formatShiftPlan(DEFAULT_PLAN)})` },
    { name: "max-error-ratio", value: "R", help: `largest 5xx share of the new release per step (default ${DEFAULTS.maxErrorRatio})` },
    { name: "min-requests", value: "N", help: `requests a step needs before its gates judge it; 0: none (default ${DEFAULTS.minRequestsPerStep})` },
    {
        name: "max-step-extension",
        value: "DURATION",
        help: `how long a step with too few requests is held longer before it fails (default ${DEFAULTS.maxStepExtensionSeconds}s)`,
    },
    {
        name: "max-latency-ratio",
        value: "R",
        help: `largest average response time of the new release over the old one's; 0: off (default ${DEFAULTS.maxLatencyRatio})`,
    },
    { name: "health-timeout", value: "DURATION", help: `how long the new slot may take to become ready (default ${DEFAULTS.healthTimeoutSeconds}s)` },
    { name: "drain-timeout", value: "DURATION", help: `how long the old slot's open requests may take (default ${DEFAULTS.drainTimeoutSeconds}s)` },
    { name: "keep-warm", help: "keep the previous release running at weight 0 (default: agent.json's keepPreviousWarm)" },
    { name: "no-keep-warm", help: "stop the previous release after the shift" },
];

function parseShift(args: RawArgs): ShiftRequest {
    const req: ShiftRequest = {};
    const plan = rawFlag(args, "plan");
    if (plan !== undefined) {
        try {
            req.plan = parseShiftPlan(plan);
        } catch (e) {
            throw new ArgsError(`--plan: ${(e as Error).message}`);
        }
    }
    const ratio = rawFlag(args, "max-error-ratio");
    if (ratio !== undefined) {
        const n = Number(ratio);
        if (ratio.trim() === "" || !Number.isFinite(n)) throw new ArgsError(`option --max-error-ratio must be a number, not "${ratio}"`);
        if (n < 0 || n > 1) throw new ArgsError("--max-error-ratio must be between 0 and 1");
        req.maxErrorRatio = n;
    }
    const minRequests = rawFlag(args, "min-requests");
    if (minRequests !== undefined) {
        if (!/^\d{1,6}$/.test(minRequests)) throw new ArgsError(`option --min-requests must be a whole number, not "${minRequests}"`);
        req.minRequests = Number(minRequests);
    }
    const extension = durationSeconds(args, "max-step-extension");
    if (extension !== undefined) req.maxStepExtensionSeconds = extension;
    const latency = rawFlag(args, "max-latency-ratio");
    if (latency !== undefined) {
        const n = Number(latency);
        if (latency.trim() === "" || !Number.isFinite(n)) throw new ArgsError(`option --max-latency-ratio must be a number, not "${latency}"`);
        if (n !== 0 && (n < 1 || n > 100)) throw new ArgsError("--max-latency-ratio must be 0 (off) or between 1 and 100");
        req.maxLatencyRatio = n;
    }
    const health = durationSeconds(args, "health-timeout");
    if (health !== undefined) req.healthTimeoutSeconds = health;
    const drain = durationSeconds(args, "drain-timeout");
    if (drain !== undefined) req.drainTimeoutSeconds = drain;
    const keepWarm = keepWarmSwitch(args);
    if (keepWarm !== undefined) req.keepWarm = keepWarm;
    return req;
}

function keepWarmSwitch(args: RawArgs): boolean | undefined {
    const keep = rawSwitch(args, "keep-warm");
    const noKeep = rawSwitch(args, "no-keep-warm");
    if (keep && noKeep) throw new ArgsError("--keep-warm and --no-keep-warm exclude each other");
    return keep || noKeep ? keep : undefined;
}

/** --allow-contract, shared by activate and migrate. */
const ALLOW_CONTRACT_FLAG: FlagSpec = { name: "allow-contract", value: "LIST", help: "acknowledged contract operations, comma-separated" };

function formatAllowContract(list: readonly string[]): string[] {
    return list.length > 0 ? ["--allow-contract", joinContractOperations(list)] : [];
}

function formatKeepWarm(keepWarm: boolean | undefined): string[] {
    return keepWarm === undefined ? [] : [keepWarm ? "--keep-warm" : "--no-keep-warm"];
}

function formatShift(r: ShiftRequest): string[] {
    return [
        ...(r.plan ? ["--plan", formatShiftPlan(r.plan)] : []),
        ...(r.maxErrorRatio !== undefined ? ["--max-error-ratio", String(r.maxErrorRatio)] : []),
        ...(r.minRequests !== undefined ? ["--min-requests", String(r.minRequests)] : []),
        ...(r.maxStepExtensionSeconds !== undefined ? ["--max-step-extension", String(r.maxStepExtensionSeconds)] : []),
        ...(r.maxLatencyRatio !== undefined ? ["--max-latency-ratio", String(r.maxLatencyRatio)] : []),
        ...(r.healthTimeoutSeconds !== undefined ? ["--health-timeout", String(r.healthTimeoutSeconds)] : []),
        ...(r.drainTimeoutSeconds !== undefined ? ["--drain-timeout", String(r.drainTimeoutSeconds)] : []),
        ...formatKeepWarm(r.keepWarm),
    ];
}

// prepare

/** A release archive's sha256, as `sha256sum` prints it. */
export const SHA256_PATTERN = /^[0-9a-f]{64}$/;

export interface PrepareRequest {
    version: string;
    /**
     * A local .tar.gz path on the host, or an https:// URL. Undefined with sourceOnStdin: an https
     * URL may carry credentials (a presigned URL), so the program sends it on stdin, never in argv.
     */
    source?: string;
    /** Read the source from the first line of stdin. */
    sourceOnStdin?: boolean;
    /** The archive's sha256 (required for an https source; computed from a local file when absent). */
    sha256?: string;
    /** Largest https download accepted, in bytes (default DEFAULTS.releaseDownloadMaxMiB MiB). */
    maxDownloadBytes?: number;
    /** How long the whole https download may take (default DEFAULTS.releaseDownloadTimeoutSeconds). */
    downloadTimeoutSeconds?: number;
}

export const PREPARE: CommandSpec = {
    name: "prepare",
    synopsis: "--version V (--source PATH|URL | --source-stdin) [--sha256 HEX] [--max-download-mib N] [--download-timeout DURATION]",
    summary: "unpack, build, check, link shared dirs, merge static",
    flags: [
        { name: "version", value: "V", help: "release version" },
        { name: "source", value: "PATH|URL", help: "a .tar.gz on the host or an https:// URL" },
        { name: "source-stdin", help: "read the source (PATH or URL) from the first line of stdin: a URL may carry credentials" },
        { name: "sha256", value: "HEX", help: "the archive's sha256 (required for an https source); a version never changes its bytes" },
        { name: "max-download-mib", value: "N", help: `largest https download accepted (default ${DEFAULTS.releaseDownloadMaxMiB} MiB)` },
        { name: "download-timeout", value: "DURATION", help: `how long the https download may take (default ${DEFAULTS.releaseDownloadTimeoutSeconds}s)` },
    ],
};

const MIB = 1024 * 1024;

export function formatPrepareArgs(r: PrepareRequest): string[] {
    if ((r.source === undefined) === !r.sourceOnStdin) throw new Error("prepare needs exactly one of source and sourceOnStdin");
    return [
        "--version",
        r.version,
        ...(r.sourceOnStdin ? ["--source-stdin"] : ["--source", r.source!]),
        ...(r.sha256 !== undefined ? ["--sha256", r.sha256] : []),
        ...(r.maxDownloadBytes !== undefined ? ["--max-download-mib", String(r.maxDownloadBytes / MIB)] : []),
        ...(r.downloadTimeoutSeconds !== undefined ? ["--download-timeout", String(r.downloadTimeoutSeconds)] : []),
    ];
}

export function parsePrepareArgs(args: RawArgs): PrepareRequest {
    checkKnownFlags(args, PREPARE);
    const { version, rest } = versionArg(args);
    const flag = rawFlag(args, "source");
    const sourceOnStdin = rawSwitch(args, "source-stdin");
    const source = flag ?? (sourceOnStdin ? undefined : rest[0]);
    if (sourceOnStdin && source !== undefined) throw new ArgsError("--source and --source-stdin exclude each other");
    if (!source && !sourceOnStdin) throw new ArgsError("missing --source PATH|URL (or --source-stdin)");
    noMore(PREPARE, flag === undefined && !sourceOnStdin ? rest.slice(1) : rest);
    const req: PrepareRequest = sourceOnStdin ? { version, sourceOnStdin: true } : { version, source };
    const sha256 = rawFlag(args, "sha256");
    if (sha256 !== undefined) {
        if (!SHA256_PATTERN.test(sha256)) throw new ArgsError(`--sha256 must be 64 lowercase hex digits, not "${sha256}"`);
        req.sha256 = sha256;
    }
    const mib = rawFlag(args, "max-download-mib");
    if (mib !== undefined) {
        const n = Number(mib);
        if (mib.trim() === "" || !Number.isFinite(n) || n <= 0) throw new ArgsError(`--max-download-mib must be a positive number, not "${mib}"`);
        req.maxDownloadBytes = Math.round(n * MIB);
    }
    const timeout = durationSeconds(args, "download-timeout");
    if (timeout !== undefined) req.downloadTimeoutSeconds = timeout;
    return req;
}

// activate

export interface ActivateRequest extends ShiftRequest {
    version: string;
    /** Acknowledged contract operations (MIGRATION:OPERATION:TARGET) for this version's migrations. */
    allowContract: string[];
}

export const ACTIVATE: CommandSpec = {
    name: "activate",
    synopsis: "--version V [shift options] [--allow-contract MIGRATION:OPERATION:TARGET,...]",
    summary: "migration-safety gate + migrations (once per version), then the gated shift",
    flags: [{ name: "version", value: "V", help: "release version (prepared)" }, ...SHIFT_FLAGS, ALLOW_CONTRACT_FLAG],
};

export function formatActivateArgs(r: ActivateRequest): string[] {
    return ["--version", r.version, ...formatShift(r), ...formatAllowContract(r.allowContract)];
}

export function parseActivateArgs(args: RawArgs): ActivateRequest {
    checkKnownFlags(args, ACTIVATE);
    const { version, rest } = versionArg(args);
    noMore(ACTIVATE, rest);
    return { version, ...parseShift(args), allowContract: contractList(args) };
}

// rollback

export interface RollbackRequest extends ShiftRequest {
    /** deploy/rollback (program/rollback-script.ts) holds the lock and flipped the weights: when it started and flipped (ms since the epoch). */
    scriptFlip?: { startedAt: number; flippedAt: number };
}

const SCRIPT_FLIP_FLAG: FlagSpec = {
    name: "script-flip",
    value: "STARTED:FLIPPED",
    help: "set by deploy/rollback, which holds the lock and flipped the weights itself (ms since the epoch); the agent records that flip",
};

export const ROLLBACK: CommandSpec = {
    name: "rollback",
    synopsis: "[shift options]",
    summary: "back to the previous release (instant when warm; deploy/rollback flips before Node.js starts)",
    flags: [...SHIFT_FLAGS, SCRIPT_FLIP_FLAG],
};

export function formatRollbackArgs(r: RollbackRequest): string[] {
    return formatShift(r);
}

export function parseRollbackArgs(args: RawArgs): RollbackRequest {
    checkKnownFlags(args, ROLLBACK);
    noMore(ROLLBACK, args.positionals);
    const req: RollbackRequest = parseShift(args);
    const flip = rawFlag(args, SCRIPT_FLIP_FLAG.name);
    if (flip !== undefined) {
        const m = /^(\d{10,16}):(\d{10,16})$/.exec(flip);
        if (!m || Number(m[2]) < Number(m[1]))
            throw new ArgsError(`--script-flip must be STARTED:FLIPPED, two times in ms since the epoch, the second not before the first; not "${flip}"`);
        req.scriptFlip = { startedAt: Number(m[1]), flippedAt: Number(m[2]) };
    }
    return req;
}

// migrate

export interface MigrateRequest {
    version: string;
    allowContract: string[];
    /** Run the gate only; migrate nothing. */
    checkOnly: boolean;
}

export const MIGRATE: CommandSpec = {
    name: "migrate",
    synopsis: "--version V [--allow-contract ...] [--check-only]",
    summary: "the same gate and migrations without a shift; --check-only migrates nothing",
    flags: [
        { name: "version", value: "V", help: "release version (prepared)" },
        ALLOW_CONTRACT_FLAG,
        { name: "check-only", help: "run the migration-safety gate only" },
    ],
};

export function formatMigrateArgs(r: MigrateRequest): string[] {
    return ["--version", r.version, ...formatAllowContract(r.allowContract), ...(r.checkOnly ? ["--check-only"] : [])];
}

export function parseMigrateArgs(args: RawArgs): MigrateRequest {
    checkKnownFlags(args, MIGRATE);
    const { version, rest } = versionArg(args);
    noMore(MIGRATE, rest);
    return { version, allowContract: contractList(args), checkOnly: rawSwitch(args, "check-only") };
}

// retire

export interface RetireRequest {
    version: string;
    /** How long the retired slot's open requests may take; default: the last activation's drain timeout. */
    drainTimeoutSeconds?: number;
    /** Keep V running when it is the warm previous release; default agent.json's keepPreviousWarm. */
    keepWarm?: boolean;
}

export const RETIRE: CommandSpec = {
    name: "retire",
    synopsis: "--version V [--drain-timeout DURATION] [--keep-warm|--no-keep-warm]",
    summary: "stop V's slot unless live (or warm previous); prune",
    flags: [
        { name: "version", value: "V", help: "release version" },
        { name: "drain-timeout", value: "DURATION", help: "how long its open requests may take (default: the last activation's)" },
        { name: "keep-warm", help: "keep V running when it is the warm previous release (default: agent.json's keepPreviousWarm)" },
        { name: "no-keep-warm", help: "stop V even when it is the warm previous release" },
    ],
};

export function formatRetireArgs(r: RetireRequest): string[] {
    return [
        "--version",
        r.version,
        ...(r.drainTimeoutSeconds !== undefined ? ["--drain-timeout", String(r.drainTimeoutSeconds)] : []),
        ...formatKeepWarm(r.keepWarm),
    ];
}

export function parseRetireArgs(args: RawArgs): RetireRequest {
    checkKnownFlags(args, RETIRE);
    const { version, rest } = versionArg(args);
    noMore(RETIRE, rest);
    const req: RetireRequest = { version };
    const drain = durationSeconds(args, "drain-timeout");
    if (drain !== undefined) req.drainTimeoutSeconds = drain;
    const keepWarm = keepWarmSwitch(args);
    if (keepWarm !== undefined) req.keepWarm = keepWarm;
    return req;
}

// prune

export interface PruneRequest {
    /** Release dirs to keep; default agent.json's releasesToKeep. */
    keep?: number;
}

export const PRUNE: CommandSpec = {
    name: "prune",
    synopsis: "[--keep N]",
    summary: "delete old releases (never live or previous)",
    flags: [{ name: "keep", value: "N", help: `release dirs to keep (default: releasesToKeep, ${DEFAULTS.releasesToKeep} unless configured)` }],
};

export function formatPruneArgs(r: PruneRequest): string[] {
    return r.keep !== undefined ? ["--keep", String(r.keep)] : [];
}

export function parsePruneArgs(args: RawArgs): PruneRequest {
    checkKnownFlags(args, PRUNE);
    noMore(PRUNE, args.positionals);
    const v = rawFlag(args, "keep");
    if (v === undefined) return {};
    const keep = Number(v);
    if (!Number.isInteger(keep) || keep < 1) throw new ArgsError("--keep must be a whole number of releases, at least 1");
    return { keep };
}

// maintenance

export interface MaintenanceRequest {
    /** true: every public request gets the maintenance page; false: back to the app. */
    on: boolean;
}

export const MAINTENANCE: CommandSpec = {
    name: "maintenance",
    synopsis: "--on|--off",
    summary: "NGINX answers every request with the maintenance page (--on), or serves the app again (--off)",
    flags: [
        { name: "on", help: "show the maintenance page to every visitor" },
        { name: "off", help: "serve the app again" },
    ],
};

export function formatMaintenanceArgs(r: MaintenanceRequest): string[] {
    return [r.on ? "--on" : "--off"];
}

export function parseMaintenanceArgs(args: RawArgs): MaintenanceRequest {
    checkKnownFlags(args, MAINTENANCE);
    noMore(MAINTENANCE, args.positionals);
    const on = rawSwitch(args, "on");
    const off = rawSwitch(args, "off");
    if (on === off) throw new ArgsError("maintenance needs exactly one of --on and --off");
    return { on };
}

// dashboard

export interface DashboardRequest {
    /** Loopback port it listens on (127.0.0.1 only). */
    port: number;
}

export const DASHBOARD: CommandSpec = {
    name: "dashboard",
    synopsis: "[--port N]",
    summary: "the web dashboard on 127.0.0.1 (a resident process; the host's <app>-dashboard service runs it)",
    flags: [{ name: "port", value: "N", help: `loopback port (default ${DEFAULTS.dashboardPort})` }],
};

export function formatDashboardArgs(r: DashboardRequest): string[] {
    return ["--port", String(r.port)];
}

export function parseDashboardArgs(args: RawArgs): DashboardRequest {
    checkKnownFlags(args, DASHBOARD);
    noMore(DASHBOARD, args.positionals);
    const v = rawFlag(args, "port");
    if (v === undefined) return { port: DEFAULTS.dashboardPort };
    const port = Number(v);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ArgsError(`--port must be a TCP port (1-65535), not "${v}"`);
    return { port };
}

// Commands without options of their own.

export type NoRequest = Record<string, never>;

function noOptions(spec: CommandSpec): (args: RawArgs) => NoRequest {
    return (args) => {
        checkKnownFlags(args, spec);
        noMore(spec, args.positionals);
        return {};
    };
}

export const STATUS: CommandSpec = { name: "status", synopsis: "[--json]", summary: "slots, versions, weights, health, sessions, lock", flags: [] };
export const WRITE_ENV: CommandSpec = { name: "write-env", synopsis: "", summary: "KEY=value lines on stdin -> shared env file (root:<app> 0640)", flags: [] };
export const RELOAD_PROXY: CommandSpec = { name: "reload-proxy", synopsis: "", summary: "save HAProxy runtime state, check config, reload", flags: [] };
export const RECOVER: CommandSpec = {
    name: "recover",
    synopsis: "",
    summary:
        "back to the last committed state after an interrupted deploy, and the slots that ran started again (run at boot; every locking command does the first part)",
    flags: [],
};
export const ABORT: CommandSpec = {
    name: "abort",
    synopsis: "",
    summary: "stop the running activate or rollback: its worker moves traffic back to the old release",
    flags: [],
};

export const parseStatusArgs = noOptions(STATUS);
export const parseWriteEnvArgs = noOptions(WRITE_ENV);
export const parseReloadProxyArgs = noOptions(RELOAD_PROXY);
export const parseAbortArgs = noOptions(ABORT);
export const parseRecoverArgs = noOptions(RECOVER);
export const formatStatusArgs = (_: NoRequest): string[] => [];
export const formatWriteEnvArgs = (_: NoRequest): string[] => [];
export const formatReloadProxyArgs = (_: NoRequest): string[] => [];
export const formatAbortArgs = (_: NoRequest): string[] => [];
export const formatRecoverArgs = (_: NoRequest): string[] => [];

export interface AttachRequest {
    /** The worker's name: its log file's name in the logs dir, without ".log". */
    worker: string;
    /** Lines of its output already received; streaming resumes after them. */
    skipLines: number;
}

/** A worker name as the foreground announces it: a file name, never a path. */
export const WORKER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$/;

export const ATTACH: CommandSpec = {
    name: "attach",
    synopsis: "--worker NAME [--skip-lines N]",
    summary: "follow a running deploy worker again (after a dropped connection): its output from line N, then its result",
    flags: [
        { name: "worker", value: "NAME", help: "the worker the command announced (deploy worker ... (log <logs>/NAME.log))" },
        { name: "skip-lines", value: "N", help: "output lines already received (default 0)" },
    ],
};

export function formatAttachArgs(r: AttachRequest): string[] {
    return ["--worker", r.worker, "--skip-lines", String(r.skipLines)];
}

export function parseAttachArgs(args: RawArgs): AttachRequest {
    checkKnownFlags(args, ATTACH);
    noMore(ATTACH, args.positionals);
    const worker = rawFlag(args, "worker");
    if (!worker) throw new ArgsError("--worker is required");
    if (!WORKER_NAME_PATTERN.test(worker) || worker.includes(".."))
        throw new ArgsError(`--worker must be a worker's log name (letters, digits, '.', '_', '+', '-'), not "${worker}"`);
    const raw = rawFlag(args, "skip-lines") ?? "0";
    const skipLines = Number(raw);
    if (!Number.isInteger(skipLines) || skipLines < 0) throw new ArgsError("--skip-lines must be a whole number, 0 or more");
    return { worker, skipLines };
}

export const COMMAND_SPECS: readonly CommandSpec[] = [
    PREPARE,
    ACTIVATE,
    MIGRATE,
    ROLLBACK,
    STATUS,
    RETIRE,
    PRUNE,
    WRITE_ENV,
    RELOAD_PROXY,
    ABORT,
    MAINTENANCE,
    DASHBOARD,
    RECOVER,
    ATTACH,
];

/** Flags that never take a value, across every command: the tokenizer needs them before it knows the command. */
export const ALL_SWITCHES: ReadonlySet<string> = new Set(
    [...GLOBAL_FLAGS, ...COMMAND_SPECS.flatMap((c) => c.flags)].filter((f) => !f.value).map((f) => f.name),
);

// --- agent.json ----------------------------------------------------------------------------------

export type ProcessControl =
    /** `systemctl start|stop|is-active <unitTemplate><slot>` */
    | { kind: "systemd" }
    /**
     * Commands with {slot} placeholders, for hosts without systemd (the integration tests). `pids`,
     * when given, prints the slot's process ids (whitespace separated): the agent then sets their
     * nice level and I/O class as it does a unit's (there are no cgroup weights here).
     */
    | { kind: "command"; start: string; stop: string; pids?: string };

/**
 * Bumped whenever AgentSettings changes shape. The agent refuses settings of another version, so a
 * program and an agent of different releases fail with a message instead of a TypeError mid-deploy.
 */
export const AGENT_SETTINGS_SCHEMA_VERSION = 3;

/** Stands for the live slot's port in AgentSettings.nginx.liveSlotConf. */
export const LIVE_SLOT_PORT_PLACEHOLDER = "{live-slot-port}";

/**
 * agent.json: what the program writes on the host (layout.agentConfigPath) and the agent reads on
 * every command. Host paths are not in it: both sides derive them from appName and root with
 * lib/host-layout.ts. Per-deploy inputs (version, plan, gates) travel on the command line instead,
 * so they show in `pulumi preview --diff`.
 */
export interface AgentSettings {
    schemaVersion: number;
    appName: string;
    /** Prefix of every host path: "" on a host, a temp dir in tests. */
    root: string;
    slots: { blue: number; green: number };
    haproxy: {
        backend: string;
        /** Checks then reloads HAProxy (the agent saves runtime state first). */
        reloadCommand: string;
        /** Address the agent sends smoke requests to (HAProxy's frontend). */
        frontend: { host: string; port: number };
        /** Loopback UDP port HAProxy logs each request to (absent in older settings: DEFAULTS.trafficLogPort). */
        trafficLogPort?: number;
    };
    /**
     * The slots' ports, health check, start command: what the next activation starts a slot with.
     * A running slot keeps what it was started with (recorded in slots.json, lib/slot-activation.ts).
     */
    health: {
        path: string;
        /** Host header for health and smoke requests. */
        host: string;
    };
    /** The slots' start command (sh syntax, uses $PORT); the agent writes it into a slot's start script. */
    startCommand: string;
    smokePaths: string[];
    slotHeader: string;
    /**
     * NGINX's backup upstream (layout.nginxLiveSlotFile), pointed at the live slot at every commit.
     * Absent in settings of a program that does not manage it: the agent then leaves NGINX alone.
     */
    nginx?: {
        /**
         * The file's content, rendered from templates/nginx-live-slot.conf.njk with the port left
         * as LIVE_SLOT_PORT_PLACEHOLDER: the agent fills in the port the live slot was started on.
         */
        liveSlotConf: string;
        /** Checks the configuration, then reloads NGINX gracefully (no connection dropped). */
        reloadCommand: string;
    };
    processControl: ProcessControl;
    release: {
        buildCommand?: string;
        checkCommand?: string;
        /** Directory inside a release whose files are merged into layout.staticDir. */
        staticSubdir: string;
        /** Shared directories linked into each release: name inside release -> shared path. */
        sharedLinks: Record<string, string>;
    };
    /** The release's database migrations, run by activate after prepare and before the new slot starts. No command: no migration step. */
    migrations: {
        command?: string;
        check: MigrationCheck;
        /** PostgreSQL lock_timeout for the migration and the check, in milliseconds. */
        lockTimeoutMs: number;
        /** PostgreSQL statement_timeout for each statement of the migration, in milliseconds (absent in older agent.json: the default). */
        statementTimeoutMs?: number;
        /** Further attempts after a migration gave up on lock_timeout (absent: the default). */
        lockRetries?: number;
        /** First pause before such a retry, in milliseconds; it doubles each time. */
        lockRetryBackoffMs?: number;
        /**
         * Before the real migration: the live release's code against a scratch copy of the schema
         * migrated by the new release. Absent: no rehearsal.
         */
        rehearsal?: {
            /** The slots' start command (uses $PORT). */
            startCommand: string;
        };
    };
    /** Keep the previous release running at weight 0 after a shift (instant rollback). */
    keepPreviousWarm: boolean;
    releasesToKeep: number;
}

/** Checks parsed agent.json; throws an ArgsError naming what is wrong. */
export function checkAgentSettings(raw: unknown, file: string): AgentSettings {
    const s = raw as Partial<AgentSettings> | undefined;
    const version = s?.schemaVersion;
    if (version !== AGENT_SETTINGS_SCHEMA_VERSION) {
        throw new ArgsError(
            `agent settings ${file} have schema version ${version ?? "(none)"}, but this agent reads version ${AGENT_SETTINGS_SCHEMA_VERSION}: ` +
                "the program and the agent come from different releases of slotshift; run `pulumi up` so the host setup installs both again",
        );
    }
    const missing = (
        [
            ["appName", s?.appName],
            ["root", s?.root],
            ["slots.blue", s?.slots?.blue],
            ["slots.green", s?.slots?.green],
            ["haproxy.backend", s?.haproxy?.backend],
            ["haproxy.reloadCommand", s?.haproxy?.reloadCommand],
            ["haproxy.frontend.port", s?.haproxy?.frontend?.port],
            ["health.path", s?.health?.path],
            ["processControl.kind", s?.processControl?.kind],
            ["migrations.check", s?.migrations?.check],
            ["keepPreviousWarm", s?.keepPreviousWarm],
            ["releasesToKeep", s?.releasesToKeep],
        ] as [string, unknown][]
    ).filter(([, v]) => v === undefined || v === null);
    if (missing.length) throw new ArgsError(`agent settings ${file} lack ${missing.map(([k]) => k).join(", ")}`);
    if (typeof s?.appName !== "string" || !APP_NAME_PATTERN.test(s.appName)) throw new ArgsError(`agent settings ${file}: appName ${APP_NAME_RULE}`);
    return s as AgentSettings;
}
