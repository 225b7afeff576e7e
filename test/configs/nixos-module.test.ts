// The NixOS module: Nix syntax (nix-instantiate --parse), then evaluated with stand-ins for pkgs and
// lib (there is no nixpkgs here) so its options can be compared with what Debian gets.
import * as assert from "assert";
import * as path from "path";
import * as YAML from "yaml";
import { renderCloudInit, renderDebianSetupScript, renderNixosModule, renderProxyFiles, renderSlotUnit } from "../../lib/host-files";
import { agentFor, APP, CASES, contextFor, requireTools, run, unitDirectives } from "./helpers";
import { TemplateInputs } from "../../lib/template-context";
import { asDirectives, embeddedScripts, evaluateModule as evaluate, Evaluated, parseNix as parse } from "./nixos-eval";

function render(inputs: Partial<TemplateInputs>): string {
    return renderNixosModule(contextFor({ ...inputs, osFlavour: "nixos" }));
}

describe("NixOS module", () => {
    before(() => requireTools("nix-instantiate", "bash", "shellcheck"));

    for (const c of CASES) {
        describe(c.name, () => {
            // The NixOS host's context, and the Debian one the comparisons render the other side from.
            const ctx = contextFor({ ...c.inputs, osFlavour: "nixos" });
            const debianCtx = contextFor(c.inputs);
            const module = render(c.inputs);
            let m: Evaluated;
            before(() => {
                m = evaluate(module);
            });

            it("parses (nix-instantiate --parse)", () => {
                const r = parse(module);
                assert.strictEqual(r.status, 0, r.stderr);
            });

            it("is a module function of { config, pkgs, lib, ... }", () => {
                assert.match(module, /^\{ config, pkgs, lib, \.\.\. \}:$/m);
            });

            it("declares the slot template unit with exactly the Debian unit's [Service] settings", () => {
                const slot = m.systemd.services[`${APP}@`];
                assert.ok(slot, "no template unit");
                const debian = unitDirectives(renderSlotUnit(debianCtx)).map(([k, v]) => `${k}=${v}`).sort();
                assert.deepStrictEqual(asDirectives(slot.serviceConfig), debian);
                // A rebuild must never restart a slot behind the agent's back (no drain).
                assert.strictEqual(slot.restartIfChanged, false);
            });

            it("orders and rate-limits the slot unit as the Debian unit's [Unit] section does", () => {
                const slot = m.systemd.services[`${APP}@`];
                const debian = new Map<string, string[]>();
                for (const [k, v] of unitDirectives(renderSlotUnit(debianCtx), "Unit")) debian.set(k, [...(debian.get(k) ?? []), ...v.split(/\s+/)]);
                assert.deepStrictEqual(String(slot.startLimitIntervalSec), debian.get("StartLimitIntervalSec")?.join(" "));
                assert.deepStrictEqual(String(slot.startLimitBurst), debian.get("StartLimitBurst")?.join(" "));
                // The same units, except that NixOS names "PostgreSQL ready, ensure* done" postgresql.target.
                const nixosName = (unit: string) => (unit === "postgresql.service" ? "postgresql.target" : unit);
                assert.deepStrictEqual(slot.after, (debian.get("After") ?? []).map(nixosName));
                assert.deepStrictEqual(slot.wants, (debian.get("Wants") ?? []).map(nixosName));
            });

            it("creates the app user as the Debian script does: a system account, its own group, home at the app root", () => {
                const script = renderDebianSetupScript(debianCtx, agentFor(c.inputs));
                const vars = new Map([...script.matchAll(/^readonly (\w+)='([^']*)'$/gm)].map((x) => [x[1], x[2]]));
                const useradd = /^\s*useradd ([\s\S]*?[^\\])$/m.exec(script.replace(/\\\n\s*/g, ""));
                assert.ok(useradd, "no useradd in the Debian script");
                const value = (flag: string) => {
                    const raw = new RegExp(`${flag} ("\\$\\w+"|\\S+)`).exec(useradd[1])?.[1] ?? "";
                    return raw.replace(/^"\$(\w+)"$/, (_, n: string) => vars.get(n) ?? `<unset $${n}>`);
                };
                assert.match(useradd[1], /--system/);
                const user = m.users.users[ctx.app.user];
                assert.ok(user, "no app user");
                assert.strictEqual(user.isSystemUser, true);
                assert.strictEqual(user.group, value("--gid"));
                assert.strictEqual(user.home, value("--home-dir"));
                assert.strictEqual(user.createHome, !/--no-create-home/.test(useradd[1]));
                assert.ok(ctx.app.user in m.users.groups, "no app group");
            });

            it("opens exactly the ports the public services listen on (NGINX's site, sshd), nothing behind them", () => {
                const site = renderProxyFiles(ctx).nginxSite;
                const nginxPorts = [...site.matchAll(/^\s*listen (?:\[::\]:)?(\d+)\b/gm)].map((x) => Number(x[1]));
                const cloudInit = YAML.parse(renderCloudInit(debianCtx)) as { write_files: { path: string; content: string }[] };
                const sshdConfig = cloudInit.write_files.find((f) => f.path.startsWith("/etc/ssh/sshd_config.d/"))?.content ?? "";
                const sshd = /^Port (\d+)$/m.exec(sshdConfig)?.[1];
                assert.ok(nginxPorts.length > 0 && sshd, "no listen ports parsed");
                const expected = [...new Set([...nginxPorts, Number(sshd)])].sort((a, b) => a - b);
                assert.deepStrictEqual([...m.networking.firewall.allowedTCPPorts].sort((a, b) => a - b), expected);
                for (const port of [ctx.ports.haproxy, ...ctx.slots.map((slot) => slot.port)]) {
                    assert.ok(!m.networking.firewall.allowedTCPPorts.includes(port), `port ${port} is loopback-only`);
                }
            });

            it("creates the same directories, modes and owners as the Debian script", () => {
                const script = renderDebianSetupScript(debianCtx, agentFor(c.inputs));
                const vars = new Map([...script.matchAll(/^readonly (\w+)='([^']*)'$/gm)].map((x) => [x[1], x[2]]));
                vars.set("APP_USER", ctx.app.user);
                const debian = [...script.matchAll(/^\s*ensure_dir "\$(\w+)" (\d+) (\S+) (\S+)$/gm)]
                    // Both TLS branches are in the script; only the one for this mode counts. The ACME
                    // webroot is never compared: on NixOS the acme units create and own theirs.
                    .filter(([, v]) => vars.has(v) && v !== "ACME_WEBROOT" && !(ctx.tls.mode === "acme" && v === "TLS_DIR"))
                    .map(([, v, mode, owner, group]) => {
                        const sub = (s: string) => s.replace(/^"\$(\w+)"$/, (_, n: string) => vars.get(n)!);
                        return `d ${vars.get(v)} ${mode} ${sub(owner)} ${sub(group)} -`;
                    })
                    // NGINX runs as its own group on NixOS, not as a root master: it reads the key by group.
                    .map((rule) => (rule === `d ${ctx.layout.tlsDir} 0750 root root -` ? `d ${ctx.layout.tlsDir} 0750 root nginx -` : rule));
                const nix = new Set(m.systemd.tmpfiles.rules);
                const missing = debian.filter((rule) => !nix.has(rule));
                assert.deepStrictEqual(missing, []);
                assert.ok(debian.length >= 9, `only ${debian.length} directories compared`);
                assert.ok(nix.has(`f ${ctx.layout.envFile} 0600 ${APP} ${APP} -`));
            });

            it("runs HAProxy on the layout's config path, saving runtime state before reload and stop", () => {
                const h = m.systemd.services.haproxy;
                assert.match(String(h.serviceConfig.ExecStart), new RegExp(` -f ${ctx.layout.haproxyConfigFile} `));
                assert.deepStrictEqual((h.unitConfig as Record<string, unknown>).ConditionPathExists, ctx.layout.haproxyConfigFile);
                const reload = h.serviceConfig.ExecReload as string[];
                assert.match(reload[0], /^-.*haproxy-save-state/);
                assert.match(reload[reload.length - 1], /kill -USR2 \$MAINPID$/);
                assert.match(String(h.serviceConfig.ExecStop), /^-.*haproxy-save-state/);
                assert.strictEqual(h.reloadIfChanged, true);
                assert.strictEqual(m.services.haproxy, undefined, "NixOS's haproxy module would own /etc/haproxy.cfg and restart on changes");
            });

            it("includes the NGINX site from the layout's path and reloads instead of restarting", () => {
                assert.strictEqual(m.services.nginx.enable, true);
                assert.strictEqual(m.services.nginx.enableReload, true);
                assert.strictEqual(m.services.nginx.appendHttpConfig, `include ${path.dirname(ctx.layout.nginxSiteFile)}/*.conf;`);
            });

            it("opens HTTP, HTTPS and SSH only, with key-only SSH", () => {
                assert.deepStrictEqual(m.networking.firewall.allowedTCPPorts, [ctx.ports.http, ctx.ports.https, ctx.ssh.port]);
                const ssh = m.services.openssh as { enable: boolean; ports: number[]; settings: Record<string, unknown> };
                assert.deepStrictEqual(ssh.ports, [ctx.ssh.port]);
                assert.strictEqual(ssh.settings.PasswordAuthentication, false);
                assert.strictEqual(ssh.settings.PermitRootLogin, "prohibit-password");
            });

            it("declares PostgreSQL only when asked, with a database owned by the app user", () => {
                if (!c.inputs.postgresql) {
                    assert.strictEqual(m.services.postgresql, undefined);
                    return;
                }
                assert.deepStrictEqual(m.services.postgresql, {
                    enable: true,
                    ensureDatabases: [APP],
                    ensureUsers: [{ name: APP, ensureDBOwnership: true }],
                });
            });

            it("gets ACME certificates where the NGINX site expects them, or a self-signed one", () => {
                if (ctx.tls.mode === "acme") {
                    const acme = m.security!.acme!;
                    assert.strictEqual(acme.defaults.email, ctx.tls.acmeEmail);
                    assert.strictEqual(acme.certs[ctx.domain].webroot, ctx.tls.acmeWebroot);
                    assert.ok(m.systemd.tmpfiles.rules.includes(`L+ ${ctx.tls.certFile} - - - - /var/lib/acme/${ctx.domain}/fullchain.pem`));
                    assert.ok(m.systemd.tmpfiles.rules.includes(`L+ ${ctx.tls.keyFile} - - - - /var/lib/acme/${ctx.domain}/key.pem`));
                } else {
                    assert.strictEqual(m.security, undefined);
                    const setup = embeddedScripts(m.systemd.services[`${APP}-self-signed-cert`]).join("\n");
                    assert.match(setup, /openssl req -x509/);
                }
            });

            it("embeds shell scripts that pass bash -n and shellcheck", () => {
                const scripts = embeddedScripts(m.systemd.services);
                assert.ok(scripts.some((text) => text.includes("show servers state")), "the HAProxy state save is not among them");
                if (ctx.tls.mode === "self-signed") assert.ok(scripts.some((text) => text.includes("openssl req -x509")), "the certificate script is not among them");
                for (const text of scripts) {
                    assert.strictEqual(run("bash", ["-n"], { input: text }).status, 0, text);
                    const r = run("shellcheck", ["--shell=bash", "-"], { input: text });
                    assert.strictEqual(r.status, 0, `${r.stdout}\n${text}`);
                }
            });

        });
    }

    it("keeps hostile values inert (nixString: quotes, backslashes, ${...})", () => {
        const domain = 'evil.example.com" ; x = "${builtins.abort "pwned"}\\';
        const startCommand = 'node app.js $PORT "${HOME}" \\n';
        const module = render({ domain, startCommand, tlsMode: "acme" });
        assert.strictEqual(parse(module).status, 0);
        const m = evaluate(module);
        assert.deepStrictEqual(Object.keys(m.security!.acme!.certs), [domain]);
        const execStart = m.systemd.services[`${APP}@`].serviceConfig.ExecStart;
        assert.strictEqual(execStart, unitDirectives(renderSlotUnit(contextFor({ domain, startCommand }))).find(([k]) => k === "ExecStart")![1]);
    });

    it("fails evaluation-time checks for ACME without an e-mail", () => {
        const m = evaluate(render({ tlsMode: "acme", acmeEmail: undefined }));
        assert.ok(m.assertions?.some((a) => a.assertion === false), "expected a failing assertion");
    });
});
