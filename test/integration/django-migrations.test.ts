// The migration step against the real thing: the example Django app's releases (Debian's Django
// 3.2) on a throwaway PostgreSQL cluster (Unix socket in a temp dir, no TCP), prepared and migrated
// by the agent's own code. Checks what the gate reads from Django, what it refuses, and what the
// database looks like after a refused, a failed and a lock-timed-out migration.
import * as assert from "assert";
import { ChildProcess, execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { buildAgentSettings } from "../../program/agent-settings";
import { prepareCommand } from "../../agent/commands/prepare";
import { AgentContext, createContext } from "../../agent/context";
import { GateError } from "../../agent/common/errors";
import { Logger } from "../../agent/common/log";
import { readMigrationMarker, runMigrationStep } from "../../agent/migrations/migration-step";
import { isRoot, lookupUser } from "../../agent/common/run-command";

const REPO = path.resolve(__dirname, "..", "..");
const PYTHON = "/usr/bin/python3";
const PG_BIN = (() => {
    try {
        const versions = fs.readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
        return versions.map((v) => `/usr/lib/postgresql/${v}/bin`).find((d) => fs.existsSync(`${d}/initdb`));
    } catch {
        return undefined;
    }
})();
// PostgreSQL refuses to run as root: as root, the server and the app both run as `postgres`.
const APP = isRoot() ? "postgres" : "shop";

function missing(): string | undefined {
    if (!PG_BIN) return "no PostgreSQL server binaries (apt-get install postgresql)";
    if (spawnSync(PYTHON, ["-c", "import django, psycopg2"]).status !== 0)
        return `${PYTHON} cannot import django and psycopg2 (apt-get install python3-django python3-psycopg2)`;
    if (isRoot() && !lookupUser("postgres")) return "no postgres user";
    return undefined;
}

describe("migration step: example Django releases on a real PostgreSQL", function () {
    this.timeout(180_000);
    let root: string;
    let sock: string;
    let ctx: AgentContext;
    const lines: string[] = [];
    const releases = () => path.join(root, "releases-out");

    /** Runs as the database's owner (psql over the socket). */
    const asDbUser = (file: string, args: string[]) =>
        isRoot() ? (["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", file, ...args]] as const) : ([file, args] as const);
    const sql = (query: string): string => {
        const [f, a] = asDbUser(`${PG_BIN}/psql`, ["-X", "-q", "-tA", "-h", sock, "-d", "shop", "-c", query]);
        return execFileSync(f, a, { encoding: "utf8" }).trim();
    };
    const columns = () => sql("SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns WHERE table_name = 'notes_note'");
    const applied = () => sql("SELECT string_agg(name, ',' ORDER BY id) FROM django_migrations WHERE app = 'notes'");

    const migrate = (version: string, liveVersion: string | null, allow: string[] = []) => runMigrationStep(ctx, { version, liveVersion, allow });
    const refused = async (p: Promise<unknown>): Promise<GateError> => {
        try {
            await p;
        } catch (e) {
            assert.ok(e instanceof GateError, (e as Error).stack);
            console.log(`      ${e.gate}: ${e.message.split("\n").slice(0, 2).join(" / ")}`);
            return e;
        }
        assert.fail(`expected a refusal; log:\n${lines.slice(-30).join("\n")}`);
    };

    before(async function () {
        const why = missing();
        if (why) {
            console.log(`      skipped: ${why}`);
            return this.skip();
        }
        root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-django-"));
        fs.chmodSync(root, 0o755);
        sock = path.join(root, "sock");
        fs.mkdirSync(sock);
        if (isRoot()) execFileSync("chown", ["postgres:", root, sock]);
        const run = (file: string, args: string[]) => {
            const [f, a] = asDbUser(file, args);
            execFileSync(f, a, { stdio: "pipe" });
        };
        run(`${PG_BIN}/initdb`, ["-D", path.join(root, "pg"), "--auth-local=trust", "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8"]);
        run(`${PG_BIN}/pg_ctl`, [
            "-D",
            path.join(root, "pg"),
            "-l",
            path.join(root, "pg.log"),
            "-w",
            "-o",
            `-c listen_addresses='' -c unix_socket_directories='${sock}'`,
            "start",
        ]);
        run(`${PG_BIN}/createdb`, ["-h", sock, "shop"]);

        execFileSync(path.join(REPO, "scripts", "build-example-releases.sh"), [releases()], { stdio: "pipe" });
        const settings = buildAgentSettings(
            {
                appName: APP,
                domain: "shop.localhost",
                healthPath: "/healthz",
                smokePaths: ["/"],
                slotBasePort: 18001,
                haproxyPort: 18080,
                keepPreviousWarm: true,
                releasesToKeep: 10,
                migrateCommand: `${PYTHON} manage.py migrate --noinput`,
                dbLockTimeout: 1,
                dbLockRetries: 0,
            },
            {
                root: path.join(root, "host"),
                processControl: { kind: "command", start: "true", stop: "true" },
            },
        );
        const log: Logger = { info: (m) => lines.push(m), warn: (m) => lines.push(`warning: ${m}`) };
        ctx = createContext(settings, log);
        fs.mkdirSync(path.dirname(ctx.layout.envFile), { recursive: true });
        fs.writeFileSync(
            ctx.layout.envFile,
            `DATABASE_HOST="${sock}"\nDATABASE_NAME="shop"\nDATABASE_USER="${isRoot() ? "postgres" : os.userInfo().username}"\n`,
            { mode: 0o644 },
        );
        for (let d = path.join(root, "host"); d !== root; d = path.dirname(d)) fs.chmodSync(d, 0o755);
        for (const v of ["v1", "v2", "v2-drop", "v2b", "v2c", "v2-failing"])
            await prepareCommand(ctx, { version: v, source: path.join(releases(), `${v}.tar.gz`) });
    });

    after(function () {
        if (!root) return;
        if (fs.existsSync(path.join(root, "pg", "postmaster.pid"))) {
            const [f, a] = asDbUser(`${PG_BIN}/pg_ctl`, ["-D", path.join(root, "pg"), "-m", "fast", "-w", "stop"]);
            spawnSync(f, a, { stdio: "pipe" });
        }
        if (!process.env.SLOTSHIFT_KEEP_TMP) fs.rmSync(root, { recursive: true, force: true });
    });

    it("first release: no live release to protect; 0001 applied", async () => {
        const o = await migrate("v1", null);
        assert.deepStrictEqual([o.ran, o.applied], [true, ["notes.0001_initial"]]);
        assert.strictEqual(columns(), "created_at,id,text");
    });

    it("v2-drop: the Django gate reads RemoveField's SQL and refuses it; nothing migrated", async () => {
        const e = await refused(migrate("v2-drop", "v1"));
        assert.strictEqual(e.gate, "migration-safety");
        assert.match(
            e.message,
            /notes\.0002_remove_note_created_at: drop_column notes_note\.created_at — drops a column \(ALTER TABLE "notes_note" DROP COLUMN "created_at" CASCADE\)/,
        );
        assert.match(e.message, /- notes\.0002_remove_note_created_at:drop_column:notes_note\.created_at/);
        assert.deepStrictEqual([columns(), applied()], ["created_at,id,text", "0001_initial"]);
    });

    it("v2: an additive migration waiting on a lock gives up after the lock timeout, naming its migration; the database is unchanged", async () => {
        // A long read of the live release: ALTER TABLE queues behind it, and everything after queues behind ALTER.
        const [f, a] = asDbUser(`${PG_BIN}/psql`, [
            "-X",
            "-q",
            "-h",
            sock,
            "-d",
            "shop",
            "-c",
            "BEGIN; LOCK TABLE notes_note IN ACCESS SHARE MODE; SELECT pg_sleep(6); COMMIT;",
        ]);
        const holder: ChildProcess = spawn(f, a, { stdio: "ignore" });
        const held = new Promise((r) => holder.on("close", r));
        try {
            await new Promise((r) => setTimeout(r, 500));
            const t0 = Date.now();
            const e = await refused(migrate("v2", "v1"));
            assert.strictEqual(e.gate, "migration");
            assert.match(e.message, /^migration of v2 failed in notes\.0002_note_author \(exit 1\): .*lock timeout/);
            assert.ok(Date.now() - t0 < 5500, `the migration should give up after about 1s of waiting, took ${Date.now() - t0} ms`);
            assert.deepStrictEqual([columns(), applied()], ["created_at,id,text", "0001_initial"]);
            assert.strictEqual(readMigrationMarker(ctx, "v2"), undefined);
        } finally {
            await held;
        }
    });

    it("v2: once the lock is free, the additive migration passes the gate and runs once", async () => {
        const o = await migrate("v2", "v1");
        assert.deepStrictEqual([o.ran, o.pending, o.applied], [true, ["notes.0002_note_author"], ["notes.0002_note_author"]]);
        assert.strictEqual(columns(), "author,created_at,id,text");
        assert.strictEqual((await migrate("v2", "v1")).skipped, "already migrated");
    });

    it("v2b: stops mapping the column (state only): no SQL, nothing refused", async () => {
        const o = await migrate("v2b", "v2");
        assert.deepStrictEqual([o.ran, o.applied], [true, ["notes.0003_stop_using_note_author"]]);
        assert.strictEqual(columns(), "author,created_at,id,text");
    });

    it("v2c: RunSQL dropping the column is refused without the acknowledgement, and runs with it", async () => {
        const e = await refused(migrate("v2c", "v2b"));
        assert.match(e.message, /notes\.0004_drop_note_author: drop_column notes_note\.author/);
        assert.strictEqual(columns(), "author,created_at,id,text");
        const o = await migrate("v2c", "v2b", ["notes.0004_drop_note_author:drop_column:notes_note.author"]);
        assert.deepStrictEqual(
            [o.ran, o.allowed, o.applied],
            [true, ["notes.0004_drop_note_author:drop_column:notes_note.author"], ["notes.0004_drop_note_author"]],
        );
        assert.strictEqual(columns(), "created_at,id,text");
    });

    it("v2-failing: passes the gate, fails in its second operation; the first is rolled back with it", async () => {
        sql("INSERT INTO notes_note (text, created_at) VALUES ('longer than three', now())");
        const e = await refused(migrate("v2-failing", "v2c"));
        assert.strictEqual(e.gate, "migration");
        assert.match(
            e.message,
            /^migration of v2-failing failed in notes\.0005_note_title_short_text \(exit 1\): .*check constraint "notes_note_text_short" .*violated by some row/,
        );
        assert.deepStrictEqual(
            [columns(), applied()],
            ["created_at,id,text", "0001_initial,0002_note_author,0003_stop_using_note_author,0004_drop_note_author"],
        );
    });
});
