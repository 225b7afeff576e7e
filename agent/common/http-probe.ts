// Plain HTTP requests for readiness and smoke tests: straight to a slot's port, or through HAProxy
// with the slot-forcing header. No keep-alive, so every probe is a fresh connection.
import * as http from "http";

export interface ProbeRequest {
    host: string;
    port: number;
    path: string;
    headers?: Record<string, string>;
    timeoutMs?: number;
}

export interface ProbeResult {
    status: number;
    /** Set instead of status when no HTTP answer came back. */
    error?: string;
}

export function httpGet(req: ProbeRequest): Promise<ProbeResult> {
    return new Promise((resolve) => {
        const r = http.request(
            { host: req.host, port: req.port, path: req.path, method: "GET", headers: req.headers, agent: false, timeout: req.timeoutMs ?? 5000 },
            (res) => {
                res.resume();
                res.on("end", () => resolve({ status: res.statusCode ?? 0 }));
                res.on("error", (e) => resolve({ status: 0, error: e.message }));
            },
        );
        r.on("timeout", () => r.destroy(new Error(`no answer within ${req.timeoutMs ?? 5000} ms`)));
        r.on("error", (e) => resolve({ status: 0, error: (e as NodeJS.ErrnoException).code ?? e.message }));
        r.end();
    });
}

export function describeProbe(r: ProbeResult | undefined): string {
    if (!r) return "no attempt";
    return r.error ? r.error : `HTTP ${r.status}`;
}
