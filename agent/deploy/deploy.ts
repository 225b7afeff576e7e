// The gated deploy of one release into the idle slot, as a sequence of named phases:
//
//   migrate -> prepare the idle slot -> start and readiness -> smoke -> shift -> commit -> retire the old slot
//
// Each phase reads and updates one explicit record (Deploy). A phase that fails throws a
// PhaseFailure naming its gate; every failure, expected or not, leaves through failDeploy: traffic
// back on the old release, the new slot stopped, slots.json and the audit log saying so.
// Used by activate, and by rollback when the previous release is not warm (its migrations ran when
// it was first activated, so `migrate` is unset there). Must be called under the deploy lock.
import { otherSlot, releaseDir, Slot } from "../../lib/host-layout";
import { appendAudit, slotLabel } from "../state/audit";
import { AgentContext, sleep } from "../context";
import { AgentError, errorMessage, GateError } from "../common/errors";
import { classifyHealth } from "./gates";
import { SlotStats } from "../proxy/haproxy-api";
import { percent, seconds, secondsOf } from "../common/log";
import { runMigrationStep } from "../migrations/migration-step";
import { isPrepared } from "../release/releases";
import { ShiftOptions } from "./shift-options";
import { walkShift } from "./shift";
import { deployTraffic, TrafficLog, trafficFigures } from "../proxy/traffic-log";
import { DeployTraffic, formatDeployTraffic } from "../../lib/contract/messages";
import { commitLive } from "./live";
import {
    applyWeights,
    drainAndStop,
    drainAndStopProcess,
    pointSlotAt,
    retireOldSlotSafely,
    slotTarget,
    smokeTest,
    waitForHaproxyUp,
    waitForReadiness,
} from "./slot-lifecycle";
import { idleSlot, liveVersion, readSlotsState, SlotsState, writeSlotsState } from "../state/slots-file";
import { ActivationSettings, onSlot, snapshotCurrentEnv, wantedActivation } from "./slot-launch";
import { activationChanges, SlotActivation } from "../../lib/slot-activation";

type DeployCommand = "activate" | "rollback";

export interface DeployRequest {
    command: DeployCommand;
    version: string;
    opts: ShiftOptions;
    /** Run the migration step first, with these acknowledged contract operations. */
    migrate?: { allow: readonly string[] };
    /**
     * What the new slot starts with apart from its port: a cold rollback passes the runtime the
     * previous release ran with; default (activate) what agent.json and the app environment ask now.
     */
    activation?: ActivationSettings;
}

/** Everything the phases share about one deploy. */
interface Deploy extends DeployRequest {
    startedAt: number;
    state: SlotsState;
    oldSlot: Slot | null;
    oldVersion: string | null;
    newSlot: Slot;
    /** What the new slot is started with (its port, health check, start command, environment). */
    activation: SlotActivation;
    /** "green (v2)" / "blue (v1)" for messages; oldName is "" on a first deploy. */
    newName: string;
    oldName: string;
    durations: Record<string, number>;
    migrations?: Record<string, unknown>;
    /** HAProxy's view when the deploy began. */
    initialStats: SlotStats;
    /** slots.json says `deploying`: from here a failure must stop the new slot. */
    slotTouched: boolean;
    /** The idle slot already ran this release, warm and passing checks: it was not restarted. */
    reused: boolean;
    /** Some weight went to the new slot: a failure must move it back first. */
    weightMoved: boolean;
    steps: unknown[];
    /** HAProxy's request log for the deploy's window; undefined when it cannot be listened to. */
    traffic?: TrafficLog;
}

/** A phase's gate did not pass; the message names the gate's figures. */
class PhaseFailure extends Error {
    constructor(
        readonly gate: string,
        message: string,
    ) {
        super(message);
        this.name = "PhaseFailure";
    }
}

export async function deployRelease(ctx: AgentContext, req: DeployRequest): Promise<void> {
    const d = begin(ctx, req);
    if (!d) return;
    d.traffic = await TrafficLog.open(ctx.settings.haproxy.trafficLogPort, ctx.log);
    try {
        try {
            await migratePhase(ctx, d);
            await prepareIdleSlotPhase(ctx, d);
            await startAndReadinessPhase(ctx, d);
            await smokePhase(ctx, d);
            await shiftPhase(ctx, d);
        } catch (e) {
            await failDeploy(ctx, d, e);
        }
        await commitPhase(ctx, d);
        await retireOldSlotPhase(ctx, d);
        finish(ctx, d);
    } finally {
        d.traffic?.close();
    }
}

