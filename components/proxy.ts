// Proxy: haproxy.cfg, the NGINX site and the maintenance page, applied without dropping a
// connection. Each file is staged beside its target, checked, and renamed into place only when it
// changed; HAProxy is reloaded through the agent (runtime weights saved first), NGINX with a
// graceful reload; a bad NGINX site is rolled back before it can take the server down.
import * as pulumi from "@pulumi/pulumi";
import { renderProxyFiles } from "../program/host-files";
import { nixosAcmeSuccessMarker } from "../lib/host-layout";
import { TemplateContext } from "../program/template-context";
import { agentCommand, asRoot, HostHandle, shellQuote, stagedPath, stageFileScript } from "./remote";
import { SshCommand } from "./ssh/ssh-command";

export interface ProxyArgs {
    host: HostHandle;
    osFlavour: "debian" | "nixos";
    context: TemplateContext;
}

/** Minimal port-80 site that answers ACME challenges until the first certificate exists. */
export function acmeBootstrapSite(ctx: TemplateContext): string {
    return [
        "# Temporary: answers ACME challenges until the first certificate is issued.",
        "server {",
        `    listen ${ctx.ports.http};`,
        `    server_name ${ctx.domain};`,
        `    location /.well-known/acme-challenge/ { root ${ctx.tls.acmeWebroot}; }`,
        "    location / { return 503; }",
        "}",
        "",
    ].join("\n");
}

