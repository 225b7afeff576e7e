// The stack configuration: one schema, checked in full before the program declares anything,
// so a bad value fails `pulumi preview` with one message naming the key and the reason.
import { z } from "zod";
import { APP_NAME_PATTERN, APP_NAME_RULE, DEFAULTS, SHA256_PATTERN, VERSION_PATTERN, VERSION_RULE } from "../lib/agent-contract";
import { parseEnvLines } from "../lib/env-lines";
import { djangoManageCommand, parseContractOperation, parseMigrationCheck } from "../lib/migrations";
import { parseDuration, parseShiftPlan, ShiftStep } from "../lib/shift-plan";
import { isReservedAccountName } from "../lib/system-accounts";

export { APP_NAME_PATTERN, VERSION_PATTERN } from "../lib/agent-contract";
/**
 * A request path with an optional query, as HAProxy's `http-check send uri` reads it unquoted: no
 * quote (HAProxy's quoting), space or tab (a word break), '#' (a comment), '\\' (an escape), '$'
 * (variable expansion) or control character, and '%' only as a %XX escape.
 */
export const HTTP_PATH_PATTERN = /^\/(?:[A-Za-z0-9._~!&()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*$/;
const HTTP_PATH_RULE = "letters, digits, - . _ ~ / ? & = + , ; : @ ! * ( ) and %XX escapes (no quotes, spaces, '#', '$', '\\' or control characters)";
/** PostgreSQL's port on the host when the stack installs it. */
export const POSTGRESQL_PORT = 5432;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

const version = z
    .string()
    .regex(VERSION_PATTERN, VERSION_RULE)
    .refine((v) => !v.includes(".."), "must not contain '..'");

const port = z.number().int().min(1).max(65535);

const singleLine = z
    .string()
    .max(1024)
    .refine((s) => !/[\n\r\0]/.test(s), "must be a single line");

const cidr = z.string().refine((value) => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
    return !!m && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
}, "must be an IPv4 CIDR such as 203.0.113.7/32");

const releaseSource = z
    .string()
    .min(1)
    .refine(
        (s) => /^https:\/\/[^\s'"`$\\]+$/.test(s) || (!/^[a-z]+:\/\//i.test(s) && /\.(tar\.gz|tgz)$/.test(s) && !/[\s'"`$\\;&|<>]/.test(s)),
        "must be an https:// URL or a local path to a .tar.gz/.tgz archive, without spaces, quotes or shell metacharacters",
    );

const durationString = (max: number) =>
    z.union([z.number(), z.string()]).transform((v, ctx) => {
        try {
            const s = typeof v === "number" ? v : parseDuration(v);
            if (s < 1 || s > max) throw new Error(`must be between 1s and ${max}s`);
            return s;
        } catch (e) {
            ctx.addIssue({ code: "custom", message: (e as Error).message });
            return z.NEVER;
        }
    });

export const stackConfigSchema = z
    .object({
        appName: z.string().regex(APP_NAME_PATTERN, APP_NAME_RULE),
        releaseVersion: version,
        releaseSource,
        releaseSha256: z.string().regex(SHA256_PATTERN, "must be the archive's sha256: 64 lowercase hex digits, as sha256sum prints it").optional(),
        releaseDownloadMaxMiB: z.number().int().min(1).max(65536).default(DEFAULTS.releaseDownloadMaxMiB),
        releaseDownloadTimeout: durationString(24 * 3600).default(DEFAULTS.releaseDownloadTimeoutSeconds),
        startCommand: z
            .string()
            .min(1)
            .max(1024)
            .refine((s) => !/[\n\r\0]/.test(s), "must be a single line")
            .refine((s) => s.includes("$PORT") || s.includes("${PORT}"), "must use $PORT (the slot's port) so each slot listens on its own port")
            // The unit runs `exec <command>` so the app is the unit's main process and gets its signals.
            .refine(
                (s) => !/(;|&&|\|\||\||`|\$\()/.test(s),
                "must be one simple command (the slot runs `exec <command>`): no ';', '&&', '||', '|' or command substitution",
            ),
        buildCommand: z
            .string()
            .max(1024)
            .refine((s) => !/[\n\r\0]/.test(s), "must be a single line")
            .optional(),
        checkCommand: z
            .string()
            .max(1024)
            .refine((s) => !/[\n\r\0]/.test(s), "must be a single line")
            .optional(),
        migrateCommand: singleLine.optional(),
        migrationCheck: singleLine.default(DEFAULTS.migrationCheck),
        allowContractOperations: z
            .array(
                z.string().superRefine((s, ctx) => {
                    try {
                        parseContractOperation(s);
                    } catch (e) {
                        ctx.addIssue({ code: "custom", message: (e as Error).message });
                    }
                }),
            )
            .max(100)
            .default(DEFAULTS.allowContractOperations),
        // Sub-second values are fine here: it bounds how long the live release's queries may queue.
        dbLockTimeout: z
            .union([z.number(), z.string()])
            .transform((v, ctx) => {
                try {
                    const s = typeof v === "number" ? v : parseDuration(v);
                    if (s < 0.1 || s > 3600) throw new Error("must be between 100ms and 1h");
                    return s;
                } catch (e) {
                    ctx.addIssue({ code: "custom", message: (e as Error).message });
                    return z.NEVER;
                }
            })
            .default(DEFAULTS.dbLockTimeoutSeconds),
        // Bounds how long one statement of a migration holds its locks (a backfill, an index build).
        dbStatementTimeout: z
            .union([z.number(), z.string()])
            .transform((v, ctx) => {
                try {
                    const s = typeof v === "number" ? v : parseDuration(v);
                    if (s < 1 || s > 86400) throw new Error("must be between 1s and 24h");
                    return s;
                } catch (e) {
                    ctx.addIssue({ code: "custom", message: (e as Error).message });
                    return z.NEVER;
                }
            })
            .default(DEFAULTS.dbStatementTimeoutSeconds),
        dbLockRetries: z.number().int().min(0).max(10).default(DEFAULTS.dbLockRetries),
        migrationRehearsal: z.boolean().default(DEFAULTS.migrationRehearsal),
        healthPath: z.string().regex(HTTP_PATH_PATTERN, `must be an absolute URL path such as /healthz, of ${HTTP_PATH_RULE}`).default(DEFAULTS.healthPath),
        smokePaths: z
            .array(z.string().regex(HTTP_PATH_PATTERN, `must be an absolute URL path such as /, of ${HTTP_PATH_RULE}`))
            .max(50)
            .default(DEFAULTS.smokePaths),
        shiftPlan: z
            .array(z.string())
            .min(1)
            .default(DEFAULTS.shiftPlan)
            .transform((steps, ctx): ShiftStep[] => {
                try {
                    return parseShiftPlan(steps);
                } catch (e) {
                    ctx.addIssue({ code: "custom", message: (e as Error).message });
                    return z.NEVER;
                }
            }),
        maxErrorRatio: z.coerce.number().min(0, "must be between 0 and 1").max(1, "must be between 0 and 1").default(DEFAULTS.maxErrorRatio),
        minRequestsPerStep: z.coerce
            .number()
            .int("must be a whole number")
            .min(0, "must be 0 (steps pass without traffic) or more")
            .max(1_000_000)
            .default(DEFAULTS.minRequestsPerStep),
        maxStepExtension: durationString(3600).default(DEFAULTS.maxStepExtensionSeconds),
        maxLatencyRatio: z.coerce
            .number()
            .refine((n) => n === 0 || (n >= 1 && n <= 100), "must be 0 (off) or between 1 and 100")
            .default(DEFAULTS.maxLatencyRatio),
        healthTimeout: durationString(3600).default(DEFAULTS.healthTimeoutSeconds),
        drainTimeout: durationString(3600).default(DEFAULTS.drainTimeoutSeconds),
        keepPreviousWarm: z.boolean().default(DEFAULTS.keepPreviousWarm),
        releasesToKeep: z.number().int().min(2, "must be at least 2 (the live and the previous release)").max(100).default(DEFAULTS.releasesToKeep),
        domain: z.string().toLowerCase().regex(DOMAIN, "must be a DNS name such as app.example.com"),
        tlsMode: z.enum(["self-signed", "acme"]).default(DEFAULTS.tlsMode),
        acmeEmail: z.email("must be an e-mail address").optional(),
        hostTarget: z.enum(["aws", "existing"]),
        instanceType: z
            .string()
            .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, "must be an EC2 instance type such as t3.small")
            .default(DEFAULTS.instanceType),
        rootVolumeGiB: z.number().int().min(8).max(16384).default(DEFAULTS.rootVolumeGiB),
        dataVolumeGiB: z.number().int().min(1).max(16384).default(DEFAULTS.dataVolumeGiB),
        allowHostReplacement: z.boolean().default(DEFAULTS.allowHostReplacement),
        subnetId: z
            .string()
            .regex(/^subnet-[0-9a-f]+$/, "must be a subnet id such as subnet-0abc123")
            .optional(),
        osFlavour: z.enum(["debian", "nixos"]).default(DEFAULTS.osFlavour),
        nixosRelease: z
            .string()
            .regex(/^\d{2}\.\d{2}$/, "must be a NixOS release such as 26.05")
            .default(DEFAULTS.nixosRelease),
        allowedSshCidrs: z.array(cidr).default(DEFAULTS.allowedSshCidrs),
        allowSshFromAnywhere: z.boolean().default(DEFAULTS.allowSshFromAnywhere),
        sshPublicKey: z
            .string()
            .regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( \S+)?$/, "must be one OpenSSH public key line")
            .optional(),
        sshUser: z
            .string()
            .regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name")
            .optional(),
        sshHostKey: z
            .string()
            .regex(
                /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( \S+)?$/,
                "must be one OpenSSH public host key line (as in known_hosts, without the host name)",
            )
            .optional(),
        hostAddress: z
            .string()
            .regex(/^[A-Za-z0-9.:-]+$/, "must be a host name or IP address")
            .optional(),
        sshPort: port.default(DEFAULTS.sshPort),
        sshPrivateKey: z
            .string()
            .refine((k) => /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(k), "must be a PEM/OpenSSH private key")
            .optional(),
        appEnv: z
            .string()
            .default(DEFAULTS.appEnv)
            .transform((text, ctx) => {
                try {
                    return Object.fromEntries(parseEnvLines(text));
                } catch (e) {
                    ctx.addIssue({ code: "custom", message: (e as Error).message });
                    return z.NEVER;
                }
            }),
        slotBasePort: port.default(DEFAULTS.slotBasePort),
        haproxyPort: port.default(DEFAULTS.haproxyPort),
        dashboardPort: port.default(DEFAULTS.dashboardPort),
        httpPort: port.default(DEFAULTS.httpPort),
        httpsPort: port.default(DEFAULTS.httpsPort),
        postgresql: z.boolean().default(DEFAULTS.postgresql),
        appEgress: z.enum(["any", "loopback"]).default(DEFAULTS.appEgress),
        protect: z.boolean().default(DEFAULTS.protect),
    })
    .strict()
    .superRefine((c, ctx) => {
        const need = (key: keyof typeof c, why: string) => {
            if (c[key] === undefined || (Array.isArray(c[key]) && (c[key] as unknown[]).length === 0)) {
                ctx.addIssue({ code: "custom", path: [key], message: `is required ${why}` });
            }
        };
        if (c.hostTarget === "aws") {
            need("sshPublicKey", "when hostTarget is aws (the instance's key pair)");
            need("allowedSshCidrs", "when hostTarget is aws (port 22 is open only to these)");
        } else {
            need("hostAddress", "when hostTarget is existing");
            need("sshUser", "when hostTarget is existing (root, or a user with passwordless sudo)");
            // The first `pulumi up` already sends the app's secrets: a key learnt on first contact
            // would trust whatever answers then.
            need(
                "sshHostKey",
                "when hostTarget is existing: the host's own key, read on the host (cat /etc/ssh/ssh_host_ed25519_key.pub) or over a network you trust (ssh-keyscan -t ed25519 <host>); every connection is refused unless the host presents it",
            );
        }
        need("sshPrivateKey", "(the deploy commands connect over SSH)");
        if (c.tlsMode === "acme") need("acmeEmail", "when tlsMode is acme");
        if (c.releaseSource.startsWith("https://")) need("releaseSha256", "when releaseSource is an https URL (the host checks the download against it)");
        if (c.hostTarget === "aws" && c.osFlavour === "nixos" && c.sshUser && c.sshUser !== "root") {
            ctx.addIssue({ code: "custom", path: ["sshUser"], message: "must be root (or unset) on the NixOS images" });
        }
        if (isReservedAccountName(c.appName)) {
            ctx.addIssue({
                code: "custom",
                path: ["appName"],
                message: `must not be "${c.appName}": it names an existing system account or group, and the app runs as a user (and group) of its own name`,
            });
        } else if (c.appName === effectiveSshUser(c)) {
            ctx.addIssue({
                code: "custom",
                path: ["appName"],
                message: `must not be "${c.appName}", the SSH user the deploys log in as: the app runs as a user of its own name`,
            });
        }
        const ports = {
            slotBasePort: c.slotBasePort,
            "slotBasePort+1": c.slotBasePort + 1,
            haproxyPort: c.haproxyPort,
            dashboardPort: c.dashboardPort,
            httpPort: c.httpPort,
            httpsPort: c.httpsPort,
        };
        const seen = new Map<number, string>();
        for (const [name, p] of Object.entries(ports)) {
            const other = seen.get(p);
            if (other) ctx.addIssue({ code: "custom", path: [name.replace("+1", "")], message: `port ${p} is also used by ${other}` });
            seen.set(p, name);
        }
        // Ports the host's own daemons hold (sshd on every address, PostgreSQL on loopback): the
        // port that moves is the one this stack chose for a slot or a proxy.
        const held: [number, string][] = [[c.sshPort, "is also used by sshPort"]];
        if (c.postgresql) held.push([POSTGRESQL_PORT, "is PostgreSQL's (postgresql is true)"]);
        for (const [p, why] of held) {
            const user = seen.get(p);
            if (!user) continue;
            const key = user.replace("+1", "");
            ctx.addIssue({ code: "custom", path: [key], message: `port ${p}${key === user ? "" : ` (${user})`} ${why}` });
        }
        if (c.slotBasePort + 1 > 65535) ctx.addIssue({ code: "custom", path: ["slotBasePort"], message: "needs room for two ports" });
        if (c.tlsMode === "acme" && c.httpPort !== 80) {
            ctx.addIssue({
                code: "custom",
                path: ["httpPort"],
                message: "must be 80 when tlsMode is acme (Let's Encrypt's HTTP-01 challenge always connects to port 80)",
            });
        }
        if (c.protect && !c.allowSshFromAnywhere) {
            c.allowedSshCidrs.forEach((block, i) => {
                // Any prefix length 0 is every address; other spellings (::/0) are refused as not IPv4 above.
                if (/^[\d.]+\/0$/.test(block)) {
                    ctx.addIssue({
                        code: "custom",
                        path: ["allowedSshCidrs", i],
                        message: `"${block}" opens SSH to the whole internet on a protected stack: set slotshift:allowSshFromAnywhere true to mean it, or list the deploy networks`,
                    });
                }
            });
        }
        const check = parseMigrationCheck(c.migrationCheck);
        if (c.migrateCommand) {
            if (check.kind === "django" && !djangoManageCommand(c.migrateCommand)) {
                ctx.addIssue({
                    code: "custom",
                    path: ["migrationCheck"],
                    message: `must be "none" or a check command of your own when migrateCommand does not run Django's "manage.py migrate"`,
                });
            }
        } else {
            if (check.kind === "command")
                ctx.addIssue({
                    code: "custom",
                    path: ["migrationCheck"],
                    message: "is a check command, which runs only before migrateCommand: set migrateCommand too",
                });
            if (c.allowContractOperations.length > 0)
                ctx.addIssue({
                    code: "custom",
                    path: ["allowContractOperations"],
                    message: "needs migrateCommand (it acknowledges operations of the migration-safety gate)",
                });
        }
        const seenOps = new Set<string>();
        c.allowContractOperations.forEach((op, i) => {
            if (seenOps.has(op)) ctx.addIssue({ code: "custom", path: ["allowContractOperations", i], message: `"${op}" is listed twice` });
            seenOps.add(op);
        });
    });

