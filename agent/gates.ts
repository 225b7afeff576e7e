// Gate arithmetic: pure functions over HAProxy counters, so the thresholds are unit-tested and the
// failure messages always carry the figures that tripped them.
import { percent } from "./log";
import { ServerStats, totalResponses } from "./stats";

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
