// scripts/release-archive.sh, which the deploy on a release tag and the prod preview both use: run
// for real on a throwaway git repository. The preview only shows "no change to the release" when
// two builds of the same tag give the same bytes, so that is checked along with what goes in.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { requireTools, run, tempDir, writeFile } from "./helpers";

const SCRIPT = path.resolve(__dirname, "..", "..", "scripts", "release-archive.sh");

function git(repo: string, ...args: string[]): string {
    const r = run("git", ["-c", "user.name=t", "-c", "user.email=t@example.com", ...args], { cwd: repo });
    assert.strictEqual(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
}

function build(repo: string, ref: string, appDir: string, version: string, out: string) {
    return run("bash", [SCRIPT, ref, appDir, version, out], { cwd: repo });
}

describe("release archive (scripts/release-archive.sh)", () => {
    let repo: string;

    before(() => {
        requireTools("bash", "git", "tar", "sha256sum");
        repo = tempDir("release-repo");
        git(repo, "init", "-q");
        writeFile(path.join(repo, "app", "manage.py"), "print('v1')\n", 0o755);
        writeFile(path.join(repo, "app", "shop", "settings.py"), "DEBUG = False\n");
        writeFile(path.join(repo, "README.md"), "outside the app\n");
        git(repo, "add", ".");
        git(repo, "commit", "-q", "-m", "v1");
        git(repo, "tag", "v1.0.0");
        // Work-tree changes after the tag: none of them may reach the archive of the tag.
        writeFile(path.join(repo, "app", "manage.py"), "print('local edit')\n", 0o755);
        writeFile(path.join(repo, "app", "untracked.txt"), "not in git\n");
    });

    it("packs the app directory at the ref, root-relative, with a VERSION file, and its sha256", () => {
        const out = tempDir("release-out");
        const r = build(repo, "v1.0.0", "app", "v1.0.0", out);
        assert.strictEqual(r.status, 0, r.stderr);
        const archive = path.join(out, "v1.0.0.tar.gz");
        assert.strictEqual(r.stdout.trim(), archive);
        const list = run("tar", ["-tzvf", archive]).stdout;
        const names = list
            .trim()
            .split("\n")
            .map((l) => l.split(/\s+/).pop())
            .sort();
        assert.deepStrictEqual(names, ["./", "./VERSION", "./manage.py", "./shop/", "./shop/settings.py"]);
        assert.match(list, /^-rwxr-xr-x 0\/0 .* \.\/manage\.py$/m);
        assert.strictEqual(run("tar", ["-xzOf", archive, "./manage.py"]).stdout, "print('v1')\n");
        assert.strictEqual(run("tar", ["-xzOf", archive, "./VERSION"]).stdout, "v1.0.0\n");
        const check = run("sha256sum", ["-c", "v1.0.0.tar.gz.sha256"], { cwd: out });
        assert.strictEqual(check.status, 0, check.stdout + check.stderr);
    });

    it("gives the same bytes for the same ref, whenever and wherever it is built", () => {
        const a = tempDir("release-a");
        const b = tempDir("release-b");
        assert.strictEqual(build(repo, "v1.0.0", "app", "v1.0.0", a).status, 0);
        fs.utimesSync(path.join(repo, "app", "manage.py"), new Date(), new Date());
        assert.strictEqual(build(repo, "v1.0.0", "app/", "v1.0.0", b).status, 0);
        assert.deepStrictEqual(fs.readFileSync(path.join(a, "v1.0.0.tar.gz")), fs.readFileSync(path.join(b, "v1.0.0.tar.gz")));
    });

    it("refuses a version the host could not use, and an app directory the ref does not have", () => {
        const out = tempDir("release-bad");
        const badVersion = build(repo, "v1.0.0", "app", "release/1", out);
        assert.strictEqual(badVersion.status, 1);
        assert.match(badVersion.stderr, /version 'release\/1' must be 1-63 of letters/);
        const badDir = build(repo, "v1.0.0", "web", "v1.0.0", out);
        assert.strictEqual(badDir.status, 1);
        assert.match(badDir.stderr, /web is not a directory at v1\.0\.0/);
        assert.deepStrictEqual(fs.readdirSync(out), []);
    });
});
