// The pieces the components are built from: command lines, image choice, and the root scripts
// they feed on stdin, run here for real with bash against a temp directory and stand-in tools.
import * as assert from "assert";
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { amiNamePattern, instanceArchitecture } from "../../components/host";
import { artifactUploadPath, prepareCommand } from "../../components/release";
import { agentCommand, asRoot, shellQuote } from "../../components/remote";
import { activateRequest, deploySummary } from "../../components/traffic-shift";
import { formatCommand } from "../../lib/contract/commands";
import { formatAgentMessage } from "../../lib/contract/messages";
import { agentStagingPath, hostLayout, nixosModulePath, stagedPath } from "../../lib/host-layout";
import { renderAcmeBootstrapSite, renderNixosApplyScript, renderProxyApplyScript, stageFileScript } from "../../program/host-files";
import { buildTemplateContext, TemplateContext, TemplateInputs } from "../../program/template-context";

function tempDir(prefix: string): string {
    return fs.mkdtempSync(path.join(os.tmpdir(), `slotshift-${prefix}-`));
}

describe("command lines", () => {
    it("quotes only what needs quoting", () => {
        assert.strictEqual(shellQuote("/srv/shop/deploy/agent.js"), "/srv/shop/deploy/agent.js");
        assert.strictEqual(shellQuote("10:30,100:0"), "10:30,100:0");
        assert.strictEqual(shellQuote("it's; rm -rf /"), `'it'\\''s; rm -rf /'`);
        assert.strictEqual(shellQuote(""), "''");
    });

    it("runs as root directly, anyone else through sudo -n (never a password prompt)", () => {
        assert.strictEqual(asRoot("root", "bash -s"), "bash -s");
        assert.strictEqual(asRoot("admin", "bash -s"), "sudo -n bash -s");
    });

    it("calls the agent as documented: node <agent.js> <command> --config <agent.json> [options]", () => {
        const layout = hostLayout("shop");
        assert.strictEqual(
            agentCommand(layout, "retire", { version: "1.2.3" }),
            "node /srv/shop/deploy/agent.js retire --config /srv/shop/deploy/agent.json --version 1.2.3",
        );
    });

    it("formats the activate options from the shift group, one flag per setting by its own name", () => {
        const request = activateRequest({
            version: "2.0.0",
            shift: {
                shiftPlan: [
                    { percent: 5, pauseSeconds: 10 },
                    { percent: 100, pauseSeconds: 0 },
                ],
                maxErrorRatio: 0.01,
                minRequestsPerStep: 10,
                maxStepExtension: 60,
                maxLatencyRatio: 3,
                healthTimeout: 90,
                drainTimeout: 45,
                keepPreviousWarm: false,
            },
        });
        assert.deepStrictEqual(formatCommand("activate", request).slice(1), [
            "--version",
            "2.0.0",
            "--shift-plan",
            "5:10,100:0",
            "--max-error-ratio",
            "0.01",
            "--min-requests-per-step",
            "10",
            "--max-step-extension",
            "60",
            "--max-latency-ratio",
            "3",
            "--health-timeout",
            "90",
            "--drain-timeout",
            "45",
            "--no-keep-previous-warm",
        ]);
    });

    it("takes the deploy's own figures from the agent's result message", () => {
        const traffic = {
            requests: 920,
            failed: 0,
            p50Ms: 3,
            p99Ms: 14,
            byRelease: { v1: { requests: 700, failed: 0 }, v2: { requests: 220, failed: 0 } },
            dropped: 0,
        };
        const out = `12:00:01.000 step 3/3 (100%)\n12:00:02.000 activate v2 done in 9.1s (health 1.0s, shift 6.0s, drain 0.1s); this deploy: 920 requests\n${formatAgentMessage({ type: "result", ok: true, command: "activate", version: "v2", traffic })}\n`;
        assert.strictEqual(deploySummary(out), "this deploy: 920 requests, 0 failed (v1 700; v2 220), p50 3 ms, p99 14 ms");
        // A line that reads like the figures is not the agent's result.
        assert.match(deploySummary("this deploy: 1 requests, 0 failed (v1 1), p50 1 ms, p99 1 ms\n"), /^no deploy figures/);
        assert.match(
            deploySummary(`${formatAgentMessage({ type: "result", ok: true, command: "activate", version: "v2", noop: true })}\n`),
            /^no deploy figures/,
        );
        assert.match(deploySummary(undefined), /^no deploy figures/);
    });

    it("stages files under hidden names, which NGINX's sites-enabled/* glob skips", () => {
        assert.strictEqual(stagedPath("/etc/nginx/sites-enabled/shop.conf"), "/etc/nginx/sites-enabled/.shop.conf.slotshift-new");
        assert.strictEqual(stagedPath("/etc/nginx/sites-enabled/shop.conf", "slotshift-old"), "/etc/nginx/sites-enabled/.shop.conf.slotshift-old");
    });

    it("uploads artifacts and the agent into the SSH user's home unless it is root", () => {
        const layout = hostLayout("shop");
        assert.strictEqual(artifactUploadPath("root", layout, "1.0"), "/srv/shop/deploy/artifacts/1.0.tar.gz");
        assert.strictEqual(artifactUploadPath("admin", layout, "1.0"), ".slotshift-shop-1.0.tar.gz");
        assert.strictEqual(agentStagingPath(layout), ".slotshift-shop-agent.js");
        const sha256 = "0".repeat(64);
        const https = prepareCommand("admin", layout, {
            version: "1.0",
            sha256,
            uploaded: false,
            download: { releaseDownloadMaxMiB: 100, releaseDownloadTimeout: 60 },
        });
        // The URL (perhaps presigned) is not on the command line: it comes on stdin.
        assert.match(
            https,
            new RegExp(
                `^sudo -n node .* prepare --config \\S+ --version 1\\.0 --source-stdin --sha256 ${sha256} --release-download-max-mib 100 --release-download-timeout 60$`,
            ),
        );
        const uploaded = prepareCommand("root", layout, { version: "1.0", sha256, uploaded: true });
        assert.match(uploaded, new RegExp(`prepare --config \\S+ --version 1\\.0 --source /srv/shop/deploy/artifacts/1\\.0\\.tar\\.gz --sha256 ${sha256}$`));
    });
});

