// The migration rehearsal: what static rules cannot see (the live release's raw SQL, a view, a
// trigger, a default old INSERTs rely on), tried for real before the real migration. The live
// schema (no rows, except the migration history so the new release migrates from where the live
// one stands) is copied into a scratch database, the new release's migrations run there, and a
// temporary instance of the LIVE release's code answers the health path and the smoke paths
// against it. Any failure refuses the deploy before the real database or a slot changed; the
// scratch database and the instance are removed in every case.
//
// Database administration (create, copy, drop) runs as PostgreSQL's OS superuser (`postgres`)
// over the same socket or host the app uses; the app only ever connects as itself. The app finds
// the scratch database through the variables it already reads: DATABASE_NAME, PGDATABASE, or the
// database part of DATABASE_URL, whichever its environment sets.
import { randomBytes } from "crypto";
import * as http from "http";
import * as net from "net";
import { releaseDir } from "../../lib/host-layout";
import { shellJoin } from "../../lib/shell-quote";
import { appEnvValue, appProcessBase } from "../processes/app-process";
import { AgentContext, sleep } from "../context";
import { errorMessage, GateError } from "../common/errors";
import { seconds } from "../common/log";
import { Finding } from "./migration-sql";
import { isRoot, lookupUser, runCommand } from "../common/run-command";
import { AppProcess, runAppProcess, startAppProcess } from "../processes/transient-unit";

/** A loopback port nobody listens on now. */
export function spareLoopbackPort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const addr = srv.address();
            const port = typeof addr === "object" && addr ? addr.port : 0;
            srv.close(() => resolve(port));
        });
    });
}

/** Tables frameworks keep their applied migrations in: copied with their rows. */
const MIGRATION_HISTORY_TABLES = ["django_migrations", "schema_migrations", "alembic_version", "flyway_schema_history", "knex_migrations"];

export interface RehearsalRequest {
    version: string;
    liveVersion: string;
    /** The step variables the real migration runs with (PGOPTIONS with the timeouts...); the app's env file comes first. */
    migrateEnv: Record<string, string>;
    migrateCommand: string;
    /** The live release's start command and health check, as its slot was started. */
    startCommand: string;
    health: { path: string; host: string };
    /** How long the live release's instance may take to answer its health path with 200. */
    healthTimeoutMs?: number;
}

export interface ProbeOutcome {
    path: string;
    status: number;
    error?: string;
}

export interface RehearsalOutcome {
    ok: boolean;
    probes: ProbeOutcome[];
    durationMs: number;
    /** Why it refused (also the GateError's message). */
    message?: string;
}

/** The rehearsal's refusal, with the answers it got (and, set by the migration step, what the gate classified). */
export class RehearsalRefusal extends GateError {
    gateResult?: { findings?: Finding[]; plan?: { migration: string; operations: string[] }[]; allowed: string[] };
    constructor(
        message: string,
        readonly probes: ProbeOutcome[],
    ) {
        super("rehearsal", message);
        this.name = "RehearsalRefusal";
    }
}

/** Where the app's database is, from the variables libpq and common settings modules read. */
interface DatabaseTarget {
    name: string;
    host?: string;
    port?: string;
    /** Role that owns the app's database (the scratch one gets the same owner). */
    owner: string;
}

type EnvLookup = (name: string) => string | undefined;

