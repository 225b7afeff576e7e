import * as assert from "assert";
import { classifyPlan, findingKey, PendingMigration, splitStatements, tokenize } from "./migration-sql";

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
        'CREATE INDEX "note_author_idx" ON "notes_note" ("author");',
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
    it("lets additive changes through: nullable columns, new tables, indexes, constraints, data updates", () => {
        assert.deepStrictEqual(keys(one(...DJANGO.addNullable)), []);
        assert.deepStrictEqual(keys(one(...DJANGO.createModelThenAlter)), []);
        assert.deepStrictEqual(keys(one(...DJANGO.stateOnly)), []);
        assert.deepStrictEqual(
            keys(
                one(
                    "ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0), ADD CONSTRAINT u UNIQUE (y)",
                    "UPDATE t SET a = 'DROP COLUMN b' WHERE a IS NULL",
                    "CREATE INDEX CONCURRENTLY i ON t (a)",
                    "ALTER TABLE t ALTER COLUMN a DROP NOT NULL, ALTER COLUMN a SET DEFAULT 1",
                    "ALTER TABLE t ADD COLUMN n bigserial, ADD COLUMN g int GENERATED ALWAYS AS (a * 2) STORED NOT NULL",
                ),
            ),
            [],
        );
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
        assert.deepStrictEqual(keys(one('ALTER TABLE "t" ADD COLUMN "c" int PRIMARY KEY')), ["app.0002_x:add_not_null_column:t.c"]);
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
