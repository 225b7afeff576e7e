// The migration-safety classifier: reads the SQL each pending migration would run (PostgreSQL
// dialect) and finds the contract operations the live release may not survive, and the lock-safety
// ones that hold a lock blocking its queries for as long as a table scan or rewrite takes. Working
// on SQL, not on one framework's operation objects, covers hand-written RunSQL the same way as
// generated DDL. Pure: unit-tested without a database.
import { ContractOperation, CONTRACT_OPERATIONS, formatContractOperation, SAFE_RECIPES } from "../../lib/migrations";

export interface PendingMigration {
    /** Id the gate reports and acknowledgements name (Django: app_label.migration_name). */
    migration: string;
    /** SQL text in the order it runs; each entry may hold several statements. */
    sql: string[];
    /** Runs in one transaction (Django's default on PostgreSQL). Default true. */
    atomic?: boolean;
    /** Runs code the SQL does not show (Django's RunPython). */
    runsPython?: boolean;
}

export interface Finding {
    migration: string;
    operation: ContractOperation;
    /** table, or table.column */
    target: string;
    /** The statement, shortened, for the message. */
    statement: string;
}

export function findingKey(f: Pick<Finding, "migration" | "operation" | "target">): string {
    return formatContractOperation(f);
}

export function describeFinding(f: Finding): string {
    return `${f.migration}: ${f.operation} ${f.target} — ${CONTRACT_OPERATIONS[f.operation]} (${f.statement})`;
}

/** What to do instead, for the refusal message. */
export function recipeOf(f: Pick<Finding, "operation">): string {
    return SAFE_RECIPES[f.operation];
}

// --- tokens ------------------------------------------------------------------------------------

type TokenKind = "word" | "quoted" | "string" | "number" | "punct";

export interface Token {
    kind: TokenKind;
    /** word: upper-cased; quoted: the identifier as written; others: the text. */
    value: string;
    /** Unquoted identifiers fold to lower case, as PostgreSQL does. */
    ident?: string;
    start: number;
    end: number;
}

/** PostgreSQL lexing, as far as statement structure needs: comments, strings, quoted names. */
export function tokenize(sql: string): Token[] {
    const out: Token[] = [];
    let i = 0;
    const n = sql.length;
    while (i < n) {
        const c = sql[i];
        if (/\s/.test(c)) {
            i++;
        } else if (c === "-" && sql[i + 1] === "-") {
            while (i < n && sql[i] !== "\n") i++;
        } else if (c === "/" && sql[i + 1] === "*") {
            // Block comments nest in PostgreSQL.
            let depth = 0;
            do {
                if (sql[i] === "/" && sql[i + 1] === "*") {
                    depth++;
                    i += 2;
                } else if (sql[i] === "*" && sql[i + 1] === "/") {
                    depth--;
                    i += 2;
                } else i++;
            } while (i < n && depth > 0);
        } else if (c === "'" || ((c === "E" || c === "e") && sql[i + 1] === "'")) {
            const start = i;
            const escapes = c !== "'";
            i += escapes ? 2 : 1;
            while (i < n) {
                if (escapes && sql[i] === "\\") i += 2;
                else if (sql[i] === "'" && sql[i + 1] === "'") i += 2;
                else if (sql[i] === "'") {
                    i++;
                    break;
                } else i++;
            }
            out.push({ kind: "string", value: sql.slice(start, i), start, end: i });
        } else if (c === '"') {
            const start = i;
            let name = "";
            i++;
            while (i < n) {
                if (sql[i] === '"' && sql[i + 1] === '"') {
                    name += '"';
                    i += 2;
                } else if (sql[i] === '"') {
                    i++;
                    break;
                } else name += sql[i++];
            }
            out.push({ kind: "quoted", value: name, ident: name, start, end: i });
        } else if (c === "$" && /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.test(sql.slice(i, i + 64))) {
            const tag = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(sql.slice(i, i + 64))![0];
            const start = i;
            const close = sql.indexOf(tag, i + tag.length);
            i = close < 0 ? n : close + tag.length;
            out.push({ kind: "string", value: sql.slice(start, i), start, end: i });
        } else if (/[A-Za-z_\u0080-\uffff]/.test(c)) {
            const start = i;
            while (i < n && /[A-Za-z0-9_$\u0080-\uffff]/.test(sql[i])) i++;
            const word = sql.slice(start, i);
            out.push({ kind: "word", value: word.toUpperCase(), ident: word.toLowerCase(), start, end: i });
        } else if (/[0-9]/.test(c)) {
            const start = i;
            while (i < n && /[0-9.eE]/.test(sql[i])) i++;
            out.push({ kind: "number", value: sql.slice(start, i), start, end: i });
        } else {
            out.push({ kind: "punct", value: c, start: i, end: i + 1 });
            i++;
        }
    }
    return out;
}

