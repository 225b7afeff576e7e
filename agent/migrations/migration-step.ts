// The migration step of a deploy: the safety gate, then the release's migrate command, once per
// version, under the deploy lock, after prepare and before the new slot starts. While the shift
// runs the live release and the new one share the database, so the gate refuses schema changes the
// live release cannot survive, and DDL that would hold a lock blocking its queries for a whole table
// scan or rewrite, unless the stack config acknowledges them (lib/migrations.ts). A migration that
// gives up on lock_timeout (it waited behind a long query) is tried again after a pause.
import { migrationMarkerPath as markerPath, releaseDir } from "../../lib/host-layout";
import { CONTRACT_OPERATIONS, djangoManageCommand, MigrationCheck, parseMigrationCheck } from "../../lib/migrations";
import { appEnvValue, appOwner, appProcessBase, releaseEnv } from "../processes/app-process";
import { readSlotsState } from "../state/slots-file";
import { AgentContext, sleep } from "../context";
import { djangoPlanCommand, DjangoMigration, parseDjangoPlanOutput } from "./django-plan";
import { AgentError, errorMessage, GateError } from "../common/errors";
import { readJsonFile, writeFileAtomic } from "../common/fs-atomic";
import { seconds } from "../common/log";
import { describeFinding, findingKey, Finding, classifyPlan, recipeOf } from "./migration-sql";
import { RehearsalOutcome, RehearsalRefusal, rehearseMigration } from "./rehearsal";
import { RunResult } from "../common/run-command";
import { AppProcessSpec, runAppProcess } from "../processes/transient-unit";

export interface MigrationRequest {
    version: string;
    /** The release serving traffic now; null on a first deploy (nothing to protect). */
    liveVersion: string | null;
    /** Acknowledged contract operations (MIGRATION:OPERATION:TARGET). */
    allow: readonly string[];
    /** Only run the gate (and report the plan); migrate nothing. */
    checkOnly?: boolean;
    /** How long the rehearsal's instance of the live release may take to become healthy (the deploy's health timeout). */
    healthTimeoutMs?: number;
}

interface GateResult {
    pending?: string[];
    allowed: string[];
    /** Every operation the gate classified, acknowledged or not (Django check only). */
    findings?: Finding[];
    /** The pending migrations and their operations as the framework describes them (Django check only). */
    plan?: PlannedMigration[];
}

export interface PlannedMigration {
    migration: string;
    operations: string[];
}

export interface MigrationOutcome {
    /** Whether the migrate command ran now. */
    ran: boolean;
    /** Why nothing ran. */
    skipped?: string;
    /** Migrations the gate saw pending (Django check only). */
    pending?: string[];
    /** Migrations the command reported applied (Django's "Applying x... OK" lines). */
    applied: string[];
    /** Contract operations let through by an acknowledgement. */
    allowed: string[];
    /** How many times the migrate command ran (more than once after lock timeouts). */
    attempts?: number;
    /** The rehearsal's answers, when one ran. */
    rehearsal?: RehearsalOutcome;
    findings?: Finding[];
    plan?: PlannedMigration[];
    durationMs: number;
}

export interface MigrationMarker {
    version: string;
    migratedAt: string;
    command: string;
    applied: string[];
    allowed: string[];
    durationMs: number;
}

/** deploy/migrations/<version>.json: written after a successful migrate, so it runs once per version. */
function migrationMarkerPath(ctx: AgentContext, version: string): string {
    return markerPath(ctx.layout, version);
}

export function readMigrationMarker(ctx: AgentContext, version: string): MigrationMarker | undefined {
    try {
        return readJsonFile<MigrationMarker>(migrationMarkerPath(ctx, version));
    } catch {
        return undefined;
    }
}

/** "-c lock_timeout=5000ms [-c statement_timeout=...]" after whatever PGOPTIONS the app sets (a later -c wins in libpq). */
export function withLockTimeout(pgoptions: string | undefined, lockTimeoutMs: number, statementTimeoutMs?: number): string {
    return [pgoptions?.trim(), `-c lock_timeout=${lockTimeoutMs}ms`, statementTimeoutMs ? `-c statement_timeout=${statementTimeoutMs}ms` : ""]
        .filter(Boolean)
        .join(" ");
}

/** PostgreSQL's message when a statement gave up waiting for a lock (SQLSTATE 55P03). */
function gaveUpOnLock(lines: readonly string[]): boolean {
    return lines.some((l) => /canceling statement due to lock timeout|LockNotAvailable/.test(l));
}

/** Pause before retry `attempt` (1-based): base, 2x base, 4x base, ... at most 60 s. */
export function lockRetryPause(attempt: number, baseMs: number): number {
    return Math.min(60_000, baseMs * 2 ** (attempt - 1));
}

