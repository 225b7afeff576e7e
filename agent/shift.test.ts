import * as assert from "assert";
import { Slot } from "../lib/host-layout";
import { parseShiftPlan } from "../lib/shift-plan";
import { SlotStats } from "./haproxy-runtime";
import { Logger } from "./log";
import { ShiftIo, ShiftParams, walkShift } from "./shift";
import { ServerStats } from "./stats";

/** A fake HAProxy with a virtual clock: traffic arrives at `rps`, split by weight. */
class FakeProxy {
    now = 0;
    weights: Record<Slot, number> = { blue: 100, green: 0 };
    servers: Record<Slot, ServerStats>;
    weightLog: string[] = [];
    lines: string[] = [];
    /** Share of the new slot's responses that are 500. */
    errorShare = 0;
    /** Time (ms) at which the new slot dies (checks fail, status DOWN). */
    diesAt = Infinity;
    /** Time (ms) at which something resets the weights to 100/100 once (a reload without state). */
    resetAt = Infinity;
    abortAt = Infinity;

    constructor(
        readonly newSlot: Slot,
        readonly rps = 100,
    ) {
        const mk = (name: string): ServerStats => ({
            name,
            status: "UP",
            checkStatus: "L7OK",
            weight: 0,
            scur: 0,
            stot: 0,
            hrsp1xx: 0,
            hrsp2xx: 0,
            hrsp3xx: 0,
            hrsp4xx: 0,
            hrsp5xx: 0,
            hrspOther: 0,
            eresp: 0,
            econ: 0,
            wretr: 0,
            wredis: 0,
        });
        this.servers = { blue: mk("blue"), green: mk("green") };
    }

    advance(ms: number): void {
        const total = (this.rps * ms) / 1000;
        const sum = this.weights.blue + this.weights.green;
        for (const slot of ["blue", "green"] as Slot[]) {
            const n = sum === 0 ? 0 : Math.round((total * this.weights[slot]) / sum);
            const s = this.servers[slot];
            const bad = slot === this.newSlot ? Math.round(n * this.errorShare) : 0;
            s.stot += n;
            s.hrsp2xx += n - bad;
            s.hrsp5xx += bad;
        }
        this.now += ms;
        if (this.now >= this.diesAt) {
            this.servers[this.newSlot].status = "DOWN";
            this.servers[this.newSlot].checkStatus = "L4CON";
        }
        if (this.now >= this.resetAt) {
            this.resetAt = Infinity;
            this.weights = { blue: 100, green: 100 };
        }
    }

    io(): ShiftIo {
        const log: Logger = { info: (m) => this.lines.push(m), warn: (m) => this.lines.push(`warning: ${m}`) };
        return {
            setWeights: async (w) => {
                this.weights = { ...w };
                this.weightLog.push(`${w.blue}/${w.green}`);
            },
            stats: async (): Promise<SlotStats> => ({
                blue: { ...this.servers.blue, weight: this.weights.blue },
                green: { ...this.servers.green, weight: this.weights.green },
            }),
            sleep: async (ms) => this.advance(ms),
            now: () => this.now,
            aborted: () => (this.now >= this.abortAt ? "SIGTERM received" : undefined),
            log,
        };
    }
}

function params(over: Partial<ShiftParams> = {}): ShiftParams {
    return {
        plan: parseShiftPlan("10:2,50:2,100:0"),
        newSlot: "green",
        oldSlot: "blue",
        newVersion: "v2",
        oldVersion: "v1",
        maxErrorRatio: 0.01,
        pollMs: 500,
        settleMs: 3000,
        ...over,
    };
}

describe("shift: walking the plan", () => {
    it("walks every step with new = percent and old = the rest, holding each pause", async () => {
        const fake = new FakeProxy("green");
        const out = await walkShift(fake.io(), params());
        assert.strictEqual(out.ok, true);
        assert.deepStrictEqual(fake.weightLog, ["90/10", "50/50", "0/100"]);
        assert.strictEqual(fake.now, 4000, "two 2 s holds, nothing for the final 100 % step");
        assert.strictEqual(out.steps.length, 3);
        assert.ok(out.steps[0].figures && out.steps[0].figures.responses > 0);
    });

    it("trips the error-rate gate at the first step and reports the figures", async () => {
        const fake = new FakeProxy("green");
        fake.errorShare = 0.2;
        const out = await walkShift(fake.io(), params());
        assert.strictEqual(out.ok, false);
        if (out.ok) return;
        assert.strictEqual(out.gate, "error-rate");
        assert.strictEqual(out.step, 1);
        assert.strictEqual(out.percent, 10);
        assert.match(out.message, /error-rate gate failed at step 1\/3 \(10%\): green \(v2\) 5xx \d+ \+ errors 0 of \d+ responses = 2\d\.\d% \(max 1\.0%\)/);
        assert.deepStrictEqual(fake.weightLog, ["90/10"], "no further step after a failed gate");
    });

    it("stops as soon as HAProxy marks the new slot down mid-pause", async () => {
        const fake = new FakeProxy("green");
        fake.diesAt = 2700;
        const out = await walkShift(fake.io(), params());
        assert.strictEqual(out.ok, false);
        if (out.ok) return;
        assert.strictEqual(out.gate, "haproxy-check");
        assert.strictEqual(out.step, 2);
        assert.ok(fake.now <= 3000, `detected within one poll (at ${fake.now} ms)`);
        assert.match(out.message, /status DOWN, check L4CON/);
    });

    it("sets the weights again when something reset them during a step", async () => {
        const fake = new FakeProxy("green");
        fake.resetAt = 1000;
        const out = await walkShift(fake.io(), params());
        assert.strictEqual(out.ok, true);
        assert.deepStrictEqual(fake.weightLog, ["90/10", "90/10", "50/50", "0/100"]);
        assert.ok(fake.lines.some((l) => /weights were changed under the deploy/.test(l)));
    });

    it("an abort request ends the walk as a failed gate", async () => {
        const fake = new FakeProxy("green");
        fake.abortAt = 1000;
        const out = await walkShift(fake.io(), params());
        assert.strictEqual(out.ok, false);
        if (!out.ok) assert.strictEqual(out.gate, "aborted");
    });

    it("tolerates a rising error count within the threshold", async () => {
        const fake = new FakeProxy("green", 1000);
        fake.errorShare = 0.005;
        const out = await walkShift(fake.io(), params());
        assert.strictEqual(out.ok, true);
    });

    it("a single 100 % step checks health only", async () => {
        const fake = new FakeProxy("green");
        const out = await walkShift(fake.io(), params({ plan: parseShiftPlan("100") }));
        assert.strictEqual(out.ok, true);
        assert.deepStrictEqual(fake.weightLog, ["0/100"]);
        assert.strictEqual(out.steps[0].figures, undefined);
    });
});
