// The host-side deploy agent: `node agent.js <command> --config <deployDir>/agent.json [options]`.
// Bundled by scripts/build-agent.mjs into one file that runs on the host's Node 18+ with no install.
import * as fs from "fs";
import * as path from "path";
import {
    ABORT,
    ACTIVATE,
    ArgsError,
    ATTACH,
    AttachRequest,
    CommandSpec,
    DASHBOARD,
    GLOBAL_FLAGS,
    MAINTENANCE,
    MIGRATE,
    parseAbortArgs,
    parseActivateArgs,
    parseAttachArgs,
    parseDashboardArgs,
    parseMaintenanceArgs,
    parseMigrateArgs,
    parsePrepareArgs,
    parsePruneArgs,
    parseRecoverArgs,
    parseReloadProxyArgs,
    parseRetireArgs,
    parseRollbackArgs,
    parseStatusArgs,
    parseWriteEnvArgs,
    PREPARE,
    PRUNE,
    RawArgs,
    rawFlag,
    RECOVER,
    rawSwitch,
    RELOAD_PROXY,
    RETIRE,
    ROLLBACK,
    STATUS,
    tokenize,
    WRITE_ENV,
} from "../lib/agent-contract";
import { abortCommand } from "./commands/abort";
import { activateCommand } from "./commands/activate";
import { dashboardCommand } from "./commands/dashboard";
import { maintenanceCommand } from "./commands/maintenance";
import { migrateCommand } from "./commands/migrate";
import { prepareCommand } from "./commands/prepare";
import { recoverCommand } from "./commands/recover";
import { pruneCommand } from "./commands/prune";
import { reloadProxyCommand } from "./commands/reload-proxy";
import { retireCommand } from "./commands/retire";
import { rollbackCommand, rollbackIsWarmFlip } from "./commands/rollback";
import { statusCommand } from "./commands/status";
import { writeEnvCommand } from "./commands/write-env";
import { AgentContext, createContext } from "./context";
import { attachWorker, DetachedRun, runDetached, WORKER_COMMAND } from "./cli/detached-worker";
import { AgentError, EXIT_FAILED, EXIT_USAGE, errorMessage, LockBusyError } from "./common/errors";
import { describeLock, lockStatus } from "./state/lock";
import { createLogger } from "./common/log";
import { defaultConfigPath, loadSettings } from "./cli/load-settings";

/** One agent command: its contract (flags, usage, parser), how it runs, and whether in a detached worker. */
interface AgentCommand {
    spec: CommandSpec;
    /**
     * Runs in a detached worker that completes or rolls back even if the SSH session drops. A
     * function decides per run (rollback: a warm flip needs no worker).
     */
    detached: boolean | ((ctx: AgentContext, request: unknown) => Promise<boolean>);
    /** Parses and checks the command line; throws ArgsError. */
    parse(args: RawArgs): unknown;
    run(ctx: AgentContext, request: unknown, json: boolean): Promise<void>;
    /** Names the worker's log file (detached commands). */
    label?(request: unknown): string;
}

function command<R>(
    spec: CommandSpec,
    parse: (args: RawArgs) => R,
    run: (ctx: AgentContext, request: R, json: boolean) => Promise<void>,
    detached?: { label: (request: R) => string; unless?: (ctx: AgentContext, request: R) => Promise<boolean> },
): AgentCommand {
    const unless = detached?.unless;
    return {
        spec,
        detached: unless ? async (ctx, request) => !(await unless(ctx, request as R)) : !!detached,
        parse,
        run: (ctx, request, json) => run(ctx, request as R, json),
        label: detached ? (request) => detached.label(request as R) : undefined,
    };
}

