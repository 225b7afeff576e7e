// Runs release code as the app user outside the slot unit: the build, the check, the migration
// gate and migrate (and any later step that needs the release's code, e.g. a rehearsal).
//
// On a systemd host each run is a transient unit (systemd-run --wait --pipe) with the slot unit's
// sandbox (lib/app-sandbox.ts), in the low-priority deploy slice, with the app's environment read
// by systemd itself from shared/env (EnvironmentFile=). No root process ever gets an app-controlled
// variable in its environment, and stopping the unit (timeout, abort) kills its whole cgroup.
//
// Without systemd (processControl "command", the integration tests) the command runs directly,
// switched to the app user in the forked child right before exec, with a clean environment (a
// fixed PATH, the env file's values, the step's own variables), in a process group of its own that
// is killed on timeout and once the command exits, at the transient unit's nice level and I/O class
// (there is no deploy slice to weigh it down), its session's autogroup at that nice level too
// (agent/processes/cpu-scheduling.ts).
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { appSandbox, DEPLOY_PROCESS_PROPERTIES } from "../../lib/app-sandbox";
import { parseSystemdEnvFile, formatSystemdEnvFile } from "../../lib/env-lines";
import { HostLayout, transientEnvFile } from "../../lib/host-layout";
import { AgentSettings } from "../../lib/contract/agent-json";
import { autogroupNiceShellLine, setAutogroupNice } from "./cpu-scheduling";
import { AgentError } from "../common/errors";
import { Logger } from "../common/log";
import { isRoot, lookupUser, runArgv, RunResult } from "../common/run-command";

/** PATH of the app's processes outside systemd (the env file may set its own). */
const APP_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export type AppProcessBackend = "systemd" | "direct";

export interface AppProcessSpec {
    layout: HostLayout;
    backend: AppProcessBackend;
    /** Names the unit (<app>-deploy-<purpose>-<random>) and the log lines: "build", "migrate". */
    purpose: string;
    /** Run by /bin/sh -c. */
    command: string;
    cwd: string;
    /** The step's own variables (never secrets); they win over the app's env file. */
    env: Record<string, string>;
    /** The only places the process may write (ProtectSystem=strict everywhere else). */
    readWritePaths: readonly string[];
    /** On expiry the unit (or the process group) is killed and the result has timedOut set. */
    timeoutMs: number;
    log?: Logger;
    captureStdout?: boolean;
}

export interface AppProcess {
    /** systemd unit name, or "pid <n>" without systemd. */
    readonly name: string;
    readonly done: Promise<RunResult>;
    /** Kills the unit (or process group) now; `done` then resolves. */
    stop(): Promise<void>;
}

/** Which way release code runs here: as transient units where systemd manages the slots. */
export function appProcessBackend(settings: Pick<AgentSettings, "processControl">): AppProcessBackend {
    return settings.processControl.kind === "systemd" && isRoot() ? "systemd" : "direct";
}

/** Starts release code as the app user (see the file comment); await `.done` for its result. */
export function startAppProcess(spec: AppProcessSpec): AppProcess {
    return spec.backend === "systemd" ? startTransientUnit(spec) : startDirect(spec);
}

/** startAppProcess(spec).done */
export function runAppProcess(spec: AppProcessSpec): Promise<RunResult> {
    return startAppProcess(spec).done;
}

/** The deploy's nice level, for the unit's autogroup too. */
const DEPLOY_NICE = Number(DEPLOY_PROCESS_PROPERTIES.find((p) => p.name === "Nice")?.value ?? "15");

/** The systemd-run argv of a spec: exported for tests and for `systemd-analyze security` checks. */
export function transientUnitArgv(spec: AppProcessSpec, unit: string, envFile: string): string[] {
    const { layout } = spec;
    const props: string[] = [
        `User=${layout.appUser}`,
        `Group=${layout.appUser}`,
        // The tools root's own PATH finds (on NixOS /run/current-system/sw/bin, where the slot
        // unit's `path` points too); the app's env file may set its own (EnvironmentFile= wins).
        `Environment=PATH=${ROOT_PATH}`,
        // The app's secrets, then the step's variables (a later file wins), read by systemd.
        `EnvironmentFile=-${layout.envFile}`,
        `EnvironmentFile=${envFile}`,
        // systemd kills the whole cgroup when this is exceeded.
        `RuntimeMaxSec=${Math.max(1, Math.ceil(spec.timeoutMs / 1000))}s`,
        ...DEPLOY_PROCESS_PROPERTIES.map((p) => `${p.name}=${p.value}`),
        ...appSandbox(layout, { readWritePaths: spec.readWritePaths }).map((d) => `${d.name}=${d.value}`),
    ];
    return [
        "systemd-run",
        "--quiet",
        "--wait",
        "--pipe",
        "--collect",
        "--service-type=exec",
        `--unit=${unit}`,
        `--slice=${layout.deploySlice}`,
        `--working-directory=${spec.cwd}`,
        `--description=${layout.appName} deploy: ${spec.purpose}`,
        ...props.flatMap((p) => ["-p", p]),
        "--",
        "/bin/sh",
        "-c",
        // Nice= alone weighs nothing against the live slot where each service is an autogroup of
        // its own (agent/processes/cpu-scheduling.ts): the unit's session gets the same nice level first.
        `${autogroupNiceShellLine(DEPLOY_NICE)}\n${spec.command}`,
    ];
}

/** PATH of the agent's own tools: the deployer's session's (trusted), never the app's. */
const ROOT_PATH = process.env.PATH || APP_PATH;

