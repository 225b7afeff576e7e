// `npm run check-migrations -- --live LIVE.tar.gz --release NEW.tar.gz [--allow-contract-operations LIST] [--json]`
//
// The deploy's migration gate, offline (a pull request check): starts a throwaway PostgreSQL
// cluster, prepares both releases the way the agent does (unpack, buildCommand), applies the live
// release's migrations, then runs the agent's own migration step for the new release: the
// migration-safety gate (contract and lock-safety rules), the rehearsal (the live release's code
// against a copy of the schema the new release's migrations leave) and the migration. Prints one
// line per operation (migration, operation, target, verdict, recipe) and the rehearsal's answers;
// exits 1 when the deploy would be refused, 2 when the check itself could not run.
//
// The app's commands default to the example app's; --stack NAME reads them from Pulumi.NAME.yaml
// (slotshift:migrateCommand, startCommand, buildCommand, healthPath, smokePaths, migrationCheck,
// and its allowContractOperations on top of --allow-contract-operations), and flags override either.
// --markdown FILE also writes the report as a pull request comment. Needs PostgreSQL's server binaries and what the app's commands need
// (for the example app, Debian's python3-django, python3-psycopg2 and gunicorn).
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parseArgs } from "util";
import { parse as parseYaml } from "yaml";
import { VERSION_PATTERN } from "../lib/contract/names";
import { buildAgentSettings } from "../program/agent-settings";
import { CONTRACT_OPERATIONS, parseContractOperation, SAFE_RECIPES, splitContractOperations } from "../lib/migrations";
import { prepareCommand } from "../agent/commands/prepare";
import { createContext } from "../agent/context";
import { errorMessage, GateError } from "../agent/common/errors";
import { Logger } from "../agent/common/log";
import { MigrationOutcome, MigrationRefusal, PlannedMigration, runMigrationStep } from "../agent/migrations/migration-step";
import { Finding, findingKey } from "../agent/migrations/migration-sql";
import { RehearsalRefusal } from "../agent/migrations/rehearsal";
import { isRoot } from "../agent/common/run-command";
import { PgCluster, PG_BIN } from "./pg-cluster";

const REPO = path.resolve(__dirname, "..");
const PYTHON = "/usr/bin/python3";
const EXAMPLE = {
    migrateCommand: `${PYTHON} manage.py migrate --noinput`,
    startCommand: `${PYTHON} -m gunicorn --bind 127.0.0.1:$PORT --workers 2 mysite.wsgi`,
    buildCommand: "",
    healthPath: "/healthz",
    smokePaths: ["/"],
    migrationCheck: "django",
};

export interface OperationLine {
    migration: string;
    operation: string;
    target: string;
    verdict: "ok" | "refused" | "acknowledged";
    recipe: string;
    statement?: string;
}

export interface CheckReport {
    live: { version: string; archive: string };
    release: { version: string; archive: string };
    result: "accepted" | "refused";
    gate?: string;
    message?: string;
    operations: OperationLine[];
    rehearsal: { ok: boolean; probes: { path: string; status: number; error?: string }[] } | null;
}

const USAGE = `usage: npm run check-migrations -- --live LIVE.tar.gz --release NEW.tar.gz [--allow-contract-operations M:OP:T,...] [--json] [--markdown FILE]
       [--stack NAME] [--migrate-command CMD] [--start-command CMD] [--build-command CMD] [--health-path P] [--smoke-path P]... [--no-rehearsal]`;

class Usage extends Error {}

function versionOf(archive: string, fallback: string): string {
    const name = path.basename(archive).replace(/\.(tar\.gz|tgz)$/, "");
    return VERSION_PATTERN.test(name) ? name : fallback;
}

/** One line per operation: each finding of the gate; a migration without any shows its framework operations as ok. */
export function operationLines(plan: readonly PlannedMigration[], findings: readonly Finding[], allowed: readonly string[]): OperationLine[] {
    const out: OperationLine[] = [];
    const migrations = [...new Set([...plan.map((m) => m.migration), ...findings.map((f) => f.migration)])];
    for (const migration of migrations) {
        const own = findings.filter((f) => f.migration === migration);
        for (const f of own) {
            out.push({
                migration,
                operation: f.operation,
                target: f.target,
                verdict: allowed.includes(findingKey(f)) ? "acknowledged" : "refused",
                recipe: SAFE_RECIPES[f.operation],
                statement: f.statement,
            });
        }
        if (own.length) continue;
        for (const op of plan.find((m) => m.migration === migration)?.operations ?? [])
            out.push({ migration, operation: op, target: "-", verdict: "ok", recipe: "-" });
    }
    return out;
}

