// The migration keys: migrateCommand, migrationCheck, allowContractOperations, dbLockTimeout. How
// they validate, what reaches agent.json, and that an acknowledgement shows on the activate
// command line (so in `pulumi preview --diff`) without ever starting a shift by itself.
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { agentSettingsFor } from "../../components/stack";
import { activateRequest } from "../../components/traffic-shift";
import { formatCommand } from "../../lib/contract/commands";
import { pickGroup, withDefaults } from "../../lib/settings/table";
import { diffInputs } from "../../components/ssh/provider";
import { parseStackConfig, StackConfigError, StackConfigInput } from "../../program/config-schema";
import { djangoManageCommand, formatContractOperation, parseContractOperation, parseMigrationCheck } from "../../lib/migrations";
import { reveal, runProgram } from "./helpers/mock-program";
import { cliConfig, TEST_PRIVATE_KEY } from "./helpers/stack-config";

const BASE: StackConfigInput = {
    appName: "shop",
    releaseVersion: "2.0.0",
    releaseSource: "https://example.com/shop.tar.gz",
    releaseSha256: "ab".repeat(32),
    startCommand: "gunicorn --bind 127.0.0.1:$PORT app.wsgi",
    domain: "shop.example.com",
    hostTarget: "existing",
    hostAddress: "192.0.2.1",
    sshUser: "root",
    sshHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsNzbmH1hc0ZFBDZo4v1pIoxaHFyw4nWENwI9mYFLNp",
    sshPrivateKey: TEST_PRIVATE_KEY,
};
const DJANGO = "python3 manage.py migrate --noinput";
const ACK = "notes.0004_drop_note_author:drop_column:notes_note.author";

function problem(overrides: Partial<StackConfigInput>): string {
    try {
        parseStackConfig({ ...BASE, ...overrides });
    } catch (e) {
        assert.ok(e instanceof StackConfigError, String(e));
        return e.message;
    }
    assert.fail("the config was accepted");
}

describe("migration config keys", () => {
    it("default to no migrations, the Django gate, no acknowledgements, a 5s lock timeout, 600s statement timeout, 3 lock retries, a rehearsal", () => {
        const s = parseStackConfig(BASE);
        assert.deepStrictEqual(
            [s.migrateCommand, s.migrationCheck, s.allowContractOperations, s.dbLockTimeout, s.dbStatementTimeout, s.dbLockRetries, s.migrationRehearsal],
            [undefined, "django", [], 5, 600, 3, true],
        );
        // agent.json's migrations group: the same keys and units as the stack config.
        assert.deepStrictEqual(agentSettingsFor(s).migrations, {
            migrationCheck: "django",
            dbLockTimeout: 5,
            dbStatementTimeout: 600,
            dbLockRetries: 3,
            migrationRehearsal: true,
        });
    });

    it("reach agent.json: the command, the check, the timeouts in seconds, the retries, the rehearsal and the slots' start command it starts the live release with", () => {
        const s = parseStackConfig({ ...BASE, migrateCommand: DJANGO, dbLockTimeout: "750ms", dbStatementTimeout: "2m", dbLockRetries: 1 });
        assert.deepStrictEqual(agentSettingsFor(s).migrations, {
            migrateCommand: DJANGO,
            migrationCheck: "django",
            dbLockTimeout: 0.75,
            dbStatementTimeout: 120,
            dbLockRetries: 1,
            migrationRehearsal: true,
        });
        assert.strictEqual(agentSettingsFor(s).app.startCommand, s.startCommand);
        const off = parseStackConfig({ ...BASE, migrateCommand: DJANGO, migrationRehearsal: false });
        assert.strictEqual(agentSettingsFor(off).migrations.migrationRehearsal, false);
        const custom = parseStackConfig({ ...BASE, migrateCommand: "bin/rails db:migrate", migrationCheck: "bin/check-migrations --strict" });
        assert.deepStrictEqual(parseMigrationCheck(agentSettingsFor(custom).migrations.migrationCheck), {
            kind: "command",
            command: "bin/check-migrations --strict",
        });
        const none = parseStackConfig({ ...BASE, migrateCommand: "bin/rails db:migrate", migrationCheck: "none" });
        assert.deepStrictEqual(parseMigrationCheck(agentSettingsFor(none).migrations.migrationCheck), { kind: "none" });
    });

    const BAD: [string, Partial<StackConfigInput>, RegExp][] = [
        ["a migrate command of two lines", { migrateCommand: "python3 manage.py migrate\nrm -rf /" }, /slotshift:migrateCommand must be a single line/],
        [
            "the Django gate with a migrate command that is not manage.py migrate",
            { migrateCommand: "bin/rails db:migrate" },
            /slotshift:migrationCheck must be "none" or a check command of your own when migrateCommand does not run Django's "manage\.py migrate"/,
        ],
        [
            "a check command without a migrate command",
            { migrationCheck: "bin/check" },
            /slotshift:migrationCheck is a check command, which runs only before migrateCommand: set migrateCommand too/,
        ],
        ["an acknowledgement without a migrate command", { allowContractOperations: [ACK] }, /slotshift:allowContractOperations needs migrateCommand/],
        [
            "an acknowledgement that is not MIGRATION:OPERATION:TARGET",
            { migrateCommand: DJANGO, allowContractOperations: [ACK, "notes_note.author:drop_column"] },
            /slotshift:allowContractOperations item 2 "notes_note\.author:drop_column" is not MIGRATION:OPERATION:TARGET/,
        ],
        [
            "an unknown operation",
            { migrateCommand: DJANGO, allowContractOperations: ["notes.0004_x:delete_column:notes_note.author"] },
            /item 1 "notes\.0004_x:delete_column:notes_note\.author": "delete_column" is not one of drop_column, rename_column, alter_column_type, set_not_null, add_not_null_column, drop_table, rename_table/,
        ],
        [
            "a column operation naming only a table",
            { migrateCommand: DJANGO, allowContractOperations: ["notes.0004_x:drop_column:notes_note"] },
            /drop_column needs TABLE\.COLUMN as its target, not "notes_note"/,
        ],
        [
            "a table operation naming a column",
            { migrateCommand: DJANGO, allowContractOperations: ["notes.0004_x:drop_table:public.notes_note.author"] },
            /drop_table needs TABLE as its target, not "public.notes_note.author"/,
        ],
        [
            "an acknowledgement listed twice",
            { migrateCommand: DJANGO, allowContractOperations: [ACK, ACK] },
            /slotshift:allowContractOperations item 2 "notes\.0004_drop_note_author:drop_column:notes_note\.author" is listed twice/,
        ],
        ["a lock timeout that is not a duration", { dbLockTimeout: "a while" }, /slotshift:dbLockTimeout "a while" is not a duration/],
        ["a lock timeout below 100ms", { dbLockTimeout: "10ms" }, /slotshift:dbLockTimeout must be between 100ms and 1h/],
        ["a statement timeout below 1s", { dbStatementTimeout: "200ms" }, /slotshift:dbStatementTimeout must be between 1s and 24h/],
        ["lock retries above 10", { dbLockRetries: 50 }, /slotshift:dbLockRetries/],
    ];
    for (const [title, overrides, expect] of BAD) {
        it(`rejects ${title}, naming the key`, () => assert.match(problem(overrides), expect));
    }

    it("accepts the Django gate for any manage.py migrate invocation, and keeps its manage.py part for the check", () => {
        assert.strictEqual(djangoManageCommand(DJANGO), "python3 manage.py");
        assert.strictEqual(djangoManageCommand(".venv/bin/python src/manage.py migrate"), ".venv/bin/python src/manage.py");
        assert.strictEqual(djangoManageCommand("cd app && ./manage.py migrate --database default"), "cd app && ./manage.py");
        assert.strictEqual(djangoManageCommand("python3 manage.py migrations"), undefined);
        assert.strictEqual(djangoManageCommand("bin/rails db:migrate"), undefined);
        assert.deepStrictEqual([parseMigrationCheck(undefined), parseMigrationCheck(" none ")], [{ kind: "django" }, { kind: "none" }]);
    });

    it("round-trips an acknowledgement, schema-qualified targets included", () => {
        for (const text of [ACK, "billing.0012_x:rename_table:public.invoices", "x.1:alter_column_type:public.t.c", "20240101_drop:set_not_null:Users.Email"]) {
            assert.strictEqual(formatContractOperation(parseContractOperation(text)), text);
        }
    });
});