/** A root process's environment for systemd-run: only where its tools are; nothing of the app's. */
const ROOT_ENV = { PATH: ROOT_PATH, LANG: "C.UTF-8" };

function startTransientUnit(spec: AppProcessSpec): AppProcess {
    const unit = `${spec.layout.appName}-deploy-${spec.purpose}-${crypto.randomBytes(4).toString("hex")}.service`;
    const envFile = transientEnvFile(spec.layout, unit);
    fs.mkdirSync(spec.layout.transientEnvDir, { recursive: true, mode: 0o700 });
    // O_EXCL|O_NOFOLLOW: a fresh root-only file, never something that was there before.
    const fd = fs.openSync(envFile, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
    try {
        fs.writeFileSync(fd, formatSystemdEnvFile(new Map(Object.entries(spec.env))));
    } finally {
        fs.closeSync(fd);
    }
    const stopUnit = async () => {
        await runArgv(["systemctl", "kill", "--signal=SIGKILL", unit], `systemctl kill ${unit}`, { env: ROOT_ENV, timeoutMs: 30_000 });
        await runArgv(["systemctl", "stop", unit], `systemctl stop ${unit}`, { env: ROOT_ENV, timeoutMs: 60_000 });
    };
    const t0 = Date.now();
    // The unit's RuntimeMaxSec= is the timeout; this one only catches a systemd-run that hangs.
    const done = runArgv(transientUnitArgv(spec, unit, envFile), spec.command, {
        env: ROOT_ENV,
        log: spec.log,
        captureStdout: spec.captureStdout,
        timeoutMs: spec.timeoutMs + 30_000,
    })
        .then(async (r) => {
            // systemd-run --wait reports the unit's exit status; a unit killed at RuntimeMaxSec= ends
            // with a failure once its time is up.
            const timedOut = r.timedOut || (r.code !== 0 && Date.now() - t0 >= spec.timeoutMs);
            if (r.timedOut) await stopUnit();
            return timedOut ? { ...r, timedOut: true } : r;
        })
        .finally(() => fs.rmSync(envFile, { force: true }));
    return { name: unit, done, stop: stopUnit };
}

/** ionice's class numbers for systemd's IOSchedulingClass= names. */
const IO_CLASSES: Record<string, string> = { realtime: "1", "best-effort": "2", idle: "3" };

/** An executable of the agent's own PATH (never the app's), or undefined. */
function rootTool(name: string): string | undefined {
    for (const dir of ROOT_PATH.split(":")) {
        const file = path.join(dir, name);
        try {
            fs.accessSync(file, fs.constants.X_OK);
            return file;
        } catch {
            // not here
        }
    }
    return undefined;
}

/**
 * The argv prefix that gives a direct command DEPLOY_PROCESS_PROPERTIES' nice level and I/O class
 * from its first instruction on (children inherit both). ionice -t: a kernel that refuses the class
 * still runs the command. Either tool missing: that part is left out.
 */
const directive = (name: string) => DEPLOY_PROCESS_PROPERTIES.find((p) => p.name === name)?.value;

function deployPriorityArgv(): string[] {
    const nice = rootTool("nice");
    const ionice = rootTool("ionice");
    const niceLevel = directive("Nice");
    const ioClass = IO_CLASSES[directive("IOSchedulingClass") ?? ""];
    return [...(nice && niceLevel ? [nice, "-n", niceLevel] : []), ...(ionice && ioClass ? [ionice, "-t", "-c", ioClass] : [])];
}

function startDirect(spec: AppProcessSpec): AppProcess {
    let ids: { uid: number; gid: number; home?: string } | undefined;
    if (isRoot()) {
        ids = lookupUser(spec.layout.appUser);
        if (!ids) throw new AgentError(`the app user ${spec.layout.appUser} does not exist on this host (host setup creates it)`);
    }
    const env: NodeJS.ProcessEnv = { PATH: APP_PATH, LANG: "C.UTF-8", HOME: ids?.home ?? process.env.HOME ?? "/" };
    let text = "";
    try {
        text = fs.readFileSync(spec.layout.envFile, "utf8");
    } catch {
        // No env file yet (write-env runs after the first prepare): run without it.
    }
    for (const [k, v] of parseSystemdEnvFile(text)) env[k] = v;
    Object.assign(env, spec.env);
    let pid = 0;
    // Its own session (runArgv detaches it): the shell puts that session's autogroup at the deploy's level first.
    const done = runArgv([...deployPriorityArgv(), "/bin/sh", "-c", `${autogroupNiceShellLine(DEPLOY_NICE)}\n${spec.command}`], spec.command, {
        cwd: spec.cwd,
        env,
        asIds: ids ? { uid: ids.uid, gid: ids.gid } : undefined,
        log: spec.log,
        captureStdout: spec.captureStdout,
        timeoutMs: spec.timeoutMs,
        killGroupOnExit: true,
        onSpawn: (p) => {
            pid = p;
            // And root sets it too: a write without CAP_SYS_ADMIN is refused while another autogroup
            // write on the machine is less than 100 ms old, and the shell line then says nothing.
            if (isRoot()) setAutogroupNice(p, DEPLOY_NICE);
        },
    });
    return {
        get name() {
            return `pid ${pid}`;
        },
        done,
        stop: async () => {
            if (!pid) return;
            try {
                process.kill(-pid, "SIGKILL");
            } catch {
                // Already gone.
            }
            await done.catch(() => undefined);
        },
    };
}
