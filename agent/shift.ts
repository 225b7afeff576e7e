// Walking the shift plan: set the step's weights, hold, watch the new slot, then judge the step's
// gate. All I/O comes in through ShiftIo so the walk is unit-tested with a fake HAProxy.
import { Slot } from "../lib/host-layout";
import { ShiftStep } from "../lib/shift-plan";
import { classifyHealth, ErrorFigures, errorFigures, errorRatioGate, stepWeights } from "./gates";
import { SlotStats } from "./haproxy-runtime";
import { Logger, seconds } from "./log";
import { ServerStats } from "./stats";

export interface ShiftIo {
    /** Applies runtime weights and persists them (server-state file). */
    setWeights(weights: Record<Slot, number>): Promise<void>;
    stats(): Promise<SlotStats>;
    sleep(ms: number): Promise<void>;
    now(): number;
    /** Reason to stop now (a signal), or undefined. */
    aborted(): string | undefined;
    log: Logger;
}

export interface ShiftParams {
    plan: readonly ShiftStep[];
    newSlot: Slot;
    oldSlot: Slot;
    newVersion: string;
    oldVersion: string;
    maxErrorRatio: number;
    /** How often the new slot is watched during a pause. */
    pollMs: number;
    /** How long a step end waits for a transitional check state (e.g. "UP 1/2") to settle. */
    settleMs: number;
}

export interface StepReport {
    step: number;
    percent: number;
    heldMs: number;
    health: string;
    figures?: ErrorFigures;
}

export type ShiftGate = "haproxy-check" | "error-rate" | "aborted";

export type ShiftOutcome =
    | { ok: true; steps: StepReport[]; durationMs: number }
    | { ok: false; gate: ShiftGate; step: number; percent: number; message: string; steps: StepReport[]; durationMs: number };

export async function walkShift(io: ShiftIo, p: ShiftParams): Promise<ShiftOutcome> {
    const started = io.now();
    const steps: StepReport[] = [];
    const n = p.plan.length;
    const newName = `${p.newSlot} (${p.newVersion})`;
    const oldName = `${p.oldSlot} (${p.oldVersion})`;

    for (let i = 0; i < n; i++) {
        const { percent, pauseSeconds } = p.plan[i];
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
        const endAt = stepStart + pauseSeconds * 1000;

        while (io.now() < endAt) {
            await io.sleep(Math.min(p.pollMs, Math.max(0, endAt - io.now())));
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

        const report: StepReport = { step: i + 1, percent, heldMs: io.now() - stepStart, health: health.detail };
        if (pauseSeconds > 0 && before && last) {
            const figures = errorFigures(before, last);
            const gate = errorRatioGate(figures, p.maxErrorRatio);
            report.figures = figures;
            steps.push(report);
            if (!gate.ok) return fail("error-rate", `error-rate gate failed at ${label}: ${newName} ${gate.summary}`);
            io.log.info(`${label} gate passed: ${newName} ${health.detail}; ${gate.summary}`);
        } else {
            steps.push(report);
            io.log.info(`${label} gate passed: ${newName} ${health.detail}`);
        }
    }
    return { ok: true, steps, durationMs: io.now() - started };
}
