// The host-side deploy agent: `node agent.js <command> --config <deployDir>/agent.json [options]`.
// Bundled by scripts/build-agent.mjs into one file that runs on the host's Node 18+ with no install.
import * as fs from "fs";
import * as path from "path";
import { boolFlag, checkFlags, ParsedArgs, parseArgs, stringFlag } from "./cli-args";
import { ACTIVATE_FLAGS, activateCommand, allowContractFlag, SHIFT_FLAGS, shiftOptions } from "./commands/activate";
import { migrateCommand } from "./commands/migrate";
import { prepareCommand } from "./commands/prepare";
import { pruneCommand } from "./commands/prune";
import { reloadProxyCommand } from "./commands/reload-proxy";
import { retireCommand } from "./commands/retire";
import { rollbackCommand } from "./commands/rollback";
import { statusCommand } from "./commands/status";
import { writeEnvCommand } from "./commands/write-env";
import { AgentContext, createContext } from "./context";
import { runDetached, WORKER_COMMAND } from "./detached";
import { AgentError, EXIT_FAILED, EXIT_USAGE, errorMessage, LockBusyError, UsageError } from "./errors";
import { describeLock, lockStatus } from "./lock";
import { createLogger } from "./log";
import { checkVersion, defaultConfigPath, loadSettings } from "./settings";

const USAGE = `usage: agent.js <command> --config <deployDir>/agent.json [options]

  prepare      --version V --source PATH|URL   unpack, build, check, link shared dirs, merge static
  activate     --version V [--plan 10:30,50:30,100:0] [--max-error-ratio 0.01]
               [--health-timeout 120s] [--drain-timeout 60s] [--keep-warm|--no-keep-warm]
               [--allow-contract MIGRATION:OPERATION:TARGET,...]
               migration-safety gate + migrations (once per version), then the gated shift
  migrate      --version V [--allow-contract ...] [--check-only]
               the same gate and migrations without a shift; --check-only migrates nothing
  rollback     [same shift options]            back to the previous release (instant when warm)
  status       [--json]                        slots, versions, weights, health, sessions, lock
  retire       --version V                     stop V's slot unless live (or warm previous); prune
  prune        [--keep N]                      delete old releases (never live or previous)
  write-env                                    KEY=value lines on stdin -> shared env file (0600)
  reload-proxy                                 save HAProxy runtime state, check config, reload

Exit codes: 0 ok, 1 failed (traffic restored), 2 usage, 3 another deploy holds the lock.
`;

const COMMANDS = new Set(["prepare", "activate", "migrate", "rollback", "status", "retire", "prune", "write-env", "reload-proxy"]);

async function runCommand(ctx: AgentContext, args: ParsedArgs, json: boolean): Promise<void> {
    switch (args.command) {
        case "prepare":
            return prepareCommand(ctx, args);
        case "activate":
            return activateCommand(ctx, args);
        case "migrate":
            return migrateCommand(ctx, args);
        case "rollback":
            return rollbackCommand(ctx, args);
        case "status":
            return statusCommand(ctx, args, json);
        case "retire":
            return retireCommand(ctx, args);
        case "prune":
            return pruneCommand(ctx, args);
        case "write-env":
            return writeEnvCommand(ctx, args);
        case "reload-proxy":
            return reloadProxyCommand(ctx, args);
        default:
            throw new UsageError(`unknown command "${args.command}"\n${USAGE}`);
    }
}

/** Foreground half of activate/rollback: fail fast, then stream the detached worker. */
async function foreground(ctx: AgentContext, args: ParsedArgs, argv: string[], configPath: string, json: boolean): Promise<number> {
    // Usage errors and a held lock are reported at once, before any worker exists.
    if (args.command === "activate") {
        checkFlags(args, ACTIVATE_FLAGS);
        checkVersion(stringFlag(args, "version") ?? args.positionals[0]);
        allowContractFlag(args);
    } else {
        checkFlags(args, SHIFT_FLAGS);
    }
    shiftOptions(args, ctx.settings.keepPreviousWarm);
    const lock = lockStatus(ctx.layout.lockFile);
    if (lock.state === "held") throw new LockBusyError(`another deploy holds the lock ${ctx.layout.lockFile}: ${describeLock(lock.info)}`);

    const label = `${args.command}${args.command === "activate" ? `-${stringFlag(args, "version") ?? args.positionals[0]}` : ""}`;
    // The worker runs in deployDir: a relative --config must not change meaning (the last one wins).
    const workerArgv = [...argv, "--config", path.resolve(configPath)];
    const run = await runDetached(ctx.layout, label, workerArgv, json ? process.stderr : process.stdout, process.stderr, ctx.log);
    let result: Record<string, unknown> | undefined;
    try {
        result = JSON.parse(fs.readFileSync(run.resultFile, "utf8"));
    } catch {
        result = undefined;
    }
    if (!result) {
        const message = `the deploy worker exited (code ${run.exitCode}) without a result; see ${run.logFile}. The next activate/rollback recovers any half-done shift`;
        process.stderr.write(`error: ${message}\n`);
        result = { ok: false, error: message };
    }
    if (json) process.stdout.write(JSON.stringify({ ...result, log: run.logFile }) + "\n");
    return run.exitCode === 0 && result.ok === false ? EXIT_FAILED : run.exitCode;
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

    let args: ParsedArgs;
    let json = false;
    try {
        args = parseArgs(argv);
        json = boolFlag(args, "json");
    } catch (e) {
        process.stderr.write(`error: ${errorMessage(e)}\n`);
        return EXIT_USAGE;
    }
    if (!args.command || args.command === "help" || args.flags.has("help")) {
        process.stdout.write(USAGE);
        return args.command ? 0 : EXIT_USAGE;
    }
    if (!COMMANDS.has(args.command)) {
        process.stderr.write(`error: unknown command "${args.command}"\n${USAGE}`);
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
        const configPath = stringFlag(args, "config") ?? defaultConfigPath();
        const settings = loadSettings(configPath);
        ctx = createContext(settings, log, () => abort);
        if ((args.command === "activate" || args.command === "rollback") && !worker) {
            return await foreground(ctx, args, argv, configPath, json);
        }
        await runCommand(ctx, args, json);
        const result = { ok: true, command: args.command, ...ctx.result };
        if (resultFile) fs.writeFileSync(resultFile, JSON.stringify(result) + "\n");
        else if (json && args.command !== "status") process.stdout.write(JSON.stringify(result) + "\n");
        return 0;
    } catch (e) {
        const code = e instanceof AgentError ? e.exitCode : EXIT_FAILED;
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