/**
 * Every request HAProxy handled from the deploy's start until now, by release, for the closing
 * line, the result and the audit log. Undefined without the request log.
 */
function measureTraffic(d: Deploy): DeployTraffic | undefined {
    if (!d.traffic) return undefined;
    const releaseOf: Partial<Record<string, string>> = { [d.newSlot]: d.version };
    if (d.oldSlot && d.oldVersion) releaseOf[d.oldSlot] = d.oldVersion;
    return deployTraffic(d.traffic.window(d.startedAt), releaseOf, d.traffic.droppedCount());
}

/** The record of a new deploy, or undefined (audited as a no-op) when the version is already live. */
function begin(ctx: AgentContext, req: DeployRequest): Deploy | undefined {
    const { log, layout } = ctx;
    const { command, version, opts } = req;
    if (!isPrepared(ctx, version)) throw new AgentError(`release ${version} is not prepared (no ${releaseDir(layout, version)}); run prepare first`);
    const state = readSlotsState(layout.stateFile);
    const oldSlot = state.live;
    const oldVersion = liveVersion(state);
    const wanted = req.activation ?? wantedActivation(ctx);
    let sameVersionBecause: string[] = [];
    if (oldSlot && oldVersion === version) {
        const running = state.slots[oldSlot].activation;
        // A slot started before its runtime was recorded runs with what the settings said then.
        sameVersionBecause = running ? activationChanges(running, onSlot(ctx, oldSlot, wanted)) : [];
        if (sameVersionBecause.length === 0) {
            log.info(`${version} is already live on ${oldSlot}${running ? " with these settings" : ""}; nothing to do`);
            appendAudit(layout.auditLog, { command, version, from: slotLabel(oldVersion, oldSlot), to: slotLabel(version, oldSlot), result: "noop" });
            Object.assign(ctx.result, { ok: true, command, version, slot: oldSlot, noop: true });
            return undefined;
        }
    }
    const newSlot = idleSlot(state);
    const d: Deploy = {
        ...req,
        startedAt: Date.now(),
        state,
        oldSlot,
        oldVersion,
        newSlot,
        activation: onSlot(ctx, newSlot, wanted),
        newName: `${newSlot} (${version})`,
        oldName: oldSlot ? `${oldSlot} (${oldVersion})` : "",
        durations: {},
        initialStats: {},
        slotTouched: false,
        reused: false,
        weightMoved: false,
        steps: [],
    };
    if (sameVersionBecause.length) {
        log.info(
            `${version} is live on ${oldSlot} but the settings it depends on changed (${sameVersionBecause.join("; ")}): ${version} starts again on ${newSlot} with them and traffic shifts to it as for a new release`,
        );
    }
    log.info(`${command} ${version}: ${newSlot} gets ${version}; ${oldSlot ? `${d.oldName} serves all traffic` : "nothing is live yet"}`);
    log.info(
        `plan ${opts.shiftPlan.map((s) => `${s.percent}%${s.pauseSeconds ? `:${s.pauseSeconds}s` : ""}`).join(" -> ")}; max 5xx ratio ${percent(opts.maxErrorRatio)}; ` +
            `at least ${opts.minRequestsPerStep} requests per step (held up to ${seconds(opts.maxStepExtension * 1000)} longer); ` +
            `max latency ${opts.maxLatencyRatio ? `${opts.maxLatencyRatio}x the old release's` : "not gated"}; ` +
            `health timeout ${seconds(opts.healthTimeout * 1000)}; drain timeout ${seconds(opts.drainTimeout * 1000)}; previous kept warm: ${opts.keepPreviousWarm ? "yes" : "no"}`,
    );
    return d;
}

/** Phase 1: the migration-safety gate, the rehearsal and the migrations, before the idle slot is touched. */
async function migratePhase(ctx: AgentContext, d: Deploy): Promise<void> {
    if (!d.migrate) return;
    try {
        // The rehearsal (when configured) runs inside the step, after the gate and before the real migration.
        const m = await runMigrationStep(ctx, {
            version: d.version,
            liveVersion: d.oldVersion,
            allow: d.migrate.allow,
            healthTimeoutMs: d.opts.healthTimeout * 1000,
        });
        if (m.ran) d.durations.migrate = m.durationMs;
        if (m.rehearsal) d.durations.rehearsal = m.rehearsal.durationMs;
        d.migrations = {
            ran: m.ran,
            ...(m.skipped ? { skipped: m.skipped } : {}),
            applied: m.applied,
            allowed: m.allowed,
            ...(m.attempts ? { attempts: m.attempts } : {}),
        };
    } catch (e) {
        throw new PhaseFailure(e instanceof GateError ? e.gate : "migration", errorMessage(e));
    }
}

