// The scripts the components run on the host, as rendered from templates/: the proxy step
// (proxy-apply.sh.njk), the NixOS apply step (nixos-apply.sh.njk), the agent install
// (agent-install.sh.njk), the authorized_keys step (authorized-keys.sh.njk) and the rollback command
// (rollback.sh.njk), each checked by its shell's syntax check and by shellcheck for that shell. What
// they do is tested in test/unit (components.test.ts, rollback-script.test.ts).
import * as assert from "assert";
import {
    renderAgentInstallScript,
    renderAgentSettings,
    renderAuthorizedKeysScript,
    renderDataVolumeScript,
    renderNixosApplyScript,
    renderNixosModule,
    renderProxyApplyScript,
    renderRollbackScript,
} from "../../program/host-files";
import { agentStagingPath, rollbackScriptStagingPath } from "../../lib/host-layout";
import { agentFor, CASES, contextFor, requireTools, run, tempDir } from "./helpers";

/** `bash -n` or `sh -n`, then shellcheck for that shell, style findings included (but `exclude`). */
function check(shell: "bash" | "sh", script: string, exclude: string[] = []): void {
    const syntax = run(shell, ["-n"], { input: script });
    assert.strictEqual(syntax.status, 0, syntax.stderr);
    const r = run("shellcheck", [`--shell=${shell}`, "--severity=style", ...exclude.map((code) => `--exclude=${code}`), "-"], { input: script });
    assert.strictEqual(r.status, 0, `${r.stdout}\n${script}`);
}

describe("host scripts (shellcheck)", () => {
    before(() => requireTools("bash", "sh", "shellcheck"));

    for (const c of CASES) {
        for (const root of [undefined, "root"]) {
            describe(`${c.name}${root ? ", under a root prefix" : ""}`, () => {
                const rootDir = () => (root ? tempDir("host-scripts") : undefined);

                for (const osFlavour of ["debian", "nixos"] as const) {
                    it(`proxy apply (${osFlavour})`, () => {
                        check("bash", renderProxyApplyScript(contextFor({ ...c.inputs, osFlavour }, rootDir()), osFlavour));
                    });
                }

                for (const dataVolumeId of [undefined, "vol-0123456789abcdef0"]) {
                    it(`NixOS apply${dataVolumeId ? ", with the data volume" : ""}`, () => {
                        const dir = rootDir();
                        const ctx = contextFor({ ...c.inputs, osFlavour: "nixos", dataVolumeId }, dir);
                        const script = renderNixosApplyScript(
                            ctx.app.name,
                            renderNixosModule(ctx),
                            { path: ctx.layout.agentConfigPath, content: renderAgentSettings(agentFor(c.inputs, dir)) },
                            { dashboardTokenFile: ctx.layout.dashboardTokenFile },
                            ctx.dataVolume ? renderDataVolumeScript(ctx) : undefined,
                        );
                        check("bash", script);
                    });
                }

                it("agent install (sh -c), with and without the rollback command", () => {
                    const { layout } = contextFor(c.inputs, rootDir());
                    const agent = { path: layout.agentPath, staged: agentStagingPath(layout), sha256: "a".repeat(64) };
                    const script = { path: layout.rollbackScript, staged: rollbackScriptStagingPath(layout), sha256: "b".repeat(64) };
                    check("sh", renderAgentInstallScript(agent, layout.dashboardUnit, script));
                    check("sh", renderAgentInstallScript(agent));
                });

                it("authorized_keys step (sh -c)", () => {
                    // SC2209: a user name assigned as a plain word (user=admin) reads to shellcheck
                    // like a command whose output was meant; a word is what is meant.
                    check("sh", renderAuthorizedKeysScript(contextFor(c.inputs).ssh.user), ["SC2209"]);
                });

                it("rollback command (/bin/sh)", () => {
                    const script = renderRollbackScript(contextFor(c.inputs, rootDir()).layout, { backend: "app" });
                    assert.match(script, /^#!\/bin\/sh\n/);
                    check("sh", script);
                });
            });
        }
    }
});
