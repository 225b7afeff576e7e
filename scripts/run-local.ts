// `npm run local`: the main job on this machine, as root. Installs the Debian packages, provides the
// Pulumi toolchain (scripts/pulumi-toolchain.sh), builds the example releases, boots the local
// Debian 12 host (scripts/local-host.sh, state in .local/host), then runs the `local` stack through
// the real engine: `pulumi up` of v1, then `pulumi up` of v2 while a constant load goes through
// NGINX, with the shift's progress streamed, and a summary at the end.
//
// Every run does the same two deploys, v1 then v2, so a second run converges to the same end
// state and shows the v1 -> v2 shift again: when v2 is live from an earlier run, the first `up`
// shifts back to v1 (under load too, since the site is serving), then the second one to v2.
//
// Pulumi's files live in .local/pulumi/ (git-ignored): the file backend (state/), PULUMI_HOME
// (home/), a generated passphrase (passphrase, 0600) and the stack's config file
// (Pulumi.local.yaml): the tracked Pulumi.local.yaml's values, rewritten on every run, plus the
// salt and the encrypted secrets (the host's SSH key, its host key, a generated SECRET_KEY). The
// tracked Pulumi.local.yaml is never written.
//
//   npm run local                       the two deploys and the summary
//   npm run local -- pulumi ARGS...     any pulumi command on the local stack, e.g.
//                                       `npm run local -- pulumi preview --diff`
//
// The engine runs at a low CPU and IO priority (dev/engine/low-priority.ts), as if it ran on
// another machine as in production, and the output says which mechanism took effect.
//
// The host keeps running afterwards (https://shop.localhost/, curl -k); `scripts/local-host.sh stop`
// powers it off. Environment: SLOTSHIFT_LOCAL_DIR (host state dir, default .local/host),
// SLOTSHIFT_SSH_PORT (default 2222), PULUMI_CONFIG_PASSPHRASE(_FILE) (default: the generated one).
import { spawn } from "child_process";
import * as crypto from "crypto";
import * as path from "path";
import { EnginePriority, enginePriority } from "../dev/engine/low-priority";
import { EngineStack, parseShiftTimes, provideToolchain, PulumiRun, trackedConfig } from "../dev/engine/pulumi";
import { siteRequest, Site } from "../dev/site/http";
import { describeLoad, LoadReport, RunningLoad, startLoad } from "../dev/site/load";
import { LOCAL_HOST_SCRIPT, LocalHost, REPO, run } from "../dev/local-host";
import { localStackSettings, RELEASES_DIR, STACK_FILE } from "../dev/site/replayed-stack";

const PULUMI_DIR = path.join(REPO, ".local", "pulumi");
const HOST_DIR = path.resolve(process.env.SLOTSHIFT_LOCAL_DIR ?? path.join(REPO, ".local", "host"));
const STACK = "local";

const say = (line: string) => console.log(line);
const header = (title: string) => say(`\n==> ${title}`);
const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

class Failure extends Error {}

/** Each step's short name and duration, for the summary. */
const timings: [string, number][] = [];
async function timed<T>(name: string, title: string, fn: () => Promise<T>): Promise<T> {
    header(title);
    const started = Date.now();
    try {
        return await fn();
    } finally {
        timings.push([name, Date.now() - started]);
    }
}

/** Runs a program with its output shown as it comes; fails with its exit code. */
async function sh(file: string, args: string[], env?: NodeJS.ProcessEnv): Promise<void> {
    const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(file, args, { cwd: REPO, env: env ?? process.env, stdio: ["ignore", "inherit", "inherit"] });
        child.on("error", reject);
        child.on("close", resolve);
    });
    if (code !== 0) throw new Failure(`${path.basename(file)} ${args.join(" ")} exited ${code}`);
}

function engine(bin: string, priority: EnginePriority, onLine?: (line: string) => void): EngineStack {
    return new EngineStack({ stack: STACK, dir: PULUMI_DIR, bin, onLine, priority });
}

async function setVersion(stack: EngineStack, version: string): Promise<void> {
    await stack.set("releaseVersion", version);
    await stack.set("releaseSource", path.relative(REPO, path.join(RELEASES_DIR, `${version}.tar.gz`)));
}

