// HostSetup: makes the host able to run the app and the agent, from the same inputs on either OS.
//   debian - runs the setup script (packages, app user, layout, slot unit, agent settings, TLS).
//   nixos  - installs a NixOS module next to configuration.nix, imports it, nixos-rebuild switch,
//            then writes the agent's settings (kept out of the module: the /nix/store is world-readable).
// On aws, the setup first finds the data volume by its id, formats it only when blank and mounts it
// (templates/data-volume.sh.njk), and the SSH user's authorized_keys is kept by a step of its own,
// so rotating the deploy key is an SSH step, not a new instance.
// Then uploads and installs the bundled agent (again when its hash changes or the host is replaced).
import * as pulumi from "@pulumi/pulumi";
import { AgentBundle } from "../program/agent-bundle";
import { AgentSettings } from "../program/agent-settings";
import { renderAgentSettings, renderDataVolumeScript, renderDebianSetupScript, renderNixosModule } from "../program/host-files";
import { agentStagingPath as agentStagingPathOf, hostLayout, rollbackScriptStagingPath } from "../lib/host-layout";
import { buildDataVolumeContext, TemplateContext } from "../program/template-context";
import { asRoot, HostHandle, shellQuote, stagedPath, stageFileScript } from "./remote";
import { renderRollbackScript } from "../program/rollback-script";
import { contentUpload, fileUpload, sha256Hex, SshCommand } from "./ssh/ssh-command";

export interface HostSetupArgs {
    host: HostHandle;
    osFlavour: "debian" | "nixos";
    context: TemplateContext;
    agentSettings: AgentSettings;
    agent: AgentBundle;
    /**
     * aws: the public keys the SSH user's authorized_keys holds (the configured sshPublicKey and
     * the one of sshPrivateKey, so a rotation in two steps never locks the deploys out).
     */
    authorizedKeys?: pulumi.Input<string[]>;
}

/**
 * The public key of a private key (OpenSSH line without comment), for authorized_keys. Public:
 * derived from the secret, it carries nothing of it. Undefined for a key ssh2 cannot read (then
 * no connection works either, and the dial says why).
 */
export function publicKeyOf(privateKey: string): string | undefined {
    const { utils } = require("ssh2") as typeof import("ssh2");
    const parsed = utils.parseKey(privateKey);
    const key = Array.isArray(parsed) ? parsed[0] : parsed;
    if (!key || key instanceof Error) return undefined;
    return `${key.type} ${key.getPublicSSH().toString("base64")}`;
}

/** The authorized keys, deduplicated by key (comments differ), in the given order. */
export function authorizedKeysFile(keys: readonly string[]): string {
    const seen = new Set<string>();
    const lines: string[] = [];
    for (const line of keys) {
        const [type, blob] = line.trim().split(/\s+/);
        if (!type || !blob || seen.has(`${type} ${blob}`)) continue;
        seen.add(`${type} ${blob}`);
        lines.push(line.trim());
    }
    return `# Managed by slotshift: the deploy keys (sshPublicKey, and the key of sshPrivateKey).\n${lines.join("\n")}\n`;
}

/** Root writes the SSH user's ~/.ssh/authorized_keys from stdin, atomically. */
export function authorizedKeysCommand(sshUser: string): string {
    const script = [
        "set -eu",
        `user=${shellQuote(sshUser)}`,
        'home=$(getent passwd "$user" | cut -d: -f6)',
        'group=$(id -gn "$user")',
        '[ -n "$home" ] && [ ! -L "$home/.ssh" ]',
        'install -d -m 0700 -o "$user" -g "$group" "$home/.ssh"',
        'tmp=$(mktemp "$home/.ssh/.authorized_keys.XXXXXX")',
        'cat >"$tmp"',
        'chown "$user:$group" "$tmp"',
        'chmod 0600 "$tmp"',
        'mv -f "$tmp" "$home/.ssh/authorized_keys"',
    ].join("; ");
    return asRoot(sshUser, `sh -c ${shellQuote(script)}`);
}

export interface NixosPaths {
    /** Default /etc/nixos (tests use a temp directory). */
    etcDir?: string;
    /** The dashboard's token file, created once (as the Debian setup script does). */
    dashboardTokenFile?: string;
    /** Default `nixos-rebuild switch`. */
    rebuild?: string;
}

