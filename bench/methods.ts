// The four ways of taking the example app from v1 to v2 (and back) on one host behind the same
// NGINX and HAProxy. 1-3 are the naive scripts of the articles they come from, written as plainly
// as those articles describe them; 4 is this project, driven the way `pulumi up` drives it. Every
// method does the whole deploy: the new release unpacked and its migrations applied (a fresh
// database at v1's schema before each run), then the switch. Every method gets the same proxy
// settings (the project's rendered haproxy.cfg; for 1-3 only its backend's server lines differ).
//
// Each deploy marks its phases as it goes: preparation (from the start until traffic starts to
// move), shift (until all new requests go to v2), drain (until the old release is done with).
import { execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { migrationMarkerPath } from "../lib/host-layout";
import { AgentRun, Stack } from "../dev/loopback/harness";
import { Postgres } from "./postgres";
import { ProgramDriver } from "./program-driver";
import { TimedLine } from "./program-steps";

const appCtl: AppCtl = require("./app-ctl.cjs");

interface AppCtl {
    start(spec: { name: string; dir: string; port: number; env: Record<string, string>; runDir: string; user?: string }): number;
    stop(spec: { name: string; runDir: string }): Promise<void>;
    readPid(runDir: string, name: string): number;
    alive(pid: number): boolean;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const PYTHON = "/usr/bin/python3";

interface Archive {
    file: string;
    sha256: string;
}

export interface MethodContext {
    stack: Stack;
    /** The app user (owner of the releases, role in PostgreSQL). */
    appUser: string;
    /** shared/env as the app sees it. */
    appEnv: Record<string, string>;
    /** haproxy.cfg as the project renders it (both slots). */
    projectConfig: string;
    /** The release archives by version. */
    archives: Record<string, Archive>;
    pg: Postgres;
    /** The deployer's side: the program's steps over SSH to the host (program-driver.ts). */
    program: ProgramDriver;
    /** Progress lines. */
    log(line: string): void;
}

type PhaseMark = "shift" | "drain";

export interface Method {
    id: string;
    title: string;
    /** From nothing running: a fresh database at v1's schema, v1 live. Not measured. */
    setup(): Promise<void>;
    /** v1 -> v2, calling mark() as phases begin; resolves when the method's own steps are done. */
    deploy(mark: (phase: PhaseMark) => void): Promise<void>;
    /** v2 -> v1 by the method's own means. */
    rollback(): Promise<void>;
    /** Stops whatever it started. */
    teardown(): Promise<void>;
}

// --- shared pieces -----------------------------------------------------------------------------

/** Where the naive scripts unpack releases (the agent's releases/ is its own). */
function naiveDir(ctx: MethodContext, version: string): string {
    return path.join(ctx.stack.root, "naive", version);
}

/** current -> <dir>, replaced atomically (the seed article's step 5). */
function pointCurrent(ctx: MethodContext, dir: string): void {
    const link = ctx.stack.layout.currentLink;
    const tmp = `${link}.tmp-${process.pid}`;
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(path.relative(path.dirname(link), dir), tmp);
    fs.renameSync(tmp, link);
}

/** The articles' first steps: the archive unpacked into a fresh directory. */
function unpack(ctx: MethodContext, version: string): string {
    const dir = naiveDir(ctx, version);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    execFileSync("tar", ["-xzf", ctx.archives[version].file, "-C", dir]);
    return dir;
}

function appIds(ctx: MethodContext): { uid: number; gid: number } | undefined {
    if (process.getuid?.() !== 0) return undefined;
    for (const line of fs.readFileSync("/etc/passwd", "utf8").split("\n")) {
        const f = line.split(":");
        if (f[0] === ctx.appUser) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
    throw new Error(`no user ${ctx.appUser}`);
}

/** `python3 manage.py migrate --noinput` in `dir` as the app user, at whatever priority the script has (the default). */
function migrate(ctx: MethodContext, dir: string): Promise<void> {
    return new Promise((resolve, reject) => {
        let out = "";
        const child = spawn(PYTHON, ["manage.py", "migrate", "--noinput"], {
            cwd: dir,
            env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8", HOME: "/", ...ctx.appEnv },
            stdio: ["ignore", "pipe", "pipe"],
            ...appIds(ctx),
        });
        child.stdout.on("data", (c: Buffer) => (out += c.toString()));
        child.stderr.on("data", (c: Buffer) => (out += c.toString()));
        child.on("error", reject);
        child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`migrate in ${dir}: exit ${code}\n${out.slice(-2000)}`))));
    });
}

