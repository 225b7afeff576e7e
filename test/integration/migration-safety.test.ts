// Lock safety and the rehearsal against the real thing: the example Django app's releases (Debian's
// Django 3.2, gunicorn) on a throwaway PostgreSQL cluster, migrated by the agent's own step with the
// rehearsal on. Each lock-safety rule is refused in its unsafe form and accepted in its safe one
// (which also passes the rehearsal); a migration every static rule lets through but that breaks
// the live release's raw SQL is refused by the rehearsal while the live release serves under load;
// a migration that gives up on lock_timeout succeeds on its second attempt.
import * as assert from "assert";
import { ChildProcess, execFileSync, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as os from "os";
import * as path from "path";
import { buildAgentSettings } from "../../program/agent-settings";
import { prepareCommand } from "../../agent/commands/prepare";
import { AgentContext, createContext } from "../../agent/context";
import { GateError } from "../../agent/common/errors";
import { Logger } from "../../agent/common/log";
import { runMigrationStep } from "../../agent/migrations/migration-step";
import { spareLoopbackPort } from "../../agent/migrations/rehearsal";
import { isRoot } from "../../agent/common/run-command";
import { djangoPostgresMissing, PgCluster, PYTHON } from "../../scripts/pg-cluster";

const REPO = path.resolve(__dirname, "..", "..");
const APP = isRoot() ? "postgres" : "shop";
const START = `${PYTHON} -m gunicorn --bind 127.0.0.1:$PORT --workers 2 --graceful-timeout 5 mysite.wsgi`;
const RELEASES = [
    "v1",
    "v2",
    "v2-lock-index",
    "v2-lock-index-safe",
    "v2-lock-check",
    "v2-lock-check-safe",
    "v2-lock-backfill",
    "v2-lock-backfill-safe",
    "v2-stats",
    "v2-stats-rename",
];

/** GETs of / and POSTs to /api/notes from a few loops until stopped; every non-2xx/3xx or error counts. */
function startLoad(port: number) {
    let running = true;
    const failures: string[] = [];
    let ok = 0;
    const once = (method: "GET" | "POST") =>
        new Promise<void>((resolve) => {
            const body = method === "POST" ? `text=${encodeURIComponent(`note under load ${ok}`)}` : undefined;
            const req = http.request(
                {
                    host: "127.0.0.1",
                    port,
                    path: method === "GET" ? "/" : "/api/notes",
                    method,
                    agent: false,
                    timeout: 10_000,
                    headers: {
                        Host: "shop.localhost",
                        ...(body ? { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(body) } : {}),
                    },
                },
                (res) => {
                    res.resume();
                    res.on("end", () => {
                        if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 400) ok++;
                        else failures.push(`${method} ${res.statusCode}`);
                        resolve();
                    });
                },
            );
            req.on("timeout", () => req.destroy(new Error("timeout")));
            req.on("error", (e) => {
                failures.push(`${method} ${e.message}`);
                resolve();
            });
            req.end(body);
        });
    const loops = [0, 1, 2].map(async (i) => {
        for (let n = 0; running; n++) await once(n % 4 === i % 4 ? "POST" : "GET");
    });
    return {
        stop: async () => {
            running = false;
            await Promise.all(loops);
            return { ok, failures };
        },
    };
}

