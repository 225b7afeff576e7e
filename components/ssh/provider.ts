// The dynamic provider behind SshCommand: runs commands on the host over SSH (ssh2, pure JS) and
// uploads files over SFTP first.
//
// Pulumi serializes this provider's code into the state of every SshCommand (`__provider`) and
// runs it in a separate process (pulumi-resource-pulumi-nodejs). So everything here:
//   - captures nothing but the functions and constants of this file: no config, no secrets, no
//     imported module objects (modules are `require`d inside the functions, at run time);
//   - uses function declarations and unexported constants only: TypeScript turns references to an
//     exported const into `exports.X`, which would drag the whole module into the serialized code.
// Only `import type` at the top: it is erased at compile time.
import type * as pulumi from "@pulumi/pulumi";
import type { Client, ConnectConfig, SFTPWrapper } from "ssh2";
import type { SshConnection } from "./ssh-connection";

export type SshLogging = "stdout" | "stderr" | "stdoutAndStderr" | "none";

/** A file put on the host over SFTP before the command runs (atomically: temp file + rename). */
export interface SshUpload {
    /** Absolute local path, read when the command runs; or `content`. */
    localPath?: string;
    /** The file's text; or `localPath`. */
    content?: string;
    /** Relative paths are relative to the SSH user's home. The directory must exist. */
    remotePath: string;
    /** Octal, e.g. "0600". */
    mode: string;
    /** sha256 of the bytes (hex): a change is a diff, and the upload checks the file still matches. */
    sha256: string;
}

/** What the provider receives: the SshCommand arguments, resolved, plus the resource's own URN. */
export interface SshCommandInputs {
    connection: SshConnection;
    create: string;
    update?: string;
    delete?: string;
    stdin?: string;
    triggers?: unknown[];
    uploads?: SshUpload[];
    logging?: SshLogging;
    /** The resource's URN, so streamed lines are shown under the resource (see engineLogger). */
    __logUrn?: string;
}

export interface SshCommandOutputs extends SshCommandInputs {
    stdout: string;
    stderr: string;
}

/** What the engine sends for a value not known yet (preview). */
const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
const LOGGING_VALUES = ["stdout", "stderr", "stdoutAndStderr", "none"];
/** Inputs that make a diff; `triggers` alone makes it a replacement. */
const DIFF_KEYS = ["connection", "create", "update", "delete", "stdin", "triggers", "uploads", "logging"];
/** stdout and stderr kept in state: the tail, so the state stays small and the end is there. */
const OUTPUT_LIMIT = 64 * 1024;
/** Lines quoted in the error of a failed command. */
const ERROR_LINES = 20;
/** A streamed line longer than this is cut (a minified file cat'ed by mistake). */
const LINE_LIMIT = 4000;

export function containsUnknown(v: unknown): boolean {
    if (v === UNKNOWN) return true;
    if (Array.isArray(v)) return v.some(containsUnknown);
    if (v && typeof v === "object") return Object.values(v).some(containsUnknown);
    return false;
}

/** Structural equality of JSON-like values; a missing key equals undefined. */
export function deepEqual(a: unknown, b: unknown): boolean {
    if (a === b) return true;
    if (Array.isArray(a) || Array.isArray(b)) {
        if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
        return a.every((x, i) => deepEqual(x, b[i]));
    }
    if (a && b && typeof a === "object" && typeof b === "object") {
        const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
        for (const k of keys) if (!deepEqual((a as any)[k], (b as any)[k])) return false;
        return true;
    }
    // null and undefined both mean "not set".
    return (a === undefined || a === null) && (b === undefined || b === null);
}

/**
 * Any changed input is an update (which runs `update`, or `create` again); a changed `triggers` is a
 * replacement, create-before-delete unless the resource sets deleteBeforeReplace. An unknown value
 * (preview) counts as changed: it only is unknown because something it comes from changes.
 */