export type StackConfigInput = z.input<typeof stackConfigSchema>;
export type StackSettings = z.output<typeof stackConfigSchema>;
export type ConfigKey = keyof StackConfigInput;

/**
 * How each key is declared in Pulumi.yaml (Pulumi's project config types) and so how its raw text
 * is decoded before validation. A unit test keeps this and Pulumi.yaml in step.
 */
export type ConfigKeyType = "string" | "integer" | "boolean" | "array";
export const CONFIG_KEY_TYPES: { readonly [K in ConfigKey]-?: ConfigKeyType } = {
    appName: "string",
    releaseVersion: "string",
    releaseSource: "string",
    releaseSha256: "string",
    releaseDownloadMaxMiB: "integer",
    releaseDownloadTimeout: "string",
    startCommand: "string",
    buildCommand: "string",
    checkCommand: "string",
    migrateCommand: "string",
    migrationCheck: "string",
    allowContractOperations: "array",
    dbLockTimeout: "string",
    dbStatementTimeout: "string",
    dbLockRetries: "integer",
    migrationRehearsal: "boolean",
    healthPath: "string",
    smokePaths: "array",
    shiftPlan: "array",
    maxErrorRatio: "string",
    minRequestsPerStep: "integer",
    maxStepExtension: "string",
    maxLatencyRatio: "string",
    healthTimeout: "string",
    drainTimeout: "string",
    keepPreviousWarm: "boolean",
    releasesToKeep: "integer",
    domain: "string",
    tlsMode: "string",
    acmeEmail: "string",
    hostTarget: "string",
    instanceType: "string",
    rootVolumeGiB: "integer",
    dataVolumeGiB: "integer",
    allowHostReplacement: "boolean",
    subnetId: "string",
    osFlavour: "string",
    nixosRelease: "string",
    allowedSshCidrs: "array",
    allowSshFromAnywhere: "boolean",
    sshPublicKey: "string",
    sshUser: "string",
    sshHostKey: "string",
    hostAddress: "string",
    sshPort: "integer",
    sshPrivateKey: "string",
    appEnv: "string",
    slotBasePort: "integer",
    haproxyPort: "integer",
    dashboardPort: "integer",
    httpPort: "integer",
    httpsPort: "integer",
    postgresql: "boolean",
    appEgress: "string",
    protect: "boolean",
};