const COMMANDS: readonly AgentCommand[] = [
    command(PREPARE, parsePrepareArgs, prepareCommand),
    command(ACTIVATE, parseActivateArgs, activateCommand, { label: (r) => `activate-${r.version}` }),
    command(MIGRATE, parseMigrateArgs, migrateCommand),
    command(ROLLBACK, parseRollbackArgs, rollbackCommand, { label: () => "rollback", unless: rollbackIsWarmFlip }),
    command(STATUS, parseStatusArgs, statusCommand),
    command(RETIRE, parseRetireArgs, retireCommand),
    command(PRUNE, parsePruneArgs, pruneCommand),
    command(WRITE_ENV, parseWriteEnvArgs, (ctx, r) => writeEnvCommand(ctx, r)),
    command(RELOAD_PROXY, parseReloadProxyArgs, reloadProxyCommand),
    command(ABORT, parseAbortArgs, abortCommand),
    command(MAINTENANCE, parseMaintenanceArgs, maintenanceCommand),
    command(DASHBOARD, parseDashboardArgs, dashboardCommand),
    command(RECOVER, parseRecoverArgs, recoverCommand),
    // Handled in main() like a detached command's foreground (it reports a worker's result).
    command(ATTACH, parseAttachArgs, async () => undefined),
];

/** The commands this agent runs, in the contract's order (a unit test compares them with COMMAND_SPECS). */
export const AGENT_COMMAND_NAMES: readonly string[] = COMMANDS.map((c) => c.spec.name);

function usage(): string {
    const lines = ["usage: agent.js <command> --config <deployDir>/agent.json [options]", ""];
    for (const c of COMMANDS) {
        lines.push(`  ${c.spec.name.padEnd(13)}${c.spec.synopsis}`);
        const how = typeof c.detached === "function" ? " (detached worker unless a warm flip)" : c.detached ? " (detached worker)" : "";
        lines.push(`  ${"".padEnd(13)}${c.spec.summary}${how}`);
        for (const f of c.spec.flags) lines.push(`  ${"".padEnd(15)}--${f.name}${f.value ? ` ${f.value}` : ""}: ${f.help}`);
    }
    lines.push("", "every command:");
    for (const f of GLOBAL_FLAGS) lines.push(`  --${f.name}${f.value ? ` ${f.value}` : ""}: ${f.help}`);
    lines.push("", "Exit codes: 0 ok, 1 failed (traffic restored), 2 usage, 3 another deploy holds the lock.", "");
    return lines.join("\n");
}

/** Foreground half of a detached command: fail fast, then stream the detached worker. */
async function foreground(ctx: AgentContext, cmd: AgentCommand, request: unknown, argv: string[], configPath: string, json: boolean): Promise<number> {
    // Usage errors (already parsed) and a held lock are reported at once, before any worker exists.
    const lock = lockStatus(ctx.layout.lockFile);
    if (lock.state === "held") throw new LockBusyError(`another deploy holds the lock ${ctx.layout.lockFile}: ${describeLock(lock.info)}`);

    const label = cmd.label?.(request) ?? cmd.spec.name;
    // The worker runs in deployDir: a relative --config must not change meaning (the last one wins).
    const workerArgv = [...argv, "--config", path.resolve(configPath)];
    const run = await runDetached(ctx.layout, label, workerArgv, json ? process.stderr : process.stdout, process.stderr, ctx.log, {
        // Where systemd runs the slots, it runs the worker too: a transient unit of its own.
        transientUnit: ctx.settings.processControl.kind === "systemd" && process.getuid?.() === 0,
    });
    return reportWorker(run, json);
}

/** A worker's outcome, reported the way its foreground would: the result (--json) and the exit code. */
function reportWorker(run: DetachedRun, json: boolean): number {
    let result: Record<string, unknown> | undefined;
    try {
        result = JSON.parse(fs.readFileSync(run.resultFile, "utf8"));
    } catch {
        result = undefined;
    }
    if (!result) {
        const message = `the deploy worker exited (code ${run.exitCode}) without a result; see ${run.logFile}. The next command that takes the lock (or agent recover) restores the committed state`;
        process.stderr.write(`error: ${message}\n`);
        result = { ok: false, error: message };
    }
    if (json) process.stdout.write(JSON.stringify({ ...result, log: run.logFile }) + "\n");
    return run.exitCode === 0 && result.ok === false ? EXIT_FAILED : run.exitCode;
}

/** attach: follow a worker an earlier (dropped) connection started, from where that one was. */
async function attach(ctx: AgentContext, req: AttachRequest, json: boolean): Promise<number> {
    const run = await attachWorker(ctx.layout, req.worker, req.skipLines, json ? process.stderr : process.stdout, process.stderr);
    return reportWorker(run, json);
}

