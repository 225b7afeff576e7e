// The host-side deploy agent: `node agent.js <command> --config <deployDir>/agent.json [options]`.
// Bundled by scripts/build-agent.mjs into one file that runs on the host's Node 18+ with no install.
import * as fs from "fs";
import * as path from "path";
import { AgentCommandName, ArgsError, COMMANDS, parseCommand, RawArgs, RequestFor, tokenizeArgs, usageText } from "../lib/contract/commands";
import { formatAgentMessage } from "../lib/contract/messages";
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

/** How one agent command runs (its flags, usage and parser are the contract's, lib/contract/commands.ts), and whether in a detached worker. */
interface AgentCommand<C extends AgentCommandName = AgentCommandName> {
    name: C;
    /**
     * Runs in a detached worker that completes or rolls back even if the SSH session drops. A
     * function decides per run (rollback: a warm flip needs no worker).
     */
    detached: boolean | ((ctx: AgentContext, request: RequestFor<C>) => Promise<boolean>);
    run(ctx: AgentContext, request: RequestFor<C>, json: boolean): Promise<void>;
    /** Names the worker's log file (detached commands). */
    label?(request: RequestFor<C>): string;
}

function command<C extends AgentCommandName>(
    name: C,
    run: (ctx: AgentContext, request: RequestFor<C>, json: boolean) => Promise<void>,
    detached?: { label: (request: RequestFor<C>) => string; unless?: (ctx: AgentContext, request: RequestFor<C>) => Promise<boolean> },
): AgentCommand {
    const unless = detached?.unless;
    const runner: AgentCommand<C> = {
        name,
        detached: unless ? async (ctx, request) => !(await unless(ctx, request)) : !!detached,
        run,
        label: detached ? (request) => detached.label(request) : undefined,
    };
    return runner as unknown as AgentCommand;
}

/** How each of the contract's commands runs, in the contract's order. */
const RUNNERS: { [C in AgentCommandName]: AgentCommand } = {
    prepare: command("prepare", prepareCommand),
    activate: command("activate", activateCommand, { label: (r) => `activate-${r.version}` }),
    migrate: command("migrate", migrateCommand),
    rollback: command("rollback", rollbackCommand, { label: () => "rollback", unless: rollbackIsWarmFlip }),
    status: command("status", statusCommand),
    retire: command("retire", retireCommand),
    prune: command("prune", pruneCommand),
    "write-env": command("write-env", (ctx, r) => writeEnvCommand(ctx, r)),
    "reload-proxy": command("reload-proxy", reloadProxyCommand),
    abort: command("abort", abortCommand),
    maintenance: command("maintenance", maintenanceCommand),
    dashboard: command("dashboard", dashboardCommand),
    recover: command("recover", recoverCommand),
    // Handled in main() like a detached command's foreground (it reports a worker's result).
    attach: command("attach", async () => undefined),
};

/** The commands this agent runs, in the contract's order (a unit test compares them with the contract). */
export const AGENT_COMMAND_NAMES: readonly string[] = Object.keys(RUNNERS);

function usage(): string {
    return usageText((name) => {
        const c = RUNNERS[name as AgentCommandName];
        return typeof c.detached === "function" ? " (detached worker unless a warm flip)" : c.detached ? " (detached worker)" : "";
    });
}

/** Foreground half of a detached command: fail fast, then stream the detached worker. */
async function foreground(ctx: AgentContext, cmd: AgentCommand, request: unknown, argv: string[], configPath: string, json: boolean): Promise<number> {
    // Usage errors (already parsed) and a held lock are reported at once, before any worker exists.
    const lock = lockStatus(ctx.layout.lockFile);
    if (lock.state === "held") throw new LockBusyError(`another deploy holds the lock ${ctx.layout.lockFile}: ${describeLock(lock.info)}`);

    const label = cmd.label?.(request as never) ?? cmd.name;
    // The worker runs in deployDir: a relative --config must not change meaning (the last one wins).
    const workerArgv = [...argv, "--config", path.resolve(configPath)];
    const run = await runDetached(ctx.layout, label, workerArgv, json ? process.stderr : process.stdout, process.stderr, ctx.log, {
        // Where systemd runs the slots, it runs the worker too: a transient unit of its own.
        transientUnit: ctx.settings.processControl.kind === "systemd" && process.getuid?.() === 0,
    });
    return reportWorker(run, json);
}

/**
 * A worker's outcome, reported the way its foreground would: the result as the last line (a
 * message the program reads, lib/contract/messages.ts; with --json the plain result object) and
 * the exit code.
 */
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
    else process.stdout.write(formatAgentMessage({ ...result, type: "result", ok: result.ok === true, log: run.logFile }) + "\n");
    return run.exitCode === 0 && result.ok === false ? EXIT_FAILED : run.exitCode;
}

/** attach: follow a worker an earlier (dropped) connection started, from where that one was. */
async function attach(ctx: AgentContext, req: RequestFor<"attach">, json: boolean): Promise<number> {
    const run = await attachWorker(ctx.layout, req.worker, req.skipLines ?? 0, json ? process.stderr : process.stdout, process.stderr);
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
        args = tokenizeArgs(argv);
        json = args.flags.get("json") === true || args.flags.get("json") === "true";
        if (!args.command || args.command === "help" || args.flags.has("help")) {
            process.stdout.write(usage());
            return args.command ? 0 : EXIT_USAGE;
        }
        if (!Object.hasOwn(COMMANDS, args.command)) {
            process.stderr.write(`error: unknown command "${args.command}"\n${usage()}`);
            return EXIT_USAGE;
        }
        cmd = RUNNERS[args.command as AgentCommandName];
        request = parseCommand(cmd.name, args);
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
        const configFlag = args.flags.get("config");
        const configPath = typeof configFlag === "string" ? configFlag : defaultConfigPath();
        const settings = loadSettings(configPath);
        ctx = createContext(settings, log, () => abort);
        if (cmd.name === "attach") return await attach(ctx, request as RequestFor<"attach">, json);
        if (!worker) {
            const detached = typeof cmd.detached === "function" ? await cmd.detached(ctx, request as never) : cmd.detached;
            if (detached) return await foreground(ctx, cmd, request, argv, configPath, json);
            // A command that could have run detached runs here: a dropped session must not cut it short either.
            if (typeof cmd.detached === "function") process.on("SIGHUP", () => log.warn("SIGHUP ignored: the rollback continues"));
        }
        await cmd.run(ctx, request as never, json);
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
