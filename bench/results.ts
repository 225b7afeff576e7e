// What one benchmark produces: per method, its runs, each with the project generator's figures,
// vegeta's for the same windows, and what the host's processes did in each phase.
import { Phase, PHASES, RunFigures, spread, Spread, WindowFigures } from "./analyze";
import { KindFigures } from "./process-probe";

export type Window = "steady" | Phase;
export const WINDOWS: readonly Window[] = ["steady", ...PHASES];

export interface RunResult {
    run: number;
    error?: string;
    /** The project's generator. */
    figures?: RunFigures;
    /** vegeta, over the same windows. */
    cross?: RunFigures;
    /** Per window: each kind of process's nice levels and CPU seconds. */
    processes?: Record<Window, Record<string, KindFigures>>;
}

export interface MethodResult {
    id: string;
    title: string;
    runs: RunResult[];
}

function windowOf(f: RunFigures, w: Window): WindowFigures {
    return w === "steady" ? f.steady : f.phases[w];
}

/** The worst phase's p99 over the steady p99. */
export function worstRatio(f: RunFigures): number {
    const steady = Math.max(f.steady.p99, 0.1);
    return Math.max(...PHASES.map((p) => f.phases[p].p99)) / steady;
}

function figuresOf(m: MethodResult, which: "figures" | "cross" = "figures"): RunFigures[] {
    return m.runs.map((r) => r[which]).filter((f): f is RunFigures => !!f);
}

/** Median [min–max] over the runs of every figure the table and the README use. */
export function summary(m: MethodResult, which: "figures" | "cross" = "figures") {
    const f = figuresOf(m, which);
    const s = (pick: (x: RunFigures) => number): Spread => spread(f.map(pick));
    const perWindow = (pick: (x: WindowFigures) => number) =>
        Object.fromEntries(WINDOWS.map((w) => [w, s((x) => pick(windowOf(x, w)))])) as Record<Window, Spread>;
    return {
        runs: f.length,
        requests: s((x) => x.deploy.requests),
        failed: s((x) => x.deploy.failed),
        failedPosts: s((x) => x.deploy.failedPosts),
        p50: perWindow((x) => x.p50),
        p99: perWindow((x) => x.p99),
        max: perWindow((x) => x.max),
        requestsPerWindow: perWindow((x) => x.requests),
        failedPerWindow: perWindow((x) => x.failed),
        worstPhaseOverSteady: s(worstRatio),
        deployS: s((x) => x.deployS),
        phaseS: Object.fromEntries(PHASES.map((p) => [p, s((x) => x.phaseS[p])])) as Record<Phase, Spread>,
        rollbackS: s((x) => x.rollbackS),
        rollbackFailed: s((x) => x.rollback.failed),
        rollbackRequests: s((x) => x.rollback.requests),
    };
}
