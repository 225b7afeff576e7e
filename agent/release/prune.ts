// Deleting old release dirs (and the static files only they referenced): never the live release,
// the previous one, or anything a slot still points at. Used by prune and by retire.
import * as fs from "fs";
import * as path from "path";
import { pruneEnvSnapshots } from "../deploy/slot-launch";
import { artifactPath, buildDir, parsePrepareTempName, prepareTempDir, SLOTS, staticManifestPath } from "../../lib/host-layout";
import { AgentContext } from "../context";
import { isProcessAlive } from "../state/lock";
import { listReleases, readManifest } from "./releases";
import { slotTarget } from "../deploy/slot-lifecycle";
import { readSlotsState, versionsInUse } from "../state/slots-file";

/** Call under the deploy lock. Returns the versions removed. */
export function pruneReleases(ctx: AgentContext, keep: number): string[] {
    const { layout, log } = ctx;
    const state = readSlotsState(layout.stateFile);
    const protectedVersions = versionsInUse(state);
    for (const slot of SLOTS) {
        const t = slotTarget(ctx, slot);
        if (t) protectedVersions.add(t);
    }
    const releases = listReleases(layout.releasesDir);
    const kept = new Set(releases.slice(0, keep).map((r) => r.version));
    for (const v of protectedVersions) kept.add(v);
    const doomed = releases.filter((r) => !kept.has(r.version));

    // Static files stay while any kept release lists them.
    const stillReferenced = new Set<string>();
    for (const r of releases) if (kept.has(r.version)) for (const f of readManifest(ctx, r.version)) stillReferenced.add(f);

    for (const r of doomed) {
        let removedFiles = 0;
        for (const f of readManifest(ctx, r.version)) {
            if (stillReferenced.has(f)) continue;
            const p = path.join(layout.staticDir, f);
            if (!p.startsWith(layout.staticDir + path.sep)) continue;
            fs.rmSync(p, { force: true });
            removeEmptyParents(path.dirname(p), layout.staticDir);
            removedFiles++;
        }
        fs.rmSync(r.dir, { recursive: true, force: true });
        fs.rmSync(buildDir(layout, r.version), { recursive: true, force: true });
        fs.rmSync(staticManifestPath(layout, r.version), { force: true });
        fs.rmSync(artifactPath(layout, r.version), { force: true });
        log.info(`pruned release ${r.version} (${removedFiles} static file(s) only it used)`);
    }
    removeDeadTemps(ctx);
    // Environments a kept release may be rolled back to stay with it (as many as releases are kept).
    const snapshots = pruneEnvSnapshots(ctx, state, keep);
    if (snapshots.length) log.info(`pruned ${snapshots.length} app environment snapshot(s) no slot uses`);
    log.info(
        `releases kept: ${
            releases
                .filter((r) => kept.has(r.version))
                .map((r) => r.version)
                .join(", ") || "(none)"
        }`,
    );
    return doomed.map((r) => r.version);
}

function removeEmptyParents(dir: string, stop: string): void {
    while (dir.startsWith(stop + path.sep)) {
        try {
            fs.rmdirSync(dir);
        } catch {
            return;
        }
        dir = path.dirname(dir);
    }
}

/** Temp dirs of prepares that died (their pid is gone). */
function removeDeadTemps(ctx: AgentContext): void {
    let names: string[] = [];
    try {
        names = fs.readdirSync(ctx.layout.releasesDir);
    } catch {
        return;
    }
    for (const name of names) {
        const temp = parsePrepareTempName(name);
        if (temp && !isProcessAlive(temp.pid)) fs.rmSync(prepareTempDir(ctx.layout, temp.version, temp.pid), { recursive: true, force: true });
    }
}