/** Phase 2: mark the deploy in slots.json, take the idle slot to weight 0, clear it (or reuse it when it already runs this release). */
async function prepareIdleSlotPhase(ctx: AgentContext, d: Deploy): Promise<void> {
    const { log, layout } = ctx;
    d.initialStats = await ctx.haproxy.stats();
    if (d.oldSlot) {
        const h = classifyHealth(d.initialStats[d.oldSlot]);
        if (h.state !== "up") log.warn(`the live slot ${d.oldName} is not healthy in HAProxy (${h.detail}); deploying anyway`);
    }
    d.state.deploying = { version: d.version, slot: d.newSlot, pid: process.pid, startedAt: new Date(d.startedAt).toISOString() };
    d.state.lastShift = d.opts;
    writeSlotsState(layout, d.state);
    d.slotTouched = true;

    await applyWeights(ctx, { [d.newSlot]: 0 });
    const idle = d.state.slots[d.newSlot];
    if (!idle.running) return;
    const sameRuntime = idle.activation !== undefined && activationChanges(idle.activation, d.activation).length === 0;
    const warmAndUp =
        idle.version === d.version && sameRuntime && slotTarget(ctx, d.newSlot) === d.version && classifyHealth(d.initialStats[d.newSlot]).state === "up";
    if (warmAndUp) {
        log.info(`${d.newName} is already running (warm) and passing checks; reusing it`);
        d.reused = true;
    } else {
        log.info(`stopping ${d.newSlot} (${idle.version}) to make room for ${d.version}`);
        await drainAndStop(ctx, d.state, d.newSlot, d.opts.drainTimeout * 1000);
    }
}

/** Phase 3: start the new release in the idle slot; its health path must answer 200, then HAProxy must see it UP. */
async function startAndReadinessPhase(ctx: AgentContext, d: Deploy): Promise<void> {
    const { log, layout } = ctx;
    const { newSlot, newName, opts } = d;
    const tStart = Date.now();
    if (!d.reused) {
        // An activation starts with the app environment as it is now; a rollback with its own.
        if (d.command === "activate") d.activation = { ...d.activation, envSha256: snapshotCurrentEnv(ctx) };
        d.activation = await pointSlotAt(ctx, newSlot, d.version, d.activation);
        d.state.slots[newSlot] = { version: d.version, running: true, activation: d.activation };
        writeSlotsState(layout, d.state);
        log.info(`starting ${newName} on port ${d.activation.port} (health check GET ${d.activation.healthPath}, Host ${d.activation.healthHost})`);
        // While a live release serves, the new one boots behind it (a cgroup weight set before the
        // start, a nice level on its processes right after it and again once they have forked).
        if (d.oldSlot) await ctx.pc.setPriority(newSlot, "deploy");
        try {
            await ctx.pc.start(newSlot);
        } catch (e) {
            throw new PhaseFailure("start", `start of ${newName} failed: ${errorMessage(e)}`);
        }
        if (d.oldSlot) await ctx.pc.setPriority(newSlot, "deploy");
    }
    const ready = await waitForReadiness(ctx, d.activation, opts.healthTimeout * 1000);
    if (!ready.ok) {
        throw new PhaseFailure(
            "health",
            `health gate failed: ${newName} did not answer 200 on ${d.activation.healthPath} within ${seconds(opts.healthTimeout * 1000)} (${ready.detail})`,
        );
    }
    log.info(`${newName} is ready: ${d.activation.healthPath} answered 200 after ${seconds(ready.elapsedMs)}`);
    if (d.oldSlot && !d.reused) await ctx.pc.setPriority(newSlot, "deploy");
    const haproxyBudget = Math.max(15000, opts.healthTimeout * 1000 - (Date.now() - tStart));
    const up = await waitForHaproxyUp(ctx, newSlot, haproxyBudget);
    if (!up.ok) {
        throw new PhaseFailure(
            "haproxy-check",
            `HAProxy check gate failed: ${newName} answers its health path but HAProxy does not see it UP/L7OK within ${seconds(haproxyBudget)} (${up.detail})`,
        );
    }
    log.info(`HAProxy sees ${newName} ${up.detail}`);
    d.durations.health = Date.now() - tStart;
}

