import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseShiftPlan } from "../../lib/shift-plan";
import { LockInfo } from "../state/lock";
import { deployProgress } from "./status-report";
import { emptyState, SlotsState } from "../state/slots-file";
import { ServerStats, toServerStats } from "../proxy/haproxy-stats";

function server(name: string, weight: number, status = "UP"): ServerStats {
    return toServerStats({ svname: name, status, check_status: status === "UP" ? "L7OK" : "L4CON", weight: String(weight) });
}

describe("status report: a running deploy's phase", () => {
    const lock: LockInfo = { pid: 4242, command: "activate", version: "v2", startedAt: new Date().toISOString(), host: "h" };
    let logs: string;

    function state(deploying: boolean, live: "blue" | "green" = "blue", liveVersion = "v1"): SlotsState {
        const s = emptyState();
        s.live = live;
        s.slots.blue = { version: live === "blue" ? liveVersion : "v0", running: true };
        s.slots.green = { version: "v2", running: deploying || live === "green" };
        s.lastShift = { shiftPlan: parseShiftPlan("10:5,50:5,100:0"), maxErrorRatio: 0.01, healthTimeout: 30, drainTimeout: 30 };
        if (deploying) s.deploying = { version: "v2", slot: "green", pid: 4242, startedAt: lock.startedAt };
        return s;
    }

    before(() => {
        logs = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-status-"));
        fs.writeFileSync(path.join(logs, "20261201-activate-v2-1.log"), "a\nstep 1/3 (10%): green (v2) 10%, blue (v1) 90%; holding 5s\n");
    });
    after(() => fs.rmSync(logs, { recursive: true, force: true }));

    it("names each phase from slots.json, the lock and HAProxy's view of the new slot", () => {
        const cases: [SlotsState, Record<string, ServerStats>, string, number | null][] = [
            [state(false), { blue: server("blue", 100) }, "migrate", null],
            [state(true), { blue: server("blue", 100), green: server("green", 0, "DOWN") }, "start-and-readiness", null],
            [state(true), { blue: server("blue", 100), green: server("green", 0) }, "smoke", null],
            [state(true), { blue: server("blue", 90), green: server("green", 10) }, "shift", 1],
            [state(true), { blue: server("blue", 50), green: server("green", 50) }, "shift", 2],
            [state(true), { blue: server("blue", 0), green: server("green", 100) }, "shift", 3],
            [state(false, "green", "v2"), { blue: server("blue", 0), green: server("green", 100) }, "retire-old-slot", null],
        ];
        for (const [s, stats, phase, step] of cases) {
            const p = deployProgress(s, lock, stats, logs, 5);
            assert.strictEqual(p.phase, phase, JSON.stringify(stats));
            assert.strictEqual(p.step?.index ?? null, step, phase);
            if (step) assert.strictEqual(p.step?.count, 3);
        }
    });

    it("carries the worker's last log lines and the gate's threshold", () => {
        const p = deployProgress(state(true), lock, { green: server("green", 10) }, logs, 1);
        assert.deepStrictEqual(p.logTail, ["step 1/3 (10%): green (v2) 10%, blue (v1) 90%; holding 5s"]);
        assert.strictEqual(p.maxErrorRatio, 0.01);
        assert.strictEqual(p.slot, "green");
    });

    it("does not guess phases for commands that do not shift", () => {
        assert.strictEqual(deployProgress(state(false), { ...lock, command: "prune" }, {}, logs, 0).phase, "other");
    });
});