/** Keys whose values are secrets: kept out of logs and wrapped as Pulumi secrets. */
export const SECRET_KEYS = ["sshPrivateKey", "appEnv"] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

/** The user deploy commands log in as: the image's default user on AWS, the configured one elsewhere. */
export function effectiveSshUser(s: Pick<StackSettings, "sshUser" | "hostTarget" | "osFlavour">): string {
    if (s.sshUser) return s.sshUser;
    if (s.hostTarget === "aws") return s.osFlavour === "nixos" ? "root" : "admin";
    // The schema requires sshUser for existing hosts; this is only a fallback for partial settings.
    return "root";
}

export class StackConfigError extends Error {
    constructor(
        readonly problems: { key: string; reason: string }[],
        namespace: string,
    ) {
        super(
            problems.length === 1
                ? `Invalid stack config: ${namespace}:${problems[0].key} ${problems[0].reason}`
                : `Invalid stack config:\n${problems.map((p) => `  - ${namespace}:${p.key} ${p.reason}`).join("\n")}`,
        );
        this.name = "StackConfigError";
    }
}

const TYPE_WORDS: Record<string, string> = {
    string: "a string",
    number: "a number",
    int: "an integer",
    boolean: "true or false",
    array: "a list (a YAML sequence)",
    object: "an object",
};

