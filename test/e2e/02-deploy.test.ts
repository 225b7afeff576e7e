// The example Django app deployed to the local host the way `pulumi up` on the `local` stack does it
// (see stack.ts): host setup, agent, proxy, v1; then v2 under load; then the never-ready v3.
import * as assert from "assert";
import * as fs from "fs";
import { AGENT_OUTFILE } from "../../lib/agent-bundle";
import { useLocalHost } from "./fixture";
import { siteRequest, Site, submitNoteForm } from "./http";
import { describeLoad, startLoad } from "./load";
import { REPO, run } from "./local-host";
import { archiveFor, LocalStack, RELEASES_DIR } from "./stack";

describe("deploy of the example Django app to the local host", function () {
    this.timeout(5 * 60_000);
    const host = useLocalHost();
    let stack: LocalStack;
    let site: Site;
    const runId = `e2e-${Date.now()}`;
    const cssOf = (html: string) => /href="(\/static\/notes\/style\.[0-9a-f]{12}\.css)"/.exec(html)?.[1];
    let v1Css: string | undefined;

    /** Rows the load posted that made it into the database. */
    const storedNotes = async (): Promise<Set<string>> => {
        const db = stack.settings.appName;
        const out = await host.sshOk(`cd / && runuser -u postgres -- psql -X -tA -d ${db} -c "SELECT text FROM notes_note WHERE text LIKE '${runId}-%'"`);
        return new Set(out.split("\n").filter(Boolean));
    };

    before(async function () {
        if (!fs.existsSync(AGENT_OUTFILE)) throw new Error(`${AGENT_OUTFILE} is missing: run the tests with npm run test:e2e (it builds the agent)`);
        // Seconds, and it keeps the archives in step with examples/django-app.
        const build = await run(`${REPO}/scripts/build-example-releases.sh`, [RELEASES_DIR], { timeoutMs: 120_000 });
        assert.strictEqual(build.code, 0, build.stderr);
        for (const v of ["v1", "v2", "v3"]) assert.ok(fs.existsSync(archiveFor(v)));
        stack = new LocalStack(host);
        site = { domain: stack.settings.domain, httpsPort: stack.settings.httpsPort };
    });

    it("sets up the host; a second run changes nothing", async () => {
        const first = await stack.setup();
        assert.match(first.stdout, /created user shop/);
        const second = await stack.setup();
        const changes = second.stdout.split("\n").filter((l) => /\b(wrote|created|generated|removed|reloaded|installing)\b/.test(l));
        assert.deepStrictEqual(changes, [], `second setup run changed things:\n${second.stdout}`);
    });

    it("first deploy: v1 goes live behind NGINX with its fingerprinted static files", async () => {
        await stack.installAgent();
        await stack.applyProxy();
        await stack.writeEnv({ SECRET_KEY: `e2e-${runId}-0123456789abcdefghijklmnopqrstuvwxyz` });
        await stack.prepare("v1");
        await stack.activate("v1");

        const page = await siteRequest(site, "/");
        assert.strictEqual(page.status, 200, page.body.slice(0, 500));
        assert.match(page.body, /id="release">v1</);
        assert.strictEqual(page.headers["x-release-version"], "v1");
        v1Css = cssOf(page.body);
        assert.ok(v1Css, "v1 links no fingerprinted stylesheet");
        const css = await siteRequest(site, v1Css);
        assert.strictEqual(css.status, 200);
        assert.match(String(css.headers["content-type"]), /text\/css/);

        const health = await siteRequest(site, stack.settings.healthPath);
        assert.strictEqual(health.status, 200);
        assert.strictEqual(JSON.parse(health.body).status, "ok");

        const posted = await submitNoteForm(site, `${runId}-form`);
        assert.strictEqual(posted.status, 303, posted.body.slice(0, 300));
        assert.match((await siteRequest(site, "/")).body, new RegExp(`${runId}-form`));
    });

    it("shifts to v2 under load without failing a request; v1's assets stay served", async () => {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        let report;
        try {
            await stack.prepare("v2");
            await stack.activate("v2");
            // pulumi up deletes the replaced shift: retire the old version (kept warm, so it stays up).
            await stack.retire("v1");
        } finally {
            report = await load.stop();
        }
        console.log(`      load: ${describeLoad(report)}`);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.ok(report.byVersion.v1 > 0 && report.byVersion.v2 > 0, `both versions should have served during the shift: ${describeLoad(report)}`);

        const page = await siteRequest(site, "/");
        assert.match(page.body, /id="release">v2</);
        assert.match(page.body, /New in v2/);
        const v2Css = cssOf(page.body);
        assert.ok(v2Css && v2Css !== v1Css, "v2 should link a new fingerprinted stylesheet");
        // A page rendered by v1 just before the switch still finds its stylesheet.
        assert.strictEqual((await siteRequest(site, v1Css!)).status, 200);

        const stored = await storedNotes();
        const lost = report.acknowledgedPosts.filter((t) => !stored.has(t));
        assert.deepStrictEqual(lost, [], "notes acknowledged with 201 are missing from the database");
    });

    it("rollback over SSH to the warm previous release and back: a weight flip, 0 failed requests", async () => {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        const flips: string[] = [];
        let report;
        try {
            for (const [from, to] of [
                ["v2", "v1"],
                ["v1", "v2"],
            ]) {
                const t0 = Date.now();
                const r = await stack.agent("rollback", ["--json"]);
                const result = JSON.parse(r.stdout.trim().split("\n").pop()!);
                assert.deepStrictEqual([result.mode, result.version], ["warm-flip", to], r.stdout);
                // The host shares this machine's clock: flipAt is comparable with t0.
                flips.push(`${from} -> ${to}: 100 % on ${to} ${result.flipAt - t0} ms after the command started (the ssh command took ${r.ms} ms in all)`);
            }
        } finally {
            report = await load.stop();
        }
        console.log(`      rollback: ${flips.join("; ")}`);
        console.log(`      load: ${describeLoad(report)}`);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.match((await siteRequest(site, "/")).body, /id="release">v2</);
    });

    it("v3 never becomes ready: the deploy fails at the health gate and v2 keeps serving", async () => {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        let activate;
        let report;
        try {
            await stack.prepare("v3");
            activate = await stack.activate("v3", false);
        } finally {
            report = await load.stop();
        }
        console.log(`      load: ${describeLoad(report)}`);
        assert.notStrictEqual(activate.code, 0, "activating v3 should fail");
        assert.match(activate.stdout + activate.stderr, /health gate/);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.deepStrictEqual(Object.keys(report.byVersion), ["v2"], describeLoad(report));
        assert.match((await siteRequest(site, "/")).body, /id="release">v2</);
    });
});
