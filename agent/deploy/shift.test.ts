import * as assert from "assert";
import { Slot } from "../../lib/host-layout";
import { parseShiftPlan } from "../../lib/shift-plan";
import { SlotStats } from "../proxy/haproxy-api";
import { Logger } from "../common/log";
import { ShiftIo, ShiftParams, walkShift } from "./shift";
import { ServerStats, toServerStats } from "../proxy/haproxy-stats";

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
    /** No request arrives before this time (ms): a stack without steady traffic. */
    trafficFrom = 0;
    /** Median response times the request log shows per slot; undefined: no request log. */
    medianMs: Record<Slot, number> | undefined = { blue: 20, green: 20 };
    /** Requests per slot as they arrived: [time, slot, count]. */
    arrivals: [number, Slot, number][] = [];

    constructor(
        readonly newSlot: Slot,
        readonly rps = 100,
    ) {
        const mk = (name: string): ServerStats => toServerStats({ svname: name, status: "UP", check_status: "L7OK", weight: "0" });
        this.servers = { blue: mk("blue"), green: mk("green") };
    }

    advance(ms: number): void {
        const total = this.now < this.trafficFrom ? 0 : (this.rps * ms) / 1000;
        const sum = this.weights.blue + this.weights.green;
        for (const slot of ["blue", "green"] as Slot[]) {
            const n = sum === 0 ? 0 : Math.round((total * this.weights[slot]) / sum);
            const s = this.servers[slot];
            const bad = slot === this.newSlot ? Math.round(n * this.errorShare) : 0;
            s.stot += n;
            if (n > 0) this.arrivals.push([this.now + ms, slot, n]);
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
            latency: (slot, since) => {
                if (!this.medianMs) return undefined;
                const requests = this.arrivals.filter(([at, s]) => s === slot && at > since).reduce((sum, [, , n]) => sum + n, 0);
                return { requests, p50Ms: this.medianMs[slot] };
            },
            aborted: () => (this.now >= this.abortAt ? "SIGTERM received" : undefined),
            log,
        };
    }
}

