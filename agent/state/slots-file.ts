// slots.json: the last committed state of the two slots. HAProxy's runtime weights are derived from
// it (live = 100, other = 0), which is what recovery restores after a deploy died half way.
import { otherSlot, Slot, SLOTS, warmFlipFileBeside } from "../../lib/host-layout";
import { SlotRuntime } from "../../lib/slot-activation";
import { readJsonFile, writeFileAtomic } from "../common/fs-atomic";
import { writeWarmFlip } from "./warm-flip";

export interface SlotInfo {
    /** Release the slot's symlink points at (null: never used). */
    version: string | null;
    /** Whether the agent left its process running. */
    running: boolean;
    /** What the slot was last started with (absent in state written before it was recorded). */
    runtime?: SlotRuntime;
}

export interface ShiftSettings {
    plan: string;
    maxErrorRatio: number;
    /** The step gates' settings (absent in state written before they existed: the defaults apply). */
    minRequests?: number;
    maxStepExtensionSeconds?: number;
    maxLatencyRatio?: number;
    healthTimeoutSeconds: number;
    drainTimeoutSeconds: number;
    /** Whether that shift keeps the previous release warm (absent in state written before it was recorded). */
    keepWarm?: boolean;
}

export interface SlotsState {
    live: Slot | null;
    slots: Record<Slot, SlotInfo>;
    /** The release that was live before the current one: the rollback target. */
    previous: { slot: Slot; version: string; runtime?: SlotRuntime } | null;
    /** A deploy in progress (set before any process starts, cleared at commit or rollback). */
    deploying: { version: string; slot: Slot; pid: number; startedAt: string } | null;
    /** Gates of the last activation; a cold rollback reuses them. */
    lastShift?: ShiftSettings;
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

export function readSlotsState(file: string): SlotsState {
    const raw = readJsonFile<Partial<SlotsState>>(file);
    const base = emptyState();
    if (!raw) return base;
    return {
        ...base,
        ...raw,
        slots: { blue: { ...base.slots.blue, ...raw.slots?.blue }, green: { ...base.slots.green, ...raw.slots?.green } },
    };
}

export function writeSlotsState(file: string, state: SlotsState): void {
    state.updatedAt = new Date().toISOString();
    writeFileAtomic(file, JSON.stringify(state, null, 2) + "\n", { mode: 0o644 });
    // Its view for the rollback script, written while the writer still holds the lock.
    writeWarmFlip(warmFlipFileBeside(file), state);
}

/** The slot a new release goes to: the one not live (blue when nothing is). */
export function idleSlot(state: SlotsState): Slot {
    return state.live ? otherSlot(state.live) : "blue";
}

export function liveVersion(state: SlotsState): string | null {
    return state.live ? state.slots[state.live].version : null;
}

/** The previous release is warm when its slot still runs it. */
export function isPreviousWarm(state: SlotsState): boolean {
    const p = state.previous;
    if (!p || p.slot === state.live) return false;
    const info = state.slots[p.slot];
    return info.running && info.version === p.version;
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
