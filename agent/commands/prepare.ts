// prepare VERSION --source PATH|URL [--sha256 HEX]: check the archive is the one the version stands
// for (release-integrity.ts), unpack into releases/VERSION, link shared dirs, run the build
// and check commands (as the app user), merge static files. Work happens in a temp dir renamed into
// place at the end, so a failed or interrupted run leaves nothing half-made and a re-run converges.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { PrepareRequest } from "../../lib/agent-contract";
import { artifactPath, parsePrepareTempName, prepareTempDir, RELEASE_MARKER, releaseDir as releaseDirOf, releaseMarkerIn } from "../../lib/host-layout";
import { appOwner, buildEnv } from "../app-user";
import { AgentContext } from "../context";
import { download, redactUrl } from "../download";
import { AgentError, UsageError } from "../errors";
import { isProcessAlive } from "../lock";
import { seconds } from "../log";
import { isPrepared, linkShared, mergeStatic, ReleaseMarker } from "../releases";
import {
    DownloadLimits,
    downloadLimits,
    expectedDigest,
    recordDigest,
    refuseChangedVersion,
    resolveSource,
    sha256OfFile,
    verifyArchive,
} from "../release-integrity";
import { runChecked } from "../run-command";

export async function prepareCommand(ctx: AgentContext, req: PrepareRequest): Promise<void> {
    const { version } = req;
    const source = await resolveSource(req);
    const t0 = Date.now();
    const { layout, log, settings } = ctx;
    const owner = appOwner(ctx);
    for (const dir of [layout.releasesDir, layout.sharedDir, layout.staticDir, layout.slotsDir, layout.deployDir, layout.artifactsDir]) {
        fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    }
    if (!fs.existsSync(layout.mediaDir)) {
        fs.mkdirSync(layout.mediaDir, { recursive: true, mode: 0o750 });
        if (owner) fs.chownSync(layout.mediaDir, owner.uid, owner.gid);
    }
    const releaseDir = releaseDirOf(layout, version);
    const sha256 = await expectedDigest(req, source);
    refuseChangedVersion(ctx, version, sha256);

    if (isPrepared(ctx, version)) {
        recordDigest(ctx, version, sha256);
        log.info(`release ${version} is already prepared; refreshing shared links and static files`);
        linkShared(ctx, releaseDir);
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
    fs.mkdirSync(tmp, { mode: 0o755 });
    try {
        log.info(`unpacking ${path.basename(archive)} into releases/${version}`);
        const tar = spawnSync("tar", ["-xzf", archive, "-C", tmp, "--no-same-owner", "--no-overwrite-dir"], { encoding: "utf8" });
        if (tar.status !== 0)
            throw new AgentError(`unpacking ${archive} failed: ${(tar.stderr || tar.error?.message || "").trim().split("\n").slice(-2).join(" / ")}`);
        if (owner) chownTree(tmp, owner.uid, owner.gid);
        linkShared(ctx, tmp);

        const env = buildEnv(ctx, version, owner?.home);
        const asUser = owner ? layout.appUser : undefined;
        if (settings.release.buildCommand) {
            log.info(`build: ${settings.release.buildCommand}${asUser ? ` (as ${asUser})` : ""}`);
            await runChecked("build command", settings.release.buildCommand, { cwd: tmp, env, asUser, log, timeoutMs: 3_600_000 });
        }
        if (settings.release.checkCommand) {
            log.info(`check: ${settings.release.checkCommand}${asUser ? ` (as ${asUser})` : ""}`);
            await runChecked("check command", settings.release.checkCommand, { cwd: tmp, env, asUser, log, timeoutMs: 3_600_000 });
        }
        const marker: ReleaseMarker = { version, preparedAt: new Date().toISOString(), source: /^https:/.test(source) ? redactUrl(source) : source };
        fs.writeFileSync(releaseMarkerIn(tmp), JSON.stringify(marker) + "\n", { mode: 0o644 });
        fs.renameSync(tmp, releaseDir);
        recordDigest(ctx, version, sha256);
    } catch (e) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw e;
    }
    mergeStatic(ctx, version, releaseDir);
    log.info(`release ${version} prepared in ${seconds(Date.now() - t0)}`);
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

function chownTree(dir: string, uid: number, gid: number): void {
    fs.lchownSync(dir, uid, gid);
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) chownTree(p, uid, gid);
        else fs.lchownSync(p, uid, gid);
    }
}
