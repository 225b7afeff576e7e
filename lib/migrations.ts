// Contract operations: schema changes the release that is live during a shift may not survive
// (it still reads, or writes without, what they remove). The migration-safety gate refuses them
// unless the stack config acknowledges each one, in exactly the form the gate reports it:
//
//     MIGRATION:OPERATION:TARGET     e.g.  notes.0004_drop_note_author:drop_column:notes_note.author
//
// MIGRATION is the migration's id (Django: app_label.migration_name), TARGET the table, or
// table.column for column operations (schema-qualified when the SQL names a schema). Naming the
// migration keeps an acknowledgement left in the config from ever allowing a later, different
// change to the same column.

export const CONTRACT_OPERATIONS = {
    drop_column: "drops a column",
    rename_column: "renames a column",
    alter_column_type: "changes a column's type",
    set_not_null: "makes an existing column NOT NULL",
    add_not_null_column: "adds a NOT NULL column without a database default",
    drop_table: "drops a table",
    rename_table: "renames (or moves) a table",
    // Lock-safety: compatible with the live release, but they hold a lock that blocks its queries
    // for as long as a scan or a rewrite of the whole table takes (lock_timeout bounds only the wait).
    create_index: "builds an index on an existing table while holding a lock that blocks its writes",
    add_foreign_key: "adds a FOREIGN KEY that is validated at once, scanning the table under a lock that blocks writes",
    add_check_constraint: "adds a CHECK constraint that is validated at once, scanning the table under an exclusive lock",
    add_unique_constraint: "adds a UNIQUE or PRIMARY KEY constraint, building its index under an exclusive lock",
    add_column_rewrite: "adds a column that rewrites the table under an exclusive lock (volatile default, serial, identity or stored generated)",
    drop_schema_cascade: "drops a schema with everything in it (CASCADE)",
    drop_view: "drops a view the live release may query",
    run_python_with_ddl: "runs Python in the same transaction as DDL, holding the DDL's lock for the whole run",
} as const;

export type ContractOperation = keyof typeof CONTRACT_OPERATIONS;

/**
 * The safe way to ship each operation: what the refusal says to do instead. Contract operations
 * are shipped in two releases; the lock-safety ones take a form PostgreSQL runs without a long lock.
 */
export const SAFE_RECIPES: Record<ContractOperation, string> = {
    drop_column: "stop using the column in one release, drop it in the next and acknowledge the drop then",
    rename_column: "add the new column, write both and copy the data, switch reads, drop the old one in a later release",
    alter_column_type: "add a column of the new type, backfill it, switch to it, drop the old one later (a widened varchar: acknowledge it)",
    set_not_null: "add CHECK (c IS NOT NULL) NOT VALID, VALIDATE it in a later migration, then SET NOT NULL (PostgreSQL 12+ uses the check)",
    add_not_null_column: "keep a database default (db_default, or RunSQL SET DEFAULT), or add it nullable and make it NOT NULL later",
    drop_table: "stop using the table in one release, drop it in the next and acknowledge the drop then",
    rename_table: "create the new table (or a view under the old name) and move over in steps; drop the old name in a later release",
    create_index: "CREATE INDEX CONCURRENTLY in a migration with atomic = False (Django: AddIndexConcurrently from django.contrib.postgres.operations)",
    add_foreign_key:
        "add the constraint NOT VALID (Django: db_constraint=False, then RunSQL ADD CONSTRAINT ... NOT VALID), VALIDATE CONSTRAINT in a later migration",
    add_check_constraint: "add the constraint NOT VALID, VALIDATE CONSTRAINT in a later migration",
    add_unique_constraint: "CREATE UNIQUE INDEX CONCURRENTLY in a migration with atomic = False, then ADD CONSTRAINT ... UNIQUE USING INDEX in the next one",
    add_column_rewrite:
        "add the column nullable without the default, SET DEFAULT for new rows, backfill existing rows in batches outside the DDL's transaction",
    drop_schema_cascade: "drop the schema's tables in contract releases of their own, then DROP SCHEMA without CASCADE",
    drop_view: "stop using the view in one release, drop it in the next and acknowledge the drop then",
    run_python_with_ddl: "move the RunPython into a migration of its own with atomic = False, in batches; keep the DDL in another",
};

/** Operations whose target is a relation or schema name; every other one names TABLE.COLUMN. */
const TABLE_OPERATIONS: ReadonlySet<ContractOperation> = new Set([
    "drop_table",
    "rename_table",
    "create_index",
    "add_foreign_key",
    "add_check_constraint",
    "add_unique_constraint",
    "drop_schema_cascade",
    "drop_view",
    "run_python_with_ddl",
]);

export interface ContractOperationRef {
    migration: string;
    operation: ContractOperation;
    target: string;
}

const MIGRATION_ID = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$/;
const IDENT = "[A-Za-z_][A-Za-z0-9_$]*";
const TABLE_TARGET = new RegExp(`^${IDENT}(\\.${IDENT})?$`);
const COLUMN_TARGET = new RegExp(`^${IDENT}(\\.${IDENT}){1,2}$`);

function isColumnOperation(op: ContractOperation): boolean {
    return !TABLE_OPERATIONS.has(op);
}

export function formatContractOperation(ref: ContractOperationRef): string {
    return `${ref.migration}:${ref.operation}:${ref.target}`;
}

/** Parses one acknowledgement; throws with a message that reads on from the value. */
export function parseContractOperation(text: string): ContractOperationRef {
    const parts = text.split(":");
    if (parts.length !== 3) {
        throw new Error(`"${text}" is not MIGRATION:OPERATION:TARGET (e.g. notes.0004_drop_note_author:drop_column:notes_note.author)`);
    }
    const [migration, operation, target] = parts;
    if (!MIGRATION_ID.test(migration)) throw new Error(`"${text}": "${migration}" is not a migration id such as notes.0004_drop_note_author`);
    if (!(operation in CONTRACT_OPERATIONS)) {
        throw new Error(`"${text}": "${operation}" is not one of ${Object.keys(CONTRACT_OPERATIONS).join(", ")}`);
    }
    const op = operation as ContractOperation;
    if (isColumnOperation(op) ? !COLUMN_TARGET.test(target) : !TABLE_TARGET.test(target)) {
        throw new Error(`"${text}": ${op} needs ${isColumnOperation(op) ? "TABLE.COLUMN" : "TABLE"} as its target, not "${target}"`);
    }
    return { migration, operation: op, target };
}

export function splitContractOperations(text: string): string[] {
    return text
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
}

/** What migrationCheck selects: Django's own plan and SQL, nothing, or a command of the app's. */
export type MigrationCheck = { kind: "django" } | { kind: "none" } | { kind: "command"; command: string };

export function parseMigrationCheck(text: string | undefined): MigrationCheck {
    const t = (text ?? "").trim();
    if (t === "" || t === "django") return { kind: "django" };
    if (t === "none") return { kind: "none" };
    return { kind: "command", command: t };
}

/**
 * The `manage.py` invocation inside a Django migrate command ("python3 manage.py migrate --noinput"
 * -> "python3 manage.py"), so the safety check runs with the same interpreter, project and
 * working directory as the migration. Undefined when the command is not `... manage.py migrate`.
 */
export function djangoManageCommand(migrateCommand: string): string | undefined {
    const m = /^(.*\bmanage\.py)\s+migrate(\s|$)/.exec(migrateCommand.trim());
    return m ? m[1] : undefined;
}
