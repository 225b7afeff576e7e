// The migration step with stand-in commands: a shell "manage.py" that answers the plan helper with a
// canned plan and records each migrate run. Runs as the app user when the tests run as root.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { buildAgentSettings } from "../../program/agent-settings";
import { parseCommand, tokenizeArgs } from "../../lib/contract/commands";
import { deployRelease } from "../deploy/deploy";
import { resolveShiftOptions } from "../deploy/shift-options";
import { migrateCommand } from "../commands/migrate";
import { AgentContext, createContext } from "../context";
import { PLAN_MARKER } from "./django-plan";
import { GateError } from "../common/errors";
import { Logger } from "../common/log";
import { lockRetryPause, parseMigrateOutput, readMigrationMarker, runMigrationStep, withLockTimeout } from "./migration-step";
import { RELEASE_MARKER } from "../release/releases";
import { isRoot, lookupUser } from "../common/run-command";
import { emptyState, readSlotsState, writeSlotsState } from "../state/slots-file";

// As root the commands run as the app user, which must exist: borrow "nobody".
const APP = isRoot() && lookupUser("nobody") ? "nobody" : "shop";

const MANAGE_PY = `#!/bin/sh
# A stand-in for Django's manage.py: "shell" prints the canned plan, "migrate" records the run.
out="$OUT_DIR"
case "$1" in
shell)
    echo "settings noise on stdout"
    echo "a warning on stderr" >&2
    printf '${PLAN_MARKER}%s\\n' "$(cat plan.json)"
    ;;
migrate)
    echo "run" >> "$out/migrate-runs"
    env | grep -E '^(PGOPTIONS|LIVE_VERSION|RELEASE_VERSION|CACHE_KEY_PREFIX|SLOTSHIFT_[A-Z_]+)=' | sort > "$out/migrate-env"
    echo "Operations to perform:"
    if [ -s "$out/lock-fails" ]; then
        # Gives up on a lock this many more times ("x" a time).
        sed -i '$ d' "$out/lock-fails"
        printf '  Applying app.0002_x...'
        echo "Traceback (most recent call last):" >&2
        echo 'django.db.utils.OperationalError: canceling statement due to lock timeout' >&2
        exit 1
    fi
    if [ -f fail ]; then
        printf '  Applying app.0002_x... OK\\n  Applying app.0003_y...'
        echo "Traceback (most recent call last):" >&2
        echo '  File "x.py", line 1' >&2
        echo 'django.db.utils.IntegrityError: check constraint "c" of relation "t" is violated by some row' >&2
        exit 1
    fi
    echo "  Applying app.0002_x... OK"
    ;;
esac
`;

interface Fixture {
    root: string;
    out: string;
    ctx: AgentContext;
    lines: string[];
    release: string;
}

function fixture(migrations: { command?: string; check?: string } = {}): Fixture {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-migrate-"));
    // The app user must reach the release dir and write its records.
    fs.chmodSync(root, 0o755);
    const settings = buildAgentSettings(
        {
            appName: APP,
            domain: "shop.example.com",
            healthPath: "/healthz",
            smokePaths: ["/"],
            slotBasePort: 18001,
            haproxyPort: 18080,
            keepPreviousWarm: true,
            releasesToKeep: 5,
            migrateCommand: "command" in migrations ? migrations.command : "sh manage.py migrate --noinput",
            migrationCheck: migrations.check,
            dbLockTimeout: 2.5,
            dbLockRetries: 2,
        },
        {
            root,
            processControl: { kind: "command", start: "true", stop: "true" },
        },
    );
    settings.migrations.lockRetryBackoffMs = 50;
    const lines: string[] = [];
    const log: Logger = { info: (m) => lines.push(m), warn: (m) => lines.push(`warning: ${m}`) };
    const ctx = createContext(settings, log);
    const out = path.join(root, "out");
    fs.mkdirSync(out, { mode: 0o777 });
    fs.chmodSync(out, 0o777);
    const release = path.join(ctx.layout.releasesDir, "v2");
    fs.mkdirSync(release, { recursive: true });
    for (let d = release; d !== root; d = path.dirname(d)) fs.chmodSync(d, 0o755);
    fs.writeFileSync(path.join(release, RELEASE_MARKER), "{}\n");
    fs.writeFileSync(path.join(release, "manage.py"), MANAGE_PY, { mode: 0o755 });
    fs.mkdirSync(path.dirname(ctx.layout.envFile), { recursive: true });
    fs.writeFileSync(ctx.layout.envFile, `OUT_DIR="${out}"\nPGOPTIONS="-c statement_timeout=10000"\n`, { mode: 0o644 });
    return { root, out, ctx, lines, release };
}

