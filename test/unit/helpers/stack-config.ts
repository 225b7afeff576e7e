// Reads Pulumi.yaml and Pulumi.<stack>.yaml the way the Pulumi CLI does before it starts the
// program: project defaults fill missing keys, keys without a default are required, declared
// types are checked, secret keys must come encrypted (here: from the test's secrets), and every
// value reaches the program as text (lists as JSON).
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";

const REPO_ROOT = path.resolve(__dirname, "..", "..", "..");
export const NAMESPACE = "slotshift";

export interface ConfigDeclaration {
    type: "string" | "integer" | "boolean" | "array";
    items?: { type: string };
    description?: string;
    default?: unknown;
    secret?: boolean;
}

export function projectFile(): { name: string; runtime: unknown; config: Record<string, ConfigDeclaration> } {
    return parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8"));
}

export function stackFile(stack: string): Record<string, unknown> {
    const doc = parse(fs.readFileSync(path.join(REPO_ROOT, `Pulumi.${stack}.yaml`), "utf8"));
    return (doc?.config ?? {}) as Record<string, unknown>;
}

/** A private key that is obviously fake and easy to find if it ever leaks into a plain value. */
export const TEST_PRIVATE_KEY = [
    "-----BEGIN OPENSSH PRIVATE KEY-----",
    "TESTKEYMATERIAL0123456789leakcanaryPRIVATEKEYabcdefghijklmnop",
    "-----END OPENSSH PRIVATE KEY-----",
    "",
].join("\n");
export const TEST_ENV_SECRET = "sup3r-s3cret-DJANGO-key-leakcanary";
export const TEST_APP_ENV = `DJANGO_SECRET_KEY=${TEST_ENV_SECRET}\nDATABASE_URL=postgres:///shop\n`;
const TEST_SECRETS: Record<string, string> = { sshPrivateKey: TEST_PRIVATE_KEY, appEnv: TEST_APP_ENV };

function validType(decl: ConfigDeclaration, value: unknown): boolean {
    switch (decl.type) {
        case "string":
            return typeof value === "string" || typeof value === "number";
        case "integer":
            return Number.isInteger(value) || (typeof value === "string" && /^-?\d+$/.test(value));
        case "boolean":
            return typeof value === "boolean" || value === "true" || value === "false";
        case "array":
            return Array.isArray(value) && value.every((v) => validType({ type: (decl.items?.type ?? "string") as ConfigDeclaration["type"] }, v));
    }
}

function asText(value: unknown): string {
    return typeof value === "object" && value !== null ? JSON.stringify(value) : String(value);
}

export interface ProgramConfig {
    /** "slotshift:key" -> text, as PULUMI_CONFIG carries it. */
    config: Record<string, string>;
    secretKeys: string[];
}

/**
 * The config the CLI would hand the program for `stack`, with `overrides` (plain YAML values, by
 * key without namespace; undefined removes a key) applied to the stack file first.
 */
export function cliConfig(stack: string, overrides: Record<string, unknown> = {}, secrets: Record<string, string> = TEST_SECRETS): ProgramConfig {
    const project = projectFile();
    const values: Record<string, unknown> = { ...stackFile(stack) };
    for (const [k, v] of Object.entries(overrides)) {
        if (v === undefined) delete values[`${NAMESPACE}:${k}`];
        else values[`${NAMESPACE}:${k}`] = v;
    }
    const config: Record<string, string> = {};
    const secretKeys: string[] = [];
    const missing: string[] = [];
    for (const [key, decl] of Object.entries(project.config)) {
        const full = `${NAMESPACE}:${key}`;
        let value = values[full];
        if (decl.secret) {
            if (value !== undefined) throw new Error(`${full} is a secret but the stack file has it in plain text`);
            value = secrets[key];
            if (value !== undefined) secretKeys.push(full);
        }
        if (value === undefined) value = decl.default;
        if (value === undefined) {
            missing.push(key);
            continue;
        }
        if (!validType(decl, value)) throw new Error(`Stack '${stack}' with configuration key '${key}' must be of type '${decl.type}'`);
        config[full] = asText(value);
    }
    if (missing.length > 0) throw new Error(`Stack '${stack}' is missing configuration values ${missing.join(", ")}`);
    // Keys of other namespaces (aws:region) and undeclared keys of ours pass through, as with the CLI.
    for (const [full, value] of Object.entries(values)) {
        if (!(full in config)) config[full] = asText(value);
    }
    return { config, secretKeys };
}
