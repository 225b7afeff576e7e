// haproxy.cfg and the NGINX site as deployed (system services), checked by haproxy -c and nginx -t.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { renderProxyFiles } from "../../program/host-files";
import { TemplateContext } from "../../program/template-context";
import { CASES, contextFor, requireTools, run, tempDir, writeFile } from "./helpers";

/** A throwaway self-signed pair where the site expects its certificate (certbot's path for ACME). */
function makeCert(ctx: TemplateContext): void {
    fs.mkdirSync(path.dirname(ctx.tls.certFile), { recursive: true });
    const r = run("openssl", [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        `/CN=${ctx.domain}`,
        "-keyout",
        ctx.tls.keyFile,
        "-out",
        ctx.tls.certFile,
    ]);
    assert.strictEqual(r.status, 0, r.stderr);
}

/** Runs `nginx -t` on the site inside a minimal nginx.conf whose pid, logs and temp paths are in root. */
function nginxTest(root: string, site: string): { status: number | null; output: string } {
    const siteFile = writeFile(path.join(root, "nginx", "site.conf"), site);
    const t = (name: string) => path.join(root, "nginx", name);
    const conf = writeFile(
        t("nginx.conf"),
        [
            `pid ${t("nginx.pid")};`,
            `error_log ${t("error.log")};`,
            "events {}",
            "http {",
            `    access_log ${t("access.log")};`,
            `    client_body_temp_path ${t("client_body")};`,
            `    proxy_temp_path ${t("proxy")};`,
            `    fastcgi_temp_path ${t("fastcgi")};`,
            `    uwsgi_temp_path ${t("uwsgi")};`,
            `    scgi_temp_path ${t("scgi")};`,
            `    include ${siteFile};`,
            "}",
            "",
        ].join("\n"),
    );
    const r = run("nginx", ["-t", "-p", t(""), "-e", t("error.log"), "-c", conf]);
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe("proxy configs (haproxy.cfg, NGINX site)", () => {
    before(() => requireTools("haproxy", "nginx", "openssl"));

    for (const c of CASES) {
        describe(c.name, () => {
            it("haproxy -c accepts haproxy.cfg", () => {
                const root = tempDir("haproxy");
                const ctx = contextFor(c.inputs, root);
                fs.mkdirSync(path.dirname(ctx.layout.haproxySocket), { recursive: true });
                fs.mkdirSync(path.dirname(ctx.layout.haproxyStateFile), { recursive: true });
                // haproxy.cfg reads the maintenance page (its own 503); the proxy step writes it first.
                writeFile(ctx.layout.maintenancePage, renderProxyFiles(ctx).maintenancePage);
                // ...and the health maps its checks read (the proxy step creates them when missing).
                writeFile(ctx.layout.haproxyHealthPathMap, renderProxyFiles(ctx).healthMapsPlaceholder.paths);
                writeFile(ctx.layout.haproxyHealthHostMap, renderProxyFiles(ctx).healthMapsPlaceholder.hosts);
                const cfg = writeFile(ctx.layout.haproxyConfigFile, renderProxyFiles(ctx).haproxyCfg);
                const r = run("haproxy", ["-c", "-f", cfg]);
                assert.strictEqual(r.status, 0, `${r.stdout}${r.stderr}`);
            });

            it("nginx -t accepts the site", () => {
                const root = tempDir("nginx");
                const ctx = contextFor(c.inputs, root);
                makeCert(ctx);
                const files = renderProxyFiles(ctx);
                // The site's upstream includes the live-slot file; the proxy step writes its placeholder first.
                writeFile(ctx.layout.nginxLiveSlotFile, files.nginxLiveSlotPlaceholder);
                const r = nginxTest(root, files.nginxSite);
                assert.strictEqual(r.status, 0, r.output);
                assert.match(r.output, /test is successful/);
            });
        });
    }

    it("nginx -t fails when the certificate is missing (the check is real)", () => {
        const root = tempDir("nginx-nocert");
        const ctx = contextFor({}, root);
        assert.notStrictEqual(nginxTest(root, renderProxyFiles(ctx).nginxSite).status, 0);
    });
});
