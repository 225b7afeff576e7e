// The bundled agent's `dashboard` against real HAProxy + NGINX + app slots on loopback: its status is
// the one `status --json` prints, and its buttons run the agent's own commands, so they meet the
// deploy lock (refused while a shift runs), abort a running shift (traffic back on the old release)
// and roll back under load without a failed request.
import * as assert from "assert";
import * as fs from "fs";
import * as http from "http";
import { freePorts, RunningAgent, Stack } from "../../dev/loopback/harness";
import { formatLoad, startLoad } from "../../dev/loopback/load";

// No load in most steps here: a step passes without traffic.
const GATES = ["--max-error-ratio", "0.01", "--health-timeout", "20s", "--drain-timeout", "30s", "--min-requests-per-step", "0"];
const TOKEN = "0123456789abcdef".repeat(4);

interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
}

describe("dashboard integration: the agent's own commands behind its buttons", function () {
    this.timeout(300_000);
    const stack = new Stack({ appName: "nobody", keepPreviousWarm: true });
    let dashboard: RunningAgent;
    let port: number;
    let session: { cookie: string; csrf: string };

    const request = (method: string, p: string, opts: { headers?: Record<string, string>; body?: unknown } = {}): Promise<Reply> =>
        new Promise((resolve, reject) => {
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

    const act = (action: string) =>
        request("POST", `/api/actions/${action}`, { headers: { Cookie: session.cookie, "X-CSRF-Token": session.csrf }, body: { confirm: action } });

    before(async function () {
        this.timeout(120_000);
        await stack.start();
        assert.strictEqual((await stack.agent(["write-env"], `POSTS_LOG=${stack.postsLog}\n`)).code, 0);
        for (const v of ["v1", "v2"]) assert.strictEqual((await stack.agent(["prepare", "--version", v, "--source", stack.makeArtifact(v)])).code, 0);
        assert.strictEqual((await stack.agent(["activate", "--version", "v1", "--shift-plan", "100", ...GATES])).code, 0);
        assert.strictEqual((await stack.agent(["activate", "--version", "v2", "--shift-plan", "50%:1s,100%", ...GATES])).code, 0);

        fs.writeFileSync(stack.layout.dashboardTokenFile, `${TOKEN}\n`, { mode: 0o600 });
        port = (await freePorts(1)).others[0];
        dashboard = stack.spawnAgent(["dashboard", "--dashboard-port", String(port)]);
        await dashboard.waitFor(/dashboard on http:\/\/127\.0\.0\.1:/, 20_000);
        const login = await request("POST", "/api/login", { body: { token: TOKEN } });
        assert.strictEqual(login.status, 200, login.body);
        session = { cookie: String(login.headers["set-cookie"]?.[0]).split(";")[0], csrf: JSON.parse(login.body).csrf };
    });

    after(async function () {
        this.timeout(120_000);
        dashboard?.child.kill("SIGTERM");
        await dashboard?.done;
        await stack.stop();
    });

    it("serves the status `status --json` prints", async () => {
        const cli = JSON.parse((await stack.agent(["status", "--json"])).stdout);
        const r = await request("GET", "/api/status", { headers: { Authorization: `Bearer ${TOKEN}` } });
        assert.strictEqual(r.status, 200);
        const served = JSON.parse(r.body).report;
        const view = (rep: { live: unknown; previous: unknown; slots: Record<string, unknown>[] }) => ({
            live: rep.live,
            previous: rep.previous,
            slots: rep.slots.map((s) => [s.slot, s.version, s.role, s.weight, s.status, s.checkStatus]),
        });
        assert.deepStrictEqual(view(served), view(cli));
        assert.deepStrictEqual(served.live, { slot: "green", version: "v2" });
        assert.deepStrictEqual(served.previous, { slot: "blue", version: "v1", warm: true });
    });

    it("a button meets the deploy lock: refused while a shift runs; abort stops that shift and traffic goes back", async () => {
        const shift = stack.spawnAgent(["activate", "--version", "v1", "--shift-plan", "10%:20s,100%", ...GATES]);
        await shift.waitFor(/step 1\/2 \(10%\)/, 60_000);
        const refused = await act("rollback");
        assert.strictEqual(refused.status, 409, refused.body);
        assert.match(refused.body, /another deploy holds the lock/);

        const aborted = await act("abort");
        assert.strictEqual(aborted.status, 200, aborted.body);
        const run = await shift.done;
        assert.strictEqual(run.code, 1, run.stdout + run.stderr);
        assert.match(run.stdout + run.stderr, /aborted/);
        const w = await stack.weights();
        assert.deepStrictEqual(w, { blue: 0, green: 100 }, "traffic should be back on v2 (green)");
        const audit = fs
            .readFileSync(stack.layout.auditLog, "utf8")
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l));
        assert.deepStrictEqual([audit.at(-1).command, audit.at(-1).version, audit.at(-1).gate], ["activate", "v1", "aborted"]);
    });

    it("rollback flips to the warm previous under load without a failed request", async () => {
        // The aborted activation stopped blue; a shift to v1 and back makes v1 the warm previous again.
        assert.strictEqual((await stack.agent(["activate", "--version", "v1", "--shift-plan", "100", ...GATES])).code, 0);
        assert.strictEqual((await stack.agent(["activate", "--version", "v2", "--shift-plan", "100", ...GATES])).code, 0);
        const load = startLoad({ port: stack.ports.https, host: stack.domain, rate: 100, postEvery: 0, runId: `dash-${Date.now()}` });
        await new Promise((r) => setTimeout(r, 1000));
        const r = await act("rollback");
        await new Promise((res) => setTimeout(res, 1000));
        const report = await load.stop();
        console.log(`      ${formatLoad("rollback from the dashboard", report)}`);
        assert.strictEqual(r.status, 200, r.body);
        assert.strictEqual(JSON.parse(r.body).result.mode, "warm-flip");
        assert.deepStrictEqual(await stack.weights(), { blue: 100, green: 0 });
        assert.strictEqual(report.failures, 0, formatLoad("rollback", report));
    });
});
