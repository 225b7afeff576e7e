// The slot template unit <app>@.service, checked by systemd's own parser and security analysis.
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as path from "path";
import { renderSlotUnit } from "../../program/host-files";
import { renderStartScript } from "../../lib/slot-activation";
import { APP, CASES, contextFor, requireTools, run, tempDir, unitDirectives, writeFile } from "./helpers";

/** The highest `systemd-analyze security` exposure the slot unit may have (0..10; lower is safer). */
const MAX_EXPOSURE = 2.0;

/** Writes the template into a fresh dir; returns the path of its `blue` instance (which need not exist as a file). */
function unitDir(unit: string): { dir: string; instance: string } {
    const dir = tempDir("unit");
    writeFile(path.join(dir, `${APP}@.service`), unit);
    return { dir, instance: path.join(dir, `${APP}@blue.service`) };
}

/**
 * `systemd-analyze verify` on the blue instance. In this container PID 1 is not systemd, users and
 * paths of the host layout do not exist, and dependencies such as postgresql.service may be absent:
 * --recursive-errors=no confines failures to our unit, --man=no skips man page lookups and
 * --generators=no keeps the host's generators out. What remains fails on real errors in our file:
 * unknown directives, unparsable values, a missing or relative executable. (User= and the paths are
 * resolved only when a unit starts, so they cannot be checked here.)
 */
function verify(unit: string): { status: number | null; output: string; ours: string[] } {
    const { dir, instance } = unitDir(unit);
    const r = run("systemd-analyze", ["verify", "--man=no", "--generators=no", "--recursive-errors=no", instance]);
    const output = `${r.stdout}${r.stderr}`.trim();
    return { status: r.status, output, ours: output.split("\n").filter((l) => l.includes(dir) || l.includes(`${APP}@`)) };
}

function security(unit: string): { status: number | null; exposure: number; output: string } {
    const { instance } = unitDir(unit);
    const r = run("systemd-analyze", ["security", "--offline=true", `--threshold=${MAX_EXPOSURE * 10}`, "--no-pager", instance]);
    const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout);
    if (!m) throw new Error(`no exposure figure in:\n${r.stdout}${r.stderr}`);
    return { status: r.status, exposure: Number(m[1]), output: r.stdout };
}

/**
 * The argv systemd builds for ExecStart=, read from the manager's own unit dump (`systemd --test`,
 * which refuses to run as root, so it runs as nobody). The dump shows arguments after specifier
 * expansion and unquoting, shell-quoted; variables are substituted only at exec time (see below).
 */