/** Migration ids from Django's migrate output: applied ("Applying x... OK") and the one it died in. */
export function parseMigrateOutput(lines: readonly string[]): { applied: string[]; failedIn?: string } {
    const applied: string[] = [];
    let failedIn: string | undefined;
    for (const line of lines) {
        for (const m of line.matchAll(/Applying (\S+?)\.\.\.( OK)?/g)) {
            if (m[2]) {
                applied.push(m[1]);
                if (failedIn === m[1]) failedIn = undefined;
            } else failedIn = m[1];
        }
    }
    return { applied, failedIn };
}

/** The line that says what went wrong: the last non-blank one (an exception's message). */
function lastMeaningfulLine(r: RunResult): string {
    return (
        [...r.lines]
            .reverse()
            .find((l) => l.trim() !== "")
            ?.trim() ?? ""
    );
}

/** The gate's refusal, with every operation it classified (for a report such as check-migrations'). */
export class MigrationRefusal extends GateError {
    constructor(
        message: string,
        readonly findings: Finding[],
        readonly allowed: string[],
        readonly plan: PlannedMigration[],
    ) {
        super("migration-safety", message);
        this.name = "MigrationRefusal";
    }
}

/** Operations refused for the lock they hold, not for what they remove. */
const LOCK_OPERATIONS = new Set<string>(Object.keys(CONTRACT_OPERATIONS).slice(Object.keys(CONTRACT_OPERATIONS).indexOf("create_index")));

function isLockOperation(f: Pick<Finding, "operation">): boolean {
    return LOCK_OPERATIONS.has(f.operation);
}

/** The gate's refusal: every operation, why, its safe recipe, and the acknowledgement that would let it through. */
function refusalMessage(version: string, liveVersion: string, refused: readonly Finding[]): string {
    const contract = refused.filter((f) => !isLockOperation(f));
    const lock = refused.filter(isLockOperation);
    const lines = [
        `migration-safety gate refused ${version}: ${refused.length} operation(s) the live release ${liveVersion} may not survive while both serve:`,
        ...refused.flatMap((f) => [`  ${describeFinding(f)}`, `      safe: ${recipeOf(f)}`]),
    ];
    if (contract.length) lines.push("Contract operations ship as expand/contract: first a release that stops using what they remove, then the change.");
    if (lock.length) lines.push("Lock-safety operations block the live release's queries on the table for as long as the scan or rewrite takes.");
    lines.push(
        "Once it is safe (the live release no longer uses it, or the table is small enough), acknowledge each operation in stack config (allowContractOperations):",
        ...refused.map((f) => `  - ${findingKey(f)}`),
        "Nothing was migrated",
    );
    return lines.join("\n");
}

/**
 * Runs the gate and the migration of `version`. Call under the deploy lock. Throws a GateError
 * ("migration-safety" or "migration") naming the operation or the migration that stopped it.
 */