export async function main(rawArgv: string[]): Promise<number> {
    let argv = rawArgv;
    let worker = false;
    let resultFile: string | undefined;
    if (argv[0] === WORKER_COMMAND) {
        worker = true;
        if (argv[1] !== "--result-file" || !argv[2]) {
            process.stderr.write("error: internal worker invocation without --result-file\n");
            return EXIT_USAGE;
        }
        resultFile = argv[2];
        argv = argv.slice(3);
    }

    let args: RawArgs;
    let json = false;
    let cmd: AgentCommand | undefined;
    let request: unknown;
    try {
        args = tokenize(argv);
        json = rawSwitch(args, "json");
        if (!args.command || args.command === "help" || args.flags.has("help")) {
            process.stdout.write(usage());
            return args.command ? 0 : EXIT_USAGE;
        }
        cmd = COMMANDS.find((c) => c.spec.name === args.command);
        if (!cmd) {
            process.stderr.write(`error: unknown command "${args.command}"\n${usage()}`);
            return EXIT_USAGE;
        }
        request = cmd.parse(args);
    } catch (e) {
        process.stderr.write(`error: ${errorMessage(e)}\n`);
        return EXIT_USAGE;
    }

    // In the worker everything goes to the log file; in the foreground, --json keeps stdout clean.
    const log = createLogger(json && !worker ? process.stderr : process.stdout);
    let abort: string | undefined;
    if (worker) {
        // The worker has no terminal; a hangup is never a reason to stop a shift half way.
        process.on("SIGHUP", () => log.warn("SIGHUP ignored: the deploy continues"));
        for (const sig of ["SIGTERM", "SIGINT"] as const) {
            process.on(sig, () => {
                if (!abort) log.warn(`${sig} received: aborting; traffic goes back to the old slot`);
                abort = `${sig} received`;
            });
        }
    }

    let ctx: AgentContext | undefined;
    try {
        const configPath = rawFlag(args, "config") ?? defaultConfigPath();
        const settings = loadSettings(configPath);
        ctx = createContext(settings, log, () => abort);
        if (cmd.spec.name === ATTACH.name) return await attach(ctx, request as AttachRequest, json);
        if (!worker) {
            const detached = typeof cmd.detached === "function" ? await cmd.detached(ctx, request) : cmd.detached;
            if (detached) return await foreground(ctx, cmd, request, argv, configPath, json);
            // A command that could have run detached runs here: a dropped session must not cut it short either.
            if (typeof cmd.detached === "function") process.on("SIGHUP", () => log.warn("SIGHUP ignored: the rollback continues"));
        }
        await cmd.run(ctx, request, json);
        const result = { ok: true, command: args.command, ...ctx.result };
        if (resultFile) fs.writeFileSync(resultFile, JSON.stringify(result) + "\n");
        else if (json && args.command !== "status") process.stdout.write(JSON.stringify(result) + "\n");
        return 0;
    } catch (e) {
        const code = e instanceof AgentError ? e.exitCode : e instanceof ArgsError ? EXIT_USAGE : EXIT_FAILED;
        const message = errorMessage(e);
        const result = { command: args.command, ...(ctx?.result ?? {}), ok: false, error: message, exitCode: code };
        if (resultFile) fs.writeFileSync(resultFile, JSON.stringify(result) + "\n");
        else if (json) process.stdout.write(JSON.stringify(result) + "\n");
        process.stderr.write(`error: ${message}\n`);
        if (!(e instanceof AgentError) && e instanceof Error && e.stack && process.env.SLOTSHIFT_DEBUG) process.stderr.write(`${e.stack}\n`);
        return code;
    }
}

if (require.main === module) {
    main(process.argv.slice(2)).then(
        (code) => {
            process.exitCode = code;
            // Never linger on a forgotten handle once the command is done.
            setTimeout(() => process.exit(code), 5000).unref();
        },
        (e) => {
            process.stderr.write(`error: ${errorMessage(e)}\n`);
            process.exit(EXIT_FAILED);
        },
    );
}
