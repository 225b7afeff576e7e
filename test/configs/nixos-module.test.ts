// The NixOS module: Nix syntax (nix-instantiate --parse), then evaluated with stand-ins for pkgs and
// lib (there is no nixpkgs here) so its options can be compared with what Debian gets.
import * as assert from "assert";
import * as path from "path";
import { renderDebianSetupScript, renderNixosModule, renderSlotUnit } from "../../lib/host-files";
import { agentFor, APP, CASES, contextFor, requireTools, run, tempDir, unitDirectives, writeFile } from "./helpers";
import { TemplateInputs } from "../../lib/template-context";

// Packages become fake store paths; a file built with writeShellScript (writeText) keeps its text
// between <<< and >>> (<<T< and >T>>) in its "path", so the tests can read and lint it.
const STUBS = `
  let
    pkg = name: "/nix/store/00000000000000000000000000000000-" + name;
    names = [ "nodejs_20" "socat" "haproxy" "openssl" "acl" "coreutils" "diffutils" "gnugrep" ];
  in {
    lib = {
      escapeShellArg = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\\\''" ] (toString s) + "'";
    };
    pkgs = builtins.listToAttrs (map (name: { inherit name; value = pkg name; }) names) // {
      writeShellScript = name: text: pkg name + "<<<" + text + ">>>";
      writeText = name: text: pkg name + "<<T<" + text + ">T>>";
    };
  }
`;

interface Evaluated {
    systemd: {
        services: Record<string, { serviceConfig: Record<string, unknown>; [k: string]: unknown }>;
        tmpfiles: { rules: string[] };
    };
    services: Record<string, Record<string, unknown>>;
    security?: { acme?: { acceptTerms: boolean; defaults: { email: string }; certs: Record<string, Record<string, unknown>> } };
    networking: { firewall: { allowedTCPPorts: number[] } };
    users: { users: Record<string, Record<string, unknown>>; groups: Record<string, unknown> };
    assertions?: { assertion: boolean; message: string }[];
    [k: string]: unknown;
}

function render(inputs: Partial<TemplateInputs>): string {
    return renderNixosModule(contextFor(inputs), agentFor(inputs));
}

function parse(module: string): { status: number | null; stderr: string } {
    const file = writeFile(path.join(tempDir("nix"), "module.nix"), module);
    const r = run("nix-instantiate", ["--parse", file]);
    return { status: r.status, stderr: r.stderr };
}

function evaluate(module: string): Evaluated {
    const dir = tempDir("nix");
    writeFile(path.join(dir, "module.nix"), module);
    writeFile(path.join(dir, "stubs.nix"), STUBS);
    const expr = `let s = import ${dir}/stubs.nix; in import ${dir}/module.nix { config = { }; inherit (s) pkgs lib; }`;
    const r = run("nix-instantiate", ["--eval", "--strict", "--json", "--readonly-mode", "-E", expr]);
    assert.strictEqual(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as Evaluated;
}

/** Scripts stored by the writeShellScript stand-in inside a value (writeText files cut out). */
function embeddedScripts(value: unknown): string[] {
    const json = JSON.stringify(value).replace(/<<T<[\s\S]*?>T>>/g, "");
    return [...json.matchAll(/<<<([\s\S]*?)>>>/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
}

/** Files stored by the writeText stand-in inside a value. */
function embeddedTexts(value: unknown): string[] {
    return [...JSON.stringify(value).matchAll(/<<T<([\s\S]*?)>T>>/g)].map((m) => JSON.parse(`"${m[1]}"`) as string);
}

/** serviceConfig as unit directives: lists repeat the key, booleans are yes/no. */
function asDirectives(serviceConfig: Record<string, unknown>): string[] {
    const out: string[] = [];
    for (const [k, v] of Object.entries(serviceConfig)) {
        for (const item of Array.isArray(v) ? v : [v]) out.push(`${k}=${typeof item === "boolean" ? (item ? "yes" : "no") : String(item)}`);
    }
    return out.sort();
}

describe("NixOS module", () => {
    before(() => requireTools("nix-instantiate", "bash", "shellcheck"));

    for (const c of CASES) {
        describe(c.name, () => {
            const ctx = contextFor(c.inputs);
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
                const debian = unitDirectives(renderSlotUnit(ctx))
                    .map(([k, v]) => `${k}=${v}`)
                    .sort();
                assert.deepStrictEqual(asDirectives(slot.serviceConfig), debian);
                // A rebuild must never restart a slot behind the agent's back (no drain).
                assert.strictEqual(slot.restartIfChanged, false);
            });

            it("creates the same directories, modes and owners as the Debian script", () => {
                const script = renderDebianSetupScript(ctx, agentFor(c.inputs));
                const vars = new Map([...script.matchAll(/^readonly (\w+)='([^']*)'$/gm)].map((x) => [x[1], x[2]]));
                vars.set("APP_USER", ctx.app.user);
                const debian = [...script.matchAll(/^\s*ensure_dir "\$(\w+)" (\d+) (\S+) (\S+)$/gm)]
                    // Both TLS branches are in the script; only the one for this mode counts.
                    .filter(([, v]) => vars.has(v) && v !== (ctx.tls.mode === "acme" ? "TLS_DIR" : "ACME_WEBROOT"))
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
                    const setup = embeddedScripts(m.systemd.services[`${APP}-host-setup`]).join("\n");
                    assert.match(setup, /openssl req -x509/);
                }
            });

            it("embeds shell scripts that pass bash -n and shellcheck", () => {
                const scripts = embeddedScripts(m.systemd.services);
                assert.ok(scripts.length >= 2, `found ${scripts.length} scripts`);
                for (const text of scripts) {
                    assert.strictEqual(run("bash", ["-n"], { input: text }).status, 0, text);
                    const r = run("shellcheck", ["--shell=bash", "-"], { input: text });
                    assert.strictEqual(r.status, 0, `${r.stdout}\n${text}`);
                }
            });

            it("ships the agent settings unchanged", () => {
                const json = embeddedTexts(m.systemd.services[`${APP}-host-setup`]).find((t) => t.trimStart().startsWith("{"));
                assert.ok(json, "agent settings not found");
                assert.deepStrictEqual(JSON.parse(json), JSON.parse(JSON.stringify(agentFor(c.inputs))));
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
        assert.ok(
            m.assertions?.some((a) => a.assertion === false),
            "expected a failing assertion",
        );
    });
});
