// Pulumi.yaml's config block and the README's configuration table are generated from the settings
// table: both must be what `npm run settings-docs` writes, so neither can drift from the table.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { pulumiYamlConfigBlock, readmeSettingsTable, withGeneratedConfig, withGeneratedTable } from "../../program/settings-docs";
import { SettingRow, SETTINGS } from "../../lib/settings/table";

const REPO = path.join(__dirname, "..", "..");
const read = (f: string) => fs.readFileSync(path.join(REPO, f), "utf8");

describe("settings docs", () => {
    it("Pulumi.yaml's config block is the one the table generates (run npm run settings-docs after changing the table)", () => {
        const text = read("Pulumi.yaml");
        assert.strictEqual(withGeneratedConfig(text), text);
        const keys = Object.keys((YAML.parse(text) as { config: Record<string, unknown> }).config);
        assert.deepStrictEqual(
            keys,
            (SETTINGS as readonly SettingRow[]).map((r) => r.key),
        );
    });

    it("the README's configuration table is the one the table generates, every key once with its default", () => {
        const text = read("README.md");
        assert.strictEqual(withGeneratedTable(text), text);
        const table = readmeSettingsTable();
        for (const row of SETTINGS as readonly SettingRow[]) assert.strictEqual(table.split(`| \`${row.key}\` |`).length, 2, row.key);
        assert.match(table, /\| `maxStepExtension` \| duration \(between 1s and 3600s\) \| `60s` \|/);
    });

    it("the generated block is valid YAML with Pulumi's four types only", () => {
        const doc = YAML.parse(pulumiYamlConfigBlock()) as { config: Record<string, { type: string }> };
        for (const [key, decl] of Object.entries(doc.config)) assert.ok(["string", "integer", "boolean", "array"].includes(decl.type), key);
    });
});
