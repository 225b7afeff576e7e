// The host side of the trust boundary, against the built agent run as root: release content (an
// archive, what its build leaves) and the app user never reach root. Each archive here is one an
// attacker would ship; each app-user step is what compromised app code would try. Without systemd
// (processControl "command"); the systemd-run path is proven in test/e2e/02-deploy.
import * as assert from "assert";
import { execFileSync, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { buildAgentSettings } from "../../program/agent-settings";
import { HostLayout, hostLayout } from "../../lib/host-layout";
import { TarMember, tarGz } from "../unit/helpers/tar-archive";

const REPO = path.resolve(__dirname, "..", "..");
const APP = "nobody";
const APP_UID = 65534;

interface Run {
    code: number | null;
    stdout: string;
    stderr: string;
}

function out(r: Run): string {
    return `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;
}

/** Runs a shell command as the app user (what compromised app code could do). */
function asApp(command: string): { code: number | null; stderr: string } {
    const r = spawnSync("/bin/sh", ["-c", command], { uid: APP_UID, gid: APP_UID, encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });
    return { code: r.status, stderr: r.stderr };
}

/** Every file below dir (not following links), as [path, lstat]. */
function tree(dir: string): [string, fs.Stats][] {
    const outList: [string, fs.Stats][] = [];
    const walk = (d: string) => {
        for (const name of fs.readdirSync(d)) {
            const p = path.join(d, name);
            const st = fs.lstatSync(p);
            outList.push([p, st]);
            if (st.isDirectory()) walk(p);
        }
    };
    walk(dir);
    return outList;
}

describe("host trust boundary: release content and the app user never reach root", function () {
    this.timeout(120_000);
    let root: string;
    let layout: HostLayout;
    let configPath: string;
    let agentPath: string;
    /** A root-only directory with a key, outside the app's tree. */
    let secretDir: string;
    /** A root-owned file an attacker wants overwritten. */
    let victim: string;

    const writeSettings = (extra: { buildCommand?: string; migrateCommand?: string } = {}) => {
        const settings = buildAgentSettings(
            {
                appName: APP,
                domain: "app.test",
                healthPath: "/healthz",
                smokePaths: ["/"],
                slotBasePort: 1,
                haproxyPort: 3,
                buildCommand: extra.buildCommand,
                migrateCommand: extra.migrateCommand,
                migrationCheck: "none",
                keepPreviousWarm: true,
                releasesToKeep: 5,
            },
            {
                root,
                processControl: { kind: "command", start: "true", stop: "true" },
                reloadCommand: "true",
            },
        );
        fs.writeFileSync(configPath, JSON.stringify(settings, null, 2));
    };

    const agent = (args: string[], input?: string): Promise<Run> =>
        new Promise((resolve) => {
            const child = spawn(process.execPath, [agentPath, ...args, "--config", configPath], {
                stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
            });
            let stdout = "";
            let stderr = "";
            child.stdout?.on("data", (c: Buffer) => (stdout += c.toString()));
            child.stderr?.on("data", (c: Buffer) => (stderr += c.toString()));
            if (input !== undefined) child.stdin?.end(input);
            child.on("close", (code) => resolve({ code, stdout, stderr }));
        });

    const archive = (name: string, members: TarMember[]): string => {
        const file = path.join(root, "artifacts", `${name}.tar.gz`);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        fs.writeFileSync(file, tarGz(members));
        return file;
    };

    const app: TarMember[] = [
        { name: "./", type: "dir" },
        { name: "./app.cjs", data: "console.log('hi')\n" },
        { name: "./static/", type: "dir" },
        { name: "./static/app.css", data: "body{}\n" },
    ];

    const prepare = (version: string, file: string) => agent(["prepare", "--version", version, "--source", file]);

    const assertNothingUnpacked = (version: string) => {
        assert.ok(!fs.existsSync(path.join(layout.releasesDir, version)), `releases/${version} exists`);
        assert.deepStrictEqual(
            fs.readdirSync(layout.releasesDir).filter((n) => n.startsWith(".")),
            [],
            "a temp dir was left",
        );
        assert.ok(!fs.existsSync(path.join(layout.buildsDir, version)), `builds/${version} exists`);
    };

    const assertNoSecretServed = () => {
        const served = fs.existsSync(layout.staticDir) ? tree(layout.staticDir).map(([p]) => path.relative(layout.staticDir, p)) : [];
        assert.ok(!served.some((p) => p.includes("key.pem")), `a root-only file reached shared/static: ${served.join(", ")}`);
    };

    before(function () {
        if (process.getuid?.() !== 0) this.skip();
        root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-trust-"));
        fs.chmodSync(root, 0o755);
        layout = hostLayout(APP, { root });
        fs.mkdirSync(layout.deployDir, { recursive: true });
        configPath = layout.agentConfigPath;
        agentPath = layout.agentPath;
        fs.copyFileSync(path.join(REPO, "dist", "agent.js"), agentPath);
        secretDir = path.join(root, "root-only");
        fs.mkdirSync(secretDir, { mode: 0o700 });
        fs.writeFileSync(path.join(secretDir, "key.pem"), "PRIVATE KEY\n", { mode: 0o600 });
        victim = path.join(root, "victim.conf");
        fs.writeFileSync(victim, "untouched\n", { mode: 0o644 });
        writeSettings();
    });

    after(() => {
        if (root) fs.rmSync(root, { recursive: true, force: true });
    });

    describe("1. every archive member is checked before anything is unpacked", () => {
        const cases: { what: string; members: TarMember[]; reason: RegExp }[] = [
            {
                what: "a character device (1:3, /dev/null's)",
                members: [{ name: "./dev-null", type: "chardev", devmajor: 1, devminor: 3 }],
                reason: /"dev-null" is a character device/,
            },
            { what: "a block device", members: [{ name: "./disk", type: "blockdev", devmajor: 8, devminor: 0 }], reason: /"disk" is a block device/ },
            { what: "a FIFO", members: [{ name: "./pipe", type: "fifo" }], reason: /"pipe" is a FIFO/ },
            { what: "a hard link", members: [{ name: "./passwd", type: "hardlink", link: "/etc/passwd" }], reason: /"passwd" is a hard link/ },
            { what: "a setuid file", members: [{ name: "./su", data: "#!/bin/sh\n", mode: 0o4755 }], reason: /"su" has the setuid, setgid or sticky bit/ },
            {
                what: "a setgid directory",
                members: [{ name: "./shared/", type: "dir", mode: 0o2775 }],
                reason: /"shared" has the setuid, setgid or sticky bit/,
            },
            {
                what: "an absolute path",
                members: [{ name: "/etc/cron.d/evil", data: "* * * * * root sh\n" }],
                reason: /"\/etc\/cron.d\/evil" has an absolute path/,
            },
            { what: "a .. path", members: [{ name: "../../evil", data: "x" }], reason: /"..\/..\/evil" has a ".." component/ },
            {
                what: "an absolute symlink",
                members: [{ name: "./etc", type: "symlink", link: "/etc" }],
                reason: /"etc" is a symlink to the absolute path \/etc/,
            },
            {
                what: "a .. symlink out of the release",
                members: [{ name: "./up", type: "symlink", link: "../../.." }],
                reason: /"up" is a symlink to ..\/..\/.., which resolves outside/,
            },
            {
                what: "a symlink that escapes only through another symlink",
                members: [
                    { name: "./a/", type: "dir" },
                    { name: "./a/b", type: "symlink", link: ".." },
                    { name: "./x", type: "symlink", link: "a/b/.." },
                ],
                reason: /"x" is a symlink to a\/b\/.., which resolves outside/,
            },
            {
                what: "a file written through a symlink",
                members: [
                    { name: "./lib", type: "symlink", link: "static" },
                    { name: "./lib/evil.js", data: "x" },
                ],
                reason: /"lib\/evil.js" lies below the symlink lib/,
            },
            {
                what: "a symlink through the shared media link",
                members: [{ name: "./m", type: "symlink", link: "media/.." }],
                reason: /"m" is a symlink to media\/.., which resolves outside/,
            },
        ];
        for (const c of cases) {
            it(`refuses ${c.what}, naming the member and why; nothing is unpacked`, async () => {
                const version = `bad-${cases.indexOf(c)}`;
                const r = await prepare(version, archive(version, [...app, ...c.members]));
                assert.strictEqual(r.code, 1, out(r));
                assert.match(r.stderr, /refusing to unpack/);
                assert.match(r.stderr, c.reason);
                assertNothingUnpacked(version);
                const special = tree(root).filter(([, st]) => st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO());
                assert.deepStrictEqual(
                    special.map(([p]) => p),
                    [],
                    "a device or FIFO was created",
                );
            });
        }

        it("a well-formed release with relative links inside it is unpacked", async () => {
            const r = await prepare(
                "good",
                archive("good", [
                    ...app,
                    { name: "./lib/", type: "dir" },
                    { name: "./lib/real.js", data: "x" },
                    { name: "./lib/alias.js", type: "symlink", link: "real.js" },
                    { name: "./static/up.js", type: "symlink", link: "../lib/real.js" },
                ]),
            );
            assert.strictEqual(r.code, 0, out(r));
            assert.strictEqual(fs.readFileSync(path.join(layout.releasesDir, "good", "lib", "alias.js"), "utf8"), "x");
        });
    });

    describe("2. root never follows a path release content or the app controls", () => {
        it("static -> /a/root-only/dir in the archive: refused; the key never reaches shared/static", async () => {
            const r = await prepare("static-abs", archive("static-abs", [app[0], app[1], { name: "./static", type: "symlink", link: secretDir }]));
            assertNoSecretServed();
            assert.strictEqual(r.code, 1, out(r));
            assert.match(r.stderr, /"static" is a symlink to the absolute path/);
        });

        it("a symlinked .slotshift-release.json in the archive: refused; its target is untouched", async () => {
            const r = await prepare(
                "marker",
                archive("marker", [
                    ...app,
                    { name: "./.slotshift-release.json", type: "symlink", link: path.relative(path.join(layout.releasesDir, "x"), victim) },
                ]),
            );
            assert.strictEqual(fs.readFileSync(victim, "utf8"), "untouched\n", "root wrote the marker through the archive's link");
            assert.strictEqual(r.code, 1, out(r));
            assert.match(r.stderr, /\.slotshift-release\.json/);
        });

        it("links the build plants (static, the marker) reach neither shared/static nor the marker's target", async () => {
            writeSettings({
                buildCommand: [
                    // Into the release dir: root-owned now, so these fail.
                    `ln -s ${secretDir} static 2>/dev/null`,
                    `ln -s ${victim} .slotshift-release.json 2>/dev/null`,
                    // Into the build dir, which the build may write: the static merge refuses it.
                    `if [ -n "$SLOTSHIFT_BUILD_DIR" ]; then ln -s ${secretDir} "$SLOTSHIFT_BUILD_DIR/static"; fi`,
                    "true",
                ].join("; "),
            });
            try {
                const r = await prepare("planted", archive("planted", [app[0], app[1]]));
                assert.strictEqual(fs.readFileSync(victim, "utf8"), "untouched\n", "root wrote through a link the build planted");
                assertNoSecretServed();
                assert.strictEqual(r.code, 1, out(r));
                assert.match(r.stderr, /builds\/planted\/static resolves outside its release/);
                assertNothingUnpacked("planted");
            } finally {
                writeSettings();
            }
        });
    });

    describe("3. the app's environment never reaches a root process", () => {
        let evilBin: string;
        let preload: string;
        let record: string;

        before(function () {
            if (!spawnSync("cc", ["--version"]).stdout) this.skip();
            // A PATH directory whose every tool the root side might run records who ran it, then
            // runs the real one; an LD_PRELOAD library records every process that loads it.
            record = path.join(root, "who-ran.log");
            fs.writeFileSync(record, "", { mode: 0o666 });
            fs.chmodSync(record, 0o666);
            evilBin = path.join(root, "evil-bin");
            fs.mkdirSync(evilBin, { mode: 0o755 });
            for (const tool of ["runuser", "setpriv", "systemd-run", "sh", "tar", "env", "true", "id"]) {
                const real = execFileSync("/bin/sh", ["-c", `PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v ${tool}`], { encoding: "utf8" }).trim();
                fs.writeFileSync(path.join(evilBin, tool), `#!/bin/sh\necho "path ${tool} uid=$(/usr/bin/id -u)" >> ${record}\nexec ${real} "$@"\n`, {
                    mode: 0o755,
                });
            }
            const src = path.join(root, "preload.c");
            fs.writeFileSync(
                src,
                `#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void rec(void) { FILE *f = fopen("${record}", "a"); if (f) { fprintf(f, "preload uid=%d\\n", (int)getuid()); fclose(f); } }\n`,
            );
            preload = path.join(root, "preload.so");
            execFileSync("cc", ["-shared", "-fPIC", "-o", preload, src]);
            fs.chmodSync(preload, 0o755);
        });

        it("the app user cannot rewrite shared/env (root:<app> 0640)", async () => {
            const w = await agent(["write-env"], "SECRET=s3\n");
            assert.strictEqual(w.code, 0, out(w));
            const st = fs.statSync(layout.envFile);
            assert.deepStrictEqual([st.uid, st.gid, st.mode & 0o777], [0, APP_UID, 0o640]);
            const r = asApp(`printf 'PATH=${evilBin}\\nLD_PRELOAD=${preload}\\n' >> ${layout.envFile}`);
            assert.notStrictEqual(r.code, 0, "the app user appended to shared/env");
            assert.strictEqual(fs.readFileSync(layout.envFile, "utf8"), 'SECRET="s3"\n');
            assert.strictEqual(asApp(`cat ${layout.envFile} >/dev/null`).code, 0, "the app may read it");
        });

        it("PATH= and LD_PRELOAD= in shared/env reach the build and migrate as the app user, never a root process", async () => {
            // Whatever way such values got there, they must only ever reach the app's processes.
            const w = await agent(["write-env"], `PATH=${evilBin}:/usr/bin:/bin\nLD_PRELOAD=${preload}\n`);
            assert.strictEqual(w.code, 0, out(w));
            writeSettings({ buildCommand: "id -u > /dev/null", migrateCommand: "id -u > /dev/null" });
            try {
                const p = await prepare("env", archive("env", app));
                assert.strictEqual(p.code, 0, out(p));
                const m = await agent(["migrate", "--version", "env"]);
                assert.strictEqual(m.code, 0, out(m));
            } finally {
                writeSettings();
                await agent(["write-env"], "SECRET=s3\n");
            }
            const lines = fs.readFileSync(record, "utf8").split("\n").filter(Boolean);
            console.log(
                `      figures: ${lines.length} process(es) saw the app's PATH/LD_PRELOAD, uids ${[...new Set(lines.map((l) => l.split("uid=")[1]))].join(", ")}`,
            );
            assert.ok(
                lines.some((l) => l === `preload uid=${APP_UID}`),
                `the app's env did not reach the app's processes: ${lines.join(" | ")}`,
            );
            assert.deepStrictEqual(
                lines.filter((l) => !l.endsWith(`uid=${APP_UID}`)),
                [],
                "a process of another user (root) ran with the app's PATH or LD_PRELOAD",
            );
        });
    });

    describe("4. release trees are root's after prepare: app code cannot rewrite the live or a previous release", () => {
        it("every entry of the release and its build dir is root-owned, and the app user's writes fail", async () => {
            writeSettings({
                buildCommand:
                    'if [ -n "$SLOTSHIFT_BUILD_DIR" ]; then mkdir "$SLOTSHIFT_BUILD_DIR/out" && echo built > "$SLOTSHIFT_BUILD_DIR/out/bundle.js"; fi',
            });
            try {
                for (const v of ["r1", "r2"]) {
                    const r = await prepare(v, archive(v, app));
                    assert.strictEqual(r.code, 0, out(r));
                }
            } finally {
                writeSettings();
            }
            for (const v of ["r1", "r2"]) {
                const rel = path.join(layout.releasesDir, v);
                const notRoot = (dir: string) =>
                    [...tree(dir), [dir, fs.lstatSync(dir)] as [string, fs.Stats]].filter(([, st]) => st.uid !== 0).map(([p, st]) => `${p} uid ${st.uid}`);
                assert.deepStrictEqual(notRoot(rel), []);
                for (const attempt of [
                    `echo 'evil()' >> ${rel}/app.cjs`,
                    `touch ${rel}/new-file`,
                    `rm -f ${rel}/app.cjs`,
                    `mkdir ${rel}/static/x`,
                    `ln -s ${secretDir} ${rel}/static/leak`,
                    `chmod 777 ${rel}`,
                ]) {
                    assert.notStrictEqual(asApp(attempt).code, 0, `the app user could: ${attempt}`);
                }
                assert.strictEqual(fs.readFileSync(path.join(rel, "app.cjs"), "utf8"), "console.log('hi')\n");
                // What the build wrote is sealed the same way.
                const build = path.join(layout.buildsDir, v);
                assert.deepStrictEqual(notRoot(build), []);
                assert.strictEqual(fs.readFileSync(path.join(build, "out", "bundle.js"), "utf8"), "built\n");
                for (const attempt of [`echo evil >> ${build}/out/bundle.js`, `touch ${build}/x`]) {
                    assert.notStrictEqual(asApp(attempt).code, 0, `the app user could: ${attempt}`);
                }
                assert.strictEqual(asApp(`cat ${rel}/app.cjs ${build}/out/bundle.js > /dev/null`).code, 0, "the app may read its release");
            }
        });
    });
});
