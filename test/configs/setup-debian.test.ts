// The Debian setup script: shell syntax and lint, the files it embeds, quoting of every value, and
// its write-only-when-changed helper run for real in a temp dir.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { renderDebianSetupScript, renderSlotUnit } from "../../program/host-files";
import { agentFor, CASES, contextFor, requireTools, run, tempDir, writeFile } from "./helpers";

/** The body of the heredoc `<<'DELIM'` ... `DELIM` (quoted, so bash writes it verbatim). */
function heredoc(script: string, delim: string): string {
    const start = script.indexOf(`<<'${delim}'\n`);
    assert.ok(start >= 0, `no quoted heredoc ${delim}`);
    const bodyStart = script.indexOf("\n", start) + 1;
    const end = script.indexOf(`\n${delim}\n`, bodyStart - 1);
    assert.ok(end >= 0, `heredoc ${delim} is not closed`);
    return script.slice(bodyStart, end + 1);
}

/** The script up to its first action: settings and helper functions only. */
function preamble(script: string): string {
    const end = script.indexOf("# --- packages");
    assert.ok(end > 0);
    // The root check is an action too.
    return script.slice(0, end).replace(/if \[\[ \$\(id -u\) -ne 0 \]\]; then[\s\S]*?\nfi\n/, "");
}

