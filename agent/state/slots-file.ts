// slots.json: the last committed state of the two slots. HAProxy's runtime weights are derived from
// it (live = 100, other = 0), which is what recovery restores after a deploy died half way. It is
// written here only; what it means for the live slot, `current` and NGINX is agent/deploy/live.ts.
import { HostLayout, otherSlot, Slot, SLOTS } from "../../lib/host-layout";
import { SlotActivation } from "../../lib/slot-activation";
import { parseShiftPlan } from "../../lib/shift-plan";
import { GroupSettings } from "../../lib/settings/table";
import { readJsonFile, writeFileAtomic } from "../common/fs-atomic";
import { WarmFlip, writeWarmFlip } from "./warm-flip";

interface SlotInfo {
    /** Release the slot's symlink points at (null: never used). */
    version: string | null;
    /** Whether the agent left its process running. */
    running: boolean;
    /** What the slot was last started with (absent in state written before it was recorded). */
    activation?: SlotActivation;
}

/** The shift group of the last activation, under the settings' own keys. */
export type LastShift = GroupSettings<"shift">;

export interface SlotsState {
    live: Slot | null;
    slots: Record<Slot, SlotInfo>;
    /** The release that was live before the current one: the rollback target. */
    previous: { slot: Slot; version: string; activation?: SlotActivation } | null;
    /** A deploy in progress (set before any process starts, cleared at commit or rollback). */
    deploying: { version: string; slot: Slot; pid: number; startedAt: string } | null;
    /** Gates of the last activation; a cold rollback and retire reuse them. */
    lastShift?: Partial<LastShift>;
    updatedAt: string;
}

export function emptyState(): SlotsState {
    return {
        live: null,
        slots: { blue: { version: null, running: false }, green: { version: null, running: false } },
        previous: null,
        deploying: null,
        updatedAt: new Date(0).toISOString(),
    };
}

/** A slot or the previous release as slots.json of an earlier agent wrote it (`runtime`, before `activation`). */
type Recorded<T> = T & { runtime?: SlotActivation };

function withActivation<T extends { activation?: SlotActivation }>(recorded: Recorded<T>): T {
    const { runtime, ...rest } = recorded;
    const activation = rest.activation ?? runtime;
    return (activation ? { ...rest, activation } : rest) as T;
}

/**
 * The last shift as an earlier agent recorded it (plan as text, other names and units), read into
 * the settings' own keys; unknown shapes give nothing (the defaults then apply).
 */
function lastShiftOf(raw: Record<string, unknown> | undefined): Partial<LastShift> | undefined {
    if (!raw) return undefined;
    if (!("plan" in raw)) return raw as Partial<LastShift>;
    const num = (v: unknown) => (typeof v === "number" ? v : undefined);
    const out: Partial<LastShift> = {
        maxErrorRatio: num(raw.maxErrorRatio),
        minRequestsPerStep: num(raw.minRequests),
        maxStepExtension: num(raw.maxStepExtensionSeconds),
        maxLatencyRatio: num(raw.maxLatencyRatio),
        healthTimeout: num(raw.healthTimeoutSeconds),
        drainTimeout: num(raw.drainTimeoutSeconds),
        keepPreviousWarm: typeof raw.keepWarm === "boolean" ? raw.keepWarm : undefined,
    };
    try {
        out.shiftPlan = parseShiftPlan(String(raw.plan));
    } catch {
        // an unreadable plan: the default applies
    }
    return Object.fromEntries(Object.entries(out).filter(([, v]) => v !== undefined)) as Partial<LastShift>;
}

export function readSlotsState(file: string): SlotsState {
    const raw = readJsonFile<
        Partial<SlotsState> & { slots?: Record<Slot, Recorded<SlotInfo>>; previous?: Recorded<NonNullable<SlotsState["previous"]>> | null }
    >(file);
    const base = emptyState();
    if (!raw) return base;
    return {
        ...base,
        ...raw,
        slots: {
            blue: withActivation({ ...base.slots.blue, ...raw.slots?.blue }),
            green: withActivation({ ...base.slots.green, ...raw.slots?.green }),
        },
        previous: raw.previous ? withActivation(raw.previous) : null,
        lastShift: lastShiftOf(raw.lastShift as Record<string, unknown> | undefined),
    };
}

/** slots.json, and beside it the rollback script's view of it (deploy/warm-flip), written while the writer still holds the lock. */
export function writeSlotsState(layout: HostLayout, state: SlotsState): void {
    state.updatedAt = new Date().toISOString();
    writeFileAtomic(layout.stateFile, JSON.stringify(state, null, 2) + "\n", { mode: 0o644 });
    writeWarmFlip(layout.warmFlipFile, warmFlipOf(state));
}

/** The slot a new release goes to: the one not live (blue when nothing is). */
export function idleSlot(state: SlotsState): Slot {
    return state.live ? otherSlot(state.live) : "blue";
}

export function liveVersion(state: SlotsState): string | null {
    return state.live ? state.slots[state.live].version : null;
}

/** The previous release is warm when its slot still runs it (as slots.json records it). */
export function isPreviousWarm(state: SlotsState): boolean {
    const p = state.previous;
    if (!p || p.slot === state.live) return false;
    const info = state.slots[p.slot];
    return info.running && info.version === p.version;
}

/** The flip a rollback would be now, or undefined when it would not be a warm flip (no deploy in progress, a warm previous release). */
export function warmFlipOf(state: SlotsState): WarmFlip | undefined {
    const prev = state.previous;
    if (!state.live || !prev || state.deploying || !isPreviousWarm(state)) return undefined;
    return { from: state.live, to: prev.slot, version: prev.version };
}

/** Runtime weights of the committed state: everything on the live slot. */
export function committedWeights(state: SlotsState): Record<Slot, number> | undefined {
    if (!state.live) return undefined;
    const w = { blue: 0, green: 0 };
    w[state.live] = 100;
    return w;
}

export function versionsInUse(state: SlotsState): Set<string> {
    const used = new Set<string>();
    for (const s of SLOTS) {
        const v = state.slots[s].version;
        if (v && (state.slots[s].running || s === state.live)) used.add(v);
    }
    if (state.previous) used.add(state.previous.version);
    if (state.deploying) used.add(state.deploying.version);
    return used;
}
