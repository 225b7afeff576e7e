// Migrations during a shift, on the local host under load: the old and the new release serve the
// same database while traffic moves, so the agent runs each release's migrations once, before it
// starts, behind a safety gate and with a bounded lock wait. The example app's releases walk the
// expand/contract workflow (scripts/build-example-releases.sh):
//   v1 -> v2-drop (refused: drops created_at, which v1 reads) -> v2 (additive; first held up by a
//   long transaction until dbLockTimeout) -> v2b (stops using author) -> v2c (drops author:
//   refused, then acknowledged) -> v2-failing (its migration fails midway)
// Every step runs under steady load; no request may fail and every acknowledged POST must be stored.
import * as assert from "assert";
import * as fs from "fs";
import * as https from "https";
import { AGENT_OUTFILE } from "../../program/agent-bundle";
import { StackConfigInput } from "../../program/config-schema";
import { useLocalHost } from "./fixture";
import { siteRequest, Site } from "../../dev/site/http";
import { describeLoad, LoadReport, startLoad } from "../../dev/site/load";
import { REPO, run } from "../../dev/local-host";
import { archiveFor, LocalStack, localStackSettings, RELEASES_DIR, StepResult } from "../../dev/site/replayed-stack";

const RELEASES = ["v1", "v2", "v2-drop", "v2b", "v2c", "v2-failing"];
const DROP_AUTHOR = "notes.0004_drop_note_author:drop_column:notes_note.author";
/** The local stack with migrations moved out of buildCommand into the migration step. */
const MIGRATIONS: Partial<StackConfigInput> = {
    buildCommand: undefined,
    migrateCommand: "python3 manage.py migrate --noinput",
    migrationCheck: "django",
    dbLockTimeout: "3s",
    // One attempt: the lock-timeout case below shows the give-up; the retry has its own test (integration).
    dbLockRetries: 0,
    releasesToKeep: 3,
};

const cssOf = (html: string) => /href="(\/static\/notes\/style\.[0-9a-f]{12}\.css)"/.exec(html)?.[1];

interface AssetReport {
    fetches: number;
    failed: string[];
    /** Stylesheets seen linked from pages while watching. */
    stylesheets: Set<string>;
}

/**
 * A browser's view of static files during a deploy: load a page, then its stylesheet and what the
 * stylesheet references; also keep loading the assets of a page rendered before the deploy.
 */
function watchAssets(site: Site, oldAssets: string[]): { stop(): Promise<AssetReport> } {
    const agent = new https.Agent({ keepAlive: true, maxSockets: 2, rejectUnauthorized: false });
    const report: AssetReport = { fetches: 0, failed: [], stylesheets: new Set() };
    let running = true;
    const get = async (path: string) => {
        report.fetches++;
        try {
            const r = await siteRequest(site, path, { agent });
            if (r.status !== 200) report.failed.push(`${path} -> ${r.status}`);
            return r;
        } catch (e) {
            report.failed.push(`${path} -> ${(e as Error).message}`);
            return undefined;
        }
    };
    const loop = (async () => {
        while (running) {
            const page = await get("/");
            const css = page && cssOf(page.body);
            if (css) {
                report.stylesheets.add(css);
                const sheet = await get(css);
                for (const m of (sheet?.body ?? "").matchAll(/url\("?([^")]+)"?\)/g)) await get(new URL(m[1], `https://x${css}`).pathname);
            }
            for (const a of oldAssets) await get(a);
            await new Promise((r) => setTimeout(r, 200));
        }
    })();
    return {
        async stop() {
            running = false;
            await loop;
            agent.destroy();
            return report;
        },
    };
}