export async function runMigrationStep(ctx: AgentContext, req: MigrationRequest): Promise<MigrationOutcome> {
    const t0 = Date.now();
    const { log } = ctx;
    const settings = ctx.settings.migrations;
    const command = settings?.migrateCommand;
    const none = (skipped: string): MigrationOutcome => ({ ran: false, skipped, applied: [], allowed: [], durationMs: Date.now() - t0 });
    if (!settings || !command) {
        if (req.allow.length) log.warn(`allowContractOperations is set but no migrateCommand is configured: nothing to acknowledge`);
        return none("no migrateCommand");
    }
    const done = readMigrationMarker(ctx, req.version);
    if (done) {
        log.info(`migrations of ${req.version} already ran at ${done.migratedAt}; not run again`);
        return none("already migrated");
    }

    const cwd = releaseDir(ctx.layout, req.version);
    const asUser = appOwner(ctx) ? ctx.layout.appUser : undefined;
    const lockTimeoutMs = Math.round(settings.dbLockTimeout * 1000);
    const statementTimeoutMs = Math.round(settings.dbStatementTimeout * 1000);
    const env: Record<string, string> = {
        ...releaseEnv(ctx, req.version),
        LIVE_VERSION: req.liveVersion ?? "",
        SLOTSHIFT_ALLOW_CONTRACT: req.allow.join("\n"),
        SLOTSHIFT_DB_LOCK_TIMEOUT_MS: String(lockTimeoutMs),
        // Progress lines ("Applying x...") arrive before a traceback, so a failure names its migration.
        PYTHONUNBUFFERED: "1",
        // The app's PGOPTIONS is read as data; the result reaches only the app's unit.
        PGOPTIONS: withLockTimeout(appEnvValue(ctx, "PGOPTIONS"), lockTimeoutMs, statementTimeoutMs),
    };
    // Migrations write only the database: nothing on disk is writable for them.
    const run: RunContext = { ...appProcessBase(ctx), cwd, env, readWritePaths: [], asUser };

    const gate = await safetyGate(ctx, req, parseMigrationCheck(settings.migrationCheck), command, run);
    const classified = { ...(gate.findings ? { findings: gate.findings } : {}), ...(gate.plan ? { plan: gate.plan } : {}) };
    if (req.checkOnly) return { ...none("check only"), pending: gate.pending, allowed: gate.allowed, ...classified };
    let rehearsal: RehearsalOutcome | undefined;
    try {
        rehearsal = await rehearse(ctx, req, gate, env, command);
    } catch (e) {
        // A report (check-migrations) shows what the gate classified beside the rehearsal's answers.
        if (e instanceof RehearsalRefusal) e.gateResult = gate;
        throw e;
    }

    const retries = settings.dbLockRetries;
    const backoffMs = settings.lockRetryBackoffMs ?? 2000;
    const applied: string[] = [];
    let attempt = 0;
    for (;;) {
        attempt++;
        const why = ctx.abortReason();
        if (why) throw new GateError("aborted", `deploy aborted before the migration: ${why}`);
        log.info(
            `migrate (attempt ${attempt} of ${retries + 1}): ${command}${asUser ? ` (as ${asUser})` : ""}; lock_timeout ${lockTimeoutMs} ms, statement_timeout ${statementTimeoutMs} ms`,
        );
        const r = await runAppProcess({ ...run, purpose: "migrate", command, timeoutMs: 3_600_000 });
        const parsed = parseMigrateOutput(r.lines);
        applied.push(...parsed.applied);
        if (r.code === 0) break;
        const where = parsed.failedIn ? ` in ${parsed.failedIn}` : "";
        const before = applied.length ? `; applied before it: ${applied.join(", ")}` : "";
        const failure = `migration of ${req.version} failed${where} (exit ${r.code}): ${lastMeaningfulLine(r) || command}${before}`;
        if (!gaveUpOnLock(r.lines) || attempt > retries) {
            throw new GateError("migration", attempt > 1 ? `${failure} (attempt ${attempt} of ${retries + 1})` : failure);
        }
        // It waited for a lock and gave up: its transaction rolled back, and Django resumes at the first unapplied migration.
        const pause = lockRetryPause(attempt, backoffMs);
        log.warn(`attempt ${attempt} of ${retries + 1} gave up on lock_timeout${where}; trying again in ${seconds(pause)}`);
        await sleep(pause);
    }
    const durationMs = Date.now() - t0;
    const parsed = { applied };
    const marker: MigrationMarker = {
        version: req.version,
        migratedAt: new Date().toISOString(),
        command,
        applied: parsed.applied,
        allowed: gate.allowed,
        durationMs,
    };
    writeFileAtomic(migrationMarkerPath(ctx, req.version), JSON.stringify(marker, null, 1) + "\n", { mode: 0o644 });
    log.info(
        `migrations of ${req.version} done in ${seconds(durationMs)}${attempt > 1 ? ` (attempt ${attempt})` : ""}${parsed.applied.length ? `: ${parsed.applied.join(", ")}` : ""}`,
    );
    return {
        ran: true,
        pending: gate.pending,
        applied: parsed.applied,
        allowed: gate.allowed,
        attempts: attempt,
        ...(rehearsal ? { rehearsal } : {}),
        ...classified,
        durationMs,
    };
}

/** The rehearsal, when configured and there is a live release whose code could break: refuses by throwing. */
async function rehearse(
    ctx: AgentContext,
    req: MigrationRequest,
    gate: GateResult,
    env: Record<string, string>,
    command: string,
): Promise<RehearsalOutcome | undefined> {
    // The rehearsal starts the live release: it needs the slots' start command.
    const startCommand = ctx.settings.app.startCommand;
    if (!ctx.settings.migrations.migrationRehearsal || !startCommand || !req.liveVersion) return undefined;
    if (gate.pending && gate.pending.length === 0) {
        ctx.log.info("migration rehearsal: no pending migrations, nothing to rehearse");
        return undefined;
    }
    return rehearseMigration(ctx, {
        version: req.version,
        liveVersion: req.liveVersion,
        migrateEnv: env,
        migrateCommand: command,
        ...liveSlotLaunch(ctx, startCommand),
        healthTimeoutMs: req.healthTimeoutMs,
    });
}

