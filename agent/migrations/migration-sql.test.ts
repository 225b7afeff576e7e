import * as assert from "assert";
import { classifyPlan, findingKey, PendingMigration, recipeOf, splitStatements, tokenize } from "./migration-sql";

const keys = (plan: PendingMigration[]) => classifyPlan(plan).map(findingKey);
const one = (...sql: string[]): PendingMigration[] => [{ migration: "app.0002_x", sql }];

// SQL as Django 3.2's collect_sql (what sqlmigrate prints) gives it on PostgreSQL 15.
const DJANGO = {
    addNullable: ["--", "-- Add field author to note", "--", 'ALTER TABLE "notes_note" ADD COLUMN "author" varchar(100) NULL;'],
    removeField: ["--", "-- Remove field created_at from note", "--", 'ALTER TABLE "notes_note" DROP COLUMN "created_at" CASCADE;'],
    addNotNullWithDefault: [
        'ALTER TABLE "notes_note" ADD COLUMN "score" integer DEFAULT 0 NOT NULL;',
        'ALTER TABLE "notes_note" ALTER COLUMN "score" DROP DEFAULT;',
    ],
    widenVarchar: ['ALTER TABLE "notes_note" ALTER COLUMN "author" TYPE varchar(200);'],
    toText: ['ALTER TABLE "notes_note" ALTER COLUMN "text" TYPE text USING "text"::text;'],
    renameField: ['ALTER TABLE "notes_note" RENAME COLUMN "created_at" TO "created";'],
    createModelThenAlter: [
        'CREATE TABLE "notes_tag" ("id" bigserial NOT NULL PRIMARY KEY, "name" varchar(50) NOT NULL);',
        'ALTER TABLE "notes_tag" ADD COLUMN "weight" integer DEFAULT 1 NOT NULL;',
        'ALTER TABLE "notes_tag" ALTER COLUMN "weight" DROP DEFAULT;',
        'ALTER TABLE "notes_tag" ADD COLUMN "note_id" bigint NULL CONSTRAINT "notes_tag_note_id_571bc9f6_fk_notes_note_id" REFERENCES "notes_note"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "notes_tag_note_id_571bc9f6_fk_notes_note_id" IMMEDIATE;',
        'CREATE INDEX "notes_tag_note_id_idx" ON "notes_tag" ("note_id");',
    ],
    nullToNotNull: [
        `ALTER TABLE "notes_note" ALTER COLUMN "author" SET DEFAULT 'anon';`,
        `UPDATE "notes_note" SET "author" = 'anon' WHERE "author" IS NULL;`,
        'ALTER TABLE "notes_note" ALTER COLUMN "author" SET NOT NULL;',
        'ALTER TABLE "notes_note" ALTER COLUMN "author" DROP DEFAULT;',
    ],
    renameModel: ['ALTER TABLE "notes_tag" RENAME TO "notes_label";'],
    deleteModel: ['DROP TABLE "notes_label" CASCADE;'],
    stateOnly: [] as string[],
};

