// Release directories and their static-file manifests. A release is complete when its marker file
// exists: prepare writes it last, inside the temp dir, before the rename that publishes the release.
import * as fs from "fs";
import * as path from "path";
import { AgentContext } from "./context";
import { readJsonFile, writeFileAtomic } from "./fs-atomic";

export const RELEASE_MARKER = ".slotshift-release.json";

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
    return fs.existsSync(path.join(ctx.layout.releasesDir, version, RELEASE_MARKER));
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
            const m = readJsonFile<ReleaseMarker>(path.join(dir, RELEASE_MARKER));
            if (m) preparedAt = Date.parse(m.preparedAt) || preparedAt;
        } catch {
            // A release without a readable marker sorts by its directory time.
        }
        out.push({ version: name, dir, preparedAt });
    }
    return out.sort((a, b) => b.preparedAt - a.preparedAt || (a.version < b.version ? 1 : -1));
}

export function manifestsDir(ctx: AgentContext): string {
    return path.join(ctx.layout.deployDir, "static-manifests");
}

export function manifestPath(ctx: AgentContext, version: string): string {
    return path.join(manifestsDir(ctx), `${version}.json`);
}

export function readManifest(ctx: AgentContext, version: string): string[] {
    return readJsonFile<{ files: string[] }>(manifestPath(ctx, version))?.files ?? [];
}

export function writeManifest(ctx: AgentContext, version: string, files: string[]): void {
    writeFileAtomic(manifestPath(ctx, version), JSON.stringify({ version, files: [...files].sort() }, null, 1) + "\n");
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
