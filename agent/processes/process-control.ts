// Starting and stopping a slot's process: systemd template units on a real host, or commands with
// {slot} placeholders where there is no systemd.
import * as fs from "fs";
import * as os from "os";
import { ProcessControl as ProcessControlSettings } from "../../lib/contract/agent-json";
import { DEPLOY_PROCESS_PROPERTIES, DEPLOY_SLICE_PROPERTIES } from "../../lib/app-sandbox";
import { Slot } from "../../lib/host-layout";
import { shellQuote } from "../../lib/shell-quote";
import { processHasOwnCpuCgroup, setAutogroupNice } from "./cpu-scheduling";
import { Logger } from "../common/log";
import { runArgv, runChecked, runCommand } from "../common/run-command";

/**
 * "deploy": a slot that boots and is tested while the live release serves gets the deploy slice's
 * CPU and IO weights and nice level, so its start (imports, caches) does not slow the live release;
 * "live": the default weights again, from the moment traffic moves to it.
 */
type SlotPriority = "deploy" | "live";

export interface ProcessControl {
    /**
     * Starts the slot afresh. A process already running there (slots.json can be behind reality,
     * e.g. after a reboot) is replaced: "start" of a running unit is a no-op, and the old code
     * would then pass the new release's gates.
     */
    start(slot: Slot): Promise<void>;
    stop(slot: Slot): Promise<void>;
    /**
     * Starts the slot only when it is not running, so a running one keeps serving. What brings the
     * slots slots.json records as running back after a boot where their units are not enabled: on
     * NixOS the module's slot unit has no [Install] section, so `systemctl enable` does nothing.
     * "unknown" with command process control, whose commands cannot tell whether a slot runs.
     */
    ensureRunning(slot: Slot): Promise<"running" | "started" | "unknown">;
    /**
     * Sets the slot's CPU/IO priority; best effort. Says what took effect (a cgroup weight, a
     * nice level on N processes), so a deploy's log shows which mechanism works on this host.
     */
    setPriority(slot: Slot, priority: SlotPriority): Promise<string>;
}

const directive = (list: readonly { name: string; value: string }[], name: string, fallback: string) => list.find((p) => p.name === name)?.value ?? fallback;
const PRIORITIES: Record<SlotPriority, { cpuWeight: string; ioWeight: string; nice: number; ioClass: string }> = {
    deploy: {
        cpuWeight: directive(DEPLOY_SLICE_PROPERTIES, "CPUWeight", "10"),
        ioWeight: directive(DEPLOY_SLICE_PROPERTIES, "IOWeight", "10"),
        nice: Number(directive(DEPLOY_PROCESS_PROPERTIES, "Nice", "15")),
        ioClass: "3",
    },
    live: { cpuWeight: "100", ioWeight: "100", nice: 0, ioClass: "2" },
};

/** The processes of a unit's cgroup, on the unified or the legacy hierarchy. */
function cgroupProcesses(controlGroup: string): number[] {
    for (const base of ["/sys/fs/cgroup", "/sys/fs/cgroup/systemd"]) {
        try {
            return fs.readFileSync(`${base}${controlGroup}/cgroup.procs`, "utf8").split("\n").filter(Boolean).map(Number);
        } catch {
            // not this hierarchy
        }
    }
    return [];
}

/** Nice level, autogroup nice level and I/O class of `pids`; best effort. Says what it reached. */
async function setProcessPriority(pids: readonly number[], priority: SlotPriority, env: NodeJS.ProcessEnv): Promise<string> {
    const p = PRIORITIES[priority];
    let reniced = 0;
    let autogroups = 0;
    for (const pid of pids) {
        try {
            os.setPriority(pid, p.nice);
            reniced++;
        } catch {
            // exited meanwhile
        }
        // The session's autogroup is what weighs against other services (agent/processes/cpu-scheduling.ts).
        if (setAutogroupNice(pid, p.nice)) autogroups++;
    }
    if (pids.length) await runArgv(["ionice", "-c", p.ioClass, "-p", ...pids.map(String)], "ionice", { env, timeoutMs: 30_000 }).catch(() => undefined);
    return `nice ${p.nice} on ${reniced} process${reniced === 1 ? "" : "es"}${autogroups ? `; autogroup nice ${p.nice}` : ""}`;
}

