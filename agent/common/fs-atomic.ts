// Writes that readers never see half done: temp file in the same directory, fsync, rename.
import * as fs from "fs";
import * as path from "path";

function tempName(target: string): string {
    return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`);
}

export interface WriteOptions {
    mode?: number;
    /** chown the file before it appears under its name (only possible as root). */
    owner?: { uid: number; gid: number };
}

export function writeFileAtomic(target: string, data: string | Buffer, opts: WriteOptions = {}): void {
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const tmp = tempName(target);
    const fd = fs.openSync(tmp, "wx", opts.mode ?? 0o644);
    try {
        fs.writeFileSync(fd, data);
        // openSync's mode is filtered by the umask; secrets must end up exactly as asked.
        if (opts.mode !== undefined) fs.fchmodSync(fd, opts.mode);
        if (opts.owner) fs.fchownSync(fd, opts.owner.uid, opts.owner.gid);
        fs.fsyncSync(fd);
    } catch (e) {
        fs.closeSync(fd);
        fs.rmSync(tmp, { force: true });
        throw e;
    }
    fs.closeSync(fd);
    fs.renameSync(tmp, target);
    fsyncDir(path.dirname(target));
}

/** Replaces (or creates) a symlink atomically: readers see the old target or the new one, never none. */
export function symlinkAtomic(target: string, linkPath: string): void {
    fs.mkdirSync(path.dirname(linkPath), { recursive: true });
    const tmp = tempName(linkPath);
    fs.symlinkSync(target, tmp);
    fs.renameSync(tmp, linkPath);
    fsyncDir(path.dirname(linkPath));
}

function fsyncDir(dir: string): void {
    try {
        const fd = fs.openSync(dir, "r");
        try {
            fs.fsyncSync(fd);
        } finally {
            fs.closeSync(fd);
        }
    } catch {
        // Some filesystems refuse fsync on directories; the rename itself is still atomic.
    }
}

export function readJsonFile<T>(file: string): T | undefined {
    let text: string;
    try {
        text = fs.readFileSync(file, "utf8");
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw e;
    }
    return JSON.parse(text) as T;
}

export function readLinkOrUndefined(link: string): string | undefined {
    try {
        return fs.readlinkSync(link);
    } catch {
        return undefined;
    }
}
