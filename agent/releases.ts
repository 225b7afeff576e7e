// Release directories and their static-file manifests. A release is complete when its marker file
// exists: prepare writes it last, inside the temp dir, before the rename that publishes the release.
import * as fs from "fs";
import * as path from "path";
import { releaseDir, releaseMarkerIn, staticManifestPath } from "../lib/host-layout";
import { AgentContext } from "./context";
import { readJsonFile, writeFileAtomic } from "./fs-atomic";

export { RELEASE_MARKER } from "../lib/host-layout";

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

export function writeManifest(ctx: AgentContext, version: string, files: string[]): void {
    writeFileAtomic(staticManifestPath(ctx.layout, version), JSON.stringify({ version, files: [...files].sort() }, null, 1) + "\n");
}

/** Every file below dir, as paths relative to it. */
export function walkFiles(dir: string, rel = ""): string[] {
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

/** Shared paths (media, .env) replace whatever the artifact had under those names. */
export function linkShared(ctx: AgentContext, dir: string): void {
    for (const [name, target] of Object.entries(ctx.settings.release.sharedLinks)) {
        const p = path.join(dir, name);
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
    }
}

/**
 * Copies the release's static files into the shared static dir, which holds the files of every
 * kept release side by side (an old page still finds its assets). Each file lands via temp+rename
 * so NGINX never serves a half-written one. The manifest lets prune remove only this release's files.
 */
export function mergeStatic(ctx: AgentContext, version: string, releaseDir: string): void {
    const src = path.join(releaseDir, ctx.settings.release.staticSubdir);
    const files = walkFiles(src);
    let copied = 0;
    for (const rel of files) {
        const from = path.join(src, rel);
        const to = path.join(ctx.layout.staticDir, rel);
        if (sameContent(from, to)) continue;
        fs.mkdirSync(path.dirname(to), { recursive: true, mode: 0o755 });
        const tmp = `${to}.tmp-${process.pid}`;
        fs.copyFileSync(from, tmp);
        fs.chmodSync(tmp, 0o644);
        fs.renameSync(tmp, to);
        copied++;
    }
    writeManifest(ctx, version, files);
    ctx.log.info(`static: ${files.length} file(s) of ${version} in ${ctx.layout.staticDir} (${copied} copied)`);
}

function sameContent(a: string, b: string): boolean {
    try {
        const sa = fs.statSync(a);
        const sb = fs.statSync(b);
        if (sa.size !== sb.size) return false;
        return fs.readFileSync(a).equals(fs.readFileSync(b));
    } catch {
        return false;
    }
}
