// The NixOS module: Nix syntax (nix-instantiate --parse), then evaluated with stand-ins for pkgs and
// lib (there is no nixpkgs here) so its options can be compared with what Debian gets.
import * as assert from "assert";
import * as fs from "fs";
import * as net from "net";
import * as path from "path";
import * as YAML from "yaml";
import { renderCloudInit, renderDebianSetupScript, renderNixosModule, renderProxyFiles, renderSlotUnit } from "../../program/host-files";
import { agentFor, APP, CASES, contextFor, requireTools, run, tempDir, unitDirectives, writeFile } from "./helpers";
import { HAPROXY_STOP_SIGNAL } from "../../lib/haproxy-stop";
import { TemplateInputs } from "../../program/template-context";
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
                const debian = unitDirectives(renderSlotUnit(debianCtx))
                    .map(([k, v]) => `${k}=${v}`)
                    .sort();
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
                assert.deepStrictEqual(
                    [...m.networking.firewall.allowedTCPPorts].sort((a, b) => a - b),
                    expected,
                );
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
                assert.ok(nix.has(`f ${ctx.layout.envFile} 0640 root ${APP} -`));
            });

            it("brings the slots back at boot through the recover unit, which runs as Debian's does (the slot unit is wanted by nothing)", () => {
                // On Debian the agent enables the slots it starts; here nothing can: the slot unit is
                // the store's, without an [Install] section. `agent recover` at boot starts the slots
                // slots.json records as running (agent/deploy/deploy/recovery.test.ts), so its unit must run at every boot.
                const slot = m.systemd.services[`${APP}@`];
                assert.strictEqual(slot.wantedBy, undefined, "a wanted slot would be started by a switch, behind the agent");
                const script = renderDebianSetupScript(debianCtx, agentFor(c.inputs));
                const debianUnit = /<<'SLOTSHIFT_RECOVER_UNIT_END'\n([\s\S]*?)\nSLOTSHIFT_RECOVER_UNIT_END$/m.exec(script)?.[1];
                assert.ok(debianUnit, "no recover unit in the Debian script");
                const debian = (section: string, key: string) =>
                    unitDirectives(debianUnit, section)
                        .filter(([k]) => k === key)
                        .flatMap(([, v]) => v.split(/\s+/));
                const r = m.systemd.services[ctx.layout.recoverUnit];
                assert.ok(r, `no ${ctx.layout.recoverUnit} unit`);
                assert.deepStrictEqual(r.wantedBy, debian("Install", "WantedBy"));
                assert.deepStrictEqual(r.after, debian("Unit", "After"));
                assert.deepStrictEqual(r.wants, debian("Unit", "Wants"));
                assert.deepStrictEqual((r.unitConfig as Record<string, unknown>).ConditionPathExists, debian("Unit", "ConditionPathExists"));
                assert.strictEqual(r.serviceConfig.Type, debian("Service", "Type")[0]);
                assert.strictEqual(r.serviceConfig.TimeoutStartSec, debian("Service", "TimeoutStartSec")[0]);
                assert.match(String(r.serviceConfig.ExecStart), new RegExp(`/bin/node ${ctx.layout.agentPath} recover$`));
                // A switch finds no interrupted deploy: only a boot runs it.
                assert.strictEqual(r.restartIfChanged, false);
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
                assert.ok(
                    scripts.some((text) => text.includes("show servers state")),
                    "the HAProxy state save is not among them",
                );
                if (ctx.tls.mode === "self-signed")
                    assert.ok(
                        scripts.some((text) => text.includes("openssl req -x509")),
                        "the certificate script is not among them",
                    );
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

    it("mounts the data volume (aws) by its id, and binds its directories where the host expects them", () => {
        const ctx = contextFor({ postgresql: true, osFlavour: "nixos", dataVolumeId: "vol-0123456789abcdef0" });
        const m = evaluate(renderNixosModule(ctx)) as Evaluated & {
            fileSystems: Record<string, { device: string; fsType: string; options: string[]; depends?: string[] }>;
        };
        assert.deepStrictEqual(m.fileSystems[ctx.layout.dataMount], {
            device: "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0",
            fsType: "ext4",
            options: ["nofail", "x-systemd.device-timeout=30s"],
        });
        for (const [target, source] of [
            [ctx.layout.sharedDir, `${ctx.layout.dataMount}/shared`],
            ["/var/lib/postgresql", `${ctx.layout.dataMount}/postgresql`],
        ]) {
            assert.deepStrictEqual(
                m.fileSystems[target],
                { device: source, fsType: "none", options: ["bind", "nofail"], depends: [ctx.layout.dataMount] },
                target,
            );
        }
        assert.strictEqual((evaluate(render({})) as Evaluated & { fileSystems?: unknown }).fileSystems, undefined, "no volume, no mounts");
    });

    it("fails evaluation-time checks for ACME without an e-mail", () => {
        const m = evaluate(render({ tlsMode: "acme", acmeEmail: undefined }));
        assert.ok(
            m.assertions?.some((a) => a.assertion === false),
            "expected a failing assertion",
        );
    });
});