describe("migration safety: SQL classifier", () => {
    it("lets additive, lock-safe changes through: nullable columns, new tables, concurrent indexes, NOT VALID constraints, data updates", () => {
        assert.deepStrictEqual(keys(one(...DJANGO.addNullable)), []);
        assert.deepStrictEqual(keys(one(...DJANGO.createModelThenAlter)), []);
        assert.deepStrictEqual(keys(one(...DJANGO.stateOnly)), []);
        assert.deepStrictEqual(
            keys(
                one(
                    "ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0) NOT VALID, ADD CONSTRAINT f FOREIGN KEY (u) REFERENCES u (id) NOT VALID",
                    "ALTER TABLE t VALIDATE CONSTRAINT c",
                    "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX t_y_uniq",
                    "UPDATE t SET a = 'DROP COLUMN b' WHERE a IS NULL",
                    "CREATE INDEX CONCURRENTLY i ON t (a)",
                    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_y_uniq ON t (y)",
                    "ALTER TABLE t ALTER COLUMN a DROP NOT NULL, ALTER COLUMN a SET DEFAULT 1",
                    "ALTER TABLE t ADD COLUMN d timestamptz DEFAULT now(), ADD COLUMN e text DEFAULT lower('X'), ADD COLUMN f varchar(10) DEFAULT 'a'::varchar(10)",
                    "CREATE VIEW v AS SELECT 1",
                    "DROP VIEW v",
                    "DROP SCHEMA IF EXISTS empty",
                ),
            ),
            [],
        );
    });

    it("refuses what holds a lock on an existing table for a scan or a rewrite, each with its safe recipe", () => {
        const cases: [string, string][] = [
            ['CREATE INDEX "notes_note_author_idx" ON "notes_note" ("author")', "app.0002_x:create_index:notes_note"],
            ['CREATE UNIQUE INDEX IF NOT EXISTS "u" ON ONLY public.notes_note USING btree ("text")', "app.0002_x:create_index:public.notes_note"],
            [
                'ALTER TABLE "notes_note" ADD CONSTRAINT "fk" FOREIGN KEY ("tag_id") REFERENCES "notes_tag" ("id") DEFERRABLE INITIALLY DEFERRED',
                "app.0002_x:add_foreign_key:notes_note",
            ],
            [
                'ALTER TABLE "notes_note" ADD COLUMN "tag_id" bigint NULL CONSTRAINT "fk" REFERENCES "notes_tag"("id") DEFERRABLE INITIALLY DEFERRED',
                "app.0002_x:add_foreign_key:notes_note",
            ],
            ['ALTER TABLE "notes_note" ADD CONSTRAINT "short" CHECK (char_length("text") <= 3)', "app.0002_x:add_check_constraint:notes_note"],
            ["ALTER TABLE notes_note ADD CHECK (id > 0)", "app.0002_x:add_check_constraint:notes_note"],
            ['ALTER TABLE "notes_note" ADD CONSTRAINT "uniq_text" UNIQUE ("text")', "app.0002_x:add_unique_constraint:notes_note"],
            ["ALTER TABLE notes_note ADD PRIMARY KEY (id)", "app.0002_x:add_unique_constraint:notes_note"],
            ['ALTER TABLE "notes_note" ADD COLUMN "slug" varchar(50) NULL UNIQUE', "app.0002_x:add_unique_constraint:notes_note"],
            ["ALTER TABLE notes_note ADD COLUMN token uuid DEFAULT gen_random_uuid()", "app.0002_x:add_column_rewrite:notes_note.token"],
            ["ALTER TABLE notes_note ADD COLUMN seen timestamptz DEFAULT clock_timestamp() NOT NULL", "app.0002_x:add_column_rewrite:notes_note.seen"],
            ["ALTER TABLE notes_note ADD COLUMN n bigserial", "app.0002_x:add_column_rewrite:notes_note.n"],
            ["ALTER TABLE notes_note ADD COLUMN n int GENERATED ALWAYS AS IDENTITY", "app.0002_x:add_column_rewrite:notes_note.n"],
            ["ALTER TABLE notes_note ADD COLUMN g int GENERATED ALWAYS AS (id * 2) STORED", "app.0002_x:add_column_rewrite:notes_note.g"],
            ["DROP SCHEMA IF EXISTS reports, archive CASCADE", "app.0002_x:drop_schema_cascade:reports"],
            ["DROP VIEW IF EXISTS notes_summary", "app.0002_x:drop_view:notes_summary"],
            ["DROP MATERIALIZED VIEW public.stats CASCADE", "app.0002_x:drop_view:public.stats"],
        ];
        for (const [sql, key] of cases) {
            const found = classifyPlan(one(sql));
            assert.strictEqual(found.map(findingKey)[0], key, sql);
            assert.ok(recipeOf(found[0]).length > 20, `a recipe for ${found[0].operation}`);
        }
        assert.deepStrictEqual(keys(one("DROP SCHEMA reports, archive CASCADE")), [
            "app.0002_x:drop_schema_cascade:reports",
            "app.0002_x:drop_schema_cascade:archive",
        ]);
        assert.match(recipeOf({ operation: "create_index" }), /CONCURRENTLY.*atomic = False/);
        assert.match(recipeOf({ operation: "add_check_constraint" }), /NOT VALID, VALIDATE CONSTRAINT in a later migration/);
        // Django's AddField(ForeignKey) on an existing table: the inline constraint and the index.
        assert.deepStrictEqual(
            keys(
                one(
                    'ALTER TABLE "notes_note" ADD COLUMN "tag_id" bigint NULL CONSTRAINT "notes_note_tag_id_fk" REFERENCES "notes_tag"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "notes_note_tag_id_fk" IMMEDIATE;',
                    'CREATE INDEX "notes_note_tag_id_idx" ON "notes_note" ("tag_id");',
                ),
            ),
            ["app.0002_x:add_foreign_key:notes_note", "app.0002_x:create_index:notes_note"],
        );
    });

    it("refuses RunPython in an atomic migration that also locks an existing table, not in a non-atomic one or beside new tables only", () => {
        const ddl = 'ALTER TABLE "notes_note" ADD COLUMN "words" integer NULL;';
        assert.deepStrictEqual(keys([{ migration: "a.1", sql: [ddl], runsPython: true }]), ["a.1:run_python_with_ddl:notes_note"]);
        assert.match(classifyPlan([{ migration: "a.1", sql: [ddl], runsPython: true }])[0].statement, /^RunPython with ALTER TABLE "notes_note"/);
        assert.deepStrictEqual(keys([{ migration: "a.1", sql: [ddl], runsPython: true, atomic: false }]), []);
        assert.deepStrictEqual(keys([{ migration: "a.1", sql: [ddl] }]), []);
        assert.deepStrictEqual(keys([{ migration: "a.1", sql: ["CREATE TABLE t (id int)", "ALTER TABLE t ADD COLUMN x int"], runsPython: true }]), []);
        assert.deepStrictEqual(keys([{ migration: "a.1", sql: ["-- MIGRATION NOW PERFORMS OPERATION THAT CANNOT BE WRITTEN AS SQL"], runsPython: true }]), []);
    });

    it("leaves indexes, constraints and views of what the same plan created alone", () => {
        const plan = [
            { migration: "a.1", sql: ["CREATE TABLE t (id int)", "CREATE OR REPLACE VIEW v AS SELECT id FROM t"] },
            {
                migration: "a.2",
                sql: ["CREATE INDEX i ON t (id)", "ALTER TABLE t ADD CONSTRAINT c CHECK (id > 0), ADD COLUMN n bigserial UNIQUE", "DROP VIEW v"],
            },
        ];
        assert.deepStrictEqual(keys(plan), []);
    });

    it("names the migration, the operation and the column of what Django's generated SQL contracts", () => {
        assert.deepStrictEqual(keys(one(...DJANGO.removeField)), ["app.0002_x:drop_column:notes_note.created_at"]);
        assert.deepStrictEqual(keys(one(...DJANGO.renameField)), ["app.0002_x:rename_column:notes_note.created_at"]);
        assert.deepStrictEqual(keys(one(...DJANGO.widenVarchar)), ["app.0002_x:alter_column_type:notes_note.author"]);
        assert.deepStrictEqual(keys(one(...DJANGO.toText)), ["app.0002_x:alter_column_type:notes_note.text"]);
        assert.deepStrictEqual(keys(one(...DJANGO.nullToNotNull)), ["app.0002_x:set_not_null:notes_note.author"]);
        assert.deepStrictEqual(keys(one(...DJANGO.renameModel)), ["app.0002_x:rename_table:notes_tag"]);
        assert.deepStrictEqual(keys(one(...DJANGO.deleteModel)), ["app.0002_x:drop_table:notes_label"]);
    });

    it("refuses Django's NOT NULL column whose default it drops again, but not one that keeps a database default", () => {
        const [f] = classifyPlan(one(...DJANGO.addNotNullWithDefault));
        assert.deepStrictEqual([f.operation, f.target], ["add_not_null_column", "notes_note.score"]);
        // Django 5's db_default, or hand-written SQL: the default stays, inserts without the column work.
        assert.deepStrictEqual(keys(one(DJANGO.addNotNullWithDefault[0])), []);
        assert.deepStrictEqual(keys(one('ALTER TABLE "t" ADD COLUMN "c" int NOT NULL')), ["app.0002_x:add_not_null_column:t.c"]);
        assert.deepStrictEqual(keys(one('ALTER TABLE "t" ADD COLUMN "c" int PRIMARY KEY')), [
            "app.0002_x:add_unique_constraint:t",
            "app.0002_x:add_not_null_column:t.c",
        ]);
        // The default may be dropped by a later migration of the same plan: still refused, there.
        const plan = [
            { migration: "a.1", sql: [DJANGO.addNotNullWithDefault[0]] },
            { migration: "a.2", sql: [DJANGO.addNotNullWithDefault[1]] },
        ];
        assert.deepStrictEqual(keys(plan), ["a.2:add_not_null_column:notes_note.score"]);
    });

    it("ignores what happens to tables and columns the same plan created, except NOT NULL on a new column", () => {
        const plan = [
            { migration: "a.1", sql: ['CREATE TABLE "tag" (id int)', 'ALTER TABLE "note" ADD COLUMN "flag" boolean NULL'] },
            {
                migration: "a.2",
                sql: [
                    'ALTER TABLE "tag" RENAME TO "label"',
                    'ALTER TABLE "note" ALTER COLUMN "flag" TYPE int USING 1',
                    'ALTER TABLE "note" RENAME COLUMN "flag" TO "flag2"',
                ],
            },
            { migration: "a.3", sql: ['DROP TABLE "label"', 'ALTER TABLE "note" DROP COLUMN "flag2"', 'ALTER TABLE "tag2" ADD COLUMN x int'] },
        ];
        assert.deepStrictEqual(keys(plan), []);
        // The live release inserts rows without the new column: NOT NULL there breaks it.
        const notNull = [
            { migration: "a.1", sql: ['ALTER TABLE "note" ADD COLUMN "flag" boolean NULL', 'ALTER TABLE "note" ALTER COLUMN "flag" SET NOT NULL'] },
        ];
        assert.deepStrictEqual(keys(notNull), ["a.1:set_not_null:note.flag"]);
    });

    it("reads hand-written SQL: several statements and actions, IF EXISTS, ONLY, schemas, case folding, SET DATA TYPE", () => {
        const sql = `
            -- a RunSQL with everything at once
            ALTER TABLE IF EXISTS ONLY public.Orders DROP COLUMN IF EXISTS legacy CASCADE, ALTER COLUMN total SET DATA TYPE numeric(12,2);
            /* nested /* comment */ DROP TABLE gone; */
            ALTER TABLE "MixedCase" RENAME COLUMN "Old" TO "New";
            DROP TABLE IF EXISTS a, public.b RESTRICT;
            ALTER TABLE accounts SET SCHEMA archive;
            alter table t alter c set not null;
        `;
        assert.deepStrictEqual(keys(one(sql)), [
            "app.0002_x:drop_column:public.orders.legacy",
            "app.0002_x:alter_column_type:public.orders.total",
            "app.0002_x:rename_column:MixedCase.Old",
            "app.0002_x:drop_table:a",
            "app.0002_x:drop_table:public.b",
            "app.0002_x:rename_table:accounts",
            "app.0002_x:set_not_null:t.c",
        ]);
    });

    it("is not fooled by keywords inside strings, quoted names, dollar quotes and comments", () => {
        const sql = [
            "INSERT INTO log VALUES ('ALTER TABLE t DROP COLUMN c;')",
            "INSERT INTO log VALUES (E'it\\'s; DROP TABLE x')",
            "CREATE FUNCTION f() RETURNS void AS $body$ BEGIN DROP TABLE y; END $body$ LANGUAGE plpgsql",
            "DO $$ BEGIN ALTER TABLE z DROP COLUMN q; END $$",
            "-- DROP TABLE commented;",
            'ALTER TABLE "a;b" ADD COLUMN "x;y" int NULL',
        ].join(";\n");
        assert.deepStrictEqual(keys(one(sql)), []);
    });

    it("keeps the statement (shortened) for the message", () => {
        const [f] = classifyPlan(one(...DJANGO.removeField));
        assert.strictEqual(f.statement, 'ALTER TABLE "notes_note" DROP COLUMN "created_at" CASCADE');
        const long = `ALTER TABLE t DROP COLUMN c, ${Array.from({ length: 40 }, (_, i) => `ADD COLUMN x${i} int NULL`).join(", ")}`;
        assert.ok(classifyPlan(one(long))[0].statement.length <= 160);
    });

    it("splits statements at top-level semicolons only, and lexes quoted identifiers exactly", () => {
        assert.deepStrictEqual(
            splitStatements('a; \'b;c\'; "d;""e"; $t$ f; $t$ ;; -- g;\n h').map((s) => s.text),
            ["a", "'b;c'", '"d;""e"', "$t$ f; $t$", "h"],
        );
        const t = tokenize('"Ab""c" xY');
        assert.deepStrictEqual(
            t.map((x) => [x.kind, x.ident]),
            [
                ["quoted", 'Ab"c'],
                ["word", "xy"],
            ],
        );
    });
});
