// activate VERSION: start it in the idle slot, gate it (readiness, HAProxy checks, smoke paths),
// walk the shift plan with a gate per step, then retire the old slot (drain, stop or keep warm).
// Any failed gate puts all traffic back on the old slot and stops the new one.
import { otherSlot, Slot } from "../../lib/host-layout";
import { parseContractOperation, splitContractOperations } from "../../lib/migrations";
import { formatShiftPlan, parseDuration, parseShiftPlan, ShiftStep } from "../../lib/shift-plan";
import { appendAudit, slotLabel } from "../audit";
import { boolFlag, checkFlags, numberFlag, ParsedArgs, stringFlag } from "../cli-args";
import { AgentContext, sleep } from "../context";
import { AgentError, errorMessage, GateError, UsageError } from "../errors";
import { classifyHealth } from "../gates";
import { percent, seconds } from "../log";
import { runMigrationStep } from "../migrate";
import { isPrepared } from "../releases";
import { walkShift } from "../shift";
import { applyWeights, drain, drainAndStop, pointSlotAt, slotTarget, smokeTest, stopSlot, swapCurrent, waitForHaproxyUp, waitForReadiness } from "../slot-ops";
import { idleSlot, liveVersion, readSlotsState, ShiftSettings, SlotsState, writeSlotsState } from "../slots-state";
import { checkVersion } from "../settings";
import { withDeployLock } from "../with-lock";

export const DEFAULT_PLAN = "10:30,50:30,100:0";

export interface ShiftOptions {
    plan: ShiftStep[];
    maxErrorRatio: number;
    healthTimeoutMs: number;
    drainTimeoutMs: number;
    keepWarm: boolean;
}

export const SHIFT_FLAGS = ["plan", "max-error-ratio", "health-timeout", "drain-timeout", "keep-warm", "no-keep-warm"];
/** activate's own: the acknowledged contract operations for this version's migrations. */
export const ACTIVATE_FLAGS = ["version", "allow-contract", ...SHIFT_FLAGS];

/** --allow-contract a,b: each MIGRATION:OPERATION:TARGET, checked like the stack config does. */
export function allowContractFlag(args: ParsedArgs): string[] {
    const list = splitContractOperations(stringFlag(args, "allow-contract") ?? "");
    for (const item of list) {
        try {
            parseContractOperation(item);
        } catch (e) {
            throw new UsageError(`--allow-contract: ${errorMessage(e)}`);
        }
    }
    return list;
}

function durationFlag(args: ParsedArgs, name: string, fallbackSeconds: number): number {
    const v = stringFlag(args, name);
    if (v === undefined) return fallbackSeconds * 1000;
    try {
        const s = parseDuration(v);
        if (s <= 0) throw new Error("must be positive");
        return s * 1000;
    } catch (e) {
        throw new UsageError(`--${name}: ${errorMessage(e)}`);
    }
}

/** Shift options from the command line, falling back to the last activation's, then to defaults. */
export function shiftOptions(args: ParsedArgs, keepWarmDefault: boolean, last?: ShiftSettings): ShiftOptions {
    let plan: ShiftStep[];
    try {
        plan = parseShiftPlan(stringFlag(args, "plan") ?? last?.plan ?? DEFAULT_PLAN);
    } catch (e) {
        throw new UsageError(`--plan: ${errorMessage(e)}`);
    }
    const maxErrorRatio = numberFlag(args, "max-error-ratio") ?? last?.maxErrorRatio ?? 0.01;
    if (maxErrorRatio < 0 || maxErrorRatio > 1) throw new UsageError("--max-error-ratio must be between 0 and 1");
    if (boolFlag(args, "keep-warm") && boolFlag(args, "no-keep-warm")) throw new UsageError("--keep-warm and --no-keep-warm exclude each other");
    const keepWarm = boolFlag(args, "keep-warm") ? true : boolFlag(args, "no-keep-warm") ? false : keepWarmDefault;
    return {
        plan,
        maxErrorRatio,
        healthTimeoutMs: durationFlag(args, "health-timeout", last?.healthTimeoutSeconds ?? 120),
        drainTimeoutMs: durationFlag(args, "drain-timeout", last?.drainTimeoutSeconds ?? 60),
        keepWarm,
    };
}

export async function activateCommand(ctx: AgentContext, args: ParsedArgs): Promise<void> {
    checkFlags(args, ACTIVATE_FLAGS);
    const version = checkVersion(stringFlag(args, "version") ?? args.positionals[0]);
    const opts = shiftOptions(args, ctx.settings.keepPreviousWarm);
    const allow = allowContractFlag(args);
    await withDeployLock(ctx, "activate", version, () => deployRelease(ctx, version, opts, "activate", { allow }));
}

