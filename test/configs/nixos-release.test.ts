// The NixOS module against the one release it targets: every unit it names exists there, no
// end-of-life package, nothing private in the world-readable /nix/store, and a `nixos-rebuild
// switch` that never stops or restarts what serves traffic. The unit names and options are those
// of the nixpkgs module sources listed in docs/nixos.md; a full nixpkgs evaluation only happens on
// a real NixOS host.
import * as assert from "assert";
import { settingDefault } from "../../lib/settings/table";
import { renderNixosModule, renderProxyFiles } from "../../program/host-files";
import { TemplateInputs } from "../../program/template-context";
import { amiNamePattern } from "../../components/host";
import { agentFor, APP, CASES, contextFor, requireTools } from "./helpers";
import { embeddedScripts, embeddedTexts, evaluateModule, Evaluated, EvaluatedService, STUB_RELEASE } from "./nixos-eval";

/**
 * Units the target release defines, beside the ones the module declares in full itself.
 * Derived from the nixpkgs sources named in docs/nixos.md.
 */
function releaseUnits(certNames: string[]): Set<string> {
    return new Set([
        // systemd.special(7) and NixOS's boot: always there.
        "multi-user.target",
        "network.target",
        "network-online.target",
        "nss-lookup.target",
        "timers.target",
        "systemd-tmpfiles-setup.service",
        // nixos/modules/security/acme/default.nix: acme-setup, then per cert acme-<cert>
        // (placeholder), acme-order-renew-<cert> (lego) and the timer acme-renew-<cert>.
        ...(certNames.length > 0 ? ["acme-setup.service"] : []),
        ...certNames.flatMap((cert) => [`acme-${cert}.service`, `acme-order-renew-${cert}.service`, `acme-renew-${cert}.timer`]),
        // nixos/modules/services/web-servers/nginx/default.nix
        "nginx.service",
        "nginx-config-reload.service",
        // nixos/modules/services/databases/postgresql.nix: the target means "ensure* scripts done".
        "postgresql.service",
        "postgresql.target",
        // nixos/modules/services/networking/ssh/sshd.nix
        "sshd.service",
    ]);
}

/** Package attributes that are end of life (and refused or removed) in the target release. */
const END_OF_LIFE_PACKAGES = [
    "nodejs_14",
    "nodejs_16",
    "nodejs_18",
    "nodejs_20",
    "nodejs-18_x",
    "nodejs-20_x",
    "nodejs_latest",
    "python38",
    "python39",
    "postgresql_12",
    "postgresql_13",
];

/** Unit dependency and ordering options of systemd.services.<name> (nixos/lib/systemd-unit-options.nix). */
const UNIT_LIST_OPTIONS = [
    "after",
    "before",
    "wants",
    "requires",
    "wantedBy",
    "requiredBy",
    "upholds",
    "upheldBy",
    "bindsTo",
    "partOf",
    "conflicts",
    "onFailure",
    "onSuccess",
];

function render(inputs: Partial<TemplateInputs>): string {
    return renderNixosModule(contextFor({ ...inputs, osFlavour: "nixos" }));
}

/** A service the module declares in full (it runs something), rather than amending nixpkgs' unit. */
function declaresInFull(service: EvaluatedService): boolean {
    return service.serviceConfig?.ExecStart !== undefined || typeof service.script === "string";
}

/** Every unit name the module refers to, with where. */
function referencedUnits(m: Evaluated): { unit: string; where: string }[] {
    const out: { unit: string; where: string }[] = [];
    for (const [name, service] of Object.entries(m.systemd.services)) {
        for (const option of UNIT_LIST_OPTIONS) {
            for (const unit of (service[option] as string[] | undefined) ?? []) out.push({ unit, where: `systemd.services.${name}.${option}` });
        }
    }
    for (const [cert, settings] of Object.entries(m.security?.acme?.certs ?? {})) {
        for (const unit of (settings.reloadServices as string[] | undefined) ?? []) out.push({ unit, where: `security.acme.certs.${cert}.reloadServices` });
    }
    return out;
}

