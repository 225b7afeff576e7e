// Rewrites Pulumi.yaml's config block and the README's configuration table from the settings table
// (lib/settings/table.ts): `npm run settings-docs`. A unit test (test/unit/settings-docs.test.ts)
// fails when either file is out of date.
import * as fs from "fs";
import * as path from "path";
import { withGeneratedConfig, withGeneratedTable } from "../program/settings-docs";

const REPO = path.resolve(__dirname, "..");
for (const [file, generate] of [
    ["Pulumi.yaml", withGeneratedConfig],
    ["README.md", withGeneratedTable],
] as const) {
    const full = path.join(REPO, file);
    const before = fs.readFileSync(full, "utf8");
    const after = generate(before);
    if (after !== before) fs.writeFileSync(full, after);
    console.log(`${file}: ${after === before ? "up to date" : "rewritten"}`);
}