type Issue = z.core.$ZodIssue;

/** One reason per issue, phrased to follow the key: "slotshift:<key> <reason>". */
function describeIssue(issue: Issue, present: boolean): string {
    const m = issue.message;
    // zod's own messages start like this; anything else is a message written in this file.
    const generic = /^(Invalid input|Invalid option|Too small|Too big)\b/.test(m);
    switch (issue.code) {
        case "invalid_type":
            if (!present) return "is required";
            return generic ? `must be ${TYPE_WORDS[issue.expected] ?? issue.expected}` : m;
        case "invalid_value":
            return generic ? `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}` : m;
        case "too_small":
            if (!generic) return m;
            if (issue.origin === "array") return `must have at least ${issue.minimum} item(s)`;
            if (issue.origin === "string") return Number(issue.minimum) <= 1 ? "must not be empty" : `must be at least ${issue.minimum} characters`;
            return `must be at least ${issue.minimum}`;
        case "too_big":
            if (!generic) return m;
            if (issue.origin === "array") return `must have at most ${issue.maximum} item(s)`;
            if (issue.origin === "string") return `must be at most ${issue.maximum} characters`;
            return `must be at most ${issue.maximum}`;
        default:
            // Messages from refinements read on from the key ("must ...", "step 2 ...", "\"x\" is not ...").
            return /^(is|must|port|needs|line|step|steps)\b|^"/.test(m) ? m : `must be valid: ${m}`;
    }
}

/**
 * Validates raw config values (already decoded from YAML/JSON). Throws a StackConfigError naming
 * every bad key; secret values never appear in the message.
 */
export function parseStackConfig(raw: Record<string, unknown>, namespace = "slotshift"): StackSettings {
    const result = stackConfigSchema.safeParse(raw);
    if (result.success) return result.data;
    const problems = result.error.issues.map((issue) => {
        if (issue.code === "unrecognized_keys") {
            return { key: issue.keys.join(", "), reason: "is not a known key (see Pulumi.yaml for the declared keys)" };
        }
        // Array items report the list key plus the item number ("smokePaths.1" -> "smokePaths item 2").
        const [key, ...rest] = issue.path.map(String);
        const item = rest.length > 0 && /^\d+$/.test(rest[0]) ? ` item ${Number(rest[0]) + 1}` : "";
        const present = key !== undefined && raw[key] !== undefined;
        return { key: key ?? "(config)", reason: `${item ? item.slice(1) + " " : ""}${describeIssue(issue, present)}` };
    });
    throw new StackConfigError(problems, namespace);
}
