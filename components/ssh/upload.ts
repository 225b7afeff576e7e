// Putting files on the host over SFTP before a command runs: checked against the hash the program
// took, written beside the target and renamed over it. Part of the serialized provider: see the
// rules in provider.ts.
import type { Client, SFTPWrapper } from "ssh2";
import { UploadFailedError, UploadSourceChangedError } from "./errors";
import type { SshUpload } from "./inputs";

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

/** What an upload sends: its text as bytes (or, for a local file, no data: it is streamed), and how messages name it. */
interface UploadSource {
    data: Buffer | undefined;
    source: string;
}

/** Checks the upload still has the hash the program took (a local file may have changed since). */
async function verifyUploadSource(u: SshUpload): Promise<UploadSource> {
    const crypto = require("crypto") as typeof import("crypto");
    const data = typeof u.content === "string" ? Buffer.from(u.content, "utf8") : undefined;
    const source = data ? "the content" : u.localPath!;
    const actual = data ? crypto.createHash("sha256").update(data).digest("hex") : await sha256File(u.localPath!);
    if (actual !== u.sha256)
        throw new UploadSourceChangedError(`${source} changed since the program read it (sha256 ${actual}, expected ${u.sha256}); run again`);
    return { data, source };
}

/** Hidden, beside the target: a reader sees the old file or the whole new one, never half. */
function uploadTempPath(remotePath: string, suffix: string): string {
    const slash = remotePath.lastIndexOf("/");
    return `${remotePath.slice(0, slash + 1)}.${remotePath.slice(slash + 1)}.slotshift-upload-${suffix}`;
}

async function uploadOne(sftp: SFTPWrapper, u: SshUpload): Promise<number> {
    const crypto = require("crypto") as typeof import("crypto");
    const { data, source } = await verifyUploadSource(u);
    const tmp = uploadTempPath(u.remotePath, crypto.randomBytes(4).toString("hex"));
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
        throw new UploadFailedError(`upload of ${source} to ${u.remotePath} failed: ${(e as Error).message}`);
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