/** Phase 4: every smoke path through HAProxy, forced to the new slot, before it gets any public traffic. */
async function smokePhase(ctx: AgentContext, d: Deploy): Promise<void> {
    const tSmoke = Date.now();
    const smoke = await smokeTest(ctx, d.newSlot, d.activation.healthHost);
    if (!smoke.ok) throw new PhaseFailure("smoke", `smoke gate failed: ${smoke.detail} on ${d.newName}`);
    ctx.log.info(`smoke tests passed on ${d.newName}: ${smoke.detail}`);
    d.durations.smoke = Date.now() - tSmoke;
    const why = ctx.abortReason();
    if (why) throw new PhaseFailure("aborted", `deploy aborted before any traffic moved: ${why}`);
}

/** Phase 5: the plan's weight steps, each with its gate; a first release takes all traffic at once. */
async function shiftPhase(ctx: AgentContext, d: Deploy): Promise<void> {
    const { log } = ctx;
    const tShift = Date.now();
    // From its first request on, the new release competes as an equal.
    if (d.oldSlot) await ctx.pc.setPriority(d.newSlot, "live");
    d.weightMoved = true;
    if (!d.oldSlot) {
        await applyWeights(ctx, { [d.newSlot]: 100, [otherSlot(d.newSlot)]: 0 });
        log.info(`first release: all traffic to ${d.newName}`);
        d.durations.shift = Date.now() - tShift;
        return;
    }
    const outcome = await walkShift(
        {
            setWeights: (w) => applyWeights(ctx, w),
            stats: () => ctx.haproxy.stats(),
            latency: (slot, since) => {
                if (!d.traffic) return undefined;
                const f = trafficFigures(d.traffic.window(since, Date.now(), slot).filter((s) => s.responseMs >= 0));
                return { requests: f.requests, p50Ms: f.p50Ms };
            },
            sleep,
            now: Date.now,
            aborted: ctx.abortReason,
            log,
        },
        {
            shiftPlan: d.opts.shiftPlan,
            newSlot: d.newSlot,
            oldSlot: d.oldSlot,
            newVersion: d.version,
            oldVersion: d.oldVersion ?? "?",
            maxErrorRatio: d.opts.maxErrorRatio,
            minRequestsPerStep: d.opts.minRequestsPerStep,
            maxStepExtension: d.opts.maxStepExtension,
            maxLatencyRatio: d.opts.maxLatencyRatio,
            pollMs: 500,
            settleMs: 3000,
        },
    );
    if (!outcome.ok) throw new PhaseFailure(outcome.gate, outcome.message);
    d.durations.shift = Date.now() - tShift;
    d.steps = outcome.steps;
}

/** Phase 6: from here the new release is live, whatever happens to the old slot. */
async function commitPhase(ctx: AgentContext, d: Deploy): Promise<void> {
    await commitLive(ctx, d.state, d.newSlot, d.oldSlot);
}

/** Phase 7: drain the old slot, then keep it warm or stop it. It already has weight 0: nothing here fails the deploy. */
async function retireOldSlotPhase(ctx: AgentContext, d: Deploy): Promise<void> {
    if (d.oldSlot) await retireOldSlotSafely(ctx, d.state, d.oldSlot, d.opts, d.durations);
}

function finish(ctx: AgentContext, d: Deploy): void {
    const { command, version, durations } = d;
    durations.total = Date.now() - d.startedAt;
    const from = slotLabel(d.oldVersion, d.oldSlot);
    const to = slotLabel(version, d.newSlot);
    const traffic = measureTraffic(d);
    const extra = { ...(d.migrations ? { migrations: d.migrations } : {}), ...(traffic ? { traffic } : {}) };
    appendAudit(ctx.layout.auditLog, { command, version, from, to, result: "ok", durations: secondsOf(durations), steps: d.steps, ...extra });
    Object.assign(ctx.result, { ok: true, command, version, slot: d.newSlot, from, to, durations: secondsOf(durations), steps: d.steps, ...extra });
    ctx.log.info(
        `${command} ${version} done in ${seconds(durations.total)} (${durations.migrate !== undefined ? `migrate ${seconds(durations.migrate)}, ` : ""}health ${seconds(durations.health)}, shift ${seconds(durations.shift)}, drain ${seconds(durations.drain ?? 0)})` +
            `; ${traffic ? formatDeployTraffic(traffic) : "this deploy's requests were not counted (no request log)"}`,
    );
}

/**
 * The one way out of a failed deploy. Before the idle slot was touched (a refused or failed
 * migration) both slots are as they were; after, traffic goes back to the old slot and the new one
 * is stopped. Always throws a GateError naming the gate.
 */