/** The project's haproxy.cfg with its backend's server lines (and the slot-forcing rules that name them) replaced. */
function naiveConfig(projectConfig: string, servers: { name: string; port: number }[]): string {
    const kept = projectConfig
        .split("\n")
        .filter((l) => !/^\s+(server |acl forced_|use-server |force-persist )/.test(l) && !/^\s+# Pre-traffic smoke tests/.test(l));
    while (kept.length && kept[kept.length - 1].trim() === "") kept.pop();
    return [...kept, ...servers.map((s) => `    server ${s.name} 127.0.0.1:${s.port} weight 100 check`), ""].join("\n");
}

/** What `systemctl reload haproxy` does: check the config, then SIGUSR2 to the master (asynchronous). */
function reloadHaproxy(ctx: MethodContext, config: string): void {
    fs.writeFileSync(ctx.stack.layout.haproxyConfigFile, config);
    execFileSync("/bin/sh", ["-c", ctx.stack.settings.haproxy.reloadCommand], { stdio: ["ignore", "pipe", "pipe"] });
}

/** Setup only: a reload, then wait until a new worker answers on the runtime socket. */
async function reloadAndWait(ctx: MethodContext, config: string): Promise<void> {
    const before = await ctx.stack.runtime.pid();
    reloadHaproxy(ctx, config);
    const deadline = Date.now() + 15000;
    while ((await ctx.stack.runtime.pid()) === before) {
        if (Date.now() > deadline) throw new Error("HAProxy did not reload within 15 s");
        await sleep(100);
    }
}

function probe(port: number, p: string): Promise<number> {
    return new Promise((resolve) => {
        const req = http.get({ host: "127.0.0.1", port, path: p, headers: { host: "app.test" }, agent: false, timeout: 5000 }, (res) => {
            res.resume();
            res.on("end", () => resolve(res.statusCode ?? 0));
        });
        req.on("timeout", () => req.destroy());
        req.on("error", () => resolve(0));
    });
}

/** A naive host's proxy: one config, no saved runtime state (that is the agent's). */
async function naiveProxy(ctx: MethodContext, servers: { name: string; port: number }[]): Promise<void> {
    fs.rmSync(ctx.stack.layout.haproxyStateFile, { force: true });
    await reloadAndWait(ctx, naiveConfig(ctx.projectConfig, servers));
}

/** The last lines of an app process's log, for an error message. */
function appLogTail(ctx: MethodContext, name: string): string {
    try {
        return fs
            .readFileSync(path.join(ctx.stack.runDir, `app-${name}.log`), "utf8")
            .trim()
            .split("\n")
            .slice(-5)
            .join("\n");
    } catch {
        return "(no log)";
    }
}

/** Polls the app's health path on its own port until 200 (a careful script's "wait until it is up"). */
async function waitHealthy(ctx: MethodContext, name: string, port: number, timeoutMs = 60000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await probe(port, "/healthz")) !== 200) {
        if (Date.now() > deadline) throw new Error(`nothing healthy on port ${port} after ${timeoutMs} ms; ${name}'s log ends:\n${appLogTail(ctx, name)}`);
        await sleep(50);
    }
}

/** Resolves when a request through NGINX is answered 200 by `version`. */
export async function waitServedBy(ctx: MethodContext, version: string, timeoutMs = 120000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const r = await ctx.stack.httpsGet("/", 5000).catch(() => ({ status: 0, version: "-" }));
        if (r.status === 200 && r.version === version) return;
        if (Date.now() > deadline) throw new Error(`the site does not answer 200 from ${version} after ${timeoutMs} ms (last: ${r.status} ${r.version})`);
        await sleep(50);
    }
}

function startApp(ctx: MethodContext, name: string, dir: string, port: number, version: string): void {
    appCtl.start({ name, dir, port, env: { ...ctx.appEnv, RELEASE_VERSION: version }, runDir: ctx.stack.runDir, user: ctx.appUser });
}

const stopApp = (ctx: MethodContext, name: string) => appCtl.stop({ name, runDir: ctx.stack.runDir });

/** Every app process the bench may have started, stopped (teardown after a failure). */
export async function stopAll(ctx: MethodContext): Promise<void> {
    for (const name of ["single", "v1", "v2", "blue", "green"]) await stopApp(ctx, name);
}

