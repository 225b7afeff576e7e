// Operations on one slot that activate, rollback, retire and recovery share: point it at a release,
// start/stop it, wait for readiness, smoke-test it through HAProxy, drain it.
import * as fs from "fs";
import * as path from "path";
import { BUILD_DIR_ENV, buildDir, releaseDir, Slot, slotEnvFile, slotLink } from "../../lib/host-layout";
import { AgentContext, sleep } from "../context";
import { errorMessage } from "../common/errors";
import { symlinkAtomic, writeFileAtomic } from "../common/fs-atomic";
import { formatEnvLines } from "../../lib/env-lines";
import { classifyHealth } from "./gates";
import { describeProbe, httpGet, ProbeResult } from "../common/http-probe";
import { seconds } from "../common/log";
import { ShiftOptions } from "./shift-options";
import { SlotsState, writeSlotsState } from "../state/slots-file";
import { cacheKeyPrefix } from "../release/releases";
import { pointHaproxyChecksAt, writeSlotLaunchFiles } from "./slot-launch";
import { SlotActivation } from "../../lib/slot-activation";

/** Sets runtime weights, then saves them to the server-state file so a reload keeps them. */
export async function applyWeights(ctx: AgentContext, weights: Partial<Record<Slot, number>>): Promise<void> {
    await ctx.haproxy.setWeights(weights);
    await ctx.haproxy.saveState(ctx.layout.haproxyStateFile);
}

/**
 * Everything a slot is started with, before it starts: slots/<slot> -> ../releases/<version>,
 * slots/<slot>.env (PORT, RELEASE_VERSION, SLOT, CACHE_KEY_PREFIX, SLOTSHIFT_BUILD_DIR), its start
 * script and app environment snapshot, and HAProxy's checks for it. Returns the runtime as written
 * (the environment falls back to the current one when its snapshot is gone).
 */
export async function pointSlotAt(ctx: AgentContext, slot: Slot, version: string, runtime: SlotActivation): Promise<SlotActivation> {
    const link = slotLink(ctx.layout, slot);
    const target = path.relative(ctx.layout.slotsDir, releaseDir(ctx.layout, version));
    symlinkAtomic(target, link);
    // Plain KEY=value lines (systemd reads them as they are): a port, a version, a slot name and a
    // layout path need no quoting.
    const env = formatEnvLines({
        PORT: String(runtime.port),
        RELEASE_VERSION: version,
        SLOT: slot,
        CACHE_KEY_PREFIX: cacheKeyPrefix(ctx.settings.app.appName, version),
        [BUILD_DIR_ENV]: buildDir(ctx.layout, version),
    });
    writeFileAtomic(slotEnvFile(ctx.layout, slot), env, { mode: 0o644 });
    const written = writeSlotLaunchFiles(ctx, slot, runtime);
    await pointHaproxyChecksAt(ctx, slot, written);
    return written;
}

/** The release a slot's symlink points at. */
export function slotTarget(ctx: AgentContext, slot: Slot): string | undefined {
    try {
        return path.basename(fs.readlinkSync(slotLink(ctx.layout, slot)));
    } catch {
        return undefined;
    }
}

export interface WaitResult {
    ok: boolean;
    elapsedMs: number;
    detail: string;
}

/** Readiness: the slot's health path answers 200, asked directly on its port with its Host. */
export async function waitForReadiness(ctx: AgentContext, runtime: SlotActivation, timeoutMs: number): Promise<WaitResult> {
    const started = Date.now();
    let last: ProbeResult | undefined;
    let attempts = 0;
    for (;;) {
        const why = ctx.abortReason();
        if (why) return { ok: false, elapsedMs: Date.now() - started, detail: `aborted: ${why}` };
        attempts++;
        const left = timeoutMs - (Date.now() - started);
        last = await httpGet({
            host: "127.0.0.1",
            port: runtime.port,
            path: runtime.healthPath,
            headers: { Host: runtime.healthHost },
            timeoutMs: Math.max(500, Math.min(5000, left)),
        });
        if (last.status === 200) return { ok: true, elapsedMs: Date.now() - started, detail: `HTTP 200 after ${attempts} attempt(s)` };
        if (Date.now() - started + 500 > timeoutMs) break;
        await sleep(500);
    }
    return { ok: false, elapsedMs: Date.now() - started, detail: `last answer: ${describeProbe(last)} after ${attempts} attempt(s)` };
}

/** HAProxy's own checks pass (UP, L7OK): only then may the slot get weight. */
export async function waitForHaproxyUp(ctx: AgentContext, slot: Slot, timeoutMs: number): Promise<WaitResult> {
    const started = Date.now();
    let detail = "no stats";
    for (;;) {
        const why = ctx.abortReason();
        if (why) return { ok: false, elapsedMs: Date.now() - started, detail: `aborted: ${why}` };
        const h = classifyHealth((await ctx.haproxy.stats())[slot]);
        detail = h.detail;
        if (h.state === "up") return { ok: true, elapsedMs: Date.now() - started, detail };
        if (Date.now() - started > timeoutMs) return { ok: false, elapsedMs: Date.now() - started, detail };
        await sleep(250);
    }
}