function setPlan(f: Fixture, plan: { migration: string; sql: string[] }[]): void {
    fs.writeFileSync(
        path.join(f.release, "plan.json"),
        JSON.stringify({ vendor: "postgresql", conflicts: {}, plan: plan.map((m) => ({ ...m, atomic: true, backwards: false, operations: ["op"] })) }),
        { mode: 0o644 },
    );
}

const DROP = [{ migration: "app.0002_x", sql: ['ALTER TABLE "notes_note" DROP COLUMN "author" CASCADE;'] }];
const ADD = [{ migration: "app.0002_x", sql: ['ALTER TABLE "notes_note" ADD COLUMN "title" varchar(10) NULL;'] }];

function runs(f: Fixture): number {
    try {
        return fs.readFileSync(path.join(f.out, "migrate-runs"), "utf8").trim().split("\n").length;
    } catch {
        return 0;
    }
}

async function rejected(p: Promise<unknown>): Promise<GateError> {
    try {
        await p;
    } catch (e) {
        assert.ok(e instanceof GateError, `expected a GateError, got ${(e as Error).stack}`);
        return e;
    }
    assert.fail("expected the step to fail");
}

describe("migration step", function () {
    this.timeout(20_000);
    const fixtures: Fixture[] = [];
    const make = (m?: Parameters<typeof fixture>[0]) => {
        const f = fixture(m);
        fixtures.push(f);
        return f;
    };
    after(() => fixtures.forEach((f) => fs.rmSync(f.root, { recursive: true, force: true })));

    it("does nothing without a migrate command", async () => {
        const f = make({ command: undefined });
        const o = await runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] });
        assert.deepStrictEqual([o.ran, o.skipped], [false, "no migrateCommand"]);
    });

    it("Django check: refuses a drop of a column the live release may read, naming it and the acknowledgement; migrates nothing", async () => {
        const f = make();
        setPlan(f, DROP);
        const e = await rejected(runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] }));
        assert.strictEqual(e.gate, "migration-safety");
        assert.match(e.message, /^migration-safety gate refused v2: 1 operation\(s\) the live release v1 may not survive/);
        assert.match(e.message, /app\.0002_x: drop_column notes_note\.author — drops a column \(ALTER TABLE "notes_note" DROP COLUMN "author" CASCADE\)/);
        assert.match(e.message, /^ {2}- app\.0002_x:drop_column:notes_note\.author$/m);
        assert.strictEqual(runs(f), 0);
        assert.strictEqual(readMigrationMarker(f.ctx, "v2"), undefined);
        // The helper's stderr streams to the log; its stdout (the plan) does not.
        assert.ok(f.lines.some((l) => l.includes("a warning on stderr")));
        assert.ok(!f.lines.some((l) => l.includes(PLAN_MARKER)));
    });

    it("acknowledged: migrates once per version, with the lock timeout after the app's PGOPTIONS", async () => {
        const f = make();
        setPlan(f, DROP);
        const o = await runMigrationStep(f.ctx, {
            version: "v2",
            liveVersion: "v1",
            allow: ["app.0002_x:drop_column:notes_note.author", "app.0009_z:drop_table:t"],
        });
        assert.deepStrictEqual([o.ran, o.applied, o.allowed, o.pending], [true, ["app.0002_x"], ["app.0002_x:drop_column:notes_note.author"], ["app.0002_x"]]);
        assert.ok(
            f.lines.some((l) => /warning: allowContractOperations entry app\.0009_z:drop_table:t matches no pending operation of v2/.test(l)),
            f.lines.join("\n"),
        );
        const env = fs.readFileSync(path.join(f.out, "migrate-env"), "utf8");
        assert.match(env, /^PGOPTIONS=-c statement_timeout=10000 -c lock_timeout=2500ms -c statement_timeout=600000ms$/m);
        assert.match(env, /^LIVE_VERSION=v1$/m);
        assert.match(env, /^RELEASE_VERSION=v2$/m);
        assert.match(env, new RegExp(`^CACHE_KEY_PREFIX=${APP}:v2$`, "m"));
        assert.match(env, /^SLOTSHIFT_DB_LOCK_TIMEOUT_MS=2500$/m);
        assert.deepStrictEqual(readMigrationMarker(f.ctx, "v2")?.applied, ["app.0002_x"]);

        const again = await runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] });
        assert.deepStrictEqual([again.ran, again.skipped], [false, "already migrated"]);
        assert.strictEqual(runs(f), 1);
    });

    it("a failed migration names the migration it died in and the error; no record, so the next run tries again", async () => {
        const f = make();
        setPlan(f, ADD);
        fs.writeFileSync(path.join(f.release, "fail"), "");
        const e = await rejected(runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] }));
        assert.strictEqual(e.gate, "migration");
        assert.match(
            e.message,
            /^migration of v2 failed in app\.0003_y \(exit 1\): django\.db\.utils\.IntegrityError: check constraint "c" of relation "t" is violated by some row; applied before it: app\.0002_x$/,
        );
        assert.strictEqual(readMigrationMarker(f.ctx, "v2"), undefined);
        fs.rmSync(path.join(f.release, "fail"));
        assert.strictEqual((await runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] })).ran, true);
    });

    it("a migration that gives up on lock_timeout is tried again after a pause, each attempt logged, and succeeds on its second", async () => {
        const f = make();
        setPlan(f, ADD);
        fs.writeFileSync(path.join(f.out, "lock-fails"), "x\n", { mode: 0o666 });
        fs.chmodSync(path.join(f.out, "lock-fails"), 0o666);
        const o = await runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] });
        assert.deepStrictEqual([o.ran, o.attempts, o.applied, runs(f)], [true, 2, ["app.0002_x"], 2]);
        assert.ok(
            f.lines.some((l) => /^migrate \(attempt 1 of 3\): sh manage\.py migrate --noinput .*lock_timeout 2500 ms, statement_timeout 600000 ms$/.test(l)),
            f.lines.join("\n"),
        );
        assert.ok(
            f.lines.some((l) => /^warning: attempt 1 of 3 gave up on lock_timeout in app\.0002_x; trying again in /.test(l)),
            f.lines.join("\n"),
        );
        assert.ok(f.lines.some((l) => /^migrate \(attempt 2 of 3\)/.test(l)));
    });

    it("gives up after the configured retries; other failures are not retried", async () => {
        const f = make();
        setPlan(f, ADD);
        fs.writeFileSync(path.join(f.out, "lock-fails"), "x\nx\nx\nx\n", { mode: 0o666 });
        fs.chmodSync(path.join(f.out, "lock-fails"), 0o666);
        const e = await rejected(runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] }));
        assert.match(e.message, /^migration of v2 failed in app\.0002_x \(exit 1\): .*canceling statement due to lock timeout \(attempt 3 of 3\)$/);
        assert.strictEqual(runs(f), 3);
        fs.rmSync(path.join(f.out, "lock-fails"));
        fs.writeFileSync(path.join(f.release, "fail"), "");
        await rejected(runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] }));
        assert.strictEqual(runs(f), 4);
    });

    it("a lock-safety refusal gives the safe recipe and the acknowledgement; acknowledged, it runs", async () => {
        const f = make();
        setPlan(f, [{ migration: "app.0002_x", sql: ['CREATE INDEX "notes_note_text_idx" ON "notes_note" ("text");'] }]);
        const e = await rejected(runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] }));
        assert.match(e.message, /app\.0002_x: create_index notes_note — builds an index on an existing table while holding a lock that blocks its writes/);
        assert.match(e.message, /^ {6}safe: CREATE INDEX CONCURRENTLY in a migration with atomic = False/m);
        assert.match(e.message, /^ {2}- app\.0002_x:create_index:notes_note$/m);
        assert.strictEqual(runs(f), 0);
        const o = await runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: ["app.0002_x:create_index:notes_note"] });
        assert.deepStrictEqual([o.ran, o.allowed], [true, ["app.0002_x:create_index:notes_note"]]);
    });

    it("first deploy: nothing is live, so the gate has nothing to protect and the migration runs", async () => {
        const f = make();
        setPlan(f, DROP);
        assert.strictEqual((await runMigrationStep(f.ctx, { version: "v2", liveVersion: null, allow: [] })).ran, true);
    });

    it("--check-only reports the plan and migrates nothing", async () => {
        const f = make();
        setPlan(f, ADD);
        const o = await runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [], checkOnly: true });
        assert.deepStrictEqual([o.ran, o.pending], [false, ["app.0002_x"]]);
        assert.strictEqual(runs(f), 0);
    });

    it("a check command of the app's own: its non-zero exit blocks with its output; zero lets the migration run", async () => {
        const f = make({ check: `sh -c 'echo "refusing: $SLOTSHIFT_ALLOW_CONTRACT for $RELEASE_VERSION over $LIVE_VERSION"; test -f ok'` });
        const e = await rejected(runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: ["m.1:drop_table:t"] }));
        assert.strictEqual(e.gate, "migration-safety");
        assert.match(e.message, /^migration-safety gate refused v2: sh -c .* exited 1\n {2}refusing: m\.1:drop_table:t for v2 over v1\nNothing was migrated$/);
        assert.strictEqual(runs(f), 0);
        fs.writeFileSync(path.join(f.release, "ok"), "");
        assert.strictEqual((await runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] })).ran, true);
    });

    it("the migrate command: --check-only under the lock against the live release; then a real run, audited", async () => {
        const f = make();
        setPlan(f, ADD);
        const state = emptyState();
        state.live = "blue";
        state.slots.blue = { version: "v1", running: true };
        writeSlotsState(f.ctx.layout, state);
        await migrateCommand(f.ctx, parseCommand("migrate", tokenizeArgs(["migrate", "--version", "v2", "--check-only"])));
        assert.deepStrictEqual([f.ctx.result.live, f.ctx.result.ran, f.ctx.result.pending, runs(f)], ["v1", false, ["app.0002_x"], 0]);
        await migrateCommand(f.ctx, parseCommand("migrate", tokenizeArgs(["migrate", "v2", "--allow-contract-operations", "app.0002_x:drop_table:t"])));
        assert.deepStrictEqual([f.ctx.result.ran, runs(f)], [true, 1]);
        const audit = fs
            .readFileSync(f.ctx.layout.auditLog, "utf8")
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l));
        assert.deepStrictEqual(
            audit.map((a) => [a.command, a.result]),
            [["migrate", "ok"]],
        );
        assert.ok(!fs.existsSync(f.ctx.layout.lockFile), "the lock is released");
        await assert.rejects(
            async () => migrateCommand(f.ctx, parseCommand("migrate", tokenizeArgs(["migrate", "v2", "--allow-contract-operations", "drop everything"]))),
            /--allow-contract-operations "drop everything": item 1 "drop everything" is not MIGRATION:OPERATION:TARGET/,
        );
    });

    it("migrationCheck none: no gate", async () => {
        const f = make({ check: "none" });
        setPlan(f, DROP);
        assert.strictEqual((await runMigrationStep(f.ctx, { version: "v2", liveVersion: "v1", allow: [] })).ran, true);
    });

    it("activate: a refused migration leaves the slots as they were and says traffic never left the live release", async () => {
        const f = make();
        setPlan(f, DROP);
        const state = emptyState();
        state.live = "blue";
        state.slots.blue = { version: "v1", running: true };
        state.slots.green = { version: "v0", running: true };
        writeSlotsState(f.ctx.layout, state);
        const before = fs.readFileSync(f.ctx.layout.stateFile, "utf8");
        const e = await rejected(deployRelease(f.ctx, { command: "activate", version: "v2", opts: resolveShiftOptions({}, true), migrate: { allow: [] } }));
        assert.strictEqual(e.gate, "migration-safety");
        assert.match(e.message, /Nothing was migrated; traffic never left blue \(v1\)$/);
        assert.strictEqual(fs.readFileSync(f.ctx.layout.stateFile, "utf8"), before);
        assert.strictEqual(readSlotsState(f.ctx.layout.stateFile).deploying, null);
        const audit = fs
            .readFileSync(f.ctx.layout.auditLog, "utf8")
            .trim()
            .split("\n")
            .map((l) => JSON.parse(l));
        assert.deepStrictEqual([audit.length, audit[0].result, audit[0].gate, audit[0].from], [1, "failed", "migration-safety", "v1@blue"]);
        assert.strictEqual(f.ctx.result.gate, "migration-safety");
    });
});

describe("migration step: pure parts", () => {
    it("appends the lock timeout after the app's own PGOPTIONS, so it wins", () => {
        assert.strictEqual(withLockTimeout(undefined, 5000), "-c lock_timeout=5000ms");
        assert.strictEqual(withLockTimeout(" -c search_path=app ", 500), "-c search_path=app -c lock_timeout=500ms");
        assert.strictEqual(
            withLockTimeout("-c statement_timeout=1000", 500, 60000),
            "-c statement_timeout=1000 -c lock_timeout=500ms -c statement_timeout=60000ms",
        );
        assert.deepStrictEqual(
            [1, 2, 3, 10].map((a) => lockRetryPause(a, 2000)),
            [2000, 4000, 8000, 60000],
        );
    });

    it("reads Django's migrate progress, including a line a traceback was glued to", () => {
        assert.deepStrictEqual(parseMigrateOutput(["  Applying a.1... OK", "  Applying a.2...Traceback (most recent call last):", "x"]), {
            applied: ["a.1"],
            failedIn: "a.2",
        });
        assert.deepStrictEqual(parseMigrateOutput(["  Applying a.1... OK", "  Applying a.2... OK"]), { applied: ["a.1", "a.2"], failedIn: undefined });
    });
});
