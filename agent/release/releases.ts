// Release directories and their static-file manifests. A release is complete when its marker file
// exists: prepare writes it last, inside the temp dir, before the rename that publishes the release.
import * as fs from "fs";
import * as path from "path";
import { buildDir, releaseDir, releaseMarkerIn, staticManifestPath } from "../../lib/host-layout";
import { AgentContext } from "../context";
import { AgentError } from "../common/errors";
import { realPathInside } from "./archive";
import { readJsonFile, writeFileAtomic } from "../common/fs-atomic";

export { RELEASE_MARKER } from "../../lib/host-layout";

export interface ReleaseMarker {
    version: string;
    preparedAt: string;
    source: string;
}

/**
 * Per-release cache key prefix: two releases serving at once never read each other's cached
 * objects, whose shape may differ between them.
 */
export function cacheKeyPrefix(appName: string, version: string): string {
    return `${appName}:${version}`;
}

export function isPrepared(ctx: AgentContext, version: string): boolean {
    return fs.existsSync(releaseMarkerIn(releaseDir(ctx.layout, version)));
}

export interface ReleaseEntry {
    version: string;
    dir: string;
    preparedAt: number;
}

/** Published releases, newest first. Temp dirs (".tmp-*") are not releases. */
export function listReleases(releasesDir: string): ReleaseEntry[] {
    let names: string[];
    try {
        names = fs.readdirSync(releasesDir);
    } catch {
        return [];
    }
    const out: ReleaseEntry[] = [];
    for (const name of names) {
        if (name.startsWith(".")) continue;
        const dir = path.join(releasesDir, name);
        let st: fs.Stats;
        try {
            st = fs.statSync(dir);
        } catch {
            continue;
        }
        if (!st.isDirectory()) continue;
        let preparedAt = st.mtimeMs;
        try {
            const m = readJsonFile<ReleaseMarker>(releaseMarkerIn(dir));
            if (m) preparedAt = Date.parse(m.preparedAt) || preparedAt;
        } catch {
            // A release without a readable marker sorts by its directory time.
        }
        out.push({ version: name, dir, preparedAt });
    }
    return out.sort((a, b) => b.preparedAt - a.preparedAt || (a.version < b.version ? 1 : -1));
}

export function readManifest(ctx: AgentContext, version: string): string[] {
    return readJsonFile<{ files: string[] }>(staticManifestPath(ctx.layout, version))?.files ?? [];
}

function writeManifest(ctx: AgentContext, version: string, files: string[]): void {
    writeFileAtomic(staticManifestPath(ctx.layout, version), JSON.stringify({ version, files: [...files].sort() }, null, 1) + "\n");
}

/** Every regular file below dir, as paths relative to it; symlinks are neither followed nor listed. */
function walkFiles(dir: string, rel = ""): string[] {
    let entries: fs.Dirent[];
    try {
        entries = fs.readdirSync(path.join(dir, rel), { withFileTypes: true });
    } catch {
        return [];
    }
    const out: string[] = [];
    for (const e of entries) {
        const r = rel ? `${rel}/${e.name}` : e.name;
        if (e.isDirectory()) out.push(...walkFiles(dir, r));
        else if (e.isFile()) out.push(r);
    }
    return out;
}

/**
 * Shared paths (media, .env) replace whatever the artifact had under those names. Only in a tree
 * root owns (a release being prepared, or a prepared one): nothing here is app-writable.
 */
export function linkShared(ctx: AgentContext, dir: string, gid?: number): void {
    for (const [name, target] of Object.entries(ctx.settings.release.sharedLinks)) {
        const p = path.join(dir, name);
        const parent = realPathInside(path.dirname(p), [fs.realpathSync(dir)]);
        if (!parent) throw new AgentError(`${name}: its parent directory in ${dir} resolves outside the release`);
        let current: string | undefined;
        try {
            current = fs.readlinkSync(p);
        } catch {
            current = undefined;
        }
        if (current === target) continue;
        fs.rmSync(p, { recursive: true, force: true });
        fs.mkdirSync(path.dirname(p), { recursive: true });
        fs.symlinkSync(target, p);
        if (gid !== undefined) fs.lchownSync(p, 0, gid);
    }
}

