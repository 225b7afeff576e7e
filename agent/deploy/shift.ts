// Walking the shift plan: set the step's weights, hold, watch the new slot, then judge the step's
// gate. All I/O comes in through ShiftIo so the walk is unit-tested with a fake HAProxy.
import { Slot } from "../../lib/host-layout";
import { ShiftStep } from "../../lib/shift-plan";
import {
    classifyHealth,
    earlyErrorRatioGate,
    ErrorFigures,
    errorFigures,
    errorRatioGate,
    judgedRequests,
    LatencyFigures,
    latencyGate,
    stepWeights,
} from "./gates";
import { SlotStats } from "../proxy/haproxy-api";
import { Logger, seconds } from "../common/log";
import { ServerStats } from "../proxy/haproxy-stats";

export interface ShiftIo {
    /** Applies runtime weights and persists them (server-state file). */
    setWeights(weights: Record<Slot, number>): Promise<void>;
    stats(): Promise<SlotStats>;
    sleep(ms: number): Promise<void>;
    now(): number;
    /**
     * Median response time and count of a slot's requests since `sinceMs` (HAProxy's request log);
     * undefined when the log is not available.
     */
    latency(slot: Slot, sinceMs: number): LatencyFigures | undefined;
    /** Reason to stop now (a signal), or undefined. */
    aborted(): string | undefined;
    log: Logger;
}

/** The gates of the walk: the shift settings under their own names and units (lib/settings/table.ts). */
export interface ShiftParams {
    shiftPlan: readonly ShiftStep[];
    newSlot: Slot;
    oldSlot: Slot;
    newVersion: string;
    oldVersion: string;
    maxErrorRatio: number;
    /** Judged requests a step with a pause needs before its gates count; 0 lets a step pass without traffic. */
    minRequestsPerStep: number;
    /** Seconds a step that reached its pause's end below `minRequestsPerStep` is held longer before it fails. */
    maxStepExtension: number;
    /** The new slot's median response time over the old slot's that trips the latency gate; 0 turns it off. */
    maxLatencyRatio: number;
    /** How often the new slot is watched during a pause. */
    pollMs: number;
    /** How long a step end waits for a transitional check state (e.g. "UP 1/2") to settle. */
    settleMs: number;
}

interface StepReport {
    step: number;
    percent: number;
    heldMs: number;
    health: string;
    figures?: ErrorFigures;
    /** Median response times over the step, when the latency gate judged it. */
    latency?: { newP50Ms: number; oldP50Ms: number };
}

type ShiftGate = "haproxy-check" | "error-rate" | "latency" | "traffic" | "aborted";

export type ShiftOutcome =
    | { ok: true; steps: StepReport[]; durationMs: number }
    | { ok: false; gate: ShiftGate; step: number; percent: number; message: string; steps: StepReport[]; durationMs: number };

