// An interrupted deploy on the real systemd host: the worker runs as a transient systemd unit
// (visible in systemctl), is killed at 50 %, the host is rebooted, and the boot-time recover unit
// brings back the committed state with an audit line, before any command is run.
import * as assert from "assert";
import * as fs from "fs";
import { AGENT_OUTFILE } from "../../lib/agent-bundle";
import { useLocalHost } from "./fixture";
import { REPO, run } from "./local-host";
import { archiveFor, LocalStack, RELEASES_DIR } from "./stack";

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
    const status = async () => (await stack.status()) as Status;
    const weights = (s: Status) => Object.fromEntries(s.slots.map((x) => [x.slot, x.weight]));

    before(async function () {
        if (!fs.existsSync(AGENT_OUTFILE)) throw new Error(`${AGENT_OUTFILE} is missing: run npm run build:agent`);
        const build = await run(`${REPO}/scripts/build-example-releases.sh`, [RELEASES_DIR], { timeoutMs: 120_000 });
        assert.strictEqual(build.code, 0, build.stderr);
        for (const v of ["v1", "v2"]) assert.ok(fs.existsSync(archiveFor(v)));
        stack = new LocalStack(host);
        await stack.setup();
        await stack.installAgent();
        await stack.applyProxy();
        await stack.resetApp();
        await stack.setup();
        await stack.writeEnv({ SECRET_KEY: `e2e-recovery-${Date.now()}-0123456789abcdefghijklmnopqrstuvwxyz` });
        await stack.prepare("v1");
        await stack.prepare("v2");
        await stack.agent("activate", ["--version", "v1", "--plan", "100"]);
    });

    it("the worker is a transient unit; SIGKILLed at 50 % and the host rebooted, the recover unit restores v1", async () => {
        const app = stack.settings.appName;
        const shift = stack.agent("activate", ["--version", "v2", "--plan", "10:1,50:120,100:0", "--health-timeout", "120s", "--min-requests", "0"], false);
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

        await host.stop();
        await host.start();
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
    });
});