describe("NixOS module against its target release", () => {
    before(() => requireTools("nix-instantiate"));

    it("targets the release stack config defaults to and the AMI lookup uses", () => {
        const module = render({});
        const target = /^\s*targetRelease = "(\d{2}\.\d{2})";$/m.exec(module)?.[1];
        assert.ok(target, "the module names no targetRelease");
        // Pulumi.yaml's default is held to the schema's by the unit tests.
        const defaultRelease = settingDefault("nixosRelease");
        assert.strictEqual(defaultRelease, target);
        assert.strictEqual(amiNamePattern("nixos", "x86_64", defaultRelease), `nixos/${target}*-x86_64-linux`);
        assert.strictEqual(STUB_RELEASE, target, "the stand-in config reports another release");
    });

    it("refuses to build on an older NixOS, whose acme and postgresql units have other names", () => {
        const failing = (release: string) => (evaluateModule(render({}), release).assertions ?? []).filter((a) => !a.assertion).map((a) => a.message);
        assert.deepStrictEqual(failing(STUB_RELEASE), []);
        assert.deepStrictEqual(failing("26.11"), []);
        const old = failing("25.05");
        assert.strictEqual(old.length, 1, old.join("\n"));
        assert.match(old[0], /NixOS 26\.05 or newer/);
    });

    for (const c of CASES) {
        describe(c.name, () => {
            const ctx = contextFor({ ...c.inputs, osFlavour: "nixos" });
            const module = render(c.inputs);
            let m: Evaluated;
            before(() => {
                m = evaluateModule(module);
            });

            it("names only units the target release defines or the module declares", () => {
                const certs = Object.keys(m.security?.acme?.certs ?? {});
                const known = releaseUnits(certs);
                const declared = new Set<string>();
                for (const [name, service] of Object.entries(m.systemd.services)) {
                    if (declaresInFull(service)) declared.add(`${name}.service`);
                    // Amending a unit nixpkgs does not define would create a new, empty one.
                    else assert.ok(known.has(`${name}.service`), `systemd.services.${name} amends a unit the target release does not define`);
                }
                // An instance of a template the module declares (shop@blue.service of shop@) is declared too.
                const templates = [...declared].filter((d) => d.endsWith("@.service")).map((d) => d.slice(0, -".service".length));
                const instanceOfDeclared = (unit: string) => unit.endsWith(".service") && templates.some((t) => unit.startsWith(t));
                const unknown = referencedUnits(m).filter(({ unit }) => !known.has(unit) && !declared.has(unit) && !instanceOfDeclared(unit));
                assert.deepStrictEqual(unknown, []);
            });

            it("uses no end-of-life package attribute", () => {
                const used = [...module.matchAll(/\bpkgs\.([A-Za-z0-9_-]+)/g)].map((x) => x[1]);
                assert.ok(used.length > 0, "no package attribute found");
                assert.deepStrictEqual(
                    used.filter((name) => END_OF_LIFE_PACKAGES.includes(name)),
                    [],
                );
            });

            it("never restarts or stops a slot on a switch; only the agent starts slots", () => {
                const slot = m.systemd.services[`${APP}@`];
                assert.strictEqual(slot.restartIfChanged, false);
                assert.strictEqual(slot.stopIfChanged, false);
                // Nothing pulls a slot in: not boot, not another unit.
                assert.deepStrictEqual(slot.wantedBy ?? [], []);
                assert.deepStrictEqual(slot.requiredBy ?? [], []);
                const pulling = referencedUnits(m).filter(({ unit, where }) => unit.startsWith(`${APP}@`) && !/\.(after|before)$/.test(where));
                assert.deepStrictEqual(pulling, []);
            });

            it("reloads HAProxy and NGINX on a switch instead of restarting them", () => {
                const haproxy = m.systemd.services.haproxy;
                assert.strictEqual(haproxy.reloadIfChanged, true);
                assert.strictEqual(haproxy.stopIfChanged, false);
                // enableReload: config changes go through nginx-config-reload; reloadIfChanged:
                // a changed nginx.service itself (a package update) is reloaded too.
                assert.strictEqual(m.services.nginx.enableReload, true);
                assert.strictEqual(m.systemd.services.nginx?.reloadIfChanged, true);
                assert.strictEqual(m.systemd.services.nginx?.stopIfChanged, false);
                // The ACME ordering sits on the acme units: on nginx.service it would be a unit
                // change that s-t-c restarts for.
                for (const option of UNIT_LIST_OPTIONS) assert.strictEqual(m.systemd.services.nginx?.[option], undefined, `systemd.services.nginx.${option}`);
            });

            it("keeps agent.json and anything private out of the /nix/store", () => {
                const agent = agentFor(c.inputs);
                const stored = [...embeddedTexts(m), ...embeddedScripts(m)];
                const json = JSON.stringify(agent, null, 2);
                for (const text of stored) {
                    assert.ok(!text.includes(json) && !text.includes(JSON.stringify(agent)), `agent settings in a store file:\n${text}`);
                    assert.ok(!/"processControl"|"smokePaths"/.test(text), `agent settings in a store file:\n${text}`);
                    assert.ok(!/BEGIN [A-Z ]*PRIVATE KEY/.test(text), `a private key in a store file:\n${text}`);
                }
                assert.ok(!module.includes('"processControl"'), "agent settings inside the module (the module itself lands in the store)");
                assert.ok(!module.includes(ctx.layout.agentConfigPath), "the module writes agent.json");
            });

            it("answers ACME challenges from a webroot the acme units can write", () => {
                if (ctx.tls.mode !== "acme") return;
                const webroot = String(m.security!.acme!.certs[ctx.domain].webroot);
                // acme-<cert>.service runs as acme with ProtectSystem=strict and ReadWritePaths
                // /var/lib/acme and /run/acme only; it creates <webroot>/.well-known/acme-challenge.
                assert.match(webroot, /^\/var\/lib\/acme\//);
                assert.ok(!m.systemd.tmpfiles.rules.some((rule) => rule.split(/\s+/)[1] === webroot), "a root-owned webroot the acme user cannot write into");
                // NGINX serves the challenge from the same directory.
                assert.match(renderProxyFiles(ctx).nginxSite, new RegExp(`location /\\.well-known/acme-challenge/ \\{\\s*root ${webroot};`));
            });

            it("has NGINX wait for the placeholder certificate and serve the challenge before the order", () => {
                if (ctx.tls.mode !== "acme") return;
                const placeholder = m.systemd.services[`acme-${ctx.domain}`];
                assert.ok(placeholder, `no ordering on acme-${ctx.domain}`);
                assert.ok((placeholder.before as string[]).includes("nginx.service"));
                assert.ok((placeholder.wantedBy as string[]).includes("nginx.service"));
                const order = m.systemd.services[`acme-order-renew-${ctx.domain}`];
                assert.ok(order, `no ordering on acme-order-renew-${ctx.domain}`);
                assert.ok((order.after as string[]).includes("nginx.service"));
                // Held back until the proxy step wrote the site that answers the challenge (it then
                // starts the order itself): an order failing during the switch fails the switch.
                assert.strictEqual(order.unitConfig?.ConditionPathExists, ctx.layout.nginxSiteFile);
            });
        });
    }
});
