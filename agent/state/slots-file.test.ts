import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hostLayout } from "../../lib/host-layout";
import { parseShiftPlan } from "../../lib/shift-plan";
import { symlinkAtomic, writeFileAtomic } from "../common/fs-atomic";
import { committedWeights, emptyState, idleSlot, isPreviousWarm, readSlotsState, versionsInUse, writeSlotsState } from "./slots-file";

describe("slots-state", () => {
    it("derives the idle slot and the committed weights from the live slot", () => {
        const s = emptyState();
        assert.strictEqual(idleSlot(s), "blue");
        assert.strictEqual(committedWeights(s), undefined, "nothing live: nothing to restore");
        s.live = "blue";
        assert.strictEqual(idleSlot(s), "green");
        assert.deepStrictEqual(committedWeights(s), { blue: 100, green: 0 });
    });

    it("the previous release is warm only while its slot still runs it", () => {
        const s = emptyState();
        s.live = "green";
        s.slots.green = { version: "v2", running: true };
        s.slots.blue = { version: "v1", running: true };
        s.previous = { slot: "blue", version: "v1" };
        assert.strictEqual(isPreviousWarm(s), true);
        s.slots.blue = { version: "v3", running: true };
        assert.strictEqual(isPreviousWarm(s), false, "the slot was reused by a later (failed) deploy");
        s.slots.blue = { version: "v1", running: false };
        assert.strictEqual(isPreviousWarm(s), false);
    });

    it("versions in use: live, previous, running slots and a deploy in progress", () => {
        const s = emptyState();
        s.live = "green";
        s.slots.green = { version: "v2", running: true };
        s.slots.blue = { version: "v3", running: false };
        s.previous = { slot: "blue", version: "v1" };
        s.deploying = { version: "v4", slot: "blue", pid: 1, startedAt: "" };
        assert.deepStrictEqual([...versionsInUse(s)].sort(), ["v1", "v2", "v4"]);
    });

    it("round-trips through the file and tolerates a missing or partial one", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-state-"));
        try {
            const layout = hostLayout("shop", { root: dir });
            const file = layout.stateFile;
            assert.deepStrictEqual(readSlotsState(file).slots, emptyState().slots);
            const s = emptyState();
            s.live = "blue";
            s.slots.blue = { version: "v1", running: true };
            writeSlotsState(layout, s);
            assert.deepStrictEqual(readSlotsState(file).slots.blue, { version: "v1", running: true });
            fs.writeFileSync(file, JSON.stringify({ live: "green", slots: { green: { version: "v9" } } }));
            const partial = readSlotsState(file);
            assert.deepStrictEqual(partial.slots.green, { version: "v9", running: false });
            assert.deepStrictEqual(partial.slots.blue, { version: null, running: false });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("reads what an earlier agent wrote: `runtime` as the activation, the last shift's old names and units as the settings' own", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-state-"));
        try {
            const file = path.join(dir, "slots.json");
            const activation = { port: 8001, healthPath: "/healthz", healthHost: "shop.localhost", startCommand: "app $PORT", envSha256: "ab" };
            fs.writeFileSync(
                file,
                JSON.stringify({
                    live: "blue",
                    slots: { blue: { version: "v2", running: true, runtime: activation }, green: { version: "v1", running: true } },
                    previous: { slot: "green", version: "v1", runtime: { ...activation, port: 8002 } },
                    deploying: null,
                    lastShift: {
                        plan: "10:30,100:0",
                        maxErrorRatio: 0.02,
                        minRequests: 5,
                        maxStepExtensionSeconds: 30,
                        healthTimeoutSeconds: 90,
                        drainTimeoutSeconds: 20,
                        keepWarm: false,
                    },
                }),
            );
            const s = readSlotsState(file);
            assert.deepStrictEqual(s.slots.blue.activation, activation);
            assert.deepStrictEqual(s.previous?.activation, { ...activation, port: 8002 });
            assert.ok(!("runtime" in s.slots.blue));
            assert.deepStrictEqual(s.lastShift, {
                shiftPlan: parseShiftPlan("10:30,100:0"),
                maxErrorRatio: 0.02,
                minRequestsPerStep: 5,
                maxStepExtension: 30,
                healthTimeout: 90,
                drainTimeout: 20,
                keepPreviousWarm: false,
            });
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });

    it("atomic writes and symlink swaps leave no temp files and honour the mode", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-atomic-"));
        try {
            const f = path.join(dir, "env");
            writeFileAtomic(f, "A=1\n", { mode: 0o600 });
            writeFileAtomic(f, "A=2\n", { mode: 0o600 });
            assert.strictEqual(fs.readFileSync(f, "utf8"), "A=2\n");
            assert.strictEqual(fs.statSync(f).mode & 0o777, 0o600);
            const link = path.join(dir, "current");
            symlinkAtomic("releases/v1", link);
            symlinkAtomic("releases/v2", link);
            assert.strictEqual(fs.readlinkSync(link), "releases/v2");
            assert.deepStrictEqual(fs.readdirSync(dir).sort(), ["current", "env"]);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
