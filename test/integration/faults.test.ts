// Faults around a deploy, against real HAProxy + NGINX + app processes under constant GET+POST
// load through NGINX: HAProxy killed or restarted (at rest and mid-shift), HAProxy's state file
// that cannot be saved during a rollback, a deploy worker killed at 50 %. Each asserts the
// requests that failed and the state the host is left in. Scenarios run in order on one stack.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { otherSlot, Slot } from "../../lib/host-layout";
import { describeRun, figures, sleep, Stack } from "../../dev/loopback/harness";
import { formatLoad, LoadReport, startLoad } from "../../dev/loopback/load";

const RATE = 80;
const GATES = ["--max-error-ratio", "0.01", "--health-timeout", "20s", "--drain-timeout", "10s"];

/** Releases named by the answers since `since` (the load generator does not always hand over the header: "-"). */
function versionsServed(r: LoadReport, since = 0): string[] {
    return [...new Set(r.records.filter((x) => x.t >= since && x.version !== "-").map((x) => x.version))].sort();
}

function failuresOf(r: LoadReport): string {
    return `${JSON.stringify(r.statusCounts)} ${r.errorMessages.slice(0, 5).join("; ")}`;
}

describe("faults under load: HAProxy down, state that cannot be saved, a killed worker", function () {
    this.timeout(300_000);
    const stack = new Stack({ appName: "nobody", keepPreviousWarm: true });
    let liveSlot: Slot = "blue";
    let liveVersion = "v1";

    const load = (name: string) => startLoad({ port: stack.ports.https, host: stack.domain, rate: RATE, postEvery: 4, runId: `${name}-${Date.now()}` });

    const assertAllOn = async (slot: Slot, why: string) => {
        const w = await stack.weights();
        assert.deepStrictEqual(w, { [slot]: 100, [otherSlot(slot)]: 0 }, `${why}: weights ${JSON.stringify(w)}`);
    };

    /**
     * A SIGKILL takes the requests inside HAProxy with it: a GET is retried by NGINX on its way
     * around HAProxy, a POST is not (resending it could store it twice). So: 0 failed GETs, and at
     * most the few POSTs in flight at the kill, as 502, none replayed.
     */
    const assertOnlyInFlightPostsFailed = (r: LoadReport) => {
        assert.strictEqual(r.getFailures, 0, `failed GETs: ${failuresOf(r)}`);
        assert.ok(r.postFailures <= 3, `more POSTs failed than were in flight at the kill: ${failuresOf(r)}`);
        assert.deepStrictEqual(
            Object.keys(r.statusCounts).filter((k) => !/^(200|201|502)$/.test(k)),
            [],
            `statuses: ${failuresOf(r)}`,
        );
        if (r.postFailures) figures(`${r.postFailures} POST(s) in flight inside HAProxy at the kill got 502 (never resent)`);
    };

    const assertNoReplayedPosts = (r: LoadReport) => {
        const seen = new Map<string, number>();
        for (const p of stack.posts()) seen.set(p.id, (seen.get(p.id) ?? 0) + 1);
        assert.deepStrictEqual(
            [...seen].filter(([, n]) => n > 1),
            [],
            "a POST reached the app more than once",
        );
        for (const id of r.postsAcknowledged) assert.strictEqual(seen.get(id), 1, `acknowledged POST ${id} is not recorded exactly once`);
    };

    const status = async () => {
        const run = await stack.agent(["status", "--json"]);
        assert.strictEqual(run.code, 0, describeRun(run));
        return JSON.parse(run.stdout);
    };

    const audit = () =>
        fs
            .readFileSync(stack.layout.auditLog, "utf8")
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l));

    before(async function () {
        this.timeout(120_000);
        await stack.start();
        const env = await stack.agent(["write-env"], `POSTS_LOG=${stack.postsLog}\n`);
        assert.strictEqual(env.code, 0, describeRun(env));
        for (const v of ["v1", "v2", "v3", "v4", "v5", "v6"]) {
            const run = await stack.agent(["prepare", "--version", v, "--source", stack.makeArtifact(v)]);
            assert.strictEqual(run.code, 0, describeRun(run));
        }
        const first = await stack.agent(["activate", "--version", "v1", "--shift-plan", "100", ...GATES]);
        assert.strictEqual(first.code, 0, describeRun(first));
        await assertAllOn("blue", "first release");
    });

    after(async function () {
        this.timeout(120_000);
        await stack.stop();
    });

    it("HAProxy SIGKILL at rest, restarted 1 s later: 0 failed GETs (NGINX goes straight to the live slot; only POSTs in flight at the kill may fail)", async () => {
        const l = load("kill-rest");
        await sleep(1500);
        const crash = await stack.crashHaproxy("crash", 1000);
        await sleep(1500);
        const r = await l.stop();
        figures(formatLoad(`HAProxy SIGKILL at rest (down ${crash.downMs} ms)`, r));
        assertOnlyInFlightPostsFailed(r);
        assert.deepStrictEqual(versionsServed(r), [liveVersion], "only the live release answered");
        assertNoReplayedPosts(r);
        await assertAllOn(liveSlot, "after the restart");
    });

    it("HAProxy SIGKILL at the 50 % step: the shift completes, 0 failed GETs (only POSTs in flight at the kill may fail)", async () => {
        const l = load("kill-shift");
        const agent = stack.spawnAgent(["activate", "--version", "v2", "--shift-plan", "10%:2s,50%:5s,100%", ...GATES]);
        await agent.waitFor(/step 2\/3 \(50%\):/);
        await sleep(500);
        const crash = await stack.crashHaproxy("crash", 1000);
        const run = await agent.done;
        await sleep(500);
        const r = await l.stop();
        figures(formatLoad(`HAProxy SIGKILL at 50 % (down ${crash.downMs} ms)`, r));
        assert.strictEqual(run.code, 0, describeRun(run));
        assertOnlyInFlightPostsFailed(r);
        assertNoReplayedPosts(r);
        await assertAllOn("green", "after the shift");
        liveSlot = "green";
        liveVersion = "v2";
        assert.strictEqual(fs.readFileSync(stack.layout.nginxLiveSlotFile, "utf8").includes(`127.0.0.1:${stack.ports.green} backup`), true);
    });

    it("systemctl restart haproxy (state saved, soft stop, start) at the 10 % step: requests in flight complete, the shift completes, 0 failed requests", async () => {
        const l = load("restart-shift");
        const agent = stack.spawnAgent(["activate", "--version", "v3", "--shift-plan", "10%:4s,50%:2s,100%", ...GATES]);
        await agent.waitFor(/step 1\/3 \(10%\):/);
        // Writes inside HAProxy when it is told to stop, as any busy site has: they must finish
        // (NGINX never sends a POST twice, so one cut off by the stop would fail).
        const inFlight = Array.from({ length: 6 }, (_, i) => stack.httpsPost("/orders?ms=1500", { id: `restart-slow-${Date.now()}-${i}` }));
        await sleep(500);
        const crash = await stack.crashHaproxy("restart", 300);
        const run = await agent.done;
        const slow = await Promise.all(inFlight);
        await sleep(500);
        const r = await l.stop();
        figures(formatLoad(`HAProxy restart at 10 % (down ${crash.downMs} ms)`, r));
        figures(`POSTs in flight during the restart: ${slow.map((x) => `${x.status}/${x.ms}ms`).join(", ")}`);
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.deepStrictEqual(
            slow.map((x) => x.status),
            slow.map(() => 201),
            "every write in flight when HAProxy was stopped completed",
        );
        assert.strictEqual(r.failures, 0, `failed requests: ${failuresOf(r)}`);
        assertNoReplayedPosts(r);
        await assertAllOn("blue", "after the shift");
        liveSlot = "blue";
        liveVersion = "v3";
    });

    it("HAProxy's state cannot be saved during a rollback: traffic back on the old slot, the new one stopped, and the next command finishes the recovery", async () => {
        const stateFile = stack.layout.haproxyStateFile;
        const l = load("unsaved");
        const agent = stack.spawnAgent(["activate", "--version", "v4", "--shift-plan", "10%:3s,50%:3s,100%", ...GATES]);
        await agent.waitFor(/step 1\/3 \(10%\):/);
        // The state file's place taken by a directory: every save (rename over it) fails from here,
        // as on a read-only or full state dir.
        fs.rmSync(stateFile, { force: true });
        fs.mkdirSync(stateFile);
        const run = await agent.done;
        const rolledBackAt = Date.now();
        assert.strictEqual(run.code, 1, describeRun(run));
        await assertAllOn(liveSlot, "right after the failed rollback");
        assert.ok(!fs.existsSync(path.join(stack.runDir, `app-${otherSlot(liveSlot)}.pid`)), `the new slot was stopped\n${describeRun(run)}`);
        const st = await status();
        assert.deepStrictEqual([st.deploying?.version, st.interrupted, st.lock], ["v4", true, null], "recorded as interrupted, lock free");

        // HAProxy restarts before anyone fixed the disk: it starts without a saved state (config
        // weights 100/100), and still only the live release may answer.
        await stack.crashHaproxy("crash", 500);
        await sleep(3000);
        const r = await l.stop();
        figures(formatLoad("state unsaved during a rollback, then a HAProxy restart", r));
        assert.strictEqual(r.failures, 0, `failed requests: ${failuresOf(r)}`);
        assert.deepStrictEqual(
            versionsServed(r, rolledBackAt),
            [liveVersion],
            `only the live release answered after the rollback: ${JSON.stringify(r.byVersion)}`,
        );
        assertNoReplayedPosts(r);

        // The disk is fixed; the next command that takes the lock restores and saves the committed state.
        fs.rmdirSync(stateFile);
        const prune = await stack.agent(["prune", "--keep", "10"]);
        assert.strictEqual(prune.code, 0, describeRun(prune));
        assert.match(prune.stdout, /found an interrupted deploy of v4 on green/);
        await assertAllOn(liveSlot, "after the recovery");
        assert.match(fs.readFileSync(stateFile, "utf8"), /# be_id/);
        const after = await status();
        assert.strictEqual(after.deploying, null);
        const last = audit().filter((a) => a.command === "recover");
        assert.strictEqual(last[last.length - 1].abandoned, "v4@green");
    });

    it("a deploy worker SIGKILLed at 50 %: status says interrupted, and `recover` (the boot unit's command) restores the committed state", async () => {
        const l = load("worker-kill");
        const agent = stack.spawnAgent(["activate", "--version", "v5", "--shift-plan", "10%:1s,50%:30s,100%", ...GATES]);
        await agent.waitFor(/step 2\/3 \(50%\):/);
        const holder = JSON.parse(fs.readFileSync(stack.layout.lockFile, "utf8"));
        process.kill(holder.pid, "SIGKILL");
        const dead = await agent.done;
        assert.notStrictEqual(dead.code, 0);
        assert.deepStrictEqual(await stack.weights(), { [liveSlot]: 50, [otherSlot(liveSlot)]: 50 }, "left split by the dead worker");
        const st = await status();
        assert.strictEqual(st.interrupted, true);

        const run = await stack.agent(["recover"]);
        await sleep(1000);
        const r = await l.stop();
        figures(formatLoad("worker SIGKILL at 50 %, then recover", r));
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.match(run.stdout, new RegExp(`recovered: all traffic on ${liveSlot} \\(${liveVersion}\\)`));
        await assertAllOn(liveSlot, "after recover");
        assert.ok(!fs.existsSync(path.join(stack.runDir, `app-${otherSlot(liveSlot)}.pid`)), "the interrupted deploy's slot is stopped");
        assert.strictEqual(fs.readlinkSync(stack.layout.currentLink), `releases/${liveVersion}`);
        assert.strictEqual(r.failures, 0, `failed requests: ${failuresOf(r)}`);
        const again = await stack.agent(["recover"]);
        assert.strictEqual(again.code, 0, describeRun(again));
        assert.match(again.stdout, /nothing to recover/);
    });
});