export interface Statement {
    tokens: Token[];
    text: string;
}

/** Statements split at top-level semicolons (strings, quoted names and comments already hide theirs). */
export function splitStatements(sql: string): Statement[] {
    const tokens = tokenize(sql);
    const out: Statement[] = [];
    let current: Token[] = [];
    const flush = () => {
        if (current.length) out.push({ tokens: current, text: sql.slice(current[0].start, current[current.length - 1].end) });
        current = [];
    };
    for (const t of tokens) {
        if (t.kind === "punct" && t.value === ";") flush();
        else current.push(t);
    }
    flush();
    return out;
}

// --- statements --------------------------------------------------------------------------------

class Cursor {
    i = 0;
    constructor(readonly t: Token[]) {}
    peek(k = 0): Token | undefined {
        return this.t[this.i + k];
    }
    isWord(...words: string[]): boolean {
        return words.every((w, k) => {
            const t = this.peek(k);
            return t?.kind === "word" && t.value === w;
        });
    }
    /** Consumes the words if they all follow. */
    take(...words: string[]): boolean {
        if (!this.isWord(...words)) return false;
        this.i += words.length;
        return true;
    }
    done(): boolean {
        return this.i >= this.t.length;
    }
    /** An identifier (quoted or not); undefined when none follows. */
    ident(): string | undefined {
        const t = this.peek();
        if (!t || (t.kind !== "word" && t.kind !== "quoted")) return undefined;
        this.i++;
        return t.ident;
    }
    /** schema.table (as written, quoted parts unfolded). */
    qualifiedName(): string | undefined {
        const parts: string[] = [];
        const first = this.ident();
        if (first === undefined) return undefined;
        parts.push(first);
        while (this.peek()?.kind === "punct" && this.peek()!.value === "." && this.peek(1)) {
            this.i++;
            const next = this.ident();
            if (next === undefined) break;
            parts.push(next);
        }
        return parts.join(".");
    }
}

/** Splits tokens at commas outside parentheses (ALTER TABLE's action list, DROP TABLE's names). */
function splitTopLevel(tokens: Token[]): Token[][] {
    const out: Token[][] = [];
    let depth = 0;
    let cur: Token[] = [];
    for (const t of tokens) {
        if (t.kind === "punct" && t.value === "(") depth++;
        if (t.kind === "punct" && t.value === ")") depth--;
        if (depth === 0 && t.kind === "punct" && t.value === ",") {
            out.push(cur);
            cur = [];
        } else cur.push(t);
    }
    if (cur.length) out.push(cur);
    return out;
}

const CONSTRAINT_STARTS = new Set(["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN", "EXCLUDE"]);
const SERIAL_TYPES = new Set(["SERIAL", "BIGSERIAL", "SMALLSERIAL", "SERIAL2", "SERIAL4", "SERIAL8"]);

/**
 * Functions a column default may call without making PostgreSQL rewrite the table (immutable or
 * stable ones, and type names that take a modifier). Any other call counts as volatile: a
 * function of the app's own may well be.
 */
const NON_VOLATILE_CALLS = new Set([
    "now",
    "statement_timestamp",
    "transaction_timestamp",
    "current_setting",
    "lower",
    "upper",
    "coalesce",
    "nullif",
    "concat",
    "length",
    "char_length",
    "abs",
    "round",
    "trim",
    "btrim",
    "replace",
    "substr",
    "substring",
    "make_interval",
    "to_jsonb",
    "to_json",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "array",
    "row",
    "cast",
    "timezone",
    "varchar",
    "char",
    "character",
    "numeric",
    "decimal",
    "timestamp",
    "timestamptz",
    "time",
    "interval",
    "bit",
    "varbit",
]);

const COLUMN_CONSTRAINT_WORDS = new Set([
    "NOT",
    "NULL",
    "CONSTRAINT",
    "CHECK",
    "UNIQUE",
    "PRIMARY",
    "REFERENCES",
    "GENERATED",
    "COLLATE",
    "DEFERRABLE",
    "INITIALLY",
]);

