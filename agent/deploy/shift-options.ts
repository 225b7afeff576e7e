// The options of one shift (activate, or a cold rollback): from the command line, falling back to
// the last activation's (slots.json), then to the contract's defaults.
import { DEFAULT_PLAN, DEFAULTS, ShiftRequest } from "../../lib/agent-contract";
import { formatShiftPlan, parseShiftPlan, ShiftStep } from "../../lib/shift-plan";
import { ShiftSettings } from "../state/slots-file";

export interface ShiftOptions {
    plan: ShiftStep[];
    maxErrorRatio: number;
    minRequests: number;
    maxStepExtensionMs: number;
    maxLatencyRatio: number;
    healthTimeoutMs: number;
    drainTimeoutMs: number;
    keepWarm: boolean;
}

export function resolveShiftOptions(req: ShiftRequest, keepWarmDefault: boolean, last?: ShiftSettings): ShiftOptions {
    return {
        plan: req.plan ?? (last?.plan ? parseShiftPlan(last.plan) : [...DEFAULT_PLAN]),
        maxErrorRatio: req.maxErrorRatio ?? last?.maxErrorRatio ?? DEFAULTS.maxErrorRatio,
        minRequests: req.minRequests ?? last?.minRequests ?? DEFAULTS.minRequestsPerStep,
        maxStepExtensionMs: (req.maxStepExtensionSeconds ?? last?.maxStepExtensionSeconds ?? DEFAULTS.maxStepExtensionSeconds) * 1000,
        maxLatencyRatio: req.maxLatencyRatio ?? last?.maxLatencyRatio ?? DEFAULTS.maxLatencyRatio,
        healthTimeoutMs: (req.healthTimeoutSeconds ?? last?.healthTimeoutSeconds ?? DEFAULTS.healthTimeoutSeconds) * 1000,
        drainTimeoutMs: (req.drainTimeoutSeconds ?? last?.drainTimeoutSeconds ?? DEFAULTS.drainTimeoutSeconds) * 1000,
        keepWarm: req.keepWarm ?? keepWarmDefault,
    };
}

/** What slots.json records of a shift, for a later cold rollback and retire. */
export function toShiftSettings(o: ShiftOptions): ShiftSettings {
    return {
        plan: formatShiftPlan(o.plan),
        maxErrorRatio: o.maxErrorRatio,
        minRequests: o.minRequests,
        maxStepExtensionSeconds: o.maxStepExtensionMs / 1000,
        maxLatencyRatio: o.maxLatencyRatio,
        healthTimeoutSeconds: o.healthTimeoutMs / 1000,
        drainTimeoutSeconds: o.drainTimeoutMs / 1000,
        keepWarm: o.keepWarm,
    };
}
