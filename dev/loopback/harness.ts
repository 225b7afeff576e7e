// A real single-host stack on loopback for the agent: HAProxy (master-worker) and NGINX started from
// the project's own rendered configs, the agent bundle installed under deployDir as on a host, slot
// processes run by fixtures/slot-ctl.cjs (processControl "command": no systemd here), free ports
// outside the kernel's ephemeral range (free-ports.ts says why). Only processes this harness starts are ever signalled, by their pid.
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { AgentSettings, buildAgentSettings } from "../../program/agent-settings";
import { HAPROXY_STOP_SIGNAL } from "../../lib/haproxy-stop";
import { renderProxyFiles, renderRollbackScript } from "../../program/host-files";
import { HostLayout, Slot } from "../../lib/host-layout";
import { buildTemplateContext, TemplateContext } from "../../program/template-context";
import { HaproxyApi } from "../../agent/proxy/haproxy-api";
import { freePorts } from "./free-ports";

const REPO = path.resolve(__dirname, "..", "..");
const FIXTURES = path.join(__dirname, "fixtures");
/** Node that runs the agent: the host's is 18+; SLOTSHIFT_AGENT_NODE=/path/to/node18 checks the bundle on it. */
const AGENT_NODE = process.env.SLOTSHIFT_AGENT_NODE || process.execPath;

export interface Behaviour {
    failHealth?: boolean;
    errorEvery?: number;
    bootDelayMs?: number;
    delayMs?: number;
    failAfter?: number;
}

export interface AgentRun {
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    ms: number;
}

/** A running agent process whose output can be waited on line by line. */
export class RunningAgent {
    stdout = "";
    stderr = "";
    readonly started = Date.now();
    readonly done: Promise<AgentRun>;
    private waiters: { re: RegExp; resolve: (line: string) => void }[] = [];

    constructor(readonly child: ChildProcess) {
        const feed = (chunk: Buffer, which: "stdout" | "stderr") => {
            this[which] += chunk.toString("utf8");
            for (const w of [...this.waiters]) {
                const m = this.output()
                    .split("\n")
                    .find((l) => w.re.test(l));
                if (m) {
                    this.waiters = this.waiters.filter((x) => x !== w);
                    w.resolve(m);
                }
            }
        };
        child.stdout?.on("data", (c: Buffer) => feed(c, "stdout"));
        child.stderr?.on("data", (c: Buffer) => feed(c, "stderr"));
        this.done = new Promise((resolve) => {
            child.on("close", (code, signal) => resolve({ code, signal, stdout: this.stdout, stderr: this.stderr, ms: Date.now() - this.started }));
        });
    }

    output(): string {
        return this.stdout + this.stderr;
    }

