// Pulumi.yaml's template: section, which `pulumi new <this repository>` prompts with: every key it
// asks for is one the program declares (in the program's namespace), described, with a default of
// the declared type; and every key a new stack must set (declared without a default) is asked for,
// except the secrets, which are multi-line and set with `pulumi config set --secret` afterwards.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { CONFIG_NAMESPACE } from "../../program/load-config";

interface DeclaredKey {
    type: string;
    default?: unknown;
    secret?: boolean;
    description?: string;
}

interface TemplateKey {
    description?: unknown;
    default?: unknown;
    secret?: unknown;
}

const project = parse(fs.readFileSync(path.resolve(__dirname, "..", "..", "Pulumi.yaml"), "utf8"));
const declared: Record<string, DeclaredKey> = project.config;
const template = project.template;

describe("Pulumi.yaml template section (pulumi new)", () => {
    it("describes the template", () => {
        assert.ok(template, "Pulumi.yaml has a template: section");
        assert.strictEqual(typeof template.description, "string");
        assert.ok(template.description.length > 20);
        assert.strictEqual(typeof template.displayName, "string");
    });

    const entries = Object.entries((template?.config ?? {}) as Record<string, TemplateKey>);

    it("asks for keys", () => {
        assert.ok(entries.length > 0);
    });

    for (const [fullKey, entry] of entries) {
        describe(fullKey, () => {
            const key = fullKey.slice(CONFIG_NAMESPACE.length + 1);

            it(`is a declared config key in the ${CONFIG_NAMESPACE}: namespace`, () => {
                assert.ok(fullKey.startsWith(`${CONFIG_NAMESPACE}:`), `${fullKey} must be ${CONFIG_NAMESPACE}:<key>`);
                assert.ok(Object.prototype.hasOwnProperty.call(declared, key), `${key} is not declared in Pulumi.yaml config:`);
            });

            it("has a description", () => {
                assert.strictEqual(typeof entry.description, "string");
                assert.ok(String(entry.description).trim().length >= 10, `${fullKey}: description too short`);
            });

            it("has a default of the declared type, as the string pulumi new sets", () => {
                if (entry.default === undefined)
                    return assert.ok(declared[key]?.default === undefined, `${key} has a program default; give the template one too`);
                assert.strictEqual(typeof entry.default, "string", `${fullKey}: template defaults are strings`);
                const value = String(entry.default);
                switch (declared[key]?.type) {
                    case "string":
                        break;
                    case "integer":
                        assert.match(value, /^-?\d+$/);
                        break;
                    case "boolean":
                        assert.match(value, /^(true|false)$/);
                        break;
                    default:
                        assert.fail(`${key} is of type ${declared[key]?.type}: pulumi new sets it as a plain string`);
                }
            });

            it("is secret exactly when the program declares it secret", () => {
                assert.strictEqual(entry.secret === true, declared[key]?.secret === true);
            });
        });
    }

    it("asks for every key a new stack must set (declared without a default), secrets aside", () => {
        const asked = new Set(entries.map(([k]) => k.slice(CONFIG_NAMESPACE.length + 1)));
        const required = Object.entries(declared)
            .filter(([, d]) => d.default === undefined && d.secret !== true)
            .map(([k]) => k);
        assert.ok(required.length > 0);
        assert.deepStrictEqual(
            required.filter((k) => !asked.has(k)),
            [],
        );
    });
});