describe("Debian setup script", () => {
    before(() => requireTools("bash", "shellcheck"));

    for (const c of CASES) {
        describe(c.name, () => {
            const ctx = contextFor(c.inputs);
            const agent = agentFor(c.inputs);
            const script = renderDebianSetupScript(ctx, agent);

            it("is valid bash (bash -n)", () => {
                const r = run("bash", ["-n"], { input: script });
                assert.strictEqual(r.status, 0, r.stderr);
            });

            it("passes shellcheck", () => {
                const r = run("shellcheck", ["--shell=bash", "--severity=style", "-"], { input: script });
                assert.strictEqual(r.status, 0, r.stdout);
            });

            it("starts strict and as root", () => {
                assert.match(script, /^#!\/usr\/bin\/env bash\n/);
                assert.match(script, /^set -euo pipefail$/m);
            });

            it("writes exactly the rendered slot unit", () => {
                assert.strictEqual(heredoc(script, "SLOTSHIFT_UNIT_END"), renderSlotUnit(ctx));
            });

            it("writes the agent settings as JSON, 0600 root", () => {
                assert.deepStrictEqual(JSON.parse(heredoc(script, "SLOTSHIFT_AGENT_JSON_END")), JSON.parse(JSON.stringify(agent)));
                assert.match(script, /^put_file "\$AGENT_CONFIG" 0600 root root <<'SLOTSHIFT_AGENT_JSON_END'$/m);
                assert.match(script, new RegExp(`^readonly AGENT_CONFIG='${ctx.layout.agentConfigPath}'$`, "m"));
            });

            it("leaves haproxy.cfg and the NGINX site to the proxy step", () => {
                // Outside the embedded agent JSON, the paths appear only as a config check and as
                // the directory of the default site.
                const body = script.replace(heredoc(script, "SLOTSHIFT_AGENT_JSON_END"), "");
                const mentions = body.split("\n").filter((l) => l.includes(ctx.layout.haproxyConfigFile) || l.includes(ctx.layout.nginxSiteFile));
                assert.deepStrictEqual(mentions, [
                    `readonly HAPROXY_CONFIG='${ctx.layout.haproxyConfigFile}'`,
                    `NGINX_DEFAULT_SITE=$(dirname -- '${ctx.layout.nginxSiteFile}')/default`,
                ]);
                const uses = body.split("\n").filter((l) => /\$\{?HAPROXY_CONFIG\b/.test(l));
                assert.deepStrictEqual(uses, ['if haproxy -c -q -f "$HAPROXY_CONFIG" >/dev/null 2>&1; then']);
            });

            it("installs PostgreSQL and certbot only when asked", () => {
                assert.strictEqual(/^readonly WITH_POSTGRESQL=yes$/m.test(script), !!c.inputs.postgresql);
                assert.match(script, new RegExp(`^readonly TLS_MODE='${ctx.tls.mode}'$`, "m"));
            });
        });
    }

    it("quotes every value: a hostile domain or path stays one inert word", () => {
        const domain = `x.example.com'; touch /tmp/pwned; echo '$(id)\`id\`\${HOME}\n"`;
        const script = renderDebianSetupScript(contextFor({ domain }), agentFor({ domain }));
        const r = run("bash", ["-c", `${preamble(script)}\nprintf '%s' "$DOMAIN"`]);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.strictEqual(r.stdout, domain);
        assert.strictEqual(run("bash", ["-n"], { input: script }).status, 0);
    });

    it("embedded files cannot end their heredoc early", () => {
        // The unit and the JSON are the only embedded texts with outside input; neither can hold a
        // line equal to a delimiter (JSON escapes line breaks, systemdQuote does too).
        const cmd = "node app.js $PORT\nSLOTSHIFT_UNIT_END\nrm -rf /";
        const ctx = contextFor({ startCommand: cmd });
        const script = renderDebianSetupScript(ctx, agentFor({}));
        assert.strictEqual(heredoc(script, "SLOTSHIFT_UNIT_END"), renderSlotUnit(ctx));
        assert.strictEqual(script.split("\n").filter((l) => l === "SLOTSHIFT_UNIT_END").length, 1);
    });

    describe("put_file (atomic, only when changed)", () => {
        const script = renderDebianSetupScript(contextFor({}), agentFor({}));
        const user = run("id", ["-un"]).stdout.trim();
        const group = run("id", ["-gn"]).stdout.trim();

        function putFile(file: string, content: string, mode: string): { changed: string; stdout: string } {
            const r = run("bash", ["-c", `${preamble(script)}\nput_file "$1" ${mode} ${user} ${group}\necho "changed=$CHANGED"`, "bash", file], {
                input: content,
            });
            assert.strictEqual(r.status, 0, r.stderr);
            return { changed: /changed=(\d)/.exec(r.stdout)![1], stdout: r.stdout };
        }

        it("writes a new file with the mode given, and leaves no temp file", () => {
            const dir = tempDir("put");
            const file = path.join(dir, "agent.json");
            assert.strictEqual(putFile(file, "one\n", "0600").changed, "1");
            assert.strictEqual(fs.readFileSync(file, "utf8"), "one\n");
            assert.strictEqual(fs.statSync(file).mode & 0o777, 0o600);
            assert.deepStrictEqual(fs.readdirSync(dir), ["agent.json"]);
        });

        it("does not rewrite an unchanged file (same inode, no 'wrote' line), but fixes its mode", () => {
            const dir = tempDir("put");
            const file = writeFile(path.join(dir, "unit"), "same\n", 0o666);
            const inode = fs.statSync(file).ino;
            const r = putFile(file, "same\n", "0644");
            assert.strictEqual(r.changed, "0");
            assert.doesNotMatch(r.stdout, /wrote/);
            assert.strictEqual(fs.statSync(file).ino, inode);
            assert.strictEqual(fs.statSync(file).mode & 0o777, 0o644);
        });

        it("replaces a changed file by rename (a new inode: readers never see half a file)", () => {
            const dir = tempDir("put");
            const file = writeFile(path.join(dir, "unit"), "old\n");
            const inode = fs.statSync(file).ino;
            assert.strictEqual(putFile(file, "new\n", "0644").changed, "1");
            assert.strictEqual(fs.readFileSync(file, "utf8"), "new\n");
            assert.notStrictEqual(fs.statSync(file).ino, inode);
            assert.deepStrictEqual(fs.readdirSync(dir), ["unit"]);
        });
    });
});
