// Free loopback ports for the servers a test or the benchmark starts, chosen OUTSIDE the kernel's
// ephemeral range (net.ipv4.ip_local_port_range).
//
// Why outside: a slot port is often down (the idle slot, a slot being restarted), and meanwhile
// HAProxy's health checks and the readiness probes keep connecting to it. The kernel picks each such
// connection's source port from the ephemeral range, and when it picks the very port it connects to,
// the connection is made to itself (TCP simultaneous open). Closing it leaves a TIME_WAIT socket on
// that port for 60 s, and gunicorn (or anything else) cannot bind there until it is gone: "Connection
// in use", then the slot never comes up. The same happens when an outgoing connection of the load
// holds the port as its source port. Ports below the range are never handed out as source ports, so
// neither can happen; a real host's slot ports (8001/8002) are there too.
import * as fs from "fs";
import * as net from "net";

/** Ports a colleague's local test host uses; never chosen. */
export const RESERVED_PORTS = new Set([2024, 80, 443, 2222, 5432, 8001, 8002, 8080, 8514]);

/** The lowest port chosen: clear of the well-known and registered ports most services default to. */
const FLOOR = 10000;

/** [low, high] of the kernel's ephemeral range; Linux's default when the file cannot be read. */
export function ephemeralRange(): [number, number] {
    try {
        const [low, high] = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
        if (Number.isInteger(low) && Number.isInteger(high) && low <= high) return [low, high];
    } catch {
        // not Linux, or no procfs: assume the default
    }
    return [32768, 60999];
}

/** The ports this module chooses from: from FLOOR up to just below the ephemeral range (or above it, when that is larger). */
export function candidateRange(): [number, number] {
    const [low, high] = ephemeralRange();
    const below: [number, number] = [FLOOR, low - 1];
    const above: [number, number] = [high + 1, 65535];
    return below[1] - below[0] >= above[1] - above[0] ? below : above;
}

function listenOn(port: number): Promise<net.Server | undefined> {
    return new Promise((resolve) => {
        const s = net.createServer();
        s.once("error", () => resolve(undefined));
        s.listen(port, "127.0.0.1", () => resolve(s));
    });
}

/**
 * Free ports outside the ephemeral range: `base` and `base + 1` (the two slots), then `extra`
 * others. Each is held (listened on) until all are found, so none is chosen twice.
 */
export async function freePorts(extra: number): Promise<{ base: number; others: number[] }> {
    const [from, to] = candidateRange();
    const span = to - from + 1;
    const held: net.Server[] = [];
    const take = async (port: number) => {
        if (port < from || port > to || RESERVED_PORTS.has(port)) return false;
        const s = await listenOn(port);
        if (s) held.push(s);
        return !!s;
    };
    const random = () => from + Math.floor(Math.random() * span);
    try {
        let base = 0;
        for (let attempt = 0; attempt < 200 && !base; attempt++) {
            const p = random();
            if (!(await take(p))) continue;
            if (await take(p + 1)) base = p;
        }
        if (!base) throw new Error(`no two consecutive free loopback ports in ${from}-${to}`);
        const others: number[] = [];
        for (let attempt = 0; others.length < extra; attempt++) {
            if (attempt > 200 + extra * 50) throw new Error(`not ${extra} free loopback ports in ${from}-${to}`);
            const p = random();
            if (await take(p)) others.push(p);
        }
        return { base, others };
    } finally {
        await Promise.all(held.map((s) => new Promise((r) => s.close(r))));
    }
}
