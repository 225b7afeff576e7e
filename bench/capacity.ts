// The app's capacity on this machine, found before any deploy: v1 live behind the project's
// proxies, the load stepped up (x1.25 a step) until a step breaks — a failed request, answers
// falling behind the rate sent (requests queue), or p99 above both BREAK_P99_RATIO times the
// unloaded p99 (the lowest of the first three steps) and BREAK_P99_FLOOR_MS — then one step
// halfway back. A step breaks only when it breaks twice in a row. The capacity is the highest rate
// that held. Both generators together make each step's rate, as they make every deploy's.
import { percentile } from "../lib/percentile";
import { Records } from "./load-mix";
import { sleep } from "./methods";

/** p99 this many times the unloaded p99 breaks a step, when it is above the floor too. */
const BREAK_P99_RATIO = 3;
/** A p99 below this breaks nothing, however it compares: no user notices it. */
const BREAK_P99_FLOOR_MS = 50;
/** The first steps, well below any capacity: the lowest p99 among them is the unloaded p99. */
const BASELINE_STEPS = 3;
/** Answers below this share of the rate sent break a step. */
const MIN_ANSWERED_SHARE = 0.95;
const GROWTH = 1.25;
const WARMUP_MS = 2000;
const MEASURE_MS = 8000;
const MAX_STEPS = 16;
const MIN_RATE = 5;

export interface CapacityStep {
    rate: number;
    /** Answers per second that arrived within the measured window. */
    answeredPerS: number;
    requests: number;
    failed: number;
    p50: number;
    p99: number;
    /** Why the step broke; absent when it held. */
    broke?: string;
}

export interface CapacityResult {
    capacity: number;
    steps: CapacityStep[];
    definition: string;
}

/** Runs load at a rate until stopped; returns both generators' records. */
export type LoadAt = (rate: number) => { stop(): Promise<Records[]> };

function measure(rate: number, all: Records[], from: number, to: number): CapacityStep {
    const ok = (s: number) => s >= 200 && s < 300;
    const sentAt = (r: { t: number; latencyMs?: number }) => r.t - (r.latencyMs ?? 0);
    const rs = all.flatMap((x) => x.records).filter((r) => sentAt(r) >= from && sentAt(r) < to);
    const es = all.flatMap((x) => x.errorRecords).filter((e) => e.t >= from && e.t < to);
    const arrived = all.flatMap((x) => x.records).filter((r) => r.t >= from && r.t < to).length;
    const lat = rs.map((r) => r.latencyMs ?? 0).sort((a, b) => a - b);
    return {
        rate,
        answeredPerS: Math.round((arrived / ((to - from) / 1000)) * 10) / 10,
        requests: rs.length + es.length,
        failed: rs.filter((r) => !ok(r.status)).length + es.length,
        p50: Math.round(percentile(lat, 50) * 10) / 10,
        p99: Math.round(percentile(lat, 99) * 10) / 10,
    };
}

export async function findCapacity(loadAt: LoadAt, startRate: number, log: (line: string) => void): Promise<CapacityResult> {
    const steps: CapacityStep[] = [];
    /** First steps that broke and were halved. */
    const lowered: CapacityStep[] = [];
    let baseP99 = 0;
    const run = async (rate: number): Promise<CapacityStep> => {
        const load = loadAt(rate);
        await sleep(WARMUP_MS);
        const from = Date.now();
        await sleep(MEASURE_MS);
        const to = Date.now();
        const step = measure(rate, await load.stop(), from, to);
        if (steps.length < BASELINE_STEPS) baseP99 = steps.length ? Math.min(baseP99, step.p99) : step.p99;
        const limit = Math.max(BREAK_P99_RATIO * baseP99, BREAK_P99_FLOOR_MS);
        const why = [
            step.failed ? `${step.failed} failed` : "",
            step.p99 > limit ? `p99 ${step.p99} ms > ${Math.round(limit)} ms` : "",
            step.answeredPerS < MIN_ANSWERED_SHARE * rate ? `${step.answeredPerS} answers/s for ${rate} sent` : "",
        ].filter(Boolean);
        if (why.length) step.broke = why.join("; ");
        steps.push(step);
        log(
            `  ${rate} req/s: ${step.answeredPerS} answers/s, ${step.failed} failed of ${step.requests}, p50 ${step.p50} ms, p99 ${step.p99} ms${step.broke ? ` — breaks (${step.broke})` : ""}`,
        );
        // Let queues empty before the next step.
        await sleep(1000);
        return step;
    };
    // A step that breaks is run once more: it breaks only when it does so twice in a row, so a
    // moment of other work on this shared machine does not pass for the app's limit.
    const confirmed = async (rate: number): Promise<CapacityStep> => {
        const first = await run(rate);
        return first.broke ? run(rate) : first;
    };
    let held = 0;
    let rate = startRate;
    let broke = 0;
    // A first step that breaks already (the machine is busier than the app's own load): halve it.
    while (!held && rate >= MIN_RATE) {
        const step = await confirmed(rate);
        if (!step.broke) held = rate;
        else {
            steps.length = 0;
            lowered.push(step);
            rate = Math.floor(rate / 2);
        }
    }
    if (!held) throw new Error(`even ${lowered[lowered.length - 1]?.rate} req/s breaks: ${lowered[lowered.length - 1]?.broke}`);
    for (let i = 0; i < MAX_STEPS; i++) {
        rate = Math.round(rate * GROWTH);
        const step = await confirmed(rate);
        if (step.broke) {
            broke = rate;
            break;
        }
        held = rate;
    }
    if (broke) {
        const mid = Math.round((held + broke) / 2);
        if (mid > held && mid < broke && !(await confirmed(mid)).broke) held = mid;
    }
    steps.unshift(...lowered);
    return {
        capacity: held,
        steps,
        definition:
            `the highest rate at which, over ${MEASURE_MS / 1000} s after ${WARMUP_MS / 1000} s of warm-up (twice in a row before a step counts as broken), no request failed, ` +
            `at least ${MIN_ANSWERED_SHARE * 100} % of the rate was answered and p99 stayed within ${BREAK_P99_RATIO}x the unloaded p99 ` +
            `(the lowest of the first ${BASELINE_STEPS} steps: ${baseP99} ms) or under ${BREAK_P99_FLOOR_MS} ms`,
    };
}
