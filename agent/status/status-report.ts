// The host's deploy status as one object: what each slot runs, its role and weight, HAProxy's view
// of it, the live release, the lock, a running deploy's phase and step, maintenance. `agent status`
// prints it and the dashboard serves it: both call readStatusReport, so they never disagree.
// Read-only: it never takes the lock (it reports a stale one).
import * as fs from "fs";
import * as path from "path";
import { Slot, SLOTS } from "../../lib/host-layout";
import { ShiftStep } from "../../lib/shift-plan";
import { AgentContext } from "../context";
import { slotPort } from "../deploy/slot-launch";
import { errorMessage } from "../common/errors";
import { readTailLines } from "../common/file-tail";
import { readLinkOrUndefined } from "../common/fs-atomic";
import { SlotStats } from "../proxy/haproxy-api";
import { LockInfo, lockStatus } from "../state/lock";
import { slotTarget } from "../deploy/slot-lifecycle";
import { isPreviousWarm, readSlotsState, SlotsState } from "../state/slots-file";
import { ServerStats, totalResponses } from "../proxy/haproxy-stats";

type SlotRole = "live" | "deploying" | "warm" | "running" | "stopped";

interface SlotReport {
    slot: Slot;
    port: number;
    version: string | null;
    linkedRelease: string | null;
    role: SlotRole;
    running: boolean;
    weight: number | null;
    status: string | null;
    checkStatus: string | null;
    sessions: number | null;
    totalSessions: number | null;
    /** Cumulative counters since HAProxy's worker started: HTTP responses, 5xx among them, connection/response errors. */
    responses: number | null;
    http5xx: number | null;
    errors: number | null;
}

/**
 * Where a running deploy is, told from what it leaves behind: the lock (command, version), slots.json
 * (`deploying`, the plan in `lastShift`) and HAProxy (the new slot's weight and check state).
 */
type DeployPhase = "migrate" | "start-and-readiness" | "smoke" | "shift" | "retire-old-slot" | "other";

export interface DeployProgress {
    command: string;
    version: string | null;
    pid: number;
    startedAt: string;
    phase: DeployPhase;
    /** The slot the deploy brings up (once slots.json names it). */
    slot: Slot | null;
    /** The weight step the new slot is at (1-based), during the shift phase. */
    step: { index: number; count: number; percent: number } | null;
    plan: ShiftStep[] | null;
    maxErrorRatio: number | null;
    /** The worker's log file (deploy/logs/) and its last lines: each step's gate figures as the deploy printed them. */
    logFile: string | null;
    logTail: string[];
}

export interface StatusReport {
    app: string;
    live: { slot: Slot; version: string | null } | null;
    current: string | null;
    previous: { slot: Slot; version: string; warm: boolean } | null;
    deploying: SlotsState["deploying"];
    /** `deploying` is recorded while nobody holds the lock: the next locking command (or `agent recover`) recovers it. */
    interrupted: boolean;
    slots: SlotReport[];
    lock: ({ state: "held" | "stale" } & LockInfo) | null;
    deploy: DeployProgress | null;
    maintenance: boolean;
    haproxyError: string | null;
    updatedAt: string;
}

/** Commands whose worker shifts traffic (the ones `abort` stops). */
export const SHIFTING_COMMANDS: ReadonlySet<string> = new Set(["activate", "rollback"]);

function slotRole(state: SlotsState, slot: Slot): SlotRole {
    const info = state.slots[slot];
    if (state.live === slot) return "live";
    if (state.deploying?.slot === slot) return "deploying";
    if (isPreviousWarm(state) && state.previous?.slot === slot) return "warm";
    return info.running ? "running" : "stopped";
}

export async function readStatusReport(ctx: AgentContext, opts: { logTailLines?: number } = {}): Promise<StatusReport> {
    return (await collectStatus(ctx, opts)).report;
}

