// What a running slot depends on besides its release's files: its port, the path and Host of its
// health checks, its start command and its app environment. These belong to an activation, not to
// the host: the agent records them when it starts a slot (slots.json), HAProxy checks each slot with
// its own (health maps, runtime server address), systemd starts it with its own (the slot's start
// script and environment snapshot). So a stack config change reaches a live slot only through a
// new activation, gated like any other, and a rollback returns to what the release ran with.
// No npm dependency: the agent bundles this file.
import { Slot, SLOTS } from "./host-layout";

export interface SlotActivation {
    port: number;
    healthPath: string;
    /** Host header of the health checks (and of the agent's readiness and smoke requests). */
    healthHost: string;
    /** The command the slot's start script execs (sh syntax; $PORT etc. from the slot's environment). */
    startCommand: string;
    /** sha256 of the app environment snapshot the slot was started with (its file is named after it). */
    envSha256: string;
}

const FIELDS: readonly { key: keyof SlotActivation; name: string; secret?: boolean }[] = [
    { key: "port", name: "port (slotBasePort)" },
    { key: "healthPath", name: "healthPath" },
    { key: "healthHost", name: "Host of the checks (domain)" },
    { key: "startCommand", name: "startCommand" },
    { key: "envSha256", name: "appEnv", secret: true },
];

/**
 * What differs between what a slot runs with and what is asked for now, one phrase per setting
 * ("healthPath /healthz -> /db"); empty when they are the same. The environment's values are
 * secrets: only the fact that it changed is said.
 */
export function activationChanges(running: SlotActivation, wanted: SlotActivation): string[] {
    const out: string[] = [];
    for (const f of FIELDS) {
        if (running[f.key] === wanted[f.key]) continue;
        out.push(f.secret ? `${f.name} changed` : `${f.name} ${JSON.stringify(running[f.key])} -> ${JSON.stringify(wanted[f.key])}`);
    }
    return out;
}

/** The slot's start script: the start command, exec'd so that it is the unit's main process. */
export function renderStartScript(startCommand: string): string {
    const command = /^\s*exec\s/.test(startCommand) ? startCommand : `exec ${startCommand}`;
    return [
        "# Written by the deploy agent when it started this slot: the start command of the slot's",
        "# activation (stack config startCommand at that time). Run by the slot's unit with /bin/sh.",
        command,
        "",
    ].join("\n");
}

/**
 * HAProxy's health maps (slot -> health path, slot -> Host), which haproxy.cfg's http-check reads
 * through `srv_name,map(...)`. Slots without an entry fall back to the configured defaults there.
 */
export function renderHealthMaps(entries: Partial<Record<Slot, Pick<SlotActivation, "healthPath" | "healthHost">>>): { paths: string; hosts: string } {
    const lines = (pick: (r: Pick<SlotActivation, "healthPath" | "healthHost">) => string) =>
        SLOTS.flatMap((s) => {
            const r = entries[s];
            return r ? [`${s} ${pick(r)}`] : [];
        })
            .concat([""])
            .join("\n");
    return { paths: lines((r) => r.healthPath), hosts: lines((r) => r.healthHost) };
}
