// Every stack setting, declared once: its key (one name from stack config to the agent), its group,
// its kind with unit and bounds, its default, its help, and where it goes. From this table come
// the config schema (program/config-schema.ts), Pulumi.yaml's config block and the README's table
// (scripts/settings-docs.ts, checked by a unit test), agent.json's groups and the agent's flags
// (lib/contract/). Relations between keys (X is required when Y) are the schema's. No npm
// dependency: the agent bundles this file.
import { APP_NAME_PATTERN, APP_NAME_RULE, SHA256_PATTERN, VERSION_PATTERN, VERSION_RULE } from "../contract/names";
import { parseContractOperation } from "../migrations";
import { parseShiftPlan, ShiftStep } from "../shift-plan";
import { choice, count, duration, envLines, KindValue, list, plan, port, ratio, SettingKind, switchKind, text, TextCheck, urlPath } from "./kinds";

/** The groups settings travel in, from the program's components to agent.json and the agent's flags. */
export type SettingGroup = "app" | "release" | "migrations" | "health" | "shift" | "proxy" | "host" | "dashboard";

/**
 * Where a setting is used: the program (its components and outputs), the host setup (rendered into
 * the host's files), agent.json (the agent's standing settings), or the agent's command line (per
 * deploy, so a change shows in `pulumi preview --diff`).
 */
type SettingDestination = "program" | "host setup" | "agent.json" | "command line";

export interface SettingRow {
    key: string;
    group: SettingGroup;
    kind: SettingKind;
    /** The value when unset. A row without one is required, or optional when `optional`. */
    default?: unknown;
    optional?: boolean;
    /** Kept out of logs and command lines, a Pulumi secret. */
    secret?: boolean;
    help: string;
    to: readonly SettingDestination[];
}

const singleLine: TextCheck[] = [];
const command = (maxLength = 1024, checks: TextCheck[] = singleLine) => text({ maxLength, singleLine: true, checks });
const OPENSSH_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( \S+)?$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

const versionKind = text({
    pattern: VERSION_PATTERN,
    rule: VERSION_RULE,
    checks: [{ test: (v) => !v.includes(".."), message: "must not contain '..'" }],
});