describe("migration safety: lock-safety rules and the rehearsal on a real PostgreSQL", function () {
    this.timeout(300_000);
    let root: string;
    let pg: PgCluster;
    let ctx: AgentContext;
    const lines: string[] = [];
    const db = "shop";
    const sql = (q: string) => pg.sql(db, q);
    const releases = () => path.join(root, "releases-out");
    const migrate = (version: string, liveVersion: string | null, allow: string[] = []) =>
        runMigrationStep(ctx, { version, liveVersion, allow, healthTimeoutMs: 30_000 });
    const refused = async (p: Promise<unknown>): Promise<GateError> => {
        try {
            await p;
        } catch (e) {
            assert.ok(e instanceof GateError, (e as Error).stack);
            console.log(`      ${e.gate}: ${e.message.split("\n").slice(0, 3).join(" / ")}`);
            return e;
        }
        assert.fail(`expected a refusal; log:\n${lines.slice(-40).join("\n")}`);
    };
    const applied = () => sql("SELECT string_agg(name, ',' ORDER BY id) FROM django_migrations WHERE app = 'notes'");
    const lastApplied = () => applied().split(",").pop();
    const scratchDatabases = () => sql("SELECT count(*) FROM pg_database WHERE datname LIKE '%rehearsal%'");

    before(async function () {
        const why = djangoPostgresMissing();
        if (why) {
            console.log(`      skipped: ${why}`);
            return this.skip();
        }
        root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-lock-safety-"));
        fs.chmodSync(root, 0o755);
        pg = PgCluster.start(root);
        pg.createdb(db);
        fs.mkdirSync(releases());
        execFileSync(path.join(REPO, "scripts", "build-example-releases.sh"), [releases()], { stdio: "pipe" });
        const settings = buildAgentSettings(
            {
                appName: APP,
                domain: "shop.localhost",
                healthPath: "/healthz",
                smokePaths: ["/", "/api/notes"],
                slotBasePort: 18001,
                haproxyPort: 18080,
                keepPreviousWarm: true,
                releasesToKeep: 20,
                migrateCommand: `${PYTHON} manage.py migrate --noinput`,
                startCommand: START,
                dbLockTimeout: 1,
                dbLockRetries: 2,
            },
            {
                root: path.join(root, "host"),
                processControl: { kind: "command", start: "true", stop: "true" },
            },
        );
        const log: Logger = { info: (m) => lines.push(m), warn: (m) => lines.push(`warning: ${m}`) };
        ctx = createContext(settings, log);
        fs.mkdirSync(path.dirname(ctx.layout.envFile), { recursive: true });
        fs.mkdirSync(ctx.layout.deployDir, { recursive: true });
        fs.writeFileSync(
            ctx.layout.envFile,
            `DATABASE_HOST="${pg.sock}"\nDATABASE_NAME="${db}"\nDATABASE_USER="${PgCluster.dbUser}"\nSECRET_KEY="test-only-key-0123456789abcdef"\n`,
            {
                mode: 0o644,
            },
        );
        for (let d = path.join(root, "host"); d !== root; d = path.dirname(d)) fs.chmodSync(d, 0o755);
        for (const v of RELEASES) await prepareCommand(ctx, { version: v, source: path.join(releases(), `${v}.tar.gz`) });
    });

    after(function () {
        if (!root) return;
        pg?.stop();
        if (!process.env.SLOTSHIFT_KEEP_TMP) fs.rmSync(root, { recursive: true, force: true });
    });

    it("v1, then v2: the rehearsal starts v1 on a copy of the schema migrated by v2; health and smoke pass; the scratch database is gone", async () => {
        assert.strictEqual((await migrate("v1", null)).ran, true);
        const o = await migrate("v2", "v1");
        assert.deepStrictEqual([o.ran, o.applied], [true, ["notes.0002_note_author"]]);
        assert.deepStrictEqual(
            o.rehearsal?.probes.map((p) => [p.path, p.status]),
            [
                ["/healthz", 200],
                ["/", 200],
                ["/api/notes", 200],
            ],
        );
        assert.strictEqual(scratchDatabases(), "0");
    });

    it("CREATE INDEX without CONCURRENTLY is refused with its recipe; AddIndexConcurrently in a non-atomic migration passes", async () => {
        const e = await refused(migrate("v2-lock-index", "v2"));
        assert.strictEqual(e.gate, "migration-safety");
        assert.match(e.message, /notes\.0003_note_text_index: create_index notes_note — builds an index on an existing table/);
        assert.match(e.message, /safe: CREATE INDEX CONCURRENTLY in a migration with atomic = False/);
        assert.match(e.message, /- notes\.0003_note_text_index:create_index:notes_note/);
        assert.strictEqual(sql("SELECT count(*) FROM pg_indexes WHERE indexname = 'notes_note_text_idx'"), "0");
        const o = await migrate("v2-lock-index-safe", "v2");
        assert.deepStrictEqual([o.ran, o.applied], [true, ["notes.0003_note_text_index"]]);
        assert.strictEqual(sql("SELECT count(*) FROM pg_indexes WHERE indexname = 'notes_note_text_idx'"), "1");
    });

    it("a CHECK constraint validated at once is refused; NOT VALID, then VALIDATE in a later migration, passes", async () => {
        sql("INSERT INTO notes_note (text, created_at) VALUES ('one two three', now())");
        const e = await refused(migrate("v2-lock-check", "v2-lock-index-safe"));
        assert.match(e.message, /notes\.0004_note_text_not_empty: add_check_constraint notes_note/);
        assert.match(e.message, /safe: add the constraint NOT VALID, VALIDATE CONSTRAINT in a later migration/);
        assert.strictEqual(lastApplied(), "0003_note_text_index");
        const o = await migrate("v2-lock-check-safe", "v2-lock-index-safe");
        assert.deepStrictEqual(o.applied, ["notes.0004_note_text_not_empty", "notes.0005_validate_note_text_not_empty"]);
        assert.strictEqual(sql("SELECT convalidated FROM pg_constraint WHERE conname = 'notes_note_text_not_empty'"), "t");
    });

    it("RunPython in the same atomic migration as the column it fills is refused; split, the backfill non-atomic, it passes", async () => {
        const e = await refused(migrate("v2-lock-backfill", "v2-lock-check-safe"));
        assert.match(e.message, /notes\.0006_note_words: run_python_with_ddl notes_note — runs Python in the same transaction as DDL/);
        assert.match(e.message, /- notes\.0006_note_words:run_python_with_ddl:notes_note/);
        assert.strictEqual(lastApplied(), "0005_validate_note_text_not_empty");
        const o = await migrate("v2-lock-backfill-safe", "v2-lock-check-safe");
        assert.deepStrictEqual(o.applied, ["notes.0006_note_words", "notes.0007_backfill_note_words"]);
        assert.strictEqual(sql("SELECT words FROM notes_note WHERE text = 'one two three'"), "3");
        assert.strictEqual((await migrate("v2-stats", "v2-lock-backfill-safe")).ran, true);
    });

    it("a view column rename the static rules let through is refused by the rehearsal, naming the path, status and error; the live release serves under load with 0 failures", async () => {
        // The live release v2-stats serves from the real database meanwhile.
        const port = await spareLoopbackPort();
        const [exe, ...args] = isRoot() ? ["runuser", "-u", APP, "--", "/bin/sh", "-c", `exec ${START}`] : ["/bin/sh", "-c", `exec ${START}`];
        const env = {
            PATH: process.env.PATH,
            LANG: "C.UTF-8",
            HOME: "/",
            DATABASE_HOST: pg.sock,
            DATABASE_NAME: db,
            DATABASE_USER: PgCluster.dbUser,
            SECRET_KEY: "test-only-key-0123456789abcdef",
            PORT: String(port),
        };
        const live: ChildProcess = spawn(exe, args, { cwd: path.join(ctx.layout.releasesDir, "v2-stats"), env, stdio: "ignore", detached: true });
        try {
            for (let i = 0; ; i++) {
                const up = await new Promise<boolean>((r) =>
                    http
                        .get({ host: "127.0.0.1", port, path: "/healthz", agent: false }, (res) => {
                            res.resume();
                            r(res.statusCode === 200);
                        })
                        .on("error", () => r(false)),
                );
                if (up) break;
                assert.ok(i < 100, "the live release did not come up");
                await new Promise((r) => setTimeout(r, 200));
            }
            const load = startLoad(port);
            await new Promise((r) => setTimeout(r, 1000));
            const t0 = Date.now();
            const e = await refused(migrate("v2-stats-rename", "v2-stats"));
            await new Promise((r) => setTimeout(r, 1000));
            const report = await load.stop();
            console.log(`      load: ${report.ok} requests answered, ${report.failures.length} failed; the rehearsal took ${Date.now() - t0} ms`);
            assert.strictEqual(e.gate, "rehearsal");
            assert.match(
                e.message,
                /^migration rehearsal refused v2-stats-rename: the live release v2-stats answered HTTP 500 on GET \/ against the schema v2-stats-rename's migrations leave/,
            );
            assert.match(e.message, /column "total" does not exist/);
            assert.match(e.message, /Nothing was migrated$/);
            assert.deepStrictEqual(report.failures, []);
            assert.ok(report.ok > 20, `the load made ${report.ok} requests`);
            // The real database is as it was; the scratch one and the instance are gone.
            assert.strictEqual(lastApplied(), "0008_notes_stats_view");
            assert.strictEqual(sql("SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_name = 'notes_stats'"), "total");
            assert.strictEqual(scratchDatabases(), "0");
            assert.ok(lines.some((l) => /rehearsal: instance pid \d+ stopped/.test(l)));
        } finally {
            try {
                process.kill(-live.pid!, "SIGTERM");
            } catch {
                // gone
            }
        }
    });

    it("a migration that gives up on lock_timeout is tried again and succeeds on its second attempt once the lock is released", async () => {
        // Without the rehearsal (it would refuse this release), so only the lock matters here.
        ctx.settings.migrations.migrationRehearsal = false;
        const [f, a] = pg.psqlArgv(db);
        const holder = spawn(f, a, { stdio: ["pipe", "ignore", "ignore"] });
        const closed = new Promise((r) => holder.on("close", r));
        holder.stdin!.write("BEGIN; LOCK TABLE notes_stats IN ACCESS SHARE MODE; SELECT 1;\n");
        await new Promise((r) => setTimeout(r, 500));
        const release = (async () => {
            // Released when the first attempt has given up, during the pause before the second.
            while (!lines.some((l) => /gave up on lock_timeout/.test(l))) await new Promise((r) => setTimeout(r, 100));
            holder.stdin!.end("COMMIT;\n");
        })();
        const o = await migrate("v2-stats-rename", "v2-stats");
        await release;
        await closed;
        assert.deepStrictEqual([o.ran, o.attempts, o.applied], [true, 2, ["notes.0009_rename_notes_stats_total"]]);
        assert.ok(lines.some((l) => /^migrate \(attempt 1 of 3\)/.test(l)));
        assert.ok(
            lines.some((l) => /^warning: attempt 1 of 3 gave up on lock_timeout in notes\.0009_rename_notes_stats_total; trying again in 2\.0s$/.test(l)),
            lines.slice(-20).join("\n"),
        );
        assert.ok(lines.some((l) => /^migrate \(attempt 2 of 3\)/.test(l)));
        assert.strictEqual(sql("SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_name = 'notes_stats'"), "notes");
    });
});