/** The live slot's start command and health check as it was started (older state: the settings'). */
function liveSlotLaunch(ctx: AgentContext, fallbackStartCommand: string): { startCommand: string; health: { path: string; host: string } } {
    const state = readSlotsState(ctx.layout.stateFile);
    const r = state.live ? state.slots[state.live].activation : undefined;
    return {
        startCommand: r?.startCommand ?? fallbackStartCommand,
        health: { path: r?.healthPath ?? ctx.settings.health.healthPath, host: r?.healthHost ?? ctx.settings.proxy.domain },
    };
}

type RunContext = Omit<AppProcessSpec, "purpose" | "command" | "timeoutMs"> & { asUser?: string };

async function safetyGate(ctx: AgentContext, req: MigrationRequest, check: MigrationCheck, migrateCommand: string, run: RunContext): Promise<GateResult> {
    const { log } = ctx;
    if (check.kind === "none") {
        log.info("migration-safety gate: none (migrationCheck is none)");
        return { allowed: [] };
    }
    if (!req.liveVersion && !req.checkOnly) {
        log.info("migration-safety gate: nothing is live yet, so no release to protect");
        return { allowed: [] };
    }
    const live = req.liveVersion ?? "(none)";
    if (check.kind === "command") {
        log.info(`migration-safety gate: ${check.command}${run.asUser ? ` (as ${run.asUser})` : ""}`);
        const r = await runAppProcess({ ...run, purpose: "migration-gate", command: check.command, timeoutMs: 600_000 });
        if (r.code !== 0) {
            const output = r.lines
                .slice(-20)
                .map((l) => `  ${l}`)
                .join("\n");
            throw new GateError(
                "migration-safety",
                `migration-safety gate refused ${req.version}: ${check.command} exited ${r.code}${output ? `\n${output}` : ""}\nNothing was migrated`,
            );
        }
        log.info(`migration-safety gate passed: ${check.command} exited 0`);
        return { allowed: [] };
    }

    const manage = djangoManageCommand(migrateCommand);
    if (!manage) throw new AgentError(`migrationCheck is "django" but migrateCommand is not "... manage.py migrate": ${migrateCommand}`);
    log.info(`migration-safety gate: reading the pending migrations of ${req.version} through ${manage}`);
    const r = await runAppProcess({ ...run, purpose: "migration-gate", command: djangoPlanCommand(manage), timeoutMs: 600_000, captureStdout: true });
    let plan: DjangoMigration[];
    try {
        if (r.code !== 0) throw new Error(`exit ${r.code}: ${lastMeaningfulLine(r)}`);
        const parsed = parseDjangoPlanOutput(r.stdout ?? "");
        const conflicts = Object.entries(parsed.conflicts);
        if (conflicts.length) {
            throw new Error(`conflicting migrations (more than one leaf): ${conflicts.map(([app, names]) => `${app}: ${names.join(", ")}`).join("; ")}`);
        }
        if (parsed.vendor !== "postgresql") log.warn(`the database is ${parsed.vendor}; the SQL is read as PostgreSQL's`);
        plan = parsed.plan;
    } catch (e) {
        throw new GateError(
            "migration-safety",
            `migration-safety gate could not read the migration plan of ${req.version}: ${errorMessage(e)}. Nothing was migrated`,
        );
    }
    if (plan.length === 0) {
        log.info("migration-safety gate passed: no pending migrations");
        return { pending: [], allowed: [], findings: [], plan: [] };
    }
    for (const m of plan) {
        log.info(`  pending ${m.migration}${m.backwards ? " (backwards)" : ""}: ${m.operations.join("; ") || "(no operations)"}`);
        if (!m.atomic) log.warn(`${m.migration} is not atomic: if it fails midway, what it did so far stays`);
    }

    const findings = classifyPlan(plan);
    const allow = new Set(req.allow);
    const refused = findings.filter((f) => !allow.has(findingKey(f)));
    const allowed = [...new Set(findings.filter((f) => allow.has(findingKey(f))).map(findingKey))];
    for (const key of allowed) log.info(`  acknowledged contract operation: ${key}`);
    for (const key of req.allow) {
        if (!findings.some((f) => findingKey(f) === key)) log.warn(`allowContractOperations entry ${key} matches no pending operation of ${req.version}`);
    }
    const planned = plan.map((m) => ({ migration: m.migration, operations: m.operations }));
    if (refused.length) throw new MigrationRefusal(refusalMessage(req.version, live, refused), findings, allowed, planned);
    log.info(
        `migration-safety gate passed: ${plan.length} pending migration(s); ${allowed.length ? `${allowed.length} contract operation(s) acknowledged, ` : ""}nothing else the live release ${live} cannot survive`,
    );
    return { pending: plan.map((m) => m.migration), allowed, findings, plan: planned };
}
