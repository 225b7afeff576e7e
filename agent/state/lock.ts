// The host-wide deploy lock. One file, created atomically with its content (hard link of a fully
// written temp file), naming its holder. A holder whose process is gone left a stale lock: callers
// are told, recover, and take it over instead of waiting forever.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LockBusyError } from "../common/errors";

export interface LockInfo {
    pid: number;
    /** Start time of the holder in clock ticks since boot (/proc/<pid>/stat field 22): a reused pid does not match. */
    procStart?: string;
    command: string;
    version?: string;
    startedAt: string;
    host: string;
}

export function processStartTime(pid: number): string | undefined {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // The command name (field 2) may contain spaces and parentheses: split after the last ")".
        const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        return fields[19];
    } catch {
        return undefined;
    }
}

function processState(pid: number): string | undefined {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    } catch {
        return undefined;
    }
}

/** Alive = exists, is not a zombie, and (when known) started at the recorded time. */
export function isProcessAlive(pid: number, procStart?: string): boolean {
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
        process.kill(pid, 0);
    } catch (e) {
        // EPERM: it exists but belongs to someone else.
        if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
    }
    const state = processState(pid);
    if (state === "Z" || state === "X") return false;
    if (procStart !== undefined) {
        const now = processStartTime(pid);
        if (now !== undefined && now !== procStart) return false;
    }
    return true;
}

export function readLock(lockFile: string): LockInfo | undefined {
    try {
        return JSON.parse(fs.readFileSync(lockFile, "utf8")) as LockInfo;
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        // Unreadable or not JSON: treat as a lock of an unknown, dead holder.
        return { pid: -1, command: "unknown", startedAt: new Date(0).toISOString(), host: os.hostname() };
    }
}

export function describeLock(info: LockInfo, now = Date.now()): string {
    const started = Date.parse(info.startedAt);
    const age = Number.isFinite(started) ? ` (${Math.max(0, Math.round((now - started) / 1000))} s ago)` : "";
    return `pid ${info.pid}, ${info.command}${info.version ? ` ${info.version}` : ""}, started ${info.startedAt}${age}`;
}

export type LockStatus = { state: "free" } | { state: "held"; info: LockInfo } | { state: "stale"; info: LockInfo };

export function lockStatus(lockFile: string): LockStatus {
    const info = readLock(lockFile);
    if (!info) return { state: "free" };
    return isProcessAlive(info.pid, info.procStart) ? { state: "held", info } : { state: "stale", info };
}

export function newLockInfo(command: string, version?: string, pid = process.pid): LockInfo {
    return { pid, procStart: processStartTime(pid), command, version, startedAt: new Date().toISOString(), host: os.hostname() };
}

function tryCreate(lockFile: string, info: LockInfo): boolean {
    const tmp = `${lockFile}.${process.pid}.${Math.random().toString(36).slice(2, 8)}`;
    fs.writeFileSync(tmp, JSON.stringify(info) + "\n", { mode: 0o644 });
    try {
        fs.linkSync(tmp, lockFile);
        return true;
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
        throw e;
    } finally {
        fs.rmSync(tmp, { force: true });
    }
}

function sameHolder(a: LockInfo, b: LockInfo): boolean {
    return a.pid === b.pid && a.startedAt === b.startedAt && a.command === b.command;
}

/**
 * Removes a stale lock only if it still is the one we judged stale. A short-lived guard file keeps
 * two recovering processes from deleting each other's fresh lock.
 */
function removeStale(lockFile: string, stale: LockInfo): void {
    const guard = `${lockFile}.takeover`;
    try {
        fs.writeFileSync(guard, String(process.pid), { flag: "wx" });
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
        // A guard is held for microseconds; one older than a few seconds belongs to a dead process.
        const age = Date.now() - fs.statSync(guard).mtimeMs;
        if (age < 5000) return;
        fs.rmSync(guard, { force: true });
        return removeStale(lockFile, stale);
    }
    try {
        const current = readLock(lockFile);
        if (current && sameHolder(current, stale)) fs.rmSync(lockFile, { force: true });
    } finally {
        fs.rmSync(guard, { force: true });
    }
}

export interface Acquired {
    /** The dead holder whose lock was taken over: the caller must recover its half-done work. */
    stale?: LockInfo;
    /** The lock was this very process's already (taken before an exec: the rollback script). */
    adopted?: boolean;
}

export interface AcquireOptions {
    /**
     * Take over a lock this process already holds: same pid and start time, so taken by what ran
     * in this process before an exec (deploy/rollback, templates/rollback.sh.njk).
     */
    adoptOwn?: boolean;
}

/** Whether the lock names this process itself (pid and start time). */
function heldByThisProcess(held: LockInfo, info: LockInfo): boolean {
    return held.pid === info.pid && held.procStart !== undefined && held.procStart === info.procStart;
}

/** Takes the lock or throws LockBusyError naming the live holder. Never waits. */
export function acquireLock(lockFile: string, info: LockInfo, opts: AcquireOptions = {}): Acquired {
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    let stale: LockInfo | undefined;
    for (let attempt = 0; attempt < 3; attempt++) {
        if (tryCreate(lockFile, info)) return { stale };
        const status = lockStatus(lockFile);
        if (opts.adoptOwn && status.state === "held" && heldByThisProcess(status.info, info)) return { adopted: true };
        if (status.state === "held") {
            throw new LockBusyError(`another deploy holds the lock ${lockFile}: ${describeLock(status.info)}`);
        }
        if (status.state === "stale") {
            stale = status.info;
            removeStale(lockFile, status.info);
        }
    }
    const holder = readLock(lockFile);
    throw new LockBusyError(`could not take the lock ${lockFile}${holder ? `: ${describeLock(holder)}` : ""}`);
}

/** Releases the lock if (and only if) this process holds it. */
export function releaseLock(lockFile: string, pid = process.pid): void {
    const info = readLock(lockFile);
    if (info && info.pid === pid) fs.rmSync(lockFile, { force: true });
}