/** Root bash (fed on stdin) that applies the proxy files. Exported for tests. */
export function proxyApplyScript(ctx: TemplateContext, osFlavour: "debian" | "nixos"): string {
    const files = renderProxyFiles(ctx);
    const L = ctx.layout;
    const q = shellQuote;
    const maintenancePage = L.maintenancePage;
    const swapIn = (target: string) => `swap_in ${q(stagedPath(target))} ${q(target)}`;
    const siteBackup = stagedPath(L.nginxSiteFile, "slotshift-old");
    // Debian's `systemctl reload nginx` signals without checking (a bad file is only logged), so
    // check first; NixOS's reload checks by itself and fails, and `nginx -t` there lacks its -c.
    const nginxCheck = osFlavour === "debian" ? "nginx -t -q" : "true";
    const lines = [
        "set -euo pipefail",
        "umask 022",
        `trap ${q(`rm -f ${[L.haproxyConfigFile, L.nginxSiteFile, L.nginxLiveSlotFile, maintenancePage].map((p) => q(stagedPath(p))).join(" ")}`)} EXIT`,
        "log() { printf 'proxy: %s\\n' \"$*\"; }",
        // swap_in STAGED TARGET: renames the staged copy over the target when they differ;
        // returns 1 (and drops the copy) when nothing changed.
        'swap_in() { if [ -f "$2" ] && cmp -s "$1" "$2"; then rm -f "$1"; return 1; fi; mv -f "$1" "$2"; log "wrote $2"; }',
        "nginx_apply() {",
        `    ${nginxCheck} || return 1`,
        "    if systemctl is-active --quiet nginx; then systemctl reload nginx; else systemctl start nginx; fi",
        "}",
        "",
        "# Maintenance page first: NGINX serves it whenever HAProxy cannot answer, and haproxy.cfg",
        "# reads it (HAProxy's own 503), so a new page is a HAProxy reload too.",
        `install -d -m 0755 ${q(L.maintenanceDir)}`,
        stageFileScript(maintenancePage, files.maintenancePage, "0644"),
        "haproxy_changed=no",
        `if ${swapIn(maintenancePage)}; then haproxy_changed=yes; fi`,
        "",
        "# HAProxy's health maps: the agent owns them once a slot was started (each slot is checked",
        "# as its activation asked); a new host starts with the configured path and Host.",
        ...[
            [L.haproxyHealthPathMap, files.healthMapsPlaceholder.paths],
            [L.haproxyHealthHostMap, files.healthMapsPlaceholder.hosts],
        ].map(([file, content]) => `[ -e ${q(file)} ] || printf %s ${q(content)} > ${q(file)}`),
        "# HAProxy: the candidate is checked before it replaces the live file.",
        stageFileScript(L.haproxyConfigFile, files.haproxyCfg, "0644"),
        `haproxy -c -q -f ${q(stagedPath(L.haproxyConfigFile))}`,
        `if ${swapIn(L.haproxyConfigFile)}; then haproxy_changed=yes; fi`,
        'if [ "$haproxy_changed" = yes ]; then',
        "    if systemctl is-active --quiet haproxy; then",
        `        ${agentCommand(L, "reload-proxy", {})}`,
        "    else",
        "        systemctl start haproxy",
        "    fi",
        "elif ! systemctl is-active --quiet haproxy; then",
        "    systemctl start haproxy",
        "fi",
        "",
    ];
    // NixOS's own ACME module issues and renews there (with a placeholder until then); on Debian
    // the setup script installs certbot and this step asks for the first certificate.
    if (ctx.tls.mode === "acme" && osFlavour === "debian") {
        lines.push(
            "# ACME: the full site needs a certificate; get the first one through a port-80-only site.",
            `if [ ! -s ${q(ctx.tls.certFile)} ]; then`,
            `    install -d -m 0755 ${q(ctx.tls.acmeWebroot)}`,
            stageFileScript(L.nginxSiteFile, acmeBootstrapSite(ctx), "0644"),
            `    ${swapIn(L.nginxSiteFile)} || true`,
            "    nginx_apply",
            `    certbot certonly --webroot -w ${q(ctx.tls.acmeWebroot)} -d ${q(ctx.domain)} -m ${q(ctx.tls.acmeEmail)} --agree-tos -n --keep-until-expiring --deploy-hook 'systemctl reload nginx'`,
            "fi",
            "",
        );
    }
    lines.push(
        "# The site's backup upstream (the live slot, written by the agent at every commit): a",
        "# placeholder only while the file does not exist yet.",
        stageFileScript(L.nginxLiveSlotFile, files.nginxLiveSlotPlaceholder, "0644"),
        `if [ -e ${q(L.nginxLiveSlotFile)} ]; then rm -f ${q(stagedPath(L.nginxLiveSlotFile))}; else mv -f ${q(stagedPath(L.nginxLiveSlotFile))} ${q(L.nginxLiveSlotFile)}; fi`,
        "",
        "# NGINX: a site that fails the check is replaced by the previous one again.",
        stageFileScript(L.nginxSiteFile, files.nginxSite, "0644"),
        `if [ -f ${q(L.nginxSiteFile)} ]; then cp -p ${q(L.nginxSiteFile)} ${q(siteBackup)}; fi`,
        `if ${swapIn(L.nginxSiteFile)}; then`,
        "    if ! nginx_apply; then",
        `        if [ -f ${q(siteBackup)} ]; then mv -f ${q(siteBackup)} ${q(L.nginxSiteFile)}; else rm -f ${q(L.nginxSiteFile)}; fi`,
        "        nginx_apply || true",
        `        echo "error: the new NGINX site for ${ctx.app.name} failed its check; the previous one was restored" >&2`,
        "        exit 1",
        "    fi",
        "elif ! systemctl is-active --quiet nginx; then",
        "    nginx_apply",
        "fi",
        `rm -f ${q(siteBackup)}`,
        "",
    );
    // NixOS's acme module serves a placeholder certificate until the first order succeeds; the
    // module holds the order back until the site that answers its challenge exists (this one).
    if (ctx.tls.mode === "acme" && osFlavour === "nixos") {
        const orderUnit = `acme-order-renew-${ctx.domain}.service`;
        lines.push(
            "# ACME: the site answers HTTP-01 challenges now; order the first certificate.",
            `if [ ! -e ${q(nixosAcmeSuccessMarker(L, ctx.domain))} ]; then`,
            `    systemctl start ${q(orderUnit)} || { echo ${q(`error: the first ACME order for ${ctx.domain} failed (DNS, port ${ctx.ports.http}?); see journalctl -u ${orderUnit}`)} >&2; exit 1; }`,
            "fi",
            "",
        );
    }
    return lines.join("\n");
}

export class Proxy extends pulumi.ComponentResource {
    readonly apply: SshCommand;

    constructor(name: string, args: ProxyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("slotshift:proxy:Proxy", name, {}, opts);
        this.apply = new SshCommand(
            `${name}-apply`,
            {
                connection: args.host.connection,
                create: asRoot(args.host.sshUser, "bash -s"),
                stdin: proxyApplyScript(args.context, args.osFlavour),
                triggers: [args.host.hostId],
                logging: "stdoutAndStderr",
            },
            { parent: this, dependsOn: opts?.dependsOn },
        );
        this.registerOutputs({});
    }
}