export function diffInputs(olds: Partial<SshCommandInputs>, news: Partial<SshCommandInputs>): pulumi.dynamic.DiffResult {
    const compared = (props: Partial<SshCommandInputs>, k: string) => (k === "uploads" ? uploadIdentity(props.uploads) : (props as any)[k]);
    const changed = DIFF_KEYS.filter((k) => containsUnknown(compared(news, k)) || !deepEqual(compared(olds, k), compared(news, k)));
    return { changes: changed.length > 0, replaces: changed.includes("triggers") ? ["triggers"] : [], deleteBeforeReplace: false };
}

/**
 * What makes an upload different: where it goes, its mode and its bytes. Not the local path, which
 * differs between checkouts (another clone, CI) while the file is the same.
 */
export function uploadIdentity(uploads: unknown): unknown {
    if (!Array.isArray(uploads)) return uploads;
    return uploads.map((u) => (u && typeof u === "object" ? { remotePath: u.remotePath, mode: u.mode, sha256: u.sha256 } : u));
}

/** Parses "ssh-ed25519 AAAA... [comment]" (a known_hosts line with a leading host name is fine too). */
export function parseHostKey(text: string): { type: string; blob: Buffer } | undefined {
    const tokens = text.trim().split(/\s+/);
    for (let i = 0; i + 1 < tokens.length; i++) {
        if (!/^(ssh-|ecdsa-|sk-)/.test(tokens[i]) || !/^[A-Za-z0-9+/]+={0,2}$/.test(tokens[i + 1])) continue;
        const blob = Buffer.from(tokens[i + 1], "base64");
        // The key blob starts with its own type name: a pasted key of another type is caught here.
        if (blob.length < 4) return undefined;
        const len = blob.readUInt32BE(0);
        if (blob.length < 4 + len || blob.subarray(4, 4 + len).toString("latin1") !== tokens[i]) return undefined;
        return { type: tokens[i], blob };
    }
    return undefined;
}

/** Host key algorithms to offer, so a server with several host keys presents the pinned one. */
export function hostKeyAlgorithms(type: string): string[] {
    return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
}