const releaseSourceKind = text({
    minLength: 1,
    checks: [
        {
            test: (s) => /^https:\/\/[^\s'"`$\\]+$/.test(s) || (!/^[a-z]+:\/\//i.test(s) && /\.(tar\.gz|tgz)$/.test(s) && !/[\s'"`$\\;&|<>]/.test(s)),
            message: "must be an https:// URL or a local path to a .tar.gz/.tgz archive, without spaces, quotes or shell metacharacters",
        },
    ],
});

const startCommandKind = text({
    minLength: 1,
    maxLength: 1024,
    singleLine: true,
    checks: [
        { test: (s) => s.includes("$PORT") || s.includes("${PORT}"), message: "must use $PORT (the slot's port) so each slot listens on its own port" },
        // The unit runs `exec <command>` so the app is the unit's main process and gets its signals.
        {
            test: (s) => !/(;|&&|\|\||\||`|\$\()/.test(s),
            message: "must be one simple command (the slot runs `exec <command>`): no ';', '&&', '||', '|' or command substitution",
        },
    ],
});

const contractOperation = text({
    problem: (s) => {
        try {
            parseContractOperation(s);
            return undefined;
        } catch (e) {
            return (e as Error).message;
        }
    },
});

const cidr = text({
    checks: [
        {
            test: (value) => {
                const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
                return !!m && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
            },
            message: "must be an IPv4 CIDR such as 203.0.113.7/32",
        },
    ],
});

const DEFAULT_PLAN: ShiftStep[] = parseShiftPlan(["10%:30s", "50%:30s", "100%"]);

export const SETTINGS = [
    // --- the app -------------------------------------------------------------------------------
    {
        key: "appName",
        group: "app",
        kind: text({ pattern: APP_NAME_PATTERN, rule: APP_NAME_RULE }),
        help: "names the app user, `/srv/<app>`, the units `<app>@blue` / `<app>@green`; never an existing system account or group (`root`, `postgres`, `www-data`, `sudo`, `systemd-*`, ...) or the SSH user",
        to: ["program", "host setup", "agent.json"],
    },
    {
        key: "startCommand",
        group: "app",
        kind: startCommandKind,
        help: 'what a slot runs, e.g. "gunicorn app.wsgi --bind 127.0.0.1:$PORT"; must use `$PORT` (the slot\'s port); one simple command, which the slot execs',
        to: ["program", "agent.json"],
    },
    {
        key: "appEnv",
        group: "app",
        kind: envLines,
        default: {},
        secret: true,
        help: "secret; `KEY=value` lines written to `shared/env` (root:<app> 0640) through the agent's stdin, never in a command line or log; each activation starts its slot with a snapshot of it",
        to: ["program"],
    },
    {
        key: "slotBasePort",
        group: "app",
        kind: port,
        default: 8001,
        help: "loopback port of slot blue; green is the next; neither may be `sshPort`, a proxy port, or 5432 with `postgresql`",
        to: ["program", "host setup", "agent.json"],
    },
    {
        key: "appEgress",
        group: "app",
        kind: choice("any", "loopback"),
        default: "any",
        help: "`loopback` limits the app's IP connections to loopback (systemd's IP firewall)",
        to: ["host setup"],
    },
    {
        key: "postgresql",
        group: "app",
        kind: switchKind,
        default: false,
        help: "install PostgreSQL on the host with a database and role for the app user (peer auth)",
        to: ["program", "host setup"],
    },

    // --- the release ---------------------------------------------------------------------------
    {
        key: "releaseVersion",
        group: "release",
        kind: versionKind,
        help: "the version to deploy; changing it is the deploy trigger; 1-63 of letters, digits, `. _ + -` (no `/`, `..`, spaces or quotes)",
        to: ["program", "command line"],
    },
    {
        key: "releaseSource",
        group: "release",
        kind: releaseSourceKind,
        help: "`.tar.gz` archive: a local path (relative to the project) or an `https://` URL the host downloads (it may be presigned: it reaches the host on stdin, never in a command line, and stays a secret in the state)",
        to: ["program"],
    },
    {
        key: "releaseSha256",
        group: "release",
        kind: text({ pattern: SHA256_PATTERN, rule: "be the archive's sha256: 64 lowercase hex digits, as sha256sum prints it" }),
        optional: true,
        help: "the archive's sha256 (`sha256sum`); required for an `https://` source, checked against a local one (the program computes a local file's itself). A version never changes its bytes: the host refuses another archive under a prepared version",
        to: ["program", "command line"],
    },
    {
        key: "releaseDownloadMaxMiB",
        group: "release",
        kind: count(1, 65536, { unit: "MiB" }),
        default: 2048,
        help: "largest `https://` release download the host accepts",
        to: ["command line"],
    },
    {
        key: "releaseDownloadTimeout",
        group: "release",
        kind: duration(1, 24 * 3600, "between 1s and 86400s"),
        default: 600,
        help: "how long the host may take to download an `https://` release; slower is refused",
        to: ["command line"],
    },
    {
        key: "buildCommand",
        group: "release",
        kind: command(),
        optional: true,
        help: "run in the release dir after unpacking, as the app user in a sandboxed transient unit; it writes only `$SLOTSHIFT_BUILD_DIR` (e.g. `collectstatic` with `STATIC_ROOT` there); empty for none. Database migrations belong in `migrateCommand`",
        to: ["agent.json"],
    },
    {
        key: "checkCommand",
        group: "release",
        kind: command(),
        optional: true,
        help: "run in the release dir before any traffic (e.g. `python3 manage.py check --deploy`); empty for none",
        to: ["agent.json"],
    },
    {
        key: "releasesToKeep",
        group: "release",
        kind: count(2, 100, { unit: "releases", minReason: "must be at least 2 (the live and the previous release)" }),
        default: 5,
        help: "release dirs kept on the host (never the live or warm previous one)",
        to: ["agent.json"],
    },

    // --- the migrations ------------------------------------------------------------------------
    {
        key: "migrateCommand",
        group: "migrations",
        kind: command(),
        optional: true,
        help: "database migrations of a new release (e.g. `python3 manage.py migrate --noinput`); empty for none. Run once per version in the release dir, as the app user with the app environment, under the deploy lock, after prepare and before the new release starts or gets any traffic; a failure stops the deploy there and the live release keeps all traffic",
        to: ["agent.json"],
    },
    {
        key: "migrationCheck",
        group: "migrations",
        kind: command(),
        default: "django",
        help: "migration-safety gate before `migrateCommand`, refusing changes the live release cannot survive (dropping or renaming a column or table, changing a column's type, adding NOT NULL without a default) and DDL that locks an existing table for a whole scan or rewrite: `django` (reads the pending migrations' plan and SQL through manage.py), `none`, or a check command of your own whose non-zero exit blocks the deploy with its output",
        to: ["agent.json"],
    },
    {
        key: "allowContractOperations",
        group: "migrations",
        kind: list(contractOperation, 100),
        default: [],
        help: 'contract operations the gate may let through for this release, once the live release no longer uses what they remove, each as `MIGRATION:OPERATION:TARGET` exactly as the gate reports it (e.g. "notes.0004_drop_note_author:drop_column:notes_note.author"); passed on the activate command line, so it shows in `pulumi preview`',
        to: ["command line"],
    },
    {
        key: "dbLockTimeout",
        group: "migrations",
        // Sub-second values are fine here: it bounds how long the live release's queries may queue.
        kind: duration(0.1, 3600, "between 100ms and 1h"),
        default: 5,
        help: "PostgreSQL `lock_timeout` of the migration (through PGOPTIONS): a migration that waits longer for a table lock fails instead of queueing the live release's queries behind it (e.g. 5s, 500ms)",
        to: ["agent.json"],
    },
    {
        key: "dbStatementTimeout",
        group: "migrations",
        // Bounds how long one statement of a migration holds its locks (a backfill, an index build).
        kind: duration(1, 86400, "between 1s and 24h"),
        default: 600,
        help: "PostgreSQL `statement_timeout` of each statement of the migration (through PGOPTIONS): how long one statement (an index build, a backfill) may hold its locks (e.g. 600s, 30m)",
        to: ["agent.json"],
    },
    {
        key: "dbLockRetries",
        group: "migrations",
        kind: count(0, 10, { unit: "attempts" }),
        default: 3,
        help: "further attempts when a migration gives up on `dbLockTimeout`, after a pause of 2 s that doubles each time; other failures are not retried",
        to: ["agent.json"],
    },
    {
        key: "migrationRehearsal",
        group: "migrations",
        kind: switchKind,
        default: true,
        help: "with `migrateCommand`: before the real migration, migrate a scratch copy of the live schema with the new release and run the live release's code against it (health and smoke paths on a spare loopback port); any failure refuses the deploy before anything changes",
        to: ["agent.json"],
    },

    // --- the health checks ---------------------------------------------------------------------
    {
        key: "healthPath",
        group: "health",
        kind: urlPath,
        default: "/healthz",
        help: "readiness path HAProxy and the agent check on each slot; must answer 200",
        to: ["program", "host setup", "agent.json"],
    },
    {
        key: "smokePaths",
        group: "health",
        kind: list(urlPath, 50),
        default: ["/"],
        help: "paths requested on the new slot through HAProxy before it gets any traffic; each must answer below 500",
        to: ["agent.json"],
    },

    // --- the shift and its gates ---------------------------------------------------------------
    {
        key: "shiftPlan",
        group: "shift",
        kind: plan,
        default: DEFAULT_PLAN,
        help: "`PERCENT[:PAUSE]` steps of traffic on the new release; percents strictly increase and end at 100",
        to: ["command line"],
    },
    {
        key: "maxErrorRatio",
        group: "shift",
        kind: ratio(0, 1),
        default: 0.01,
        help: "largest share of 5xx answers (and connection errors) of the new release in any step; above it the shift rolls back",
        to: ["command line"],
    },
    {
        key: "minRequestsPerStep",
        group: "shift",
        kind: count(0, 1_000_000, { unit: "requests", minReason: "must be 0 (steps pass without traffic) or more" }),
        default: 10,
        help: 'requests the new release must get in a step before its gates judge it; a step that ends below it is held up to `maxStepExtension` longer, then fails as "not enough traffic to judge"; `0` lets steps pass without traffic (a stack nobody uses)',
        to: ["command line"],
    },
    {
        key: "maxStepExtension",
        group: "shift",
        kind: duration(1, 3600, "between 1s and 3600s"),
        default: 60,
        help: "how long a step with fewer than `minRequestsPerStep` requests is held longer before it fails",
        to: ["command line"],
    },
    {
        key: "maxLatencyRatio",
        group: "shift",
        kind: ratio(1, 100, { offAtZero: true }),
        default: 3,
        help: "largest median response time of the new release over the old one's in a step (HAProxy's figures; differences under 50 ms never trip); above it the shift rolls back; `0` turns the latency gate off",
        to: ["command line"],
    },
    {
        key: "healthTimeout",
        group: "shift",
        kind: duration(1, 3600, "between 1s and 3600s"),
        default: 120,
        help: "how long a new slot may take to become ready (e.g. 90s, 2m; plain numbers are seconds)",
        to: ["command line"],
    },
    {
        key: "drainTimeout",
        group: "shift",
        kind: duration(1, 3600, "between 1s and 3600s"),
        default: 60,
        help: "how long the old slot's open requests may take to finish before it is stopped",
        to: ["command line"],
    },
    {
        key: "keepPreviousWarm",
        group: "shift",
        kind: switchKind,
        default: true,
        help: "keep the previous release running at weight 0 after a shift, so a rollback is an instant weight flip",
        to: ["agent.json", "command line"],
    },

    // --- the public endpoint -------------------------------------------------------------------
    {
        key: "domain",
        group: "proxy",
        kind: text({ pattern: DOMAIN, rule: "be a DNS name such as app.example.com", lowercase: true }),
        help: "DNS name the site answers on (point it at the `hostAddress` output)",
        to: ["program", "host setup", "agent.json"],
    },
    {
        key: "tlsMode",
        group: "proxy",
        kind: choice("self-signed", "acme"),
        default: "self-signed",
        help: "`self-signed` (generated on the host) or `acme` (Let's Encrypt over HTTP-01; needs `acmeEmail`, `httpPort` 80 and DNS)",
        to: ["host setup"],
    },
    {
        key: "acmeEmail",
        group: "proxy",
        kind: text({
            checks: [{ test: (s) => /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s), message: "must be an e-mail address" }],
        }),
        optional: true,
        help: "contact address of the ACME account; required when `tlsMode` is `acme`",
        to: ["host setup"],
    },
    {
        key: "haproxyPort",
        group: "proxy",
        kind: port,
        default: 8080,
        help: "loopback port of HAProxy's frontend (NGINX proxies to it)",
        to: ["host setup", "agent.json"],
    },
    {
        key: "httpPort",
        group: "proxy",
        kind: port,
        default: 80,
        help: "public HTTP port (ACME challenges and the redirect to HTTPS)",
        to: ["host setup"],
    },
    {
        key: "httpsPort",
        group: "proxy",
        kind: port,
        default: 443,
        help: "public HTTPS port",
        to: ["program", "host setup"],
    },

    // --- the host ------------------------------------------------------------------------------
    {
        key: "hostTarget",
        group: "host",
        kind: choice("aws", "existing"),
        help: "`aws` (an EC2 instance this stack creates) or `existing` (an SSH host given by `hostAddress`)",
        to: ["program"],
    },
    {
        key: "osFlavour",
        group: "host",
        kind: choice("debian", "nixos"),
        default: "debian",
        help: "`debian` (Debian 12, set up by a script) or `nixos` (a NixOS module and nixos-rebuild)",
        to: ["program", "host setup"],
    },
    {
        key: "nixosRelease",
        group: "host",
        kind: text({ pattern: /^\d{2}\.\d{2}$/, rule: "be a NixOS release such as 26.05" }),
        default: "26.05",
        help: "NixOS release whose official AMI is used (aws + nixos); the module needs 26.05 or newer",
        to: ["program"],
    },
    {
        key: "instanceType",
        group: "host",
        kind: text({ pattern: /^[a-z][a-z0-9-]*\.[a-z0-9]+$/, rule: "be an EC2 instance type such as t3.small" }),
        default: "t3.small",
        help: "EC2 instance type (aws); Graviton types (t4g, m7g, ...) get arm64 images",
        to: ["program"],
    },
    {
        key: "rootVolumeGiB",
        group: "host",
        kind: count(8, 16384, { unit: "GiB" }),
        default: 20,
        help: "size of the encrypted gp3 root volume (aws)",
        to: ["program"],
    },
    {
        key: "dataVolumeGiB",
        group: "host",
        kind: count(1, 16384, { unit: "GiB" }),
        default: 20,
        help: "size of the encrypted gp3 data volume (aws) holding PostgreSQL's data, media and the env file; it outlives the instance",
        to: ["program", "host setup"],
    },
    {
        key: "allowHostReplacement",
        group: "host",
        kind: switchKind,
        default: false,
        help: "acknowledges a change that replaces the instance of a stack with `postgresql` (aws); without it such a change fails preview naming the key",
        to: ["program"],
    },
    {
        key: "subnetId",
        group: "host",
        kind: text({ pattern: /^subnet-[0-9a-f]+$/, rule: "be a subnet id such as subnet-0abc123" }),
        optional: true,
        help: "subnet of the instance (aws); empty picks a default subnet of the default VPC",
        to: ["program"],
    },
    {
        key: "allowedSshCidrs",
        group: "host",
        kind: list(cidr, 1000),
        default: [],
        help: 'IPv4 CIDRs allowed to reach SSH (aws; required there), e.g. ["203.0.113.7/32"]; a `/0` block on a protected stack needs `allowSshFromAnywhere`',
        to: ["program", "host setup"],
    },
    {
        key: "allowSshFromAnywhere",
        group: "host",
        kind: switchKind,
        default: false,
        help: "acknowledges a `/0` block (the whole internet) in `allowedSshCidrs` of a protected stack; without it such a stack fails preview",
        to: ["program"],
    },
    {
        key: "sshPublicKey",
        group: "host",
        kind: text({ pattern: OPENSSH_KEY, rule: "be one OpenSSH public key line" }),
        optional: true,
        help: "the deploy key's public half (aws; required there): the instance's key pair at launch, then the SSH user's `authorized_keys`, kept by a step of its own",
        to: ["program", "host setup"],
    },
    {
        key: "sshPrivateKey",
        group: "host",
        kind: text({
            checks: [{ test: (k) => /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(k), message: "must be a PEM/OpenSSH private key" }],
        }),
        optional: true,
        secret: true,
        help: "secret; the private key (PEM/OpenSSH) the deploy commands log in with",
        to: ["program"],
    },
    {
        key: "sshUser",
        group: "host",
        kind: text({ pattern: /^[a-z_][a-z0-9_-]{0,31}$/, rule: "be a Unix user name" }),
        optional: true,
        help: "SSH user, root or with passwordless sudo; required for `existing`; on aws the image's own (admin on Debian, root on NixOS)",
        to: ["program", "host setup"],
    },
    {
        key: "sshPort",
        group: "host",
        kind: port,
        default: 22,
        help: "SSH port of the host",
        to: ["program", "host setup"],
    },
    {
        key: "sshHostKey",
        group: "host",
        kind: text({ pattern: OPENSSH_KEY, rule: "be one OpenSSH public host key line (as in known_hosts, without the host name)" }),
        optional: true,
        help: "the existing host's SSH host key (\"ssh-ed25519 AAAA...\"), required for `existing`; every connection to another key is refused. On aws the stack generates the instance's host key and pins it",
        to: ["program"],
    },
    {
        key: "hostAddress",
        group: "host",
        kind: text({ pattern: /^[A-Za-z0-9.:-]+$/, rule: "be a host name or IP address" }),
        optional: true,
        help: "host name or IP address of the existing host (required when `hostTarget` is `existing`)",
        to: ["program"],
    },
    {
        key: "protect",
        group: "host",
        kind: switchKind,
        default: false,
        help: "protect the host resources from deletion (true for production)",
        to: ["program"],
    },

    // --- the dashboard -------------------------------------------------------------------------
    {
        key: "dashboardPort",
        group: "dashboard",
        kind: port,
        default: 8090,
        help: "loopback port of the deployment dashboard on the host (reach it with the `dashboardCommand` output's SSH tunnel)",
        to: ["program", "host setup", "agent.json"],
    },
] as const satisfies readonly SettingRow[];

export type SettingsTable = typeof SETTINGS;
export type SettingKey = SettingsTable[number]["key"];
type RowOf<K extends SettingKey> = Extract<SettingsTable[number], { key: K }>;
/** The kind of a key, as the table declares it. */
export type SettingKindOf<K extends SettingKey> = RowOf<K>["kind"];

/** A row's value once validated: its default when unset, or undefined for an optional row. */
type RowValue<R> = R extends { kind: infer K; default: unknown }
    ? KindValue<K>
    : R extends { kind: infer K; optional: true }
      ? KindValue<K> | undefined
      : R extends { kind: infer K }
        ? KindValue<K>
        : never;

/** Every setting, validated (the schema's output). */
export type Settings = { [K in SettingKey]: RowValue<RowOf<K>> };

/** The settings of one group, under their own keys. */
export type GroupSettings<G extends SettingGroup> = { [R in SettingsTable[number] as R["group"] extends G ? R["key"] : never]: RowValue<R> };

/** The row of a key. */
export function settingRow(key: SettingKey): SettingRow {
    const row = (SETTINGS as readonly SettingRow[]).find((r) => r.key === key);
    if (!row) throw new Error(`no setting ${key}`);
    return row;
}

/** The rows of a group, in table order. */
export function groupRows(group: SettingGroup): SettingRow[] {
    return (SETTINGS as readonly SettingRow[]).filter((r) => r.group === group);
}

/** The settings of one group out of all of them. */
export function pickGroup<G extends SettingGroup>(settings: Partial<Settings>, group: G): GroupSettings<G> {
    return Object.fromEntries(groupRows(group).map((r) => [r.key, (settings as Record<string, unknown>)[r.key]])) as GroupSettings<G>;
}

/** The default of a key (table order; the schema applies it). */
export function settingDefault<K extends SettingKey>(key: K): RowValue<RowOf<K>> {
    return settingRow(key).default as RowValue<RowOf<K>>;
}

/**
 * Settings with the table's default for every key left unset: the one place defaults are applied
 * (the config schema's output, and callers outside it: tests, scripts).
 */
export function withDefaults<S extends Partial<Settings>>(partial: S): Settings & S {
    const out: Record<string, unknown> = {};
    for (const row of SETTINGS as readonly SettingRow[]) {
        const given = (partial as Record<string, unknown>)[row.key];
        out[row.key] = given !== undefined ? given : row.default === undefined ? undefined : structuredClone(row.default);
    }
    return out as Settings & S;
}