function toSettings(o: ShiftOptions): ShiftSettings {
    return {
        plan: formatShiftPlan(o.plan),
        maxErrorRatio: o.maxErrorRatio,
        healthTimeoutSeconds: o.healthTimeoutMs / 1000,
        drainTimeoutSeconds: o.drainTimeoutMs / 1000,
    };
}

/**
 * The gated deploy of one release into the idle slot. Used by activate, and by rollback when the
 * previous release is not warm (its migrations ran when it was first activated: `migrate` is
 * unset). Must be called under the deploy lock.
 */
export async function deployRelease(
    ctx: AgentContext,
    version: string,
    opts: ShiftOptions,
    command: "activate" | "rollback",
    migrate?: { allow: readonly string[] },
): Promise<void> {
    const t0 = Date.now();
    const { log, layout, settings } = ctx;
    if (!isPrepared(ctx, version)) throw new AgentError(`release ${version} is not prepared (no ${layout.releasesDir}/${version}); run prepare first`);

    const state = readSlotsState(layout.stateFile);
    const oldSlot = state.live;
    const oldVersion = liveVersion(state);
    if (oldSlot && oldVersion === version) {
        log.info(`${version} is already live on ${oldSlot}; nothing to do`);
        appendAudit(layout.auditLog, { command, version, from: slotLabel(oldVersion, oldSlot), to: slotLabel(version, oldSlot), result: "noop" });
        Object.assign(ctx.result, { ok: true, command, version, slot: oldSlot, noop: true });
        return;
    }
    const newSlot = idleSlot(state);
    const newName = `${newSlot} (${version})`;
    const oldName = oldSlot ? `${oldSlot} (${oldVersion})` : "";
    log.info(`${command} ${version}: ${newSlot} gets ${version}; ${oldSlot ? `${oldName} serves all traffic` : "nothing is live yet"}`);
    log.info(
        `plan ${opts.plan.map((s) => `${s.percent}%${s.pauseSeconds ? `:${s.pauseSeconds}s` : ""}`).join(" -> ")}; max 5xx ratio ${percent(opts.maxErrorRatio)}; ` +
            `health timeout ${seconds(opts.healthTimeoutMs)}; drain timeout ${seconds(opts.drainTimeoutMs)}; previous kept warm: ${opts.keepWarm ? "yes" : "no"}`,
    );

    const durations: Record<string, number> = {};
    let migrations: Record<string, unknown> | undefined;
    if (migrate) {
        // Before the idle slot is touched: a refused or failed migration leaves both slots as they were.
        try {
            const m = await runMigrationStep(ctx, { version, liveVersion: oldVersion, allow: migrate.allow });
            if (m.ran) durations.migrate = m.durationMs;
            migrations = { ran: m.ran, ...(m.skipped ? { skipped: m.skipped } : {}), applied: m.applied, allowed: m.allowed };
        } catch (e) {
            const gate = e instanceof GateError ? e.gate : "migration";
            const message = errorMessage(e);
            durations.total = Date.now() - t0;
            appendAudit(layout.auditLog, {
                command,
                version,
                from: slotLabel(oldVersion, oldSlot),
                to: null,
                result: "failed",
                reason: message,
                gate,
                durations: secondsOf(durations),
            });
            Object.assign(ctx.result, { ok: false, command, version, gate, error: message, durations: secondsOf(durations) });
            throw new GateError(gate, `${message}${oldSlot ? `; traffic never left ${oldName}` : ""}`);
        }
    }

    const stats0 = await ctx.runtime.stats();
    if (oldSlot) {
        const h = classifyHealth(stats0[oldSlot]);
        if (h.state !== "up") log.warn(`the live slot ${oldName} is not healthy in HAProxy (${h.detail}); deploying anyway`);
    }

    state.deploying = { version, slot: newSlot, pid: process.pid, startedAt: new Date(t0).toISOString() };
    state.lastShift = toSettings(opts);
    writeSlotsState(layout.stateFile, state);

    let weightMoved = false;
    const finishFailed = async (gate: string, message: string): Promise<never> => {
        log.warn(`${message}; ${weightMoved && oldSlot ? `moving all traffic back to ${oldName}` : `stopping ${newSlot}`}`);
        if (weightMoved && oldSlot) {
            await restoreOld(ctx, oldSlot, newSlot);
            log.info(`traffic is back on ${oldName}`);
        }
        await drainAndStop(ctx, state, newSlot, opts.drainTimeoutMs);
        state.deploying = null;
        writeSlotsState(layout.stateFile, state);
        durations.total = Date.now() - t0;
        const result = weightMoved ? "rolled-back" : "failed";
        appendAudit(layout.auditLog, {
            command,
            version,
            from: slotLabel(oldVersion, oldSlot),
            to: slotLabel(version, newSlot),
            result,
            reason: message,
            gate,
            durations: secondsOf(durations),
        });
        Object.assign(ctx.result, {
            ok: false,
            command,
            version,
            gate,
            error: message,
            durations: secondsOf(durations),
            ...(migrations ? { migrations } : {}),
        });
        const tail = oldSlot ? (weightMoved ? `; traffic is back on ${oldName}` : `; traffic never left ${oldName}`) : "";
        throw new GateError(gate, `${message}${tail}; ${newSlot} stopped`);
    };

    let steps: unknown[] = [];
    try {
        steps = await startGateAndShift();
    } catch (e) {
        if (e instanceof GateError) throw e;
        // Anything unexpected (socket gone, disk full) before the commit: same way out as a failed gate.
        await finishFailed("error", `${command} ${version} failed: ${errorMessage(e)}`);
    }

    async function startGateAndShift(): Promise<unknown[]> {
        // --- the idle slot: weight 0 before anything runs there
        await applyWeights(ctx, { [newSlot]: 0 });
        const idle = state.slots[newSlot];
        let reuse = false;
        if (idle.running) {
            const warmAndUp = idle.version === version && slotTarget(ctx, newSlot) === version && classifyHealth(stats0[newSlot]).state === "up";
            if (warmAndUp) {
                reuse = true;
                log.info(`${newName} is already running (warm) and passing checks; reusing it`);
            } else {
                log.info(`stopping ${newSlot} (${idle.version}) to make room for ${version}`);
                await drainAndStop(ctx, state, newSlot, opts.drainTimeoutMs);
            }
        }

        // --- start and readiness
        const tStart = Date.now();
        if (!reuse) {
            pointSlotAt(ctx, newSlot, version);
            state.slots[newSlot] = { version, running: true };
            writeSlotsState(layout.stateFile, state);
            log.info(`starting ${newName} on port ${settings.slots[newSlot]}`);
            try {
                await ctx.pc.start(newSlot);
            } catch (e) {
                await finishFailed("start", `start of ${newName} failed: ${errorMessage(e)}`);
            }
        }
        const ready = await waitForReadiness(ctx, newSlot, opts.healthTimeoutMs);
        if (!ready.ok) {
            await finishFailed(
                "health",
                `health gate failed: ${newName} did not answer 200 on ${settings.health.path} within ${seconds(opts.healthTimeoutMs)} (${ready.detail})`,
            );
        }
        log.info(`${newName} is ready: ${settings.health.path} answered 200 after ${seconds(ready.elapsedMs)}`);
        const haproxyBudget = Math.max(15000, opts.healthTimeoutMs - (Date.now() - tStart));
        const up = await waitForHaproxyUp(ctx, newSlot, haproxyBudget);
        if (!up.ok) {
            await finishFailed(
                "haproxy-check",
                `HAProxy check gate failed: ${newName} answers its health path but HAProxy does not see it UP/L7OK within ${seconds(haproxyBudget)} (${up.detail})`,
            );
        }
        log.info(`HAProxy sees ${newName} ${up.detail}`);
        durations.health = Date.now() - tStart;

        const tSmoke = Date.now();
        const smoke = await smokeTest(ctx, newSlot);
        if (!smoke.ok) await finishFailed("smoke", `smoke gate failed: ${smoke.detail} on ${newName}`);
        log.info(`smoke tests passed on ${newName}: ${smoke.detail}`);
        durations.smoke = Date.now() - tSmoke;

        const why = ctx.abortReason();
        if (why) await finishFailed("aborted", `deploy aborted before any traffic moved: ${why}`);

        // --- the shift
        const tShift = Date.now();
        weightMoved = true;
        if (!oldSlot) {
            await applyWeights(ctx, { [newSlot]: 100, [otherSlot(newSlot)]: 0 });
            log.info(`first release: all traffic to ${newName}`);
            durations.shift = Date.now() - tShift;
            return [];
        }
        const outcome = await walkShift(
            { setWeights: (w) => applyWeights(ctx, w), stats: () => ctx.runtime.stats(), sleep, now: Date.now, aborted: ctx.abortReason, log },
            {
                plan: opts.plan,
                newSlot,
                oldSlot,
                newVersion: version,
                oldVersion: oldVersion ?? "?",
                maxErrorRatio: opts.maxErrorRatio,
                pollMs: 500,
                settleMs: 3000,
            },
        );
        if (!outcome.ok) await finishFailed(outcome.gate, outcome.message);
        durations.shift = Date.now() - tShift;
        return outcome.steps;
    }

    // --- commit: from here the new release is live, whatever happens to the old slot
    state.live = newSlot;
    if (oldSlot && oldVersion) state.previous = { slot: oldSlot, version: oldVersion };
    state.deploying = null;
    writeSlotsState(layout.stateFile, state);
    swapCurrent(ctx, version);
    log.info(`live: ${newName}; current -> releases/${version}`);

    if (oldSlot) await retireOldSlotSafely(ctx, state, oldSlot, opts, durations);

    durations.total = Date.now() - t0;
    const extra = migrations ? { migrations } : {};
    appendAudit(layout.auditLog, {
        command,
        version,
        from: slotLabel(oldVersion, oldSlot),
        to: slotLabel(version, newSlot),
        result: "ok",
        durations: secondsOf(durations),
        steps,
        ...extra,
    });
    Object.assign(ctx.result, {
        ok: true,
        command,
        version,
        slot: newSlot,
        from: slotLabel(oldVersion, oldSlot),
        to: slotLabel(version, newSlot),
        durations: secondsOf(durations),
        steps,
        ...extra,
    });
    log.info(
        `${command} ${version} done in ${seconds(durations.total)} (${durations.migrate !== undefined ? `migrate ${seconds(durations.migrate)}, ` : ""}health ${seconds(durations.health)}, shift ${seconds(durations.shift)}, drain ${seconds(durations.drain ?? 0)})`,
    );
}