/** Where the NixOS module goes; configuration.nix imports it by this relative name. */
export function nixosModulePath(appName: string, etcDir = "/etc/nixos"): string {
    return `${etcDir}/slotshift-${appName}.nix`;
}

/** A root-only file the apply script writes after the switch. */
export interface PrivateFile {
    path: string;
    content: string;
}

/**
 * Root bash (fed on stdin) that installs the module, adds it to configuration.nix's imports once,
 * and switches; then writes the agent's settings, 0600 root, into the deploy directory the switch
 * created (tmpfiles), replacing them only when they changed. The sed edit only touches the first
 * `imports = [`; without one it stops and says so rather than guess at someone else's Nix file.
 */
export function nixosApplyScript(appName: string, module: string, agentConfig: PrivateFile, paths: NixosPaths = {}, dataVolumeScript?: string): string {
    const etcDir = paths.etcDir ?? "/etc/nixos";
    const path = nixosModulePath(appName, etcDir);
    const rel = `./slotshift-${appName}.nix`;
    const staged = stagedPath(agentConfig.path);
    return [
        "set -euo pipefail",
        "umask 022",
        // The data volume (aws) is formatted and its directories made before the switch mounts them.
        ...(dataVolumeScript ? ["TMP_FILES=()", "trap 'rm -f -- \"${TMP_FILES[@]}\"' EXIT", dataVolumeScript] : []),
        stageFileScript(path, module, "0644"),
        `mv -f ${shellQuote(stagedPath(path))} ${shellQuote(path)}`,
        `cfg=${shellQuote(`${etcDir}/configuration.nix`)}`,
        `if ! grep -qF ${shellQuote(rel)} "$cfg"; then`,
        `    sed -i.slotshift-bak -e '0,/imports[[:space:]]*=[[:space:]]*\\[/s//imports = [ ${rel.replace(/\//g, "\\/")}/' "$cfg"`,
        `    grep -qF ${shellQuote(rel)} "$cfg" || { echo "error: $cfg has no 'imports = [' list to add ${rel} to; add it by hand" >&2; exit 1; }`,
        "fi",
        paths.rebuild ?? "nixos-rebuild switch",
        // No other user may read it, not even while it is being written; root creates it root:root.
        "umask 077",
        stageFileScript(agentConfig.path, agentConfig.content, "0600"),
        `if cmp -s ${shellQuote(staged)} ${shellQuote(agentConfig.path)}; then rm -f ${shellQuote(staged)}; else mv -f ${shellQuote(staged)} ${shellQuote(agentConfig.path)}; fi`,
        `chmod 0600 ${shellQuote(agentConfig.path)}`,
        ...(paths.dashboardTokenFile ? dashboardTokenScript(paths.dashboardTokenFile) : []),
        "",
    ].join("\n");
}

/** Root bash lines that create the dashboard's token once: 32 random bytes as hex, 0600 root. */
export function dashboardTokenScript(tokenFile: string): string[] {
    const q = shellQuote(tokenFile);
    return [
        `if [ ! -s ${q} ]; then`,
        `    od -An -tx1 -N32 /dev/urandom | tr -d ' \\n' > ${shellQuote(stagedPath(tokenFile))}`,
        `    mv -f ${shellQuote(stagedPath(tokenFile))} ${q}`,
        `    echo "created the dashboard token ${tokenFile}"`,
        "fi",
        `chmod 0600 ${q}`,
    ];
}

/** Remote path (relative: the SSH user's home) the agent is staged at before root installs it. */
export function agentStagingPath(appName: string): string {
    return agentStagingPathOf(hostLayout(appName));
}

/** A script the agent install puts beside the agent, uploaded like it: the rollback command (program/rollback-script.ts). */
export interface StagedScript {
    path: string;
    staged: string;
    sha256: string;
}

/**
 * Checks the staged upload against the expected hash, then swaps it in atomically as root, with
 * `script` (the rollback command) beside it; then restarts `restartUnit` (the dashboard, a
 * resident agent process) so it runs the new agent.
 */
