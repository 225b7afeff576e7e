// Fetches an https artifact with Node's https module (no curl/wget on a minimal host), following
// redirects, into a .part file renamed into place only when complete. Bounded: more bytes than
// allowed (announced or received) or a download slower than its deadline is refused, so a hostile
// or broken server can neither fill the disk nor hold the deploy lock forever.
import * as fs from "fs";
import * as https from "https";
import { AgentError } from "../common/errors";
import { Logger } from "../common/log";

export interface DownloadBounds {
    /** Largest body accepted. */
    maxBytes: number;
    /** Deadline of the whole download, redirects included. */
    timeoutMs: number;
}

/** No data for this long fails the download even before its deadline. */
const IDLE_MS = 60_000;

function mib(bytes: number): string {
    return `${(bytes / 1048576).toFixed(1)} MiB`;
}

export async function download(url: string, dest: string, log: Logger, bounds: DownloadBounds): Promise<void> {
    const deadline = Date.now() + bounds.timeoutMs;
    const part = `${dest}.part`;
    try {
        await fetchTo(url, part, log, bounds, deadline, 5);
        fs.renameSync(part, dest);
    } catch (e) {
        fs.rmSync(part, { force: true });
        throw e;
    }
}

function fetchTo(url: string, part: string, log: Logger, bounds: DownloadBounds, deadline: number, redirectsLeft: number): Promise<void> {
    return new Promise((resolve, reject) => {
        const where = redactUrl(url);
        let settled = false;
        const fail = (e: Error) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            req.destroy();
            reject(e);
        };
        const remaining = deadline - Date.now();
        const timer = setTimeout(
            () => fail(new AgentError(`download of ${where} took longer than ${Math.round(bounds.timeoutMs / 1000)} s (releaseDownloadTimeout); refused`)),
            Math.max(0, remaining),
        );
        const req = https.get(url, { timeout: IDLE_MS }, (res) => {
            const status = res.statusCode ?? 0;
            if (status >= 300 && status < 400 && res.headers.location) {
                res.resume();
                if (redirectsLeft <= 0) return fail(new AgentError(`download of ${where}: too many redirects`));
                const next = new URL(res.headers.location, url).toString();
                if (!next.startsWith("https://")) return fail(new AgentError(`download of ${where}: refusing redirect to a non-https URL`));
                settled = true;
                clearTimeout(timer);
                return resolve(fetchTo(next, part, log, bounds, deadline, redirectsLeft - 1));
            }
            if (status !== 200) {
                res.resume();
                return fail(new AgentError(`download of ${where} answered HTTP ${status}`));
            }
            const tooBig = (n: string) => new AgentError(`download of ${where} is larger than ${mib(bounds.maxBytes)} (${n}; releaseDownloadMaxMiB); refused`);
            const announced = Number(res.headers["content-length"]);
            if (Number.isFinite(announced) && announced > bounds.maxBytes) return fail(tooBig(`announced ${mib(announced)}`));
            const out = fs.createWriteStream(part, { mode: 0o600 });
            let bytes = 0;
            res.on("data", (c: Buffer) => {
                bytes += c.length;
                if (bytes > bounds.maxBytes) {
                    out.destroy();
                    fail(tooBig(`received more than that`));
                }
            });
            res.pipe(out);
            res.on("error", (e) => fail(new AgentError(`download of ${where}: ${e.message}`)));
            res.on("aborted", () => fail(new AgentError(`download of ${where}: the server closed the connection early`)));
            out.on("error", (e) => fail(new AgentError(`writing ${part}: ${e.message}`)));
            out.on("finish", () => {
                if (settled) return;
                settled = true;
                clearTimeout(timer);
                log.info(`downloaded ${mib(bytes)} from ${where}`);
                resolve();
            });
        });
        req.on("timeout", () => fail(new AgentError(`download of ${where}: no data for ${IDLE_MS / 1000} s`)));
        req.on("error", (e) => fail(new AgentError(`download of ${where}: ${e.message}`)));
    });
}

/** Presigned URLs carry credentials in the query string: never print it. */
export function redactUrl(url: string): string {
    try {
        const u = new URL(url);
        return `${u.protocol}//${u.host}${u.pathname}${u.search ? "?…" : ""}`;
    } catch {
        return "(url)";
    }
}