/**
 * The static source dirs of a release: <release>/<staticSubdir> and <build>/<staticSubdir>, each
 * only when it really lies inside its own tree (a `static -> /elsewhere` link would otherwise
 * make root copy whatever it points at into the directory NGINX serves).
 */
export function staticSources(ctx: AgentContext, version: string, releaseDir: string): string[] {
    const out: string[] = [];
    const trees = [releaseDir, buildDir(ctx.layout, version)];
    for (const tree of trees) {
        let realTree: string;
        try {
            realTree = fs.realpathSync(tree);
        } catch {
            continue;
        }
        const src = path.join(tree, ctx.settings.release.staticSubdir);
        try {
            fs.lstatSync(src);
        } catch {
            continue;
        }
        const real = realPathInside(src, [realTree]);
        if (!real) {
            throw new AgentError(
                `${path.relative(ctx.layout.appRoot, src)} resolves outside its release (${fs.readlinkSync(src)}); static files are only taken from inside it`,
            );
        }
        if (fs.statSync(real).isDirectory()) out.push(real);
    }
    return out;
}

/** The static files of a release: relative path -> the real file it is copied from (the build's win). */
function staticFiles(ctx: AgentContext, version: string, releaseDir: string): Map<string, string> {
    const files = new Map<string, string>();
    for (const src of staticSources(ctx, version, releaseDir)) for (const rel of walkFiles(src)) files.set(rel, path.join(src, rel));
    return files;
}

/**
 * Copies the release's static files into the shared static dir, which holds the files of every
 * kept release side by side (an old page still finds its assets). Each file lands via temp+rename
 * so NGINX never serves a half-written one. The manifest lets prune remove only this release's files.
 * Nothing is followed: sources are opened O_NOFOLLOW below a real source dir, temp files created
 * O_EXCL|O_NOFOLLOW.
 */
export function mergeStatic(ctx: AgentContext, version: string, releaseDir: string): void {
    const files = staticFiles(ctx, version, releaseDir);
    let copied = 0;
    for (const [rel, from] of files) {
        const to = path.join(ctx.layout.staticDir, rel);
        const data = readNoFollow(from);
        if (data === undefined) continue;
        if (sameContent(data, to)) continue;
        fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o755 });
        const tmp = `${to}.tmp-${process.pid}`;
        fs.rmSync(tmp, { force: true });
        const fd = fs.openSync(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
        try {
            fs.writeFileSync(fd, data);
            fs.fchmodSync(fd, 0o644);
        } finally {
            fs.closeSync(fd);
        }
        fs.renameSync(tmp, to);
        copied++;
    }
    writeManifest(ctx, version, [...files.keys()]);
    ctx.log.info(`static: ${files.size} file(s) of ${version} in ${ctx.layout.staticDir} (${copied} copied)`);
}

/** A regular file's bytes, never through a symlink; undefined for anything else. */
function readNoFollow(file: string): Buffer | undefined {
    let fd: number;
    try {
        fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    } catch {
        return undefined;
    }
    try {
        return fs.fstatSync(fd).isFile() ? fs.readFileSync(fd) : undefined;
    } finally {
        fs.closeSync(fd);
    }
}

function sameContent(data: Buffer, file: string): boolean {
    const current = readNoFollow(file);
    return current !== undefined && current.equals(data);
}

/** Writes the marker into a root-owned release dir: a new file, never through a link the archive brought. */
export function writeReleaseMarker(dir: string, marker: ReleaseMarker): void {
    const file = releaseMarkerIn(dir);
    let fd: number;
    try {
        fd = fs.openSync(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
    } catch (e) {
        throw new AgentError(`cannot create ${file} (${(e as NodeJS.ErrnoException).code}): something else already has its name`);
    }
    try {
        fs.writeFileSync(fd, JSON.stringify(marker) + "\n");
        fs.fchmodSync(fd, 0o644);
    } finally {
        fs.closeSync(fd);
    }
}