describe("HAProxy runtime state across reloads, NixOS and Debian", () => {
    before(() => requireTools("nix-instantiate", "bash"));

    /** The body of the heredoc `<<DELIM` or `<<'DELIM'` in the Debian setup script. */
    function heredoc(script: string, delim: string): string {
        const start = script.search(new RegExp(`<<'?${delim}'?\\n`));
        assert.ok(start >= 0, `no heredoc ${delim}`);
        const bodyStart = script.indexOf("\n", start) + 1;
        return script.slice(bodyStart, script.indexOf(`\n${delim}\n`, bodyStart) + 1);
    }

    /** What each step of an ExecReload=/ExecStop= list does, in order. */
    function steps(commands: string[], saveScript: (command: string) => boolean): string[] {
        return commands
            .map((command) => {
                if (command.startsWith("-") && saveScript(command.slice(1))) return "save state, failure ignored";
                if (/\bhaproxy\b.* -c( |$)/.test(command)) return "check config";
                if (/kill -USR2 \$MAINPID$/.test(command)) return "signal the master (USR2)";
                // NixOS only: the master re-executes argv[0] on USR2; re-pointing it picks up a new package.
                if (/\bln -sf \S+\/bin\/haproxy \/run\/haproxy\/haproxy$/.test(command)) return "";
                return `unknown: ${command}`;
            })
            .filter(Boolean);
    }

    it("saves the state before the check and the USR2 reload, and before a stop, as the Debian drop-in does", () => {
        const ctx = contextFor({ osFlavour: "nixos" });
        const h = evaluate(renderNixosModule(ctx)).systemd.services.haproxy;
        const dropIn = heredoc(renderDebianSetupScript(contextFor({}), agentFor({})), "SLOTSHIFT_DROPIN_END");
        // An unquoted heredoc: bash turns \$ into $ when it writes the drop-in.
        const debian = (key: string) =>
            dropIn
                .split("\n")
                .filter((l) => l.startsWith(`${key}=`))
                .map((l) => l.slice(key.length + 1).replace(/\\\$/g, "$"))
                .filter(Boolean);
        const debianSave = (command: string) => command === "$SAVE_STATE_SCRIPT";
        const nixosSave = (command: string) => /-haproxy-save-state<<</.test(command);
        assert.deepStrictEqual(steps(h.serviceConfig.ExecReload as string[], nixosSave), steps(debian("ExecReload"), debianSave));
        assert.deepStrictEqual(steps([String(h.serviceConfig.ExecStop)], nixosSave), steps(debian("ExecStop"), debianSave));
        assert.deepStrictEqual(steps(debian("ExecReload"), debianSave), ["save state, failure ignored", "check config", "signal the master (USR2)"]);
    });

    it("stops HAProxy softly on both (the requests inside it finish), with the signal the integration tests send", () => {
        const h = evaluate(renderNixosModule(contextFor({ osFlavour: "nixos" }))).systemd.services.haproxy;
        const dropIn = heredoc(renderDebianSetupScript(contextFor({}), agentFor({})), "SLOTSHIFT_DROPIN_END");
        // SIGUSR1 to the master: soft stop. systemd's default SIGTERM is HAProxy's hard stop.
        assert.strictEqual(HAPROXY_STOP_SIGNAL, "SIGUSR1");
        assert.deepStrictEqual(
            dropIn.split("\n").filter((l) => l.startsWith("KillSignal=")),
            [`KillSignal=${HAPROXY_STOP_SIGNAL}`],
        );
        assert.strictEqual(h.serviceConfig.KillSignal, HAPROXY_STOP_SIGNAL);
    });

    it("writes the same state file from the same socket as Debian's script, and keeps the old one when the dump fails", async () => {
        const root = tempDir("haproxy-state");
        const ctx = contextFor({ osFlavour: "nixos" }, root);
        const layout = ctx.layout;
        const bin = path.join(root, "bin");
        // socat stand-in: takes the command from stdin and answers with $REPLY_FILE.
        writeFile(
            path.join(bin, "socat"),
            '#!/bin/sh\n[ "$4" = "UNIX-CONNECT:$EXPECT_SOCKET" ] || exit 9\ncat > "$REPLY_FILE.command"\ncat "$REPLY_FILE"\n',
            0o755,
        );
        const nixosScript = embeddedScripts(evaluate(renderNixosModule(ctx)).systemd.services.haproxy)
            .find((text) => text.includes("show servers state"))!
            // Stand-in store paths of socat and coreutils: the stub above, and this machine's tools.
            .replace(/\/nix\/store\/0{32}-(\w+)\/bin\/(\w+)/g, (_, pkg: string, tool: string) => (pkg === "socat" ? path.join(bin, "socat") : tool));
        const debianScript = heredoc(renderDebianSetupScript(contextFor({}, root), agentFor({}, root)), "SLOTSHIFT_SAVE_STATE_END");
        fs.mkdirSync(path.dirname(layout.haproxySocket), { recursive: true });
        fs.mkdirSync(path.dirname(layout.haproxyStateFile), { recursive: true });
        const server = net.createServer();
        await new Promise<void>((resolve) => server.listen(layout.haproxySocket, resolve));
        try {
            const dump =
                "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight\n3 app 1 blue 127.0.0.1 2 0 90 100\n3 app 2 green 127.0.0.1 2 0 10 100\n";
            const outcome = (script: string, reply: string) => {
                writeFile(path.join(root, "reply"), reply);
                writeFile(layout.haproxyStateFile, "previous state\n", 0o600);
                const env = { ...process.env, PATH: `${bin}:${process.env.PATH}`, REPLY_FILE: path.join(root, "reply"), EXPECT_SOCKET: layout.haproxySocket };
                const r = run("bash", ["-c", script], { env });
                return {
                    ok: r.status === 0,
                    asked: fs.readFileSync(path.join(root, "reply.command"), "utf8").trim(),
                    state: fs.readFileSync(layout.haproxyStateFile, "utf8"),
                    mode: (fs.statSync(layout.haproxyStateFile).mode & 0o777).toString(8),
                    left: fs.readdirSync(path.dirname(layout.haproxyStateFile)),
                };
            };
            for (const reply of [dump, "Unknown command.\n"]) {
                const nixos = outcome(nixosScript, reply);
                assert.deepStrictEqual(nixos, outcome(debianScript, reply));
                assert.strictEqual(nixos.asked, "show servers state");
                assert.strictEqual(nixos.state, reply === dump ? dump : "previous state\n");
                assert.deepStrictEqual(nixos.left, [path.basename(layout.haproxyStateFile)]);
            }
        } finally {
            server.close();
        }
    });
});
