// `npm run check-migrations` on the example releases: its own throwaway PostgreSQL, the live
// release's migrations, then the gate and the rehearsal for the new one; the exit code and the
// report (JSON and the one-line-per-operation text) for refused, acknowledged and accepted releases.
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { djangoPostgresMissing } from "../../scripts/pg-cluster";
import type { CheckReport } from "../../scripts/check-migrations";

const REPO = path.resolve(__dirname, "..", "..");

describe("npm run check-migrations on the example releases", function () {
    this.timeout(300_000);
    let out: string;
    const check = (live: string, release: string, ...flags: string[]) => {
        const r = spawnSync(
            process.execPath,
            [
                "-r",
                "ts-node/register/transpile-only",
                "scripts/check-migrations.ts",
                "--live",
                path.join(out, `${live}.tar.gz`),
                "--release",
                path.join(out, `${release}.tar.gz`),
                ...flags,
            ],
            { cwd: REPO, encoding: "utf8" },
        );
        return { status: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    const checkJson = (live: string, release: string, ...flags: string[]) => {
        const r = check(live, release, "--json", ...flags);
        assert.ok(r.stdout.trim().startsWith("{"), `no JSON (exit ${r.status}):\n${r.stderr.split("\n").slice(-20).join("\n")}`);
        return { status: r.status, report: JSON.parse(r.stdout) as CheckReport };
    };

    before(function () {
        const why = djangoPostgresMissing();
        if (why) {
            console.log(`      skipped: ${why}`);
            return this.skip();
        }
        out = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-check-migrations-test-"));
        execFileSync(path.join(REPO, "scripts", "build-example-releases.sh"), [out], { stdio: "pipe" });
    });
    after(() => out && fs.rmSync(out, { recursive: true, force: true }));

    it("refuses a plain CREATE INDEX (exit 1): the operation, its target, verdict and recipe in JSON", () => {
        const { status, report } = checkJson("v2", "v2-lock-index");
        assert.strictEqual(status, 1);
        assert.deepStrictEqual(
            [report.result, report.gate, report.live.version, report.release.version],
            ["refused", "migration-safety", "v2", "v2-lock-index"],
        );
        assert.deepStrictEqual(
            report.operations.map((o) => [o.migration, o.operation, o.target, o.verdict]),
            [["notes.0003_note_text_index", "create_index", "notes_note", "refused"]],
        );
        assert.match(report.operations[0].recipe, /^CREATE INDEX CONCURRENTLY in a migration with atomic = False/);
        assert.match(report.message ?? "", /- notes\.0003_note_text_index:create_index:notes_note/);
        assert.strictEqual(report.rehearsal, null);
    });

    it("lets the same operation through with --allow-contract-operations (exit 0), marked acknowledged, after the rehearsal passed", () => {
        const { status, report } = checkJson("v2", "v2-lock-index", "--allow-contract-operations", "notes.0003_note_text_index:create_index:notes_note");
        assert.strictEqual(status, 0);
        assert.strictEqual(report.result, "accepted");
        assert.deepStrictEqual(
            report.operations.map((o) => o.verdict),
            ["acknowledged"],
        );
        assert.deepStrictEqual(
            report.rehearsal?.probes.map((p) => [p.path, p.status]),
            [
                ["/healthz", 200],
                ["/", 200],
            ],
        );
    });

    it("accepts the safe form (exit 0), one text line per operation", () => {
        const r = check("v2", "v2-lock-index-safe");
        assert.strictEqual(r.status, 0, r.stderr.split("\n").slice(-20).join("\n"));
        const lines = r.stdout.trim().split("\n");
        assert.strictEqual(lines[0], "check-migrations: v2-lock-index-safe over the live v2");
        assert.match(lines[1], /^MIGRATION\s+OPERATION\s+TARGET\s+VERDICT\s+RECIPE$/);
        assert.match(lines[2], /^notes\.0003_note_text_index\s+Concurrently create index notes_note_text_idx on field\(s\) text of model note\s+-\s+ok\s+-$/);
        assert.match(lines[3], /^rehearsal\s+GET \/healthz\s+v2\s+ok\s+HTTP 200$/);
        assert.strictEqual(lines[lines.length - 1], "result: accepted");
    });

    it("refuses what only the rehearsal sees (exit 1): the view rename, with the path, status and error", () => {
        const md = path.join(out, "comment.md");
        const { status, report } = checkJson("v2-stats", "v2-stats-rename", "--markdown", md);
        assert.strictEqual(status, 1);
        assert.deepStrictEqual([report.result, report.gate], ["refused", "rehearsal"]);
        assert.deepStrictEqual(
            report.operations.map((o) => [o.migration, o.verdict]),
            [["notes.0009_rename_notes_stats_total", "ok"]],
        );
        assert.deepStrictEqual(
            report.rehearsal?.probes.map((p) => [p.path, p.status]),
            [
                ["/healthz", 200],
                ["/", 500],
            ],
        );
        assert.match(report.message ?? "", /answered HTTP 500 on GET \/ .*\n {4}django\.db\.utils\.ProgrammingError: column "total" does not exist/);
        // The pull request comment: the same table and the refusal.
        const comment = fs.readFileSync(md, "utf8");
        assert.match(comment, /^### Migration check: \*\*refused\*\* by the rehearsal gate$/m);
        assert.match(comment, /^\| notes\.0009_rename_notes_stats_total \| Raw SQL operation \| - \| ok \| - \|$/m);
        assert.match(comment, /^\| rehearsal \| GET \/ \| v2-stats \| refused \| HTTP 500 \|$/m);
    });

    it("says what is wrong with its arguments (exit 2)", () => {
        const r = check("v2", "v2-lock-index", "--allow-contract-operations", "drop everything");
        assert.strictEqual(r.status, 2);
        assert.match(r.stderr, /check-migrations: error: --allow-contract-operations: "drop everything" is not MIGRATION:OPERATION:TARGET/);
    });
});
