// What the settings table says, written where people read it: Pulumi.yaml's config block (which
// Pulumi needs to make a key optional and to describe it) and the README's configuration table.
// `npm run settings-docs` rewrites both; a unit test fails when either is out of date.
import { stringify } from "yaml";
import { describeKind, formatKindDefault, pulumiConfigType } from "../lib/settings/kinds";
import { SettingGroup, SettingRow, SETTINGS } from "../lib/settings/table";
import { COMMANDS, CommandSpec, GLOBAL_FLAGS } from "../lib/contract/commands";
import { flagUsage } from "../lib/contract/flags";

const GROUP_TITLES: Record<SettingGroup, string> = {
    app: "the app",
    release: "the release",
    migrations: "the migrations",
    health: "the health checks",
    shift: "the shift and its gates",
    proxy: "the public endpoint",
    host: "the host",
    dashboard: "the dashboard",
};

/** Markers around docs/architecture.md's command table. */
const COMMAND_TABLE_BEGIN = "<!-- command table: generated from lib/contract/commands.ts by npm run settings-docs -->";
const COMMAND_TABLE_END = "<!-- end of command table -->";

/** Markers around the generated parts (the README's table; Pulumi.yaml's block ends at the next top-level key). */
const README_BEGIN = "<!-- settings table: generated from lib/settings/table.ts by npm run settings-docs -->";
const README_END = "<!-- end of settings table -->";

/** A default in Pulumi.yaml: the setting's own as a person writes it; "" for an optional key; none for a required or secret one. */
function pulumiYamlDefault(row: SettingRow): unknown {
    if (row.secret) return undefined;
    if (row.default === undefined) return row.optional ? "" : undefined;
    return formatKindDefault(row.kind, row.default);
}

function yamlScalar(value: unknown): string {
    return stringify(value, { flowCollectionPadding: false, collectionStyle: "flow", lineWidth: 0 }).trimEnd();
}

/** Words wrapped at `width`, for a folded YAML scalar. */
function wrap(text: string, width: number): string[] {
    const lines: string[] = [];
    let line = "";
    for (const word of text.split(/\s+/)) {
        if (line && line.length + 1 + word.length > width) {
            lines.push(line);
            line = word;
        } else {
            line = line ? `${line} ${word}` : word;
        }
    }
    if (line) lines.push(line);
    return lines;
}

/** Pulumi.yaml's `config:` block, every key of the table in its group. */
export function pulumiYamlConfigBlock(): string {
    const out = [
        "# Every key the program reads, generated from the settings table (lib/settings/table.ts) by",
        "# `npm run settings-docs`. Pulumi knows only string, integer, boolean and array types, so",
        '# durations and ratios are strings the program parses ("30s", "2m", "0.01"). Keys without a',
        '# default are required; an empty default means "unset". The program validates everything again',
        "# (program/config-schema.ts) and fails before declaring anything, naming the key and the reason.",
        "config:",
    ];
    let group: SettingGroup | undefined;
    for (const row of SETTINGS as readonly SettingRow[]) {
        if (row.group !== group) {
            group = row.group;
            const title = `  # --- ${GROUP_TITLES[group]} `;
            out.push(...(out[out.length - 1] === "config:" ? [] : [""]), title.padEnd(100, "-"));
        }
        const type = pulumiConfigType(row.kind);
        out.push(`  ${row.key}:`, `    type: ${type}`);
        if (type === "array") out.push("    items:", "      type: string");
        const def = pulumiYamlDefault(row);
        if (def !== undefined) out.push(`    default: ${yamlScalar(def)}`);
        if (row.secret) out.push("    secret: true");
        out.push("    description: >-", ...wrap(row.help, 92).map((l) => `      ${l}`));
    }
    return out.join("\n") + "\n";
}

