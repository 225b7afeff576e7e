// The second load generator: vegeta (Go; open model: requests go out at the set rate whether or not
// earlier ones were answered), beside the project's own (dev/loopback/load.ts, autocannon). It
// sends the same mix through NGINX (GET /, every Nth request a POST) and its per-request results
// are decoded into the same records, so both are cut into the same phases and compared.
// Installed by `scripts/install-deps.sh --bench` (go install, pinned version).
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { ErrorRecord, ResponseRecord } from "../dev/loopback/load";

export const VEGETA_MODULE = "github.com/tsenart/vegeta/v12@v12.13.0";

/** vegeta on PATH, or where `go install` puts it; undefined when it is not installed. */
export function findVegeta(): string | undefined {
    const dirs = (process.env.PATH ?? "").split(":").filter(Boolean);
    try {
        const gopath = execFileSync("go", ["env", "GOPATH"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
        if (gopath) dirs.push(...gopath.split(":").map((d) => path.join(d, "bin")));
    } catch {
        dirs.push(path.join(os.homedir(), "go", "bin"));
    }
    for (const dir of dirs) {
        const file = path.join(dir, "vegeta");
        try {
            fs.accessSync(file, fs.constants.X_OK);
            return file;
        } catch {
            // not here
        }
    }
    return undefined;
}

export function vegetaVersion(bin: string): string {
    try {
        return execFileSync(bin, ["-version"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
            .trim()
            .split("\n")
            .join(" ");
    } catch (e) {
        return `unknown (${(e as Error).message.split("\n")[0]})`;
    }
}

export interface VegetaOptions {
    bin: string;
    /** Where the targets, the body and the results go. */
    dir: string;
    port: number;
    host: string;
    rate: number;
    /** Every Nth request a POST (0: GETs only). */
    postEvery: number;
    path: string;
    postPath: string;
    postBody: string;
    versionHeader: string;
}

export interface VegetaRun {
    pid: number | undefined;
    stop(): Promise<{ records: ResponseRecord[]; errorRecords: ErrorRecord[] }>;
}

/** One line of `vegeta encode --to json`. */
interface VegetaResult {
    code: number;
    timestamp: string;
    /** Nanoseconds. */
    latency: number;
    error: string;
    method: string;
    headers: Record<string, string[]> | null;
}

let runs = 0;

/** Starts an attack that runs until stop(). */
export function startVegeta(o: VegetaOptions): VegetaRun {
    const id = `vegeta-${process.pid}-${++runs}`;
    fs.mkdirSync(o.dir, { recursive: true });
    const body = path.join(o.dir, `${id}.body`);
    const targets = path.join(o.dir, `${id}.targets`);
    const results = path.join(o.dir, `${id}.bin`);
    fs.writeFileSync(body, o.postBody);
    // The URL names the site (SNI and Host as a browser sends them); -connect-to sends it to loopback.
    const base = `https://${o.host}:${o.port}`;
    const get = `GET ${base}${o.path}\n`;
    const post = `POST ${base}${o.postPath}\nContent-Type: application/json\n@${body}\n`;
    const mix = o.postEvery ? [...Array.from({ length: o.postEvery - 1 }, () => get), post] : [get];
    fs.writeFileSync(targets, mix.join("\n") + "\n");
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/_proxy$/i.test(k)));
    const child: ChildProcess = spawn(
        o.bin,
        [
            "attack",
            "-targets",
            targets,
            "-rate",
            `${o.rate}/1s`,
            "-duration",
            "0",
            "-timeout",
            "30s",
            "-insecure",
            // HTTP/1.1 keep-alive, as the project's generator and most browsers' first connection.
            "-http2=false",
            "-connect-to",
            `${o.host}:${o.port}:127.0.0.1:${o.port}`,
            "-max-body",
            "0",
            "-redirects",
            "-1",
            "-output",
            results,
        ],
        { stdio: ["ignore", "ignore", "pipe"], env },
    );
    let stderr = "";
    child.stderr?.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    return {
        pid: child.pid,
        async stop() {
            // SIGINT: vegeta stops sending, waits for the answers in flight and writes them out.
            if (child.exitCode === null) child.kill("SIGINT");
            const code = await exited;
            if (!fs.existsSync(results)) throw new Error(`vegeta wrote no results (exit ${code}): ${stderr.trim()}`);
            const json = execFileSync(o.bin, ["encode", "--to", "json", results], { encoding: "utf8", maxBuffer: 1 << 30 });
            for (const f of [body, targets, results]) fs.rmSync(f, { force: true });
            return decode(json, o.versionHeader);
        },
    };
}

/** vegeta's results as the project's records: an answer by when it ended, a request without one as an error. */
export function decode(json: string, versionHeader: string): { records: ResponseRecord[]; errorRecords: ErrorRecord[] } {
    const records: ResponseRecord[] = [];
    const errorRecords: ErrorRecord[] = [];
    const wanted = versionHeader.toLowerCase();
    for (const line of json.split("\n")) {
        if (!line.trim()) continue;
        const r = JSON.parse(line) as VegetaResult;
        const sent =
            Date.parse(r.timestamp) +
            Number(
                r.timestamp
                    .match(/\.\d{3}(\d+)/)?.[1]
                    ?.padEnd(6, "0")
                    .slice(0, 6) ?? 0,
            ) /
                1e6;
        const latencyMs = r.latency / 1e6;
        if (!r.code) {
            errorRecords.push({ t: sent + latencyMs, message: r.error || "no answer" });
            continue;
        }
        const header = Object.entries(r.headers ?? {}).find(([k]) => k.toLowerCase() === wanted)?.[1]?.[0];
        records.push({ t: sent + latencyMs, status: r.code, method: r.method === "POST" ? "POST" : "GET", version: header ?? "-", latencyMs });
    }
    return { records, errorRecords };
}
