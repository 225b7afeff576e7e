// The dashboard server over a temp host root: slots.json, the audit log, the token file and a
// socket answering HAProxy's `show stat` as HAProxy does. Checks who may read and act, where it
// listens, and that its status is the status module's.
import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { buildAgentSettings } from "../../program/agent-settings";
import { AgentContext, createContext } from "../context";
import { silentLogger } from "../common/log";
import { readStatusReport } from "../status/status-report";
import { maintenanceCommand } from "../commands/maintenance";
import { ActionName, ActionOutcome } from "./actions";
import { dashboardAssets } from "./assets";
import { Sampler } from "./sampler";
import { DashboardServer, DASHBOARD_HOST } from "./server";

const TOKEN = "f".repeat(16) + "0123456789abcdef0123456789abcdef0123456789abcdef";
const STAT_HEADER =
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other";

interface Counters {
    weight: number;
    scur: number;
    stot: number;
    h2: number;
    h5: number;
    status?: string;
}

function statRow(name: string, c: Counters): string {
    const f: Record<string, string | number> = {
        pxname: "app",
        svname: name,
        scur: c.scur,
        stot: c.stot,
        econ: 0,
        eresp: 0,
        wretr: 0,
        wredis: 0,
        status: c.status ?? "UP",
        weight: c.weight,
        check_status: "L7OK",
        hrsp_1xx: 0,
        hrsp_2xx: c.h2,
        hrsp_3xx: 0,
        hrsp_4xx: 0,
        hrsp_5xx: c.h5,
        hrsp_other: 0,
    };
    return STAT_HEADER.slice(2)
        .split(",")
        .map((h) => f[h] ?? "")
        .join(",");
}

interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
}

function request(port: number, method: string, p: string, opts: { headers?: Record<string, string>; body?: unknown } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
        const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
        const req = http.request(
            { host: "127.0.0.1", port, method, path: p, headers: { ...(body ? { "Content-Type": "application/json" } : {}), ...opts.headers } },
            (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
            },
        );
        req.on("error", reject);
        req.end(body);
    });
}

