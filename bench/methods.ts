// The four ways of taking the example app from v1 to v2 (and back) on one host behind the same
// NGINX and HAProxy. 1-3 are the naive scripts of the articles they come from, written as plainly
// as those articles describe them; 4 is this project's agent. Every method gets the same proxy
// settings (the project's rendered haproxy.cfg; for 1-3 only its backend's server lines differ).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as path from "path";
import { AgentRun, Stack } from "../test/integration/harness";

// eslint-disable-next-line @typescript-eslint/no-require-imports
const appCtl: AppCtl = require("./app-ctl.cjs");

interface AppCtl {
    start(spec: { name: string; dir: string; port: number; env: Record<string, string>; runDir: string; user?: string }): number;
    stop(spec: { name: string; runDir: string }): Promise<void>;
    readPid(runDir: string, name: string): number;
    alive(pid: number): boolean;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface MethodContext {
    stack: Stack;
    /** The app user (owner of the releases, role in PostgreSQL). */
    appUser: string;
    /** shared/env as the app sees it. */
    appEnv: Record<string, string>;
    /** haproxy.cfg as the project renders it (both slots). */
    projectConfig: string;
    /** The gated shift's plan (agent --plan). */
    plan: string;
    /** Progress lines. */
    log(line: string): void;
}

export interface Method {
    id: string;
    title: string;
    /** Brings v1 live from nothing running. Not measured. */
    setup(): Promise<void>;
    /** v1 -> v2; resolves when the method's own steps are done. */
    deploy(): Promise<void>;
    /** v2 -> v1 by the method's own means. */
    rollback(): Promise<void>;
    /** Stops whatever it started. */
    teardown(): Promise<void>;
}

// --- shared pieces -----------------------------------------------------------------------------

function releaseDir(ctx: MethodContext, version: string): string {
    return path.join(ctx.stack.layout.releasesDir, version);
}

/** current -> releases/<version>, replaced atomically (the seed article's step 5). */
function pointCurrent(ctx: MethodContext, version: string): void {
    const link = ctx.stack.layout.currentLink;
    const tmp = `${link}.tmp-${process.pid}`;
    fs.rmSync(tmp, { force: true });
    fs.symlinkSync(path.relative(path.dirname(link), releaseDir(ctx, version)), tmp);
    fs.renameSync(tmp, link);
}

/** The project's haproxy.cfg with its backend's server lines (and the slot-forcing rules that name them) replaced. */
export function naiveConfig(projectConfig: string, servers: { name: string; port: number }[]): string {
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

/** Polls the app's health path on its own port until 200 (a careful script's "wait until it is up"). */
async function waitHealthy(port: number, timeoutMs = 60000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((await probe(port, "/healthz")) !== 200) {
        if (Date.now() > deadline) throw new Error(`nothing healthy on port ${port} after ${timeoutMs} ms`);
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

function startApp(ctx: MethodContext, name: string, dir: string, port: number): void {
    appCtl.start({ name, dir, port, env: ctx.appEnv, runDir: ctx.stack.runDir, user: ctx.appUser });
}

const stopApp = (ctx: MethodContext, name: string) => appCtl.stop({ name, runDir: ctx.stack.runDir });

/** Every app process the bench may have started, stopped (teardown after a failure). */
export async function stopAll(ctx: MethodContext): Promise<void> {
    for (const name of ["single", "v1", "v2", "blue", "green"]) await stopApp(ctx, name);
}

function agentOk(run: AgentRun, what: string): void {
    if (run.code !== 0) throw new Error(`${what}: exit ${run.code}\n${run.stdout}\n${run.stderr}`);
}

// --- 1. restart in place -------------------------------------------------------------------------

/**
 * The seed article's method (gunicorn under supervisord): one app process on one port, run from
 * the `current` symlink; a deploy swaps the symlink and restarts the process. Restart is what
 * `supervisorctl restart` does: SIGTERM, wait for the exit, start, and count it RUNNING after
 * supervisord's default startsecs (1 s).
 */
export function restartInPlace(ctx: MethodContext): Method {
    const port = ctx.stack.ports.blue;
    const restart = async (version: string) => {
        pointCurrent(ctx, version);
        await stopApp(ctx, "single");
        startApp(ctx, "single", ctx.stack.layout.currentLink, port);
        await sleep(1000);
    };
    return {
        id: "restart",
        title: "1. restart in place (symlink + supervisorctl restart)",
        async setup() {
            pointCurrent(ctx, "v1");
            await naiveProxy(ctx, [{ name: "app", port }]);
            startApp(ctx, "single", ctx.stack.layout.currentLink, port);
            await waitHealthy(port);
            await waitServedBy(ctx, "v1");
        },
        deploy: () => restart("v2"),
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
        pointCurrent(ctx, version);
        startApp(ctx, "single", ctx.stack.layout.currentLink, port);
        await waitHealthy(port);
        fs.rmSync(flag, { force: true });
    };
    return {
        id: "stop-start",
        title: "2. stop, maintenance page, start",
        async setup() {
            fs.rmSync(flag, { force: true });
            pointCurrent(ctx, "v1");
            await naiveProxy(ctx, [{ name: "app", port }]);
            startApp(ctx, "single", ctx.stack.layout.currentLink, port);
            await waitHealthy(port);
            await waitServedBy(ctx, "v1");
        },
        deploy: () => swap("v2"),
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
    const move = async (from: string, to: string) => {
        startApp(ctx, to, releaseDir(ctx, to), ports[to]);
        await waitHealthy(ports[to]);
        reloadHaproxy(ctx, naiveConfig(ctx.projectConfig, [server(from), server(to)]));
        await sleep(holdMs);
        reloadHaproxy(ctx, naiveConfig(ctx.projectConfig, [server(to)]));
        await stopApp(ctx, from);
    };
    return {
        id: "haproxy-reload",
        title: "3. add server + reload, remove old + reload",
        async setup() {
            await naiveProxy(ctx, [server("v1")]);
            startApp(ctx, "v1", releaseDir(ctx, "v1"), ports.v1);
            await waitHealthy(ports.v1);
            await waitServedBy(ctx, "v1");
        },
        deploy: () => move("v1", "v2"),
        rollback: () => move("v2", "v1"),
        async teardown() {
            await stopApp(ctx, "v1");
            await stopApp(ctx, "v2");
        },
    };
}

// --- 4. the gated shift --------------------------------------------------------------------------

export const GATES = ["--max-error-ratio", "0.01", "--health-timeout", "60s", "--drain-timeout", "30s"];

/**
 * This project: `agent activate v2` (idle slot started, readiness, HAProxy checks, smoke tests,
 * weight steps with a gate each, drain, previous kept warm) and `agent rollback` (a weight flip
 * to the warm previous release).
 */
export function gatedShift(ctx: MethodContext): Method {
    const { stack } = ctx;
    return {
        id: "gated-shift",
        title: "4. gated shift (slotshift agent)",
        async setup() {
            // From nothing: no agent state, no saved HAProxy weights, the project's own config.
            for (const f of [stack.layout.stateFile, stack.layout.currentLink, stack.layout.haproxyStateFile]) fs.rmSync(f, { force: true });
            await reloadAndWait(ctx, ctx.projectConfig);
            agentOk(await stack.agent(["activate", "--version", "v1", "--plan", "100", ...GATES]), "activate v1");
            await waitServedBy(ctx, "v1");
        },
        async deploy() {
            agentOk(await stack.agent(["activate", "--version", "v2", "--plan", ctx.plan, ...GATES, "--keep-warm"]), "activate v2");
        },
        async rollback() {
            const run = await stack.agent(["rollback", "--json"]);
            agentOk(run, "rollback");
            const result = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}");
            if (result.mode !== "warm-flip") ctx.log(`  note: rollback mode ${result.mode}, not a warm flip`);
        },
        async teardown() {
            await stack.waitForLockFree(60000);
            await stopApp(ctx, "blue");
            await stopApp(ctx, "green");
        },
    };
}
