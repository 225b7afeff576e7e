// Steady load on the example app through NGINX while a deploy runs: a few keep-alive connections,
// each sending GET / and POST /api/notes at a fixed pace. Every answer is recorded with the release
// that produced it (X-Release-Version); any status >= 500 or connection error is a failed request,
// i.e. something the deploy broke for a user.
import * as https from "https";
import { siteRequest, Site } from "./http";

export interface LoadOptions {
    site: Site;
    /** Parallel connections. */
    connections?: number;
    /** Requests per second over all connections. */
    rate?: number;
    /** Every Nth request of a connection is a POST /api/notes (0: GETs only). */
    postEvery?: number;
    /** Prefix of the notes this run posts, to find them in the database afterwards. */
    runId: string;
}

interface Sample {
    t: number;
    method: "GET" | "POST";
    status: number;
    version: string;
    error?: string;
}

export interface LoadReport {
    requests: number;
    /** Requests sent again after the server closed their kept-alive connection unanswered. */
    retried: number;
    failed: Sample[];
    byVersion: Record<string, number>;
    statusCounts: Record<string, number>;
    /** Texts of the notes whose POST was answered 201. */
    acknowledgedPosts: string[];
    durationS: number;
    p99Ms: number;
}

export interface RunningLoad {
    samples: Sample[];
    stop(): Promise<LoadReport>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function startLoad(opts: LoadOptions): RunningLoad {
    const connections = opts.connections ?? 4;
    const interval = (connections * 1000) / (opts.rate ?? 40);
    const postEvery = opts.postEvery ?? 3;
    const samples: Sample[] = [];
    const latencies: number[] = [];
    const acknowledged: string[] = [];
    const started = Date.now();
    let running = true;
    let seq = 0;
    let retried = 0;

    const worker = async (n: number) => {
        // One socket per worker, reused like a browser's: the proxies' keep-alive handling is part of the test.
        const agent = new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
        await sleep((n * interval) / connections);
        for (let i = 1; running; i++) {
            const next = Date.now() + interval;
            const post = postEvery > 0 && i % postEvery === 0;
            const text = post ? `${opts.runId}-${n}-${++seq}` : "";
            const send = () =>
                post
                    ? siteRequest(opts.site, "/api/notes", {
                          method: "POST",
                          agent,
                          body: new URLSearchParams({ text }).toString(),
                          headers: { "content-type": "application/x-www-form-urlencoded" },
                      })
                    : siteRequest(opts.site, "/", { agent });
            try {
                let r;
                try {
                    r = await send();
                } catch (e) {
                    // A kept-alive connection the server closed as the request went out, before any
                    // answer: sent again once on a new connection, as browsers (and Node's docs) do.
                    if (!(e as { reusedSocket?: boolean }).reusedSocket || !/socket hang up|ECONNRESET/.test((e as Error).message)) throw e;
                    retried++;
                    r = await send();
                }
                const version = String(r.headers["x-release-version"] ?? "-");
                samples.push({ t: Date.now(), method: post ? "POST" : "GET", status: r.status, version });
                latencies.push(r.ms);
                if (post && r.status === 201) acknowledged.push(text);
            } catch (e) {
                samples.push({ t: Date.now(), method: post ? "POST" : "GET", status: 0, version: "-", error: (e as Error).message });
            }
            await sleep(Math.max(0, next - Date.now()));
        }
        agent.destroy();
    };
    const workers = Array.from({ length: connections }, (_, n) => worker(n));

    return {
        samples,
        async stop(): Promise<LoadReport> {
            running = false;
            await Promise.all(workers);
            const byVersion: Record<string, number> = {};
            const statusCounts: Record<string, number> = {};
            for (const s of samples) {
                byVersion[s.version] = (byVersion[s.version] ?? 0) + 1;
                const key = s.error ? "error" : String(s.status);
                statusCounts[key] = (statusCounts[key] ?? 0) + 1;
            }
            const sorted = [...latencies].sort((a, b) => a - b);
            return {
                retried,
                requests: samples.length,
                failed: samples.filter((s) => s.error !== undefined || s.status >= 500),
                byVersion,
                statusCounts,
                acknowledgedPosts: acknowledged,
                durationS: (Date.now() - started) / 1000,
                p99Ms: sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))] : 0,
            };
        },
    };
}

export function describeLoad(r: LoadReport): string {
    const failed = r.failed.slice(0, 10).map((s) => `${new Date(s.t).toISOString()} ${s.method} ${s.error ?? s.status}`);
    return (
        `${r.requests} requests in ${r.durationS.toFixed(1)}s, statuses ${JSON.stringify(r.statusCounts)}, by release ${JSON.stringify(r.byVersion)}, p99 ${r.p99Ms} ms` +
        (failed.length ? `\nfailed (first ${failed.length} of ${r.failed.length}):\n  ${failed.join("\n  ")}` : "")
    );
}
