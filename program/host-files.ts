// Every file the program puts on a host, rendered from templates/. The components upload these;
// the config tests check them with the real tools; the end-to-end tests copy them to a local host.
import type { AgentSettings } from "../lib/contract/agent-json";
import { renderTemplate, renderTemplateSource } from "./render";
import { agentCommandLines } from "./agent-command-lines";
import { HostLayout, NIXOS_ETC_DIR, nixosConfigurationFile, nixosModuleFileName, nixosModulePath, stagedPath } from "../lib/host-layout";
import { renderHealthMaps } from "../lib/slot-activation";
import { TemplateContext } from "./template-context";

export interface ProxyFiles {
    haproxyCfg: string;
    nginxSite: string;
    /** The site's backup upstream before anything is live (written only when the file is missing). */
    nginxLiveSlotPlaceholder: string;
    maintenancePage: string;
    /** HAProxy's health maps with the configured path and Host for both slots (written only when missing). */
    healthMapsPlaceholder: { paths: string; hosts: string };
}

export function renderProxyFiles(ctx: TemplateContext): ProxyFiles {
    return {
        haproxyCfg: renderTemplate("haproxy.cfg.njk", ctx),
        nginxSite: renderTemplate("nginx-site.conf.njk", ctx),
        nginxLiveSlotPlaceholder: renderNginxLiveSlot(ctx.app.name, null),
        maintenancePage: renderTemplate("maintenance.html.njk", ctx),
        healthMapsPlaceholder: renderHealthMaps({
            blue: { healthPath: ctx.healthPath, healthHost: ctx.domain },
            green: { healthPath: ctx.healthPath, healthHost: ctx.domain },
        }),
    };
}

/** Minimal port-80 site that answers ACME challenges until the first certificate exists (Debian). */
export function renderAcmeBootstrapSite(ctx: TemplateContext): string {
    return renderTemplate("nginx-acme-bootstrap.conf.njk", ctx);
}

/**
 * Root bash (fed on stdin) that applies the proxy files: each staged beside its target, checked,
 * and swapped in only when it changed; HAProxy reloaded through the agent, NGINX gracefully, a bad
 * NGINX site rolled back; on Debian with ACME, the first certificate first.
 */
export function renderProxyApplyScript(ctx: TemplateContext, osFlavour: "debian" | "nixos"): string {
    const L = ctx.layout;
    return renderTemplate("proxy-apply.sh.njk", {
        ...ctx,
        osFlavour,
        files: renderProxyFiles(ctx),
        acmeBootstrapSite: renderAcmeBootstrapSite(ctx),
        // Removed on exit, whatever happened: no staged copy outlives the script.
        stagedFiles: [L.haproxyConfigFile, L.nginxSiteFile, L.nginxLiveSlotFile, L.maintenancePage].map((file) => stagedPath(file)),
    });
}

/**
 * Bash that writes `content` to a hidden file beside `path` (stagedPath), no expansion at all; the
 * caller checks it and renames it over `path` (the stageFile macro of templates/stage-file.sh.njk).
 */
export function stageFileScript(path: string, content: string, mode: string): string {
    return renderTemplateSource('{% from "stage-file.sh.njk" import stageFile %}{{ stageFile(path, content, mode) }}', { path, content, mode });
}

/** NGINX's backup upstream: the slot on `port` (the live one), or none yet. */
export function renderNginxLiveSlot(appName: string, port: number | string | null): string {
    return renderTemplate("nginx-live-slot.conf.njk", { app: { name: appName }, port });
}

/** The systemd template unit <app>@.service; instances are slots (blue, green). */
export function renderSlotUnit(ctx: TemplateContext): string {
    return renderTemplate("app@.service.njk", ctx);
}

/** The dashboard's service <app>-dashboard.service (the Debian setup script embeds the same text). */
export function renderDashboardUnit(ctx: TemplateContext): string {
    return renderTemplate("dashboard.service.njk", ctx);
}

/** Idempotent bash script that prepares a Debian 12 host (packages, user, layout, units, TLS). */
export function renderDebianSetupScript(ctx: TemplateContext, agent: AgentSettings): string {
    return renderTemplate("setup-debian.sh.njk", { ...ctx, agentSettingsJson: JSON.stringify(agent, null, 2) });
}

/**
 * NixOS module declaring the same users, services, units and firewall. It carries no agent
 * settings: everything in it ends up in the world-readable /nix/store.
 */
export function renderNixosModule(ctx: TemplateContext): string {
    return renderTemplate("nixos-module.nix.njk", ctx);
}

/** <deployDir>/agent.json as the NixOS apply step writes it (the Debian script embeds the same JSON). */
export function renderAgentSettings(agent: AgentSettings): string {
    return `${JSON.stringify(agent, null, 2)}\n`;
}

/** The data volume's part of the host setup, on its own (the NixOS apply step runs it before the switch). */
export function renderDataVolumeScript(ctx: TemplateContext): string {
    return renderTemplate("data-volume.sh.njk", ctx);
}

/** Where the NixOS apply step puts things, and how it switches (tests use a temp directory and a stand-in). */
export interface NixosPaths {
    /** Default /etc/nixos. */
    etcDir?: string;
    /** The dashboard's token file, created once (as the Debian setup script does). */
    dashboardTokenFile?: string;
    /** Default `nixos-rebuild switch`. */
    rebuild?: string;
}

/** A root-only file the NixOS apply step writes after the switch. */
export interface PrivateFile {
    path: string;
    content: string;
}

