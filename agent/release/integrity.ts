// A version names one archive, byte for byte. prepare learns the archive's sha256 (from the
// program, or from the local file), compares it with what the version was first prepared from
// (deploy/release-digests/<version>.sha256, root-only) and with the bytes it unpacks; a rebuilt
// archive under a version that exists already is refused instead of being silently ignored.
import * as crypto from "crypto";
import * as fs from "fs";
import { PrepareRequest } from "../../lib/contract/commands";
import { SHA256_PATTERN } from "../../lib/contract/names";
import { settingDefault } from "../../lib/settings/table";
import { releaseDigestPath } from "../../lib/host-layout";
import { AgentContext } from "../context";
import { AgentError, UsageError } from "../common/errors";
import { writeFileAtomic } from "../common/fs-atomic";

function isHttpsSource(source: string): boolean {
    return /^https:\/\//.test(source);
}

/** The source, from argv or (--source-stdin) from the first line of stdin: a URL may carry credentials. */
export async function resolveSource(req: PrepareRequest, stdin: NodeJS.ReadableStream = process.stdin): Promise<string> {
    if (!req.sourceStdin) return req.source!;
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(Buffer.from(chunk as Buffer));
    const source = Buffer.concat(chunks).toString("utf8").split("\n")[0].trim();
    if (source === "") throw new UsageError("--source-stdin: stdin holds no source");
    return source;
}

export async function sha256OfFile(file: string): Promise<string> {
    const hash = crypto.createHash("sha256");
    for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
    return hash.digest("hex");
}

/** The digest this prepare stands for: the given one, or a local archive's own. */
export async function expectedDigest(req: PrepareRequest, source: string): Promise<string> {
    if (req.sha256 !== undefined) return req.sha256;
    if (isHttpsSource(source)) throw new UsageError("an https source needs --sha256 (releaseSha256): the host checks what it downloads against it");
    if (!fs.existsSync(source)) throw new AgentError(`artifact ${source} does not exist`);
    return sha256OfFile(source);
}

/** What the version was prepared from before, if it was. */
function recordedDigest(ctx: AgentContext, version: string): string | undefined {
    let text: string;
    try {
        text = fs.readFileSync(releaseDigestPath(ctx.layout, version), "utf8").trim();
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
    }
    if (!SHA256_PATTERN.test(text))
        throw new AgentError(`${releaseDigestPath(ctx.layout, version)} does not hold a sha256; remove it only if you know what it stood for`);
    return text;
}

/** Refuses other bytes under a version that was prepared already. */
export function refuseChangedVersion(ctx: AgentContext, version: string, sha256: string): void {
    const recorded = recordedDigest(ctx, version);
    if (recorded === undefined || recorded === sha256) return;
    throw new AgentError(
        `release ${version} was prepared from an archive with sha256 ${recorded}, this one has sha256 ${sha256}: ` +
            "a version never changes its bytes; give the rebuilt archive a new releaseVersion",
    );
}

/** The archive about to be unpacked must be the one the version stands for. */
export async function verifyArchive(archive: string, sha256: string, what: string): Promise<void> {
    const actual = await sha256OfFile(archive);
    if (actual !== sha256) throw new AgentError(`${what} has sha256 ${actual}, expected ${sha256} (releaseSha256); nothing was unpacked`);
}

export function recordDigest(ctx: AgentContext, version: string, sha256: string): void {
    if (recordedDigest(ctx, version) === sha256) return;
    fs.mkdirSync(ctx.layout.releaseDigestsDir, { recursive: true, mode: 0o700 });
    writeFileAtomic(releaseDigestPath(ctx.layout, version), `${sha256}\n`, { mode: 0o600 });
}

export interface DownloadLimits {
    maxBytes: number;
    timeoutMs: number;
}

export function downloadLimits(req: PrepareRequest): DownloadLimits {
    return {
        maxBytes: (req.releaseDownloadMaxMiB ?? settingDefault("releaseDownloadMaxMiB")) * 1024 * 1024,
        timeoutMs: (req.releaseDownloadTimeout ?? settingDefault("releaseDownloadTimeout")) * 1000,
    };
}