/** OpenSSH's fingerprint notation, for messages. */
export function fingerprint(blob: Buffer): string {
    const crypto = require("crypto") as typeof import("crypto");
    return `SHA256:${crypto.createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

/** Validation of the inputs, field by field; values not known yet (preview) are not judged. */
export function checkInputs(news: Record<string, any>): pulumi.dynamic.CheckFailure[] {
    const failures: pulumi.dynamic.CheckFailure[] = [];
    const fail = (property: string, reason: string) => failures.push({ property, reason });
    const known = (v: unknown) => v !== undefined && v !== null && !containsUnknown(v);
    const isText = (v: unknown) => typeof v === "string" && v.length > 0;

    const c = news.connection;
    if (c === undefined || c === null) fail("connection", "is required");
    else if (c !== UNKNOWN) {
        if (typeof c !== "object" || Array.isArray(c)) fail("connection", "must be an object");
        else {
            for (const k of ["host", "user", "privateKey"]) if (known(c[k]) && !isText(c[k])) fail(`connection.${k}`, "must be a non-empty string");
            for (const k of ["host", "user", "privateKey"]) if (c[k] === undefined || c[k] === null) fail(`connection.${k}`, "is required");
            if (known(c.port) && !(Number.isInteger(c.port) && c.port >= 1 && c.port <= 65535)) fail("connection.port", "must be a port number (1-65535)");
            if (known(c.hostKey) && c.hostKey !== "" && !(typeof c.hostKey === "string" && parseHostKey(c.hostKey))) {
                fail("connection.hostKey", 'must be a public key line such as "ssh-ed25519 AAAA..."');
            }
            if (known(c.dialErrorLimit) && !(Number.isInteger(c.dialErrorLimit) && (c.dialErrorLimit >= 1 || c.dialErrorLimit === -1))) {
                fail("connection.dialErrorLimit", "must be a positive integer, or -1 for no limit");
            }
            if (known(c.perDialTimeout) && !(typeof c.perDialTimeout === "number" && c.perDialTimeout > 0))
                fail("connection.perDialTimeout", "must be a positive number of seconds");
        }
    }
    if (news.create === undefined || news.create === null) fail("create", "is required");
    else if (known(news.create) && !isText(news.create)) fail("create", "must be a non-empty command");
    for (const k of ["update", "delete"]) if (known(news[k]) && !isText(news[k])) fail(k, "must be a non-empty command when set");
    if (known(news.stdin) && typeof news.stdin !== "string") fail("stdin", "must be a string");
    if (known(news.logging) && !LOGGING_VALUES.includes(news.logging)) fail("logging", `must be one of ${LOGGING_VALUES.join(", ")}`);
    if (known(news.triggers) && !Array.isArray(news.triggers)) fail("triggers", "must be a list");
    if (known(news.uploads) && !Array.isArray(news.uploads)) fail("uploads", "must be a list");
    else if (Array.isArray(news.uploads)) {
        news.uploads.forEach((u: any, i: number) => {
            const at = `uploads[${i}]`;
            if (!known(u)) return;
            if (typeof u !== "object") {
                fail(at, "must be an object");
                return;
            }
            if (known(u.remotePath) && !isText(u.remotePath)) fail(`${at}.remotePath`, "must be a non-empty path");
            const sources = [u.localPath, u.content].filter((x) => x !== undefined && x !== null);
            if (sources.length !== 1) fail(at, "needs exactly one of localPath and content");
            if (known(u.localPath) && !(typeof u.localPath === "string" && u.localPath.startsWith("/"))) fail(`${at}.localPath`, "must be an absolute path");
            if (known(u.content) && typeof u.content !== "string") fail(`${at}.content`, "must be a string");
            if (known(u.mode) && !(typeof u.mode === "string" && /^0?[0-7]{3}$/.test(u.mode))) fail(`${at}.mode`, 'must be an octal mode such as "0644"');
            if (known(u.sha256) && !(typeof u.sha256 === "string" && /^[0-9a-f]{64}$/.test(u.sha256))) fail(`${at}.sha256`, "must be a hex sha256");
        });
    }
    return failures;
}

/** Keeps the last `limit` characters of a stream, starting at a line, and says what it dropped. */
export function createTail(limit: number): { add(text: string): void; text(): string } {
    let kept = "";
    let dropped = 0;
    return {
        add(text: string) {
            kept += text;
            if (kept.length > 2 * limit) {
                let cut = kept.length - limit;
                const nl = kept.indexOf("\n", cut);
                if (nl >= 0 && nl - cut < 1024) cut = nl + 1;
                dropped += cut;
                kept = kept.slice(cut);
            }
        },
        text() {
            let cut = Math.max(0, kept.length - limit);
            const nl = cut > 0 ? kept.indexOf("\n", cut) : -1;
            if (nl >= 0 && nl - cut < 1024) cut = nl + 1;
            const total = dropped + cut;
            return (total > 0 ? `[... ${total} earlier characters not kept ...]\n` : "") + kept.slice(cut);
        },
    };
}

/**
 * Turns chunks of bytes into whole lines (UTF-8 safe across chunks). A line rewritten with \r
 * (progress bars) shows as its last state. Returns each chunk's decoded text for capture.
 */
export function createLineSplitter(emit: (line: string) => void): { write(chunk: Buffer): string; end(): string } {
    const { StringDecoder } = require("string_decoder") as typeof import("string_decoder");
    const decoder = new StringDecoder("utf8");
    let partial = "";
    const out = (raw: string) => {
        const parts = raw.split("\r").filter((p) => p.length > 0);
        const line = parts.length > 0 ? parts[parts.length - 1] : "";
        if (line.trim().length === 0) return;
        emit(line.length > LINE_LIMIT ? `${line.slice(0, LINE_LIMIT)} [... line cut]` : line);
    };
    const feed = (text: string) => {
        partial += text;
        let nl: number;
        while ((nl = partial.indexOf("\n")) >= 0) {
            out(partial.slice(0, nl));
            partial = partial.slice(nl + 1);
        }
        // A very long line with no newline yet is flushed in pieces, so memory stays bounded.
        if (partial.length > 4 * LINE_LIMIT) {
            out(partial);
            partial = "";
        }
        return text;
    };
    return {
        write: (chunk) => feed(decoder.write(chunk)),
        end() {
            const text = feed(decoder.end());
            if (partial.length > 0) out(partial);
            partial = "";
            return text;
        },
    };
}

function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The engine's address: the dynamic provider process gets it as its last argument. */
export function engineAddress(argv: readonly string[]): string | undefined {
    const last = argv.length > 2 ? argv[argv.length - 1] : undefined;
    return last && /^[A-Za-z0-9.\-[\]:]+:\d+$/.test(last) ? last : undefined;
}

export interface LineLog {
    write(line: string): void;
    close(): Promise<void>;
}

/**
 * Streams lines to the Pulumi console under the resource. `pulumi.log` cannot do that from a
 * dynamic provider: the SDK never connects it to the engine there, so it falls back to
 * console.log, which the engine shows as the Stack's output with an "info: [runtime]" prefix.
 * Instead this calls the engine's Log RPC itself, with the URN the resource passed in. Without an
 * engine (or if the RPC fails) lines go to this process's stderr, which the engine also shows.
 */
export function engineLogger(urn: string | undefined, argv: readonly string[] = process.argv): LineLog {
    const label = urn ? urn.slice(urn.lastIndexOf("::") + 2) : "ssh";
    const fallback = (line: string) => {
        process.stderr.write(`${label}: ${line}\n`);
    };
    const addr = engineAddress(argv);
    let client: any;
    let proto: any;
    if (urn && addr) {
        try {
            const path = require("path") as typeof import("path");
            const sdkDir = path.dirname(require.resolve("@pulumi/pulumi/package.json"));
            const grpc = require(require.resolve("@grpc/grpc-js", { paths: [sdkDir] }));
            const engineRpc = require("@pulumi/pulumi/proto/engine_grpc_pb");
            proto = require("@pulumi/pulumi/proto/engine_pb");
            client = new engineRpc.EngineClient(addr, grpc.credentials.createInsecure());
        } catch {
            client = undefined;
        }
    }
    if (!client) return { write: fallback, close: async () => undefined };
    let chain: Promise<void> = Promise.resolve();
    let broken = false;
    const send = (line: string) =>
        new Promise<void>((resolve) => {
            if (broken) {
                fallback(line);
                return resolve();
            }
            const req = new proto.LogRequest();
            req.setSeverity(proto.LogSeverity.INFO);
            req.setMessage(line);
            req.setUrn(urn);
            client.log(req, (err: unknown) => {
                if (err) {
                    broken = true;
                    fallback(line);
                }
                resolve();
            });
        });
    return {
        write(line: string) {
            // One at a time, so lines keep their order.
            chain = chain.then(() => send(line));
        },
        async close() {
            await chain;
            client.close();
        },
    };
}

type DialError = Error & { retry: boolean; hostKeyMismatch?: boolean };

function dialError(message: string, retry: boolean, hostKeyMismatch = false): DialError {
    return Object.assign(new Error(message), { retry, hostKeyMismatch });
}

function connectOnce(conn: SshConnection, timeoutMs: number): Promise<Client> {
    const { Client } = require("ssh2") as typeof import("ssh2");
    return new Promise((resolve, reject) => {
        const client = new Client();
        const pinned = conn.hostKey ? parseHostKey(conn.hostKey) : undefined;
        let presented: string | undefined;
        let settled = false;
        const fail = (e: DialError) => {
            if (settled) return;
            settled = true;
            client.end();
            reject(e);
        };
        const cfg: ConnectConfig = {
            host: conn.host,
            port: conn.port ?? 22,
            username: conn.user,
            privateKey: conn.privateKey,
            readyTimeout: timeoutMs,
            // A host that vanishes mid-command fails the step within a minute instead of hanging.
            keepaliveInterval: 15000,
            keepaliveCountMax: 4,
        };
        if (pinned) {
            cfg.algorithms = { serverHostKey: hostKeyAlgorithms(pinned.type) as any };
            cfg.hostVerifier = (key: Buffer) => {
                if (key.equals(pinned.blob)) return true;
                presented = fingerprint(key);
                return false;
            };
        }
        client.on("ready", () => {
            settled = true;
            resolve(client);
        });
        client.on("error", (err: Error) => {
            if (presented) {
                fail(
                    dialError(
                        `host key mismatch: expected ${pinned!.type} ${fingerprint(pinned!.blob)}, the server presented ${presented}; refusing to connect`,
                        false,
                        true,
                    ),
                );
            } else {
                fail(dialError(err.message, true));
            }
        });
        client.on("close", () => fail(dialError("the connection closed during the handshake", true)));
        if (conn.hostKey && !pinned) {
            // check() refuses this before anything runs; never fall back to an unchecked connection.
            fail(dialError(`connection.hostKey is not a public key line: ${conn.hostKey.slice(0, 40)}`, false));
            return;
        }
        try {
            client.connect(cfg);
        } catch (e) {
            // A key ssh2 cannot parse: retrying will not help. The message names no key material.
            fail(dialError((e as Error).message, false));
        }
    });
}

/** Connects, retrying while the host boots (refused, timed out, sshd or the key not ready yet). */
export async function connectWithRetry(conn: SshConnection, note: (line: string) => void): Promise<Client> {
    const limit = conn.dialErrorLimit ?? 10;
    const timeoutMs = (conn.perDialTimeout ?? 15) * 1000;
    const where = `${conn.user}@${conn.host}:${conn.port ?? 22}`;
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
        try {
            return await connectOnce(conn, timeoutMs);
        } catch (e) {
            const err = e as DialError;
            if (!err.retry || (limit >= 0 && attempt >= limit)) {
                const took = Math.round((Date.now() - started) / 1000);
                const final = new Error(`cannot connect to ${where} (${attempt} attempt${attempt === 1 ? "" : "s"} in ${took} s): ${err.message}`);
                throw Object.assign(final, { hostKeyMismatch: err.hostKeyMismatch === true });
            }
            if (attempt === 1 || attempt % 5 === 0) note(`waiting for SSH on ${where} (attempt ${attempt}${limit >= 0 ? ` of ${limit}` : ""}): ${err.message}`);
            await sleep(Math.min(1000 * attempt, 5000));
        }
    }
}

function sftpCall<T = void>(fn: (cb: (err: Error | null | undefined, v?: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => fn((err, v) => (err ? reject(err) : resolve(v as T))));
}

async function sha256File(localPath: string): Promise<string> {
    const crypto = require("crypto") as typeof import("crypto");
    const fs = require("fs") as typeof import("fs");
    const hash = crypto.createHash("sha256");
    for await (const chunk of fs.createReadStream(localPath)) hash.update(chunk as Buffer);
    return hash.digest("hex");
}

async function uploadOne(sftp: SFTPWrapper, u: SshUpload): Promise<number> {
    const crypto = require("crypto") as typeof import("crypto");
    const data = typeof u.content === "string" ? Buffer.from(u.content, "utf8") : undefined;
    const source = data ? "the content" : u.localPath!;
    const actual = data ? crypto.createHash("sha256").update(data).digest("hex") : await sha256File(u.localPath!);
    if (actual !== u.sha256) throw new Error(`${source} changed since the program read it (sha256 ${actual}, expected ${u.sha256}); run again`);
    const slash = u.remotePath.lastIndexOf("/");
    // Hidden, beside the target: a reader sees the old file or the whole new one, never half.
    const tmp = `${u.remotePath.slice(0, slash + 1)}.${u.remotePath.slice(slash + 1)}.slotshift-upload-${crypto.randomBytes(4).toString("hex")}`;
    try {
        if (data) await sftpCall((cb) => sftp.writeFile(tmp, data, { mode: 0o600 }, cb));
        else await sftpCall((cb) => sftp.fastPut(u.localPath!, tmp, { mode: 0o600 }, cb));
        // Explicitly: the mode given at open is reduced by the server's umask.
        await sftpCall((cb) => sftp.chmod(tmp, parseInt(u.mode, 8), cb));
        try {
            await sftpCall((cb) => sftp.ext_openssh_rename(tmp, u.remotePath, cb));
        } catch {
            // Plain SFTP rename refuses to replace a file; without the OpenSSH extension, unlink first.
            await sftpCall((cb) => sftp.unlink(u.remotePath, cb)).catch(() => undefined);
            await sftpCall((cb) => sftp.rename(tmp, u.remotePath, cb));
        }
    } catch (e) {
        await sftpCall((cb) => sftp.unlink(tmp, cb)).catch(() => undefined);
        throw new Error(`upload of ${source} to ${u.remotePath} failed: ${(e as Error).message}`);
    }
    return data ? data.length : (require("fs") as typeof import("fs")).statSync(u.localPath!).size;
}

export async function uploadAll(client: Client, uploads: readonly SshUpload[] | undefined, note: (line: string) => void): Promise<void> {
    if (!uploads || uploads.length === 0) return;
    const sftp = await sftpCall<SFTPWrapper>((cb) => client.sftp(cb as any));
    try {
        for (const u of uploads) {
            const bytes = await uploadOne(sftp, u);
            note(`uploaded ${u.remotePath} (${bytes} bytes, mode ${u.mode})`);
        }
    } finally {
        sftp.end();
    }
}

export interface ExecResult {
    /** False when the connection ended before the command reported an exit status. */
    exited: boolean;
    code: number | null;
    signal: string | null;
    stdout: string;
    stderr: string;
}

/** Runs one command (no pty); stdin, when given, is written and closed, else closed at once. */
export function execute(
    client: Client,
    command: string,
    stdin: string | undefined,
    emit: (stream: "stdout" | "stderr", line: string) => void,
): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
        client.exec(command, (err, stream) => {
            if (err) return reject(new Error(`cannot start the command: ${err.message}`));
            const out = createTail(OUTPUT_LIMIT);
            const errOut = createTail(OUTPUT_LIMIT);
            const outLines = createLineSplitter((line) => emit("stdout", line));
            const errLines = createLineSplitter((line) => emit("stderr", line));
            const result: ExecResult = { exited: false, code: null, signal: null, stdout: "", stderr: "" };
            stream.on("data", (chunk: Buffer) => out.add(outLines.write(chunk)));
            stream.stderr.on("data", (chunk: Buffer) => errOut.add(errLines.write(chunk)));
            stream.on("exit", (code: number | null, signal?: string) => {
                result.exited = true;
                result.code = typeof code === "number" ? code : null;
                result.signal = signal ?? null;
            });
            // A command that exits without reading its stdin makes the write fail; its exit status says what happened.
            stream.on("error", () => undefined);
            stream.on("close", () => {
                out.add(outLines.end());
                errOut.add(errLines.end());
                result.stdout = out.text();
                result.stderr = errOut.text();
                resolve(result);
            });
            if (stdin !== undefined && stdin !== "") stream.end(stdin);
            else stream.end();
        });
    });
}

function shows(logging: SshLogging, stream: "stdout" | "stderr"): boolean {
    return logging === "stdoutAndStderr" || logging === stream;
}

/**
 * The error of a failed command. The first line is what the console's progress row shows, so it
 * carries the last line the command printed (where the agent puts a failed gate's figures); then
 * what ran and the last lines it was allowed to show.
 */
export function failureMessage(op: string, command: string, r: ExecResult, lastLines: readonly string[], logging: SshLogging): string {
    const shown = command.length > 200 ? `${command.slice(0, 197)}...` : command;
    const how = !r.exited ? "lost the connection before the command exited" : r.signal ? `killed by signal ${r.signal}` : `exit code ${r.code}`;
    const lines = [`${op} failed (${how})${lastLines.length > 0 ? `: ${lastLines[lastLines.length - 1]}` : ""}`, `command: ${shown}`];
    if (lastLines.length > 0) lines.push("last output:", ...lastLines.map((l) => `    ${l}`));
    else if (logging === "none") lines.push("its output is not shown (logging: none)");
    else lines.push(`it printed nothing${logging === "stdoutAndStderr" ? "" : ` on ${logging}`}`);
    return lines.join("\n");
}

/** One step: connect, upload (create/update), run, report. Throws on any failure. */
export async function runStep(
    op: "create" | "update" | "delete",
    props: SshCommandInputs,
    command: string,
    opts: { uploads: boolean; stdin?: string; log?: LineLog },
): Promise<{ stdout: string; stderr: string }> {
    const logging: SshLogging = props.logging ?? "stdoutAndStderr";
    const log = opts.log ?? engineLogger(props.__logUrn);
    const lastLines: string[] = [];
    const emit = (stream: "stdout" | "stderr", line: string) => {
        if (!shows(logging, stream)) return;
        log.write(line);
        lastLines.push(line);
        if (lastLines.length > ERROR_LINES) lastLines.shift();
    };
    let client: Client | undefined;
    try {
        // A connection that drops later ends the channel too: execute() then reports exited=false.
        client = await connectWithRetry(props.connection, (line) => log.write(line));
        if (opts.uploads) await uploadAll(client, props.uploads, (line) => log.write(line));
        const r = await execute(client, command, opts.stdin, emit);
        if (!r.exited || r.signal || r.code !== 0) throw new Error(failureMessage(op, command, r, lastLines, logging));
        return { stdout: r.stdout, stderr: r.stderr };
    } finally {
        client?.end();
        await log.close();
    }
}

function newId(): string {
    return (require("crypto") as typeof import("crypto")).randomBytes(8).toString("hex");
}

export const sshCommandProvider: pulumi.dynamic.ResourceProvider<SshCommandInputs, SshCommandOutputs> = {
    async check(_olds, news) {
        return { inputs: news, failures: checkInputs(news) };
    },

    async diff(_id, olds, news) {
        return diffInputs(olds, news);
    },

    // Not called on preview. A failure throws before an id exists, so nothing is recorded and the
    // next `pulumi up` runs the command again.
    async create(inputs) {
        const out = await runStep("create", inputs, inputs.create, { uploads: true, stdin: inputs.stdin });
        return { id: newId(), outs: { ...inputs, ...out } };
    },

    async update(_id, _olds, news) {
        const out = await runStep("update", news, news.update ?? news.create, { uploads: true, stdin: news.stdin });
        return { outs: { ...news, ...out } };
    },

    // Runs with the old state's connection and command (the replaced resource's, after a replace).
    async delete(_id, props) {
        if (!props.delete) return;
        try {
            await runStep("delete", props, props.delete, { uploads: false });
        } catch (e) {
            // The pinned key of the old state no longer matches: the machine this command ran on
            // was replaced at the same address, so nothing is left to undo (and nothing is sent).
            if (!(e as { hostKeyMismatch?: boolean }).hostKeyMismatch) throw e;
            const log = engineLogger(props.__logUrn);
            log.write(`skipped the delete command: ${(e as Error).message}`);
            await log.close();
        }
    },
};
