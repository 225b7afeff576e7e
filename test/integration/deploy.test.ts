// The agent against real HAProxy + NGINX + app processes on loopback, under constant load through
// NGINX. Scenarios run in order on one stack; each starts from the state the previous one left,
// which the comments track (live release and slot).
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { otherSlot, Slot } from "../../lib/host-layout";
import { formatLoad, LoadReport, startLoad } from "../../dev/loopback/load";
import { describeRun, figures, sleep, Stack } from "../../dev/loopback/harness";

const PLAN = "10%:2s,50%:2s,100%";
const RATE = 100;
const GATES = ["--max-error-ratio", "0.01", "--health-timeout", "20s", "--drain-timeout", "30s"];

describe("agent integration: HAProxy + NGINX + app slots under load", function () {
    this.timeout(300_000);
    const stack = new Stack({ appName: "nobody", keepPreviousWarm: true });
    const suiteStart = Date.now();
    // What is live, tracked across scenarios.
    let liveSlot: Slot = "blue";
    let liveVersion = "v1";

    const load = (name: string, postEvery = 0) =>
        startLoad({ port: stack.ports.https, host: stack.domain, rate: RATE, postEvery, runId: `${name}-${Date.now()}` });

    const assertAllOn = async (slot: Slot, why: string) => {
        const w = await stack.weights();
        assert.deepStrictEqual(w, { [slot]: 100, [otherSlot(slot)]: 0 }, `${why}: weights ${JSON.stringify(w)}`);
    };

    const assertNoReplayedPosts = (r: LoadReport) => {
        const seen = new Map<string, number>();
        for (const p of stack.posts()) seen.set(p.id, (seen.get(p.id) ?? 0) + 1);
        const replayed = [...seen].filter(([, n]) => n > 1);
        assert.deepStrictEqual(replayed, [], "a POST reached the app more than once");
        for (const id of r.postsAcknowledged) assert.strictEqual(seen.get(id), 1, `acknowledged POST ${id} is not recorded exactly once`);
    };

    before(async function () {
        this.timeout(120_000);
        await stack.start();
        const versions: Record<string, Parameters<Stack["makeArtifact"]>[1]> = {
            v1: {},
            v2: {},
            "v3-unhealthy": { failHealth: true },
            "v3-errors": { errorEvery: 5 },
            v4: { bootDelayMs: 1500 },
            v5: {},
            v6: {},
            v7: {},
            v8: {},
            v9: {},
        };
        const env = await stack.agent(["write-env"], `POSTS_LOG=${stack.postsLog}\nSECRET_TOKEN=do-not-print-me\n`);
        assert.strictEqual(env.code, 0, describeRun(env));
        await Promise.all(
            Object.entries(versions).map(async ([v, b]) => {
                const run = await stack.agent(["prepare", "--version", v, "--source", stack.makeArtifact(v, b)]);
                assert.strictEqual(run.code, 0, describeRun(run));
            }),
        );
        const first = await stack.agent(["activate", "--version", "v1", "--shift-plan", "100", ...GATES]);
        assert.strictEqual(first.code, 0, describeRun(first));
        await assertAllOn("blue", "first release");
        const probe = await stack.httpsGet("/");
        assert.deepStrictEqual([probe.status, probe.version], [200, "v1"]);
    });

    after(async function () {
        this.timeout(120_000);
        await stack.stop();
        console.log(`      integration suite: ${((Date.now() - suiteStart) / 1000).toFixed(1)} s`);
    });

    it("write-env: root:<app> 0640 (the app reads, never rewrites it), values never printed", async () => {
        const run = await stack.agent(["write-env"], `POSTS_LOG=${stack.postsLog}\nSECRET_TOKEN=do-not-print-me\n`);
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.ok(!run.stdout.includes("do-not-print-me") && !run.stderr.includes("do-not-print-me"));
        assert.match(run.stdout, /wrote 2 variable\(s\) .*: POSTS_LOG, SECRET_TOKEN/);
        const st = fs.statSync(stack.layout.envFile);
        assert.strictEqual(st.mode & 0o777, 0o640);
        if (process.getuid?.() === 0) assert.deepStrictEqual([st.uid, st.gid], [0, 65534], "root's, the app's group (nogroup) may read");
        const bad = await stack.agent(["write-env"], "GOOD=1\nnot a pair secret\n");
        assert.strictEqual(bad.code, 1);
        assert.match(bad.stderr, /line 2/);
        assert.ok(!bad.stderr.includes("secret"));
    });

    it("prepare: idempotent, built as the app user, shared links, static merged; a failed run leaves nothing and a re-run converges", async () => {
        const again = await stack.agent(["prepare", "--version", "v1", "--source", path.join(stack.root, "artifacts", "v1.tar.gz")]);
        assert.strictEqual(again.code, 0, describeRun(again));
        assert.match(again.stdout, /already prepared/);
        const rel = path.join(stack.layout.releasesDir, "v2");
        const built = fs.readFileSync(path.join(stack.layout.buildsDir, "v2", "BUILT"), "utf8").trim();
        assert.strictEqual(built, `built v2 by ${process.getuid?.() === 0 ? 65534 : process.getuid?.()}`, "built as the app user, into the build dir");
        assert.strictEqual(fs.readlinkSync(path.join(rel, "media")), stack.layout.mediaDir);
        assert.strictEqual(fs.readlinkSync(path.join(rel, ".env")), stack.layout.envFile);
        assert.ok(fs.existsSync(path.join(stack.layout.staticDir, "css", "app.v2.css")));
        assert.ok(fs.existsSync(path.join(stack.layout.staticDir, "common.css")));
        // Static files are served by NGINX from the shared dir.
        assert.strictEqual((await stack.httpsGet("/static/css/app.v1.css")).status, 200);

        // A release whose check fails: nothing published, no temp dir left behind.
        const broken = stack.makeArtifact("v10");
        fs.writeFileSync(path.join(stack.root, "artifact-src", "v10", "app.cjs"), "this is not javascript(");
        execFileSync("tar", ["-czf", broken, "-C", path.join(stack.root, "artifact-src", "v10"), "."]);
        const failed = await stack.agent(["prepare", "--version", "v10", "--source", broken]);
        assert.strictEqual(failed.code, 1, describeRun(failed));
        assert.match(failed.stderr, /check command failed/);
        assert.ok(!fs.existsSync(path.join(stack.layout.releasesDir, "v10")));
        assert.deepStrictEqual(
            fs.readdirSync(stack.layout.releasesDir).filter((n) => n.startsWith(".")),
            [],
        );
        const fixed = await stack.agent(["prepare", "--version", "v10", "--source", stack.makeArtifact("v10")]);
        assert.strictEqual(fixed.code, 0, describeRun(fixed));
    });

    it("a. v1 -> v2 full shift under GET+POST load: 0 failed requests", async () => {
        const l = load("a", 4);
        await sleep(1000);
        const run = await stack.agent(["activate", "--version", "v2", "--shift-plan", PLAN, ...GATES, "--no-keep-previous-warm"]);
        await sleep(1000);
        const r = await l.stop();
        figures(formatLoad("a. v1 -> v2", r));
        figures(`a. activate took ${(run.ms / 1000).toFixed(1)} s`);
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.strictEqual(r.failures, 0, `failed requests: ${JSON.stringify(r.statusCounts)} ${r.errorMessages.join("; ")}`);
        assert.ok(r.byVersion.v1 > 0 && r.byVersion.v2 > 0, `both releases served: ${JSON.stringify(r.byVersion)}`);
        assert.ok(r.postsAcknowledged.length > 0);
        assertNoReplayedPosts(r);
        await assertAllOn("green", "after a");
        assert.ok(!fs.existsSync(path.join(stack.runDir, "app-blue.pid")), "old slot stopped (--no-keep-previous-warm)");
        assert.strictEqual(fs.readlinkSync(stack.layout.currentLink), "releases/v2");
        const audit = fs
            .readFileSync(stack.layout.auditLog, "utf8")
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l));
        const last = audit[audit.length - 1];
        assert.deepStrictEqual([last.command, last.from, last.to, last.result], ["activate", "v1@blue", "v2@green", "ok"]);
        assert.ok(last.durations.total > 0 && last.durations.shift > 0);
        liveSlot = "green";
        liveVersion = "v2";
    });

    it("b. a release that never becomes healthy: traffic never leaves the live one, 0 failed requests", async () => {
        const l = load("b");
        const run = await stack.agent(["activate", "--version", "v3-unhealthy", "--shift-plan", PLAN, "--health-timeout", "5s", "--drain-timeout", "10s"]);
        const r = await l.stop();
        figures(formatLoad("b. v3-unhealthy", r));
        assert.strictEqual(run.code, 1, describeRun(run));
        assert.match(
            run.stderr,
            /error: health gate failed: blue \(v3-unhealthy\) did not answer 200 on \/healthz within 5\.0s \(last answer: HTTP 503.*\); traffic never left green \(v2\); blue stopped/,
        );
        assert.strictEqual(r.failures, 0);
        assert.deepStrictEqual(Object.keys(r.byVersion), [liveVersion], "every response came from the live release");
        await assertAllOn(liveSlot, "after b");
    });

    it("c. a release answering 500 on 20 % of requests: the gate trips at the first step and rolls back", async () => {
        const before = (await stack.runtime.stats()).blue!;
        const l = load("c");
        const run = await stack.agent(["activate", "--version", "v3-errors", "--shift-plan", "10%:3s,50%:2s,100%", ...GATES]);
        const r = await l.stop();
        const after = (await stack.runtime.stats()).blue!;
        const reachedNew = after.stot - before.stot;
        figures(formatLoad("c. v3-errors", r));
        figures(`c. requests that reached v3-errors: ${reachedNew}; failures seen by clients: ${r.failures}`);
        assert.strictEqual(run.code, 1, describeRun(run));
        assert.match(
            run.stderr,
            /error: error-rate gate failed at step 1\/3 \(10%\)( after [\d.]+s)?: blue \(v3-errors\) 5xx \d+ \+ errors 0 of \d+ responses = \d+\.\d% \(max 1\.0%\)(; at least [\d.]+% with 95 % confidence)?; traffic is back on green \(v2\); blue stopped/,
        );
        assert.ok(r.failures > 0, "some 500s reached clients (the gate measures real traffic)");
        assert.strictEqual(r.errors, 0, "no connection errors");
        assert.deepStrictEqual(
            Object.keys(r.statusCounts).filter((s) => s !== "200"),
            ["500"],
        );
        assert.ok(r.failures <= reachedNew, `failures ${r.failures} bounded by what reached the new release (${reachedNew})`);
        assert.ok(r.failures <= Math.ceil(0.2 * 0.1 * RATE * 6), "bounded by 20 % of one 10 % step");
        await assertAllOn(liveSlot, "after c");
    });

    it("d. requests in flight on the old slot when it drains all complete with 200", async () => {
        const l = load("d");
        const agent = stack.spawnAgent(["activate", "--version", "v4", "--shift-plan", "50%:1s,100%", ...GATES, "--no-keep-previous-warm"]);
        await agent.waitFor(/step 1\/2 \(50%\):/);
        const slow = Array.from({ length: 10 }, () => stack.httpsGet("/slow?ms=5000"));
        const run = await agent.done;
        const results = await Promise.all(slow);
        const r = await l.stop();
        figures(formatLoad("d. v4 (slow requests)", r));
        figures(`d. slow requests: ${results.map((s) => `${s.status}/${s.version}/${s.ms}ms`).join(", ")}`);
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.ok(
            results.every((s) => s.status === 200),
            "every in-flight request completed with 200",
        );
        assert.ok(
            results.some((s) => s.version === "v2"),
            "some were on the old slot when it drained",
        );
        assert.match(run.stdout, /green: \d+ request\(s\) still in flight; waiting/);
        const drained = /green \(v2\) drained in (\d+\.\d)s/.exec(run.stdout);
        assert.ok(drained && Number(drained[1]) >= 2, `the drain waited for them: ${drained?.[0]}`);
        assert.ok(run.stdout.indexOf("drained in") < run.stdout.indexOf("green (v2) stopped"), "stopped only after draining");
        assert.strictEqual(r.failures, 0);
        await assertAllOn("blue", "after d");
        liveSlot = "blue";
        liveVersion = "v4";
    });

    it("e. kill -9 of the new slot mid-shift: rollback; GETs see 0 failures; POSTs never replayed", async () => {
        const l = load("e", 4);
        const agent = stack.spawnAgent(["activate", "--version", "v5", "--shift-plan", "10%:4s,50%:3s,100%", ...GATES]);
        await agent.waitFor(/step 1\/3 \(10%\):/);
        await sleep(700);
        const killedAt = Date.now();
        process.kill(stack.slotPid("green"), "SIGKILL");
        const run = await agent.done;
        const r = await l.stop();
        figures(formatLoad("e. v5 killed", r));
        figures(`e. rollback finished ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill; activate took ${(run.ms / 1000).toFixed(1)} s`);
        assert.strictEqual(run.code, 1, describeRun(run));
        assert.match(run.stderr, /gate failed at step 1\/3 \(10%\): green \(v5\).*; traffic is back on blue \(v4\); green stopped/);
        assert.strictEqual(r.getFailures, 0, `GET failures: ${JSON.stringify(r.statusCounts)}`);
        assert.strictEqual(r.errors, 0);
        assertNoReplayedPosts(r);
        await assertAllOn(liveSlot, "after e");
    });

    it("f. HAProxy reload mid-shift keeps the weights; 0 failed requests", async () => {
        const l = load("f");
        const agent = stack.spawnAgent(["activate", "--version", "v6", "--shift-plan", "10%:3s,50%:3s,100%", ...GATES]);
        await agent.waitFor(/step 1\/3 \(10%\):/);
        await sleep(1000);
        const master = stack.haproxyMasterPid();
        const workerBefore = await stack.runtime.pid();
        const reload = await stack.agent(["reload-proxy"]);
        const weightsAfter = await stack.weights();
        const workerAfter = await stack.runtime.pid();
        const run = await agent.done;
        const r = await l.stop();
        figures(formatLoad("f. v6 with a reload", r));
        assert.strictEqual(reload.code, 0, describeRun(reload));
        assert.notStrictEqual(workerAfter, workerBefore, "a new HAProxy worker took over");
        assert.strictEqual(stack.haproxyMasterPid(), master);
        assert.deepStrictEqual(weightsAfter, { green: 10, blue: 90 }, "weights survived the reload");
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.strictEqual(r.failures, 0, `failures: ${JSON.stringify(r.statusCounts)} ${r.errorMessages.join("; ")}`);
        await assertAllOn("green", "after f");
        liveSlot = "green";
        liveVersion = "v6";
    });

    let winner = "";
    let loser = "";

    it("g. two concurrent activations: the second fails fast naming the holder; the first completes", async () => {
        // No load here: the steps pass without traffic.
        const a = stack.spawnAgent(["activate", "--version", "v7", "--shift-plan", PLAN, ...GATES, "--min-requests-per-step", "0"]);
        const b = stack.spawnAgent(["activate", "--version", "v8", "--shift-plan", PLAN, ...GATES, "--min-requests-per-step", "0"]);
        const [ra, rb] = await Promise.all([a.done, b.done]);
        const [win, lose] = ra.code === 0 ? [ra, rb] : [rb, ra];
        winner = win === ra ? "v7" : "v8";
        loser = winner === "v7" ? "v8" : "v7";
        figures(`g. ${loser} failed after ${lose.ms} ms; ${winner} completed in ${(win.ms / 1000).toFixed(1)} s`);
        assert.strictEqual(win.code, 0, describeRun(win));
        assert.strictEqual(lose.code, 3, describeRun(lose));
        assert.match(
            lose.stderr,
            new RegExp(`error: another deploy holds the lock .*: pid \\d+, activate ${winner}, started \\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z \\(\\d+ s ago\\)`),
        );
        assert.ok(lose.ms < 3000, `failed fast (${lose.ms} ms)`);
        await assertAllOn("blue", "after g");
        liveSlot = "blue";
        liveVersion = winner;
    });

    it("h. rollback to the warm previous release: 100 % back within 1 s of the weight flip", async () => {
        const status = JSON.parse((await stack.agent(["status", "--json"])).stdout);
        assert.strictEqual(status.previous.warm, true, JSON.stringify(status));
        const l = load("h");
        await sleep(1500);
        const run = await stack.agent(["rollback", "--json"]);
        await sleep(1500);
        const r = await l.stop();
        assert.strictEqual(run.code, 0, describeRun(run));
        const result = JSON.parse(run.stdout.trim().split("\n").pop()!);
        assert.strictEqual(result.mode, "warm-flip");
        const lastOld = Math.max(...r.records.filter((x) => x.version === liveVersion).map((x) => x.t));
        const firstNew = Math.min(...r.records.filter((x) => x.version === "v6" && x.t >= result.flipAt).map((x) => x.t));
        const afterFlip = r.records.filter((x) => x.t > result.flipAt + 1000);
        const rel = (t: number) => `${t - result.flipAt >= 0 ? "+" : ""}${t - result.flipAt} ms`;
        figures(formatLoad("h. rollback", r));
        figures(
            `h. rollback command ${run.ms} ms (incl. node start and worker); weight flip ${Math.round(result.durations.flip * 1000)} ms; ` +
                `relative to the flip: last ${liveVersion} response ${rel(lastOld)}, first v6 response ${rel(firstNew)}; ${afterFlip.length} responses after flip+1 s, all from v6`,
        );
        assert.ok(lastOld - result.flipAt <= 1000, `last ${liveVersion} response ${lastOld - result.flipAt} ms after the flip`);
        assert.ok(afterFlip.length > 0 && afterFlip.every((x) => x.version === "v6"));
        assert.strictEqual(r.failures, 0);
        await assertAllOn("green", "after h");
        const st = JSON.parse((await stack.agent(["status", "--json"])).stdout);
        assert.deepStrictEqual(st.live, { slot: "green", version: "v6" });
        assert.deepStrictEqual([st.previous.version, st.previous.warm], [winner, true], "the release rolled back from is now the warm previous");
        liveSlot = "green";
        liveVersion = "v6";
    });

    it("h2. deploy/rollback flips to the warm previous release before Node.js starts, and back; the agent records both", async () => {
        const l = load("h2");
        await sleep(1000);
        const flips = [];
        for (const [to, version] of [
            ["blue", winner],
            ["green", "v6"],
        ] as [Slot, string][]) {
            const t0 = Date.now();
            const run = await stack.rollbackScript(["--json"]);
            assert.strictEqual(run.code, 0, describeRun(run));
            const result = JSON.parse(run.stdout.trim().split("\n").pop()!);
            assert.deepStrictEqual([result.mode, result.flippedBy, result.slot, result.version], ["warm-flip", "rollback script", to, version], run.stdout);
            await assertAllOn(to, `after the script's rollback to ${to}`);
            flips.push(`to ${version}: 100 % ${result.flipAt - t0} ms after the script was started, the command took ${run.ms} ms`);
            const last = JSON.parse(fs.readFileSync(stack.layout.auditLog, "utf8").trim().split("\n").pop()!);
            assert.deepStrictEqual([last.command, last.mode, last.by], ["rollback", "warm-flip", "rollback script"]);
            assert.ok(!fs.existsSync(stack.layout.lockFile), "the agent released the lock it took over");
        }
        await sleep(1000);
        const r = await l.stop();
        figures(formatLoad("h2. rollback script", r));
        figures(`h2. ${flips.join("; ")}`);
        assert.strictEqual(r.failures, 0);
        const st = JSON.parse((await stack.agent(["status", "--json"])).stdout);
        assert.deepStrictEqual(st.live, { slot: "green", version: "v6" });
        // Any other argument is the agent's: it checks it before anything changes.
        const bad = await stack.rollbackScript(["--shift-plan", "nonsense"]);
        assert.strictEqual(bad.code, 2, describeRun(bad));
        assert.match(bad.stderr, /--shift-plan/);
        await assertAllOn("green", "a refused argument changes nothing");
    });

    it("a foreground activate killed mid-shift (dropped SSH session) still ends with traffic fully on one slot", async () => {
        const l = load("drop");
        const agent = stack.spawnAgent(["activate", "--version", loser, "--shift-plan", PLAN, ...GATES]);
        await agent.waitFor(/step 1\/3 \(10%\):/);
        agent.child.kill("SIGKILL");
        await agent.done;
        const mid = await stack.weights();
        await stack.waitForLockFree(60_000);
        const r = await l.stop();
        figures(formatLoad("dropped session", r));
        assert.deepStrictEqual(mid, { blue: 10, green: 90 }, "the shift was under way when the session dropped");
        await assertAllOn("blue", "the detached worker finished the shift");
        const st = JSON.parse((await stack.agent(["status", "--json"])).stdout);
        assert.deepStrictEqual(st.live, { slot: "blue", version: loser });
        assert.strictEqual(r.failures, 0);
        liveSlot = "blue";
        liveVersion = loser;
    });

    it("a dead deploy worker leaves a stale lock: reported, recovered to the committed state, and the next run converges", async () => {
        const l = load("stale");
        const agent = stack.spawnAgent(["activate", "--version", "v9", "--shift-plan", "10%:30s,100%", ...GATES]);
        await agent.waitFor(/step 1\/2 \(10%\):/);
        const holder = JSON.parse(fs.readFileSync(stack.layout.lockFile, "utf8"));
        process.kill(holder.pid, "SIGKILL");
        const dead = await agent.done;
        assert.notStrictEqual(dead.code, 0);
        assert.match(dead.stderr, /deploy worker exited .* without a result/);
        assert.deepStrictEqual(await stack.weights(), { blue: 90, green: 10 }, "traffic left split by the dead worker");

        const status = await stack.agent(["status"]);
        assert.match(status.stdout, new RegExp(`lock: STALE, holder is gone \\(pid ${holder.pid}, activate v9`));

        const again = await stack.agent(["activate", "--version", "v9", "--shift-plan", PLAN, ...GATES]);
        const r = await l.stop();
        figures(formatLoad("stale lock recovery", r));
        assert.strictEqual(again.code, 0, describeRun(again));
        assert.match(again.stdout, new RegExp(`found an interrupted deploy of v9 on green .* and a stale lock \\(pid ${holder.pid}, activate v9`));
        assert.match(again.stdout, /recovered: all traffic on blue/);
        assert.strictEqual(r.failures, 0);
        await assertAllOn("green", "after recovery and redeploy");
        const audit = fs.readFileSync(stack.layout.auditLog, "utf8");
        assert.match(audit, /"command":"recover"/);
        liveSlot = "green";
        liveVersion = "v9";
    });

    it("rollback to a cold previous release starts it again and passes the same gates", async () => {
        const act = await stack.agent(["activate", "--version", "v10", "--shift-plan", "100", ...GATES, "--no-keep-previous-warm"]);
        assert.strictEqual(act.code, 0, describeRun(act));
        const before = JSON.parse((await stack.agent(["status", "--json"])).stdout);
        assert.deepStrictEqual([before.live.version, before.previous.version, before.previous.warm], ["v10", "v9", false]);
        const l = load("cold");
        const run = await stack.agent(["rollback", "--shift-plan", "50%:1s,100%"]);
        const r = await l.stop();
        figures(formatLoad("cold rollback", r));
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.match(run.stdout, /previous release green \(v9\) is not running; starting it and passing the same gates/);
        assert.match(run.stdout, /smoke tests passed on green \(v9\)/);
        assert.match(run.stdout, /step 1\/2 \(50%\) gate passed/);
        assert.strictEqual(r.failures, 0);
        await assertAllOn("green", "after the cold rollback");
        const audit = fs
            .readFileSync(stack.layout.auditLog, "utf8")
            .trim()
            .split("\n")
            .map((line) => JSON.parse(line));
        assert.deepStrictEqual([audit[audit.length - 1].command, audit[audit.length - 1].result], ["rollback", "ok"]);
        liveSlot = "green";
        liveVersion = "v9";
    });

    it("retire never stops the live release, keeps or stops the previous one per settings; prune keeps what is in use", async () => {
        const live = await stack.agent(["retire", "--version", liveVersion]);
        assert.strictEqual(live.code, 0, describeRun(live));
        assert.match(live.stdout, /v9 is live on green; it is not stopped/);
        assert.ok(fs.existsSync(path.join(stack.runDir, "app-green.pid")));

        const warm = await stack.agent(["retire", "--version", "v10"]);
        assert.strictEqual(warm.code, 0, describeRun(warm));
        assert.match(warm.stdout, /v10 is the warm previous release on blue; kept running/);
        assert.ok(fs.existsSync(path.join(stack.runDir, "app-blue.pid")));

        // A host configured not to keep the previous release warm: retire stops it.
        const cold = { ...stack.settings, shift: { ...stack.settings.shift, keepPreviousWarm: false } };
        fs.writeFileSync(stack.layout.agentConfigPath, JSON.stringify(cold));
        try {
            const stop = await stack.agent(["retire", "--version", "v10"]);
            assert.strictEqual(stop.code, 0, describeRun(stop));
            assert.match(stop.stdout, /stopping blue \(v10\)/);
            assert.ok(!fs.existsSync(path.join(stack.runDir, "app-blue.pid")), "its slot was stopped");
        } finally {
            fs.writeFileSync(stack.layout.agentConfigPath, JSON.stringify(stack.settings));
        }
        await assertAllOn("green", "retire never moves traffic");

        const pruned = await stack.agent(["prune", "--keep", "1"]);
        assert.strictEqual(pruned.code, 0, describeRun(pruned));
        const left = fs.readdirSync(stack.layout.releasesDir).sort();
        assert.deepStrictEqual(left, ["v10", "v9"], "the live release and the previous (rollback target) stay");
        assert.ok(!fs.existsSync(path.join(stack.layout.staticDir, "css", "app.v1.css")), "a pruned release's own static file is gone");
        assert.ok(fs.existsSync(path.join(stack.layout.staticDir, "css", "app.v9.css")));
        assert.ok(fs.existsSync(path.join(stack.layout.staticDir, "common.css")), "a file kept releases still use stays");
        assert.strictEqual((await stack.httpsGet("/static/css/app.v10.css")).status, 200);

        const st = await stack.agent(["status"]);
        assert.strictEqual(st.code, 0, describeRun(st));
        console.log(st.stdout.replace(/^/gm, "      "));
    });
});