interface ColumnDefinition {
    notNull: boolean;
    hasDefault: boolean;
    /** Why adding it rewrites the table (a volatile default, serial, identity, stored generated). */
    rewrite?: string;
    references: boolean;
    unique: boolean;
    check: boolean;
}

/** What an ADD COLUMN definition says about NULLs, defaults and constraints, looking only at depth 0. */
function columnDefinition(tokens: Token[]): ColumnDefinition {
    let depth = 0;
    const def: ColumnDefinition = { notNull: false, hasDefault: false, references: false, unique: false, check: false };
    for (let k = 0; k < tokens.length; k++) {
        const t = tokens[k];
        if (t.kind === "punct" && t.value === "(") depth++;
        if (t.kind === "punct" && t.value === ")") depth--;
        if (depth !== 0 || t.kind !== "word") continue;
        const next = tokens[k + 1];
        if (t.value === "NOT" && next?.kind === "word" && next.value === "NULL") def.notNull = true;
        if (t.value === "PRIMARY" && next?.kind === "word" && next.value === "KEY") {
            def.notNull = true;
            def.unique = true;
        }
        if (t.value === "UNIQUE") def.unique = true;
        if (t.value === "REFERENCES") def.references = true;
        if (t.value === "CHECK") def.check = true;
        // A sequence or an expression fills the column for inserts that leave it out.
        if (t.value === "DEFAULT" || t.value === "GENERATED" || SERIAL_TYPES.has(t.value)) def.hasDefault = true;
        if (SERIAL_TYPES.has(t.value)) def.rewrite ??= `${t.value.toLowerCase()} (a nextval() default)`;
        if (t.value === "GENERATED") {
            const rest = tokens.slice(k + 1, k + 6).filter((x) => x.kind === "word");
            if (rest.some((x) => x.value === "IDENTITY")) def.rewrite ??= "an identity column";
            else if (tokens.slice(k + 1).some((x) => x.kind === "word" && x.value === "STORED")) def.rewrite ??= "a stored generated column";
        }
        if (t.value === "DEFAULT") {
            const call = volatileCall(tokens, k + 1);
            if (call) def.rewrite ??= `a volatile default (${call}())`;
        }
    }
    return def;
}

/** The first call in a DEFAULT expression (from `from` to the next column constraint) that may be volatile. */
function volatileCall(tokens: Token[], from: number): string | undefined {
    let depth = 0;
    for (let k = from; k < tokens.length; k++) {
        const t = tokens[k];
        if (t.kind === "punct" && t.value === "(") depth++;
        if (t.kind === "punct" && t.value === ")") depth--;
        if (depth === 0 && t.kind === "word" && COLUMN_CONSTRAINT_WORDS.has(t.value) && k > from) return undefined;
        const next = tokens[k + 1];
        if ((t.kind === "word" || t.kind === "quoted") && next?.kind === "punct" && next.value === "(") {
            // schema.func( : the name is the last part.
            const name = t.ident ?? t.value.toLowerCase();
            if (!NON_VOLATILE_CALLS.has(name)) return name;
        }
    }
    return undefined;
}

/** Whether NOT VALID appears at depth 0 of an action. */
function notValid(tokens: Token[]): boolean {
    let depth = 0;
    for (let k = 0; k < tokens.length - 1; k++) {
        const t = tokens[k];
        if (t.kind === "punct" && t.value === "(") depth++;
        if (t.kind === "punct" && t.value === ")") depth--;
        if (depth === 0 && t.kind === "word" && t.value === "NOT" && tokens[k + 1].kind === "word" && tokens[k + 1].value === "VALID") return true;
    }
    return false;
}

function short(text: string): string {
    const one = text.replace(/\s+/g, " ").trim();
    return one.length > 160 ? `${one.slice(0, 157)}...` : one;
}

/**
 * The contract and lock-safety operations of a plan, in order. Tables and columns created earlier
 * in the same plan are unknown to the live release, so dropping, renaming, retyping or indexing them
 * is safe; making such a column NOT NULL is not (the live release inserts rows without it). A NOT
 * NULL column added with a default is safe only while the default stays: Django adds one to fill
 * existing rows and drops it in the same migration, which leaves the live release's inserts failing.
 */
