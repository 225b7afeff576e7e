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
} as const;

export type ContractOperation = keyof typeof CONTRACT_OPERATIONS;

const TABLE_OPERATIONS: ReadonlySet<ContractOperation> = new Set(["drop_table", "rename_table"]);

export interface ContractOperationRef {
    migration: string;
    operation: ContractOperation;
    target: string;
}

const MIGRATION_ID = /^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,199}$/;
const IDENT = "[A-Za-z_][A-Za-z0-9_$]*";
const TABLE_TARGET = new RegExp(`^${IDENT}(\\.${IDENT})?$`);
const COLUMN_TARGET = new RegExp(`^${IDENT}(\\.${IDENT}){1,2}$`);

export function isColumnOperation(op: ContractOperation): boolean {
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

/** Acknowledgements as the agent's --allow-contract value (they never contain a comma). */
export function joinContractOperations(list: readonly string[]): string {
    return list.join(",");
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
