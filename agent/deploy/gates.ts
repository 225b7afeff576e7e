// Gate arithmetic: pure functions over HAProxy counters, so the thresholds are unit-tested and the
// failure messages always carry the figures that tripped them.
import { percent } from "../common/log";
import { ServerStats, totalResponses } from "../proxy/haproxy-stats";

/**
 * Growth of a cumulative counter. A reload starts a new HAProxy worker whose counters begin at 0,
 * so a counter that went down was reset: everything it now holds happened after the reset.
 */
export function counterDelta(before: number, after: number): number {
    return after >= before ? after - before : after;
}

export interface ErrorFigures {
    /** HTTP responses of the server over the window. */
    responses: number;
    http5xx: number;
    /** Connection and response errors (econ + eresp): requests that never got a proper answer. */
    errors: number;
    /** (5xx + errors) / (responses + errors); 0 when there was no traffic. */
    ratio: number;
    retries: number;
}

export function errorFigures(before: ServerStats, after: ServerStats): ErrorFigures {
    // A reset shows on any counter; treat them together so one window never mixes two workers.
    const reset = totalResponses(after) < totalResponses(before) || after.stot < before.stot;
    const d = (b: number, a: number) => (reset ? a : counterDelta(b, a));
    const responses = d(totalResponses(before), totalResponses(after));
    const http5xx = d(before.hrsp5xx, after.hrsp5xx);
    const errors = d(before.eresp, after.eresp) + d(before.econ, after.econ);
    const retries = d(before.wretr, after.wretr) + d(before.wredis, after.wredis);
    const denominator = responses + errors;
    // HAProxy may count its own 502 for a failed response in hrsp_5xx too: never report above 100 %.
    const ratio = denominator === 0 ? 0 : Math.min(1, (http5xx + errors) / denominator);
    return { responses, http5xx, errors, ratio, retries };
}

export interface GateResult {
    ok: boolean;
    /** One line with the figures, for the progress log and the failure message. */
    summary: string;
}

export function errorRatioGate(f: ErrorFigures, maxRatio: number): GateResult {
    const ok = f.ratio <= maxRatio;
    const summary =
        `5xx ${f.http5xx} + errors ${f.errors} of ${f.responses + f.errors} responses = ${percent(f.ratio)} ` +
        `(max ${percent(maxRatio)})${f.retries ? `, ${f.retries} retried elsewhere` : ""}`;
    return { ok, summary };
}

/**
 * Lower bound of the 95 % Wilson score interval of a failure ratio: with `failures` of `n`, the
 * true ratio is above this with 97.5 % confidence. It lets a gate judge a step before it ends
 * without tripping on one unlucky early error (1 of 20 is not yet evidence of more than 1 %).
 */
export function wilsonLowerBound(failures: number, n: number): number {
    if (n <= 0) return 0;
    const z = 1.96;
    const p = failures / n;
    const z2 = z * z;
    const centre = p + z2 / (2 * n);
    const margin = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
    return Math.max(0, (centre - margin) / (1 + z2 / n));
}

/** Requests judged in a window: answered ones plus those that never got a proper answer. */
export function judgedRequests(f: ErrorFigures): number {
    return f.responses + f.errors;
}

/**
 * The error-rate gate during a pause: once the step has `minRequests` judged requests, it trips as
 * soon as the evidence says the new slot's ratio is above the maximum (the Wilson lower bound),
 * instead of waiting for the step's end. The end of the step still judges the plain ratio.
 */
export function earlyErrorRatioGate(f: ErrorFigures, maxRatio: number, minRequests: number): GateResult {
    const n = judgedRequests(f);
    const failures = Math.min(n, f.http5xx + f.errors);
    const lower = wilsonLowerBound(failures, n);
    const ok = n < Math.max(1, minRequests) || lower <= maxRatio;
    return { ok, summary: `${errorRatioGate(f, maxRatio).summary}; at least ${percent(lower)} with 95 % confidence` };
}

/** Below this difference (ms) between the slots' median response times the latency gate never trips: 2 ms vs 6 ms is "3x" and noise. */
const LATENCY_MARGIN_MS = 50;

/** Response times of one slot over a window (HAProxy's request log). */
export interface LatencyFigures {
    requests: number;
    p50Ms: number;
}

/**
 * The latency gate: the new slot's median server response time over the step against the old
 * slot's over the same window, while both serve the same mix of requests. The median, because a
 * new process's first requests (imports, cold caches) are slow without the release being slow.
 * Off when `maxRatio` is 0.
 */
export function latencyGate(newSlot: LatencyFigures, oldSlot: LatencyFigures, maxRatio: number): GateResult {
    const limitMs = Math.max(oldSlot.p50Ms * maxRatio, oldSlot.p50Ms + LATENCY_MARGIN_MS);
    const ok = maxRatio === 0 || newSlot.p50Ms <= limitMs;
    const ratio = oldSlot.p50Ms > 0 ? `${(newSlot.p50Ms / oldSlot.p50Ms).toFixed(1)}x` : "n/a";
    return {
        ok,
        summary:
            `median response ${newSlot.p50Ms} ms (${newSlot.requests} requests) vs ${oldSlot.p50Ms} ms (${oldSlot.requests}) on the old release ` +
            `(${ratio}; max ${maxRatio}x and at least +${LATENCY_MARGIN_MS} ms)`,
    };
}

export type HealthState = "up" | "transitional" | "down";

/**
 * HAProxy's view of a slot. "up" needs status UP and a passing last check (L7OK). "UP 1/2" (one
 * failed check, not yet marked down) is transitional: HAProxy decides within `fall` checks.
 */
export function classifyHealth(s: ServerStats | undefined): { state: HealthState; detail: string } {
    if (!s) return { state: "down", detail: "server missing from HAProxy" };
    const detail = `status ${s.status || "?"}, check ${s.checkStatus || "?"}`;
    if (s.status === "UP" && s.checkStatus === "L7OK") return { state: "up", detail };
    if (/^UP \d+\/\d+$/.test(s.status)) return { state: "transitional", detail };
    // A check that has not run yet right after a state load keeps the previous verdict for a moment.
    if (s.status === "UP" && (s.checkStatus === "" || s.checkStatus === "INI")) return { state: "transitional", detail };
    return { state: "down", detail };
}

/** Weights for one plan step: the new slot carries `percent`, the old one the rest. */
export function stepWeights(percentOnNew: number): { newWeight: number; oldWeight: number } {
    const p = Math.max(0, Math.min(100, Math.round(percentOnNew)));
    return { newWeight: p, oldWeight: 100 - p };
}