async function setUnitPriority(unit: string, priority: SlotPriority, log: Logger): Promise<string> {
    const p = PRIORITIES[priority];
    const env = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
    const done: string[] = [];
    // Runtime only (until reboot); on an inactive unit it applies when the unit starts.
    const weights = await runArgv(
        ["systemctl", "set-property", "--runtime", unit, `CPUWeight=${p.cpuWeight}`, `IOWeight=${p.ioWeight}`],
        "systemctl set-property",
        {
            env,
            timeoutMs: 30_000,
        },
    ).catch(() => undefined);
    const cg = await runArgv(["systemctl", "show", "--property=ControlGroup", "--value", unit], "systemctl show", {
        env,
        timeoutMs: 30_000,
        captureStdout: true,
    }).catch(() => undefined);
    const controlGroup = cg?.code === 0 ? (cg.stdout ?? "").trim() : "";
    const pids = controlGroup ? cgroupProcesses(controlGroup) : [];
    // A weight systemd accepted counts only where the unit has a CPU cgroup of its own: say when not.
    const honoured = pids.length ? processHasOwnCpuCgroup(pids[0], controlGroup) : undefined;
    done.push(
        weights?.code !== 0
            ? "no cgroup weights"
            : `CPUWeight ${p.cpuWeight}, IOWeight ${p.ioWeight}${honoured === false ? " (not honoured: no CPU cgroup of the unit's own)" : ""}`,
    );
    done.push(await setProcessPriority(pids, priority, env));
    const what = done.join("; ");
    log.info(`${unit}: ${priority} priority (${what})`);
    return what;
}

/** Command process control: the slot's processes as its `pids` command lists them. */
async function setCommandPriority(pidsCommand: string, slot: Slot, priority: SlotPriority, log: Logger): Promise<string> {
    const env = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin" };
    const listed = await runCommand(fillSlot(pidsCommand, slot), { env, timeoutMs: 30_000, captureStdout: true }).catch(() => undefined);
    const pids =
        listed?.code === 0
            ? (listed.stdout ?? "")
                  .split(/\s+/)
                  .filter((w) => /^[1-9][0-9]*$/.test(w))
                  .map(Number)
            : [];
    const what = `no cgroup weights; ${await setProcessPriority(pids, priority, env)}`;
    log.info(`slot ${slot}: ${priority} priority (${what})`);
    return what;
}

function fillSlot(template: string, slot: Slot): string {
    return template.replace(/\{slot\}/g, slot);
}

export function createProcessControl(settings: ProcessControlSettings, unitTemplate: string, log: Logger): ProcessControl {
    if (settings.kind === "command") {
        const stop = (slot: Slot) => runChecked(`stopping slot ${slot}`, fillSlot(settings.stop, slot), { log, timeoutMs: 300_000 });
        return {
            start: async (slot) => {
                await stop(slot);
                await runChecked(`starting slot ${slot}`, fillSlot(settings.start, slot), { log, timeoutMs: 120_000 });
            },
            stop,
            // Its start command replaces a running slot: without a way to ask, nothing is touched.
            ensureRunning: async () => "unknown",
            // Without a pids command, plain commands give no handle on the slot's processes.
            setPriority: async (slot, priority) =>
                settings.pids ? setCommandPriority(settings.pids, slot, priority, log) : "not available with command process control",
        };
    }
    const unit = (slot: Slot) => `${unitTemplate}${slot}.service`;
    return {
        // restart: starts a stopped unit, replaces a running one (see ProcessControl.start).
        // enable/disable: the slots that run now are the ones that come back after a reboot
        // (HAProxy's saved state then restores their weights).
        start: (slot) =>
            runChecked(`systemctl restart ${unit(slot)}`, `systemctl enable --quiet ${shellQuote(unit(slot))} && systemctl restart ${shellQuote(unit(slot))}`, {
                log,
                timeoutMs: 300_000,
            }),
        stop: (slot) =>
            runChecked(`systemctl stop ${unit(slot)}`, `systemctl disable --quiet ${shellQuote(unit(slot))} && systemctl stop ${shellQuote(unit(slot))}`, {
                log,
                timeoutMs: 600_000,
            }),
        ensureRunning: async (slot) => {
            const active = await runArgv(["systemctl", "is-active", "--quiet", unit(slot)], "systemctl is-active", { timeoutMs: 30_000 });
            if (active.code === 0) return "running";
            await runChecked(
                `systemctl start ${unit(slot)}`,
                `systemctl enable --quiet ${shellQuote(unit(slot))} && systemctl start ${shellQuote(unit(slot))}`,
                {
                    log,
                    timeoutMs: 300_000,
                },
            );
            return "started";
        },
        setPriority: (slot, priority) => setUnitPriority(unit(slot), priority, log),
    };
}