/** Pulumi.yaml with its config block replaced by the generated one. */
export function withGeneratedConfig(pulumiYaml: string): string {
    const lines = pulumiYaml.split("\n");
    const start = lines.findIndex((l) => l === "config:");
    if (start < 0) throw new Error("Pulumi.yaml has no top-level config: block");
    // The comment block above `config:` belongs to it.
    let from = start;
    while (from > 0 && lines[from - 1].startsWith("#")) from--;
    let end = start + 1;
    while (end < lines.length && (lines[end] === "" || /^\s/.test(lines[end]))) end++;
    // A comment block right above the next top-level key belongs to that key.
    while (end > start + 1 && lines[end - 1].startsWith("#")) end--;
    while (end > start + 1 && lines[end - 1] === "") end--;
    const before = lines.slice(0, from).join("\n");
    const after = lines.slice(end).join("\n").replace(/^\n+/, "");
    return `${before}${before ? "\n" : ""}${pulumiYamlConfigBlock()}${after ? `\n${after}` : ""}`;
}

function markdownDefault(row: SettingRow): string {
    if (row.secret) return "— (secret)";
    if (row.default === undefined) return row.optional ? "empty" : "— (required)";
    const value = formatKindDefault(row.kind, row.default);
    return `\`${typeof value === "string" ? value : JSON.stringify(value)}\``;
}

/** The README's configuration table. */
export function readmeSettingsTable(): string {
    const out = [README_BEGIN, "", "| key | kind | default | meaning |", "| --- | --- | --- | --- |"];
    let group: SettingGroup | undefined;
    for (const row of SETTINGS as readonly SettingRow[]) {
        if (row.group !== group) {
            group = row.group;
            out.push(`| **${GROUP_TITLES[group]}** | | | |`);
        }
        out.push(`| \`${row.key}\` | ${describeKind(row.kind)} | ${markdownDefault(row)} | ${row.help.replace(/\|/g, "\\|")} |`);
    }
    out.push("", README_END);
    return out.join("\n");
}

/** The README with its table (between the markers) replaced by the generated one. */
export function withGeneratedTable(readme: string): string {
    const a = readme.indexOf(README_BEGIN);
    const b = readme.indexOf(README_END);
    if (a < 0 || b < a) throw new Error(`the README lacks the settings table's markers (${README_BEGIN} ... ${README_END})`);
    return readme.slice(0, a) + readmeSettingsTable() + readme.slice(b + README_END.length);
}

/** docs/architecture.md's table of the agent's commands, from the contract. */
function commandTable(): string {
    const cell = (text: string) => text.replace(/\|/g, "\\|");
    const out = [COMMAND_TABLE_BEGIN, "", "| command | options | does |", "| --- | --- | --- |"];
    for (const c of Object.values(COMMANDS) as CommandSpec[]) {
        const options = c.flags
            .map((f) => {
                const usage = flagUsage(f).replace(/: .*$/, "");
                return `\`${cell(f.required ? usage : `[${usage}]`)}\``;
            })
            .join(" ");
        out.push(`| \`${c.name}\` | ${options} | ${cell(c.summary)} |`);
    }
    out.push(`| (every command) | ${GLOBAL_FLAGS.map((f) => `\`${cell(flagUsage(f).replace(/: .*$/, ""))}\``).join(" ")} | |`);
    out.push("", COMMAND_TABLE_END);
    return out.join("\n");
}

/** docs/architecture.md with its command table (between the markers) replaced by the generated one. */
export function withGeneratedCommandTable(doc: string): string {
    const a = doc.indexOf(COMMAND_TABLE_BEGIN);
    const b = doc.indexOf(COMMAND_TABLE_END);
    if (a < 0 || b < a) throw new Error(`docs/architecture.md lacks the command table's markers (${COMMAND_TABLE_BEGIN} ... ${COMMAND_TABLE_END})`);
    return doc.slice(0, a) + commandTable() + doc.slice(b + COMMAND_TABLE_END.length);
}