/** After the switch: drain the old slot, then stop it or keep it warm (running, weight 0, checked). */
export async function retireOldSlot(ctx: AgentContext, state: SlotsState, oldSlot: Slot, opts: ShiftOptions, durations: Record<string, number>): Promise<void> {
    const name = `${oldSlot} (${state.slots[oldSlot].version})`;
    ctx.log.info(`draining ${name}`);
    const d = await drain(ctx, oldSlot, opts.drainTimeoutMs);
    durations.drain = d.elapsedMs;
    if (d.drained) ctx.log.info(`${name} drained in ${seconds(d.elapsedMs)}`);
    else ctx.log.warn(`${name} still had ${d.remaining} request(s) in flight after the drain timeout (${seconds(opts.drainTimeoutMs)})`);
    if (opts.keepWarm) {
        ctx.log.info(`${name} kept warm: running at weight 0, health-checked; rollback is a weight flip`);
    } else {
        await stopSlot(ctx, state, oldSlot);
        ctx.log.info(`${name} stopped`);
    }
}

/** After the commit a failure around the old slot must not fail the deploy: it sits at weight 0. */
export async function retireOldSlotSafely(
    ctx: AgentContext,
    state: SlotsState,
    oldSlot: Slot,
    opts: ShiftOptions,
    durations: Record<string, number>,
): Promise<void> {
    try {
        await retireOldSlot(ctx, state, oldSlot, opts, durations);
        await ctx.runtime.saveState(ctx.settings.haproxy.stateFile);
    } catch (e) {
        ctx.log.warn(`retiring ${oldSlot} after the switch failed: ${errorMessage(e)}; it stays at weight 0 (the next deploy stops it)`);
    }
}

/** All traffic back on the old slot. Retried: this is the step that must not fail. */
async function restoreOld(ctx: AgentContext, oldSlot: Slot, newSlot: Slot): Promise<void> {
    let lastError: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
        try {
            await applyWeights(ctx, { [oldSlot]: 100, [newSlot]: 0 });
            await ctx.runtime.setState(oldSlot, "ready");
            return;
        } catch (e) {
            lastError = e;
            ctx.log.warn(`restoring weights failed (attempt ${attempt + 1}): ${errorMessage(e)}`);
            await sleep(1000);
        }
    }
    throw new AgentError(`could not put traffic back on ${oldSlot}: ${errorMessage(lastError)}; the next deploy command recovers it`);
}

export function secondsOf(d: Record<string, number>): Record<string, number> {
    return Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Math.round(v) / 1000]));
}
