// The audit log: one JSON object per line, appended (O_APPEND keeps concurrent lines whole).
import * as fs from "fs";
import { readTailLines } from "../common/file-tail";
import * as path from "path";

export interface AuditRecord {
    time: string;
    command: string;
    version?: string;
    from?: string | null;
    to?: string | null;
    result: "ok" | "noop" | "rolled-back" | "failed" | "recovered";
    reason?: string;
    durations?: Record<string, number>;
    [extra: string]: unknown;
}

export function appendAudit(file: string, record: Omit<AuditRecord, "time"> & { time?: string }): void {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const line = JSON.stringify({ time: new Date().toISOString(), ...record, pid: process.pid });
    fs.appendFileSync(file, line + "\n", { mode: 0o640 });
}

/** "v2@green" — how slots and releases appear in audit lines. */
export function slotLabel(version: string | null | undefined, slot: string | null | undefined): string | null {
    return version && slot ? `${version}@${slot}` : null;
}

/** The last `max` records of the audit log, oldest first (reads at most its last `maxBytes`; unparsable lines are skipped). */
export function readAuditTail(file: string, max: number, maxBytes = 256 * 1024): AuditRecord[] {
    const out: AuditRecord[] = [];
    for (const line of readTailLines(file, Infinity, maxBytes)) {
        try {
            const r = JSON.parse(line) as AuditRecord;
            if (r && typeof r === "object" && typeof r.command === "string") out.push(r);
        } catch {
            // A line being written, or damaged: skip it.
        }
    }
    return out.slice(-max);
}
