// The `local` stack through the engine on the local host, as the engine end-to-end suites drive it:
// its config from the tracked Pulumi.local.yaml plus this host's keys and an app secret, the
// release version to deploy, `pulumi up` under a steady load through NGINX, and the release the
// site serves.
import * as assert from "assert";
import * as path from "path";
import { siteRequest, Site } from "../../../dev/site/http";
import { LoadReport, startLoad } from "../../../dev/site/load";
import { LocalHost, REPO } from "../../../dev/local-host";
import { RELEASES_DIR, STACK_FILE } from "../../../dev/site/replayed-stack";
import { EngineStack, PulumiRun, trackedConfig } from "../../../dev/engine/pulumi";

/** The stack's config from the tracked file, with this host's key, host key and the app secret. */
export async function configureLocalStack(stack: EngineStack, host: LocalHost, version: string, appSecret: string): Promise<void> {
    await stack.prepare(trackedConfig(STACK_FILE));
    await stack.set("sshPrivateKey", host.privateKey(), true);
    await stack.set("sshHostKey", host.hostKey());
    await stack.set("appEnv", `SECRET_KEY=${appSecret}\n`, true);
    await setReleaseVersion(stack, version);
}

/** releaseVersion and the archive scripts/build-example-releases.sh built for it. */
export async function setReleaseVersion(stack: EngineStack, version: string): Promise<void> {
    await stack.set("releaseVersion", version);
    await stack.set("releaseSource", path.relative(REPO, path.join(RELEASES_DIR, `${version}.tar.gz`)));
}

/**
 * Runs `pulumi up` while a steady load goes through NGINX; `hooks` see the CLI's pid and each
 * output line as it arrives (to act at a point of the deploy).
 */
export async function upUnderLoad(
    stack: EngineStack,
    site: Site,
    runId: string,
    hooks: { onLine?: (line: string) => void; onSpawn?: (pid: number) => void } = {},
): Promise<{ r: PulumiRun; load: LoadReport }> {
    const load = startLoad({ site, runId, connections: 4, rate: 40 });
    let r: PulumiRun | undefined;
    let error: unknown;
    try {
        r = await stack.up([], hooks);
    } catch (e) {
        error = e;
    }
    // Stopped in every case, so no request loop outlives the test.
    const report = await load.stop();
    if (!r) throw error;
    return { r, load: report };
}

/** The release that answers the site's front page (X-Release-Version). */
export async function servedVersion(site: Site): Promise<string> {
    const page = await siteRequest(site, "/");
    assert.strictEqual(page.status, 200, page.body.slice(0, 300));
    return String(page.headers["x-release-version"]);
}
