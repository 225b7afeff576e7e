// Constant-rate load through NGINX (https, self-signed) with autocannon, recording every response:
// its status, method, which release served it (X-Release) and when. Every non-2xx and every
// connection error counts as a failed request.
import { percentile } from "../../lib/percentile";

const autocannon = require("autocannon");

export interface LoadOptions {
    port: number;
    host: string;
    /** Requests per second over all connections. */
    rate: number;
    /** Connections (one autocannon instance each), default 10. */
    connections?: number;
    /** Every Nth request of a connection is a POST /orders with a unique id (0: GETs only). */
    postEvery?: number;
    /** Prefix of POST ids, unique per run. */
    runId: string;
    /** Path of the GETs (default "/"). */
    path?: string;
    /** Path of the POSTs (default "/orders"). */
    postPath?: string;
    /** Body of a POST with this id (default {"id": id} as JSON). */
    postBody?: (id: string) => string;
    /** Response header naming the release that answered (default X-Release). */
    versionHeader?: string;
}

export interface ResponseRecord {
    t: number;
    status: number;
    method: "GET" | "POST";
    version: string;
    id?: string;
    /** From writing the request to the end of the response. */
    latencyMs?: number;
}

/** A request that got no HTTP response (connection error or timeout), when it was given up. */
export interface ErrorRecord {
    t: number;
    message: string;
}

export interface LoadReport {
    requests: number;
    failures: number;
    non2xx: number;
    errors: number;
    timeouts: number;
    getFailures: number;
    postFailures: number;
    postsSent: number;
    /** ids of POSTs answered 201. */
    postsAcknowledged: string[];
    statusCounts: Record<string, number>;
    byVersion: Record<string, number>;
    p50: number;
    p99: number;
    max: number;
    durationS: number;
    records: ResponseRecord[];
    errorRecords: ErrorRecord[];
    errorMessages: string[];
}

export interface RunningLoad {
    stop(): Promise<LoadReport>;
    records: ResponseRecord[];
    errorRecords: ErrorRecord[];
}

/**
 * autocannon's rate limiter lets each connection send its per-second quota back to back, then idle
 * until the next second. One connection per instance, instances started 1000/N ms apart, spreads
 * those bursts over the second: the load is constant at ~100 ms granularity.
 */
export function startLoad(opts: LoadOptions): RunningLoad {
    const records: ResponseRecord[] = [];
    const errorRecords: ErrorRecord[] = [];
    const latencies: number[] = [];
    // autocannon calls a request's onResponse and then, synchronously, emits "response" with its
    // latency; nothing runs in between, so the record just pushed is the one that latency belongs to.
    let lastRecord: ResponseRecord | undefined;
    const errorMessages: string[] = [];
    let postsSent = 0;
    let seq = 0;
    let errors = 0;
    let timeouts = 0;
    const started = Date.now();
    const headers = { host: opts.host };
    const versionHeader = (opts.versionHeader ?? "x-release").toLowerCase();
    const record = (method: "GET" | "POST") => (status: number, body: string, _ctx: unknown, h: Record<string, string>) => {
        let id: string | undefined;
        if (method === "POST") {
            try {
                id = JSON.parse(body).id;
            } catch {
                id = undefined;
            }
        }
        lastRecord = { t: Date.now(), status, method, version: h[versionHeader] ?? "-", id };
        records.push(lastRecord);
    };
    const get = { method: "GET", path: opts.path ?? "/", headers, onResponse: record("GET") };
    const postBody = opts.postBody ?? ((id: string) => JSON.stringify({ id }));
    const post = {
        method: "POST",
        path: opts.postPath ?? "/orders",
        headers: { ...headers, "content-type": "application/json" },
        setupRequest: (req: Record<string, unknown>) => {
            postsSent++;
            return { ...req, body: postBody(`${opts.runId}-${++seq}`) };
        },
        onResponse: record("POST"),
    };
    const requests = opts.postEvery ? [...Array.from({ length: opts.postEvery - 1 }, () => get), post] : [get];

    const n = Math.max(1, Math.min(opts.connections ?? 10, opts.rate));
    const instances: { stop(): void }[] = [];
    const finished: Promise<void>[] = [];
    const timers: NodeJS.Timeout[] = [];
    let stopping = false;
    for (let i = 0; i < n; i++) {
        const rate = Math.floor(opts.rate / n) + (i < opts.rate % n ? 1 : 0);
        finished.push(
            new Promise<void>((resolve) => {
                timers.push(
                    setTimeout(
                        () => {
                            if (stopping) return resolve();
                            const instance = autocannon(
                                {
                                    url: `https://127.0.0.1:${opts.port}`,
                                    servername: opts.host,
                                    connections: 1,
                                    overallRate: rate,
                                    duration: 3600,
                                    timeout: 30,
                                    requests,
                                },
                                (err: Error | null, result: { errors: number; timeouts: number }) => {
                                    if (err) errorMessages.push(err.message);
                                    errors += result?.errors ?? 0;
                                    timeouts += result?.timeouts ?? 0;
                                    resolve();
                                },
                            );
                            instance.on("response", (_client: unknown, _status: number, _bytes: number, responseTime: number) => {
                                latencies.push(responseTime);
                                if (lastRecord) lastRecord.latencyMs = responseTime;
                                lastRecord = undefined;
                            });
                            instance.on("reqError", (e: Error) => {
                                errorRecords.push({ t: Date.now(), message: e.message });
                                if (errorMessages.length < 20) errorMessages.push(e.message);
                            });
                            instances.push(instance);
                        },
                        Math.round((i * 1000) / n),
                    ),
                );
            }),
        );
    }

    return {
        records,
        errorRecords,
        async stop(): Promise<LoadReport> {
            stopping = true;
            for (const t of timers) clearTimeout(t);
            for (const inst of instances) inst.stop();
            await Promise.all(finished);
            const byVersion: Record<string, number> = {};
            const statusCounts: Record<string, number> = {};
            for (const r of records) {
                byVersion[r.version] = (byVersion[r.version] ?? 0) + 1;
                statusCounts[r.status] = (statusCounts[r.status] ?? 0) + 1;
            }
            const bad = (r: ResponseRecord) => r.status < 200 || r.status >= 300;
            const sorted = [...latencies].sort((a, b) => a - b);
            const pct = (p: number) => percentile(sorted, p);
            return {
                requests: records.length + errors,
                failures: records.filter(bad).length + errors,
                non2xx: records.filter(bad).length,
                errors,
                timeouts,
                getFailures: records.filter((r) => r.method === "GET" && bad(r)).length,
                postFailures: records.filter((r) => r.method === "POST" && bad(r)).length,
                postsSent,
                postsAcknowledged: records.filter((r) => r.method === "POST" && r.status === 201 && r.id).map((r) => r.id as string),
                statusCounts,
                byVersion,
                p50: pct(50),
                p99: pct(99),
                max: sorted.length ? sorted[sorted.length - 1] : 0,
                durationS: (Date.now() - started) / 1000,
                records,
                errorRecords,
                errorMessages,
            };
        },
    };
}

export function formatLoad(name: string, r: LoadReport): string {
    return (
        `${name}: ${r.requests} requests in ${r.durationS.toFixed(1)} s, ${r.failures} failed ` +
        `(non-2xx ${r.non2xx}, connection errors ${r.errors}; GET ${r.getFailures}, POST ${r.postFailures} of ${r.postsSent} sent), ` +
        `latency p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms; served by ${Object.entries(r.byVersion)
            .map(([v, n]) => `${v}=${n}`)
            .join(" ")}`
    );
}