export function formatReport(r: CheckReport): string {
    const rows = [
        ["MIGRATION", "OPERATION", "TARGET", "VERDICT", "RECIPE"],
        ...r.operations.map((o) => [o.migration, o.operation, o.target, o.verdict, o.recipe]),
    ];
    for (const p of r.rehearsal?.probes ?? []) {
        const good = p.status === 200 || (p.status >= 200 && p.status < 400);
        rows.push(["rehearsal", `GET ${p.path}`, r.live.version, good ? "ok" : "refused", p.error ?? `HTTP ${p.status}`]);
    }
    const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
    const table = rows.map((row) =>
        row
            .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i])))
            .join("  ")
            .trimEnd(),
    );
    const head = `check-migrations: ${r.release.version} over the live ${r.live.version}`;
    const tail = r.result === "accepted" ? "result: accepted" : `result: refused by the ${r.gate} gate\n${r.message ?? ""}`;
    return [head, ...(r.operations.length ? table : ["(no pending migrations)"]), tail].join("\n");
}

/** The report as a pull request comment: a table of the operations and the rehearsal, then the refusal. */
export function formatMarkdown(r: CheckReport, title: string): string {
    const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
    const verdict = r.result === "accepted" ? "accepted" : `**refused** by the ${r.gate} gate`;
    const lines = [`### ${title}: ${verdict}`, "", `\`${r.release.version}\` over the live \`${r.live.version}\``, ""];
    const rows = [
        ...r.operations.map((o) => [o.migration, o.operation, o.target, o.verdict, o.recipe]),
        ...(r.rehearsal?.probes ?? []).map((p) => [
            "rehearsal",
            `GET ${p.path}`,
            r.live.version,
            p.status >= 200 && p.status < 400 ? "ok" : "refused",
            p.error ?? `HTTP ${p.status}`,
        ]),
    ];
    if (rows.length) {
        lines.push(
            "| migration | operation | target | verdict | recipe |",
            "| --- | --- | --- | --- | --- |",
            ...rows.map((row) => `| ${row.map(cell).join(" | ")} |`),
        );
    } else lines.push("No pending migrations.");
    if (r.message) lines.push("", "```", r.message, "```");
    return lines.join("\n");
}