/** Setup of the naive methods: a fresh database migrated by v1, v1 unpacked. */
async function naiveBase(ctx: MethodContext): Promise<string> {
    ctx.pg.reset();
    const v1 = unpack(ctx, "v1");
    await migrate(ctx, v1);
    return v1;
}

/** The naive preparation: v2 unpacked and its migrations applied, while v1 serves. */
async function naivePrepare(ctx: MethodContext): Promise<string> {
    const v2 = unpack(ctx, "v2");
    await migrate(ctx, v2);
    return v2;
}

// --- 1. restart in place -------------------------------------------------------------------------

/**
 * The seed article's method (gunicorn under supervisord): one app process on one port, run from
 * the `current` symlink; a deploy unpacks and migrates, swaps the symlink and restarts the
 * process. Restart is what `supervisorctl restart` does: SIGTERM, wait for the exit, start, and
 * count it RUNNING after supervisord's default startsecs (1 s).
 */
export function restartInPlace(ctx: MethodContext): Method {
    const port = ctx.stack.ports.blue;
    const restart = async (version: string) => {
        pointCurrent(ctx, naiveDir(ctx, version));
        await stopApp(ctx, "single");
        startApp(ctx, "single", ctx.stack.layout.currentLink, port, version);
        await sleep(1000);
    };
    return {
        id: "restart",
        title: "1. restart in place (symlink + supervisorctl restart)",
        async setup() {
            const v1 = await naiveBase(ctx);
            pointCurrent(ctx, v1);
            await naiveProxy(ctx, [{ name: "app", port }]);
            startApp(ctx, "single", ctx.stack.layout.currentLink, port, "v1");
            await waitHealthy(ctx, "single", port);
            await waitServedBy(ctx, "v1");
        },
        async deploy(mark) {
            await naivePrepare(ctx);
            mark("shift");
            await restart("v2");
            mark("drain");
        },
        rollback: () => restart("v1"),
        teardown: () => stopApp(ctx, "single"),
    };
}

// --- 2. stop, maintenance page, start -----------------------------------------------------------

/**
 * The "maintenance page while the container restarts" method: NGINX serves the maintenance page
 * (the project's flag file: 503 + maintenance.html) while the one app process is stopped and the
 * new one starts; the flag goes once the new process answers its health path.
 */
export function stopStart(ctx: MethodContext): Method {
    const port = ctx.stack.ports.blue;
    const flag = path.join(ctx.stack.layout.deployDir, "maintenance");
    const swap = async (version: string) => {
        fs.writeFileSync(flag, "");
        await stopApp(ctx, "single");
        pointCurrent(ctx, naiveDir(ctx, version));
        startApp(ctx, "single", ctx.stack.layout.currentLink, port, version);
        await waitHealthy(ctx, "single", port);
        fs.rmSync(flag, { force: true });
    };
    return {
        id: "stop-start",
        title: "2. stop, maintenance page, start",
        async setup() {
            fs.rmSync(flag, { force: true });
            const v1 = await naiveBase(ctx);
            pointCurrent(ctx, v1);
            await naiveProxy(ctx, [{ name: "app", port }]);
            startApp(ctx, "single", ctx.stack.layout.currentLink, port, "v1");
            await waitHealthy(ctx, "single", port);
            await waitServedBy(ctx, "v1");
        },
        async deploy(mark) {
            await naivePrepare(ctx);
            mark("shift");
            await swap("v2");
            mark("drain");
        },
        rollback: () => swap("v1"),
        async teardown() {
            fs.rmSync(flag, { force: true });
            await stopApp(ctx, "single");
        },
    };
}

// --- 3. add a server line and reload, remove the old one and reload ------------------------------

/**
 * The other seed article's first idea: the new release on a new port, a server line for it added
 * to haproxy.cfg and a reload (both serve), then the old line removed and a reload, then the old
 * process stopped. The script waits for the new process's health path before adding it, and holds
 * both for `holdMs`; HAProxy reloads are asynchronous, as `systemctl reload haproxy` is.
 */