/** Load figures so far, one line, every few seconds while a deploy runs. */
function ticker(load: RunningLoad, started: number): NodeJS.Timeout {
    return setInterval(() => {
        const byVersion: Record<string, number> = {};
        let failed = 0;
        for (const s of load.samples) {
            byVersion[s.version] = (byVersion[s.version] ?? 0) + 1;
            if (s.error !== undefined || s.status >= 500) failed++;
        }
        const versions = Object.entries(byVersion)
            .map(([v, n]) => `${v} ${n}`)
            .join(", ");
        say(`   [load ${Math.round((Date.now() - started) / 1000)}s] ${load.samples.length} requests, ${failed} failed; answered by ${versions || "-"}`);
    }, 5000);
}

/** `pulumi up`, optionally under load; streams everything. */
async function up(stack: EngineStack, site: Site, withLoad: boolean): Promise<{ r: PulumiRun; load?: LoadReport }> {
    const started = Date.now();
    const load = withLoad ? startLoad({ site, runId: `local-${started}`, connections: 4, rate: 40 }) : undefined;
    const tick = load ? ticker(load, started) : undefined;
    let r: PulumiRun | undefined;
    let error: unknown;
    try {
        r = await stack.up();
    } catch (e) {
        error = e;
    }
    if (tick) clearInterval(tick);
    const report = await load?.stop();
    if (!r) throw error;
    return { r, load: report };
}

/** The release the site answers with, or why it does not answer. */
async function servedVersion(site: Site): Promise<{ serving: boolean; what: string }> {
    try {
        const page = await siteRequest(site, "/", { timeoutMs: 5000 });
        return page.status === 200
            ? { serving: true, what: String(page.headers["x-release-version"] ?? "?") }
            : { serving: false, what: `HTTP ${page.status}` };
    } catch (e) {
        return { serving: false, what: `no answer (${(e as Error).message})` };
    }
}

