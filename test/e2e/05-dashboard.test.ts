// The deployment dashboard on the local host, in a real browser: headless Chromium from Debian's
// packages driven by puppeteer-core, through the SSH tunnel the dashboardCommand output prints.
// It renders the slots, follows a shift live, its rollback button flips traffic under load without
// a failed request, abort stops a running shift, maintenance toggles the site; requests without the
// token or with a wrong CSRF token are refused, and nothing but loopback answers on its port.
// Screenshots of the run go to docs/. Starts with resetApp(): v1, then v2, from a known state.
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import type { Browser, Page } from "puppeteer-core";
import { AGENT_OUTFILE } from "../../program/agent-bundle";
import { useLocalHost } from "./fixture";
import { siteRequest, Site } from "../../dev/site/http";
import { describeLoad, startLoad } from "../../dev/site/load";
import { REPO, run } from "../../dev/local-host";
import { archiveFor, LocalStack, RELEASES_DIR, StepResult } from "../../dev/site/replayed-stack";

const CHROMIUM = "/usr/bin/chromium";
/** The tunnel's local end (dashboardCommand uses 9090; another port keeps a developer's tunnel out of the way). */
const TUNNEL_PORT = 19090;
const DOCS = path.join(REPO, "docs");

interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
}

function tunnelRequest(method: string, p: string, opts: { headers?: Record<string, string>; body?: unknown } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
        const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
        const req = http.request(
            { host: "127.0.0.1", port: TUNNEL_PORT, method, path: p, headers: { ...(body ? { "Content-Type": "application/json" } : {}), ...opts.headers } },
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

function connectOutcome(host: string, port: number): Promise<string> {
    return new Promise((resolve) => {
        const s = net.connect({ host, port, timeout: 3000 }, () => {
            s.destroy();
            resolve("connected");
        });
        s.on("error", (e: NodeJS.ErrnoException) => resolve(e.code ?? "error"));
        s.on("timeout", () => {
            s.destroy();
            resolve("timeout");
        });
    });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("deployment dashboard in a real browser", function () {
    this.timeout(10 * 60_000);
    const host = useLocalHost();
    let stack: LocalStack;
    let site: Site;
    let tunnel: ChildProcess | undefined;
    let browser: Browser | undefined;
    let page: Page;
    let token: string;
    const runId = `e2e-dash-${Date.now()}`;
    const figures: string[] = [];

    /** The dashboard's process on the host: RSS and PSS (kB), CPU ticks (utime + stime). */
    async function processFigures(): Promise<{ pid: number; rssKb: number; pssKb: number; anonKb: number; ticks: number }> {
        const unit = `${stack.layout.dashboardUnit}.service`;
        const out = await host.sshOk(
            `pid=$(systemctl show -p MainPID --value ${unit}); echo "$pid"; grep -E '^(Rss|Pss|Anonymous):' /proc/$pid/smaps_rollup; cut -d' ' -f14,15 /proc/$pid/stat`,
        );
        const lines = out.trim().split("\n");
        const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(out)?.[1] ?? NaN);
        const [utime, stime] = lines[lines.length - 1].split(" ").map(Number);
        return { pid: Number(lines[0]), rssKb: kb("Rss"), pssKb: kb("Pss"), anonKb: kb("Anonymous"), ticks: utime + stime };
    }

    async function cpuOver(ms: number, during?: Promise<unknown>): Promise<{ percent: number; seconds: number }> {
        const a = await processFigures();
        const t0 = Date.now();
        if (during) await during;
        else await sleep(ms);
        const b = await processFigures();
        assert.strictEqual(b.pid, a.pid, "the dashboard restarted meanwhile");
        const seconds = (Date.now() - t0) / 1000;
        // USER_HZ is 100 on Linux.
        return { percent: ((b.ticks - a.ticks) / 100 / seconds) * 100, seconds };
    }

    async function weightOnPage(slot: string): Promise<number | null> {
        const v = await page.$eval(`#slot-${slot} [data-field=weight]`, (e) => e.getAttribute("data-weight") ?? "");
        return v === "" ? null : Number(v);
    }

    async function textOf(selector: string): Promise<string> {
        return page.$eval(selector, (e) => e.textContent ?? "");
    }

    /** Waits until the element's text matches (the page updates from the event stream). */
    async function waitForText(selector: string, pattern: RegExp, timeout = 15_000): Promise<void> {
        const js = `new RegExp(${JSON.stringify(pattern.source)}).test(document.querySelector(${JSON.stringify(selector)})?.textContent ?? "")`;
        await page.waitForFunction(js, { timeout, polling: 200 });
    }

    async function clickAction(action: string): Promise<void> {
        await page.click(`#action-${action}`);
        await page.waitForSelector("#confirm[open]", { timeout: 5000 });
        await page.click("#confirm-ok");
    }

    async function screenshot(name: string): Promise<void> {
        await page.screenshot({ path: path.join(DOCS, name), fullPage: true });
    }

    before(async function () {
        if (!fs.existsSync(AGENT_OUTFILE)) throw new Error(`${AGENT_OUTFILE} is missing: run the tests with npm run test:e2e (it builds the agent)`);
        if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install chromium (scripts/install-deps.sh)`);
        const build = await run(`${REPO}/scripts/build-example-releases.sh`, [RELEASES_DIR], { timeoutMs: 120_000 });
        assert.strictEqual(build.code, 0, build.stderr);
        for (const v of ["v1", "v2"]) assert.ok(fs.existsSync(archiveFor(v)));
        stack = new LocalStack(host);
        site = { domain: stack.settings.domain, httpsPort: stack.settings.httpsPort };

        // A known start whatever ran before: v1 live on blue, v2 prepared.
        await stack.resetApp();
        await stack.setup();
        await stack.installAgent();
        await stack.applyProxy();
        await stack.writeEnv({ SECRET_KEY: `${runId}-0123456789abcdefghijklmnopqrstuvwxyz` });
        await stack.prepare("v1");
        await stack.activate("v1");
        await stack.prepare("v2");
        token = (await host.sshOk(`cat ${stack.layout.dashboardTokenFile}`)).trim();

        // The tunnel as dashboardCommand prints it, to another local port.
        tunnel = spawn(
            "ssh",
            [
                ...host.commonOptions(),
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-L",
                `${TUNNEL_PORT}:127.0.0.1:${stack.settings.dashboardPort}`,
                "-p",
                String(host.sshPort),
                `${host.user}@${host.address}`,
            ],
            { stdio: "ignore" },
        );
        for (let i = 0; i < 50 && (await connectOutcome("127.0.0.1", TUNNEL_PORT)) !== "connected"; i++) await sleep(200);
        // The service restarted with the new agent a moment ago: wait until it answers.
        for (let i = 0; i < 50 && (await tunnelRequest("GET", "/").catch(() => ({ status: 0 }))).status !== 200; i++) await sleep(200);

        const puppeteer = await import("puppeteer-core");
        // Root needs --no-sandbox; the browser is the one Debian ships, nothing is downloaded.
        browser = await puppeteer.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox", "--disable-dev-shm-usage"] });
        page = await browser.newPage();
        await page.setViewport({ width: 1200, height: 900 });
    });

    after(async () => {
        await browser?.close();
        tunnel?.kill();
        if (figures.length) console.log(`      dashboard figures:\n${figures.map((f) => `        ${f}`).join("\n")}`);
    });

    it("runs as its own service, on 127.0.0.1 only, with a root-only token", async () => {
        const unit = `${stack.layout.dashboardUnit}.service`;
        assert.strictEqual((await host.sshOk(`systemctl is-active ${unit}`)).trim(), "active");
        const listening = (await host.sshOk(`ss -Hltn 'sport = :${stack.settings.dashboardPort}'`)).trim().split("\n");
        assert.ok(listening.length > 0 && listening[0] !== "", "nothing listens on the dashboard port");
        for (const line of listening) assert.match(line.split(/\s+/)[3], new RegExp(`^127\\.0\\.0\\.1:${stack.settings.dashboardPort}$`), line);
        assert.strictEqual((await host.sshOk(`stat -c '%a %U %G' ${stack.layout.dashboardTokenFile}`)).trim(), "600 root root");
        // The host shares this machine's network: try every address that is not loopback.
        const others = Object.values(os.networkInterfaces())
            .flat()
            .filter((i): i is os.NetworkInterfaceInfo => !!i && !i.internal);
        for (const i of others) {
            const address = i.family === "IPv6" ? `${i.address}${i.scopeid ? `%${i.scopeid}` : ""}` : i.address;
            assert.notStrictEqual(await connectOutcome(address, stack.settings.dashboardPort), "connected", `the dashboard answered on ${address}`);
        }
        console.log(`      not reachable on ${others.map((i) => i.address).join(", ") || "(no other address)"}`);
        const rest = await processFigures();
        figures.push(
            `at rest: RSS ${(rest.rssKb / 1024).toFixed(1)} MB, PSS ${(rest.pssKb / 1024).toFixed(1)} MB, anonymous ${(rest.anonKb / 1024).toFixed(1)} MB`,
        );
        const idle = await cpuOver(20_000);
        figures.push(`CPU at rest, no page open: ${idle.percent.toFixed(2)} % over ${idle.seconds.toFixed(0)} s`);
    });

    it("refuses a request without the token, with a wrong token, or with a wrong CSRF token", async () => {
        assert.strictEqual((await tunnelRequest("GET", "/api/status")).status, 401);
        assert.strictEqual(
            (await tunnelRequest("GET", "/api/status", { headers: { Authorization: "Bearer 0123456789abcdef0123456789abcdef0123" } })).status,
            401,
        );
        assert.strictEqual((await tunnelRequest("POST", "/api/login", { body: { token: "wrong" } })).status, 401);
        assert.strictEqual((await tunnelRequest("POST", "/api/actions/maintenance-on", { body: { confirm: "maintenance-on" } })).status, 401);
        const login = await tunnelRequest("POST", "/api/login", { body: { token } });
        assert.strictEqual(login.status, 200);
        const cookie = String(login.headers["set-cookie"]?.[0]).split(";")[0];
        const wrongCsrf = await tunnelRequest("POST", "/api/actions/maintenance-on", {
            headers: { Cookie: cookie, "X-CSRF-Token": "0".repeat(64) },
            body: { confirm: "maintenance-on" },
        });
        assert.strictEqual(wrongCsrf.status, 403);
        assert.strictEqual((await siteRequest(site, "/")).status, 200, "a refused request changed the site");
        const status = await tunnelRequest("GET", "/api/status", { headers: { Cookie: cookie } });
        assert.strictEqual(status.status, 200);
        assert.strictEqual(JSON.parse(status.body).report.maintenance, false);
    });

    it("renders the slots after a login with the host's token", async () => {
        await page.goto(`http://127.0.0.1:${TUNNEL_PORT}/`);
        await page.waitForSelector("#token", { visible: true });
        await page.type("#token", token);
        await page.click("#login-form button");
        await waitForText("#slot-blue [data-field=role]", /^live$/, 15_000);
        assert.strictEqual(await textOf("#slot-blue [data-field=version]"), "v1");
        assert.strictEqual(await weightOnPage("blue"), 100);
        assert.strictEqual(await textOf("#slot-blue [data-field=check]"), "UP / L7OK");
        assert.strictEqual(await weightOnPage("green"), 0);
        assert.match(await textOf("#live"), /v1 on blue/);
        // The history comes from the audit log: v1's activation.
        await waitForText("#history tbody", /activate/);
    });

    it("follows a shift live: the weights change on the page while the deploy runs", async () => {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        const seen: { green: number | null; phase: string; step: string }[] = [];
        let done = false;
        let activate: StepResult | undefined;
        let report;
        let shot = false;
        try {
            const deploy = stack.activate("v2").then((r) => {
                activate = r;
                done = true;
            });
            const cpu = cpuOver(0, deploy);
            while (!done) {
                const green = await weightOnPage("green");
                const phase = await textOf("#deploy-phase");
                seen.push({ green, phase, step: await textOf("#deploy-step") });
                if (!shot && green === 50) {
                    // Mid-shift: the chart shows both releases' traffic and weights.
                    await sleep(1500);
                    await screenshot("dashboard-shift.png");
                    shot = true;
                }
                await sleep(250);
            }
            const during = await cpu;
            figures.push(`CPU during the shift, one page open: ${during.percent.toFixed(2)} % over ${during.seconds.toFixed(0)} s`);
            await stack.retire("v1");
        } finally {
            report = await load.stop();
        }
        console.log(`      load: ${describeLoad(report)}`);
        assert.ok(activate?.ok, "activate v2 failed");
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        const greenWeights = [...new Set(seen.map((s) => s.green))];
        assert.ok(
            greenWeights.includes(10) && greenWeights.includes(50),
            `the page should show green at 10 % and 50 % during the shift; saw ${greenWeights.join(", ")}`,
        );
        assert.ok(
            seen.some((s) => s.phase === "shift" && /step 2\/3/.test(s.step)),
            "the page should name the shift phase and its step",
        );
        assert.ok(shot, "no screenshot mid-shift");
        await waitForText("#slot-green [data-field=role]", /^live$/, 15_000);
        assert.strictEqual(await weightOnPage("green"), 100);
        await waitForText("#slot-blue [data-field=role]", /^warm previous$/, 15_000);
        const after = await processFigures();
        figures.push(
            `after the shift: RSS ${(after.rssKb / 1024).toFixed(1)} MB, PSS ${(after.pssKb / 1024).toFixed(1)} MB, anonymous ${(after.anonKb / 1024).toFixed(1)} MB`,
        );
    });

    it("the rollback button flips traffic to the warm previous without a failed request under load", async () => {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        let report;
        try {
            await sleep(2000);
            await clickAction("rollback");
            await waitForText("#action-result", /rollback: (done|refused)/, 120_000);
            assert.match(await textOf("#action-result"), /rollback: done/);
            await waitForText("#slot-blue [data-field=weight]", /^100%$/, 15_000);
            await sleep(2000);
        } finally {
            report = await load.stop();
        }
        console.log(`      load: ${describeLoad(report)}`);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.ok(report.byVersion.v1 > 0 && report.byVersion.v2 > 0, describeLoad(report));
        const status = (await stack.status()) as { live: { slot: string; version: string } };
        assert.deepStrictEqual(status.live, { slot: "blue", version: "v1" });
        assert.match((await siteRequest(site, "/")).body, /id="release">v1</);
        await waitForText("#history tbody", /rollback \(warm-flip\)/, 15_000);
        await screenshot("dashboard-rollback.png");
    });

    it("abort stops a running shift: traffic goes back to the old release, no request fails", async () => {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        let activate: StepResult | undefined;
        let report;
        try {
            const deploy = stack.activate("v2", false).then((r) => (activate = r));
            // This deploy's shift (the page clears a finished deploy's fields).
            await waitForText("#deploy-title", /^activate v2 on green/, 60_000);
            await waitForText("#deploy-phase", /^shift$/, 60_000);
            await clickAction("abort");
            await waitForText("#action-result", /abort: (done|refused)/, 120_000);
            assert.match(await textOf("#action-result"), /abort: done/);
            await deploy;
        } finally {
            report = await load.stop();
        }
        console.log(`      load: ${describeLoad(report)}`);
        assert.ok(activate && !activate.ok, "the aborted activate should fail");
        assert.match(activate!.stdout + activate!.stderr, /aborted/);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        const status = (await stack.status()) as { live: { slot: string; version: string } };
        assert.deepStrictEqual(status.live, { slot: "blue", version: "v1" });
        await waitForText("#history tbody", /rolled-back/, 15_000);
    });

    it("maintenance on shows the maintenance page to visitors; off serves the app again", async () => {
        await clickAction("maintenance-on");
        await waitForText("#action-result", /maintenance-on: (done|refused)/, 60_000);
        assert.match(await textOf("#action-result"), /maintenance-on: done/);
        const during = await siteRequest(site, "/");
        assert.strictEqual(during.status, 503);
        assert.match(during.body, /Back shortly/);
        await page.waitForSelector("#maintenance-badge:not([hidden])", { timeout: 15_000 });
        await clickAction("maintenance-off");
        await waitForText("#action-result", /maintenance-off: (done|refused)/, 60_000);
        assert.match(await textOf("#action-result"), /maintenance-off: done/);
        assert.strictEqual((await siteRequest(site, "/")).status, 200);
    });
});
