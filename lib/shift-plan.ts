// The shift plan: ordered steps of "percent of traffic on the new release" and a pause to watch it.
// Shared by the program (stack config) and the host agent (its --shift-plan argument).

export interface ShiftStep {
    /** Share of traffic on the new release after this step, 1..100. */
    percent: number;
    /** Seconds to hold this step before its gate is checked. */
    pauseSeconds: number;
}

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };

/** "30s", "2m", "1h", "45" (seconds) -> seconds. */
export function parseDuration(text: string): number {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
    if (!m) throw new Error(`"${text}" is not a duration such as 30s, 2m or 1h`);
    return Number(m[1]) * UNITS[m[2] ?? "s"];
}

/** "10%:30s" / "10:30" / "100%" -> a step. */
function parseShiftStep(text: string): ShiftStep {
    const m = /^\s*(\d{1,3})%?\s*(?::\s*(\S+))?\s*$/.exec(text);
    if (!m) throw new Error(`step "${text}" is not PERCENT[:PAUSE] such as 10%:30s`);
    const percent = Number(m[1]);
    const pauseSeconds = m[2] === undefined ? 0 : parseDuration(m[2]);
    return { percent, pauseSeconds };
}

/** Parses and checks a plan: percents in 1..100, strictly increasing, ending at 100. */
export function parseShiftPlan(steps: readonly string[] | string): ShiftStep[] {
    const items = typeof steps === "string" ? steps.split(",").filter((s) => s.trim() !== "") : [...steps];
    if (items.length === 0) throw new Error("must have at least one step (ending at 100%)");
    if (items.length > 20) throw new Error("must have at most 20 steps");
    const plan = items.map(parseShiftStep);
    plan.forEach((step, i) => {
        if (step.percent < 1 || step.percent > 100) throw new Error(`step ${i + 1} (${step.percent}%) must be between 1% and 100%`);
        if (step.pauseSeconds > 3600) throw new Error(`step ${i + 1} pause must be at most 1h`);
        if (i > 0 && step.percent <= plan[i - 1].percent) {
            throw new Error(`steps must strictly increase: step ${i + 1} (${step.percent}%) is not above step ${i} (${plan[i - 1].percent}%)`);
        }
    });
    if (plan[plan.length - 1].percent !== 100) throw new Error(`must end at 100% (last step is ${plan[plan.length - 1].percent}%)`);
    return plan;
}

/** The canonical text form, e.g. "10:30,50:30,100:0" — what the program passes to the agent. */
export function formatShiftPlan(plan: readonly ShiftStep[]): string {
    return plan.map((s) => `${s.percent}:${s.pauseSeconds}`).join(",");
}
