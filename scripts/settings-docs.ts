// Rewrites what is derived from the settings table and the contract: Pulumi.yaml's config block,
// the README's configuration table (lib/settings/table.ts) and docs/architecture.md's command table
// (lib/contract/commands.ts): `npm run settings-docs`. Unit tests fail when one is out of date.
import * as fs from "fs";
import * as path from "path";
import { withGeneratedCommandTable, withGeneratedConfig, withGeneratedTable } from "../program/settings-docs";

const REPO = path.resolve(__dirname, "..");
for (const [file, generate] of [
    ["Pulumi.yaml", withGeneratedConfig],
    ["README.md", withGeneratedTable],
    ["docs/architecture.md", withGeneratedCommandTable],
] as const) {
    const full = path.join(REPO, file);
    const before = fs.readFileSync(full, "utf8");
    const after = generate(before);
    if (after !== before) fs.writeFileSync(full, after);
    console.log(`${file}: ${after === before ? "up to date" : "rewritten"}`);
}
