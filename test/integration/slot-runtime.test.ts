// What a live slot depends on besides its release (its port, health path, Host of the checks, start
// command, app environment) belongs to its activation: changing it in the stack config on a live
// stack never reaches the running slot; the next activation, even of the same version, starts the
// idle slot with it and shifts as for a new release; a rollback returns to what the release ran
// with. Real HAProxy + NGINX + app processes, constant GET+POST load through NGINX; scenarios run in
// order on one stack.
import * as assert from "assert";
import * as fs from "fs";
import { otherSlot, Slot } from "../../lib/host-layout";
import { describeRun, figures, sleep, Stack } from "../../dev/loopback/harness";
import { formatLoad, LoadReport, RunningLoad, startLoad } from "../../dev/loopback/load";

const RATE = 60;
const GATES = ["--max-error-ratio", "0.01", "--health-timeout", "8s", "--drain-timeout", "10s", "--min-requests-per-step", "0"];
const PLAN = ["--shift-plan", "10%:2s,50%:2s,100%"];

function failuresOf(r: LoadReport): string {
    return `${JSON.stringify(r.statusCounts)} ${r.errorMessages.slice(0, 5).join("; ")}`;
}

/** What the answers in [from, to) named in the header the load generator reads. */
function served(r: Pick<LoadReport, "records">, from = 0, to = Infinity): string[] {
    return [...new Set(r.records.filter((x) => x.t >= from && x.t < to && x.version !== "-").map((x) => x.version))].sort();
}

/** Requests of a running load that failed so far (not 2xx/3xx, or no answer). */
function failedSoFar(l: RunningLoad): number {
    return l.records.filter((x) => x.status < 200 || x.status >= 400).length + l.errorRecords.length;
}