async function main(argv: string[]): Promise<number> {
    const { values } = parseArgs({
        args: argv,
        options: {
            live: { type: "string" },
            release: { type: "string" },
            "allow-contract-operations": { type: "string", multiple: true },
            json: { type: "boolean" },
            markdown: { type: "string" },
            stack: { type: "string" },
            "migrate-command": { type: "string" },
            "start-command": { type: "string" },
            "build-command": { type: "string" },
            "health-path": { type: "string" },
            "smoke-path": { type: "string", multiple: true },
            "no-rehearsal": { type: "boolean" },
            keep: { type: "boolean" },
            help: { type: "boolean" },
        },
        strict: true,
    });
    if (values.help) {
        console.log(USAGE);
        return 0;
    }
    if (!values.live || !values.release) throw new Usage("--live and --release are required");
    for (const f of [values.live, values.release]) if (!fs.existsSync(f)) throw new Usage(`${f}: no such archive`);
    const allow = (values["allow-contract-operations"] ?? []).flatMap(splitContractOperations);
    for (const a of allow) {
        try {
            parseContractOperation(a);
        } catch (e) {
            throw new Usage(`--allow-contract-operations: ${errorMessage(e)} (operations: ${Object.keys(CONTRACT_OPERATIONS).join(", ")})`);
        }
    }
    const app = { ...EXAMPLE };
    if (values.stack) {
        const file = path.join(REPO, `Pulumi.${values.stack}.yaml`);
        const config = (parseYaml(fs.readFileSync(file, "utf8")) as { config?: Record<string, unknown> }).config ?? {};
        const get = (key: string) => config[`slotshift:${key}`];
        for (const key of ["migrateCommand", "startCommand", "buildCommand", "healthPath", "migrationCheck"] as const) {
            const v = get(key);
            if (typeof v === "string") app[key] = v;
        }
        const smoke = get("smokePaths");
        if (Array.isArray(smoke)) app.smokePaths = smoke.map(String);
        // The acknowledgements the deploy of that stack would pass, too.
        const acks = get("allowContractOperations");
        if (Array.isArray(acks)) allow.push(...acks.map(String));
    }
    app.migrateCommand = values["migrate-command"] ?? app.migrateCommand;
    app.startCommand = values["start-command"] ?? app.startCommand;
    app.buildCommand = values["build-command"] ?? app.buildCommand;
    app.healthPath = values["health-path"] ?? app.healthPath;
    app.smokePaths = values["smoke-path"] ?? app.smokePaths;
    if (!PG_BIN) throw new Error("no PostgreSQL server binaries (apt-get install postgresql)");

    const liveVersion = versionOf(values.live, "live");
    let newVersion = versionOf(values.release, "release");
    if (newVersion === liveVersion) newVersion = `${newVersion}-new`;
    const json = !!values.json;
    const log: Logger = { info: (m) => process.stderr.write(`${m}\n`), warn: (m) => process.stderr.write(`warning: ${m}\n`) };

    const root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-check-migrations-"));
    fs.chmodSync(root, 0o755);
    let pg: PgCluster | undefined;
    try {
        pg = PgCluster.start(root);
        pg.createdb("app");
        // As root the app's commands run as an app user; the cluster's own user is the one that exists.
        const settings = buildAgentSettings(
            {
                appName: isRoot() ? "postgres" : "app",
                domain: "localhost",
                healthPath: app.healthPath,
                smokePaths: app.smokePaths,
                slotBasePort: 18001,
                haproxyPort: 18080,
                keepPreviousWarm: true,
                releasesToKeep: 5,
                buildCommand: app.buildCommand || undefined,
                migrateCommand: app.migrateCommand,
                migrationCheck: app.migrationCheck,
                startCommand: app.startCommand,
                migrationRehearsal: !values["no-rehearsal"],
                dbLockRetries: 0,
            },
            {
                root: path.join(root, "host"),
                processControl: { kind: "command", start: "true", stop: "true" },
            },
        );
        const ctx = createContext(settings, log);
        fs.mkdirSync(path.dirname(ctx.layout.envFile), { recursive: true });
        fs.mkdirSync(ctx.layout.deployDir, { recursive: true });
        const secret = crypto.randomBytes(32).toString("hex");
        fs.writeFileSync(ctx.layout.envFile, `DATABASE_HOST="${pg.sock}"\nDATABASE_NAME="app"\nDATABASE_USER="${PgCluster.dbUser}"\nSECRET_KEY="${secret}"\n`, {
            mode: 0o644,
        });
        for (let d = path.join(root, "host"); d !== root; d = path.dirname(d)) fs.chmodSync(d, 0o755);
        await prepareCommand(ctx, { version: liveVersion, source: path.resolve(values.live) });
        await prepareCommand(ctx, { version: newVersion, source: path.resolve(values.release) });
        log.info(`check-migrations: applying the live release ${liveVersion}'s migrations`);
        await runMigrationStep(ctx, { version: liveVersion, liveVersion: null, allow: [] });

        const report: CheckReport = {
            live: { version: liveVersion, archive: values.live },
            release: { version: newVersion, archive: values.release },
            result: "accepted",
            operations: [],
            rehearsal: null,
        };
        try {
            const o: MigrationOutcome = await runMigrationStep(ctx, { version: newVersion, liveVersion, allow });
            report.operations = operationLines(o.plan ?? [], o.findings ?? [], o.allowed);
            if (o.rehearsal) report.rehearsal = { ok: o.rehearsal.ok, probes: o.rehearsal.probes };
        } catch (e) {
            if (!(e instanceof GateError)) throw e;
            report.result = "refused";
            report.gate = e.gate;
            report.message = e.message;
            if (e instanceof MigrationRefusal) report.operations = operationLines(e.plan, e.findings, e.allowed);
            if (e instanceof RehearsalRefusal) {
                report.rehearsal = { ok: false, probes: e.probes };
                if (e.gateResult) report.operations = operationLines(e.gateResult.plan ?? [], e.gateResult.findings ?? [], e.gateResult.allowed);
            }
        }
        process.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
        if (values.markdown) fs.writeFileSync(values.markdown, `${formatMarkdown(report, "Migration check")}\n`);
        return report.result === "accepted" ? 0 : 1;
    } finally {
        pg?.stop();
        if (!values.keep) fs.rmSync(root, { recursive: true, force: true });
        else log.info(`kept ${root}`);
    }
}

main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
        process.stderr.write(`check-migrations: error: ${errorMessage(e)}\n${e instanceof Usage ? `${USAGE}\n` : ""}`);
        process.exit(2);
    },
);
