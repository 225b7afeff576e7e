// `agent recover` (the boot unit's command) with systemd process control, against a stand-in
// `systemctl` on PATH that records its calls and answers is-active from a list of active units.
// The case it exists for: a boot after which the slot units are not running because nothing
// enabled them (NixOS: the module's slot unit has no [Install] section, so `systemctl enable` is
// a no-op there). The real systemd path is test/e2e/06-recovery.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import type { AgentSettings } from "../../lib/contract/agent-json";
import { hostLayout, Slot, slotPorts } from "../../lib/host-layout";
import { recoverCommand } from "../commands/recover";
import { AgentContext } from "../context";
import { HaproxyApi } from "../proxy/haproxy-api";
import { Logger } from "../common/log";
import { createProcessControl } from "../processes/process-control";
import { emptyState, SlotsState, writeSlotsState } from "../state/slots-file";

const APP = "shop";

/** `systemctl`: appends its arguments to calls.log; is-active succeeds for the units in active.list. */
const FAKE_SYSTEMCTL = `#!/bin/sh
dir=$(dirname "$0")
echo "$*" >> "$dir/calls.log"
if [ "$1" = is-active ]; then
  for unit; do :; done
  grep -qxF "$unit" "$dir/active.list" 2>/dev/null
  exit $?
fi
exit 0
`;

describe("recover after a boot: the slots slots.json records as running", function () {
    let root: string;
    let bin: string;
    let savedPath: string | undefined;
    let lines: string[];

    const calls = () => (fs.existsSync(path.join(bin, "calls.log")) ? fs.readFileSync(path.join(bin, "calls.log"), "utf8").trim().split("\n") : []);

    function context(active: string[], state: SlotsState): AgentContext {
        const layout = hostLayout(APP, { root });
        fs.writeFileSync(path.join(bin, "active.list"), active.map((s) => `${layout.unitTemplate}${s}.service\n`).join(""));
        writeSlotsState(layout, state);
        const log: Logger = { info: (m) => lines.push(m), warn: (m) => lines.push(`warning: ${m}`) };
        const weight = (slot: Slot) => (state.live === slot ? 100 : 0);
        // HAProxy came back with its saved state: the committed weights.
        const haproxy = {
            stats: async () => ({ blue: { weight: weight("blue") }, green: { weight: weight("green") } }),
        } as unknown as HaproxyApi;
        return {
            settings: { app: { appName: APP }, root, shift: { keepPreviousWarm: true } } as AgentSettings,
            layout,
            slotPorts: slotPorts(8001),
            log,
            haproxy,
            pc: createProcessControl({ kind: "systemd" }, layout.unitTemplate, log),
            abortReason: () => undefined,
            result: {},
        };
    }

    function committed(live: Slot, warmPrevious: boolean): SlotsState {
        const s = emptyState();
        const other: Slot = live === "blue" ? "green" : "blue";
        s.live = live;
        s.slots[live] = { version: "v2", running: true };
        s.slots[other] = { version: "v1", running: warmPrevious };
        s.previous = { slot: other, version: "v1" };
        return s;
    }

    beforeEach(() => {
        root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-recover-"));
        bin = path.join(root, "bin");
        fs.mkdirSync(bin);
        fs.writeFileSync(path.join(bin, "systemctl"), FAKE_SYSTEMCTL, { mode: 0o755 });
        savedPath = process.env.PATH;
        process.env.PATH = `${bin}:${savedPath ?? "/usr/bin:/bin"}`;
        lines = [];
    });

    afterEach(() => {
        process.env.PATH = savedPath;
        fs.rmSync(root, { recursive: true, force: true });
    });

    it("starts the live slot and the warm previous when neither runs, and says so in the audit log", async () => {
        const ctx = context([], committed("green", true));
        await recoverCommand(ctx, {});
        const unit = (s: Slot) => `${ctx.layout.unitTemplate}${s}.service`;
        assert.deepStrictEqual(
            calls().filter((c) => !c.startsWith("is-active")),
            [`enable --quiet ${unit("blue")}`, `start ${unit("blue")}`, `enable --quiet ${unit("green")}`, `start ${unit("green")}`],
        );
        assert.deepStrictEqual(ctx.result.started, ["blue", "green"]);
        assert.strictEqual(ctx.result.recovered, true);
        const audit = fs
            .readFileSync(ctx.layout.auditLog, "utf8")
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l));
        assert.deepStrictEqual(
            audit.map((a) => [a.command, a.actions]),
            [
                ["recover", ["started blue (v1)"]],
                ["recover", ["started green (v2)"]],
            ],
        );
    });

    it("leaves running slots alone (never a restart) and starts no slot recorded as stopped", async () => {
        const ctx = context(["green"], committed("green", false));
        await recoverCommand(ctx, {});
        assert.ok(
            calls().every((c) => c.startsWith("is-active")),
            `only is-active may run: ${calls().join(" | ")}`,
        );
        assert.deepStrictEqual(ctx.result.started, []);
        assert.strictEqual(ctx.result.recovered, false);
        assert.ok(lines.some((l) => /nothing to recover/.test(l)));
        assert.ok(!fs.existsSync(ctx.layout.auditLog), "no audit line when nothing changed");
    });
});