describe("settings a live slot depends on belong to its activation", function () {
    this.timeout(300_000);
    const stack = new Stack({ appName: "nobody", keepPreviousWarm: true });
    let live: Slot = "blue";

    const load = (name: string, versionHeader?: string) =>
        startLoad({ port: stack.ports.https, host: stack.domain, rate: RATE, postEvery: 4, runId: `${name}-${Date.now()}`, versionHeader });

    const status = async () => {
        const run = await stack.agent(["status", "--json"]);
        assert.strictEqual(run.code, 0, describeRun(run));
        return JSON.parse(run.stdout);
    };

    const assertAllOn = async (slot: Slot, why: string) => {
        const w = await stack.weights();
        assert.deepStrictEqual(w, { [slot]: 100, [otherSlot(slot)]: 0 }, `${why}: weights ${JSON.stringify(w)}`);
    };

    /** HAProxy's check state of a slot, sampled until `until` resolves: every sample must be UP. */
    const watchUp = (slot: Slot) => {
        const seen = new Set<string>();
        let stop = false;
        const done = (async () => {
            while (!stop) {
                const s = (await stack.runtime.stats())[slot];
                seen.add(s?.status ?? "none");
                await sleep(100);
            }
        })();
        return async () => {
            stop = true;
            await done;
            return [...seen];
        };
    };

    const env = (greeting: string) => `POSTS_LOG=${stack.postsLog}\nAPP_GREETING=${greeting}\n`;

    before(async function () {
        this.timeout(120_000);
        await stack.start();
        const w = await stack.agent(["write-env"], env("hello"));
        assert.strictEqual(w.code, 0, describeRun(w));
        for (const v of ["v1", "v2"]) {
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

    it("a release that brings its own health path and start command shifts like any other: the old slot keeps its own check, 0 failed", async () => {
        const l = load("own-health");
        await sleep(1000);
        await stack.reconfigure({ healthPath: "/ready", startCommand: "node app.cjs --health-path /ready" });
        // The live slot (checked on /healthz, which the new path's release answers 404 on) stays UP.
        await sleep(3000);
        const oldUp = watchUp(live);
        const run = await stack.agent(["activate", "--version", "v2", ...PLAN, ...GATES]);
        const oldStates = await oldUp();
        await sleep(500);
        const r = await l.stop();
        figures(formatLoad("v1 (/healthz) -> v2 (/ready, own start command)", r));
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.strictEqual(r.failures, 0, `failed requests: ${failuresOf(r)}`);
        assert.deepStrictEqual(oldStates, ["UP"], `the old slot's HAProxy states during the shift: ${oldStates}`);
        assert.deepStrictEqual(served(r), ["v1", "v2"], "both releases answered during the shift");
        live = otherSlot(live);
        await assertAllOn(live, "after the shift");
        const maps = fs.readFileSync(stack.layout.haproxyHealthPathMap, "utf8");
        assert.match(maps, new RegExp(`^${live} /ready$`, "m"));
        assert.match(maps, new RegExp(`^${otherSlot(live)} /healthz$`, "m"), "the warm previous release is still checked on its own path");
        const st = await status();
        assert.strictEqual(st.slots.find((s: { slot: string }) => s.slot === otherSlot(live)).status, "UP", "the warm previous release passes its checks");
    });

    it("healthPath changed on a live stack to a path the release does not answer: no request fails, the same version's shift stops at the health gate", async () => {
        const l = load("bad-path");
        await sleep(1000);
        await stack.reconfigure({ healthPath: "/missing-health" });
        await sleep(3000);
        const run = await stack.agent(["activate", "--version", "v2", ...PLAN, ...GATES]);
        await sleep(500);
        const r = await l.stop();
        figures(formatLoad("healthPath -> /missing-health on live v2", r));
        assert.notStrictEqual(run.code, 0, `the shift onto /missing-health should fail: ${describeRun(run)}`);
        assert.match(run.stdout + run.stderr, /settings it depends on changed \(healthPath "\/ready" -> "\/missing-health"\)/);
        assert.match(run.stdout + run.stderr, /health gate failed: \w+ \(v2\) did not answer 200 on \/missing-health/);
        assert.strictEqual(r.failures, 0, `failed requests: ${failuresOf(r)}`);
        assert.deepStrictEqual(served(r), ["v2"]);
        await assertAllOn(live, "traffic never left the live slot");
        assert.strictEqual((await status()).slots.find((s: { slot: string }) => s.slot === live).status, "UP");
    });

    it("healthPath and start command changed without a new version: a gated shift of the same version onto the idle slot; then a no-op", async () => {
        const l = load("same-version");
        await sleep(1000);
        await stack.reconfigure({ healthPath: "/alive", startCommand: "node app.cjs --health-path /alive" });
        const run = await stack.agent(["activate", "--version", "v2", ...PLAN, ...GATES, "--json"]);
        await sleep(500);
        const r = await l.stop();
        figures(formatLoad("v2 (/ready) -> v2 (/alive)", r));
        assert.strictEqual(run.code, 0, describeRun(run));
        const result = JSON.parse(run.stdout);
        assert.notStrictEqual(result.noop, true, "a changed health path must not be a no-op");
        assert.strictEqual(result.slot, otherSlot(live));
        assert.strictEqual(r.failures, 0, `failed requests: ${failuresOf(r)}`);
        live = otherSlot(live);
        await assertAllOn(live, "after the same-version shift");
        const again = await stack.agent(["activate", "--version", "v2", ...PLAN, ...GATES, "--json"]);
        assert.strictEqual(again.code, 0, describeRun(again));
        assert.strictEqual(JSON.parse(again.stdout).noop, true, "the same version with the same settings is a no-op");
    });

    it("slotBasePort changed on a live stack: the reload keeps the live slot on its port (0 failed); the next activation moves it", async () => {
        const oldPorts = { blue: stack.ports.blue, green: stack.ports.green };
        const l = load("ports");
        await sleep(1000);
        const reload = await stack.reconfigure({ newSlotPorts: true });
        assert.ok(reload, "haproxy.cfg changes with the slot ports");
        // Longer than HAProxy needs to mark a server down (fall 2 x inter 1 s).
        await sleep(4000);
        const failedAtRest = failedSoFar(l);
        const run = await stack.agent(["activate", "--version", "v2", ...PLAN, ...GATES]);
        await sleep(500);
        const r = await l.stop();
        figures(formatLoad(`slotBasePort ${oldPorts.blue} -> ${stack.ports.blue}: reload, then the shift onto the new port`, r));
        assert.strictEqual(failedAtRest, 0, "failed requests after the reload, before any activation");
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.match(run.stdout + run.stderr, /port \(slotBasePort\) \d+ -> \d+/);
        assert.strictEqual(r.failures, 0, `failed requests: ${failuresOf(r)}`);
        const moved = otherSlot(live);
        const st = await status();
        const port = (slot: Slot) => st.slots.find((s: { slot: string }) => s.slot === slot).port;
        assert.strictEqual(port(moved), stack.ports[moved], "the new live slot listens on the new port");
        assert.strictEqual(port(live), oldPorts[live], "the warm previous release stays where it was started");
        assert.ok(
            fs.readFileSync(stack.layout.nginxLiveSlotFile, "utf8").includes(`127.0.0.1:${stack.ports[moved]} backup`),
            "NGINX's backup upstream follows the live slot",
        );
        live = moved;
        await assertAllOn(live, "after the move");
    });

    it("appEnv changed: the same version shifts onto the new environment; a rollback (warm, then cold) brings the old one back", async () => {
        const l = load("env", "X-Greeting");
        await sleep(1000);
        const w = await stack.agent(["write-env"], env("bonjour"));
        assert.strictEqual(w.code, 0, describeRun(w));
        await sleep(1000);
        const untouched = served(l, 0, Date.now());
        const run = await stack.agent(["activate", "--version", "v2", ...PLAN, ...GATES]);
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.match(run.stdout + run.stderr, /appEnv changed/);
        assert.doesNotMatch(run.stdout + run.stderr, /bonjour|hello/, "environment values are never printed");
        const afterShift = Date.now();
        await sleep(1500);
        live = otherSlot(live);
        const warm = await stack.agent(["rollback", "--json"]);
        assert.strictEqual(warm.code, 0, describeRun(warm));
        assert.strictEqual(JSON.parse(warm.stdout).mode, "warm-flip");
        const afterWarm = Date.now();
        await sleep(1500);
        live = otherSlot(live);
        // Back to the new environment, this time without keeping the previous slot warm: the
        // rollback then starts the old environment's release again from its snapshot.
        const forward = await stack.agent(["activate", "--version", "v2", ...PLAN, ...GATES, "--no-keep-previous-warm"]);
        assert.strictEqual(forward.code, 0, describeRun(forward));
        live = otherSlot(live);
        const afterForward = Date.now();
        await sleep(1500);
        const cold = await stack.agent(["rollback", "--json", ...GATES, ...PLAN]);
        assert.strictEqual(cold.code, 0, describeRun(cold));
        assert.notStrictEqual(JSON.parse(cold.stdout).mode, "warm-flip");
        const afterCold = Date.now();
        await sleep(1500);
        const r = await l.stop();
        figures(formatLoad("appEnv hello -> bonjour, warm rollback, forward, cold rollback", r));
        assert.deepStrictEqual(untouched, ["hello"], "write-env alone changes nothing that runs");
        assert.strictEqual(r.failures, 0, `failed requests: ${failuresOf(r)}`);
        const window = (from: number, to: number) => served(r, from + 300, to);
        assert.deepStrictEqual(window(afterShift, afterShift + 1500), ["bonjour"], "after the shift");
        assert.deepStrictEqual(window(afterWarm, afterWarm + 1500), ["hello"], "after the warm rollback");
        assert.deepStrictEqual(window(afterForward, afterForward + 1500), ["bonjour"], "after the shift forward");
        assert.deepStrictEqual(window(afterCold, afterCold + 1500), ["hello"], "after the cold rollback: the release's own snapshot");
    });
});
