// The stack configuration: one schema, checked in full before the program declares anything,
// so a bad value fails `pulumi preview` with one message naming the key and the reason.
import { z } from "zod";
import { parseDuration, parseShiftPlan, ShiftStep } from "./shift-plan";

/** Versions become directory names, unit descriptions and CLI arguments: keep them inert. */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/;
export const APP_NAME_PATTERN = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const HTTP_PATH = /^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

const version = z
    .string()
    .regex(VERSION_PATTERN, "must be 1-63 characters of letters, digits, '.', '_', '+' or '-', starting with a letter or digit (no '/', spaces, quotes or shell metacharacters)")
    .refine((v) => !v.includes(".."), "must not contain '..'");

const port = z.number().int().min(1).max(65535);

const cidr = z.string().refine((value) => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
    return !!m && m.slice(1, 5).every((o) => Number(o) <= 255) && Number(m[5]) <= 32;
}, "must be an IPv4 CIDR such as 203.0.113.7/32");

const releaseSource = z.string().min(1).refine(
    (s) => /^https:\/\/[^\s'"`$\\]+$/.test(s) || (!/^[a-z]+:\/\//i.test(s) && /\.(tar\.gz|tgz)$/.test(s) && !/[\s'"`$\\;&|<>]/.test(s)),
    "must be an https:// URL or a local path to a .tar.gz/.tgz archive, without spaces, quotes or shell metacharacters",
);

/** KEY=value lines (dotenv style); blank lines and # comments ignored. */
export function parseEnvLines(text: string): Record<string, string> {
    const env: Record<string, string> = {};
    text.split("\n").forEach((line, i) => {
        const trimmed = line.trim();
        if (trimmed === "" || trimmed.startsWith("#")) return;
        const eq = trimmed.indexOf("=");
        const name = eq > 0 ? trimmed.slice(0, eq) : "";
        if (!ENV_NAME.test(name)) {
            // Never echo the line: it may hold a secret value.
            throw new Error(`line ${i + 1} is not KEY=value with KEY of letters, digits and '_'`);
        }
        env[name] = trimmed.slice(eq + 1);
    });
    return env;
}

const durationString = (max: number) => z.union([z.number(), z.string()]).transform((v, ctx) => {
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
        appName: z.string().regex(APP_NAME_PATTERN, "must be 2-32 lowercase letters, digits or '-', starting with a letter"),
        releaseVersion: version,
        releaseSource,
        startCommand: z.string().min(1).max(1024).refine((s) => !/[\n\r\0]/.test(s), "must be a single line")
            .refine((s) => s.includes("$PORT") || s.includes("${PORT}"), "must use $PORT (the slot's port) so each slot listens on its own port"),
        buildCommand: z.string().max(1024).refine((s) => !/[\n\r\0]/.test(s), "must be a single line").optional(),
        checkCommand: z.string().max(1024).refine((s) => !/[\n\r\0]/.test(s), "must be a single line").optional(),
        healthPath: z.string().regex(HTTP_PATH, "must be an absolute URL path such as /healthz").default("/healthz"),
        smokePaths: z.array(z.string().regex(HTTP_PATH, "must be absolute URL paths such as /")).max(50).default(["/"]),
        shiftPlan: z.array(z.string()).min(1).default(["10%:30s", "50%:30s", "100%"]).transform((steps, ctx): ShiftStep[] => {
            try {
                return parseShiftPlan(steps);
            } catch (e) {
                ctx.addIssue({ code: "custom", message: (e as Error).message });
                return z.NEVER;
            }
        }),
        maxErrorRatio: z.coerce.number().min(0, "must be between 0 and 1").max(1, "must be between 0 and 1").default(0.01),
        healthTimeout: durationString(3600).default(120),
        drainTimeout: durationString(3600).default(60),
        keepPreviousWarm: z.boolean().default(true),
        releasesToKeep: z.number().int().min(2, "must be at least 2 (the live and the previous release)").max(100).default(5),
        domain: z.string().toLowerCase().regex(DOMAIN, "must be a DNS name such as app.example.com"),
        tlsMode: z.enum(["self-signed", "acme"]).default("self-signed"),
        acmeEmail: z.email("must be an e-mail address").optional(),
        hostTarget: z.enum(["aws", "existing"]),
        instanceType: z.string().regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, "must be an EC2 instance type such as t3.small").default("t3.small"),
        rootVolumeGiB: z.number().int().min(8).max(16384).default(20),
        subnetId: z.string().regex(/^subnet-[0-9a-f]+$/, "must be a subnet id such as subnet-0abc123").optional(),
        osFlavour: z.enum(["debian", "nixos"]).default("debian"),
        allowedSshCidrs: z.array(cidr).default([]),
        sshPublicKey: z.string().regex(/^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp\d+) [A-Za-z0-9+/=]+( \S+)?$/, "must be one OpenSSH public key line").optional(),
        sshUser: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, "must be a Unix user name").optional(),
        hostAddress: z.string().regex(/^[A-Za-z0-9.:-]+$/, "must be a host name or IP address").optional(),
        sshPort: port.default(22),
        sshPrivateKey: z.string().refine((k) => /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(k), "must be a PEM/OpenSSH private key").optional(),
        appEnv: z.string().default("").transform((text, ctx) => {
            try {
                return parseEnvLines(text);
            } catch (e) {
                ctx.addIssue({ code: "custom", message: (e as Error).message });
                return z.NEVER;
            }
        }),
        slotBasePort: port.default(8001),
        haproxyPort: port.default(8080),
        httpPort: port.default(80),
        httpsPort: port.default(443),
        postgresql: z.boolean().default(false),
        protect: z.boolean().default(false),
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
        }
        need("sshPrivateKey", "(the deploy commands connect over SSH)");
        if (c.tlsMode === "acme") need("acmeEmail", "when tlsMode is acme");
        if (c.hostTarget === "aws" && c.osFlavour === "nixos" && c.sshUser && c.sshUser !== "root") {
            ctx.addIssue({ code: "custom", path: ["sshUser"], message: "must be root (or unset) on the NixOS images" });
        }
        const ports = { slotBasePort: c.slotBasePort, "slotBasePort+1": c.slotBasePort + 1, haproxyPort: c.haproxyPort, httpPort: c.httpPort, httpsPort: c.httpsPort };
        const seen = new Map<number, string>();
        for (const [name, p] of Object.entries(ports)) {
            const other = seen.get(p);
            if (other) ctx.addIssue({ code: "custom", path: [name.replace("+1", "")], message: `port ${p} is also used by ${other}` });
            seen.set(p, name);
        }
        if (c.slotBasePort + 1 > 65535) ctx.addIssue({ code: "custom", path: ["slotBasePort"], message: "needs room for two ports" });
    });

export type StackConfigInput = z.input<typeof stackConfigSchema>;
export type StackSettings = z.output<typeof stackConfigSchema>;

/** Keys whose values are secrets: kept out of logs and wrapped as Pulumi secrets. */
export const SECRET_KEYS = ["sshPrivateKey", "appEnv"] as const;

export class StackConfigError extends Error {
    constructor(readonly problems: { key: string; reason: string }[], namespace: string) {
        super(
            problems.length === 1
                ? `Invalid stack config: ${namespace}:${problems[0].key} ${problems[0].reason}`
                : `Invalid stack config:\n${problems.map((p) => `  - ${namespace}:${p.key} ${p.reason}`).join("\n")}`,
        );
        this.name = "StackConfigError";
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
        const key = issue.path.map(String).join(".") || "(config)";
        const reason = issue.code === "invalid_type" && issue.input === undefined ? "is required" : issue.message.replace(/^Invalid input: /, "must be ");
        return { key, reason: /^(is|must|port|needs|line)\b/.test(reason) ? reason : `must be valid: ${reason}` };
    });
    throw new StackConfigError(problems, namespace);
}
