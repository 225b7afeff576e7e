// The stack configuration: one schema, derived from the settings table (lib/settings/table.ts)
// and checked in full before the program declares anything, so a bad value fails `pulumi preview`
// with one message naming the key and the reason. What the table cannot say — how keys relate
// (X is required when Y) — is written here.
import { z } from "zod";
import { numberProblem, pulumiConfigType, PulumiConfigType, SettingKind, strictNumber, textProblem } from "../lib/settings/kinds";
import { parseDuration, parseShiftPlan } from "../lib/shift-plan";
import { parseEnvLines } from "../lib/env-lines";
import { djangoManageCommand, parseMigrationCheck } from "../lib/migrations";
import { isReservedAccountName } from "../lib/system-accounts";
import { SettingKey, Settings, SETTINGS, SettingRow, SettingsTable, withDefaults } from "../lib/settings/table";

/** PostgreSQL's port on the host when the stack installs it. */
const POSTGRESQL_PORT = 5432;

/** A message for a value that failed its kind's check, added to the issue list. */
function addProblem(ctx: z.RefinementCtx, message: string | undefined): void {
    if (message) ctx.addIssue({ code: "custom", message });
}

/** Durations and ratios are text in Pulumi.yaml ("30s", "0.01") and numbers in tests and files. */
const numberOrText = z.union([z.number(), z.string()]);

/** The zod type of one kind: Pulumi's decoded value in, the setting's value out. */
function kindSchema(k: SettingKind): z.ZodType {
    switch (k.kind) {
        case "duration":
            return numberOrText.transform((v, ctx) => {
                try {
                    const s = typeof v === "number" ? v : parseDuration(v);
                    const problem = numberProblem(k, s);
                    if (problem) throw new Error(problem);
                    return s;
                } catch (e) {
                    ctx.addIssue({ code: "custom", message: (e as Error).message });
                    return z.NEVER;
                }
            });
        case "ratio":
            return numberOrText.transform((v, ctx) => {
                const n = typeof v === "number" ? v : strictNumber(v.trim());
                if (n === undefined || !Number.isFinite(n)) {
                    ctx.addIssue({ code: "custom", message: `must be a number, not ${JSON.stringify(v)}` });
                    return z.NEVER;
                }
                const problem = numberProblem(k, n);
                if (problem) {
                    ctx.addIssue({ code: "custom", message: problem });
                    return z.NEVER;
                }
                return n;
            });
        case "count":
        case "port":
            return z.number().superRefine((n, ctx) => addProblem(ctx, numberProblem(k, n)));
        case "switch":
            return z.boolean();
        case "path":
            return z.string().superRefine((v, ctx) => addProblem(ctx, textProblem(k, v)));
        case "text":
            return k.lowercase
                ? z
                      .string()
                      .transform((v) => v.toLowerCase())
                      .superRefine((v, ctx) => addProblem(ctx, textProblem(k, v)))
                : z.string().superRefine((v, ctx) => addProblem(ctx, textProblem(k, v)));
        case "choice":
            return z.enum(k.values as [string, ...string[]]);
        case "list":
            return z
                .array(z.string().superRefine((v, ctx) => addProblem(ctx, textProblem(k.item, v))))
                .min(k.min ?? 0)
                .max(k.max);
        case "plan":
            return z
                .array(z.string())
                .min(1)
                .transform((steps, ctx) => {
                    try {
                        return parseShiftPlan(steps);
                    } catch (e) {
                        ctx.addIssue({ code: "custom", message: (e as Error).message });
                        return z.NEVER;
                    }
                });
        case "env":
            return z.string().transform((textValue, ctx) => {
                try {
                    return Object.fromEntries(parseEnvLines(textValue));
                } catch (e) {
                    ctx.addIssue({ code: "custom", message: (e as Error).message });
                    return z.NEVER;
                }
            });
    }
}

/** A row's zod type: its kind, optional when the row has a default or is optional. */
function rowSchema(row: SettingRow): z.ZodType {
    const schema = kindSchema(row.kind);
    return row.default !== undefined || row.optional ? schema.optional() : schema;
}

/** What a kind takes before validation (what Pulumi's decoding or a test hands over). */
type KindInput<K> = K extends { kind: "duration" | "ratio" }
    ? number | string
    : K extends { kind: "count" | "port" }
      ? number
      : K extends { kind: "switch" }
        ? boolean
        : K extends { kind: "list" | "plan" }
          ? string[]
          : string;
type RowOf<Key extends SettingKey> = Extract<SettingsTable[number], { key: Key }>;
type OptionalInputKey = Extract<SettingsTable[number], { default: unknown } | { optional: true }>["key"];

/** The raw config the schema reads: keys with a default or optional may be left out. */
export type StackConfigInput = { [K in Exclude<SettingKey, OptionalInputKey>]: KindInput<RowOf<K>["kind"]> } & {
    [K in OptionalInputKey]?: KindInput<RowOf<K>["kind"]>;
};

/**
 * Each key checked on its own, as its row declares it; an unset key with a default stays unset
 * here (withDefaults fills it in, once, for the whole program).
 */
export const stackConfigSchema = z.object(Object.fromEntries((SETTINGS as readonly SettingRow[]).map((row) => [row.key, rowSchema(row)]))).strict();

/** A problem of a key's value in relation to other keys. */
interface RelationIssue {
    code: "custom";
    path: (string | number)[];
    message: string;
}

/** How keys relate, on settings whose every key passed its own check. */
function checkRelations(c: StackSettings, ctx: { addIssue(issue: RelationIssue): void }): void {
    const need = (key: keyof StackSettings, why: string) => {
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
}

/** Every setting, validated: what the program reads after parseStackConfig. */
export type StackSettings = Settings;
export type ConfigKey = SettingKey;

/** How each key is declared in Pulumi.yaml (Pulumi's project config types) and so how its raw text is decoded. */
export type ConfigKeyType = PulumiConfigType;
export const CONFIG_KEY_TYPES: { readonly [K in ConfigKey]: ConfigKeyType } = Object.fromEntries(
    (SETTINGS as readonly SettingRow[]).map((row) => [row.key, pulumiConfigType(row.kind)]),
) as { readonly [K in ConfigKey]: ConfigKeyType };

/** Keys whose values are secrets: kept out of logs and wrapped as Pulumi secrets. */
export type SecretKey = Extract<SettingsTable[number], { secret: true }>["key"];
export const SECRET_KEYS: readonly SecretKey[] = (SETTINGS as readonly SettingRow[]).filter((row) => row.secret).map((row) => row.key as SecretKey);

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
    const issues: Issue[] = result.success ? [] : [...result.error.issues];
    let settings: StackSettings | undefined;
    if (result.success) {
        settings = withDefaults(result.data as Partial<StackSettings>);
        checkRelations(settings, { addIssue: (issue) => issues.push(issue as unknown as Issue) });
    }
    if (settings && issues.length === 0) return settings;
    const problems = issues.map((issue) => {
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