async function failDeploy(ctx: AgentContext, d: Deploy, e: unknown): Promise<never> {
    const { log, layout } = ctx;
    const { command, version, oldSlot, oldName, newSlot } = d;
    const gate = e instanceof PhaseFailure ? e.gate : "error";
    // Anything unexpected (socket gone, disk full) before the commit leaves the same way as a failed gate.
    const message = e instanceof PhaseFailure ? e.message : `${command} ${version} failed: ${errorMessage(e)}`;
    const from = slotLabel(d.oldVersion, oldSlot);

    if (!d.slotTouched) {
        d.durations.total = Date.now() - d.startedAt;
        appendAudit(layout.auditLog, { command, version, from, to: null, result: "failed", reason: message, gate, durations: secondsOf(d.durations) });
        Object.assign(ctx.result, { ok: false, command, version, gate, error: message, durations: secondsOf(d.durations) });
        throw new GateError(gate, `${message}${oldSlot ? `; traffic never left ${oldName}` : ""}`);
    }

    log.warn(`${message}; ${d.weightMoved && oldSlot ? `moving all traffic back to ${oldName}` : `stopping ${newSlot}`}`);
    // Runtime first, persistence after: traffic is back on the old slot and the new one stopped
    // even when a save fails (full disk, read-only state dir). Such a failure keeps `deploying` in
    // slots.json, so the next command that takes the lock, or the boot-time recovery, finishes it.
    const unsaved: string[] = [];
    let restoreError: unknown;
    if (d.weightMoved && oldSlot) {
        restoreError = await restoreOld(ctx, oldSlot, newSlot);
        if (!restoreError) log.info(`traffic is back on ${oldName}`);
    }
    await drainAndStopProcess(ctx, newSlot, d.opts.drainTimeout * 1000);
    d.state.slots[newSlot].running = false;
    try {
        await ctx.haproxy.saveState(layout.haproxyStateFile);
    } catch (err) {
        unsaved.push(`HAProxy's state (${errorMessage(err)})`);
    }
    if (!restoreError && unsaved.length === 0) d.state.deploying = null;
    try {
        writeSlotsState(layout, d.state);
    } catch (err) {
        unsaved.push(`slots.json (${errorMessage(err)})`);
    }
    if (restoreError || unsaved.length) {
        log.warn(
            `${restoreError ? `the weights could not be restored (${errorMessage(restoreError)}); ` : ""}${unsaved.length ? `could not save ${unsaved.join(" and ")}; ` : ""}` +
                "slots.json keeps the deploy as interrupted: the next command that takes the lock, or a reboot, restores the committed state",
        );
    }
    d.durations.total = Date.now() - d.startedAt;
    const result = d.weightMoved ? "rolled-back" : "failed";
    const traffic = measureTraffic(d);
    if (traffic) log.info(formatDeployTraffic(traffic));
    try {
        appendAudit(layout.auditLog, {
            command,
            version,
            from,
            to: slotLabel(version, newSlot),
            result,
            reason: message,
            gate,
            durations: secondsOf(d.durations),
            ...(traffic ? { traffic } : {}),
        });
    } catch (err) {
        log.warn(`could not append to the audit log: ${errorMessage(err)}`);
    }
    Object.assign(ctx.result, {
        ok: false,
        command,
        version,
        gate,
        error: message,
        durations: secondsOf(d.durations),
        ...(d.migrations ? { migrations: d.migrations } : {}),
        ...(traffic ? { traffic } : {}),
    });
    if (restoreError) {
        throw new AgentError(
            `${message}; could not put traffic back on ${oldName}: ${errorMessage(restoreError)}; ${newSlot} stopped; the next command recovers it`,
        );
    }
    const tail = oldSlot ? (d.weightMoved ? `; traffic is back on ${oldName}` : `; traffic never left ${oldName}`) : "";
    const pending = unsaved.length ? `; not saved: ${unsaved.join(", ")} (the next command or a reboot finishes the recovery)` : "";
    throw new GateError(gate, `${message}${tail}; ${newSlot} stopped${pending}`);
}

/** All traffic back on the old slot, at runtime. Retried: this is the step that must not fail. Returns the last error, if it did. */
async function restoreOld(ctx: AgentContext, oldSlot: Slot, newSlot: Slot): Promise<unknown> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
        try {
            await ctx.haproxy.setWeights({ [oldSlot]: 100, [newSlot]: 0 });
            await ctx.haproxy.setState(oldSlot, "ready");
            return undefined;
        } catch (e) {
            lastError = e;
            ctx.log.warn(`restoring weights failed (attempt ${attempt + 1}): ${errorMessage(e)}`);
            await sleep(1000);
        }
    }
    return lastError ?? new Error("unknown error");
}
