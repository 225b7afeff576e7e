// Django's pending migrations and the SQL each would run, read through the release's own manage.py
// (`manage.py shell -c`): the same settings, interpreter and database as its migrate command. One
// process gives the exact plan `migrate` would follow and, per migration, what `sqlmigrate` shows.
import { shellQuoteAlways } from "../../lib/shell-quote";
import { PendingMigration } from "./migration-sql";

export const PLAN_MARKER = "SLOTSHIFT-MIGRATION-PLAN ";

/**
 * Runs inside `manage.py shell -c`. Everything lives in one function: older Djangos exec the code
 * in a function scope, where nested definitions do not see each other's top-level names.
 */
const DJANGO_PLAN_SCRIPT = `
def _slotshift_plan():
    import json, sys
    from django.db import DEFAULT_DB_ALIAS, connections
    from django.db.migrations.executor import MigrationExecutor
    from django.db.migrations.operations.special import RunPython, SeparateDatabaseAndState
    conn = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(conn)
    loader = executor.loader
    out = {"vendor": conn.vendor, "conflicts": {}, "plan": []}
    conflicts = loader.detect_conflicts()
    if conflicts:
        out["conflicts"] = {app: sorted(names) for app, names in conflicts.items()}
    else:
        for migration, backwards in executor.migration_plan(loader.graph.leaf_nodes()):
            ops = []
            # RunPython's code is invisible in the SQL; SeparateDatabaseAndState may hold one too.
            flat = list(migration.operations)
            for op in migration.operations:
                if isinstance(op, SeparateDatabaseAndState):
                    flat.extend(op.database_operations)
            runs_python = any(isinstance(op, RunPython) for op in flat)
            for op in migration.operations:
                try:
                    ops.append(op.describe())
                except Exception:
                    ops.append(type(op).__name__)
            # Per migration, like sqlmigrate: the state before it comes from the graph, not the database.
            sql = loader.collect_sql([(migration, backwards)])
            out["plan"].append({
                "migration": "%s.%s" % (migration.app_label, migration.name),
                "backwards": bool(backwards),
                "atomic": bool(getattr(migration, "atomic", True)),
                "runsPython": runs_python,
                "operations": ops,
                "sql": [str(s) for s in sql],
            })
    sys.stdout.write("\\n" + ${JSON.stringify(PLAN_MARKER)} + json.dumps(out) + "\\n")
    sys.stdout.flush()
_slotshift_plan()
`;

export interface DjangoMigration extends PendingMigration {
    backwards: boolean;
    atomic: boolean;
    runsPython: boolean;
    operations: string[];
}

export interface DjangoPlan {
    vendor: string;
    conflicts: Record<string, string[]>;
    plan: DjangoMigration[];
}

/** The helper's result line, found among whatever else settings or the shell printed. */
export function parseDjangoPlanOutput(output: string): DjangoPlan {
    const line = output
        .split("\n")
        .reverse()
        .find((l) => l.startsWith(PLAN_MARKER));
    if (!line) throw new Error("the Django migration plan helper printed no result");
    const raw = JSON.parse(line.slice(PLAN_MARKER.length)) as Partial<DjangoPlan>;
    if (!Array.isArray(raw.plan)) throw new Error("the Django migration plan helper printed no plan");
    return {
        vendor: String(raw.vendor ?? "?"),
        conflicts: raw.conflicts ?? {},
        plan: raw.plan.map((m) => ({
            migration: String(m.migration),
            backwards: !!m.backwards,
            atomic: m.atomic !== false,
            runsPython: !!m.runsPython,
            operations: (m.operations ?? []).map(String),
            sql: (m.sql ?? []).map(String),
        })),
    };
}

/** `<python> manage.py shell -c '<helper>'` for the manage.py invocation of the migrate command. */
export function djangoPlanCommand(manage: string): string {
    return `${manage} shell -c ${shellQuoteAlways(DJANGO_PLAN_SCRIPT)}`;
}