/**
 * Root bash (fed on stdin) that installs the NixOS module, adds it to configuration.nix's imports
 * once, and switches; then writes the agent's settings (`agentConfig`), 0600 root, into the deploy
 * directory the switch created, replacing them only when they changed. With `dataVolumeScript`
 * (renderDataVolumeScript), the data volume is mounted first.
 */
export function renderNixosApplyScript(appName: string, module: string, agentConfig: PrivateFile, paths: NixosPaths = {}, dataVolumeScript?: string): string {
    const etcDir = paths.etcDir ?? NIXOS_ETC_DIR;
    const moduleImport = `./${nixosModuleFileName(appName)}`;
    return renderTemplate("nixos-apply.sh.njk", {
        modulePath: nixosModulePath(appName, etcDir),
        module,
        configurationFile: nixosConfigurationFile(etcDir),
        moduleImport,
        // sed: the first `imports = [` gains the import (\, / and & escaped for the replacement).
        importEdit: `0,/imports[[:space:]]*=[[:space:]]*\\[/s//imports = [ ${moduleImport.replace(/[\\/&]/g, "\\$&")}/`,
        rebuild: paths.rebuild ?? "nixos-rebuild switch",
        agentConfig,
        dashboardTokenFile: paths.dashboardTokenFile,
        dataVolumeScript,
    });
}

export interface RollbackScriptOptions {
    /** HAProxy backend of the two slots (agent.json haproxy.backend). */
    backend: string;
}

/**
 * deploy/rollback, the rollback command operators run, installed with the agent: a flip to the
 * warm previous release before any Node.js starts, else the agent's own rollback.
 */
export function renderRollbackScript(layout: HostLayout, opts: RollbackScriptOptions): string {
    return renderTemplate("rollback.sh.njk", { layout, agentCommands: agentCommandLines(layout), backend: opts.backend });
}

/** An upload root installs: where it goes, where it was staged, and the hash it must have. */
export interface StagedUpload {
    path: string;
    /** Relative: the SSH user's home (SFTP runs as that user). */
    staged: string;
    sha256: string;
}

/**
 * Root sh, one line (`sh -c`, from the SSH user's home): checks the staged agent (and `script`,
 * the rollback command) against the expected hash, swaps them in atomically, then restarts
 * `restartUnit` (the dashboard) so it runs the new agent.
 */
export function renderAgentInstallScript(agent: StagedUpload, restartUnit?: string, script?: StagedUpload): string {
    const values = [...Object.values(agent), restartUnit, ...(script ? Object.values(script) : [])];
    return oneLine(renderTemplate("agent-install.sh.njk", { agent, restartUnit, script }), " && ", values);
}

/** Root sh, one line (`sh -c`): writes `sshUser`'s ~/.ssh/authorized_keys from stdin, atomically. */
export function renderAuthorizedKeysScript(sshUser: string): string {
    return oneLine(renderTemplate("authorized-keys.sh.njk", { user: sshUser }), "; ", [sshUser]);
}

/** The authorized keys, deduplicated by key (comments differ), in the given order. */
export function renderAuthorizedKeys(keys: readonly string[]): string {
    const seen = new Set<string>();
    const lines: string[] = [];
    for (const line of keys) {
        const [type, blob] = line.trim().split(/\s+/);
        if (!type || !blob || seen.has(`${type} ${blob}`)) continue;
        seen.add(`${type} ${blob}`);
        lines.push(line.trim());
    }
    return renderTemplate("authorized-keys.njk", { keys: lines });
}

/**
 * A rendered script's lines as one command line, joined by `separator`: each line is one step. A
 * value with a line break (quoted, it would stay one word) would split its step, so none may have one.
 */
function oneLine(script: string, separator: string, values: readonly (string | undefined)[]): string {
    if (values.some((v) => v?.includes("\n"))) throw new Error("a value in a one-line command holds a line break");
    return script.replace(/\n$/, "").split("\n").join(separator);
}

/** A machine's SSH host key pair (OpenSSH formats), generated by the program. */
export interface HostKeyPair {
    /** "ssh-ed25519 AAAA... comment" */
    publicKey: string;
    /** OpenSSH private key: a secret. */
    privateKey: string;
}

/** cloud-init user data for the EC2 instance (first boot only), with its SSH host key when given. */
export function renderCloudInit(ctx: TemplateContext, hostKey?: HostKeyPair): string {
    return renderTemplate("cloud-init.yaml.njk", { ...ctx, hostKey });
}

/**
 * User data of a NixOS instance: only its SSH host key, in the lines NixOS's apply-ec2-data unit
 * writes to /etc/ssh before sshd first starts (newlines as '|'). amazon-init ignores `SSH_HOST_*`
 * and comment lines, so the user data is never taken for a configuration.nix.
 */
export function renderNixosUserData(hostKey: HostKeyPair): string {
    const [type] = hostKey.publicKey.split(" ");
    if (type !== "ssh-ed25519") throw new Error(`the NixOS user data carries an ed25519 host key, not ${type}`);
    const privateLines = hostKey.privateKey.trim().split("\n");
    if (privateLines.some((l) => l.includes("|"))) throw new Error("a private key line holds '|'");
    return [
        "# SSH host key of this instance (managed by slotshift)",
        `SSH_HOST_ED25519_KEY:${privateLines.join("|")}`,
        `SSH_HOST_ED25519_KEY_PUB:${hostKey.publicKey.trim()}`,
        "",
    ].join("\n");
}