function params(over: Partial<ShiftParams> = {}): ShiftParams {
    return {
        shiftPlan: parseShiftPlan("10:2,50:2,100:0"),
        newSlot: "green",
        oldSlot: "blue",
        newVersion: "v2",
        oldVersion: "v1",
        maxErrorRatio: 0.01,
        minRequestsPerStep: 10,
        maxStepExtension: 10,
        maxLatencyRatio: 3,
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
        assert.match(
            out.message,
            /error-rate gate failed at step 1\/3 \(10%\)( after [\d.]+s)?: green \(v2\) 5xx \d+ \+ errors 0 of \d+ responses = 2\d\.\d% \(max 1\.0%\)/,
        );
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
        const out = await walkShift(fake.io(), params({ shiftPlan: parseShiftPlan("100") }));
        assert.strictEqual(out.ok, true);
        assert.deepStrictEqual(fake.weightLog, ["0/100"]);
        assert.strictEqual(out.steps[0].figures, undefined);
    });

    it("a release failing every request is judged within the first second of its step, whatever the pause", async () => {
        const fake = new FakeProxy("green");
        fake.errorShare = 1;
        const out = await walkShift(fake.io(), params({ shiftPlan: parseShiftPlan("10:60,50:60,100:0") }));
        assert.strictEqual(out.ok, false);
        if (out.ok) return;
        assert.strictEqual(out.gate, "error-rate");
        assert.ok(fake.now <= 1500, `tripped at ${fake.now} ms of a 60 s pause`);
        assert.match(
            out.message,
            /error-rate gate failed at step 1\/3 \(10%\) after 1(\.\d)?s: green \(v2\) 5xx 10 \+ errors 0 of 10 responses = 100\.0% \(max 1\.0%\); at least \d+\.\d% with 95 % confidence/,
        );
    });

    it("one early error is not yet evidence: the step runs on and is judged on its whole window", async () => {
        const fake = new FakeProxy("green", 1000);
        const io = fake.io();
        let first = true;
        const stats = io.stats;
        io.stats = async () => {
            const s = await stats();
            // One 500 among the first responses of the step, none after.
            if (first && s.green && s.green.weight === 10 && s.green.stot >= 20) {
                first = false;
                fake.servers.green.hrsp5xx += 1;
                fake.servers.green.hrsp2xx -= 1;
            }
            return s;
        };
        const out = await walkShift(io, params());
        assert.strictEqual(out.ok, true, out.ok ? "" : out.message);
        assert.strictEqual(fake.now, 4000);
    });

    it("a step without enough traffic is held longer, then fails as not enough traffic to judge", async () => {
        const fake = new FakeProxy("green", 0);
        const out = await walkShift(fake.io(), params());
        assert.strictEqual(out.ok, false);
        if (out.ok) return;
        assert.strictEqual(out.gate, "traffic");
        assert.strictEqual(out.step, 1);
        assert.strictEqual(fake.now, 2000 + 10_000, "the 2 s pause, then the 10 s extension");
        assert.match(out.message, /not enough traffic to judge step 1\/3 \(10%\): green \(v2\) got 0 requests in 12\.0s, fewer than the 10 a gate needs/);
        assert.ok(fake.lines.some((l) => /got 0 requests, fewer than the 10 a gate needs; holding up to 10\.0s longer/.test(l)));
    });

    it("traffic that comes during the extension lets the step be judged and the shift go on", async () => {
        const fake = new FakeProxy("green");
        fake.trafficFrom = 3000;
        const out = await walkShift(fake.io(), params());
        assert.strictEqual(out.ok, true, out.ok ? "" : out.message);
        assert.ok(out.steps[0].heldMs > 2000 && out.steps[0].heldMs < 12_000, `step 1 held ${out.steps[0].heldMs} ms`);
        assert.ok(out.steps[0].figures!.responses >= 10);
    });

    it("minRequests 0 lets a silent step pass at the end of its pause", async () => {
        const fake = new FakeProxy("green", 0);
        const out = await walkShift(fake.io(), params({ minRequestsPerStep: 0 }));
        assert.strictEqual(out.ok, true);
        assert.strictEqual(fake.now, 4000);
    });

    it("a release much slower than the live one trips the latency gate; a small difference does not", async () => {
        const slow = new FakeProxy("green");
        slow.medianMs = { blue: 20, green: 400 };
        const out = await walkShift(slow.io(), params());
        assert.strictEqual(out.ok, false);
        if (out.ok) return;
        assert.strictEqual(out.gate, "latency");
        assert.strictEqual(out.step, 1);
        assert.match(
            out.message,
            /latency gate failed at step 1\/3 \(10%\): green \(v2\) median response 400 ms \(20 requests\) vs 20 ms \(180\) on the old release \(20\.0x; max 3x/,
        );

        const noise = new FakeProxy("green");
        noise.medianMs = { blue: 5, green: 40 };
        assert.strictEqual((await walkShift(noise.io(), params())).ok, true, "8x but only 35 ms apart");
        const off = new FakeProxy("green");
        off.medianMs = { blue: 20, green: 400 };
        assert.strictEqual((await walkShift(off.io(), params({ maxLatencyRatio: 0 }))).ok, true, "maxLatencyRatio 0 turns it off");
        const noLog = new FakeProxy("green");
        noLog.medianMs = undefined;
        assert.strictEqual((await walkShift(noLog.io(), params())).ok, true, "no request log: not judged");
        assert.ok(noLog.lines.some((l) => /latency not judged \(no request log\)/.test(l)));
    });

    it("a step where the old release answered nothing is not judged on latency: there is nothing to compare with", async () => {
        const lone = new FakeProxy("green");
        lone.medianMs = { blue: 0, green: 181 };
        const io = lone.io();
        const measured = io.latency;
        io.latency = (slot, since) => (slot === "blue" ? { requests: 0, p50Ms: 0 } : measured(slot, since));
        const out = await walkShift(io, params());
        assert.strictEqual(out.ok, true, out.ok ? "" : out.message);
        assert.ok(lone.lines.some((l) => /latency not judged \(the old release answered none of the step's requests/.test(l)));
    });
});
