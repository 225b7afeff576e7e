// The step gates against a real HAProxy: they judge during the pause on HAProxy's own counters, so
// a bad release is rolled back as soon as the evidence is there, a step nobody used is not waved
// through, and a release much slower than the live one does not take the traffic.
import * as assert from "assert";
import { formatLoad, startLoad } from "../../dev/loopback/load";
import { describeRun, figures, Stack } from "../../dev/loopback/harness";

const RATE = 100;
const GATES = ["--max-error-ratio", "0.01", "--health-timeout", "20s", "--drain-timeout", "10s", "--min-requests-per-step", "10"];

describe("agent integration: step gates on HAProxy's figures", function () {
    this.timeout(300_000);
    const stack = new Stack({ appName: "nobody", keepPreviousWarm: false });
    const load = (name: string) => startLoad({ port: stack.ports.https, host: stack.domain, rate: RATE, runId: `${name}-${Date.now()}` });

    before(async function () {
        this.timeout(120_000);
        await stack.start();
        const env = await stack.agent(["write-env"], `POSTS_LOG=${stack.postsLog}\n`);
        assert.strictEqual(env.code, 0, describeRun(env));
        const versions = { v1: {}, "v2-all-errors": { failAfter: 5 }, "v2-slow": { delayMs: 300 }, v2: {}, v3: {} };
        await Promise.all(
            Object.entries(versions).map(async ([v, b]) => {
                const run = await stack.agent(["prepare", "--version", v, "--source", stack.makeArtifact(v, b)]);
                assert.strictEqual(run.code, 0, describeRun(run));
            }),
        );
        const first = await stack.agent(["activate", "--version", "v1", "--shift-plan", "100", ...GATES]);
        assert.strictEqual(first.code, 0, describeRun(first));
    });

    after(async function () {
        this.timeout(120_000);
        await stack.stop();
    });

    it("a release failing every request is rolled back long before its 30 s pause ends", async () => {
        const l = load("all-errors");
        const run = await stack.agent(["activate", "--version", "v2-all-errors", "--shift-plan", "10%:30s,100%", ...GATES]);
        const r = await l.stop();
        figures(formatLoad("v2-all-errors", r));
        assert.strictEqual(run.code, 1, describeRun(run));
        const m =
            /error-rate gate failed at step 1\/2 \(10%\) after ([\d.]+)s: green \(v2-all-errors\) 5xx (\d+) \+ errors 0 of (\d+) responses = \d+\.\d%/.exec(
                run.stderr,
            );
        assert.ok(m, describeRun(run));
        figures(`tripped after ${m[1]} s of the 30 s pause, on ${m[2]} of ${m[3]} responses; ${r.failures} failures reached clients`);
        assert.ok(Number(m[1]) < 30, "judged during the pause, not at its end");
        assert.deepStrictEqual(await stack.weights(), { blue: 100, green: 0 });
        assert.ok(r.failures > 0 && r.failures <= (r.byVersion["v2-all-errors"] ?? 0), "every failure came from the bad release");
    });

    it("a step without traffic is held longer, then fails as not enough traffic to judge; traffic stays on the live release", async () => {
        const run = await stack.agent(["activate", "--version", "v2", "--shift-plan", "10%:1s,100%", ...GATES, "--max-step-extension", "2s"]);
        assert.strictEqual(run.code, 1, describeRun(run));
        assert.match(run.stdout + run.stderr, /holding up to 2\.0s longer/);
        assert.match(run.stderr, /not enough traffic to judge step 1\/2 \(10%\): green \(v2\) got 0 requests in [\d.]+s, fewer than the 10 a gate needs/);
        assert.deepStrictEqual(await stack.weights(), { blue: 100, green: 0 });
        const probe = await stack.httpsGet("/");
        assert.deepStrictEqual([probe.status, probe.version], [200, "v1"]);
    });

    it("a release 300 ms slower per request trips the latency gate; 0 failed requests", async () => {
        const l = load("slow");
        const run = await stack.agent(["activate", "--version", "v2-slow", "--shift-plan", "10%:3s,100%", ...GATES]);
        const r = await l.stop();
        figures(formatLoad("v2-slow", r));
        assert.strictEqual(run.code, 1, describeRun(run));
        assert.match(
            run.stderr,
            /latency gate failed at step 1\/2 \(10%\): green \(v2-slow\) median response \d{3,} ms \(\d+ requests\) vs \d+ ms \(\d+\) on the old release/,
        );
        assert.strictEqual(r.failures, 0, "a slow answer is still an answer");
        assert.deepStrictEqual(await stack.weights(), { blue: 100, green: 0 });
    });

    it("a healthy release passes every gate under the same load", async () => {
        const l = load("ok");
        const run = await stack.agent(["activate", "--version", "v2", "--shift-plan", "10%:2s,50%:2s,100%", ...GATES]);
        const r = await l.stop();
        figures(formatLoad("v2", r));
        assert.strictEqual(run.code, 0, describeRun(run));
        assert.match(run.stdout + run.stderr, /step 1\/3 \(10%\) gate passed: .*median response \d+ ms \(\d+ requests\) vs \d+ ms \(\d+\) on the old release/);
        assert.strictEqual(r.failures, 0);
        assert.deepStrictEqual(await stack.weights(), { blue: 0, green: 100 });
    });

    it("the deploy's own count of its requests is what the client saw", async () => {
        // The requests run only inside the deploy's window (from the new slot's start to the final
        // step's pause), from a client that stops gracefully: every request it sent, it saw answered,
        // so the deploy's count and the client's cover the same requests exactly.
        // The client stops as the last step begins: that step has no traffic to judge by design.
        const agent = stack.spawnAgent(["activate", "--version", "v3", "--shift-plan", "10%:2s,50%:2s,100%:3s", ...GATES, "--min-requests-per-step", "0"]);
        await agent.waitFor(/starting (blue|green) \(v3\)/);
        const seen: Record<string, number> = {};
        let failed = 0;
        let stopping = false;
        const client = async () => {
            while (!stopping) {
                const r = await stack.httpsGet("/");
                seen[r.version] = (seen[r.version] ?? 0) + 1;
                if (r.status >= 500) failed++;
            }
        };
        const clients = [client(), client(), client(), client()];
        await agent.waitFor(/step 3\/3 \(100%\):/);
        stopping = true;
        await Promise.all(clients);
        const run = await agent.done;
        assert.strictEqual(run.code, 0, describeRun(run));
        const m = /this deploy: (\d+) requests, (\d+) failed \(([^)]*)\), p50 (\d+) ms, p99 (\d+) ms/.exec(run.stdout);
        assert.ok(m, describeRun(run));
        const total = Object.values(seen).reduce((a, b) => a + b, 0);
        figures(`client: ${total} requests, ${failed} failed, by release ${JSON.stringify(seen)}`);
        figures(m[0]);
        const byRelease = Object.fromEntries(m[3].split("; ").map((part) => [part.split(" ")[0], Number(part.split(" ")[1].replace(",", ""))]));
        assert.ok(total > 100, "enough requests to compare");
        assert.strictEqual(Number(m[1]), total, "every request the client sent is counted once");
        assert.strictEqual(Number(m[2]), failed);
        assert.deepStrictEqual(byRelease, seen);
    });
});