describe("migrations during a shift: expand/contract on the local host", function () {
    this.timeout(10 * 60_000);
    const host = useLocalHost();
    let stack: LocalStack;
    let site: Site;
    const runId = `e2e-mig-${Date.now()}`;
    const acknowledged: string[] = [];
    /** v1's page assets: the stylesheet and the logo it references. */
    let v1Assets: string[] = [];

    const columns = () => stack.sql("SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = 'notes_note'");
    const applied = () => stack.sql("SELECT string_agg(name, ',' ORDER BY id) FROM django_migrations WHERE app = 'notes'");
    const schema = async () => ({ columns: await columns(), applied: await applied() });
    /** The live slot and version, from `agent status --json`. */
    const live = async () => ((await stack.status()) as { live: { slot: string; version: string } | null }).live;

    /** Runs one deploy step under load; returns the load report and the step's result. */
    async function underLoad<T>(what: string, step: () => Promise<T>): Promise<{ report: LoadReport; result: T }> {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        let result: T;
        let report: LoadReport;
        try {
            result = await step();
        } finally {
            report = await load.stop();
        }
        console.log(`      ${what}: ${describeLoad(report)}`);
        acknowledged.push(...report.acknowledgedPosts);
        return { report, result };
    }

    /** Every note the load got a 201 for, in every step so far, is in the database. */
    async function assertRowsKept(): Promise<void> {
        const stored = new Set((await stack.sql(`SELECT text FROM notes_note WHERE text LIKE '${runId}-%'`)).split("\n").filter(Boolean));
        const lost = acknowledged.filter((t) => !stored.has(t));
        assert.deepStrictEqual(lost, [], `${lost.length} of ${acknowledged.length} acknowledged notes are missing`);
    }

    const output = (r: StepResult) => r.stdout + r.stderr;

    before(async function () {
        if (!fs.existsSync(AGENT_OUTFILE)) throw new Error(`${AGENT_OUTFILE} is missing: run the tests with npm run test:e2e (it builds the agent)`);
        const build = await run(`${REPO}/scripts/build-example-releases.sh`, [RELEASES_DIR], { timeoutMs: 120_000 });
        assert.strictEqual(build.code, 0, build.stderr);
        for (const v of RELEASES) assert.ok(fs.existsSync(archiveFor(v)), `${archiveFor(v)} missing`);
        stack = new LocalStack(host, localStackSettings(MIGRATIONS));
        site = { domain: stack.settings.domain, httpsPort: stack.settings.httpsPort };
        // Earlier suites deployed the same app with other migrations: start from no app at all.
        await stack.resetApp();
        await stack.setup();
        await stack.installAgent();
        await stack.applyProxy();
        await stack.writeEnv({ SECRET_KEY: `e2e-${runId}-0123456789abcdefghijklmnopqrstuvwxyz` });
    });

    it("first deploy: v1's migrations run in activate, before the slot starts (nothing live to protect)", async () => {
        await stack.prepare("v1");
        const r = await stack.activate("v1");
        assert.match(output(r), /migration-safety gate: nothing is live yet/);
        assert.match(output(r), /Applying notes\.0001_initial\.\.\. OK/);
        assert.ok(output(r).indexOf("migrations of v1 done") < output(r).indexOf("starting blue (v1)"), "migrations must finish before the slot starts");
        assert.deepStrictEqual(await schema(), { columns: "created_at,id,text", applied: "0001_initial" });
        const page = await siteRequest(site, "/");
        assert.match(page.body, /id="release">v1</);
        const css = cssOf(page.body)!;
        const sheet = await siteRequest(site, css);
        const logo = /url\("?([^")]+)"?\)/.exec(sheet.body)?.[1];
        assert.ok(logo, "v1's stylesheet references its logo");
        v1Assets = [css, new URL(logo!, `https://x${css}`).pathname];
    });

    it("v2-drop drops created_at, which v1 reads: refused before any traffic moves; v1 serves on, database unchanged", async () => {
        const before = await schema();
        const { report, result } = await underLoad("v2-drop (refused)", async () => {
            await stack.prepare("v2-drop");
            return stack.activate("v2-drop", false);
        });
        assert.notStrictEqual(result.code, 0, "activating v2-drop should fail");
        const out = output(result);
        assert.match(out, /migration-safety gate refused v2-drop: 1 operation\(s\) the live release v1 may not survive/);
        assert.match(out, /notes\.0002_remove_note_created_at: drop_column notes_note\.created_at/);
        assert.match(out, /- notes\.0002_remove_note_created_at:drop_column:notes_note\.created_at/);
        assert.match(out, /traffic never left blue \(v1\)/);
        assert.doesNotMatch(out, /starting green/);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.deepStrictEqual(Object.keys(report.byVersion), ["v1"], describeLoad(report));
        assert.deepStrictEqual(await schema(), before);
        assert.deepStrictEqual(await live(), { slot: "blue", version: "v1" });
        const audit = (await host.sshOk(`tail -n 1 ${stack.layout.auditLog}`)).trim();
        assert.deepStrictEqual((({ result: r, gate }) => ({ r, gate }))(JSON.parse(audit)), { r: "failed", gate: "migration-safety" });
        await assertRowsKept();
    });

    it("v2 behind a long transaction: the migration gives up after dbLockTimeout instead of queueing v1's queries for long", async () => {
        const before = await schema();
        await stack.prepare("v2");
        // A slow reader on the live release's table: ALTER TABLE has to wait for it, and every query
        // after the ALTER waits behind the ALTER.
        const holder = host.ssh(
            `cd / && runuser -u postgres -- psql -X -q -d ${stack.settings.appName} -c "BEGIN; LOCK TABLE notes_note IN ACCESS SHARE MODE; SELECT pg_sleep(10); COMMIT;"`,
        );
        try {
            await new Promise((r) => setTimeout(r, 1000));
            const { report, result } = await underLoad("v2 (lock timeout)", () => stack.activate("v2", false));
            assert.notStrictEqual(result.code, 0, "the migration should have timed out on its lock");
            assert.match(output(result), /migration of v2 failed in notes\.0002_note_author \(exit 1\): .*canceling statement due to lock timeout/);
            assert.match(output(result), /traffic never left blue \(v1\)/);
            assert.deepStrictEqual(report.failed, [], describeLoad(report));
            assert.deepStrictEqual(Object.keys(report.byVersion), ["v1"], describeLoad(report));
            assert.deepStrictEqual(await schema(), before);
        } finally {
            await holder;
        }
        await assertRowsKept();
    });

    it("v2 with an additive migration deploys under load with 0 failed requests; v1's page assets resolve during and after", async () => {
        const assets = watchAssets(site, v1Assets);
        let assetReport: AssetReport;
        let step;
        try {
            step = await underLoad("v2 (additive)", async () => {
                const r = await stack.activate("v2");
                await stack.retire("v1");
                return r;
            });
        } finally {
            assetReport = await assets.stop();
        }
        const { report, result } = step;
        console.log(
            `      assets: ${assetReport.fetches} fetches, ${assetReport.failed.length} failed, stylesheets seen ${[...assetReport.stylesheets].join(" ")}`,
        );
        assert.match(output(result), /migration-safety gate passed: 1 pending migration/);
        // The rehearsal: v1 in a transient unit with the slot's hardening, on a migrated copy of the schema.
        assert.match(output(result), /rehearsal: starting v1 on 127\.0\.0\.1:\d+ against shop_rehearsal_[0-9a-f]{8}/);
        assert.match(output(result), /migration rehearsal passed in [\d.]+s: v1 answers \/healthz 200, \/ 200(, \/healthz 200)? on v2's schema/);
        assert.ok(
            output(result).indexOf("migration rehearsal passed") < output(result).indexOf("migrate (attempt 1 of 1)"),
            "the rehearsal runs before the real migration",
        );
        assert.strictEqual(
            (await host.sshOk("systemctl list-units --all --no-legend 'shop-deploy-rehearsal*' | wc -l")).trim(),
            "0",
            "the rehearsal's unit is gone",
        );
        assert.strictEqual(await stack.sql("SELECT count(*) FROM pg_database WHERE datname LIKE '%rehearsal%'"), "0", "the scratch database is gone");
        assert.match(output(result), /Applying notes\.0002_note_author\.\.\. OK/);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.ok(report.byVersion.v1 > 0 && report.byVersion.v2 > 0, describeLoad(report));
        assert.deepStrictEqual(assetReport.failed, []);
        assert.strictEqual(assetReport.stylesheets.size, 2, "pages of both releases were seen during the shift");
        assert.deepStrictEqual(await schema(), { columns: "author,created_at,id,text", applied: "0001_initial,0002_note_author" });
        for (const a of v1Assets) assert.strictEqual((await siteRequest(site, a)).status, 200, `${a} after the shift`);
        await assertRowsKept();
    });

    it("contract, step 1: v2b stops using author; deploys with 0 failed requests while v2 (which reads it) serves", async () => {
        const { report, result } = await underLoad("v2b (stops using author)", async () => {
            await stack.prepare("v2b");
            const r = await stack.activate("v2b");
            await stack.retire("v2");
            return r;
        });
        assert.match(output(result), /migration-safety gate passed/);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.ok(report.byVersion.v2 > 0 && report.byVersion.v2b > 0, describeLoad(report));
        assert.strictEqual(await columns(), "author,created_at,id,text", "the column stays until the next release");
        await assertRowsKept();
    });

    it("contract, step 2: v2c's drop of author is refused until acknowledged; acknowledged, it deploys with 0 failed requests", async () => {
        const refused = await underLoad("v2c (not acknowledged)", async () => {
            await stack.prepare("v2c");
            return stack.activate("v2c", false);
        });
        assert.notStrictEqual(refused.result.code, 0);
        assert.match(output(refused.result), /notes\.0004_drop_note_author: drop_column notes_note\.author/);
        assert.match(output(refused.result), new RegExp(`- ${DROP_AUTHOR.replace(/\./g, "\\.")}`));
        assert.deepStrictEqual(refused.report.failed, [], describeLoad(refused.report));
        assert.deepStrictEqual(Object.keys(refused.report.byVersion), ["v2b"]);
        assert.strictEqual(await columns(), "author,created_at,id,text");

        const acked = new LocalStack(host, localStackSettings({ ...MIGRATIONS, allowContractOperations: [DROP_AUTHOR] }));
        const { report, result } = await underLoad("v2c (acknowledged)", async () => {
            const r = await acked.activate("v2c");
            await acked.retire("v2b");
            return r;
        });
        assert.match(output(result), new RegExp(`acknowledged contract operation: ${DROP_AUTHOR.replace(/\./g, "\\.")}`));
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.ok(report.byVersion.v2b > 0 && report.byVersion.v2c > 0, describeLoad(report));
        assert.deepStrictEqual(await schema(), {
            columns: "created_at,id,text",
            applied: "0001_initial,0002_note_author,0003_stop_using_note_author,0004_drop_note_author",
        });
        await assertRowsKept();
    });

    it("v2-failing: a migration failing in its second operation leaves v2c serving and the schema as it was", async () => {
        const before = await schema();
        const { report, result } = await underLoad("v2-failing", async () => {
            await stack.prepare("v2-failing");
            return stack.activate("v2-failing", false);
        });
        assert.notStrictEqual(result.code, 0);
        assert.match(
            output(result),
            /migration of v2-failing failed in notes\.0005_note_title_short_text \(exit 1\): .*check constraint "notes_note_text_short"/,
        );
        assert.match(output(result), /traffic never left \w+ \(v2c\)/);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.deepStrictEqual(Object.keys(report.byVersion), ["v2c"]);
        // Django ran 0005 in one transaction: its first operation (ADD COLUMN title) went with it.
        assert.deepStrictEqual(await schema(), before);
        await assertRowsKept();
    });

    it("shared state stays outside the release dirs; each slot gets its release's cache key prefix; pruned releases take their assets", async () => {
        const l = stack.layout;
        const { slot, version } = (await live())!;
        assert.strictEqual(version, "v2c");
        assert.strictEqual((await host.sshOk(`readlink ${l.releasesDir}/v2c/media ${l.releasesDir}/v2c/.env`)).trim(), `${l.mediaDir}\n${l.envFile}`);
        assert.match(await host.sshOk(`cat ${l.slotsDir}/${slot}.env`), /^CACHE_KEY_PREFIX=shop:v2c$/m);
        assert.strictEqual(JSON.parse((await siteRequest(site, "/healthz")).body).cache_key_prefix, "shop:v2c");
        // releasesToKeep 3: v1 and v2-drop (the only releases with v1's stylesheet) are gone, and so are its files.
        const kept = (await host.sshOk(`ls ${l.releasesDir}`)).trim().split("\n");
        assert.ok(!kept.includes("v1") && !kept.includes("v2-drop"), `kept: ${kept.join(", ")}`);
        for (const a of v1Assets.slice(0, 1)) assert.strictEqual((await siteRequest(site, a)).status, 404, `${a} after v1 was pruned`);
        const current = cssOf((await siteRequest(site, "/")).body)!;
        assert.strictEqual((await siteRequest(site, current)).status, 200);
    });
});