describe("stageFileScript", () => {
    it("writes content byte for byte, with no shell expansion", () => {
        const dir = tempDir("stage");
        const target = path.join(dir, "f.conf");
        const content = "a $HOME `id` $(id) \\ \"q\" 's'\nEOF\n";
        execFileSync("bash", ["-c", stageFileScript(target, content, "0640")]);
        const staged = stagedPath(target);
        assert.strictEqual(fs.readFileSync(staged, "utf8"), content);
        assert.strictEqual(fs.statSync(staged).mode & 0o777, 0o640);
        assert.ok(!fs.existsSync(target), "only staged; the caller swaps it in");
    });
});

describe("image choice", () => {
    it("maps Graviton instance types to arm64 and the rest to x86_64", () => {
        for (const t of ["t4g.small", "m7g.large", "c7gn.xlarge", "r6gd.large", "x2gd.medium", "im4gn.large", "g5g.xlarge"])
            assert.strictEqual(instanceArchitecture(t), "arm64", t);
        for (const t of ["t3.small", "t3a.micro", "m7i-flex.large", "g5.xlarge", "c6in.large", "inf2.xlarge"])
            assert.strictEqual(instanceArchitecture(t), "x86_64", t);
    });

    it("names the official image families", () => {
        assert.strictEqual(amiNamePattern("debian", "x86_64", "26.05"), "debian-12-amd64-*");
        assert.strictEqual(amiNamePattern("debian", "arm64", "26.05"), "debian-12-arm64-*");
        assert.strictEqual(amiNamePattern("nixos", "x86_64", "26.05"), "nixos/26.05*-x86_64-linux");
    });
});

