// deploy/warm-flip: what the rollback script (templates/rollback.sh.njk) flips, as `key=value` lines
// it reads without running anything. Written with every slots.json (agent/state/slots-file.ts), under
// the deploy lock, so it is current whenever the script holds the lock; present only while
// slots.json has a live slot, a warm previous release and no deploy in progress. The script still
// checks the slot's release and HAProxy's verdict on it itself.
import * as fs from "fs";
import { Slot } from "../../lib/host-layout";
import { writeFileAtomic } from "../common/fs-atomic";
import type { SlotsState } from "./slots-file";

export interface WarmFlip {
    from: Slot;
    to: Slot;
    version: string;
}

/** The flip a rollback would be now, or undefined when it would not be a warm flip. */
export function warmFlipOf(state: SlotsState): WarmFlip | undefined {
    const prev = state.previous;
    if (!state.live || !prev || state.deploying || prev.slot === state.live) return undefined;
    const info = state.slots[prev.slot];
    if (!info.running || info.version !== prev.version) return undefined;
    return { from: state.live, to: prev.slot, version: prev.version };
}

export function formatWarmFlip(f: WarmFlip): string {
    return `from=${f.from}\nto=${f.to}\nversion=${f.version}\n`;
}

/** Writes the file, or removes it when no warm flip is possible. */
export function writeWarmFlip(file: string, state: SlotsState): void {
    const flip = warmFlipOf(state);
    if (flip) writeFileAtomic(file, formatWarmFlip(flip), { mode: 0o600 });
    else fs.rmSync(file, { force: true });
}
