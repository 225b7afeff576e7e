// A temporary instance of a release's code, for the migration rehearsal: the slots' start command on
// a spare loopback port, with an environment of its own, stopped and gone afterwards. On a systemd
// host it is a transient unit with the slot unit's hardening (read from the installed unit file, so
// the two never drift) and a low CPU weight; elsewhere (processControl "command": tests, hosts
// without systemd) a plain process group as the app user.
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import { shellJoin } from "../lib/shell-quote";
import { AgentContext } from "./context";
import { commandArgv, runCommand } from "./run-command";

export interface InstanceSpec {
    /** Names the unit: <app>-rehearsal-<name>. */
    name: string;
    cwd: string;
    /** The slots' start command (uses $PORT). */
    command: string;
    /** Files of KEY=value lines, later ones win (the shared app env, then the instance's own). */
    envFiles: string[];
    /** The environment for a plain process (the systemd unit reads envFiles itself). */
    env: NodeJS.ProcessEnv;
    asUser?: string;
}

export interface TemporaryInstance {
    /** Its output so far (last 200 lines). */
    output(): Promise<string[]>;
    /** Stops it and removes what it left; safe to call twice. */
    stop(): Promise<void>;
}

export type InstanceLauncher = (ctx: AgentContext, spec: InstanceSpec) => Promise<TemporaryInstance>;

/** A loopback port nobody listens on now. */
export function spareLoopbackPort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const addr = srv.address();
            const port = typeof addr === "object" && addr ? addr.port : 0;
            srv.close(() => resolve(port));
        });
    });
}

/** The instance launcher for this host: a transient systemd unit where the slots are systemd units. */
export function launcherFor(ctx: AgentContext): InstanceLauncher {
    return ctx.settings.processControl.kind === "systemd" ? systemdInstance : processInstance;
}

/** A process group as the app user; its output is kept in memory. */
export const processInstance: InstanceLauncher = async (ctx, spec) => {
    const [exe, ...args] = commandArgv(`exec ${spec.command}`, spec.asUser);
    const child: ChildProcess = spawn(exe, args, { cwd: spec.cwd, env: spec.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const lines: string[] = [];
    let partial = "";
    const onData = (chunk: Buffer) => {
        const parts = (partial + chunk.toString("utf8")).split("\n");
        partial = parts.pop() ?? "";
        for (const l of parts) {
            lines.push(l);
            if (lines.length > 200) lines.shift();
        }
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
    let stopped = false;
    return {
        output: async () => [...lines, ...(partial ? [partial] : [])],
        stop: async () => {
            if (stopped) return;
            stopped = true;
            if (child.exitCode !== null || child.signalCode !== null) return;
            const group = (signal: NodeJS.Signals) => {
                try {
                    process.kill(-child.pid!, signal);
                } catch {
                    // already gone
                }
            };
            group("SIGTERM");
            const timer = setTimeout(() => group("SIGKILL"), 15_000);
            await exited;
            clearTimeout(timer);
            ctx.log.info(`  rehearsal instance (pid ${child.pid}) stopped`);
        },
    };
};

/** [Service] settings of the slot unit that confine the app; the rehearsal unit gets the same. */
const HARDENING_KEYS = new Set([
    "User",
    "Group",
    "ProtectSystem",
    "ReadWritePaths",
    "InaccessiblePaths",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "DevicePolicy",
    "PrivateIPC",
    "PrivateMounts",
    "PrivateUsers",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "AmbientCapabilities",
    "RestrictAddressFamilies",
    "IPAddressDeny",
    "IPAddressAllow",
    "SystemCallFilter",
    "SystemCallErrorNumber",
    "SystemCallArchitectures",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "ProtectProc",
    "RestrictNamespaces",
    "RestrictSUIDSGID",
    "RestrictRealtime",
    "LockPersonality",
    "KeyringMode",
    "RemoveIPC",
    "UMask",
    "MemoryDenyWriteExecute",
    "ProcSubset",
]);

/** KEY=value assignments of the unit file's [Service] section that HARDENING_KEYS names, in order. */
export function hardeningProperties(unitText: string): string[] {
    const out: string[] = [];
    let section = "";
    for (const raw of unitText.split("\n")) {
        const line = raw.trim();
        if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
        const sec = /^\[(.+)\]$/.exec(line);
        if (sec) {
            section = sec[1];
            continue;
        }
        if (section !== "Service") continue;
        const eq = line.indexOf("=");
        if (eq > 0 && HARDENING_KEYS.has(line.slice(0, eq).trim())) out.push(`${line.slice(0, eq).trim()}=${line.slice(eq + 1).trim()}`);
    }
    return out;
}

/** A transient unit (systemd-run) with the slot unit's hardening; output goes to the journal. */
export const systemdInstance: InstanceLauncher = async (ctx, spec) => {
    const unit = `${ctx.settings.appName}-rehearsal-${spec.name}.service`;
    const hardening = hardeningProperties(fs.readFileSync(ctx.layout.unitFile, "utf8"));
    const argv = [
        "systemd-run",
        `--unit=${unit}`,
        "--quiet",
        "--collect",
        "--service-type=exec",
        `--working-directory=${spec.cwd}`,
        `--description=${ctx.settings.appName}: migration rehearsal instance`,
        // Low CPU weight: the live slots keep their share while the rehearsal runs.
        "--property=CPUWeight=20",
        "--property=StandardOutput=journal",
        "--property=StandardError=journal",
        "--property=KillMode=mixed",
        "--property=TimeoutStopSec=20",
        ...spec.envFiles.map((f) => `--property=EnvironmentFile=${f}`),
        ...hardening.map((p) => `--property=${p}`),
        "/bin/sh",
        "-c",
        `exec ${spec.command}`,
    ];
    const started = await runCommand(shellJoin(argv), { log: ctx.log, timeoutMs: 60_000 });
    if (started.code !== 0) throw new Error(`systemd-run of ${unit} failed (exit ${started.code}): ${started.tail.trim().split("\n").slice(-3).join(" / ")}`);
    let stopped = false;
    return {
        output: async () => {
            const r = await runCommand(shellJoin(["journalctl", "--no-pager", "-o", "cat", "-n", "200", "-u", unit]), {
                timeoutMs: 30_000,
                captureStdout: true,
            });
            return (r.stdout ?? "").split("\n");
        },
        stop: async () => {
            if (stopped) return;
            stopped = true;
            await runCommand(shellJoin(["systemctl", "stop", unit]), { log: ctx.log, timeoutMs: 60_000 });
            // A failed unit stays loaded despite --collect until it is reset.
            await runCommand(`${shellJoin(["systemctl", "reset-failed", unit])} 2>/dev/null || true`, { timeoutMs: 30_000 });
        },
    };
};
