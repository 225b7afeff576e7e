// An interrupted deploy on the real systemd host: the worker runs as a transient systemd unit
// (visible in systemctl), is killed at 50 %, the host is rebooted, and the boot-time recover unit
// brings back the committed state with an audit line, before any command is run. Then a boot after
// which the live slot's unit is not enabled (as on NixOS, where the slot unit has no [Install]):
// the recover unit starts it. Load runs through NGINX from the shift until the host goes down, and
// again once it is back; every request of both must succeed (the reboot itself is down time).
import * as assert from "assert";
import * as fs from "fs";
import { AGENT_OUTFILE } from "../../program/agent-bundle";
import { useLocalHost } from "./fixture";
import { siteRequest, Site } from "../../dev/site/http";
import { describeLoad, LoadReport, startLoad } from "../../dev/site/load";
import { REPO, run } from "../../dev/local-host";
import { archiveFor, LocalStack, RELEASES_DIR } from "../../dev/site/replayed-stack";

interface Status {
    live: { slot: string; version: string } | null;
    deploying: { version: string; slot: string } | null;
    interrupted: boolean;
    slots: { slot: string; weight: number | null }[];
}

function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

describe("an interrupted deploy on the systemd host: transient worker unit, reboot recovery", function () {
    this.timeout(10 * 60_000);
    const host = useLocalHost();
    let stack: LocalStack;
    let site: Site;
    const runId = `recovery-${Date.now()}`;
    const status = async () => (await stack.status()) as Status;
    const weights = (s: Status) => Object.fromEntries(s.slots.map((x) => [x.slot, x.weight]));
    const figures = (what: string, r: LoadReport) => console.log(`      ${what}: ${describeLoad(r)}`);

    /** Reboots the host and waits until the recover unit has run; returns the seconds it took. */
    async function reboot(): Promise<number> {
        const started = Date.now();
        await host.stop();
        await host.start();
        const unit = `${stack.settings.appName}-recover.service`;
        for (let i = 0; i < 120; i++) {
            const ran = (await host.ssh(`systemctl show -p ExecMainExitTimestampMonotonic --value ${unit}`)).stdout.trim();
            if (ran !== "" && ran !== "0") return (Date.now() - started) / 1000;
            await sleep(1000);
        }
        throw new Error(`${unit} did not run within 2 minutes of the boot`);
    }

    /** Seconds until the site answers 200 (HAProxy's first health checks of the slots after a boot). */
    async function untilServing(limitS: number): Promise<number> {
        const started = Date.now();
        for (;;) {
            const r = await siteRequest(site, "/").catch(() => undefined);
            if (r?.status === 200) return (Date.now() - started) / 1000;
            if (Date.now() - started > limitS * 1000)
                throw new Error(`the site does not answer 200 ${limitS} s after the boot (last: ${r?.status ?? "no answer"})`);
            await sleep(500);
        }
    }

    /** Steady load for `ms`, then its report. */
    async function loadFor(ms: number): Promise<LoadReport> {
        const l = startLoad({ site, runId, connections: 4, rate: 40 });
        await sleep(ms);
        return l.stop();
    }

    before(async function () {
        if (!fs.existsSync(AGENT_OUTFILE)) throw new Error(`${AGENT_OUTFILE} is missing: run npm run build:agent`);
        const build = await run(`${REPO}/scripts/build-example-releases.sh`, [RELEASES_DIR], { timeoutMs: 120_000 });
        assert.strictEqual(build.code, 0, build.stderr);
        for (const v of ["v1", "v2"]) assert.ok(fs.existsSync(archiveFor(v)));
        stack = new LocalStack(host);
        site = { domain: stack.settings.domain, httpsPort: stack.settings.httpsPort };
        await stack.setup();
        await stack.installAgent();
        await stack.applyProxy();
        await stack.resetApp();
        await stack.setup();
        await stack.writeEnv({ SECRET_KEY: `e2e-recovery-${Date.now()}-0123456789abcdefghijklmnopqrstuvwxyz` });
        await stack.prepare("v1");
        await stack.prepare("v2");
        await stack.agent("activate", ["--version", "v1", "--shift-plan", "100"]);
    });

    it("the worker is a transient unit; SIGKILLed at 50 % and the host rebooted, the recover unit restores v1", async () => {
        const app = stack.settings.appName;
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        const shift = stack.agent(
            "activate",
            ["--version", "v2", "--shift-plan", "10:1,50:120,100:0", "--health-timeout", "120s", "--min-requests-per-step", "0"],
            false,
        );
        let unit = "";
        for (let i = 0; i < 240 && !unit; i++) {
            const s = await status();
            if (weights(s).green === 50) {
                const units = await host.sshOk(`systemctl list-units --no-legend --plain '${app}-deploy-*' | awk '{print $1}'`);
                unit = units.trim().split("\n")[0] ?? "";
            }
            if (!unit) await sleep(500);
        }
        assert.match(unit, new RegExp(`^${app}-deploy-.*activate-v2.*\\.service$`), "the worker runs as a transient unit");
        assert.match(await host.sshOk(`systemctl is-active ${unit}`), /active/);
        await host.sshOk(`systemctl kill --signal=KILL ${unit}`);
        const dead = await shift;
        assert.notStrictEqual(dead.code, 0);
        const split = await status();
        assert.deepStrictEqual([split.interrupted, weights(split)], [true, { blue: 50, green: 50 }], "left split by the killed worker");
        await sleep(2000);
        const beforeReboot = await load.stop();
        figures("shift to v2, worker SIGKILLed at 50 %, until the reboot", beforeReboot);
        assert.deepStrictEqual(beforeReboot.failed, [], describeLoad(beforeReboot));

        const bootS = await reboot();
        let after = await status();
        for (let i = 0; i < 60 && after.deploying; i++) {
            await sleep(1000);
            after = await status();
        }
        assert.deepStrictEqual(after.live, { slot: "blue", version: "v1" });
        assert.strictEqual(after.deploying, null, "the boot-time unit cleared the interrupted deploy");
        assert.deepStrictEqual(weights(after), { blue: 100, green: 0 });
        const audit = await host.sshOk(`tail -n 5 ${stack.layout.auditLog}`);
        assert.match(audit, /"command":"recover".*"abandoned":"v2@green"/);
        assert.match(await host.sshOk(`systemctl show -p Result --value ${app}-recover.service`), /success/);
        assert.notStrictEqual((await host.ssh(`systemctl is-active ${app}@green.service`)).stdout.trim(), "active", "the interrupted deploy's slot is stopped");

        const servingS = await untilServing(60);
        const afterReboot = await loadFor(8000);
        figures(`after the reboot (recover unit done ${bootS.toFixed(1)} s after the stop, serving ${servingS.toFixed(1)} s later)`, afterReboot);
        assert.deepStrictEqual(afterReboot.failed, [], describeLoad(afterReboot));
        assert.deepStrictEqual(Object.keys(afterReboot.byVersion), ["v1"], `only the committed release answers: ${describeLoad(afterReboot)}`);
    });

    it("a live slot whose unit is not enabled at boot (as on NixOS): the recover unit starts it, and it serves", async () => {
        const app = stack.settings.appName;
        // What the agent's `systemctl enable` amounts to on NixOS: nothing starts the slot at boot.
        await host.sshOk(`systemctl disable --quiet ${app}@blue.service`);
        assert.strictEqual((await host.ssh(`systemctl is-enabled ${app}@blue.service`)).stdout.trim(), "disabled");
        const bootS = await reboot();
        assert.strictEqual((await host.ssh(`systemctl is-active ${app}@blue.service`)).stdout.trim(), "active", "the recover unit started the live slot");
        assert.match(await host.sshOk(`systemctl show -p Result --value ${app}-recover.service`), /success/);
        const audit = await host.sshOk(`tail -n 5 ${stack.layout.auditLog}`);
        assert.match(audit, /"command":"recover".*"actions":\["started blue \(v1\)"\]/);
        const after = await status();
        assert.deepStrictEqual([after.live, after.deploying, weights(after)], [{ slot: "blue", version: "v1" }, null, { blue: 100, green: 0 }]);

        const servingS = await untilServing(60);
        const r = await loadFor(8000);
        figures(
            `after a boot with ${app}@blue not enabled (recover unit done ${bootS.toFixed(1)} s after the stop, serving ${servingS.toFixed(1)} s later)`,
            r,
        );
        assert.deepStrictEqual(r.failed, [], describeLoad(r));
        assert.deepStrictEqual(Object.keys(r.byVersion), ["v1"], describeLoad(r));
    });

    it("systemctl restart haproxy at a shift step, on the real unit (state saved, soft stop): the shift completes, 0 failed requests", async () => {
        const load = startLoad({ site, runId, connections: 4, rate: 40 });
        const shift = stack.agent(
            "activate",
            ["--version", "v2", "--shift-plan", "10:5,50:5,100:0", "--health-timeout", "120s", "--min-requests-per-step", "0"],
            false,
        );
        let s = await status();
        for (let i = 0; i < 240 && weights(s).green !== 10; i++) {
            await sleep(250);
            s = await status();
        }
        assert.strictEqual(weights(s).green, 10, "the shift reached its first step");
        const t0 = Date.now();
        await host.sshOk("systemctl restart haproxy");
        const restartMs = Date.now() - t0;
        const done = await shift;
        const r = await load.stop();
        figures(`systemctl restart haproxy at 10 % (the restart took ${restartMs} ms)`, r);
        assert.strictEqual(done.code, 0, done.stderr);
        assert.deepStrictEqual(r.failed, [], describeLoad(r));
        const after = await status();
        assert.deepStrictEqual(
            [after.live, weights(after)],
            [
                { slot: "green", version: "v2" },
                { blue: 0, green: 100 },
            ],
        );
        assert.match(await host.sshOk("systemctl show -p KillSignal --value haproxy.service"), /^10$/m, "SIGUSR1 (10) stops HAProxy");
    });
});
