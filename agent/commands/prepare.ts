// prepare VERSION --source PATH|URL: unpack into releases/VERSION, link shared dirs, run the build
// and check commands (as the app user), merge static files. Work happens in a temp dir renamed into
// place at the end, so a failed or interrupted run leaves nothing half-made and a re-run converges.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { checkFlags, ParsedArgs, stringFlag } from "../cli-args";
import { AgentContext } from "../context";
import { download, redactUrl } from "../download";
import { parseSystemdEnvFile } from "../../lib/env-lines";
import { AgentError, UsageError } from "../errors";
import { isProcessAlive } from "../lock";
import { seconds } from "../log";
import { cacheKeyPrefix, isPrepared, RELEASE_MARKER, ReleaseMarker, walkFiles, writeManifest } from "../releases";
import { isRoot, lookupUser, runChecked } from "../run-command";
import { checkVersion } from "../settings";

export async function prepareCommand(ctx: AgentContext, args: ParsedArgs): Promise<void> {
    checkFlags(args, ["version", "source"]);
    const version = checkVersion(stringFlag(args, "version") ?? args.positionals[0]);
    const source = stringFlag(args, "source") ?? args.positionals[stringFlag(args, "version") ? 0 : 1];
    if (!source) throw new UsageError("missing --source PATH|URL");
    await prepareRelease(ctx, version, source);
}

export async function prepareRelease(ctx: AgentContext, version: string, source: string): Promise<void> {
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
    const releaseDir = path.join(layout.releasesDir, version);

    if (isPrepared(ctx, version)) {
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

    const archive = await fetchArtifact(ctx, version, source);
    const tmp = path.join(layout.releasesDir, `.tmp-${version}-${process.pid}`);
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
        fs.writeFileSync(path.join(tmp, RELEASE_MARKER), JSON.stringify(marker) + "\n", { mode: 0o644 });
        fs.renameSync(tmp, releaseDir);
    } catch (e) {
        fs.rmSync(tmp, { recursive: true, force: true });
        throw e;
    }
    mergeStatic(ctx, version, releaseDir);
    log.info(`release ${version} prepared in ${seconds(Date.now() - t0)}`);
}

export interface Owner {
    uid: number;
    gid: number;
    home?: string;
}

/** The app user, when the agent runs as root (it must exist then); undefined otherwise. */
export function appOwner(ctx: AgentContext): Owner | undefined {
    if (!isRoot()) return undefined;
    const u = lookupUser(ctx.layout.appUser);
    if (!u) throw new AgentError(`the app user ${ctx.layout.appUser} does not exist on this host (host setup creates it)`);
    return u;
}

function removeLeftoverTemps(ctx: AgentContext, version: string): void {
    const prefix = `.tmp-${version}-`;
    for (const name of fs.readdirSync(ctx.layout.releasesDir)) {
        if (!name.startsWith(prefix)) continue;
        const pid = Number(name.slice(prefix.length));
        if (isProcessAlive(pid)) throw new AgentError(`release ${version} is being prepared by pid ${pid}`);
        ctx.log.info(`removing ${name} left by an interrupted prepare`);
        fs.rmSync(path.join(ctx.layout.releasesDir, name), { recursive: true, force: true });
    }
}

async function fetchArtifact(ctx: AgentContext, version: string, source: string): Promise<string> {
    if (/^https:\/\//.test(source)) {
        const dest = path.join(ctx.layout.artifactsDir, `${version}.tar.gz`);
        if (fs.existsSync(dest)) {
            ctx.log.info(`artifact ${path.basename(dest)} already downloaded`);
            return dest;
        }
        ctx.log.info(`downloading ${redactUrl(source)}`);
        await download(source, dest, ctx.log);
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
 * Build/check/migrate environment: a clean PATH, the app's shared env (secrets are never printed),
 * the version and its cache key prefix.
 */
export function buildEnv(ctx: AgentContext, version: string, home?: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        LANG: process.env.LANG ?? "C.UTF-8",
        HOME: home ?? process.env.HOME ?? "/",
    };
    try {
        for (const [k, v] of parseSystemdEnvFile(fs.readFileSync(ctx.layout.envFile, "utf8"))) env[k] = v;
    } catch {
        // No env file yet (write-env runs after the first prepare): build without it.
    }
    env.RELEASE_VERSION = version;
    env.CACHE_KEY_PREFIX = cacheKeyPrefix(ctx.settings.appName, version);
    return env;
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