export async function walkShift(io: ShiftIo, p: ShiftParams): Promise<ShiftOutcome> {
    const started = io.now();
    const steps: StepReport[] = [];
    const n = p.shiftPlan.length;
    const newName = `${p.newSlot} (${p.newVersion})`;
    const oldName = `${p.oldSlot} (${p.oldVersion})`;

    for (let i = 0; i < n; i++) {
        const { percent, pauseSeconds } = p.shiftPlan[i];
        const label = `step ${i + 1}/${n} (${percent}%)`;
        const fail = (gate: ShiftGate, message: string): ShiftOutcome => ({
            ok: false,
            gate,
            step: i + 1,
            percent,
            message,
            steps,
            durationMs: io.now() - started,
        });

        const reason = io.aborted();
        if (reason) return fail("aborted", `deploy aborted before ${label}: ${reason}`);

        const { newWeight, oldWeight } = stepWeights(percent);
        const weights = { [p.newSlot]: newWeight, [p.oldSlot]: oldWeight } as Record<Slot, number>;
        await io.setWeights(weights);
        io.log.info(`${label}: ${newName} ${newWeight}%, ${oldName} ${oldWeight}%${pauseSeconds > 0 ? `; holding ${pauseSeconds}s` : ""}`);

        const stepStart = io.now();
        const first = await io.stats();
        const before: ServerStats | undefined = first[p.newSlot];
        let last: ServerStats | undefined = before;
        // Only a step with a pause is judged on its traffic; the final 100 % step checks health.
        const judged = pauseSeconds > 0;
        const figuresNow = (): ErrorFigures | undefined => (judged && before && last ? errorFigures(before, last) : undefined);
        const enoughTraffic = (): boolean => {
            const f = figuresNow();
            return !judged || p.minRequestsPerStep === 0 || (f !== undefined && judgedRequests(f) >= p.minRequestsPerStep);
        };
        const pauseEnd = stepStart + pauseSeconds * 1000;
        const extensionEnd = pauseEnd + (judged && p.minRequestsPerStep > 0 ? p.maxStepExtension * 1000 : 0);
        let extending = false;

        while (io.now() < pauseEnd || (io.now() < extensionEnd && !enoughTraffic())) {
            if (io.now() >= pauseEnd && !extending) {
                extending = true;
                const f = figuresNow();
                io.log.info(
                    `${label}: ${newName} got ${f ? judgedRequests(f) : 0} requests, fewer than the ${p.minRequestsPerStep} a gate needs; holding up to ${seconds(p.maxStepExtension * 1000)} longer`,
                );
            }
            const until = io.now() < pauseEnd ? pauseEnd : extensionEnd;
            await io.sleep(Math.min(p.pollMs, Math.max(0, until - io.now())));
            const why = io.aborted();
            if (why) return fail("aborted", `deploy aborted during ${label}: ${why}`);
            const now = await io.stats();
            last = now[p.newSlot];
            // A proxy reload without the saved state (or someone at the socket) reset the weights.
            if (now[p.newSlot]?.weight !== newWeight || now[p.oldSlot]?.weight !== oldWeight) {
                io.log.warn(
                    `weights were changed under the deploy (${p.newSlot}=${now[p.newSlot]?.weight}, ${p.oldSlot}=${now[p.oldSlot]?.weight}); setting them again`,
                );
                await io.setWeights(weights);
            }
            const h = classifyHealth(last);
            if (h.state === "down") {
                return fail(
                    "haproxy-check",
                    `HAProxy check gate failed at ${label}: ${newName} is not passing HAProxy's checks (${h.detail}) after ${seconds(io.now() - stepStart)}`,
                );
            }
            // The evidence so far may already settle the step: no need to serve errors to the end of the pause.
            const f = figuresNow();
            if (f) {
                const early = earlyErrorRatioGate(f, p.maxErrorRatio, p.minRequestsPerStep);
                if (!early.ok)
                    return fail("error-rate", `error-rate gate failed at ${label} after ${seconds(io.now() - stepStart)}: ${newName} ${early.summary}`);
            }
        }

        let health = classifyHealth(last);
        const settleUntil = io.now() + p.settleMs;
        while (health.state === "transitional" && io.now() < settleUntil) {
            await io.sleep(p.pollMs);
            last = (await io.stats())[p.newSlot];
            health = classifyHealth(last);
        }
        if (health.state !== "up") {
            return fail("haproxy-check", `HAProxy check gate failed at ${label}: ${newName} is not passing HAProxy's checks (${health.detail})`);
        }

        const heldMs = io.now() - stepStart;
        const report: StepReport = { step: i + 1, percent, heldMs, health: health.detail };
        const figures = figuresNow();
        steps.push(report);
        if (!figures || !last) {
            io.log.info(`${label} gate passed: ${newName} ${health.detail}`);
            continue;
        }
        report.figures = figures;
        if (!enoughTraffic()) {
            return fail(
                "traffic",
                `not enough traffic to judge ${label}: ${newName} got ${judgedRequests(figures)} requests in ${seconds(heldMs)}, fewer than the ${p.minRequestsPerStep} a gate needs ` +
                    `(longer pauses or minRequestsPerStep: 0 for a stack without steady traffic)`,
            );
        }
        const errorGate = errorRatioGate(figures, p.maxErrorRatio);
        if (!errorGate.ok) return fail("error-rate", `error-rate gate failed at ${label}: ${newName} ${errorGate.summary}`);
        let passed = errorGate.summary;
        if (p.maxLatencyRatio > 0) {
            const newLatency = io.latency(p.newSlot, stepStart);
            const oldLatency = io.latency(p.oldSlot, stepStart);
            if (!newLatency || !oldLatency) {
                passed += "; latency not judged (no request log)";
            } else if (newLatency.requests < Math.max(1, p.minRequestsPerStep)) {
                passed += `; latency not judged (${newLatency.requests} requests in the request log)`;
            } else if (oldLatency.requests === 0) {
                // Nothing to measure the new release against: its median alone says nothing about the release.
                passed += `; latency not judged (the old release answered none of the step's requests in the request log)`;
            } else {
                const latency = latencyGate(newLatency, oldLatency, p.maxLatencyRatio);
                report.latency = { newP50Ms: newLatency.p50Ms, oldP50Ms: oldLatency.p50Ms };
                if (!latency.ok) return fail("latency", `latency gate failed at ${label}: ${newName} ${latency.summary}`);
                passed += `; ${latency.summary}`;
            }
        }
        io.log.info(`${label} gate passed: ${newName} ${health.detail}; ${passed}`);
    }
    return { ok: true, steps, durationMs: io.now() - started };
}