function execStartArgv(unit: string): string[] {
    const { dir } = unitDir(unit);
    const asNobody = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] : [];
    const cmd = [...asNobody, "/lib/systemd/systemd", "--test", "--system", "--no-pager", `--unit=${APP}@blue.service`];
    const r = run(cmd[0], cmd.slice(1), {
        env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:`, SYSTEMD_LOG_LEVEL: "err" },
        maxBuffer: 64 * 1024 * 1024,
    });
    const start = r.stdout.indexOf(`-> Unit ${APP}@blue.service:`);
    assert.ok(start >= 0, `no dump of ${APP}@blue.service (exit ${r.status}):\n${r.stderr.slice(0, 2000)}`);
    const section = r.stdout.slice(start).split(/\n\t-> Unit /)[0];
    const m = /-> ExecStart:\n\t+Command Line: (.*)\n/.exec(section);
    assert.ok(m, `no ExecStart in the dump:\n${section}`);
    // At exec time systemd turns $$ into $ and substitutes $NAME / ${NAME} from the unit's
    // environment; a substitution is marked so a test sees that systemd, not the shell, expanded it.
    return splitDumpedCommandLine(m[1]).map((arg) =>
        arg.replace(/\$\$|\$\{(\w+)\}|\$(\w+)/g, (all, braced?: string, bare?: string) => (all === "$$" ? "$" : `<systemd:${braced ?? bare}>`)),
    );
}

/** Splits systemd's quoted command line (bare words, "..." with \-escapes, '...'). */
function splitDumpedCommandLine(line: string): string[] {
    const args: string[] = [];
    let i = 0;
    while (i < line.length) {
        while (line[i] === " ") i++;
        if (i >= line.length) break;
        let arg = "";
        while (i < line.length && line[i] !== " ") {
            const c = line[i];
            if (c === '"') {
                i++;
                while (line[i] !== '"') {
                    if (i >= line.length) throw new Error(`unterminated quote in ${line}`);
                    if (line[i] === "\\") {
                        i++;
                        const e = line[i];
                        arg += e === "n" ? "\n" : e === "t" ? "\t" : e;
                    } else {
                        arg += line[i];
                    }
                    i++;
                }
                i++;
            } else if (c === "'") {
                const end = line.indexOf("'", i + 1);
                arg += line.slice(i + 1, end);
                i = end + 1;
            } else if (c === "\\") {
                arg += line[i + 1];
                i += 2;
            } else {
                arg += c;
                i++;
            }
        }
        args.push(arg);
    }
    return args;
}

describe("slot unit (app@.service)", function () {
    before(() => requireTools("systemd-analyze", "setpriv"));

    for (const c of CASES) {
        describe(c.name, () => {
            const ctx = contextFor(c.inputs);
            const unit = renderSlotUnit(ctx);

            it("passes systemd-analyze verify", () => {
                const r = verify(unit);
                assert.strictEqual(r.status, 0, r.output);
                assert.deepStrictEqual(r.ours, [], "systemd warns about the unit");
            });

            it(`has a systemd-analyze security exposure of at most ${MAX_EXPOSURE}`, () => {
                const r = security(unit);
                assert.strictEqual(r.status, 0, r.output);
                assert.ok(r.exposure <= MAX_EXPOSURE, `exposure ${r.exposure} > ${MAX_EXPOSURE}:\n${r.output}`);
            });

            it("is ordered after the network, and after a local PostgreSQL it pulls in", () => {
                const u = unitDirectives(unit, "Unit");
                const pg = c.inputs.postgresql ? ["postgresql.service"] : [];
                assert.deepStrictEqual(
                    u.filter(([k]) => k === "After").map(([, v]) => v.split(" ")),
                    [["network.target", ...pg]],
                );
                assert.deepStrictEqual(
                    u.filter(([k]) => k === "Wants").map(([, v]) => v),
                    pg,
                );
                assert.deepStrictEqual(unitDirectives(unit, "Install"), [["WantedBy", "multi-user.target"]]);
            });

            it("runs as the app user from the slot's release, with its activation's environment snapshot and slot env file", () => {
                const d = unitDirectives(unit);
                const get = (k: string) => d.filter(([key]) => key === k).map(([, v]) => v);
                assert.deepStrictEqual(get("User"), [ctx.app.user]);
                assert.deepStrictEqual(get("Group"), [ctx.app.user]);
                assert.deepStrictEqual(get("WorkingDirectory"), [`${ctx.layout.slotsDir}/%i`]);
                // The activation's environment snapshot, not shared/env: an appEnv change reaches a slot only by activation.
                assert.deepStrictEqual(get("EnvironmentFile"), [`${ctx.layout.slotsDir}/%i.app-env`, `${ctx.layout.slotsDir}/%i.env`]);
                assert.deepStrictEqual(get("ReadWritePaths"), [ctx.layout.mediaDir]);
                assert.deepStrictEqual(get("KillMode"), ["mixed"]);
                assert.ok(Number(get("TimeoutStopSec")[0]) > 30, "TimeoutStopSec must exceed gunicorn's 30 s graceful timeout");
                assert.deepStrictEqual(get("SyslogIdentifier"), [`${APP}-%i`]);
                assert.ok(!get("MemoryDenyWriteExecute").includes("yes"), "MemoryDenyWriteExecute breaks V8's JIT");
                // Seen on a Debian 12 host: gunicorn's workers call setuid(own uid) and die without it.
                assert.deepStrictEqual(get("SystemCallFilter"), ["@system-service", "~@privileged @resources", "@setuid @chown"]);
                // ProcSubset=pid empties Node's os.cpus().
                assert.deepStrictEqual(get("ProcSubset"), []);
            });
        });
    }

    it("restricts IP traffic to loopback only when appEgress is loopback", () => {
        const has = (u: string) => /^IPAddressDeny=any$/m.test(u) && /^IPAddressAllow=localhost$/m.test(u);
        assert.ok(has(renderSlotUnit(contextFor({ appEgress: "loopback" }))));
        assert.ok(!has(renderSlotUnit(contextFor({ appEgress: "any" }))));
        const byDefault = renderSlotUnit(contextFor({}));
        assert.ok(!/^IPAddressAllow/m.test(byDefault), "outbound traffic is allowed by default...");
        assert.match(byDefault, /^IPAddressDeny=169\.254\.169\.254 fd00:ec2::254$/m, "...except to the instance metadata service");
        const any = security(renderSlotUnit(contextFor({ appEgress: "any" }))).exposure;
        const loopback = security(renderSlotUnit(contextFor({ appEgress: "loopback" }))).exposure;
        assert.ok(loopback < any, `loopback-only (${loopback}) should score better than any (${any})`);
    });

    describe("start command", () => {
        // Quotes, backslashes, specifiers (%i would become "blue" in a unit), $VAR and ${VAR} for the
        // shell: the command lives in the slot's start script, never in the unit.
        const nasty = `printf '[%s]' "a b" $PORT \${PORT} 'it'\\''s' "q\\"uote" back\\\\slash 100% %i %%`;

        it("never reaches the unit: ExecStart runs the slot's start script, whatever the command", function () {
            this.timeout(60_000);
            const a = renderSlotUnit(contextFor({ startCommand: nasty }));
            const b = renderSlotUnit(contextFor({ startCommand: "gunicorn shop.wsgi --bind 127.0.0.1:$PORT" }));
            assert.strictEqual(a, b, "a startCommand change must not change the unit (it would restart nothing, yet mean nothing)");
            assert.deepStrictEqual(execStartArgv(a), ["/bin/sh", `${contextFor({}).layout.slotsDir}/blue.start`]);
            assert.strictEqual(verify(a).status, 0);
        });

        it("the start script runs it under the shell byte for byte, with the slot's PORT expanded, as the main process", function () {
            this.timeout(60_000);
            const script = path.join(tempDir("start"), "blue.start");
            const env = { env: { PORT: "8123", PATH: process.env.PATH } };
            writeFile(script, renderStartScript(nasty));
            const expected = run("/bin/sh", ["-c", `exec ${nasty}`], env).stdout;
            assert.match(expected, /^\[a b\]\[8123\]\[8123\]\[it's\]/);
            assert.strictEqual(run("/bin/sh", [script], env).stdout, expected);
            writeFile(script, renderStartScript("printf '%s|' \"$PORT\" ${PORT}-x 'a b' 50%"));
            assert.strictEqual(run("/bin/sh", [script], env).stdout, "8123|8123-x|a b|50%|");
            // exec: the command replaces the script's shell (it is the unit's main process and gets its signals).
            writeFile(script, renderStartScript("sh -c 'echo $$'"));
            const r = spawnSync("/bin/sh", [script], { ...env, encoding: "utf8" });
            assert.strictEqual(r.stdout.trim(), String(r.pid));
        });
    });
});
