// Reads the stack config through the Pulumi runtime and validates all of it at once, before the
// program declares any resource. Secret values are read as plain text only long enough to be
// validated, then handed on as Pulumi secrets.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_KEY_TYPES, ConfigKey, ConfigKeyType, parseStackConfig, SECRET_KEYS, SecretKey, StackConfigError, StackSettings } from "./config-schema";

export const CONFIG_NAMESPACE = "slotshift";

/** Everything but the secrets: safe to log, to put in command strings and to compare in tests. */
export type PublicSettings = Omit<StackSettings, SecretKey>;

interface StackSecrets {
    sshPrivateKey: pulumi.Output<string>;
    appEnv: pulumi.Output<Record<string, string>>;
}

export interface LoadedConfig {
    settings: PublicSettings;
    secrets: StackSecrets;
    /** Absolute path of the release archive when releaseSource is a local file. */
    localArtifact?: string;
    /** The archive's sha256: releaseSha256, or the local file's own (checked against releaseSha256 when both exist). */
    releaseSha256: string;
}

export interface LoadOptions {
    namespace?: string;
    /** Directory a relative releaseSource is resolved against (the project directory). */
    baseDir?: string;
}

const SECRET_SET: ReadonlySet<string> = new Set(SECRET_KEYS);

/**
 * Pulumi hands every config value to the program as text (lists as JSON). Decode it by the type
 * the key is declared with; text that does not decode is passed on as is, so the schema reports
 * the key with a type error instead of this function throwing something vaguer.
 */
export function decodeConfigValue(type: ConfigKeyType, text: string): unknown {
    switch (type) {
        case "string":
            return text;
        case "integer":
            return /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : text;
        case "boolean":
            return text === "true" ? true : text === "false" ? false : text;
        case "array":
            try {
                return JSON.parse(text);
            } catch {
                return text;
            }
    }
}

/**
 * The raw config of the namespace: declared keys decoded by type, unknown keys kept (so the strict
 * schema names them). An empty string means "unset": Pulumi.yaml declares optional keys with ""
 * as their default, because a declared key without a default is required by the CLI.
 */
function readRawConfig(namespace = CONFIG_NAMESPACE): Record<string, unknown> {
    const config = new pulumi.Config(namespace);
    const raw: Record<string, unknown> = {};
    for (const [key, type] of Object.entries(CONFIG_KEY_TYPES) as [ConfigKey, ConfigKeyType][]) {
        // Secret keys are read without Config.get so no plain-text accessor warning is logged and
        // the value is validated synchronously; it is re-wrapped as a secret below.
        const text = SECRET_SET.has(key) ? pulumi.runtime.getConfig(`${namespace}:${key}`) : config.get(key);
        if (text === undefined || text === "") continue;
        raw[key] = decodeConfigValue(type, text);
    }
    for (const fullKey of Object.keys(pulumi.runtime.allConfig())) {
        const [ns, key] = splitKey(fullKey);
        if (ns === namespace && !(key in CONFIG_KEY_TYPES)) raw[key] = "(unknown key)";
    }
    return raw;
}

function splitKey(fullKey: string): [string, string] {
    const i = fullKey.indexOf(":");
    return i < 0 ? ["", fullKey] : [fullKey.slice(0, i), fullKey.slice(i + 1)];
}

/** Throws a pulumi.RunError (a clean one-message failure of preview/up) for a bad config. */
export function loadStackConfig(opts: LoadOptions = {}): LoadedConfig {
    const namespace = opts.namespace ?? CONFIG_NAMESPACE;
    try {
        return validate(readRawConfig(namespace), namespace, opts.baseDir ?? process.cwd());
    } catch (e) {
        if (e instanceof StackConfigError) throw new pulumi.RunError(e.message);
        throw e;
    }
}

function validate(raw: Record<string, unknown>, namespace: string, baseDir: string): LoadedConfig {
    const parsed = parseStackConfig(raw, namespace);
    let localArtifact: string | undefined;
    // The schema requires it for an https source.
    let releaseSha256 = parsed.releaseSha256 ?? "";
    if (!parsed.releaseSource.startsWith("https://")) {
        localArtifact = path.resolve(baseDir, parsed.releaseSource);
        if (!isFile(localArtifact)) {
            throw new StackConfigError([{ key: "releaseSource", reason: `must name an existing archive file (${localArtifact} not found)` }], namespace);
        }
        const actual = crypto.createHash("sha256").update(fs.readFileSync(localArtifact)).digest("hex");
        if (parsed.releaseSha256 && parsed.releaseSha256 !== actual) {
            throw new StackConfigError(
                [{ key: "releaseSha256", reason: `does not match the archive ${localArtifact} (its sha256 is ${actual}); rebuild it or fix the value` }],
                namespace,
            );
        }
        releaseSha256 = actual;
    }
    const { sshPrivateKey, appEnv, ...settings } = parsed;
    return {
        settings,
        secrets: {
            // The schema requires the key; "" only satisfies the type checker.
            sshPrivateKey: pulumi.secret(sshPrivateKey ?? ""),
            appEnv: pulumi.secret(appEnv),
        },
        localArtifact,
        releaseSha256,
    };
}

function isFile(p: string): boolean {
    try {
        return fs.statSync(p).isFile();
    } catch {
        return false;
    }
}

/** KEY=value lines for `agent write-env`. */
export { formatEnvLines } from "../lib/env-lines";
