// The dashboard's view over time: it reads the status report (agent/status/status-report.ts, the same one
// `agent status` prints) on a timer and turns HAProxy's cumulative counters into rates per slot,
// kept for the last minutes for the chart. While a shift runs, the current step's gate figures
// come from the same arithmetic the gate itself uses (agent/deploy/deploy/gates.ts) over the step so far.
import { Slot, SLOTS } from "../../lib/host-layout";
import { AgentContext } from "../context";
import { errorMessage } from "../common/errors";
import { ErrorFigures, errorFigures, errorRatioGate } from "../deploy/gates";
import { SlotStats } from "../proxy/haproxy-api";
import { collectStatus, StatusReport } from "../status/status-report";
import { ServerStats } from "../proxy/haproxy-stats";

interface SlotSample {
    version: string | null;
    weight: number | null;
    /** Responses per second since the previous sample. */
    rps: number;
    /** 5xx responses plus connection/response errors per second. */
    errorsPerSecond: number;
    inFlight: number | null;
}

export interface Sample {
    /** ms since the epoch */
    t: number;
    slots: Record<Slot, SlotSample>;
}

export interface StepGate {
    /** The deploy's new slot and the weight it has carried since `since`. */
    slot: Slot;
    weight: number;
    since: number;
    figures: ErrorFigures;
    maxErrorRatio: number | null;
    /** The gate's own one-line summary of those figures. */
    summary: string | null;
}

export interface Snapshot {
    report: StatusReport | null;
    error: string | null;
    rates: Sample | null;
    gate: StepGate | null;
}

export interface SamplerOptions {
    /** How many samples the chart keeps. */
    keep: number;
    /** Sampling interval while a page is open, and when none is (history for the chart stays filled). */
    activeMs: number;
    idleMs: number;
}

export const DEFAULT_SAMPLER: SamplerOptions = { keep: 600, activeMs: 1000, idleMs: 5000 };

export class Sampler {
    readonly samples: Sample[] = [];
    private last: { t: number; stats: SlotStats } | undefined;
    private stepStart: { slot: Slot; weight: number; since: number; stats: ServerStats } | undefined;
    private snapshot: Snapshot = { report: null, error: null, rates: null, gate: null };
    private timer: NodeJS.Timeout | undefined;
    private listeners = new Set<(s: Snapshot) => void>();
    private running = false;

    constructor(
        private readonly ctx: AgentContext,
        private readonly opts: SamplerOptions = DEFAULT_SAMPLER,
        private readonly now: () => number = Date.now,
    ) {}

    latest(): Snapshot {
        return this.snapshot;
    }

    /** Called with every new snapshot; returns the unsubscribe function. */
    subscribe(fn: (s: Snapshot) => void): () => void {
        this.listeners.add(fn);
        this.reschedule();
        return () => {
            this.listeners.delete(fn);
        };
    }

    start(): void {
        this.running = true;
        void this.tick();
    }

    stop(): void {
        this.running = false;
        if (this.timer) clearTimeout(this.timer);
        this.timer = undefined;
    }

    private reschedule(): void {
        if (!this.running || !this.timer) return;
        // A page just opened: sample at the active rate from now on, not after the idle wait.
        clearTimeout(this.timer);
        this.timer = setTimeout(() => void this.tick(), Math.min(this.opts.activeMs, 250));
    }

    private interval(): number {
        const deploying = !!this.snapshot.report?.deploy;
        return this.listeners.size > 0 || deploying ? this.opts.activeMs : this.opts.idleMs;
    }

    /** One sample now (the timer calls it; tests call it directly). */
    async tick(): Promise<Snapshot> {
        if (this.timer) clearTimeout(this.timer);
        this.timer = undefined;
        try {
            const { report, stats } = await collectStatus(this.ctx);
            this.snapshot = { report, error: report.haproxyError, rates: this.rates(report, stats), gate: this.gate(report, stats) };
        } catch (e) {
            this.snapshot = { ...this.snapshot, error: errorMessage(e) };
        }
        for (const fn of this.listeners) fn(this.snapshot);
        if (this.running) {
            this.timer = setTimeout(() => void this.tick(), this.interval());
            this.timer.unref();
        }
        return this.snapshot;
    }

    private rates(report: StatusReport, stats: SlotStats): Sample | null {
        const t = this.now();
        const prev = this.last;
        this.last = { t, stats };
        if (!prev) return null;
        const dt = Math.max(0.001, (t - prev.t) / 1000);
        const slots = {} as Record<Slot, SlotSample>;
        for (const slot of SLOTS) {
            const a = prev.stats[slot];
            const b = stats[slot];
            const r = report.slots.find((s) => s.slot === slot);
            let rps = 0;
            let errorsPerSecond = 0;
            if (a && b) {
                const f = errorFigures(a, b);
                rps = f.responses / dt;
                errorsPerSecond = (f.http5xx + f.errors) / dt;
            }
            slots[slot] = { version: r?.version ?? null, weight: r?.weight ?? null, rps, errorsPerSecond, inFlight: r?.sessions ?? null };
        }
        const sample = { t, slots };
        this.samples.push(sample);
        if (this.samples.length > this.opts.keep) this.samples.splice(0, this.samples.length - this.opts.keep);
        return sample;
    }

    private gate(report: StatusReport, stats: SlotStats): StepGate | null {
        const d = report.deploy;
        const slot = d?.slot;
        const now = slot ? stats[slot] : undefined;
        if (!d || d.phase !== "shift" || !slot || !now) {
            this.stepStart = undefined;
            return null;
        }
        if (!this.stepStart || this.stepStart.slot !== slot || this.stepStart.weight !== now.weight) {
            this.stepStart = { slot, weight: now.weight, since: this.now(), stats: now };
        }
        const figures = errorFigures(this.stepStart.stats, now);
        return {
            slot,
            weight: now.weight,
            since: this.stepStart.since,
            figures,
            maxErrorRatio: d.maxErrorRatio,
            summary: d.maxErrorRatio === null ? null : errorRatioGate(figures, d.maxErrorRatio).summary,
        };
    }
}