describe("NixOS apply script", () => {
    const AMI_CONFIG = '{ modulesPath, ... }:\n{\n  imports = [ "${modulesPath}/virtualisation/amazon-image.nix" ];\n}\n';

    // The stand-in switch creates the deploy directory, as the module's tmpfiles rules do.
    function apply(etcDir: string, module: string, agentJson = '{ "appName": "shop" }\n') {
        const log = path.join(etcDir, "rebuilds");
        const deployDir = path.join(etcDir, "deploy");
        const rebuild = `echo switched >> ${shellQuote(log)} && mkdir -p -m 0700 ${shellQuote(deployDir)}`;
        const agentConfig = { path: path.join(deployDir, "agent.json"), content: agentJson };
        const script = renderNixosApplyScript("shop", module, agentConfig, { etcDir, rebuild });
        return { ...spawnSync("bash", ["-s"], { input: script, encoding: "utf8" }), agentConfig: agentConfig.path };
    }

    it("installs the module, imports it exactly once, and switches every time", () => {
        const etc = tempDir("nixos");
        fs.writeFileSync(path.join(etc, "configuration.nix"), AMI_CONFIG);
        for (const module of ["{ ... }: { }\n", "{ ... }: { services.haproxy.enable = true; }\n"]) {
            const r = apply(etc, module);
            assert.strictEqual(r.status, 0, r.stderr);
            assert.strictEqual(fs.readFileSync(nixosModulePath("shop", etc), "utf8"), module);
        }
        const cfg = fs.readFileSync(path.join(etc, "configuration.nix"), "utf8");
        assert.strictEqual(cfg.split("./slotshift-shop.nix").length - 1, 1, cfg);
        assert.match(cfg, /imports = \[ \.\/slotshift-shop\.nix "\$\{modulesPath\}\/virtualisation\/amazon-image\.nix" \];/);
        assert.strictEqual(fs.readFileSync(path.join(etc, "rebuilds"), "utf8"), "switched\nswitched\n");
        if (spawnSync("sh", ["-c", "command -v nix-instantiate"]).status === 0) {
            assert.strictEqual(spawnSync("nix-instantiate", ["--parse", path.join(etc, "configuration.nix")]).status, 0, "still valid Nix");
        }
    });

    it("writes the agent's settings after the switch, 0600, outside the module; rewrites them only when they change", () => {
        const etc = tempDir("nixos");
        fs.writeFileSync(path.join(etc, "configuration.nix"), AMI_CONFIG);
        const settings = '{\n  "appName": "shop",\n  "smokePaths": [\n    "/"\n  ]\n}\n';
        const first = apply(etc, "{ ... }: { }\n", settings);
        assert.strictEqual(first.status, 0, first.stderr);
        assert.strictEqual(fs.readFileSync(first.agentConfig, "utf8"), settings);
        assert.strictEqual(fs.statSync(first.agentConfig).mode & 0o777, 0o600);
        assert.ok(!fs.readFileSync(nixosModulePath("shop", etc), "utf8").includes("smokePaths"));
        const inode = fs.statSync(first.agentConfig).ino;
        fs.chmodSync(first.agentConfig, 0o644);
        assert.strictEqual(apply(etc, "{ ... }: { }\n", settings).status, 0);
        assert.strictEqual(fs.statSync(first.agentConfig).ino, inode, "an unchanged file was replaced");
        assert.strictEqual(fs.statSync(first.agentConfig).mode & 0o777, 0o600, "mode not enforced");
        const changed = settings.replace('"/"', '"/healthz"');
        assert.strictEqual(apply(etc, "{ ... }: { }\n", changed).status, 0);
        assert.strictEqual(fs.readFileSync(first.agentConfig, "utf8"), changed);
        assert.deepStrictEqual(fs.readdirSync(path.dirname(first.agentConfig)), ["agent.json"], "staged copies left behind");
    });

    it("stops, without switching, when configuration.nix has no imports list", () => {
        const etc = tempDir("nixos");
        fs.writeFileSync(path.join(etc, "configuration.nix"), '{ ... }: { networking.hostName = "x"; }\n');
        const r = apply(etc, "{ ... }: { }\n");
        assert.notStrictEqual(r.status, 0);
        assert.match(r.stderr, /has no 'imports = \[' list to add \.\/slotshift-shop\.nix to/);
        assert.ok(!fs.existsSync(path.join(etc, "rebuilds")));
    });
});