export function classifyPlan(plan: readonly PendingMigration[]): Finding[] {
    const findings: Finding[] = [];
    const created = new Set<string>();
    const addedColumns = new Set<string>();
    /** table.column of NOT NULL columns added with a default, whose default is still there. */
    const notNullWithDefault = new Set<string>();

    for (const m of plan) {
        /** The first existing relation a statement of this migration locks, and that statement. */
        let locked: { table: string; statement: string } | undefined;
        for (const sql of m.sql) {
            for (const st of splitStatements(sql)) {
                const add = (operation: ContractOperation, target: string) =>
                    findings.push({ migration: m.migration, operation, target, statement: short(st.text) });
                const table = classifyStatement(st, { created, addedColumns, notNullWithDefault, add });
                if (table && !locked) locked = { table, statement: short(st.text) };
            }
        }
        // In one transaction, the lock of the DDL stays until the Python code is done.
        if (m.runsPython && m.atomic !== false && locked) {
            findings.push({ migration: m.migration, operation: "run_python_with_ddl", target: locked.table, statement: `RunPython with ${locked.statement}` });
        }
    }
    return findings;
}

interface ClassifyState {
    /** Tables and views created earlier in the plan. */
    created: Set<string>;
    /** table.column added to an existing table earlier in the plan. */
    addedColumns: Set<string>;
    notNullWithDefault: Set<string>;
    add(operation: ContractOperation, target: string): void;
}

/** Names after DROP TABLE/VIEW/SCHEMA [IF EXISTS], without CASCADE or RESTRICT. */
function droppedNames(st: Statement, c: Cursor): string[] {
    c.take("IF", "EXISTS");
    const rest = st.tokens.slice(c.i).filter((t) => !(t.kind === "word" && (t.value === "CASCADE" || t.value === "RESTRICT")));
    return splitTopLevel(rest)
        .map((part) => new Cursor(part).qualifiedName())
        .filter((n): n is string => !!n);
}

function hasWord(st: Statement, word: string): boolean {
    return st.tokens.some((t) => t.kind === "word" && t.value === word);
}