/** The report and the HAProxy counters it was made from (the dashboard's rates and live gate figures use them). */
export async function collectStatus(ctx: AgentContext, opts: { logTailLines?: number } = {}): Promise<{ report: StatusReport; stats: SlotStats }> {
    const { layout, settings } = ctx;
    const state = readSlotsState(layout.stateFile);
    let stats: SlotStats = {};
    let haproxyError: string | undefined;
    try {
        stats = await ctx.haproxy.stats();
    } catch (e) {
        haproxyError = errorMessage(e);
    }
    const lock = lockStatus(layout.lockFile);
    const warm = isPreviousWarm(state);
    const slots: SlotReport[] = SLOTS.map((slot) => {
        const info = state.slots[slot];
        const s = stats[slot];
        return {
            slot,
            port: slotPort(ctx, state, slot),
            version: info.version,
            linkedRelease: slotTarget(ctx, slot) ?? null,
            role: slotRole(state, slot),
            running: info.running,
            weight: s ? s.weight : null,
            status: s ? s.status : null,
            checkStatus: s ? s.checkStatus : null,
            sessions: s ? s.scur : null,
            totalSessions: s ? s.stot : null,
            responses: s ? totalResponses(s) : null,
            http5xx: s ? s.hrsp5xx : null,
            errors: s ? s.econ + s.eresp : null,
        };
    });
    const liveVersion = state.live ? state.slots[state.live].version : null;
    const report: StatusReport = {
        app: settings.app.appName,
        live: state.live ? { slot: state.live, version: liveVersion } : null,
        current: readLinkOrUndefined(layout.currentLink) ?? null,
        previous: state.previous ? { slot: state.previous.slot, version: state.previous.version, warm } : null,
        deploying: state.deploying,
        interrupted: !!state.deploying && lock.state !== "held",
        slots,
        lock: lock.state === "free" ? null : { state: lock.state, ...lock.info },
        deploy: lock.state === "held" ? deployProgress(state, lock.info, stats, layout.logsDir, opts.logTailLines ?? 12) : null,
        maintenance: fs.existsSync(layout.maintenanceFlag),
        haproxyError: haproxyError ?? null,
        updatedAt: state.updatedAt,
    };
    return { report, stats };
}

export function deployProgress(state: SlotsState, lock: LockInfo, stats: SlotStats, logsDir: string, tailLines: number): DeployProgress {
    const plan = state.lastShift?.shiftPlan ?? null;
    const deploying = state.deploying;
    const slot = deploying?.slot ?? null;
    const server: ServerStats | undefined = slot ? stats[slot] : undefined;
    let phase: DeployPhase = "other";
    let step: DeployProgress["step"] = null;
    if (SHIFTING_COMMANDS.has(lock.command)) {
        if (!deploying) {
            // Before slots.json names the new slot: the migration step; after the commit: the old slot drains.
            const live = state.live ? state.slots[state.live].version : null;
            phase = live !== null && live === lock.version ? "retire-old-slot" : "migrate";
        } else if (server && server.weight > 0) {
            phase = "shift";
            if (plan) {
                const at = plan.findIndex((s) => s.percent >= server.weight);
                const index = at === -1 ? plan.length - 1 : at;
                step = { index: index + 1, count: plan.length, percent: plan[index].percent };
            }
        } else if (server && /^UP/.test(server.status)) {
            phase = "smoke";
        } else {
            phase = "start-and-readiness";
        }
    }
    const logFile = latestWorkerLog(logsDir, lock.startedAt);
    return {
        command: lock.command,
        version: lock.version ?? deploying?.version ?? null,
        pid: lock.pid,
        startedAt: lock.startedAt,
        phase,
        slot,
        step,
        plan,
        maxErrorRatio: state.lastShift?.maxErrorRatio ?? null,
        logFile,
        logTail: logFile ? (tailLines > 0 ? readTailLines(logFile, tailLines) : []) : [],
    };
}

/** The newest worker log written since the deploy started (the worker appends to it as it goes). */
function latestWorkerLog(logsDir: string, startedAt: string): string | null {
    let names: string[];
    try {
        names = fs.readdirSync(logsDir).filter((n) => n.endsWith(".log"));
    } catch {
        return null;
    }
    const since = Date.parse(startedAt) - 5000;
    let best: { file: string; mtime: number } | null = null;
    for (const n of names) {
        const file = path.join(logsDir, n);
        try {
            const mtime = fs.statSync(file).mtimeMs;
            if (mtime >= since && (!best || mtime > best.mtime)) best = { file, mtime };
        } catch {
            // Pruned meanwhile.
        }
    }
    return best?.file ?? null;
}