describe("proxy apply script", () => {
    // Stand-ins for the tools the script calls, logging each call; failures are switched on by
    // files in the sandbox (haproxy-fail, nginx-fail), service state lives in <name>.active.
    const TOOLS: Record<string, string> = {
        haproxy: 'echo "haproxy $*" >> "$SANDBOX/calls"; [ ! -e "$SANDBOX/haproxy-fail" ]',
        nginx: 'echo "nginx $*" >> "$SANDBOX/calls"; [ ! -e "$SANDBOX/nginx-fail" ]',
        node: 'echo "node $*" >> "$SANDBOX/calls"',
        certbot: 'echo "certbot $*" >> "$SANDBOX/calls"; mkdir -p "$(dirname "$CERT")"; echo cert > "$CERT"',
        systemctl: [
            'echo "systemctl $*" >> "$SANDBOX/calls"',
            'case "$1" in',
            '  is-active) [ -e "$SANDBOX/$3.active" ] ;;',
            '  start) touch "$SANDBOX/$2.active" ;;',
            '  reload) [ -e "$SANDBOX/$2.active" ] ;;',
            "esac",
        ].join("\n"),
    };

    function sandbox(): { dir: string; env: NodeJS.ProcessEnv } {
        const dir = tempDir("proxy");
        const bin = path.join(dir, "bin");
        fs.mkdirSync(bin);
        for (const [name, body] of Object.entries(TOOLS)) fs.writeFileSync(path.join(bin, name), `#!/bin/bash\n${body}\n`, { mode: 0o755 });
        for (const d of ["etc/haproxy", "etc/nginx/sites-enabled", "var/www"]) fs.mkdirSync(path.join(dir, "root", d), { recursive: true });
        return { dir, env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, SANDBOX: dir } };
    }

    function context(dir: string, extra: Partial<TemplateInputs> = {}): TemplateContext {
        return buildTemplateContext({
            appName: "shop",
            domain: "shop.example.com",
            healthPath: "/healthz",
            startCommand: "gunicorn --bind 127.0.0.1:$PORT",
            tlsMode: "self-signed",
            slotBasePort: 8001,
            haproxyPort: 8080,
            httpPort: 80,
            httpsPort: 443,
            root: path.join(dir, "root"),
            ...extra,
        });
    }

    function apply(sb: { dir: string; env: NodeJS.ProcessEnv }, ctx: TemplateContext, flavour: "debian" | "nixos" = "debian") {
        fs.writeFileSync(path.join(sb.dir, "calls"), "");
        const r = spawnSync("bash", ["-s"], { input: renderProxyApplyScript(ctx, flavour), encoding: "utf8", env: { ...sb.env, CERT: ctx.tls.certFile } });
        return { ...r, calls: fs.readFileSync(path.join(sb.dir, "calls"), "utf8").trim().split("\n").filter(Boolean) };
    }

    function leftovers(ctx: TemplateContext): string[] {
        const dirs = [ctx.layout.haproxyConfigFile, ctx.layout.nginxSiteFile, `${ctx.layout.maintenanceDir}/x`].map(path.dirname);
        return dirs.flatMap((d) => fs.readdirSync(d).filter((f) => f.includes("slotshift-")));
    }

    it("first run: writes all three files, checks them, and starts both services", () => {
        const sb = sandbox();
        const ctx = context(sb.dir);
        const r = apply(sb, ctx);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.match(fs.readFileSync(ctx.layout.haproxyConfigFile, "utf8"), /backend app/);
        assert.match(fs.readFileSync(ctx.layout.nginxSiteFile, "utf8"), /server_name shop\.example\.com/);
        assert.match(fs.readFileSync(`${ctx.layout.maintenanceDir}/maintenance.html`, "utf8"), /Back shortly/);
        assert.deepStrictEqual(r.calls, [
            `haproxy -c -q -f ${stagedPath(ctx.layout.haproxyConfigFile)}`,
            "systemctl is-active --quiet haproxy",
            "systemctl start haproxy",
            "nginx -t -q",
            "systemctl is-active --quiet nginx",
            "systemctl start nginx",
        ]);
        assert.deepStrictEqual(leftovers(ctx), []);
    });

    it("an unchanged run reloads nothing", () => {
        const sb = sandbox();
        const ctx = context(sb.dir);
        apply(sb, ctx);
        const r = apply(sb, ctx);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.ok(!r.calls.some((c) => /reload|start|node/.test(c) && !c.includes("is-active")), r.calls.join("\n"));
        assert.deepStrictEqual(leftovers(ctx), []);
    });

    it("a changed haproxy.cfg goes through the agent's reload-proxy (runtime weights saved first)", () => {
        const sb = sandbox();
        apply(sb, context(sb.dir));
        const ctx = context(sb.dir, { slotBasePort: 9001 });
        const r = apply(sb, ctx);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.ok(r.calls.includes(`node ${ctx.layout.agentPath} reload-proxy --config ${ctx.layout.agentConfigPath}`), r.calls.join("\n"));
        assert.ok(!r.calls.includes("systemctl reload haproxy"), "never a bare reload that would lose the weights");
        assert.match(fs.readFileSync(ctx.layout.haproxyConfigFile, "utf8"), /server green 127\.0\.0\.1:9002 /);
    });

    it("a changed healthPath or domain leaves haproxy.cfg and the health maps alone: running slots keep their own checks", () => {
        const sb = sandbox();
        const first = context(sb.dir);
        apply(sb, first);
        assert.strictEqual(fs.readFileSync(first.layout.haproxyHealthPathMap, "utf8"), "blue /healthz\ngreen /healthz\n");
        const maps = () => [first.layout.haproxyHealthPathMap, first.layout.haproxyHealthHostMap].map((f) => fs.readFileSync(f, "utf8"));
        const before = maps();
        const r = apply(sb, context(sb.dir, { healthPath: "/ready" }));
        assert.strictEqual(r.status, 0, r.stderr);
        assert.ok(!r.calls.some((c) => /reload-proxy/.test(c)), `a healthPath change alone reloads nothing:\n${r.calls.join("\n")}`);
        // A new domain changes the maintenance page (a reload), never the checks.
        assert.strictEqual(apply(sb, context(sb.dir, { healthPath: "/ready", domain: "other.example.com" })).status, 0);
        assert.deepStrictEqual(maps(), before, "the agent owns the maps once they exist");
    });

    it("a changed maintenance page alone reloads HAProxy too (it is HAProxy's own 503, read at load)", () => {
        const sb = sandbox();
        const ctx = context(sb.dir);
        apply(sb, ctx);
        fs.writeFileSync(ctx.layout.maintenancePage, "<p>the page of an older program version</p>\n");
        const r = apply(sb, ctx);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.ok(r.calls.includes(`node ${ctx.layout.agentPath} reload-proxy --config ${ctx.layout.agentConfigPath}`), r.calls.join("\n"));
        assert.match(fs.readFileSync(ctx.layout.maintenancePage, "utf8"), /Back shortly/);
    });

    it("an invalid haproxy.cfg never replaces the live one", () => {
        const sb = sandbox();
        const ctx = context(sb.dir);
        apply(sb, ctx);
        const before = fs.readFileSync(ctx.layout.haproxyConfigFile, "utf8");
        fs.writeFileSync(path.join(sb.dir, "haproxy-fail"), "");
        const r = apply(sb, context(sb.dir, { healthPath: "/ready" }));
        assert.notStrictEqual(r.status, 0);
        assert.strictEqual(fs.readFileSync(ctx.layout.haproxyConfigFile, "utf8"), before);
        assert.ok(!r.calls.some((c) => c.startsWith("node ")));
        assert.deepStrictEqual(leftovers(ctx), []);
    });

    it("a changed NGINX site is checked and reloaded gracefully", () => {
        const sb = sandbox();
        apply(sb, context(sb.dir));
        const r = apply(sb, context(sb.dir, { domain: "www.example.com" }));
        assert.strictEqual(r.status, 0, r.stderr);
        assert.deepStrictEqual(r.calls.slice(-3), ["nginx -t -q", "systemctl is-active --quiet nginx", "systemctl reload nginx"]);
    });

    it("a NGINX site that fails the check is rolled back to the previous one", () => {
        const sb = sandbox();
        const ctx = context(sb.dir);
        apply(sb, ctx);
        const before = fs.readFileSync(ctx.layout.nginxSiteFile, "utf8");
        fs.writeFileSync(path.join(sb.dir, "nginx-fail"), "");
        const r = apply(sb, context(sb.dir, { domain: "www.example.com" }));
        assert.notStrictEqual(r.status, 0);
        assert.match(r.stderr, /the new NGINX site for shop failed its check; the previous one was restored/);
        assert.strictEqual(fs.readFileSync(ctx.layout.nginxSiteFile, "utf8"), before);
        assert.ok(!r.calls.includes("systemctl reload nginx"));
        assert.deepStrictEqual(leftovers(ctx), []);
    });

    it("on NixOS leaves the check to `systemctl reload nginx` (its reload checks first)", () => {
        const sb = sandbox();
        const r = apply(sb, context(sb.dir), "nixos");
        assert.strictEqual(r.status, 0, r.stderr);
        assert.ok(!r.calls.includes("nginx -t -q"));
    });

    it("ACME on NixOS: orders the first certificate through the acme module once the site is written, not with certbot", () => {
        const sb = sandbox();
        const ctx = context(sb.dir, { tlsMode: "acme", acmeEmail: "ops@example.com", osFlavour: "nixos" });
        const r = apply(sb, ctx, "nixos");
        assert.strictEqual(r.status, 0, r.stderr);
        assert.ok(!r.calls.some((c) => c.startsWith("certbot ")), r.calls.join("\n"));
        const order = r.calls.indexOf("systemctl start acme-order-renew-shop.example.com.service");
        assert.ok(order >= 0, r.calls.join("\n"));
        assert.ok(r.calls.slice(0, order).includes("systemctl start nginx"), "the site answers the challenge before the order");
        assert.match(fs.readFileSync(ctx.layout.nginxSiteFile, "utf8"), new RegExp(`root ${ctx.layout.nixosAcmeWebroot};`));
        // Once the module has seen a certificate, the next run leaves renewals to its timer.
        fs.mkdirSync(path.join(ctx.layout.nixosAcmeDir, "shop.example.com"), { recursive: true });
        fs.writeFileSync(path.join(ctx.layout.nixosAcmeDir, "shop.example.com", "acme-success"), "");
        assert.ok(!apply(sb, ctx, "nixos").calls.some((c) => c.includes("acme-order-renew")));
    });

    it("ACME: gets the first certificate through a port-80 site, then writes the full site", () => {
        const sb = sandbox();
        const ctx = context(sb.dir, { tlsMode: "acme", acmeEmail: "ops@example.com" });
        const r = apply(sb, ctx);
        assert.strictEqual(r.status, 0, r.stderr);
        const certbot = r.calls.findIndex((c) => c.startsWith("certbot "));
        assert.ok(certbot > 0, r.calls.join("\n"));
        assert.strictEqual(
            r.calls[certbot],
            `certbot certonly --webroot -w ${ctx.tls.acmeWebroot} -d shop.example.com -m ops@example.com --agree-tos -n --keep-until-expiring --deploy-hook systemctl reload nginx`,
        );
        assert.ok(r.calls.slice(0, certbot).includes("systemctl start nginx"), "the challenge site is up before certbot runs");
        assert.match(fs.readFileSync(ctx.layout.nginxSiteFile, "utf8"), /ssl_certificate /);
        // With the certificate in place, the next run does not ask again.
        assert.ok(!apply(sb, ctx).calls.some((c) => c.startsWith("certbot ")));
        assert.match(renderAcmeBootstrapSite(ctx), /location \/\.well-known\/acme-challenge\/ \{ root /);
    });
});
