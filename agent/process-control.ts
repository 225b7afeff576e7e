// Starting and stopping a slot's process: systemd template units on a real host, or commands with
// {slot} placeholders where there is no systemd.
import { ProcessControl as ProcessControlSettings } from "../lib/agent-settings";
import { Slot } from "../lib/host-layout";
import { Logger } from "./log";
import { runChecked } from "./run-command";

export interface ProcessControl {
    /**
     * Starts the slot afresh. A process already running there (slots.json can be behind reality,
     * e.g. after a reboot) is replaced: "start" of a running unit is a no-op, and the old code
     * would then pass the new release's gates.
     */
    start(slot: Slot): Promise<void>;
    stop(slot: Slot): Promise<void>;
}

export function fillSlot(template: string, slot: Slot): string {
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
        };
    }
    const unit = (slot: Slot) => `${unitTemplate}${slot}.service`;
    return {
        // restart: starts a stopped unit, replaces a running one (see ProcessControl.start).
        // enable/disable: the slots that run now are the ones that come back after a reboot
        // (HAProxy's saved state then restores their weights).
        start: (slot) =>
            runChecked(`systemctl restart ${unit(slot)}`, `systemctl enable --quiet '${unit(slot)}' && systemctl restart '${unit(slot)}'`, {
                log,
                timeoutMs: 300_000,
            }),
        stop: (slot) =>
            runChecked(`systemctl stop ${unit(slot)}`, `systemctl disable --quiet '${unit(slot)}' && systemctl stop '${unit(slot)}'`, {
                log,
                timeoutMs: 600_000,
            }),
    };
}