export function haproxyReload(ctx: MethodContext, holdMs: number): Method {
    const ports: Record<string, number> = { v1: ctx.stack.ports.blue, v2: ctx.stack.ports.green };
    const server = (v: string) => ({ name: `app_${ports[v]}`, port: ports[v] });
    const move = async (from: string, to: string, mark: (phase: PhaseMark) => void = () => undefined) => {
        startApp(ctx, to, naiveDir(ctx, to), ports[to], to);
        await waitHealthy(ctx, to, ports[to]);
        mark("shift");
        reloadHaproxy(ctx, naiveConfig(ctx.projectConfig, [server(from), server(to)]));
        await sleep(holdMs);
        reloadHaproxy(ctx, naiveConfig(ctx.projectConfig, [server(to)]));
        mark("drain");
        await stopApp(ctx, from);
    };
    return {
        id: "haproxy-reload",
        title: "3. add server + reload, remove old + reload",
        async setup() {
            await naiveBase(ctx);
            await naiveProxy(ctx, [server("v1")]);
            startApp(ctx, "v1", naiveDir(ctx, "v1"), ports.v1, "v1");
            await waitHealthy(ctx, "v1", ports.v1);
            await waitServedBy(ctx, "v1");
        },
        async deploy(mark) {
            await naivePrepare(ctx);
            await move("v1", "v2", mark);
        },
        rollback: () => move("v2", "v1"),
        async teardown() {
            await stopApp(ctx, "v1");
            await stopApp(ctx, "v2");
        },
    };
}

// --- 4. the gated shift --------------------------------------------------------------------------

function agentOk(run: AgentRun, what: string): void {
    if (run.code !== 0) throw new Error(`${what}: exit ${run.code}\n${run.stdout}\n${run.stderr}`);
}

/** The first weight step of the shift, and the step that gives the new release all traffic. */
const FIRST_STEP = /activate: .*\bstep 1\/\d+ \(\d+%\): /;
const FULL_STEP = /activate: .*\bstep \d+\/\d+ \(100%\): /;

/**
 * This project, as `pulumi up` runs it for a new releaseVersion (program-steps.ts): the Release
 * (write-env, upload, `agent prepare`: check, seal, static), the TrafficShift (`agent activate`:
 * migration gate, rehearsal, migrate, the idle slot started at low priority, readiness, HAProxy
 * checks, smoke tests, weight steps with a gate each, drain, previous kept warm), then the old
 * TrafficShift's delete (`agent retire v1`). Rolled back by hand over SSH (`agent rollback`: a
 * weight flip to the warm previous release).
 */
export function gatedShift(ctx: MethodContext, lines: TimedLine[] = []): Method {
    const { stack } = ctx;
    const { layout } = stack;
    const onLine = (l: TimedLine) => lines.push(l);
    return {
        id: "gated-shift",
        title: "4. gated shift (slotshift, as pulumi up runs it)",
        async setup() {
            // From nothing: a fresh database, no agent state, no saved HAProxy weights, the
            // project's own config; v2 neither prepared nor migrated.
            ctx.pg.reset();
            for (const f of [
                layout.stateFile,
                layout.currentLink,
                layout.haproxyStateFile,
                migrationMarkerPath(layout, "v1"),
                migrationMarkerPath(layout, "v2"),
            ]) {
                fs.rmSync(f, { force: true });
            }
            for (const d of [path.join(layout.releasesDir, "v2"), path.join(layout.buildsDir, "v2")]) fs.rmSync(d, { recursive: true, force: true });
            await reloadAndWait(ctx, ctx.projectConfig);
            agentOk(await stack.agent(["activate", "--version", "v1", "--shift-plan", "100", "--min-requests-per-step", "0"]), "activate v1");
            await waitServedBy(ctx, "v1");
        },
        async deploy(mark) {
            lines.length = 0;
            let marked = 0;
            await ctx.program.deploy({ version: "v2", archive: ctx.archives.v2.file, sha256: ctx.archives.v2.sha256, previous: "v1" }, (l) => {
                onLine(l);
                if (marked === 0 && FIRST_STEP.test(l.line)) {
                    mark("shift");
                    marked = 1;
                }
                if (marked === 1 && FULL_STEP.test(l.line)) {
                    mark("drain");
                    marked = 2;
                }
            });
            if (marked < 2)
                throw new Error(`the activation printed no ${marked ? "100 %" : "first"} weight step line:\n${lines.map((l) => l.line).join("\n")}`);
        },
        async rollback() {
            const result = await ctx.program.rollback(onLine);
            if (result.mode !== "warm-flip") ctx.log(`  note: rollback mode ${result.mode}, not a warm flip`);
        },
        async teardown() {
            await stack.waitForLockFree(60000);
            await stopApp(ctx, "blue");
            await stopApp(ctx, "green");
        },
    };
}
