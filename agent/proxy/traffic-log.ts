// Every request HAProxy handles, as it logs it: HAProxy's frontend sends one raw syslog datagram
// per request to a loopback UDP port (templates/haproxy.cfg.njk), and a deploy listens there for
// its own duration. Counters say how many; the log says how fast and which ones failed, per slot,
// over exactly the window a gate or the deploy's result asks about. Nobody listening costs nothing:
// HAProxy drops the datagram.
import * as dgram from "dgram";
import { percentile } from "../../lib/percentile";
import { Logger } from "../common/log";
import { DeployTraffic } from "../../lib/contract/messages";

/** The first word of every line HAProxy sends (its log-format); anything else on the port is ignored. */
const TRAFFIC_LOG_TAG = "slotshift-request";

export interface RequestSample {
    /** When the agent received the line (ms since the epoch). */
    at: number;
    /** Server name ("blue", "green"), or "<NOSRV>" when HAProxy answered itself. */
    server: string;
    /** HTTP status sent to the client; -1 when none was sent. */
    status: number;
    /** Time the server took to send its response headers (ms); -1 when it never did. */
    responseMs: number;
    /** HAProxy's two-letter termination state ("--" for a normal end). */
    termination: string;
    /** The request carried the slot header: one of the agent's own smoke requests, not a visitor's. */
    forced: boolean;
}

/**
 * One line of the log-format `slotshift-request %s %ST %Tr %ts %hr`, as HAProxy sends it with
 * `format raw` (perhaps with a trailing newline; %hr is the captured slot header in braces).
 * Undefined for anything else.
 */
function parseTrafficLine(text: string, at: number): RequestSample | undefined {
    const parts = text.trim().split(/\s+/);
    if (parts.length !== 6 || parts[0] !== TRAFFIC_LOG_TAG || !/^\{.*\}$/.test(parts[5])) return undefined;
    const status = Number(parts[2]);
    const responseMs = Number(parts[3]);
    if (!Number.isInteger(status) || !Number.isInteger(responseMs)) return undefined;
    return { at, server: parts[1], status, responseMs, termination: parts[4], forced: parts[5] !== "{}" };
}

/**
 * A request failed when the visitor got a 5xx or no answer at all, except when the visitor itself
 * went away first (termination state starting with C).
 */
function requestFailed(s: RequestSample): boolean {
    if (s.status >= 500) return true;
    return s.status < 0 && !s.termination.startsWith("C");
}

export interface TrafficFigures {
    requests: number;
    failed: number;
    /** Server response time quantiles over the answered requests (ms). */
    p50Ms: number;
    p99Ms: number;
}

export function trafficFigures(samples: readonly RequestSample[]): TrafficFigures {
    const times = samples
        .filter((s) => s.responseMs >= 0)
        .map((s) => s.responseMs)
        .sort((a, b) => a - b);
    return { requests: samples.length, failed: samples.filter(requestFailed).length, p50Ms: percentile(times, 50), p99Ms: percentile(times, 99) };
}

/** Keeps at most this many samples: a long deploy at a high rate must not grow the agent without bound. */
const MAX_SAMPLES = 500_000;

export class TrafficLog {
    private readonly samples: RequestSample[] = [];
    private dropped = 0;

    private constructor(private readonly socket: dgram.Socket) {}

    /**
     * Listens on 127.0.0.1:`port`. Undefined (with a warning) when the port cannot be bound, e.g.
     * another deploy's listener: the gates that need it then say they had no figures.
     */
    static async open(port: number, log: Logger): Promise<TrafficLog | undefined> {
        const socket = dgram.createSocket({ type: "udp4", recvBufferSize: 4 * 1024 * 1024 });
        const traffic = new TrafficLog(socket);
        socket.on("message", (msg) => traffic.add(msg.toString("utf8"), Date.now()));
        try {
            await new Promise<void>((resolve, reject) => {
                socket.once("error", reject);
                socket.bind(port, "127.0.0.1", () => {
                    socket.off("error", reject);
                    resolve();
                });
            });
        } catch (e) {
            socket.close();
            log.warn(
                `cannot listen for HAProxy's request log on 127.0.0.1:${port} (${(e as Error).message}); latency is not gated and the deploy's requests are not counted`,
            );
            return undefined;
        }
        socket.on("error", () => undefined);
        return traffic;
    }

    add(line: string, at: number): void {
        const sample = parseTrafficLine(line, at);
        if (!sample) return;
        if (this.samples.length >= MAX_SAMPLES) {
            // Drop the oldest tenth at once: one shift per line would copy the whole buffer each time.
            const n = Math.ceil(MAX_SAMPLES / 10);
            this.samples.splice(0, n);
            this.dropped += n;
        }
        this.samples.push(sample);
    }

    /** Samples received in [from, to] (ms since the epoch), of one server or all. */
    /** Visitors' requests (not the agent's own smoke requests) received in [from, to] (ms since the epoch), of one server or all. */
    window(from: number, to: number = Date.now(), server?: string): RequestSample[] {
        return this.samples.filter((s) => !s.forced && s.at >= from && s.at <= to && (server === undefined || s.server === server));
    }

    /** Samples that fell out of the buffer (the window figures undercount when > 0). */
    droppedCount(): number {
        return this.dropped;
    }

    close(): void {
        try {
            this.socket.close();
        } catch {
            // already closed
        }
    }
}

/** What the requests of a deploy's window looked like, with slots named by the release they ran. */
export function deployTraffic(samples: readonly RequestSample[], releaseOf: Partial<Record<string, string>>, dropped = 0): DeployTraffic {
    const byRelease: Record<string, { requests: number; failed: number }> = {};
    for (const s of samples) {
        const name = releaseOf[s.server] ?? (s.server === "<NOSRV>" ? "HAProxy" : s.server);
        const entry = (byRelease[name] ??= { requests: 0, failed: 0 });
        entry.requests++;
        if (requestFailed(s)) entry.failed++;
    }
    return { ...trafficFigures(samples), byRelease, dropped };
}
