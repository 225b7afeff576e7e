// Everything a command needs, built once from the settings: paths, logger, HAProxy runtime API,
// process control, and the abort flag a signal sets in the deploy worker.
import { AgentSettings } from "../lib/contract/agent-json";
import { HostLayout, hostLayout, SlotPorts, slotPorts } from "../lib/host-layout";
import { HaproxyApi } from "./proxy/haproxy-api";
import { Logger } from "./common/log";
import { createProcessControl, ProcessControl } from "./processes/process-control";

export interface AgentContext {
    settings: AgentSettings;
    layout: HostLayout;
    /** The slots' ports for the next activation (app.slotBasePort); a running slot keeps the one it was started on. */
    slotPorts: SlotPorts;
    log: Logger;
    haproxy: HaproxyApi;
    pc: ProcessControl;
    /** Why the run must stop (a signal to the worker), or undefined. */
    abortReason(): string | undefined;
    /** Where command results land for --json (the worker writes them to a file for the foreground). */
    result: Record<string, unknown>;
}

export function createContext(settings: AgentSettings, log: Logger, abortReason: () => string | undefined = () => undefined): AgentContext {
    // The same derivation as the program's: agent.json carries only the app name and the root.
    const layout = hostLayout(settings.app.appName, { root: settings.root });
    return {
        settings,
        layout,
        slotPorts: slotPorts(settings.app.slotBasePort),
        log,
        haproxy: new HaproxyApi(layout.haproxySocket, settings.haproxy.backend),
        pc: createProcessControl(settings.processControl, layout.unitTemplate, log),
        abortReason,
        result: {},
    };
}

export function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}