    waitFor(re: RegExp, timeoutMs = 60_000): Promise<string> {
        const found = this.output()
            .split("\n")
            .find((l) => re.test(l));
        if (found) return Promise.resolve(found);
        return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no line matching ${re} within ${timeoutMs} ms; output so far:\n${this.output()}`)), timeoutMs);
            this.waiters.push({
                re,
                resolve: (l) => {
                    clearTimeout(timer);
                    resolve(l);
                },
            });
            void this.done.then(() => {
                clearTimeout(timer);
                const line = this.output()
                    .split("\n")
                    .find((l) => re.test(l));
                if (line) resolve(line);
                else reject(new Error(`agent exited without a line matching ${re}; output:\n${this.output()}`));
            });
        });
    }
}

export { freePorts };

export function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

/** An agent run as a test failure shows it: exit, stdout, stderr. */
export function describeRun(run: AgentRun): string {
    return `exit ${run.code}${run.signal ? ` (${run.signal})` : ""}\n--- stdout\n${run.stdout}\n--- stderr\n${run.stderr}`;
}

/** A measured figure in the test output. */
export function figures(line: string): void {
    console.log(`      figures: ${line}`);
}

/** The app the slots run, when it is not the test app fixture (the benchmark runs the example Django app). */
export interface StackApp {
    /** The slot command line, as in stack config (rendered into the templates only). */
    startCommand: string;
    healthPath: string;
    smokePaths: string[];
    buildCommand?: string;
    checkCommand?: string;
    /** Response header naming the release that answered. */
    versionHeader: string;
    /** processControl start/stop (and optionally pids) commands ({slot} is filled in by the agent). */
    control(appRoot: string, runDir: string): { start: string; stop: string; pids?: string };
    /** The release's migrate command (agent.json migrations.command); none: no migration step. */
    migrateCommand?: string;
    /** Default true (as in the stack config): the migration rehearsal runs before the real migration. */
    migrationRehearsal?: boolean;
}

export interface StackOptions {
    appName: string;
    keepPreviousWarm: boolean;
    /** Default: the test app fixture (fixtures/test-app.cjs under fixtures/slot-ctl.cjs). */
    app?: StackApp;
}

/** The stack config keys a slot depends on (lib/slot-activation.ts) that a test may change on a live stack. */
export interface StackConfig {
    healthPath: string;
    startCommand: string;
    slotBasePort: number;
}

export class Stack {
    readonly root: string;
    config!: StackConfig;
    private nginxConf = "";
    layout!: HostLayout;
    settings!: AgentSettings;
    ports!: { blue: number; green: number; haproxy: number; http: number; https: number; trafficLog: number };
    runtime!: HaproxyApi;
    readonly runDir: string;
    readonly postsLog: string;
    private haproxy?: ChildProcess;
    private nginx?: ChildProcess;
    private haproxyPidFile = "";
    private nginxPidFile = "";
    readonly domain = "app.test";
    private agents: RunningAgent[] = [];

    constructor(readonly opts: StackOptions) {
        this.root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-it-"));
        // The app user (when root) must traverse the tree to build its release.
        fs.chmodSync(this.root, 0o755);
        this.runDir = path.join(this.root, "run", "slots");
        this.postsLog = path.join(this.root, "posts.log");
    }

    async start(): Promise<void> {
        const { base, others } = await freePorts(4);
        // The traffic log is UDP; a port free for TCP here is free for UDP as well in practice.
        const [haproxyPort, httpPort, httpsPort, trafficLogPort] = others;
        this.ports = { blue: base, green: base + 1, haproxy: haproxyPort, http: httpPort, https: httpsPort, trafficLog: trafficLogPort };
        this.config = {
            healthPath: this.opts.app?.healthPath ?? "/healthz",
            startCommand: this.opts.app?.startCommand ?? "node app.cjs --port $PORT",
            slotBasePort: base,
        };
        const ctx = this.templateContext();
        this.layout = ctx.layout;
        const files = renderProxyFiles(ctx);
        for (const dir of [
            path.dirname(this.layout.haproxySocket),
            path.dirname(this.layout.haproxyStateFile),
            path.dirname(this.layout.haproxyConfigFile),
            path.dirname(this.layout.nginxSiteFile),
            this.layout.maintenanceDir,
            this.layout.tlsDir,
            this.runDir,
            path.join(this.root, "var", "log"),
            path.join(this.root, "var", "cache", "nginx"),
            this.layout.deployDir,
        ]) {
            fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
        }
        fs.writeFileSync(this.layout.haproxyConfigFile, files.haproxyCfg);
        fs.writeFileSync(this.layout.nginxSiteFile, files.nginxSite);
        fs.writeFileSync(this.layout.nginxLiveSlotFile, files.nginxLiveSlotPlaceholder);
        fs.writeFileSync(this.layout.haproxyHealthPathMap, files.healthMapsPlaceholder.paths);
        fs.writeFileSync(this.layout.haproxyHealthHostMap, files.healthMapsPlaceholder.hosts);
        fs.writeFileSync(path.join(this.layout.maintenanceDir, "maintenance.html"), files.maintenancePage);
        execFileSync(
            "openssl",
            [
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                `/CN=${this.domain}`,
                "-keyout",
                ctx.tls.keyFile,
                "-out",
                ctx.tls.certFile,
            ],
            { stdio: "ignore" },
        );

        // HAProxy in master-worker mode; a reload is SIGUSR2 to the master pid recorded here.
        this.haproxyPidFile = path.join(this.root, "run", "haproxy.pid");
        execFileSync("haproxy", ["-c", "-q", "-f", this.layout.haproxyConfigFile]);
        this.spawnHaproxy();
        this.runtime = new HaproxyApi(this.layout.haproxySocket, "app", { retryForMs: 15000 });
        await this.runtime.pid();

        const nginxConf = path.join(this.root, "etc", "nginx", "nginx.conf");
        this.nginxPidFile = path.join(this.root, "run", "nginx.pid");
        const logDir = path.join(this.root, "var", "log");
        const cache = path.join(this.root, "var", "cache", "nginx");
        fs.writeFileSync(
            nginxConf,
            [
                // Workers as root here: the temp tree is root's, and this is a throwaway test server.
                ...(process.getuid?.() === 0 ? ["user root;"] : []),
                "worker_processes 1;",
                `pid ${this.nginxPidFile};`,
                `error_log ${logDir}/nginx-error.log notice;`,
                "events { worker_connections 1024; }",
                "http {",
                `    access_log ${logDir}/nginx-access.log;`,
                `    client_body_temp_path ${cache}/body;`,
                `    proxy_temp_path ${cache}/proxy;`,
                `    fastcgi_temp_path ${cache}/fastcgi;`,
                `    uwsgi_temp_path ${cache}/uwsgi;`,
                `    scgi_temp_path ${cache}/scgi;`,
                // The load generator keeps its connections for the whole run; NGINX's default of
                // closing after 1000 requests would race its next write.
                "    keepalive_requests 1000000;",
                `    include ${this.layout.nginxSiteFile};`,
                "}",
                "",
            ].join("\n"),
        );
        execFileSync("nginx", ["-t", "-q", "-c", nginxConf, "-p", this.root, "-g", "daemon off;"]);
        const nlog = fs.openSync(path.join(logDir, "nginx.out"), "a");
        this.nginx = spawn("nginx", ["-c", nginxConf, "-p", this.root, "-g", "daemon off;"], { stdio: ["ignore", nlog, nlog] });
        fs.closeSync(nlog);
        await this.waitForPort(httpsPort);

        // The agent as on a host: bundle and settings under deployDir.
        fs.writeFileSync(this.postsLog, "", { mode: 0o666 });
        fs.chmodSync(this.postsLog, 0o666);
        this.nginxConf = nginxConf;
        this.settings = this.agentSettings();
        fs.writeFileSync(this.layout.agentConfigPath, JSON.stringify(this.settings, null, 2));
        fs.copyFileSync(path.join(REPO, "dist", "agent.js"), this.layout.agentPath);
        // The rollback command beside it, as the agent install puts it there.
        fs.writeFileSync(this.layout.rollbackScript, renderRollbackScript(this.layout, { backend: "app" }), { mode: 0o700 });
    }

    private templateContext(): TemplateContext {
        return buildTemplateContext({
            appName: this.opts.appName,
            domain: this.domain,
            healthPath: this.config.healthPath,
            startCommand: this.config.startCommand,
            tlsMode: "self-signed",
            slotBasePort: this.config.slotBasePort,
            haproxyPort: this.ports.haproxy,
            httpPort: this.ports.http,
            httpsPort: this.ports.https,
            trafficLogPort: this.ports.trafficLog,
            root: this.root,
            systemService: false,
        });
    }

    private agentSettings(): AgentSettings {
        const slotCtl = path.join(FIXTURES, "slot-ctl.cjs");
        // As root the slots run as the app user, as User= does under systemd; they append to the posts log.
        const asRoot = process.getuid?.() === 0;
        const ctl = (cmd: string) =>
            `${process.execPath} ${slotCtl} ${cmd} {slot} ${this.layout.appRoot} ${this.runDir}${asRoot ? ` ${this.opts.appName}` : ""}`;
        const app = this.opts.app;
        return buildAgentSettings(
            {
                appName: this.opts.appName,
                domain: this.domain,
                healthPath: this.config.healthPath,
                startCommand: this.config.startCommand,
                smokePaths: app?.smokePaths ?? ["/", "/static-smoke"],
                slotBasePort: this.config.slotBasePort,
                haproxyPort: this.ports.haproxy,
                buildCommand: app ? app.buildCommand : 'test -f app.cjs && echo "built $RELEASE_VERSION by $(id -u)" > "$SLOTSHIFT_BUILD_DIR/BUILT"',
                checkCommand: app ? app.checkCommand : `${process.execPath} --check app.cjs`,
                ...(app?.migrateCommand ? { migrateCommand: app.migrateCommand, migrationRehearsal: app.migrationRehearsal ?? true } : {}),
                keepPreviousWarm: this.opts.keepPreviousWarm,
                releasesToKeep: 5,
            },
            {
                trafficLogPort: this.ports.trafficLog,
                root: this.root,
                processControl: { kind: "command", ...(app ? app.control(this.layout.appRoot, this.runDir) : { start: ctl("start"), stop: ctl("stop") }) },
                reloadCommand: `haproxy -c -q -f ${this.layout.haproxyConfigFile} && kill -USR2 $(cat ${this.haproxyPidFile})`,
                nginxReloadCommand: `nginx -t -q -c ${this.nginxConf} -p ${this.root} && kill -HUP $(cat ${this.nginxPidFile})`,
            },
        );
    }

    /**
     * A stack config change as `pulumi up` applies it before any deploy step: the host setup writes
     * the new agent.json, the proxy step writes haproxy.cfg and, when it changed, reloads HAProxy
     * through the agent. The slots' ports come with a new slotBasePort (free ones when asked for).
     * Returns the proxy reload's run, or undefined when haproxy.cfg did not change.
     */
    async reconfigure(change: Partial<StackConfig> & { newSlotPorts?: boolean }): Promise<AgentRun | undefined> {
        const { newSlotPorts, ...rest } = change;
        this.config = { ...this.config, ...rest };
        if (newSlotPorts) this.config.slotBasePort = (await freePorts(0)).base;
        this.ports = { ...this.ports, blue: this.config.slotBasePort, green: this.config.slotBasePort + 1 };
        this.settings = this.agentSettings();
        fs.writeFileSync(this.layout.agentConfigPath, JSON.stringify(this.settings, null, 2));
        const cfg = renderProxyFiles(this.templateContext()).haproxyCfg;
        if (fs.readFileSync(this.layout.haproxyConfigFile, "utf8") === cfg) return undefined;
        fs.writeFileSync(this.layout.haproxyConfigFile, cfg);
        const run = await this.agent(["reload-proxy"]);
        if (run.code !== 0) throw new Error(`reload-proxy after the config change failed: ${describeRun(run)}`);
        return run;
    }

    private async waitForPort(port: number): Promise<void> {
        const deadline = Date.now() + 10000;
        for (;;) {
            const ok = await new Promise<boolean>((resolve) => {
                const s = net.connect(port, "127.0.0.1");
                s.on("connect", () => {
                    s.destroy();
                    resolve(true);
                });
                s.on("error", () => resolve(false));
            });
            if (ok) return;
            if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
            await sleep(100);
        }
    }

    private spawnHaproxy(): void {
        const hlog = fs.openSync(path.join(this.root, "var", "log", "haproxy.log"), "a");
        this.haproxy = spawn("haproxy", ["-W", "-f", this.layout.haproxyConfigFile, "-p", this.haproxyPidFile], { stdio: ["ignore", hlog, hlog] });
        fs.closeSync(hlog);
    }

    /**
     * HAProxy goes away and, like systemd's Restart= (or the start half of a restart), is started
     * again after `downMs` from its config and saved server state. Resolves once it answers again.
     *   "crash"    master and worker SIGKILLed, as systemd's KillMode=mixed leaves nothing behind;
     *   "restart"  `systemctl restart haproxy`: ExecStop saves the runtime state first, then the
     *              unit's KillSignal (HAPROXY_STOP_SIGNAL, the Debian drop-in's and the NixOS
     *              unit's) reaches the master.
     */
    async crashHaproxy(how: "crash" | "restart", downMs: number): Promise<{ downMs: number }> {
        const master = this.haproxy;
        const worker = await this.runtime.pid();
        const t0 = Date.now();
        if (how === "restart") await this.runtime.saveState(this.layout.haproxyStateFile).catch(() => undefined);
        const exited = new Promise((r) => master?.once("exit", r));
        master?.kill(how === "restart" ? HAPROXY_STOP_SIGNAL : "SIGKILL");
        if (how === "crash" && worker) {
            try {
                process.kill(worker, "SIGKILL");
            } catch {
                // already gone
            }
        }
        await exited;
        await sleep(downMs);
        this.spawnHaproxy();
        await this.runtime.pid();
        return { downMs: Date.now() - t0 };
    }

    haproxyMasterPid(): number {
        return Number(fs.readFileSync(this.haproxyPidFile, "utf8").trim());
    }

    /** A release artifact: the test app, its behaviour, a static file of its own and a shared one. */
    makeArtifact(version: string, behaviour: Behaviour = {}): string {
        const src = path.join(this.root, "artifact-src", version);
        fs.mkdirSync(path.join(src, "static", "css"), { recursive: true });
        fs.copyFileSync(path.join(FIXTURES, "test-app.cjs"), path.join(src, "app.cjs"));
        fs.writeFileSync(path.join(src, "behaviour.json"), JSON.stringify(behaviour));
        fs.writeFileSync(path.join(src, "static", "css", `app.${version}.css`), `/* ${version} */\n`);
        fs.writeFileSync(path.join(src, "static", "common.css"), "body{}\n");
        const out = path.join(this.root, "artifacts", `${version}.tar.gz`);
        fs.mkdirSync(path.dirname(out), { recursive: true });
        execFileSync("tar", ["-czf", out, "-C", src, "."]);
        return out;
    }

    spawnAgent(args: string[], input?: string): RunningAgent {
        const child = spawn(AGENT_NODE, [this.layout.agentPath, ...args, "--config", this.layout.agentConfigPath], {
            stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
        });
        if (input !== undefined) child.stdin?.end(input);
        const a = new RunningAgent(child);
        this.agents.push(a);
        return a;
    }

    agent(args: string[], input?: string): Promise<AgentRun> {
        return this.spawnAgent(args, input).done;
    }

    /** deploy/rollback (templates/rollback.sh.njk) with `args`; its `node` is the agent's. */
    rollbackScript(args: string[]): Promise<AgentRun> {
        const child = spawn(this.layout.rollbackScript, args, {
            stdio: ["ignore", "pipe", "pipe"],
            env: { ...process.env, PATH: `${path.dirname(AGENT_NODE)}:${process.env.PATH ?? "/usr/bin:/bin"}` },
        });
        const a = new RunningAgent(child);
        this.agents.push(a);
        return a.done;
    }

    async weights(): Promise<Record<Slot, number>> {
        const s = await this.runtime.stats();
        return { blue: s.blue?.weight ?? -1, green: s.green?.weight ?? -1 };
    }

    slotPid(slot: Slot): number {
        return Number(fs.readFileSync(path.join(this.runDir, `app-${slot}.pid`), "utf8"));
    }

    /** A request through NGINX with its own connection (not part of the load). */
    httpsGet(p: string, timeoutMs = 30000): Promise<{ status: number; version: string; ms: number; headers: http.IncomingHttpHeaders }> {
        return this.httpsRequest("GET", p, undefined, timeoutMs);
    }

    /** A POST of `body` as JSON through NGINX with its own connection (not part of the load). */
    httpsPost(p: string, body: unknown, timeoutMs = 30000): Promise<{ status: number; version: string; ms: number; headers: http.IncomingHttpHeaders }> {
        return this.httpsRequest("POST", p, JSON.stringify(body), timeoutMs);
    }

    private httpsRequest(
        method: string,
        p: string,
        body: string | undefined,
        timeoutMs: number,
    ): Promise<{ status: number; version: string; ms: number; headers: http.IncomingHttpHeaders }> {
        const t0 = Date.now();
        return new Promise((resolve, reject) => {
            const req = https.request(
                {
                    host: "127.0.0.1",
                    port: this.ports.https,
                    method,
                    path: p,
                    servername: this.domain,
                    headers: {
                        host: this.domain,
                        ...(body !== undefined ? { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) } : {}),
                    },
                    rejectUnauthorized: false,
                    agent: false,
                    timeout: timeoutMs,
                },
                (res) => {
                    res.resume();
                    res.on("end", () =>
                        resolve({
                            status: res.statusCode ?? 0,
                            version: String(res.headers[this.opts.app?.versionHeader.toLowerCase() ?? "x-release"] ?? "-"),
                            ms: Date.now() - t0,
                            headers: res.headers,
                        }),
                    );
                },
            );
            req.on("timeout", () => req.destroy(new Error("timeout")));
            req.on("error", reject);
            req.end(body);
        });
    }

    async waitForLockFree(timeoutMs: number): Promise<void> {
        const deadline = Date.now() + timeoutMs;
        while (fs.existsSync(this.layout.lockFile)) {
            if (Date.now() > deadline) throw new Error(`lock still held after ${timeoutMs} ms: ${fs.readFileSync(this.layout.lockFile, "utf8")}`);
            await sleep(200);
        }
    }

    posts(): { id: string; version: string; slot: string }[] {
        let text = "";
        try {
            text = fs.readFileSync(this.postsLog, "utf8");
        } catch {
            return [];
        }
        return text
            .split("\n")
            .filter(Boolean)
            .map((l) => {
                const [id, version, slot] = l.split(" ");
                return { id, version, slot };
            });
    }

    async stop(): Promise<void> {
        // Agents (and their detached workers) first, so nothing restarts a slot behind us.
        for (const a of this.agents) if (a.child.exitCode === null) await a.done;
        try {
            await this.waitForLockFree(60000);
        } catch {
            // Report through the test that left it; teardown goes on.
        }
        for (const slot of ["blue", "green"] as Slot[]) {
            try {
                const pid = this.slotPid(slot);
                process.kill(pid, "SIGKILL");
            } catch {
                // not running
            }
        }
        for (const child of [this.nginx, this.haproxy]) {
            if (child?.pid && child.exitCode === null) {
                child.kill("SIGTERM");
                await new Promise((r) => child.once("exit", r));
            }
        }
        if (!process.env.SLOTSHIFT_KEEP_TMP) fs.rmSync(this.root, { recursive: true, force: true });
    }
}
