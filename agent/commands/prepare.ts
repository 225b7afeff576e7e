// prepare VERSION --source PATH|URL [--sha256 HEX]: check the archive is the one the version stands
// for (release-integrity.ts), check every archive member, unpack into releases/VERSION
// (root-owned, read-only to the app), link shared dirs, run the build and check commands as the app
// user in transient units (writing only builds/VERSION), check and seal what the build left, merge
// static files. Work happens in a temp dir renamed into place at the end, so a failed or
// interrupted run leaves nothing half-made and a re-run converges.
import * as fs from "fs";
import * as path from "path";
import { PrepareRequest } from "../../lib/contract/commands";
import { artifactPath, buildDir, parsePrepareTempName, prepareTempDir, RELEASE_MARKER, releaseDir as releaseDirOf } from "../../lib/host-layout";
import { appOwner, appProcessBase, releaseEnv } from "../processes/app-process";
import { AgentContext } from "../context";
import { download, redactUrl } from "../release/download";
import { AgentError, UsageError } from "../common/errors";
import { isProcessAlive } from "../state/lock";
import { seconds } from "../common/log";
import { checkTree, extractChecked, sealTree } from "../release/archive";
import { isPrepared, linkShared, mergeStatic, ReleaseMarker, staticSources, writeReleaseMarker } from "../release/releases";
import {
    DownloadLimits,
    downloadLimits,
    expectedDigest,
    recordDigest,
    refuseChangedVersion,
    resolveSource,
    sha256OfFile,
    verifyArchive,
} from "../release/integrity";
import { describeExit } from "../common/run-command";
import { runAppProcess } from "../processes/transient-unit";

export async function prepareCommand(ctx: AgentContext, req: PrepareRequest): Promise<void> {
    const { version } = req;
    const source = await resolveSource(req);
    const t0 = Date.now();
    const { layout, log, settings } = ctx;
    const owner = appOwner(ctx);
    for (const dir of [layout.releasesDir, layout.sharedDir, layout.staticDir, layout.slotsDir, layout.deployDir, layout.artifactsDir, layout.buildsDir]) {
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    }
    if (!fs.existsSync(layout.mediaDir)) {
        fs.mkdirSync(layout.mediaDir, { recursive: true, mode: 0o750 });
        if (owner) fs.chownSync(layout.mediaDir, owner.uid, owner.gid);
    }
    const releaseDir = releaseDirOf(layout, version);
    const sha256 = await expectedDigest(req, source);
    refuseChangedVersion(ctx, version, sha256);
    const build = buildDir(layout, version);

    if (isPrepared(ctx, version)) {
        recordDigest(ctx, version, sha256);
        log.info(`release ${version} is already prepared; refreshing shared links and static files`);
        linkShared(ctx, releaseDir, owner?.gid);
        mergeStatic(ctx, version, releaseDir);
        return;
    }
    if (fs.existsSync(releaseDir)) {
        // Not made by prepare (no marker): never build on top of unknown content.
        throw new AgentError(`${releaseDir} exists but is not a prepared release (no ${RELEASE_MARKER}); remove it and re-run`);
    }
    removeLeftoverTemps(ctx, version);

    const archive = await fetchArtifact(ctx, version, source, sha256, downloadLimits(req));
    await verifyArchive(archive, sha256, `the archive of ${version}`);
    const tmp = prepareTempDir(layout, version, process.pid);
    // Root-only while root unpacks and checks it; the app's group may read it once it is sealed.
    fs.mkdirSync(tmp, { mode: 0o700 });
    try {
        log.info(`unpacking ${path.basename(archive)} into releases/${version}`);
        const sharedNames = Object.keys(settings.release.sharedLinks);
        extractChecked(archive, tmp, { reserved: [RELEASE_MARKER], linkedOut: sharedNames });
        checkTree(tmp, { links: "inside", linkRoots: [fs.realpathSync(tmp)] });
        sealTree(tmp, owner?.gid);
        linkShared(ctx, tmp, owner?.gid);
        openTo(tmp, owner?.gid);

        // The build writes only here: an app-owned dir of its own, reachable through $SLOTSHIFT_BUILD_DIR.
        fs.rmSync(build, { recursive: true, force: true });
        fs.mkdirSync(build, { mode: 0o750 });
        if (owner) fs.chownSync(build, owner.uid, owner.gid);
        const step = { ...appProcessBase(ctx), cwd: tmp, env: releaseEnv(ctx, version), readWritePaths: [build], timeoutMs: STEP_TIMEOUT_MS };
        for (const [what, command] of [
            ["build", settings.release.buildCommand],
            ["check", settings.release.checkCommand],
        ] as const) {
            if (!command) continue;
            log.info(`${what}: ${command}${owner ? ` (as ${layout.appUser})` : ""}`);
            const r = await runAppProcess({ ...step, purpose: what, command });
            if (r.code !== 0) {
                const last = r.tail.trim().split("\n").slice(-3).join(" / ");
                throw new AgentError(`${what} command failed (${describeExit(r, STEP_TIMEOUT_MS)}): ${command}${last ? ` — ${last}` : ""}`);
            }
        }
        // What the build left is the app user's work: root-only first (nothing of the app can
        // reach it any more), then held to the same rules as the archive, then sealed like it.
        fs.chmodSync(build, 0o700);
        if (owner) fs.lchownSync(build, 0, 0);
        checkTree(build, { links: "any", linkRoots: [] });
        sealTree(build, owner?.gid);
        openTo(build, owner?.gid);
        // Refuses a static dir that leads out of the release before anything is published.
        staticSources(ctx, version, tmp);

        const marker: ReleaseMarker = { version, preparedAt: new Date().toISOString(), source: /^https:/.test(source) ? redactUrl(source) : source };
        writeReleaseMarker(tmp, marker);
        fs.renameSync(tmp, releaseDir);
        recordDigest(ctx, version, sha256);
    } catch (e) {
        fs.rmSync(tmp, { recursive: true, force: true });
        fs.rmSync(build, { recursive: true, force: true });
        throw e;
    }
    mergeStatic(ctx, version, releaseDir);
    log.info(`release ${version} prepared in ${seconds(Date.now() - t0)}`);
}