/** Each smoke path through HAProxy, forced to the slot (X-Slot) with its Host, must answer 2xx or 3xx. */
export async function smokeTest(ctx: AgentContext, slot: Slot, host: string): Promise<{ ok: boolean; detail: string }> {
    for (const p of ctx.settings.health.smokePaths) {
        const r = await httpGet({
            host: "127.0.0.1",
            port: ctx.settings.proxy.haproxyPort,
            path: p,
            headers: { Host: host, [ctx.settings.haproxy.slotHeader]: slot },
            timeoutMs: 15000,
        });
        if (!(r.status >= 200 && r.status < 400)) return { ok: false, detail: `GET ${p} answered ${describeProbe(r)}` };
        ctx.log.info(`  smoke GET ${p} via HAProxy -> ${r.status}`);
    }
    return { ok: true, detail: `${ctx.settings.health.smokePaths.length} path(s) answered 2xx/3xx` };
}

/**
 * Waits until HAProxy has no request in flight on the slot (scur == 0). The caller has already
 * taken its weight to 0; drain state also keeps persistence-forced requests off it.
 */
async function drain(ctx: AgentContext, slot: Slot, timeoutMs: number): Promise<{ drained: boolean; elapsedMs: number; remaining: number }> {
    const started = Date.now();
    await ctx.haproxy.setState(slot, "drain");
    let remaining = 0;
    let reported = -1;
    for (;;) {
        remaining = (await ctx.haproxy.stats())[slot]?.scur ?? 0;
        if (remaining === 0) break;
        if (remaining !== reported) {
            ctx.log.info(`  ${slot}: ${remaining} request(s) still in flight; waiting (up to ${seconds(timeoutMs)})`);
            reported = remaining;
        }
        if (Date.now() - started > timeoutMs) break;
        await sleep(200);
    }
    // Back to "ready" at weight 0: no traffic, health checks keep running (that is what warm means).
    await ctx.haproxy.setState(slot, "ready");
    return { drained: remaining === 0, elapsedMs: Date.now() - started, remaining };
}

/** Stops a slot's process (best effort when it already died) and records it. */
export async function stopSlot(ctx: AgentContext, state: SlotsState, slot: Slot): Promise<void> {
    try {
        await ctx.pc.stop(slot);
    } catch (e) {
        ctx.log.warn(`stopping ${slot}: ${errorMessage(e)}`);
    }
    state.slots[slot].running = false;
    writeSlotsState(ctx.layout, state);
}

/**
 * Runtime weight 0, drain in-flight requests, stop the process; records nothing (the caller
 * persists). HAProxy being unreachable only skips the drain: the process is stopped either way.
 */
export async function drainAndStopProcess(ctx: AgentContext, slot: Slot, drainTimeoutMs: number): Promise<void> {
    try {
        await ctx.haproxy.setWeights({ [slot]: 0 });
        const d = await drain(ctx, slot, drainTimeoutMs);
        if (!d.drained) ctx.log.warn(`${slot} still had ${d.remaining} request(s) in flight after ${seconds(d.elapsedMs)}; stopping it anyway`);
    } catch (e) {
        ctx.log.warn(`draining ${slot}: ${errorMessage(e)}`);
    }
    try {
        await ctx.pc.stop(slot);
    } catch (e) {
        ctx.log.warn(`stopping ${slot}: ${errorMessage(e)}`);
    }
    ctx.log.info(`${slot} stopped`);
}

/** Weight 0, drain in-flight requests, stop, and record it. Used for a retired slot. */
export async function drainAndStop(ctx: AgentContext, state: SlotsState, slot: Slot, drainTimeoutMs: number): Promise<void> {
    await drainAndStopProcess(ctx, slot, drainTimeoutMs);
    state.slots[slot].running = false;
    writeSlotsState(ctx.layout, state);
}

/** After the switch: drain the old slot, then stop it or keep it warm (running, weight 0, checked). */
async function retireOldSlot(ctx: AgentContext, state: SlotsState, oldSlot: Slot, opts: ShiftOptions, durations: Record<string, number>): Promise<void> {
    const name = `${oldSlot} (${state.slots[oldSlot].version})`;
    ctx.log.info(`draining ${name}`);
    const d = await drain(ctx, oldSlot, opts.drainTimeout * 1000);
    durations.drain = d.elapsedMs;
    if (d.drained) ctx.log.info(`${name} drained in ${seconds(d.elapsedMs)}`);
    else ctx.log.warn(`${name} still had ${d.remaining} request(s) in flight after the drain timeout (${seconds(opts.drainTimeout * 1000)})`);
    if (opts.keepPreviousWarm) {
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
        await ctx.haproxy.saveState(ctx.layout.haproxyStateFile);
    } catch (e) {
        ctx.log.warn(`retiring ${oldSlot} after the switch failed: ${errorMessage(e)}; it stays at weight 0 (the next deploy stops it)`);
    }
}