describe("dashboard server", function () {
    this.timeout(20_000);
    let root: string;
    let ctx: AgentContext;
    let haproxy: net.Server;
    let server: DashboardServer;
    let sampler: Sampler;
    let port: number;
    const counters: Record<"blue" | "green", Counters> = {
        blue: { weight: 0, scur: 0, stot: 100, h2: 100, h5: 0 },
        green: { weight: 100, scur: 3, stot: 500, h2: 495, h5: 5 },
    };
    const ran: ActionName[] = [];

    before(async () => {
        root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-dashboard-"));
        ctx = createContext(
            buildAgentSettings(
                {
                    appName: "shop",
                    domain: "shop.localhost",
                    healthPath: "/healthz",
                    smokePaths: ["/"],
                    slotBasePort: 8001,
                    haproxyPort: 8080,
                    keepPreviousWarm: true,
                    releasesToKeep: 5,
                },
                {
                    root,
                },
            ),
            silentLogger,
        );
        const L = ctx.layout;
        fs.mkdirSync(L.deployDir, { recursive: true });
        fs.mkdirSync(path.dirname(L.haproxySocket), { recursive: true });
        fs.writeFileSync(
            L.stateFile,
            JSON.stringify({
                live: "green",
                slots: { blue: { version: "v1", running: true }, green: { version: "v2", running: true } },
                previous: { slot: "blue", version: "v1" },
                deploying: null,
                updatedAt: "2026-12-01T10:00:00.000Z",
            }),
        );
        fs.writeFileSync(L.dashboardTokenFile, `${TOKEN}\n`, { mode: 0o600 });
        fs.writeFileSync(
            L.auditLog,
            [
                { time: "2026-12-01T09:00:00.000Z", command: "activate", version: "v1", result: "ok", durations: { total: 3 } },
                {
                    time: "2026-12-01T10:00:00.000Z",
                    command: "activate",
                    version: "v2",
                    from: "v1@blue",
                    to: "v2@green",
                    result: "ok",
                    durations: { total: 12.5 },
                    steps: [{ step: 1, percent: 10, figures: { responses: 40, http5xx: 0, errors: 0, ratio: 0 } }],
                },
            ]
                .map((r) => JSON.stringify(r))
                .join("\n") + "\n{not json\n",
        );
        haproxy = net.createServer((sock) => {
            sock.once("data", (d) => {
                const cmd = d.toString().trim();
                if (cmd.startsWith("show stat")) sock.end(`${STAT_HEADER}\n${statRow("blue", counters.blue)}\n${statRow("green", counters.green)}\n\n`);
                else sock.end("Unknown command\n");
            });
        });
        await new Promise<void>((r) => haproxy.listen(L.haproxySocket, r));

        sampler = new Sampler(ctx, { keep: 10, activeMs: 60_000, idleMs: 60_000 });
        server = new DashboardServer({
            port: 0,
            tokenFile: L.dashboardTokenFile,
            auditLog: L.auditLog,
            sampler,
            assets: dashboardAssets(),
            log: silentLogger,
            runAction: async (a): Promise<ActionOutcome> => {
                ran.push(a);
                return { exitCode: 0, result: { ok: true, command: a }, output: "" };
            },
        });
        port = (await server.listen()).port;
        await sampler.tick();
    });

    after(async () => {
        sampler?.stop();
        await server?.close();
        haproxy?.close();
        fs.rmSync(root, { recursive: true, force: true });
    });

    async function login(): Promise<{ cookie: string; csrf: string }> {
        const r = await request(port, "POST", "/api/login", { body: { token: TOKEN } });
        assert.strictEqual(r.status, 200, r.body);
        const cookie = String(r.headers["set-cookie"]?.[0]).split(";")[0];
        assert.match(String(r.headers["set-cookie"]?.[0]), /HttpOnly; SameSite=Strict/);
        return { cookie, csrf: JSON.parse(r.body).csrf };
    }

    it("listens on 127.0.0.1 only: no other address of this machine answers", async () => {
        const addr = server.http.address() as net.AddressInfo;
        assert.strictEqual(addr.address, DASHBOARD_HOST);
        const others = Object.values(os.networkInterfaces())
            .flat()
            .filter((i): i is os.NetworkInterfaceInfo => !!i && !i.internal);
        for (const i of others) {
            const host = i.family === "IPv6" ? `${i.address}${i.scopeid ? `%${i.scopeid}` : ""}` : i.address;
            const outcome = await new Promise<string>((resolve) => {
                const s = net.connect({ host, port, timeout: 2000 }, () => {
                    s.destroy();
                    resolve("connected");
                });
                s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
                s.on("timeout", () => {
                    s.destroy();
                    resolve("timeout");
                });
            });
            assert.notStrictEqual(outcome, "connected", `the dashboard answered on ${host}:${port}`);
        }
        // And it answers on loopback.
        assert.strictEqual((await request(port, "GET", "/")).status, 200);
    });

    it("refuses reads without the token or with a wrong one", async () => {
        assert.strictEqual((await request(port, "GET", "/api/status")).status, 401);
        assert.strictEqual((await request(port, "GET", "/api/status", { headers: { Authorization: `Bearer ${TOKEN.slice(0, -1)}x` } })).status, 401);
        assert.strictEqual((await request(port, "GET", "/api/history", { headers: { Cookie: "slotshift_session=made-up" } })).status, 401);
        assert.strictEqual((await request(port, "GET", "/api/events")).status, 401);
        const wrong = await request(port, "POST", "/api/login", { body: { token: "nope" } });
        assert.strictEqual(wrong.status, 401);
        assert.strictEqual(wrong.headers["set-cookie"], undefined);
    });

    it("serves the status module's report as JSON, with the warm previous and HAProxy's figures", async () => {
        const r = await request(port, "GET", "/api/status", { headers: { Authorization: `Bearer ${TOKEN}` } });
        assert.strictEqual(r.status, 200);
        assert.match(String(r.headers["content-type"]), /application\/json/);
        const snap = JSON.parse(r.body);
        assert.deepStrictEqual(snap.report, JSON.parse(JSON.stringify(await readStatusReport(ctx))));
        const green = snap.report.slots.find((s: { slot: string }) => s.slot === "green");
        const blue = snap.report.slots.find((s: { slot: string }) => s.slot === "blue");
        assert.deepStrictEqual([green.role, green.version, green.weight, green.sessions, green.http5xx], ["live", "v2", 100, 3, 5]);
        assert.deepStrictEqual([blue.role, blue.version, blue.weight], ["warm", "v1", 0]);
        assert.deepStrictEqual(snap.report.previous, { slot: "blue", version: "v1", warm: true });
        assert.strictEqual(snap.report.deploy, null);
    });

    it("turns HAProxy's counters into rates per slot between samples", async () => {
        counters.green = { ...counters.green, stot: 700, h2: 690, h5: 10 };
        const snap = await sampler.tick();
        const g = snap.rates!.slots.green;
        assert.ok(g.rps > 0, JSON.stringify(g));
        assert.ok(g.errorsPerSecond > 0 && g.errorsPerSecond < g.rps, JSON.stringify(g));
        assert.strictEqual(snap.rates!.slots.blue.rps, 0);
    });

    it("answers only to a loopback Host header (a DNS-rebinding page is refused)", async () => {
        const r = await request(port, "GET", "/api/status", { headers: { Host: "evil.example:8090", Authorization: `Bearer ${TOKEN}` } });
        assert.strictEqual(r.status, 421);
        assert.strictEqual((await request(port, "GET", "/", { headers: { Host: "localhost:9090" } })).status, 200);
    });

    it("an action needs the session's CSRF token and a confirmation; a wrong one runs nothing", async () => {
        const { cookie, csrf } = await login();
        const before = ran.length;
        const noCsrf = await request(port, "POST", "/api/actions/rollback", { headers: { Cookie: cookie }, body: { confirm: "rollback" } });
        assert.strictEqual(noCsrf.status, 403);
        const wrongCsrf = await request(port, "POST", "/api/actions/rollback", {
            headers: { Cookie: cookie, "X-CSRF-Token": csrf.replace(/.$/, (c) => (c === "0" ? "1" : "0")) },
            body: { confirm: "rollback" },
        });
        assert.strictEqual(wrongCsrf.status, 403);
        assert.match(wrongCsrf.body, /CSRF/);
        // A bearer token reads but never acts.
        const bearer = await request(port, "POST", "/api/actions/rollback", {
            headers: { Authorization: `Bearer ${TOKEN}`, "X-CSRF-Token": csrf },
            body: { confirm: "rollback" },
        });
        assert.strictEqual(bearer.status, 401);
        const crossOrigin = await request(port, "POST", "/api/actions/rollback", {
            headers: { Cookie: cookie, "X-CSRF-Token": csrf, Origin: "http://evil.example" },
            body: { confirm: "rollback" },
        });
        assert.strictEqual(crossOrigin.status, 403);
        const unconfirmed = await request(port, "POST", "/api/actions/rollback", { headers: { Cookie: cookie, "X-CSRF-Token": csrf }, body: {} });
        assert.strictEqual(unconfirmed.status, 400);
        assert.strictEqual(ran.length, before, "a refused request ran an action");

        const ok = await request(port, "POST", "/api/actions/rollback", { headers: { Cookie: cookie, "X-CSRF-Token": csrf }, body: { confirm: "rollback" } });
        assert.strictEqual(ok.status, 200, ok.body);
        assert.deepStrictEqual(ran.slice(before), ["rollback"]);
        assert.strictEqual(
            (await request(port, "POST", "/api/actions/reboot", { headers: { Cookie: cookie, "X-CSRF-Token": csrf }, body: { confirm: "reboot" } })).status,
            404,
        );
    });

    it("history: the audit log's records, a damaged line skipped", async () => {
        const { cookie } = await login();
        const r = await request(port, "GET", "/api/history", { headers: { Cookie: cookie } });
        assert.strictEqual(r.status, 200);
        const records = JSON.parse(r.body).records;
        assert.deepStrictEqual(
            records.map((x: { version: string }) => x.version),
            ["v1", "v2"],
        );
    });

    it("streams samples and snapshots as server-sent events", async () => {
        const { cookie } = await login();
        const text = await new Promise<string>((resolve, reject) => {
            const req = http.get({ host: "127.0.0.1", port, path: "/api/events", headers: { Cookie: cookie } }, (res) => {
                assert.strictEqual(res.headers["content-type"], "text/event-stream");
                let buf = "";
                res.on("data", (c: Buffer) => {
                    buf += c.toString();
                    if (/event: snapshot\n/.test(buf)) {
                        req.destroy();
                        resolve(buf);
                    }
                });
            });
            req.on("error", (e) => (e.message.includes("socket hang up") ? undefined : reject(e)));
        });
        assert.match(text, /event: samples\ndata: \[/);
        const snapshot = JSON.parse(/event: snapshot\ndata: (.*)\n/.exec(text)![1]);
        assert.strictEqual(snapshot.report.app, "shop");
    });

    it("serves the page and uPlot from the process itself, under a strict CSP", async () => {
        const page = await request(port, "GET", "/");
        assert.match(page.body, /<script src="\/uPlot\.iife\.min\.js"><\/script>/);
        assert.match(String(page.headers["content-security-policy"]), /script-src 'self'/);
        const lib = await request(port, "GET", "/uPlot.iife.min.js");
        assert.strictEqual(lib.status, 200);
        assert.match(lib.body, /uPlot/);
        assert.doesNotMatch(page.body, /https?:\/\//, "the page loads nothing from elsewhere");
    });
});

describe("maintenance command", () => {
    it("creates and removes the flag NGINX tests for, under the lock, with an audit line", async () => {
        const root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-maintenance-"));
        try {
            const ctx = createContext(
                buildAgentSettings(
                    {
                        appName: "shop",
                        domain: "shop.localhost",
                        healthPath: "/healthz",
                        smokePaths: ["/"],
                        slotBasePort: 8001,
                        haproxyPort: 8080,
                        keepPreviousWarm: true,
                        releasesToKeep: 5,
                    },
                    {
                        root,
                    },
                ),
                silentLogger,
            );
            fs.mkdirSync(ctx.layout.deployDir, { recursive: true });
            await maintenanceCommand(ctx, { on: true });
            assert.ok(fs.existsSync(ctx.layout.maintenanceFlag));
            assert.ok(!fs.existsSync(ctx.layout.lockFile), "the lock is released");
            await maintenanceCommand(ctx, { on: false });
            assert.ok(!fs.existsSync(ctx.layout.maintenanceFlag));
            const audit = fs
                .readFileSync(ctx.layout.auditLog, "utf8")
                .trim()
                .split("\n")
                .map((l) => JSON.parse(l));
            assert.deepStrictEqual(
                audit.map((a) => [a.command, a.mode, a.result]),
                [
                    ["maintenance", "on", "ok"],
                    ["maintenance", "off", "ok"],
                ],
            );
        } finally {
            fs.rmSync(root, { recursive: true, force: true });
        }
    });
});
