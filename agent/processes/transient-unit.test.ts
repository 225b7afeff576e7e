// Release code outside the slot unit, where there is no systemd (processControl "command"): a
// timeout kills everything the command started, a background child neither outlives the step nor
// holds it open, and the app's env file reaches only the app user's process. The systemd-run path
// is proven on a real systemd host (test/e2e/02-deploy).
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { appSandbox } from "../../lib/app-sandbox";
import { hostLayout } from "../../lib/host-layout";
import { runCommand } from "../common/run-command";
import { autogroupNiceShellLine } from "./cpu-scheduling";
import { AppProcessSpec, runAppProcess, transientUnitArgv } from "./transient-unit";

function alive(pid: number): boolean {
    try {
        process.kill(pid, 0);
    } catch {
        return false;
    }
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    } catch {
        return false;
    }
}

async function gone(pid: number, withinMs: number): Promise<boolean> {
    const deadline = Date.now() + withinMs;
    while (alive(pid)) {
        if (Date.now() > deadline) return false;
        await new Promise((r) => setTimeout(r, 20));
    }
    return true;
}

const isRoot = process.getuid?.() === 0;

describe("release code outside systemd: timeouts, leftovers and the environment", function () {
    this.timeout(30_000);
    let root: string;
    let spec: (command: string, timeoutMs: number) => AppProcessSpec;

    before(() => {
        root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-transient-"));
        fs.chmodSync(root, 0o755);
        // As root the command runs as the app user; "nobody" exists on every Linux host.
        const layout = hostLayout(isRoot ? "nobody" : os.userInfo().username, { root });
        fs.mkdirSync(path.dirname(layout.envFile), { recursive: true });
        fs.writeFileSync(layout.envFile, 'APP_SECRET="from the env file"\nPATH="/usr/bin:/bin"\n', { mode: 0o640 });
        spec = (command, timeoutMs) => ({
            layout,
            backend: "direct",
            purpose: "build",
            command,
            cwd: root,
            env: { RELEASE_VERSION: "v1" },
            readWritePaths: [],
            timeoutMs,
        });
    });
    after(() => fs.rmSync(root, { recursive: true, force: true }));

    it("a 1 s timeout on a command that sleeps 5 s returns after about 1 s, and nothing of it lives on", async () => {
        const t0 = Date.now();
        const r = await runAppProcess(spec("sleep 5 & echo $!; wait", 1000));
        const ms = Date.now() - t0;
        console.log(`      figures: resolved after ${ms} ms (timeout 1000 ms, command 5000 ms)`);
        assert.strictEqual(r.timedOut, true);
        assert.notStrictEqual(r.code, 0);
        assert.ok(ms < 4000, `resolved only after ${ms} ms: the timeout did not stop the command`);
        const sleeper = Number(r.lines[0]);
        assert.ok(sleeper > 0, `no pid printed: ${r.lines.join("|")}`);
        assert.ok(await gone(sleeper, 2000), "the sleep outlived the timeout");
    });

    it("a command that leaves a background child: the step ends when the command does, and the child is killed", async () => {
        const t0 = Date.now();
        const r = await runAppProcess(spec("sleep 5 & echo $!", 1000));
        const ms = Date.now() - t0;
        console.log(`      figures: resolved after ${ms} ms (background child of 5000 ms)`);
        assert.strictEqual(r.code, 0);
        assert.ok(ms < 4000, `held for ${ms} ms by the background child`);
        assert.ok(await gone(Number(r.lines[0]), 2000), "the background child outlived its step");
    });

    it("runCommand (process control, proxy reload): a timeout kills the whole process group", async () => {
        const t0 = Date.now();
        const r = await runCommand("sleep 5 & echo $!; wait", { timeoutMs: 1000 });
        const ms = Date.now() - t0;
        console.log(`      figures: resolved after ${ms} ms (timeout 1000 ms, command 5000 ms)`);
        assert.ok(ms < 4000, `resolved only after ${ms} ms`);
        assert.notStrictEqual(r.code, 0);
        assert.ok(await gone(Number(r.lines[0]), 2000), "the sleep outlived the timeout");
    });

    it("the app's env file and the step's variables reach the command; nothing of the agent's own environment does", async () => {
        process.env.SLOTSHIFT_TEST_AGENT_ONLY = "agent";
        try {
            const r = await runAppProcess(spec('echo "$(id -u) $APP_SECRET|$RELEASE_VERSION|${SLOTSHIFT_TEST_AGENT_ONLY:-unset}|$PATH"', 10_000));
            assert.strictEqual(r.code, 0, r.tail);
            assert.strictEqual(r.lines[0], `${isRoot ? 65534 : process.getuid?.()} from the env file|v1|unset|/usr/bin:/bin`);
        } finally {
            delete process.env.SLOTSHIFT_TEST_AGENT_ONLY;
        }
    });

    it("the command runs at the transient unit's nice level and idle I/O class, in a session at that level, and what it starts inherits both", async () => {
        // Its own shell, then a child it forks (in the background: a shell may exec its last command in place).
        const show = `echo "$(cut -d' ' -f19 /proc/$$/stat) $(ionice -p $$)"`;
        const r = await runAppProcess(spec(`${show}; sh -c '${show.replace(/'/g, `'"'"'`)}' & wait; cat /proc/$$/autogroup 2>/dev/null || true`, 10_000));
        assert.strictEqual(r.code, 0, r.tail);
        assert.deepStrictEqual(r.lines.slice(0, 2), ["15 idle", "15 idle"]);
        // Its session too, where the kernel weighs sessions against each other.
        if (fs.existsSync("/proc/self/autogroup")) assert.match(r.lines[2] ?? "", /nice 15$/);
    });

    it("a transient unit gets the slot unit's sandbox, the env file through systemd, the deploy slice and a runtime bound", () => {
        const s = spec("make", 90_000);
        const argv = transientUnitArgv({ ...s, readWritePaths: ["/srv/x/builds/v1"] }, "x-deploy-build-1.service", "/srv/x/deploy/transient/u.env");
        const props = argv.flatMap((a, i) => (argv[i - 1] === "-p" ? [a] : []));
        for (const d of appSandbox(s.layout, { readWritePaths: ["/srv/x/builds/v1"] }))
            assert.ok(props.includes(`${d.name}=${d.value}`), `${d.name}=${d.value} missing`);
        assert.ok(props.includes(`EnvironmentFile=-${s.layout.envFile}`));
        assert.ok(props.includes("RuntimeMaxSec=90s"));
        assert.ok(argv.includes(`--slice=${s.layout.deploySlice}`));
        assert.ok(!argv.some((a) => a.startsWith("-E") || a.startsWith("--setenv")), "no variable on systemd-run's command line");
        assert.deepStrictEqual(
            props.filter((p) => p.startsWith("Environment=")),
            [`Environment=PATH=${process.env.PATH}`],
            "only the default PATH, which the env file may override",
        );
        // The command itself, after the line that lowers the unit's autogroup (agent/processes/cpu-scheduling.ts).
        assert.deepStrictEqual(argv.slice(-3), ["/bin/sh", "-c", `${autogroupNiceShellLine(15)}\nmake`]);
    });
});
