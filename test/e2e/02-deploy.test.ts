// The example Django app deployed to the local host the way `pulumi up` on the `local` stack does it
// (see stack.ts): host setup, agent, proxy, v1; then v2 under load; then the never-ready v3.
import * as assert from "assert";
import * as fs from "fs";
import { autogroupNiceShellLine } from "../../agent/processes/cpu-scheduling";
import { AGENT_OUTFILE } from "../../program/agent-bundle";
import { DEPLOY_PROCESS_PROPERTIES } from "../../lib/app-sandbox";
import { useLocalHost } from "./fixture";
import { siteRequest, Site, submitNoteForm } from "../../dev/site/http";
import { describeLoad, startLoad } from "../../dev/site/load";
import { REPO, run, shellQuote } from "../../dev/local-host";
import { archiveFor, LocalStack, localStackSettings, RELEASES_DIR } from "../../dev/site/replayed-stack";

/** The highest `systemd-analyze security` exposure a deploy's transient unit may have (as the slot unit's). */
const MAX_TRANSIENT_EXPOSURE = 2.0;

describe("deploy of the example Django app to the local host", function () {
    this.timeout(5 * 60_000);
    const host = useLocalHost();
    let stack: LocalStack;
    let site: Site;
    const runId = `e2e-${Date.now()}`;
    const secretKey = `e2e-${runId}-0123456789abcdefghijklmnopqrstuvwxyz`;
    const cssOf = (html: string) => /href="(\/static\/notes\/style\.[0-9a-f]{12}\.css)"/.exec(html)?.[1];
    let v1Css: string | undefined;

    /** Rows the load posted that made it into the database. */
    const storedNotes = async (): Promise<Set<string>> => {
        const db = stack.settings.appName;
        const out = await host.sshOk(`cd / && runuser -u postgres -- psql -X -tA -d ${db} -c "SELECT text FROM notes_note WHERE text LIKE '${runId}-%'"`);
        return new Set(out.split("\n").filter(Boolean));
    };

    before(async function () {
        if (!fs.existsSync(AGENT_OUTFILE)) throw new Error(`${AGENT_OUTFILE} is missing: run the tests with npm run test:e2e (it builds the agent)`);
        // Seconds, and it keeps the archives in step with examples/django-app.
        const build = await run(`${REPO}/scripts/build-example-releases.sh`, [RELEASES_DIR], { timeoutMs: 120_000 });
        assert.strictEqual(build.code, 0, build.stderr);
        for (const v of ["v1", "v2", "v3"]) assert.ok(fs.existsSync(archiveFor(v)));
        stack = new LocalStack(host);
        site = { domain: stack.settings.domain, httpsPort: stack.settings.httpsPort };
    });

    it("sets up the host; a second run changes nothing", async () => {
        const first = await stack.setup();
        assert.match(first.stdout, /created user shop/);
        const second = await stack.setup();
        const changes = second.stdout.split("\n").filter((l) => /\b(wrote|created|generated|removed|reloaded|installing)\b/.test(l));
        assert.deepStrictEqual(changes, [], `second setup run changed things:\n${second.stdout}`);
    });

    it("a deploy's processes run behind the live release: CPU shares of a burner set up like a transient unit against a slot-like one", async () => {
        // Both on one CPU for a few seconds (bash: $SECONDS): each mechanism alone, then all of them as
        // agent/processes/transient-unit.ts sets them.
        const burn = "end=$((SECONDS+9)); while [ $SECONDS -lt $end ]; do :; done";
        const nice = DEPLOY_PROCESS_PROPERTIES.map((p) => `-p ${p.name}=${p.value}`).join(" ");
        const pairs: [string, string, string][] = [
            ["deploy slice (CPUWeight 10)", `--slice=${stack.layout.deploySlice}`, burn],
            ["Nice=15", nice, burn],
            ["autogroup nice 15", "", `${autogroupNiceShellLine(15)}\n${burn}`],
            ["all, as a transient unit", `--slice=${stack.layout.deploySlice} ${nice}`, `${autogroupNiceShellLine(15)}\n${burn}`],
        ];
        const shares: string[] = [];
        let transientShare = 100;
        for (const [what, props, command] of pairs) {
            const script = [
                "set -e",
                "ticks() { cg=$(systemctl show -p ControlGroup --value $1); t=0; for p in $(cat /sys/fs/cgroup/systemd$cg/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup$cg/cgroup.procs); do t=$((t + $(cut -d' ' -f14,15 /proc/$p/stat | tr ' ' +))); done; echo $t; }",
                `systemd-run --quiet --collect --unit=e2e-burn-low -p CPUAffinity=0 ${props} /bin/bash -c ${shellQuote(command)}`,
                `systemd-run --quiet --collect --unit=e2e-burn-live -p CPUAffinity=0 /bin/bash -c ${shellQuote(burn)}`,
                "sleep 2; a0=$(ticks e2e-burn-low); b0=$(ticks e2e-burn-live); sleep 5; a1=$(ticks e2e-burn-low); b1=$(ticks e2e-burn-live)",
                "systemctl stop e2e-burn-low e2e-burn-live 2>/dev/null || true",
                'echo "$((a1 - a0)) $((b1 - b0))"',
            ].join("\n");
            const [low, live] = (await host.sshOk("bash -s", { input: script })).trim().split(" ").map(Number);
            const share = Math.round((100 * low) / Math.max(1, low + live));
            shares.push(`${what} ${share} % (${low} vs ${live} ticks)`);
            if (what.startsWith("all")) transientShare = share;
        }
        const cgroups = (await host.sshOk("stat -fc %T /sys/fs/cgroup")).trim();
        console.log(`      figures: share of one CPU a deploy-priority burner gets against a default one (${cgroups} at /sys/fs/cgroup): ${shares.join("; ")}`);
        assert.ok(transientShare < 25, `a transient unit's priority leaves the live release most of the CPU: ${shares.join("; ")}`);
    });

    it("first deploy: v1 goes live behind NGINX with its fingerprinted static files", async () => {
        await stack.installAgent();
        await stack.applyProxy();
        await stack.writeEnv({ SECRET_KEY: secretKey });
        await stack.prepare("v1");
        await stack.activate("v1");

        const page = await siteRequest(site, "/");
        assert.strictEqual(page.status, 200, page.body.slice(0, 500));
        assert.match(page.body, /id="release">v1</);
        assert.strictEqual(page.headers["x-release-version"], "v1");
        v1Css = cssOf(page.body);
        assert.ok(v1Css, "v1 links no fingerprinted stylesheet");
        const css = await siteRequest(site, v1Css);
        assert.strictEqual(css.status, 200);
        assert.match(String(css.headers["content-type"]), /text\/css/);

        const health = await siteRequest(site, stack.settings.healthPath);
        assert.strictEqual(health.status, 200);
        assert.strictEqual(JSON.parse(health.body).status, "ok");

        const posted = await submitNoteForm(site, `${runId}-form`);
        assert.strictEqual(posted.status, 303, posted.body.slice(0, 300));
        assert.match((await siteRequest(site, "/")).body, new RegExp(`${runId}-form`));
    });

    it("shifts to v2 under load without failing a request; v1's assets stay served", async () => {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        let report;
        try {
            await stack.prepare("v2");
            const shift = await stack.activate("v2");
            // Which priority mechanism took effect on this host (cgroup weights, nice levels).
            const priority = shift.stdout.split("\n").filter((l) => / priority \(/.test(l));
            console.log(`      priority: ${priority.map((l) => l.replace(/^\S+ /, "")).join(" | ")}`);
            assert.ok(
                priority.some((l) => /: deploy priority \(.*nice 15 on [1-9]\d* process/.test(l)),
                priority.join("\n"),
            );
            assert.ok(
                priority.some((l) => /: live priority \(.*nice 0 on [1-9]/.test(l)),
                priority.join("\n"),
            );
            // pulumi up deletes the replaced shift: retire the old version (kept warm, so it stays up).
            await stack.retire("v1");
        } finally {
            report = await load.stop();
        }
        console.log(`      load: ${describeLoad(report)}`);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.ok(report.byVersion.v1 > 0 && report.byVersion.v2 > 0, `both versions should have served during the shift: ${describeLoad(report)}`);

        const page = await siteRequest(site, "/");
        assert.match(page.body, /id="release">v2</);
        assert.match(page.body, /New in v2/);
        const v2Css = cssOf(page.body);
        assert.ok(v2Css && v2Css !== v1Css, "v2 should link a new fingerprinted stylesheet");
        // A page rendered by v1 just before the switch still finds its stylesheet.
        assert.strictEqual((await siteRequest(site, v1Css!)).status, 200);

        const stored = await storedNotes();
        const lost = report.acknowledgedPosts.filter((t) => !stored.has(t));
        assert.deepStrictEqual(lost, [], "notes acknowledged with 201 are missing from the database");
    });

    it("rollback over SSH to the warm previous release and back: a weight flip, 0 failed requests", async () => {
        const flips: string[] = [];
        /** One rollback and its figures; the host shares this machine's clock: flipAt is comparable with t0. */
        const rollback = async (how: "rollbackCommand" | "agent rollback", from: string, to: string) => {
            const t0 = Date.now();
            const r = how === "rollbackCommand" ? await stack.rollback(["--json"]) : await stack.agent("rollback", ["--json"]);
            const result = JSON.parse(r.stdout.trim().split("\n").pop()!);
            assert.deepStrictEqual([result.mode, result.version], ["warm-flip", to], r.stdout);
            assert.strictEqual(result.flippedBy, how === "rollbackCommand" ? "rollback script" : undefined, r.stdout);
            const starter = how === "rollbackCommand" ? "the rollback script" : "the agent";
            flips.push(
                `${how} ${from} -> ${to}: 100 % on ${to} ${result.flipAt - t0} ms after the command started ` +
                    `(ssh until ${starter} started ${result.processStartedAt - t0} ms, from there to the flip ${result.flipAt - result.processStartedAt} ms; ` +
                    `the ssh command took ${r.ms} ms in all)`,
            );
        };
        // Under load: the stack output rollbackCommand (deploy/rollback flips before Node.js starts).
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        let report;
        try {
            await rollback("rollbackCommand", "v2", "v1");
            await rollback("rollbackCommand", "v1", "v2");
        } finally {
            report = await load.stop();
        }
        // For comparison, the agent's own rollback over plain ssh (each rollback reloads NGINX, whose
        // old workers close idle keep-alive connections: no more of them under load than before).
        await rollback("agent rollback", "v2", "v1");
        await rollback("agent rollback", "v1", "v2");
        console.log(`      rollback: ${flips.join("; ")}`);
        console.log(`      load: ${describeLoad(report)}`);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.match((await siteRequest(site, "/")).body, /id="release">v2</);
    });

    it("v3 never becomes ready: the deploy fails at the health gate and v2 keeps serving", async () => {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        let activate;
        let report;
        try {
            await stack.prepare("v3");
            activate = await stack.activate("v3", false);
        } finally {
            report = await load.stop();
        }
        console.log(`      load: ${describeLoad(report)}`);
        assert.notStrictEqual(activate.code, 0, "activating v3 should fail");
        assert.match(activate.stdout + activate.stderr, /health gate/);
        assert.deepStrictEqual(report.failed, [], describeLoad(report));
        assert.deepStrictEqual(Object.keys(report.byVersion), ["v2"], describeLoad(report));
        assert.match((await siteRequest(site, "/")).body, /id="release">v2</);
    });

    it("trust boundary: releases and their build output are root's, shared/env root:shop 0640, the app user rewrites neither", async () => {
        const app = stack.settings.appName;
        const l = stack.layout;
        const notRoot = await host.sshOk(`find ${l.releasesDir}/v1 ${l.releasesDir}/v2 ${l.buildsDir}/v1 ${l.buildsDir}/v2 ! -uid 0 | head -5`);
        assert.strictEqual(notRoot.trim(), "", `entries of the releases not owned by root:\n${notRoot}`);
        assert.strictEqual((await host.sshOk(`stat -c '%U:%G %a' ${l.envFile}`)).trim(), `root:${app} 640`);
        for (const attempt of [
            `echo 'evil()' >> ${l.releasesDir}/v2/manage.py`,
            `touch ${l.releasesDir}/v1/x`,
            `ln -s /etc ${l.releasesDir}/v2/static/etc`,
            `printf 'PATH=/tmp\\nLD_PRELOAD=/tmp/x.so\\n' >> ${l.envFile}`,
        ]) {
            const r = await host.ssh(`runuser -u ${app} -- sh -c ${JSON.stringify(attempt)}`);
            assert.notStrictEqual(r.code, 0, `the app user could: ${attempt}`);
        }
    });

    it("build, check and migrations run as sandboxed transient units in the deploy slice (systemd-analyze security <= 2.0), with the app env read by systemd", async () => {
        const app = stack.settings.appName;
        const l = stack.layout;
        // Slow steps, so each unit can be looked at while it runs; the build leaves proof of its env.
        const slow = new LocalStack(
            host,
            localStackSettings({
                buildCommand: 'sleep 8 && echo "$E2E_MARK $(id -un) $RELEASE_VERSION" > "$SLOTSHIFT_BUILD_DIR/built-in-unit"',
                migrateCommand: "sleep 8 && python3 manage.py migrate --noinput",
                migrationCheck: "none",
            }),
        );
        await slow.setup();
        await stack.writeEnv({ SECRET_KEY: secretKey, E2E_MARK: "from-shared-env" });
        const seen = new Map<string, { exposure: number; props: string }>();
        const watch = async (purpose: string, done: () => boolean) => {
            while (!done() && !seen.has(purpose)) {
                const units = (
                    await host.sshOk(`systemctl list-units --plain --no-legend --state=running '${app}-deploy-${purpose}-*' | awk '{print $1}'`)
                ).trim();
                const unit = units.split("\n").filter(Boolean)[0];
                if (unit) {
                    const analysis = await host.ssh(`systemd-analyze security --no-pager ${unit}`);
                    const m = /Overall exposure level for \S+: ([\d.]+)/.exec(analysis.stdout);
                    assert.ok(m, `no exposure in:\n${analysis.stdout}\n${analysis.stderr}`);
                    const props = await host.sshOk(`systemctl show -p User -p Slice -p Nice -p IOSchedulingClass -p RuntimeMaxUSec ${unit}`);
                    seen.set(purpose, { exposure: Number(m[1]), props });
                    console.log(`      figures: ${unit}: exposure ${m[1]}; ${props.trim().split("\n").join(", ")}`);
                }
                await new Promise((r) => setTimeout(r, 500));
            }
        };
        try {
            let finished = false;
            const prepared = slow.prepare("v2-sandboxed", archiveFor("v2")).finally(() => (finished = true));
            await Promise.all([watch("build", () => finished), prepared]);
            finished = false;
            const migrated = slow.agent("migrate", ["--version", "v2-sandboxed"]).finally(() => (finished = true));
            await Promise.all([watch("migrate", () => finished), migrated]);
        } finally {
            await stack.setup();
            await stack.writeEnv({ SECRET_KEY: secretKey });
        }
        for (const purpose of ["build", "migrate"]) {
            const unit = seen.get(purpose);
            assert.ok(unit, `no running ${app}-deploy-${purpose}-* unit was seen`);
            assert.ok(unit.exposure <= MAX_TRANSIENT_EXPOSURE, `${purpose} unit exposure ${unit.exposure} > ${MAX_TRANSIENT_EXPOSURE}`);
            assert.match(unit.props, new RegExp(`^User=${app}$`, "m"));
            assert.ok(unit.props.split("\n").includes(`Slice=${l.deploySlice}`), unit.props);
            assert.match(unit.props, /^IOSchedulingClass=(3|idle)$/m);
            assert.match(unit.props, /^Nice=15$/m);
        }
        assert.strictEqual((await host.sshOk(`systemctl show -p CPUWeight -p IOWeight ${l.deploySlice}`)).trim(), "CPUWeight=10\nIOWeight=10");
        assert.strictEqual((await host.sshOk(`cat ${l.buildsDir}/v2-sandboxed/built-in-unit`)).trim(), `from-shared-env ${app} v2-sandboxed`);
        assert.strictEqual((await host.sshOk(`find ${l.releasesDir}/v2-sandboxed ${l.buildsDir}/v2-sandboxed ! -uid 0 | head -5`)).trim(), "");
        // Nothing of a unit is left behind.
        assert.strictEqual((await host.sshOk(`systemctl list-units --plain --no-legend --all '${app}-deploy-*' | wc -l`)).trim(), "0");
        assert.strictEqual((await host.sshOk(`ls -A ${l.transientEnvDir} | wc -l`)).trim(), "0");
    });
});
