import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { hostLayout } from "../../lib/host-layout";
import { emptyState, SlotsState, warmFlipOf, writeSlotsState } from "./slots-file";

function liveGreenWarmBlue(): SlotsState {
    return {
        ...emptyState(),
        live: "green",
        slots: { blue: { version: "v1", running: true }, green: { version: "v2", running: true } },
        previous: { slot: "blue", version: "v1" },
    };
}

describe("warm flip file", () => {
    it("names the flip while the previous release runs on its slot and no deploy is in progress", () => {
        assert.deepStrictEqual(warmFlipOf(liveGreenWarmBlue()), { from: "green", to: "blue", version: "v1" });
        const s = liveGreenWarmBlue();
        assert.strictEqual(warmFlipOf({ ...s, slots: { ...s.slots, blue: { version: "v1", running: false } } }), undefined, "stopped");
        assert.strictEqual(warmFlipOf({ ...s, slots: { ...s.slots, blue: { version: "v3", running: true } } }), undefined, "another release there");
        assert.strictEqual(warmFlipOf({ ...s, deploying: { version: "v3", slot: "blue", pid: 1, startedAt: "" } }), undefined, "a deploy in progress");
        assert.strictEqual(warmFlipOf({ ...s, previous: null }), undefined);
        assert.strictEqual(warmFlipOf(emptyState()), undefined);
    });

    it("is written with every slots.json beside it, root only, and removed when no warm flip is possible", () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-warm-flip-"));
        try {
            const layout = hostLayout("shop", { root: dir });
            fs.mkdirSync(layout.deployDir, { recursive: true });
            const flipFile = layout.warmFlipFile;
            assert.strictEqual(path.dirname(flipFile), path.dirname(layout.stateFile), "beside slots.json");
            writeSlotsState(layout, liveGreenWarmBlue());
            assert.strictEqual(fs.readFileSync(flipFile, "utf8"), "from=green\nto=blue\nversion=v1\n");
            assert.strictEqual(fs.statSync(flipFile).mode & 0o777, 0o600);
            writeSlotsState(layout, { ...liveGreenWarmBlue(), deploying: { version: "v3", slot: "blue", pid: 1, startedAt: "" } });
            assert.ok(!fs.existsSync(flipFile));
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
        }
    });
});