describe("acknowledged contract operations on the activate command line", () => {
    it("are passed as one --allow-contract-operations list, and only when there are any", () => {
        const base = {
            version: "v2c",
            shift: pickGroup(withDefaults({ shiftPlan: [{ percent: 100, pauseSeconds: 0 }], healthTimeout: 60, drainTimeout: 30 }), "shift"),
        };
        const args = (r: Parameters<typeof activateRequest>[0]) => formatCommand("activate", activateRequest(r));
        assert.deepStrictEqual(args(base).slice(-1), ["--keep-previous-warm"]);
        assert.deepStrictEqual(args({ ...base, allowContractOperations: [ACK, "notes.0005_x:drop_table:notes_tag"] }).slice(-2), [
            "--allow-contract-operations",
            `${ACK},notes.0005_x:drop_table:notes_tag`,
        ]);
    });

    it("show in the preview of the version that needs them; alone they are an update (status), never a new shift", async () => {
        const cfg = { migrateCommand: DJANGO };
        const before = await runProgram({ stack: "staging", cfg: cliConfig("staging", cfg) });
        const after = await runProgram({ stack: "staging", cfg: cliConfig("staging", { ...cfg, allowContractOperations: [ACK] }) });
        const create = after.byName("shop-shift-activate").inputs.create as string;
        assert.match(create, / --keep-previous-warm --allow-contract-operations notes\.0004_drop_note_author:drop_column:notes_note\.author$/);
        const d = diffInputs(reveal(before.byName("shop-shift-activate").inputs), reveal(after.byName("shop-shift-activate").inputs));
        assert.deepStrictEqual([d.changes, d.replaces], [true, []]);
        // agent.json (in the setup script) does not carry them: only the deploy that needs them does.
        assert.strictEqual(before.byName("shop-setup-debian").inputs.stdin, after.byName("shop-setup-debian").inputs.stdin);
    });

    it("a bad acknowledgement fails the program before anything is declared", async () => {
        try {
            await runProgram({ stack: "staging", cfg: cliConfig("staging", { allowContractOperations: ["drop it"] }) });
        } catch (e) {
            assert.ok(e instanceof pulumi.RunError);
            assert.match((e as Error).message, /slotshift:allowContractOperations item 1 "drop it" is not MIGRATION:OPERATION:TARGET/);
            return;
        }
        assert.fail("accepted");
    });
});
