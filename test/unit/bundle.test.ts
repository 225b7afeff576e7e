// The agent is bundled into one Node 18 file at program time, identified by its hash.
import * as assert from "assert";
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { AGENT_ENTRY, bundleAgent, sha256File } from "../../program/agent-bundle";

describe("agent bundle", () => {
    let dir: string;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-bundle-"));
        // An entry that imports a shared lib module, as the real agent does.
        fs.writeFileSync(
            path.join(dir, "main.ts"),
            `import { formatShiftPlan } from ${JSON.stringify(path.resolve(__dirname, "../../lib/shift-plan"))};\n` +
                `const plan: { percent: number; pauseSeconds: number }[] = [{ percent: 100, pauseSeconds: 0 }];\n` +
                `console.log(formatShiftPlan(plan));\n`,
        );
    });

    it("bundles the entry and its imports into one runnable file, with its sha256", () => {
        const out = path.join(dir, "out", "agent.js");
        const bundle = bundleAgent({ entry: path.join(dir, "main.ts"), outfile: out });
        assert.strictEqual(bundle.path, out);
        assert.match(bundle.sha256, /^[0-9a-f]{64}$/);
        assert.strictEqual(bundle.sha256, sha256File(out));
        assert.doesNotMatch(fs.readFileSync(out, "utf8"), /require\(["'][./]/, "no relative requires left");
        assert.strictEqual(execFileSync(process.execPath, [out], { encoding: "utf8" }), "100:0\n");
    });

    it("loads a built-in module at the first use of one of its exports, not when it starts (namespace and named imports)", () => {
        const entry = path.join(dir, "builtins.ts");
        fs.writeFileSync(
            entry,
            [
                `import * as crypto from "crypto";`,
                `import { spawnSync } from "child_process";`,
                `const loaded = (m: string) => process.moduleLoadList.includes(\`NativeModule \${m}\`);`,
                `const before = [loaded("crypto"), loaded("child_process")];`,
                `const digest = crypto.createHash("sha256").update("x").digest("hex").slice(0, 8);`,
                `const status = spawnSync("true").status;`,
                `console.log(JSON.stringify({ before, after: [loaded("crypto"), loaded("child_process")], digest, status }));`,
            ].join("\n"),
        );
        const out = bundleAgent({ entry, outfile: path.join(dir, "builtins.js") }).path;
        assert.deepStrictEqual(JSON.parse(execFileSync(process.execPath, [out], { encoding: "utf8" })), {
            before: [false, false],
            after: [true, true],
            digest: "2d711642",
            status: 0,
        });
    });

    it("gives the same hash for the same source (no needless re-upload)", () => {
        const a = bundleAgent({ entry: path.join(dir, "main.ts"), outfile: path.join(dir, "a.js") });
        const b = bundleAgent({ entry: path.join(dir, "main.ts"), outfile: path.join(dir, "b.js") });
        assert.strictEqual(a.sha256, b.sha256);
    });

    it("fails clearly when the entry point is missing", () => {
        assert.throws(() => bundleAgent({ entry: path.join(dir, "nope.ts"), outfile: path.join(dir, "x.js") }), /agent entry point .*nope\.ts not found/);
    });

    it("refuses to bundle npm packages (the host has Node.js only)", () => {
        const entry = path.join(dir, "with-package.ts");
        fs.writeFileSync(entry, `import { parse } from ${JSON.stringify(require.resolve("yaml"))};\nconsole.log(parse("a: 1"));\n`);
        assert.throws(() => bundleAgent({ entry, outfile: path.join(dir, "p.js") }), /agent bundle pulls in npm packages: .*node_modules\/yaml/);
    });

    it("bundles the real agent entry point", function () {
        // The agent is written alongside; until its entry point lands there is nothing to bundle.
        if (!fs.existsSync(AGENT_ENTRY)) this.skip();
        const bundle = bundleAgent({ outfile: path.join(dir, "agent.js") });
        assert.ok(fs.statSync(bundle.path).size > 1000);
        // Loading it adds none of Node's built-in modules to those Node starts with: a warm rollback's
        // flip waits for none (Debian's Node 18 compiles each one from source at every start).
        const probe = `const before = new Set(process.moduleLoadList); require(${JSON.stringify(bundle.path)}); console.log(JSON.stringify(process.moduleLoadList.filter((m) => !before.has(m) && m.startsWith("NativeModule "))));`;
        assert.deepStrictEqual(JSON.parse(execFileSync(process.execPath, ["-e", probe], { encoding: "utf8" })), []);
    });
});
