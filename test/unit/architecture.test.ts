// docs/architecture.md is held to the tree: every source file of the program, the agent, the shared
// code, the templates and the development helpers is listed (and nothing that is gone), and its
// command table is the one the contract generates.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { execFileSync } from "child_process";
import { withGeneratedCommandTable } from "../../program/settings-docs";

const REPO = path.join(__dirname, "..", "..");
const DOC = fs.readFileSync(path.join(REPO, "docs", "architecture.md"), "utf8");
const TOPS = ["components", "program", "lib", "agent", "templates", "dev"];

/** The "Files" tree: each top folder's entries, as paths inside it (a "<name>" part stands for any name). */
function listedFiles(): { tops: Set<string>; entries: string[] } {
    const a = DOC.indexOf("```\nindex.ts");
    const block = DOC.slice(a + 4, DOC.indexOf("```", a + 4));
    const tops = new Set<string>();
    const entries: string[] = [];
    let top: string | undefined;
    for (const line of block.split("\n")) {
        const head = /^(\S+)\//.exec(line);
        if (head) {
            top = head[1];
            tops.add(top);
            continue;
        }
        if (/^\S/.test(line)) {
            top = undefined;
            entries.push(line.split(/\s+/)[0]);
            continue;
        }
        if (!top) continue;
        // "  a.ts, b.ts   what they are" or "  a.ts   what it is"
        const names = /^ {2}([^\s,]+(?:,\s+[^\s,]+)*)/.exec(line)?.[1];
        for (const n of names?.split(/,\s+/) ?? []) entries.push(`${top}/${n}`);
    }
    return { tops, entries };
}

function sourceFiles(): string[] {
    const tracked = execFileSync("git", ["ls-files", ...TOPS, "index.ts"], { cwd: REPO, encoding: "utf8" })
        .trim()
        .split("\n");
    return tracked.filter((f) => !f.endsWith(".test.ts") && /\.(ts|js|cjs|html|css|njk)$/.test(f) && fs.existsSync(path.join(REPO, f)));
}

function matches(entry: string, file: string): boolean {
    if (entry === file) return true;
    if (!entry.includes("<")) return false;
    const pattern = new RegExp(`^${entry.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/<[a-z]+>/g, "[^/]+")}$`);
    return pattern.test(file);
}

describe("docs/architecture.md", () => {
    const { tops, entries } = listedFiles();

    it("lists every source file, each under its folder", () => {
        for (const t of TOPS) assert.ok(tops.has(t), `no ${t}/ section`);
        const missing = sourceFiles().filter((f) => !f.startsWith("dev/loopback/fixtures/") && !entries.some((e) => matches(e, f)));
        assert.deepStrictEqual(missing, [], "files the page does not list");
    });

    it("lists nothing that is gone", () => {
        const stale = entries.filter((e) => !e.includes("<") && !e.endsWith("/") && !fs.existsSync(path.join(REPO, e)));
        assert.deepStrictEqual(stale, [], "entries without a file");
    });

    it("has the contract's command table (npm run settings-docs writes it)", () => {
        assert.strictEqual(withGeneratedCommandTable(DOC), DOC);
    });
});