async function deploy(): Promise<number> {
    if (process.getuid?.() !== 0) throw new Failure("run as root: the local host is a systemd-nspawn container (sudo npm run local)");
    const settings = localStackSettings();
    const site: Site = { domain: settings.domain, httpsPort: settings.httpsPort };

    await timed("packages", "Debian packages (scripts/install-deps.sh)", () => sh("bash", [path.join(REPO, "scripts", "install-deps.sh")]));
    const bin = await timed("toolchain", "Pulumi toolchain (scripts/pulumi-toolchain.sh)", () => provideToolchain((line) => say(`    ${line}`)));
    await timed("releases", "example releases v1, v2, v3", () => sh("bash", [path.join(REPO, "scripts", "build-example-releases.sh"), RELEASES_DIR]));

    const host = new LocalHost({ stateDir: HOST_DIR });
    await timed("host", `local host (${path.relative(REPO, HOST_DIR)})`, async () => {
        const r = await run(LOCAL_HOST_SCRIPT, ["start"], {
            env: { ...process.env, SLOTSHIFT_LOCAL_DIR: HOST_DIR, SLOTSHIFT_SSH_PORT: String(host.sshPort) },
            echo: true,
        });
        if (r.code !== 0) throw new Failure("scripts/local-host.sh start failed");
    });

    // Here the engine shares the machine with the host it deploys to; in production it runs elsewhere.
    const priority = enginePriority();
    const stack = engine(bin, priority, (line) => say(line));
    const liveBefore = await timed("stack", `stack ${STACK} (${path.relative(REPO, PULUMI_DIR)})`, async () => {
        const { created } = await stack.prepare(trackedConfig(STACK_FILE));
        say(created ? `    created stack ${STACK} (file backend, passphrase secrets)` : `    stack ${STACK} exists; config rewritten from Pulumi.local.yaml`);
        // The host's identity comes from its state dir; a recreated host has a new host key.
        await stack.set("sshPrivateKey", host.privateKey(), true);
        await stack.set("sshHostKey", host.hostKey());
        if (host.sshPort !== settings.sshPort) await stack.set("sshPort", String(host.sshPort));
        if (!(await stack.get("appEnv"))) {
            await stack.set("appEnv", `SECRET_KEY=${crypto.randomBytes(32).toString("hex")}\n`, true);
            say("    generated the app's SECRET_KEY (secret appEnv)");
        }
        const live = (await stack.outputs().catch(() => ({}) as Record<string, unknown>)).liveVersion;
        const site0 = await servedVersion(site);
        say(`    live version: ${typeof live === "string" ? live : "none yet"} (stack output); the site answers ${site0.what}`);
        say(`    the engine runs at a low priority, as if on another machine: ${priority.description}`);
        return { version: typeof live === "string" ? live : undefined, serving: site0.serving };
    });

    // 1. v1. On a site that already serves (a second run) this is a shift too, so under load as well.
    await setVersion(stack, "v1");
    const title =
        liveBefore.version === undefined
            ? "pulumi up: v1 (first deploy)"
            : liveBefore.version === "v1"
              ? "pulumi up: v1 (already live; converges)"
              : `pulumi up: back to v1 (${liveBefore.version} is live from an earlier run)`;
    const first = await timed("up v1", title, () => up(stack, site, liveBefore.serving));
    if (first.r.code !== 0) throw new Failure(`pulumi up of v1 failed (exit ${first.r.code}); its output is above`);
    if (first.load && first.load.failed.length > 0)
        throw new Failure(`${first.load.failed.length} request(s) failed during the shift back to v1: ${describeLoad(first.load)}`);

    // 2. v2 under a constant load through NGINX.
    await setVersion(stack, "v2");
    const second = await timed("up v2", "pulumi up: v2 under constant load through NGINX", () => up(stack, site, true));
    const outputs = await stack.outputs().catch(() => ({}) as Record<string, unknown>);
    const served = await servedVersion(site);

    header("summary");
    const load = second.load!;
    const times = parseShiftTimes(second.r.out, "v2");
    const byVersion = Object.entries(load.byVersion)
        .map(([v, n]) => `${v} ${n}`)
        .join(", ");
    say(`    pulumi up v2      ${second.r.code === 0 ? "succeeded" : `FAILED (exit ${second.r.code})`} in ${secs(second.r.ms)}`);
    say(`    requests          ${load.requests} in ${load.durationS.toFixed(1)} s (answered by ${byVersion})`);
    say(`    failed requests   ${load.failed.length}${load.failed.length ? `: ${describeLoad(load).split("\n").slice(1).join(" ")}` : ""}`);
    say(`    p99 latency       ${load.p99Ms} ms`);
    say(
        `    shift duration    ${times ? `${times.totalS} s (readiness ${times.healthS} s, weight steps ${times.shiftS} s, drain ${times.drainS} s)` : "unknown (no closing line from the agent)"}`,
    );
    say(`    live version      ${String(outputs.liveVersion ?? "?")} (stack output); the site answers ${served.what}`);
    if (first.load) say(`    back to v1 first  ${first.load.requests} requests, ${first.load.failed.length} failed, p99 ${first.load.p99Ms} ms`);
    say(`    engine priority   ${priority.description}`);
    say(`    steps             ${timings.map(([name, ms]) => `${name} ${secs(ms)}`).join(", ")}`);
    say(`    site              ${String(outputs.url ?? `https://${site.domain}/`)} (curl -k; the host keeps running: scripts/local-host.sh stop)`);
    say(`    pulumi            npm run local -- pulumi stack    (or any pulumi command on this stack)`);

    if (second.r.code !== 0) throw new Failure(`pulumi up of v2 failed (exit ${second.r.code}); its output is above`);
    if (load.failed.length > 0) throw new Failure(`${load.failed.length} request(s) failed during the shift`);
    return 0;
}

/** `npm run local -- pulumi ARGS`: a pulumi command with the local stack's backend, passphrase and config file. */
async function passthrough(args: string[]): Promise<number> {
    const bin = await provideToolchain();
    const priority = enginePriority();
    const stack = engine(bin, priority);
    const line = stack.commandLine(args);
    // It may prompt: it keeps the terminal's session, so only the prefix (weights or nice levels) applies.
    console.error(`run-local: pulumi at a low priority: ${priority.prefixOnly}`);
    return new Promise((resolve, reject) => {
        const argv = [...priority.prefix, "pulumi", ...line.args];
        const child = spawn(argv[0], argv.slice(1), { cwd: line.cwd, env: stack.env, stdio: "inherit" });
        child.on("error", reject);
        child.on("close", (code) => resolve(code ?? 1));
    });
}

const args = process.argv.slice(2);
(args[0] === "pulumi" ? passthrough(args.slice(1)) : deploy()).then(
    (code) => process.exit(code),
    (e) => {
        console.error(`\nrun-local: error: ${e instanceof Failure ? e.message : ((e as Error).stack ?? String(e))}`);
        process.exit(1);
    },
);