export function agentInstallCommand(sshUser: string, agentPath: string, staged: string, sha256: string, restartUnit?: string, script?: StagedScript): string {
    const tmp = stagedPath(agentPath);
    const scriptTmp = script ? shellQuote(stagedPath(script.path)) : "";
    const steps = [
        `echo ${shellQuote(`${sha256}  ${staged}`)} | sha256sum -c --quiet -`,
        // Root only: it runs as root and nobody else has any use for it.
        ...(script
            ? [
                  `echo ${shellQuote(`${script.sha256}  ${script.staged}`)} | sha256sum -c --quiet -`,
                  `install -m 0700 -o root -g root ${shellQuote(script.staged)} ${scriptTmp}`,
                  `mv -f ${scriptTmp} ${shellQuote(script.path)}`,
              ]
            : []),
        `install -m 0755 -o root -g root ${shellQuote(staged)} ${shellQuote(tmp)}`,
        `mv -f ${shellQuote(tmp)} ${shellQuote(agentPath)}`,
        ...(restartUnit ? [`systemctl restart ${shellQuote(`${restartUnit}.service`)}`] : []),
    ].join(" && ");
    return `cd && ${asRoot(sshUser, `sh -c ${shellQuote(steps)}`)}`;
}

export class HostSetup extends pulumi.ComponentResource {
    /** The step that leaves the host configured (setup script or nixos-rebuild). */
    readonly setup: SshCommand;
    /** Uploads the agent (SFTP), then checks its hash and installs it as root. */
    readonly agentInstall: SshCommand;
    /** aws: keeps the SSH user's authorized_keys (key rotation without a new instance). */
    readonly authorizedKeys?: SshCommand;

    constructor(name: string, args: HostSetupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("slotshift:host:HostSetup", name, {}, opts);
        const { host, context, agentSettings } = args;
        // Children wait for whatever the component waits for (Pulumi does not pass dependsOn down).
        const child = { parent: this, dependsOn: opts?.dependsOn };
        const appName = context.app.name;

        const render = (ctx: TemplateContext) =>
            args.osFlavour === "debian"
                ? renderDebianSetupScript(ctx, agentSettings)
                : nixosApplyScript(
                      appName,
                      renderNixosModule(ctx),
                      { path: ctx.layout.agentConfigPath, content: renderAgentSettings(agentSettings) },
                      { dashboardTokenFile: ctx.layout.dashboardTokenFile },
                      ctx.dataVolume ? renderDataVolumeScript(ctx) : undefined,
                  );
        // With a data volume, the script names it: rendered once its id is known.
        const stdin = host.dataVolumeId
            ? host.dataVolumeId.apply((id) => render({ ...context, dataVolume: buildDataVolumeContext(context.layout, id, args.osFlavour) }))
            : render(context);
        // Content changes re-run it as an update (the step is idempotent); a new host replaces it.
        this.setup = new SshCommand(
            `${name}-${args.osFlavour}`,
            {
                connection: host.connection,
                create: asRoot(host.sshUser, "bash -s"),
                stdin,
                triggers: [host.hostId],
                logging: "stdoutAndStderr",
            },
            child,
        );

        if (args.authorizedKeys) {
            this.authorizedKeys = new SshCommand(
                `${name}-authorized-keys`,
                {
                    connection: host.connection,
                    create: authorizedKeysCommand(host.sshUser),
                    stdin: pulumi.output(args.authorizedKeys).apply(authorizedKeysFile),
                    triggers: [host.hostId],
                    logging: "stderr",
                },
                { ...child, dependsOn: [this.setup] },
            );
        }

        const staged = agentStagingPath(appName);
        const rollbackScript = renderRollbackScript(context.layout, { backend: agentSettings.haproxy.backend });
        const script: StagedScript = {
            path: context.layout.rollbackScript,
            staged: rollbackScriptStagingPath(context.layout),
            sha256: sha256Hex(rollbackScript),
        };
        this.agentInstall = new SshCommand(
            `${name}-agent-install`,
            {
                connection: host.connection,
                // Into the SSH user's home: SFTP runs as that user, and a private directory leaves no
                // window for another local user to swap the file before root installs it.
                uploads: [fileUpload(args.agent.path, staged, "0600", args.agent.sha256), contentUpload(rollbackScript, script.staged, "0600")],
                create: agentInstallCommand(host.sshUser, context.layout.agentPath, staged, args.agent.sha256, context.layout.dashboardUnit, script),
                // A changed rollback script is installed again too.
                triggers: [host.hostId, args.agent.sha256, script.sha256],
            },
            { ...child, dependsOn: [this.setup] },
        );
        this.registerOutputs({});
    }
}
