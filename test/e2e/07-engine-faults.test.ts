// Faults of the deploying side while `pulumi up` of the `local` stack shifts traffic, through the
// real engine on a freshly booted local host, each under a steady GET+POST load through NGINX:
//   - the shift command's SSH session killed at a step (its sshd processes on the host, as when
//     the connection is cut): the provider reconnects, follows the worker with `attach`, and
//     `pulumi up` exits 0 with the shift completed;
//   - the `pulumi` CLI killed at a step with everything it started (a cancelled CI job): the host
//     completes the shift by itself; the next `pulumi up` is refused on the stack's lock until
//     `pulumi cancel`, then records the shift (README, "When a deploy was interrupted").
// Every request of every step must succeed. SLOTSHIFT_KEEP_TMP=1 keeps the state directory.
import * as assert from "assert";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { configureLocalStack, servedVersion, setReleaseVersion, upUnderLoad } from "./engine/local-stack";
import { diagnosticLines } from "./engine/diagnostics";
import { killTree } from "./engine/process-tree";
import { EngineStack, provideToolchain, PulumiRun, tail } from "../../dev/engine/pulumi";
import { useLocalHost } from "./fixture";
import { Site } from "../../dev/site/http";
import { describeLoad, LoadReport, startLoad } from "../../dev/site/load";
import { REPO, run } from "../../dev/local-host";
import { LocalStack, localStackSettings, RELEASES_DIR } from "../../dev/site/replayed-stack";

/** Cuts the SSH session of the shift on the host (see the script). */
const CUT_SHIFT_SESSION = fs.readFileSync(path.join(__dirname, "engine", "cut-shift-session.sh"), "utf8");

interface Status {
    live: { slot: string; version: string } | null;
    deploying: { version: string; slot: string } | null;
    lock: { state: string } | null;
}