/** Classifies one statement; returns the existing table it locks, if any (for RunPython's rule). */
function classifyStatement(st: Statement, s: ClassifyState): string | undefined {
    const c = new Cursor(st.tokens);
    if (c.take("CREATE")) {
        c.take("OR", "REPLACE");
        const unique = c.take("UNIQUE");
        if (c.take("INDEX")) {
            // CREATE [UNIQUE] INDEX [CONCURRENTLY] [[IF NOT EXISTS] name] ON [ONLY] table
            if (c.take("CONCURRENTLY")) return undefined;
            while (!c.done() && !c.isWord("ON")) c.i++;
            if (!c.take("ON")) return undefined;
            c.take("ONLY");
            const table = c.qualifiedName();
            if (!table || s.created.has(table)) return undefined;
            s.add("create_index", table);
            return table;
        }
        if (unique) return undefined;
        // CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE [IF NOT EXISTS] name, CREATE [MATERIALIZED] VIEW name
        while (c.take("GLOBAL") || c.take("LOCAL") || c.take("TEMP") || c.take("TEMPORARY") || c.take("UNLOGGED") || c.take("RECURSIVE"));
        c.take("MATERIALIZED");
        if (!c.take("TABLE") && !c.take("VIEW")) return undefined;
        c.take("IF", "NOT", "EXISTS");
        const name = c.qualifiedName();
        if (name) s.created.add(name);
        return undefined;
    }
    if (c.take("DROP", "TABLE")) {
        let locked: string | undefined;
        for (const name of droppedNames(st, c)) {
            if (s.created.has(name)) continue;
            s.add("drop_table", name);
            locked ??= name;
        }
        return locked;
    }
    if (c.take("DROP", "VIEW") || c.take("DROP", "MATERIALIZED", "VIEW")) {
        let locked: string | undefined;
        for (const name of droppedNames(st, c)) {
            if (s.created.has(name)) continue;
            s.add("drop_view", name);
            locked ??= name;
        }
        return locked;
    }
    if (c.take("DROP", "SCHEMA")) {
        const cascade = hasWord(st, "CASCADE");
        const names = droppedNames(st, c);
        if (cascade) names.forEach((n) => s.add("drop_schema_cascade", n));
        return cascade ? names[0] : undefined;
    }
    if (c.take("LOCK") || c.take("TRUNCATE")) {
        c.take("TABLE");
        c.take("ONLY");
        const table = c.qualifiedName();
        return table && !s.created.has(table) ? table : undefined;
    }
    if (!c.take("ALTER", "TABLE")) return undefined;
    c.take("IF", "EXISTS");
    c.take("ONLY");
    const table = c.qualifiedName();
    if (!table) return undefined;
    if (c.peek()?.kind === "punct" && c.peek()!.value === "*") c.i++;
    const isNew = s.created.has(table);
    const locked = isNew ? undefined : table;

    if (c.take("RENAME")) {
        if (c.take("TO")) {
            const to = c.qualifiedName();
            if (!isNew) s.add("rename_table", table);
            // RENAME TO keeps the schema: a qualified table keeps its qualifier under the new name.
            else if (to) s.created.add(table.includes(".") ? `${table.slice(0, table.lastIndexOf(".") + 1)}${to}` : to);
            return locked;
        }
        if (c.take("CONSTRAINT")) return locked;
        c.take("COLUMN");
        const col = c.ident();
        if (!col || isNew) return locked;
        if (!s.addedColumns.has(`${table}.${col}`)) s.add("rename_column", `${table}.${col}`);
        else if (c.take("TO")) {
            const to = c.ident();
            if (to) s.addedColumns.add(`${table}.${to}`);
        }
        return locked;
    }
    if (c.take("SET", "SCHEMA")) {
        if (!isNew) s.add("rename_table", table);
        return locked;
    }

    for (const action of splitTopLevel(st.tokens.slice(c.i))) {
        const a = new Cursor(action);
        if (a.take("ADD")) {
            const first = a.peek();
            if (first?.kind === "word" && CONSTRAINT_STARTS.has(first.value)) {
                if (!isNew) tableConstraint(a, action, table, s);
                continue;
            }
            a.take("COLUMN");
            a.take("IF", "NOT", "EXISTS");
            const col = a.ident();
            if (!col || isNew) continue;
            s.addedColumns.add(`${table}.${col}`);
            const def = columnDefinition(action.slice(a.i));
            if (def.rewrite) s.add("add_column_rewrite", `${table}.${col}`);
            if (def.references) s.add("add_foreign_key", table);
            if (def.unique) s.add("add_unique_constraint", table);
            if (def.check) s.add("add_check_constraint", table);
            if (!def.notNull) continue;
            if (def.hasDefault) s.notNullWithDefault.add(`${table}.${col}`);
            else s.add("add_not_null_column", `${table}.${col}`);
        } else if (a.take("DROP")) {
            if (a.isWord("CONSTRAINT")) continue;
            a.take("COLUMN");
            a.take("IF", "EXISTS");
            const col = a.ident();
            if (col && !isNew && !s.addedColumns.has(`${table}.${col}`)) s.add("drop_column", `${table}.${col}`);
        } else if (a.take("ALTER")) {
            a.take("COLUMN");
            const col = a.ident();
            if (!col || isNew) continue;
            const target = `${table}.${col}`;
            const added = s.addedColumns.has(target);
            if (a.take("TYPE") || a.take("SET", "DATA", "TYPE")) {
                if (!added) s.add("alter_column_type", target);
            } else if (a.take("SET", "NOT", "NULL")) {
                s.add("set_not_null", target);
            } else if (a.take("DROP", "DEFAULT")) {
                if (s.notNullWithDefault.delete(target)) s.add("add_not_null_column", target);
            }
        }
    }
    return locked;
}

/** ADD [CONSTRAINT name] FOREIGN KEY | CHECK | UNIQUE | PRIMARY KEY | EXCLUDE on an existing table. */
function tableConstraint(a: Cursor, action: Token[], table: string, s: ClassifyState): void {
    if (a.take("CONSTRAINT")) a.ident();
    if (a.isWord("FOREIGN")) {
        if (!notValid(action)) s.add("add_foreign_key", table);
    } else if (a.isWord("CHECK")) {
        if (!notValid(action)) s.add("add_check_constraint", table);
    } else if (a.isWord("UNIQUE") || a.isWord("PRIMARY") || a.isWord("EXCLUDE")) {
        // USING INDEX takes over an index built beforehand (CONCURRENTLY): no build under the lock.
        const usingIndex = action.some((t, k) => t.kind === "word" && t.value === "USING" && action[k + 1]?.kind === "word" && action[k + 1].value === "INDEX");
        if (!usingIndex) s.add("add_unique_constraint", table);
    }
}
