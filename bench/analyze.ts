// From one run's per-request records to its figures: windows by the time a request was sent,
// failures (non-2xx + no response), latency percentiles, per-second series for the chart. The
// deploy window is cut into its phases: preparation (until traffic starts to move), shift (until
// all new requests go to the new release) and drain (until the deploy is done, plus a tail).
import { ErrorRecord, ResponseRecord } from "../dev/loopback/load";
import { percentile } from "../lib/percentile";

/** Wall-clock marks of one run (ms since the epoch). */
export interface RunMarks {
    steadyStart: number;
    deployStart: number;
    /** Traffic starts to move to the new release (or away from the old one). */
    shiftStart: number;
    /** Every new request goes to the new release. */
    drainStart: number;
    deployEnd: number;
    rollbackStart: number;
    rollbackEnd: number;
    end: number;
}

export interface WindowFigures {
    requests: number;
    failed: number;
    /** Non-2xx answers by status, and "error" for requests without any answer. */
    failedBy: Record<string, number>;
    failedPosts: number;
    p50: number;
    p99: number;
    max: number;
    /** Answers per release ("-" when no release header, e.g. the maintenance page). */
    byVersion: Record<string, number>;
}

export interface Second {
    /** Seconds from the deploy start (bucket start). */
    s: number;
    /** 2xx answers per release. */
    ok: Record<string, number>;
    failed: number;
}

export const PHASES = ["preparation", "shift", "drain"] as const;
export type Phase = (typeof PHASES)[number];

export interface RunFigures {
    steady: WindowFigures;
    /** The whole deploy window: its start to its end + the tail. */
    deploy: WindowFigures;
    phases: Record<Phase, WindowFigures>;
    rollback: WindowFigures;
    deployS: number;
    /** Seconds each phase lasted (drain without the tail). */
    phaseS: Record<Phase, number>;
    rollbackS: number;
    /** Seconds from the deploy start. */
    marks: { steadyStart: number; shiftStart: number; drainStart: number; deployEnd: number; rollbackStart: number; rollbackEnd: number; end: number };
    perSecond: Second[];
}

const ok = (status: number) => status >= 200 && status < 300;

/** When a request was sent: its answer's time minus its latency (an error has only its own time). */
const sentAt = (r: ResponseRecord) => r.t - (r.latencyMs ?? 0);

function windowFigures(records: ResponseRecord[], errors: ErrorRecord[], from: number, to: number): WindowFigures {
    const rs = records.filter((r) => sentAt(r) >= from && sentAt(r) < to);
    const es = errors.filter((e) => e.t >= from && e.t < to);
    const failedBy: Record<string, number> = {};
    const byVersion: Record<string, number> = {};
    for (const r of rs) {
        byVersion[r.version] = (byVersion[r.version] ?? 0) + 1;
        if (!ok(r.status)) failedBy[String(r.status)] = (failedBy[String(r.status)] ?? 0) + 1;
    }
    if (es.length) failedBy.error = es.length;
    const lat = rs.map((r) => Math.round((r.latencyMs ?? 0) * 10) / 10).sort((a, b) => a - b);
    return {
        requests: rs.length + es.length,
        failed: rs.filter((r) => !ok(r.status)).length + es.length,
        failedBy,
        // An error record does not say which method it was; only answered POSTs are counted here.
        failedPosts: rs.filter((r) => r.method === "POST" && !ok(r.status)).length,
        p50: percentile(lat, 50),
        p99: percentile(lat, 99),
        max: lat.length ? lat[lat.length - 1] : 0,
        byVersion,
    };
}

export function analyzeRun(records: ResponseRecord[], errors: ErrorRecord[], m: RunMarks, tailMs: number): RunFigures {
    const rel = (t: number) => Math.round(t - m.deployStart) / 1000;
    const first = Math.floor((m.steadyStart - m.deployStart) / 1000);
    // Whole seconds only: the load stops at `end`, a last partial second would look like a drop.
    const last = Math.floor((m.end - m.deployStart) / 1000);
    const perSecond: Second[] = [];
    for (let s = first; s < last; s++) perSecond.push({ s, ok: {}, failed: 0 });
    // The chart shows what users saw each second: answers by the time they arrived.
    const bucket = (t: number) => perSecond[Math.floor((t - m.deployStart) / 1000) - first];
    for (const r of records) {
        const b = bucket(r.t);
        if (!b) continue;
        if (ok(r.status)) b.ok[r.version] = (b.ok[r.version] ?? 0) + 1;
        else b.failed++;
    }
    for (const e of errors) {
        const b = bucket(e.t);
        if (b) b.failed++;
    }
    const w = (from: number, to: number) => windowFigures(records, errors, from, to);
    return {
        steady: w(m.steadyStart, m.deployStart),
        deploy: w(m.deployStart, m.deployEnd + tailMs),
        phases: { preparation: w(m.deployStart, m.shiftStart), shift: w(m.shiftStart, m.drainStart), drain: w(m.drainStart, m.deployEnd + tailMs) },
        rollback: w(m.rollbackStart, m.rollbackEnd + tailMs),
        deployS: (m.deployEnd - m.deployStart) / 1000,
        phaseS: { preparation: (m.shiftStart - m.deployStart) / 1000, shift: (m.drainStart - m.shiftStart) / 1000, drain: (m.deployEnd - m.drainStart) / 1000 },
        rollbackS: (m.rollbackEnd - m.rollbackStart) / 1000,
        marks: {
            steadyStart: rel(m.steadyStart),
            shiftStart: rel(m.shiftStart),
            drainStart: rel(m.drainStart),
            deployEnd: rel(m.deployEnd),
            rollbackStart: rel(m.rollbackStart),
            rollbackEnd: rel(m.rollbackEnd),
            end: rel(m.end),
        },
        perSecond,
    };
}

export interface Spread {
    min: number;
    median: number;
    max: number;
}

export function spread(values: number[]): Spread {
    const v = [...values].sort((a, b) => a - b);
    if (!v.length) return { min: 0, median: 0, max: 0 };
    const mid = Math.floor(v.length / 2);
    const median = v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
    return { min: v[0], median, max: v[v.length - 1] };
}

/** Two generators' per-second series of the same run, added up (the load users sent together). */
export function addSeconds(a: Second[], b: Second[]): Second[] {
    const byS = new Map<number, Second>();
    for (const x of [...a, ...b]) {
        const into = byS.get(x.s) ?? { s: x.s, ok: {}, failed: 0 };
        for (const [v, n] of Object.entries(x.ok)) into.ok[v] = (into.ok[v] ?? 0) + n;
        into.failed += x.failed;
        byS.set(x.s, into);
    }
    return [...byS.values()].sort((x, y) => x.s - y.s);
}
