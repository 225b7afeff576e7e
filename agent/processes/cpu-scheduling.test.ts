import * as assert from "assert";
import { spawn } from "child_process";
import * as fs from "fs";
import { autogroupNiceShellLine, ownCpuCgroup } from "./cpu-scheduling";

const UNIT = "/system.slice/system-shop.slice/shop@green.service";

describe("cpu scheduling of a unit", () => {
    it("legacy hierarchy: a unit left in the root CPU cgroup has none of its own (its CPUWeight counts for nothing)", () => {
        const procCgroup = [`9:name=systemd:${UNIT}`, "4:memory:/", "2:cpuacct:/", "1:cpu:/", `0::${UNIT}`].join("\n");
        assert.strictEqual(
            ownCpuCgroup(procCgroup, UNIT, () => true),
            false,
        );
    });

    it("legacy hierarchy with a delegated CPU controller: the unit's own cgroup", () => {
        const procCgroup = [`9:name=systemd:${UNIT}`, `2:cpu,cpuacct:${UNIT}`].join("\n");
        assert.strictEqual(
            ownCpuCgroup(procCgroup, UNIT, () => false),
            true,
        );
    });

    it("unified hierarchy: own only where the unit's cgroup has the cpu controller", () => {
        assert.strictEqual(
            ownCpuCgroup(`0::${UNIT}`, UNIT, (p) => p === UNIT),
            true,
        );
        assert.strictEqual(
            ownCpuCgroup(`0::${UNIT}`, UNIT, () => false),
            false,
        );
        assert.strictEqual(
            ownCpuCgroup("0::/user.slice", UNIT, () => true),
            false,
        );
    });

    it("the autogroup line raises the shell's own autogroup nice level where the kernel has autogroups, and is silent elsewhere", async () => {
        // detached: a session (so an autogroup) of its own; the test never lowers the runner's.
        const child = spawn("/bin/sh", ["-c", `${autogroupNiceShellLine(7)}\ncat /proc/self/autogroup 2>/dev/null; echo done`], { detached: true });
        let out = "";
        let err = "";
        child.stdout.on("data", (c: Buffer) => (out += c.toString()));
        child.stderr.on("data", (c: Buffer) => (err += c.toString()));
        const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
        assert.strictEqual(code, 0, err);
        assert.strictEqual(err, "");
        if (!fs.existsSync("/proc/self/autogroup")) return assert.strictEqual(out, "done\n");
        assert.match(out, /^\/autogroup-\d+ nice 7\ndone\n$/);
    });
});