describe("faults of the deploying side during pulumi up: the shift's SSH session cut, the CLI killed", function () {
    this.timeout(10 * 60_000);
    const host = useLocalHost();
    const settings = localStackSettings();
    const site: Site = { domain: settings.domain, httpsPort: settings.httpsPort };
    const app = settings.appName;
    const runId = `engine-faults-${Date.now()}`;
    const appSecret = `engine-faults-${crypto.randomBytes(12).toString("hex")}`;
    const firstStep = new RegExp(`${app}-shift-activate .*; \\S+ step 1/3 \\(10%\\): `);
    let tmp: string;
    let local: EngineStack;
    let anyFailed = false;

    const must = (r: PulumiRun, what: string) => assert.strictEqual(r.code, 0, `${what} failed:\n${tail(r.out, 80)}`);
    const figures = (what: string, r: PulumiRun, load?: LoadReport) =>
        console.log(`      ${what}: pulumi ${r.args[0]} ${(r.ms / 1000).toFixed(1)}s, exit ${r.code}${load ? `\n        load: ${describeLoad(load)}` : ""}`);

    before(async function () {
        this.timeout(30 * 60_000);
        let bin: string;
        try {
            bin = await provideToolchain((line) => process.env.SLOTSHIFT_E2E_VERBOSE === "1" && console.log(`      ${line}`));
        } catch (e) {
            if (process.env.SLOTSHIFT_E2E_REQUIRED === "1") throw e;
            console.log(`      skipped: no Pulumi CLI (${(e as Error).message.split("\n").slice(-2).join(" | ")})`);
            return this.skip();
        }
        const build = await run(`${REPO}/scripts/build-example-releases.sh`, [RELEASES_DIR], { timeoutMs: 120_000 });
        assert.strictEqual(build.code, 0, build.stderr);
        await host.destroy();
        await host.start();
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-engine-faults-"));
        local = new EngineStack({
            stack: "local",
            dir: tmp,
            bin,
            passphrase: crypto.randomBytes(16).toString("hex"),
            logFile: path.join(tmp, "pulumi-output.log"),
        });
        await configureLocalStack(local, host, "v1", appSecret);
        const r = await local.up();
        figures("up v1 (fresh host)", r);
        must(r, "pulumi up v1");
    });

    afterEach(function () {
        if (this.currentTest?.state === "failed") anyFailed = true;
    });

    after(function () {
        if (!tmp) return;
        if (anyFailed || process.env.SLOTSHIFT_KEEP_TMP === "1") console.log(`      kept ${tmp} (state, stack config, pulumi-output.log)`);
        else fs.rmSync(tmp, { recursive: true, force: true });
    });

    it("the shift's SSH session killed at a step: pulumi up reconnects, follows the worker and exits 0; 0 failed requests", async () => {
        await setReleaseVersion(local, "v2");
        let cut: Promise<string> | undefined;
        const { r, load } = await upUnderLoad(local, site, runId, {
            onLine: (line) => {
                if (!cut && firstStep.test(line))
                    cut = host.runScript(CUT_SHIFT_SESSION).then((x) => (x.code === 0 ? x.stdout.trim() : `failed: ${x.stderr.trim()}`));
            },
        });
        const killed = await cut;
        figures(`up v2, the shift's SSH session killed at step 1 (${killed ?? "never reached"})`, r, load);
        assert.match(killed ?? "", /^foreground \d+, sshd \d+/, "the shift's session was killed");
        must(r, "pulumi up v2 with its session cut");
        // Each line the resource logged, once (the progress rows repeat lines, so they are not counted).
        const shown = diagnosticLines(r.out, `${app}-shift-activate`);
        const reconnecting = /^the connection dropped while \S+ ran on the host; reconnecting to follow it \(attempt 1 of/;
        assert.strictEqual(shown.filter((l) => reconnecting.test(l)).length, 1, tail(r.out, 80));
        const droppedAt = r.lines.find((l) => /shift-activate .*; the connection dropped while/.test(l.text))!.at;
        const resumed = r.lines.find((l) => l.at > droppedAt && /shift-activate .*; \d\d:\d\d:\d\d\.\d{3} /.test(l.text));
        assert.ok(resumed, "the worker's lines go on after the reconnection");
        // Followed from where the cut left it: each line of the worker's log shown once, in order,
        // after the foreground's first line (which names the log) and up to its end.
        const logFile = /^\S+ deploy worker pid \d+ \(log (\S+\.log)\)/.exec(shown[0] ?? "")?.[1];
        assert.ok(logFile, `the first line names the worker's log: ${shown[0]}`);
        const log = (await host.sshOk(`cat ${logFile}`))
            .trimEnd()
            .split("\n")
            .map((l) => l.trimEnd());
        const followed = shown.slice(1).filter((l) => !reconnecting.test(l) && !/^waiting for SSH on /.test(l));
        assert.deepStrictEqual(followed.slice(0, log.length), log, "the worker's log as shown by pulumi up");
        assert.match(log[log.length - 1], /activate v2 done in/);
        assert.deepStrictEqual(load.failed, [], describeLoad(load));
        assert.ok((load.byVersion.v1 ?? 0) > 0 && (load.byVersion.v2 ?? 0) > 0, describeLoad(load));
        assert.strictEqual((await local.outputs()).liveVersion, "v2");
        assert.strictEqual(await servedVersion(site), "v2");
        must(await local.preview(["--expect-no-changes"]), "pulumi preview --expect-no-changes");
    });

    it("the pulumi CLI killed at a step: the host completes the shift, 0 failed requests; after pulumi cancel the next up records it", async () => {
        const stack = new LocalStack(host, settings);
        await setReleaseVersion(local, "v1");
        let pid: number | undefined;
        let killed: number[] = [];
        // One load over the whole story: the kill, the host finishing alone, the refused up, cancel, the up that records it.
        const l = startLoad({ site, runId, connections: 4, rate: 40 });
        let load: LoadReport;
        try {
            const r = await local.up([], {
                onSpawn: (p) => (pid = p),
                onLine: (line) => {
                    if (pid && killed.length === 0 && firstStep.test(line)) killed = killTree(pid);
                },
            });
            figures(`up v1, the CLI and its ${killed.length - 1} descendants SIGKILLed at step 1`, r);
            assert.ok(killed.length > 1, "the CLI was killed with its plugins");
            assert.notStrictEqual(r.code, 0);

            let st = (await stack.status()) as Status;
            const started = Date.now();
            while ((st.lock || st.deploying) && Date.now() - started < 120_000) {
                await new Promise((res) => setTimeout(res, 1000));
                st = (await stack.status()) as Status;
            }
            console.log(`        the host finished the shift on its own ${((Date.now() - started) / 1000).toFixed(1)} s after the kill`);
            assert.deepStrictEqual([st.live?.version, st.deploying, st.lock], ["v1", null, null], "completed by the host alone");
            assert.strictEqual(await servedVersion(site), "v1");

            const refused = await local.up();
            figures("up right after the kill", refused);
            assert.notStrictEqual(refused.code, 0);
            assert.match(refused.out, /the stack is currently locked by 1 lock\(s\)/);
            const cancel = await local.run(["cancel", "--yes"], { stack: "name" });
            figures("cancel", cancel);
            must(cancel, "pulumi cancel");

            const again = await local.up();
            figures("up after pulumi cancel", again);
            must(again, "pulumi up after pulumi cancel");
            assert.match(again.out, /v1 is already live on \w+\b[^;\n]*; nothing to do/);
            assert.strictEqual((await local.outputs()).liveVersion, "v1");
            must(await local.preview(["--expect-no-changes"]), "pulumi preview --expect-no-changes");
        } finally {
            // Stopped in every case, so no request loop outlives the test.
            load = await l.stop();
        }
        console.log(`        load over the kill, the host's own completion, cancel and the next up: ${describeLoad(load)}`);
        assert.deepStrictEqual(load.failed, [], describeLoad(load));
    });
});
