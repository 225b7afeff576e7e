import * as assert from "assert";
import { classifyHealth, counterDelta, earlyErrorRatioGate, errorFigures, errorRatioGate, latencyGate, stepWeights, wilsonLowerBound } from "./gates";
import { ServerStats, toServerStats } from "../proxy/haproxy-stats";

function stats(over: Partial<ServerStats> = {}): ServerStats {
    return { ...toServerStats({ svname: "green", status: "UP", check_status: "L7OK", weight: "10" }), ...over };
}

describe("gates: arithmetic", () => {
    it("counterDelta is the growth, or the new value after a reset", () => {
        assert.strictEqual(counterDelta(10, 25), 15);
        assert.strictEqual(counterDelta(100, 4), 4);
        assert.strictEqual(counterDelta(0, 0), 0);
    });

    it("ratio is 5xx plus errors over responses plus errors, over the step only", () => {
        const before = stats({ stot: 100, hrsp2xx: 90, hrsp5xx: 10 });
        const after = stats({ stot: 200, hrsp2xx: 170, hrsp5xx: 28, eresp: 1, econ: 1 });
        const f = errorFigures(before, after);
        assert.strictEqual(f.responses, 98);
        assert.strictEqual(f.http5xx, 18);
        assert.strictEqual(f.errors, 2);
        assert.strictEqual(f.ratio, 20 / 100);
    });

    it("4xx are the client's fault, not the release's", () => {
        const f = errorFigures(stats(), stats({ stot: 50, hrsp2xx: 40, hrsp4xx: 10 }));
        assert.strictEqual(f.ratio, 0);
    });

    it("no traffic in a step is ratio 0", () => {
        const f = errorFigures(stats({ stot: 5, hrsp2xx: 5 }), stats({ stot: 5, hrsp2xx: 5 }));
        assert.strictEqual(f.ratio, 0);
        assert.strictEqual(errorRatioGate(f, 0).ok, true);
    });

    it("a reload mid-step (counters restart) counts only what the new worker saw", () => {
        const before = stats({ stot: 1000, hrsp2xx: 990, hrsp5xx: 10 });
        const after = stats({ stot: 30, hrsp2xx: 27, hrsp5xx: 3 });
        const f = errorFigures(before, after);
        assert.strictEqual(f.responses, 30);
        assert.strictEqual(f.http5xx, 3);
    });

    it("never reports above 100 %", () => {
        const f = errorFigures(stats(), stats({ hrsp5xx: 5, eresp: 5 }));
        assert.strictEqual(f.ratio, 1);
    });

    it("the gate passes at the threshold and fails above it, with figures", () => {
        const at = errorFigures(stats(), stats({ stot: 100, hrsp2xx: 99, hrsp5xx: 1 }));
        assert.strictEqual(errorRatioGate(at, 0.01).ok, true);
        const above = errorFigures(stats(), stats({ stot: 100, hrsp2xx: 98, hrsp5xx: 2 }));
        const g = errorRatioGate(above, 0.01);
        assert.strictEqual(g.ok, false);
        assert.match(g.summary, /5xx 2 \+ errors 0 of 100 responses = 2\.0% \(max 1\.0%\)/);
    });

    it("health: UP+L7OK is up, UP 1/2 transitional, anything else down", () => {
        assert.strictEqual(classifyHealth(stats()).state, "up");
        assert.strictEqual(classifyHealth(stats({ status: "UP 1/2", checkStatus: "L4CON" })).state, "transitional");
        assert.strictEqual(classifyHealth(stats({ status: "DOWN", checkStatus: "L4CON" })).state, "down");
        assert.strictEqual(classifyHealth(stats({ status: "DOWN 1/2", checkStatus: "L7OK" })).state, "down");
        assert.strictEqual(classifyHealth(stats({ status: "MAINT" })).state, "down");
        assert.strictEqual(classifyHealth(stats({ status: "UP", checkStatus: "L7STS" })).state, "down");
        assert.strictEqual(classifyHealth(undefined).state, "down");
    });

    it("step weights: new = percent, old = the rest", () => {
        assert.deepStrictEqual(stepWeights(10), { newWeight: 10, oldWeight: 90 });
        assert.deepStrictEqual(stepWeights(100), { newWeight: 100, oldWeight: 0 });
        assert.deepStrictEqual(stepWeights(150), { newWeight: 100, oldWeight: 0 });
    });
});

describe("gates: judging before a step ends", () => {
    it("the Wilson lower bound needs more than one early error to exceed a small ratio", () => {
        assert.strictEqual(wilsonLowerBound(0, 0), 0);
        assert.strictEqual(wilsonLowerBound(0, 50), 0);
        assert.ok(wilsonLowerBound(10, 10) > 0.7);
        assert.ok(wilsonLowerBound(1, 20) < 0.01, "1 of 20 is not evidence of more than 1 %");
        assert.ok(wilsonLowerBound(3, 20) > 0.01, "3 of 20 is");
        assert.ok(wilsonLowerBound(50, 1000) > 0.03 && wilsonLowerBound(50, 1000) < 0.05);
    });

    it("the early gate waits for minRequests, then trips on evidence", () => {
        const f = (responses: number, http5xx: number) => ({ responses, http5xx, errors: 0, ratio: http5xx / responses, retries: 0 });
        assert.strictEqual(earlyErrorRatioGate(f(9, 9), 0.01, 10).ok, true, "below minRequests nothing is judged");
        assert.strictEqual(earlyErrorRatioGate(f(10, 10), 0.01, 10).ok, false);
        assert.strictEqual(earlyErrorRatioGate(f(20, 1), 0.01, 10).ok, true);
        assert.strictEqual(
            earlyErrorRatioGate({ responses: 8, http5xx: 0, errors: 4, ratio: 1 / 3, retries: 0 }, 0.01, 10).ok,
            false,
            "connection errors count",
        );
    });

    it("the latency gate compares medians with the old slot's, with a floor of 50 ms", () => {
        const s = (p50Ms: number) => ({ requests: 100, p50Ms });
        assert.strictEqual(latencyGate(s(61), s(20), 3).ok, true);
        assert.strictEqual(latencyGate(s(71), s(20), 3).ok, false, "above 3x and 50 ms");
        assert.strictEqual(latencyGate(s(300), s(200), 3).ok, true);
        assert.strictEqual(latencyGate(s(601), s(200), 3).ok, false);
        assert.strictEqual(latencyGate(s(45), s(0), 3).ok, true, "no old figures: only the floor");
        assert.strictEqual(latencyGate(s(5000), s(20), 0).ok, true, "0 is off");
    });
});
