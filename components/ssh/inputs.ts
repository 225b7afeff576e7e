// What the provider receives and how it judges it: the input types, the diff (update or
// replacement) and check's validation. Part of the serialized provider: see the rules in provider.ts.
import type * as pulumi from "@pulumi/pulumi";
import { parseHostKey } from "./host-key";
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
    /**
     * Re-attaches to the work create/update started when the connection drops before the command
     * exits: run after reconnecting, with {worker} replaced by the worker the command named on its
     * first output line ("deploy worker pid N (log <dir>/<worker>.log)") and {lines} by the
     * output lines received since. Its output continues the command's and its exit status is the
     * command's. Not part of the diff: it changes nothing on the host by itself.
     */
    reattach?: string;
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

export function containsUnknown(v: unknown): boolean {
    if (v === UNKNOWN) return true;
    if (Array.isArray(v)) return v.some(containsUnknown);
    if (v && typeof v === "object") return Object.values(v).some(containsUnknown);
    return false;
}

/** Structural equality of JSON-like values; a missing key equals undefined. */
function deepEqual(a: unknown, b: unknown): boolean {
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
function uploadIdentity(uploads: unknown): unknown {
    if (!Array.isArray(uploads)) return uploads;
    return uploads.map((u) => (u && typeof u === "object" ? { remotePath: u.remotePath, mode: u.mode, sha256: u.sha256 } : u));
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
            // Never an unchecked connection: the first one already carries secrets.
            if (c.hostKey === undefined || c.hostKey === null || c.hostKey === "")
                fail("connection.hostKey", "is required: the host key every connection pins");
            else if (known(c.hostKey) && !(typeof c.hostKey === "string" && parseHostKey(c.hostKey))) {
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
    for (const k of ["update", "delete", "reattach"]) if (known(news[k]) && !isText(news[k])) fail(k, "must be a non-empty command when set");
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
