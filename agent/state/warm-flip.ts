// deploy/warm-flip: what the rollback script (templates/rollback.sh.njk) flips, as `key=value` lines
// it reads without running anything. Written with every slots.json (agent/state/slots-file.ts, which
// decides whether a warm flip is possible), under the deploy lock, so it is current whenever the
// script holds the lock; present only while slots.json has a live slot, a warm previous release and
// no deploy in progress. The script still checks the slot's release and HAProxy's verdict on it itself.
import * as fs from "fs";
import { Slot } from "../../lib/host-layout";
import { writeFileAtomic } from "../common/fs-atomic";

export interface WarmFlip {
    from: Slot;
    to: Slot;
    version: string;
}

function formatWarmFlip(f: WarmFlip): string {
    return `from=${f.from}\nto=${f.to}\nversion=${f.version}\n`;
}

/** Writes the file, or removes it when no warm flip is possible (undefined). */
export function writeWarmFlip(file: string, flip: WarmFlip | undefined): void {
    if (flip) writeFileAtomic(file, formatWarmFlip(flip), { mode: 0o600 });
    else fs.rmSync(file, { force: true });
}
