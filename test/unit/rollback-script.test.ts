// deploy/rollback (templates/rollback.sh.njk) in a temporary layout, with stand-ins for the two programs
// it runs: `node` (records how it was started and the lock it found; the script execs it, so it has
// the script's pid) and `socat` (answers HAProxy's runtime API from a file). The real flip against
// HAProxy is in test/integration/deploy.test.ts and test/e2e/02-deploy.test.ts.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { HostLayout, hostLayout } from "../../lib/host-layout";
import { renderRollbackScript } from "../../program/host-files";
import { readLock } from "../../agent/state/lock";

const HEADER = "# pxname,svname,qcur,status,weight,check_status";

describe("rollback script", () => {
    let dir: string;
    let layout: HostLayout;
    let env: NodeJS.ProcessEnv;
    const file = (name: string) => path.join(dir, name);

    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-rollback-script-"));
        layout = hostLayout("shop", { root: path.join(dir, "root") });
        fs.mkdirSync(layout.deployDir, { recursive: true });
        fs.mkdirSync(layout.slotsDir, { recursive: true });
        for (const v of ["v1", "v2", "v3"]) fs.mkdirSync(path.join(layout.releasesDir, v), { recursive: true });
        fs.symlinkSync("../releases/v1", path.join(layout.slotsDir, "blue"));
        fs.symlinkSync("../releases/v2", path.join(layout.slotsDir, "green"));
        fs.writeFileSync(layout.warmFlipFile, "from=green\nto=blue\nversion=v1\n");
        fs.writeFileSync(layout.rollbackScript, renderRollbackScript(layout, { backend: "app" }), { mode: 0o700 });
        const bin = file("bin");
        fs.mkdirSync(bin);
        fs.writeFileSync(path.join(bin, "node"), `#!/bin/sh\nprintf '%s\\n' "$$" "$*" >"$NODE_RAN"\ncat "$LOCK" >>"$NODE_RAN" 2>/dev/null || :\n`, {
            mode: 0o755,
        });
        fs.writeFileSync(
            path.join(bin, "socat"),
            `#!/bin/sh\nread -r line\ncase $line in\n"show stat"*) cat "$STATS" ;;\n"set weight"*) printf '%s\\n' "$line" >>"$WEIGHTS" ;;\nesac\n`,
            { mode: 0o755 },
        );
        fs.writeFileSync(file("stats"), `${HEADER}\napp,blue,0,UP,0,L7OK\napp,green,0,UP,100,L7OK\n`);
        env = { PATH: `${bin}:/usr/bin:/bin`, NODE_RAN: file("node-ran"), LOCK: layout.lockFile, STATS: file("stats"), WEIGHTS: file("weights") };
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    /** Runs the script; what the agent (the `node` stand-in) was started with and the lock it found. */
    function rollback(...args: string[]) {
        const r = spawnSync(layout.rollbackScript, args, { env, encoding: "utf8" });
        assert.strictEqual(r.status, 0, r.stderr);
        const [pid, argv, lock] = fs.readFileSync(file("node-ran"), "utf8").split("\n");
        const weights = fs.existsSync(file("weights")) ? fs.readFileSync(file("weights"), "utf8") : "";
        return { pid: Number(pid), argv, lock, weights, stderr: r.stderr };
    }

    const agentArgv = (...args: string[]) => [layout.agentPath, "rollback", "--config", layout.agentConfigPath, ...args].join(" ");

    it("flips a warm previous release itself, under a lock the agent it execs holds, and tells the agent when", () => {
        const before = Date.now();
        const ran = rollback("--json");
        assert.strictEqual(ran.weights, "set weight app/blue 100; set weight app/green 0\n");
        const m = new RegExp(`^${agentArgv("--script-flip", "(\\d+):(\\d+)", "--json")}$`).exec(ran.argv);
        assert.ok(m, ran.argv);
        const [started, flipped] = [Number(m[1]), Number(m[2])];
        assert.ok(before <= started && started <= flipped && flipped <= Date.now(), `${before} ${started} ${flipped}`);
        // The lock as agent/state/lock.ts reads it, naming the process the agent runs in.
        const lock = JSON.parse(ran.lock);
        assert.strictEqual(lock.pid, ran.pid);
        assert.deepStrictEqual([lock.command, lock.host, typeof lock.procStart], ["rollback", os.hostname(), "string"]);
        assert.ok(Math.abs(Date.parse(lock.startedAt) - started) < 1000, lock.startedAt);
        assert.deepStrictEqual(
            fs.readdirSync(layout.deployDir).filter((f) => f.startsWith("lock")),
            ["lock"],
            "no temp file left; the lock stays for the agent to release",
        );
        assert.ok(readLock(layout.lockFile));
    });

    for (const [what, prepare, args] of [
        ["another argument (the agent checks it)", () => undefined, ["--shift-plan", "50%:1s,100%"]],
        ["no warm previous release", () => fs.rmSync(layout.warmFlipFile), []],
        ["HAProxy does not see it UP with an L7OK check", () => fs.writeFileSync(file("stats"), `${HEADER}\napp,blue,0,DOWN,0,L4CON\n`), []],
        ["a check that has not run yet", () => fs.writeFileSync(file("stats"), `${HEADER}\napp,blue,0,UP,0,INI\n`), []],
        [
            "its slot runs another release",
            () => (fs.rmSync(path.join(layout.slotsDir, "blue")), fs.symlinkSync("../releases/v3", path.join(layout.slotsDir, "blue"))),
            [],
        ],
        ["a warm-flip file it does not understand", () => fs.writeFileSync(layout.warmFlipFile, "from=green\nto=green\nversion=v1\n"), []],
        ["a version with characters no version has", () => fs.writeFileSync(layout.warmFlipFile, "from=green\nto=blue\nversion=v1;reboot\n"), []],
    ] as [string, () => void, string[]][]) {
        it(`${what}: the agent's own rollback, with the lock free and no weight changed`, () => {
            prepare();
            const ran = rollback(...args);
            assert.strictEqual(ran.argv, agentArgv(...args));
            assert.strictEqual(ran.weights, "");
            assert.strictEqual(ran.lock, "", "the agent finds the lock free");
        });
    }

    it("a deploy holding the lock: the agent's own rollback (which reports it), the lock untouched", () => {
        const held = JSON.stringify({ pid: process.pid, command: "activate", version: "v3", startedAt: new Date().toISOString(), host: os.hostname() });
        fs.writeFileSync(layout.lockFile, held);
        const ran = rollback("--json");
        assert.strictEqual(ran.argv, agentArgv("--json"));
        assert.strictEqual(ran.weights, "");
        assert.strictEqual(ran.lock, held);
    });
});