/** Build and check may each take this long; then their unit (or process group) is killed. */
const STEP_TIMEOUT_MS = 3_600_000;

/** A sealed tree's top: root's, readable and traversable by the app's group. */
function openTo(dir: string, gid: number | undefined): void {
    fs.chmodSync(dir, 0o750);
    if (gid !== undefined) fs.lchownSync(dir, 0, gid);
}

function removeLeftoverTemps(ctx: AgentContext, version: string): void {
    for (const name of fs.readdirSync(ctx.layout.releasesDir)) {
        const temp = parsePrepareTempName(name);
        if (!temp || temp.version !== version) continue;
        if (isProcessAlive(temp.pid)) throw new AgentError(`release ${version} is being prepared by pid ${temp.pid}`);
        ctx.log.info(`removing ${name} left by an interrupted prepare`);
        fs.rmSync(prepareTempDir(ctx.layout, version, temp.pid), { recursive: true, force: true });
    }
}

async function fetchArtifact(ctx: AgentContext, version: string, source: string, sha256: string, limits: DownloadLimits): Promise<string> {
    if (/^https:\/\//.test(source)) {
        const dest = artifactPath(ctx.layout, version);
        if (fs.existsSync(dest) && (await sha256OfFile(dest)) === sha256) {
            ctx.log.info(`artifact ${path.basename(dest)} already downloaded`);
            return dest;
        }
        ctx.log.info(`downloading ${redactUrl(source)}`);
        await download(source, dest, ctx.log, limits);
        return dest;
    }
    if (/^[a-z]+:\/\//i.test(source)) throw new UsageError(`--source must be a local .tar.gz path or an https:// URL`);
    if (!fs.existsSync(source)) throw new AgentError(`artifact ${source} does not exist`);
    return path.resolve(source);
}
