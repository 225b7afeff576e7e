// What the program reads back from the agent: one JSON line per message, never text matched by a
// regex. A detached command's foreground announces its worker first (the SSH step needs the name
// to follow it after a dropped connection), and ends with the command's result (the shift's
// resource takes the deploy's own count of its traffic from it). People read the lines around
// them; these are for programs, and the SSH step keeps them off the console.
//
// The SSH step's provider is serialized into Pulumi's state (components/ssh/provider.ts explains
// the rules), and it copies what it uses of this file by value: function declarations and
// unexported constants only, no imports.

/** Every message line is a JSON object with this member naming its type. */
const TAG = "slotshift";

/** A request count and its failures. */
interface RequestCount {
    requests: number;
    failed: number;
}

/** A deploy's own count of its traffic, from HAProxy's per-request log over the deploy's window. */
export interface DeployTraffic extends RequestCount {
    /** Server response time quantiles over the answered requests (ms). */
    p50Ms: number;
    p99Ms: number;
    /** Per release (or "HAProxy" for requests no slot answered). */
    byRelease: Record<string, RequestCount>;
    /** Samples lost to the buffer bound (0 normally). */
    dropped: number;
}

/** The first line of a detached command: which worker runs it, so a dropped session can follow it again (`attach`). */
export interface WorkerAnnouncement {
    type: "worker";
    /** Its log file's name in the logs dir, without ".log": what `attach --worker` takes. */
    worker: string;
    pid: number;
    /** The log file's path on the host. */
    log: string;
    /** The systemd unit running it, when systemd does. */
    unit?: string;
    /** The same for a person: the SSH step shows it on the console in place of the message. */
    text: string;
}

/** The last line of a detached command: its result, as `--json` would print it. */
export interface CommandResult {
    type: "result";
    ok: boolean;
    command?: string;
    version?: string;
    /** The live version did not change: nothing was shifted. */
    noop?: boolean;
    traffic?: DeployTraffic;
    error?: string;
    [more: string]: unknown;
}

export type AgentMessage = WorkerAnnouncement | CommandResult;

/** One message as its line (no newline). */
export function formatAgentMessage(message: AgentMessage): string {
    const { type, ...rest } = message;
    return JSON.stringify({ [TAG]: type, ...rest });
}

/** The message a line holds, or undefined for any other line (a person's line, a foreign JSON object). */
export function parseAgentMessage(line: string): AgentMessage | undefined {
    const text = line.trim();
    if (!text.startsWith(`{"${TAG}":`)) return undefined;
    let raw: Record<string, unknown>;
    try {
        raw = JSON.parse(text);
    } catch {
        return undefined;
    }
    const type = raw[TAG];
    delete raw[TAG];
    if (type === "worker") {
        // Only a plain file name is ever put into the command that follows the worker again.
        if (typeof raw.worker !== "string" || !/^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$/.test(raw.worker) || raw.worker.includes("..")) return undefined;
        if (typeof raw.pid !== "number" || typeof raw.log !== "string" || typeof raw.text !== "string") return undefined;
        return { type, worker: raw.worker, pid: raw.pid, log: raw.log, text: raw.text, ...(typeof raw.unit === "string" ? { unit: raw.unit } : {}) };
    }
    if (type === "result" && typeof raw.ok === "boolean") return { ...raw, type, ok: raw.ok };
    return undefined;
}

/** The deploy's closing figures: "this deploy: 1200 requests, 0 failed (v1 1100; v2 100), p50 3 ms, p99 12 ms". */
export function formatDeployTraffic(t: DeployTraffic): string {
    const parts = Object.entries(t.byRelease).map(([name, r]) => `${name} ${r.requests}${r.failed ? `, ${r.failed} failed` : ""}`);
    return (
        `this deploy: ${t.requests} requests, ${t.failed} failed${parts.length ? ` (${parts.join("; ")})` : ""}, p50 ${t.p50Ms} ms, p99 ${t.p99Ms} ms` +
        (t.dropped ? ` (the oldest ${t.dropped} not kept)` : "")
    );
}

/** The last result message in a command's output, or undefined. */
export function lastResult(output: string): CommandResult | undefined {
    let found: CommandResult | undefined;
    for (const line of output.split("\n")) {
        const m = parseAgentMessage(line);
        if (m?.type === "result") found = m;
    }
    return found;
}
