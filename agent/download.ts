// Fetches an https artifact with Node's https module (no curl/wget on a minimal host), following
// redirects, into a .part file renamed into place only when complete.
import * as fs from "fs";
import * as https from "https";
import { AgentError } from "./errors";
import { Logger } from "./log";

export function download(url: string, dest: string, log: Logger, redirectsLeft = 5): Promise<void> {
    return new Promise((resolve, reject) => {
        const part = `${dest}.part`;
        const req = https.get(url, { timeout: 60_000 }, (res) => {
            const status = res.statusCode ?? 0;
            if (status >= 300 && status < 400 && res.headers.location) {
                res.resume();
                if (redirectsLeft <= 0) return reject(new AgentError(`download of ${redactUrl(url)}: too many redirects`));
                const next = new URL(res.headers.location, url).toString();
                if (!next.startsWith("https://")) return reject(new AgentError(`download of ${redactUrl(url)}: refusing redirect to a non-https URL`));
                return resolve(download(next, dest, log, redirectsLeft - 1));
            }
            if (status !== 200) {
                res.resume();
                return reject(new AgentError(`download of ${redactUrl(url)} answered HTTP ${status}`));
            }
            const out = fs.createWriteStream(part, { mode: 0o640 });
            let bytes = 0;
            res.on("data", (c: Buffer) => (bytes += c.length));
            res.pipe(out);
            res.on("error", (e) => reject(new AgentError(`download of ${redactUrl(url)}: ${e.message}`)));
            out.on("error", (e) => reject(new AgentError(`writing ${part}: ${e.message}`)));
            out.on("finish", () => {
                try {
                    fs.renameSync(part, dest);
                } catch (e) {
                    return reject(e);
                }
                log.info(`downloaded ${(bytes / 1048576).toFixed(1)} MiB from ${redactUrl(url)}`);
                resolve();
            });
        });
        req.on("timeout", () => req.destroy(new Error("no data for 60 s")));
        req.on("error", (e) => reject(new AgentError(`download of ${redactUrl(url)}: ${e.message}`)));
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