function databaseTarget(get: EnvLookup, appUser: string): DatabaseTarget {
    const env = {
        DATABASE_URL: get("DATABASE_URL"),
        DATABASE_NAME: get("DATABASE_NAME"),
        PGDATABASE: get("PGDATABASE"),
        DATABASE_HOST: get("DATABASE_HOST"),
        PGHOST: get("PGHOST"),
        DATABASE_PORT: get("DATABASE_PORT"),
        PGPORT: get("PGPORT"),
        DATABASE_USER: get("DATABASE_USER"),
        PGUSER: get("PGUSER"),
    };
    let url: URL | undefined;
    try {
        url = env.DATABASE_URL ? new URL(env.DATABASE_URL) : undefined;
    } catch {
        url = undefined;
    }
    const fromUrl = (v: string | undefined) => (v ? decodeURIComponent(v) : undefined);
    const name = env.DATABASE_NAME || env.PGDATABASE || fromUrl(url?.pathname.replace(/^\//, "")) || appUser;
    const host = env.DATABASE_HOST || env.PGHOST || fromUrl(url?.hostname) || undefined;
    const port = env.DATABASE_PORT || env.PGPORT || url?.port || undefined;
    const owner = env.DATABASE_USER || env.PGUSER || fromUrl(url?.username) || appUser;
    return { name, host, port, owner };
}

/** The app environment pointed at another database, in each form the app may read it. */
function pointedAt(get: EnvLookup, database: string): Record<string, string> {
    const env = { DATABASE_URL: get("DATABASE_URL"), DATABASE_NAME: get("DATABASE_NAME") };
    const out: Record<string, string> = { PGDATABASE: database };
    if (env.DATABASE_NAME || !env.DATABASE_URL) out.DATABASE_NAME = database;
    if (env.DATABASE_URL) {
        try {
            const url = new URL(env.DATABASE_URL);
            url.pathname = `/${encodeURIComponent(database)}`;
            out.DATABASE_URL = url.toString();
        } catch {
            // Not a URL: the app reads something else; DATABASE_NAME/PGDATABASE must do.
        }
    }
    return out;
}

/** GET with the first KiB of the body, for the refusal message. */
function probe(port: number, p: string, host: string, timeoutMs: number): Promise<{ status: number; body: string; error?: string }> {
    return new Promise((resolve) => {
        const r = http.request({ host: "127.0.0.1", port, path: p, method: "GET", headers: { Host: host }, agent: false, timeout: timeoutMs }, (res) => {
            let body = "";
            res.on("data", (c: Buffer) => {
                if (body.length < 4096) body += c.toString("utf8");
            });
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
            res.on("error", (e) => resolve({ status: 0, body, error: e.message }));
        });
        r.on("timeout", () => r.destroy(new Error(`no answer within ${timeoutMs} ms`)));
        r.on("error", (e) => resolve({ status: 0, body: "", error: (e as NodeJS.ErrnoException).code ?? e.message }));
        r.end();
    });
}

/** The first lines that say what went wrong: a traceback or error in the instance's output, else the response body as text. */
function firstErrorLines(output: readonly string[], body: string, max = 4): string[] {
    const start = output.findIndex((l) => /Traceback|Error|Exception|FATAL|ERROR/.test(l));
    if (start >= 0) {
        // From a traceback, the exception line at its end says most: show it first.
        const block = output.slice(start, start + 60);
        const exc = block.find((l, i) => i > 0 && /^\S[\w.]*(Error|Exception)\b/.test(l.trim()) && !l.startsWith(" "));
        const lines = [exc, ...block].filter((l): l is string => !!l && l.trim() !== "");
        return [...new Set(lines.map((l) => l.trim()))].slice(0, max);
    }
    const text = body
        .replace(/<(script|style)[\s\S]*?<\/\1>/gi, " ")
        .replace(/<[^>]+>/g, " ")
        .split("\n")
        .map((l) => l.replace(/\s+/g, " ").trim())
        .filter((l) => l !== "");
    return text.slice(0, max);
}

/**
 * Runs the rehearsal; throws a GateError ("rehearsal") naming the path, its status and the first
 * lines of the error when the live release fails against the migrated copy. Nothing of the real
 * database or the slots is touched.
 */
export async function rehearseMigration(ctx: AgentContext, req: RehearsalRequest): Promise<RehearsalOutcome> {
    const t0 = Date.now();
    const { log, layout, settings } = ctx;
    const get: EnvLookup = (name) => req.migrateEnv[name] ?? appEnvValue(ctx, name);
    const source = databaseTarget(get, layout.appUser);
    const scratch = `${source.name}_rehearsal_${randomBytes(4).toString("hex")}`.slice(-63);
    const admin = adminRunner(source);
    const probes: ProbeOutcome[] = [];
    const refuse = (what: string, errorLines: readonly string[] = []): never => {
        const detail = errorLines.map((l) => `\n    ${l}`).join("");
        throw new RehearsalRefusal(`migration rehearsal refused ${req.version}: ${what}${detail}\nNothing was migrated`, probes);
    };
    log.info(
        `migration rehearsal: ${req.version}'s migrations on a copy of the live schema (${source.name} -> ${scratch}), then ${req.liveVersion}'s code against it`,
    );

    let instance: AppProcess | undefined;
    let created = false;
    /** Stops the instance and returns what it printed. */
    const instanceOutput = async (): Promise<string[]> => {
        if (!instance) return [];
        await instance.stop();
        return (await instance.done).lines;
    };
    try {
        // 1. The scratch database, owned by the app's role, with the live schema and migration history.
        await admin.checked("create the scratch database", ["createdb", "--template=template0", `--owner=${source.owner}`, "--", scratch]);
        created = true;
        const history = (
            await admin.output([
                "psql",
                "-X",
                "-q",
                "-tA",
                "-d",
                source.name,
                "-c",
                `SELECT string_agg(quote_ident(schemaname) || '.' || quote_ident(tablename), ' ') FROM pg_tables WHERE tablename IN (${MIGRATION_HISTORY_TABLES.map((t) => `'${t}'`).join(", ")})`,
            ])
        ).trim();
        // Schema and history are small: through memory, so a failed dump never looks like an empty one.
        const restore = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", scratch];
        const schema = await admin.output(["pg_dump", "--schema-only", "--", source.name]);
        await admin.checked("copy the live schema", restore, schema);
        if (history) {
            const tables = history.split(" ").flatMap((t) => ["--table", t]);
            await admin.checked("copy the migration history", restore, await admin.output(["pg_dump", "--data-only", ...tables, "--", source.name]));
        }

        // 2. The new release's migrations, there.
        const scratchVars = pointedAt(get, scratch);
        log.info(`  rehearsal: migrating ${scratch} with ${req.version}: ${req.migrateCommand}`);
        const m = await runAppProcess({
            ...appProcessBase(ctx),
            purpose: "rehearsal-migrate",
            command: req.migrateCommand,
            cwd: releaseDir(layout, req.version),
            env: { ...req.migrateEnv, ...scratchVars },
            readWritePaths: [],
            timeoutMs: 3_600_000,
        });
        if (m.code !== 0) {
            const last = m.lines.filter((l) => l.trim() !== "").slice(-3);
            refuse(`the migrations of ${req.version} failed on a copy of the live schema (exit ${m.code})`, last);
        }

        // 3. The live release's code on a spare loopback port against the migrated copy.
        const port = await spareLoopbackPort();
        const instanceVars: Record<string, string> = {
            ...scratchVars,
            PORT: String(port),
            RELEASE_VERSION: req.liveVersion,
            SLOT: "rehearsal",
            CACHE_KEY_PREFIX: `${settings.app.appName}:${req.liveVersion}:rehearsal`,
        };
        const budget = req.healthTimeoutMs ?? 60_000;
        log.info(`  rehearsal: starting ${req.liveVersion} on 127.0.0.1:${port} against ${scratch}`);
        // The same sandbox as the other release steps (a transient unit in the deploy slice on systemd).
        instance = startAppProcess({
            ...appProcessBase(ctx),
            purpose: "rehearsal",
            command: `exec ${req.startCommand}`,
            cwd: releaseDir(layout, req.liveVersion),
            env: instanceVars,
            readWritePaths: [],
            timeoutMs: budget + 300_000,
        });

        // 4. Health path until 200, then every smoke path: 2xx or 3xx.
        const host = req.health.host;
        const healthStart = Date.now();
        let last: { status: number; body: string; error?: string } = { status: 0, body: "", error: "no attempt" };
        while (Date.now() - healthStart < budget) {
            last = await probe(port, req.health.path, host, 5000);
            if (last.status === 200) break;
            await sleep(300);
        }
        probes.push({ path: req.health.path, status: last.status, ...(last.error ? { error: last.error } : {}) });
        if (last.status !== 200) {
            const lines = firstErrorLines(await instanceOutput(), last.body);
            refuse(
                `the live release ${req.liveVersion} did not answer 200 on GET ${req.health.path} within ${seconds(budget)} against the schema ${req.version}'s migrations leave (last: ${last.error ?? `HTTP ${last.status}`})`,
                lines,
            );
        }
        log.info(`  rehearsal GET ${req.health.path} -> 200`);
        for (const p of settings.health.smokePaths) {
            const r = await probe(port, p, host, 15000);
            probes.push({ path: p, status: r.status, ...(r.error ? { error: r.error } : {}) });
            if (!(r.status >= 200 && r.status < 400)) {
                const lines = firstErrorLines(await instanceOutput(), r.body);
                refuse(
                    `the live release ${req.liveVersion} answered ${r.error ?? `HTTP ${r.status}`} on GET ${p} against the schema ${req.version}'s migrations leave (it would fail so while it still serves during the shift)`,
                    lines,
                );
            }
            log.info(`  rehearsal GET ${p} -> ${r.status}`);
        }
        const durationMs = Date.now() - t0;
        log.info(
            `migration rehearsal passed in ${seconds(durationMs)}: ${req.liveVersion} answers ${probes.map((p) => `${p.path} ${p.status}`).join(", ")} on ${req.version}'s schema`,
        );
        return { ok: true, probes, durationMs };
    } catch (e) {
        if (e instanceof GateError) throw e;
        throw new RehearsalRefusal(
            `migration rehearsal of ${req.version} could not run: ${errorMessage(e)}. Nothing was migrated (set migrationRehearsal: false to deploy without it)`,
            probes,
        );
    } finally {
        if (instance) {
            const name = instance.name;
            await instanceOutput().then(
                () => log.info(`  rehearsal: instance ${name} stopped`),
                (e) => log.warn(`stopping the rehearsal instance failed: ${errorMessage(e)}`),
            );
        }
        if (created) {
            const dropped = await admin.run(["dropdb", "--if-exists", "--force", "--", scratch]);
            if (dropped.code !== 0) log.warn(`dropping the scratch database ${scratch} failed (exit ${dropped.code}): ${dropped.tail.trim()}`);
            else log.info(`  rehearsal: scratch database ${scratch} dropped`);
        }
    }
}

/** Runs PostgreSQL's client programs as its OS superuser, against the app's server. */
function adminRunner(db: DatabaseTarget) {
    const admin = isRoot() ? lookupUser("postgres") : undefined;
    const asIds = admin ? { uid: admin.uid, gid: admin.gid } : undefined;
    const conn = [...(db.host ? ["--host", db.host] : []), ...(db.port ? ["--port", db.port] : [])];
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, LANG: "C.UTF-8", HOME: "/" };
    /** argv with the connection options after the program name. */
    const run = (argv: string[], input?: string, captureStdout = false) =>
        runCommand(shellJoin([argv[0], ...conn, ...argv.slice(1)]), { asIds, env, cwd: "/", timeoutMs: 3_600_000, input, captureStdout });
    const failure = (argv: string[], r: { code: number; tail: string }) => `${argv[0]} exit ${r.code}: ${r.tail.trim().split("\n").slice(-2).join(" / ")}`;
    return {
        run,
        output: async (argv: string[]) => {
            const r = await run(argv, undefined, true);
            if (r.code !== 0) throw new Error(failure(argv, r));
            return r.stdout ?? "";
        },
        checked: async (what: string, argv: string[], input?: string) => {
            const r = await run(argv, input);
            if (r.code !== 0) throw new Error(`could not ${what} (${failure(argv, r)})`);
        },
    };
}
