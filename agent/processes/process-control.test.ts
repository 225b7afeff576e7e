// Command process control with a pids command (hosts without systemd, the benchmark): the slot's
// processes get the deploy's nice level and idle I/O class while it boots, and the default again
// once it takes traffic, as a systemd unit's processes do.
import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import { silentLogger } from "../common/log";
import { createProcessControl } from "./process-control";

const isRoot = process.getuid?.() === 0;

/** The nice level of a process's session ("/autogroup-7 nice 15"). */
function sessionNiceOf(pid: number): number {
    return Number(/nice (-?\d+)/.exec(fs.readFileSync(`/proc/${pid}/autogroup`, "utf8"))?.[1]);
}

function niceOf(pid: number): number {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
}

describe("command process control: the slot's priority through its pids command", () => {
    it("deploy: nice 15 and idle I/O on every listed process and its session; live: back to nice 0", async function () {
        // Each in a session of its own, as a supervisor starts a slot.
        const children = [spawn("sleep", ["30"], { detached: true }), spawn("sleep", ["30"], { detached: true })];
        const autogroup = fs.existsSync("/proc/self/autogroup") ? "; autogroup nice 15" : "";
        try {
            const pids = children.map((c) => c.pid!);
            const pc = createProcessControl(
                { kind: "command", start: "true", stop: "true", pids: `test {slot} = green && echo ${pids.join(" ")}` },
                "",
                silentLogger,
            );
            assert.strictEqual(await pc.setPriority("green", "deploy"), `no cgroup weights; nice 15 on 2 processes${autogroup}`);
            assert.deepStrictEqual(pids.map(niceOf), [15, 15]);
            if (autogroup) assert.deepStrictEqual(pids.map(sessionNiceOf), [15, 15]);
            const io = spawn("ionice", ["-p", String(pids[0])], { stdio: ["ignore", "pipe", "ignore"] });
            let out = "";
            io.stdout.on("data", (c: Buffer) => (out += c.toString()));
            await new Promise((r) => io.on("close", r));
            assert.strictEqual(out.trim(), "idle");
            assert.strictEqual(await pc.setPriority("blue", "deploy"), "no cgroup weights; nice 15 on 0 processes");
            // Lowering a nice level takes root.
            if (!isRoot) return;
            assert.strictEqual(await pc.setPriority("green", "live"), `no cgroup weights; nice 0 on 2 processes${autogroup.replace("15", "0")}`);
            assert.deepStrictEqual(pids.map(niceOf), [0, 0]);
            if (autogroup) assert.deepStrictEqual(pids.map(sessionNiceOf), [0, 0]);
        } finally {
            for (const c of children) c.kill("SIGKILL");
        }
    });

    it("without a pids command there is nothing to set, and it says so", async () => {
        const pc = createProcessControl({ kind: "command", start: "true", stop: "true" }, "", silentLogger);
        assert.strictEqual(await pc.setPriority("green", "deploy"), "not available with command process control");
    });
});
