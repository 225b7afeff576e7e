// The agent's side of lib/slot-activation.ts: what a slot is started with, written where systemd and
// HAProxy read it, and the app environment snapshots a rollback returns to.
import * as crypto from "crypto";
import * as fs from "fs";
import { envSnapshotFile, envSnapshotFileNamed, envSnapshotName, isEnvSnapshotName, Slot, slotAppEnvFile, SLOTS, slotStartScript } from "../../lib/host-layout";
import { renderHealthMaps, renderStartScript, SlotActivation } from "../../lib/slot-activation";
import { AgentContext } from "../context";
import { errorMessage } from "../common/errors";
import { writeFileAtomic } from "../common/fs-atomic";
import { SlotsState } from "../state/slots-file";

/** What an activation asks for apart from the port (which belongs to the slot it lands on). */
export type ActivationSettings = Omit<SlotActivation, "port">;

function readOr(file: string, fallback: string): string {
    try {
        return fs.readFileSync(file, "utf8");
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return fallback;
        throw e;
    }
}

const sha256 = (text: string) => crypto.createHash("sha256").update(text).digest("hex");

/** The app environment an activation now would start with (the shared env file write-env keeps), by its digest. */
function currentEnvSha256(ctx: AgentContext): string {
    return sha256(readOr(ctx.layout.envFile, ""));
}

/** What an activation now asks for: the settings of agent.json and the current app environment. */
export function wantedActivation(ctx: AgentContext): ActivationSettings {
    const s = ctx.settings;
    return { healthPath: s.health.healthPath, healthHost: s.proxy.domain, startCommand: s.app.startCommand, envSha256: currentEnvSha256(ctx) };
}

/** A slot's runtime as an activation asks for it again (on whichever slot it lands). */
export function withoutPort(r: SlotActivation): ActivationSettings {
    return { healthPath: r.healthPath, healthHost: r.healthHost, startCommand: r.startCommand, envSha256: r.envSha256 };
}

/** The runtime an activation gives `slot`: its own settings on that slot's configured port. */
export function onSlot(ctx: AgentContext, slot: Slot, r: ActivationSettings): SlotActivation {
    return { port: ctx.slotPorts[slot], ...r };
}

/** Where a slot listens: the port it was started on, else the configured one. */
export function slotPort(ctx: AgentContext, state: SlotsState, slot: Slot): number {
    return state.slots[slot].activation?.port ?? ctx.slotPorts[slot];
}

/**
 * Keeps the current app environment as a snapshot named by its digest (root-only), unless it is
 * there already. Returns the digest, which goes into the activation's runtime.
 */
export function snapshotCurrentEnv(ctx: AgentContext): string {
    const text = readOr(ctx.layout.envFile, "");
    const digest = sha256(text);
    const file = envSnapshotFile(ctx.layout, digest);
    if (!fs.existsSync(file)) writeFileAtomic(file, text, { mode: 0o600 });
    return digest;
}

/**
 * The slot's start script and app environment for `runtime`, from the snapshot named by its
 * digest. A snapshot that is gone (a state from before snapshots, a hand-cleaned directory) falls
 * back to the current environment, and says so.
 */
export function writeSlotLaunchFiles(ctx: AgentContext, slot: Slot, runtime: SlotActivation): SlotActivation {
    const { layout, log } = ctx;
    let env: string;
    let envSha256 = runtime.envSha256;
    try {
        env = fs.readFileSync(envSnapshotFile(layout, envSha256), "utf8");
    } catch {
        envSha256 = snapshotCurrentEnv(ctx);
        env = readOr(envSnapshotFile(layout, envSha256), "");
        if (envSha256 !== runtime.envSha256) log.warn(`${slot}: the app environment this release ran with is no longer kept; it starts with the current one`);
    }
    // Read by systemd (PID 1) for the unit, never by a root process's own environment.
    writeFileAtomic(slotAppEnvFile(layout, slot), env, { mode: 0o600 });
    writeFileAtomic(slotStartScript(layout, slot), renderStartScript(runtime.startCommand), { mode: 0o644 });
    return { ...runtime, envSha256 };
}

function parseMap(text: string): Map<string, string> {
    const m = new Map<string, string>();
    for (const line of text.split("\n")) {
        const [key, value] = line.trim().split(/\s+/, 2);
        if (key && value && !key.startsWith("#")) m.set(key, value);
    }
    return m;
}

/**
 * HAProxy checks `slot` on its runtime's port, path and Host: the health map files (read at every
 * reload) first, then the same entries and the server's address over the runtime API, then the
 * server-state file (which keeps the address over a reload or a restart). Called before the slot
 * starts; it has no weight then.
 */
export async function pointHaproxyChecksAt(ctx: AgentContext, slot: Slot, runtime: SlotActivation): Promise<void> {
    const { layout } = ctx;
    const paths = parseMap(readOr(layout.haproxyHealthPathMap, ""));
    const hosts = parseMap(readOr(layout.haproxyHealthHostMap, ""));
    const entries: Partial<Record<Slot, { healthPath: string; healthHost: string }>> = {};
    for (const s of SLOTS) {
        const p = s === slot ? runtime.healthPath : paths.get(s);
        const h = s === slot ? runtime.healthHost : hosts.get(s);
        if (p && h) entries[s] = { healthPath: p, healthHost: h };
    }
    const maps = renderHealthMaps(entries);
    writeFileAtomic(layout.haproxyHealthPathMap, maps.paths, { mode: 0o644 });
    writeFileAtomic(layout.haproxyHealthHostMap, maps.hosts, { mode: 0o644 });
    await ctx.haproxy.setMapEntry(layout.haproxyHealthPathMap, slot, runtime.healthPath);
    await ctx.haproxy.setMapEntry(layout.haproxyHealthHostMap, slot, runtime.healthHost);
    await ctx.haproxy.setServerPort(slot, runtime.port);
    await ctx.haproxy.saveState(layout.haproxyStateFile);
}

/** Snapshots no slot, no previous release and none of the newest `keep` others use any more. */
export function pruneEnvSnapshots(ctx: AgentContext, state: SlotsState, keep: number): string[] {
    const dir = ctx.layout.envSnapshotsDir;
    let names: string[];
    try {
        names = fs.readdirSync(dir).filter(isEnvSnapshotName);
    } catch {
        return [];
    }
    const used = new Set<string>();
    for (const s of SLOTS) {
        const activation = state.slots[s].activation;
        if (activation) used.add(envSnapshotName(activation.envSha256));
    }
    if (state.previous?.activation) used.add(envSnapshotName(state.previous.activation.envSha256));
    const byAge = names
        .filter((n) => !used.has(n))
        .map((n) => ({ n, t: fs.statSync(envSnapshotFileNamed(ctx.layout, n)).mtimeMs }))
        .sort((a, b) => b.t - a.t)
        .slice(keep);
    const removed: string[] = [];
    for (const { n } of byAge) {
        try {
            fs.rmSync(envSnapshotFileNamed(ctx.layout, n));
            removed.push(n);
        } catch (e) {
            ctx.log.warn(`could not remove the environment snapshot ${n}: ${errorMessage(e)}`);
        }
    }
    return removed;
}
