// The migration-safety classifier: reads the SQL each pending migration would run (PostgreSQL
// dialect) and finds the contract operations the live release may not survive. Working on SQL, not
// on one framework's operation objects, covers hand-written RunSQL the same way as generated DDL.
// Pure: unit-tested without a database.
import { ContractOperation, CONTRACT_OPERATIONS, formatContractOperation } from "../lib/migrations";

export interface PendingMigration {
    /** Id the gate reports and acknowledgements name (Django: app_label.migration_name). */
    migration: string;
    /** SQL text in the order it runs; each entry may hold several statements. */
    sql: string[];
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

// --- tokens ------------------------------------------------------------------------------------

export type TokenKind = "word" | "quoted" | "string" | "number" | "punct";

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

/** What an ADD COLUMN definition says about NULLs and defaults, looking only at depth 0. */
function columnDefinition(tokens: Token[]): { notNull: boolean; hasDefault: boolean } {
    let depth = 0;
    let notNull = false;
    let hasDefault = false;
    for (let k = 0; k < tokens.length; k++) {
        const t = tokens[k];
        if (t.kind === "punct" && t.value === "(") depth++;
        if (t.kind === "punct" && t.value === ")") depth--;
        if (depth !== 0 || t.kind !== "word") continue;
        const next = tokens[k + 1];
        if (t.value === "NOT" && next?.kind === "word" && next.value === "NULL") notNull = true;
        if (t.value === "PRIMARY" && next?.kind === "word" && next.value === "KEY") notNull = true;
        // A sequence or an expression fills the column for inserts that leave it out.
        if (t.value === "DEFAULT" || t.value === "GENERATED" || SERIAL_TYPES.has(t.value)) hasDefault = true;
    }
    return { notNull, hasDefault };
}

function short(text: string): string {
    const one = text.replace(/\s+/g, " ").trim();
    return one.length > 160 ? `${one.slice(0, 157)}...` : one;
}

/**
 * The contract operations of a plan, in order. Tables and columns created earlier in the same plan
 * are unknown to the live release, so dropping, renaming or retyping them is safe; making such a
 * column NOT NULL is not (the live release inserts rows without it). A NOT NULL column added with a
 * default is safe only while the default stays: Django adds one to fill existing rows and drops it
 * in the same migration, which leaves the live release's inserts failing.
 */
export function classifyPlan(plan: readonly PendingMigration[]): Finding[] {
    const findings: Finding[] = [];
    const created = new Set<string>();
    const addedColumns = new Set<string>();
    /** table.column of NOT NULL columns added with a default, whose default is still there. */
    const notNullWithDefault = new Set<string>();

    for (const m of plan) {
        for (const sql of m.sql) {
            for (const st of splitStatements(sql)) {
                const add = (operation: ContractOperation, target: string) =>
                    findings.push({ migration: m.migration, operation, target, statement: short(st.text) });
                classifyStatement(st, { created, addedColumns, notNullWithDefault, add });
            }
        }
    }
    return findings;
}

interface ClassifyState {
    created: Set<string>;
    /** table.column added to an existing table earlier in the plan. */
    addedColumns: Set<string>;
    notNullWithDefault: Set<string>;
    add(operation: ContractOperation, target: string): void;
}

function classifyStatement(st: Statement, s: ClassifyState): void {
    const c = new Cursor(st.tokens);
    if (c.take("CREATE")) {
        // CREATE [GLOBAL|LOCAL] [TEMP|TEMPORARY|UNLOGGED] TABLE [IF NOT EXISTS] name
        while (c.take("GLOBAL") || c.take("LOCAL") || c.take("TEMP") || c.take("TEMPORARY") || c.take("UNLOGGED"));
        if (!c.take("TABLE")) return;
        c.take("IF", "NOT", "EXISTS");
        const name = c.qualifiedName();
        if (name) s.created.add(name);
        return;
    }
    if (c.take("DROP", "TABLE")) {
        c.take("IF", "EXISTS");
        const rest = st.tokens.slice(c.i).filter((t) => !(t.kind === "word" && (t.value === "CASCADE" || t.value === "RESTRICT")));
        for (const part of splitTopLevel(rest)) {
            const name = new Cursor(part).qualifiedName();
            if (name && !s.created.has(name)) s.add("drop_table", name);
        }
        return;
    }
    if (!c.take("ALTER", "TABLE")) return;
    c.take("IF", "EXISTS");
    c.take("ONLY");
    const table = c.qualifiedName();
    if (!table) return;
    if (c.peek()?.kind === "punct" && c.peek()!.value === "*") c.i++;
    const isNew = s.created.has(table);

    if (c.take("RENAME")) {
        if (c.take("TO")) {
            const to = c.qualifiedName();
            if (!isNew) s.add("rename_table", table);
            // RENAME TO keeps the schema: a qualified table keeps its qualifier under the new name.
            else if (to) s.created.add(table.includes(".") ? `${table.slice(0, table.lastIndexOf(".") + 1)}${to}` : to);
            return;
        }
        if (c.take("CONSTRAINT")) return;
        c.take("COLUMN");
        const col = c.ident();
        if (!col || isNew) return;
        if (!s.addedColumns.has(`${table}.${col}`)) s.add("rename_column", `${table}.${col}`);
        else if (c.take("TO")) {
            const to = c.ident();
            if (to) s.addedColumns.add(`${table}.${to}`);
        }
        return;
    }
    if (c.take("SET", "SCHEMA")) {
        if (!isNew) s.add("rename_table", table);
        return;
    }

    for (const action of splitTopLevel(st.tokens.slice(c.i))) {
        const a = new Cursor(action);
        if (a.take("ADD")) {
            const first = a.peek();
            if (first?.kind === "word" && CONSTRAINT_STARTS.has(first.value)) continue;
            a.take("COLUMN");
            a.take("IF", "NOT", "EXISTS");
            const col = a.ident();
            if (!col || isNew) continue;
            s.addedColumns.add(`${table}.${col}`);
            const def = columnDefinition(action.slice(a.i));
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
}
