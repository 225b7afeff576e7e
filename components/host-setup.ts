// HostSetup: makes the host able to run the app and the agent, from the same inputs on either OS.
//   debian - runs the setup script (packages, app user, layout, slot unit, agent settings, TLS).
//   nixos  - installs a NixOS module next to configuration.nix, imports it, nixos-rebuild switch,
//            then writes the agent's settings (kept out of the module: the /nix/store is world-readable).
// Then uploads and installs the bundled agent (again when its hash changes or the host is replaced).
import * as pulumi from "@pulumi/pulumi";
import { AgentBundle } from "../lib/agent-bundle";
import { AgentSettings } from "../lib/agent-settings";
import { renderAgentSettings, renderDebianSetupScript, renderNixosModule } from "../lib/host-files";
import { agentStagingPath as agentStagingPathOf, hostLayout } from "../lib/host-layout";
import { TemplateContext } from "../lib/template-context";
import { asRoot, HostHandle, shellQuote, stagedPath, stageFileScript } from "./remote";
import { fileUpload, SshCommand } from "./ssh/ssh-command";

export interface HostSetupArgs {
    host: HostHandle;
    osFlavour: "debian" | "nixos";
    context: TemplateContext;
    agentSettings: AgentSettings;
    agent: AgentBundle;
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
export function nixosApplyScript(appName: string, module: string, agentConfig: PrivateFile, paths: NixosPaths = {}): string {
    const etcDir = paths.etcDir ?? "/etc/nixos";
    const path = nixosModulePath(appName, etcDir);
    const rel = `./slotshift-${appName}.nix`;
    const staged = stagedPath(agentConfig.path);
    return [
        "set -euo pipefail",
        "umask 022",
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

/**
 * Checks the staged upload against the expected hash, then swaps it in atomically as root; then
 * restarts `restartUnit` (the dashboard, a resident agent process) so it runs the new agent.
 */
export function agentInstallCommand(sshUser: string, agentPath: string, staged: string, sha256: string, restartUnit?: string): string {
    const tmp = stagedPath(agentPath);
    const script = [
        `echo ${shellQuote(`${sha256}  ${staged}`)} | sha256sum -c --quiet -`,
        `install -m 0755 -o root -g root ${shellQuote(staged)} ${shellQuote(tmp)}`,
        `mv -f ${shellQuote(tmp)} ${shellQuote(agentPath)}`,
        ...(restartUnit ? [`systemctl restart ${shellQuote(`${restartUnit}.service`)}`] : []),
    ].join(" && ");
    return `cd && ${asRoot(sshUser, `sh -c ${shellQuote(script)}`)}`;
}

export class HostSetup extends pulumi.ComponentResource {
    /** The step that leaves the host configured (setup script or nixos-rebuild). */
    readonly setup: SshCommand;
    /** Uploads the agent (SFTP), then checks its hash and installs it as root. */
    readonly agentInstall: SshCommand;

    constructor(name: string, args: HostSetupArgs, opts?: pulumi.ComponentResourceOptions) {
        super("slotshift:host:HostSetup", name, {}, opts);
        const { host, context, agentSettings } = args;
        // Children wait for whatever the component waits for (Pulumi does not pass dependsOn down).
        const child = { parent: this, dependsOn: opts?.dependsOn };
        const appName = context.app.name;

        const stdin =
            args.osFlavour === "debian"
                ? renderDebianSetupScript(context, agentSettings)
                : nixosApplyScript(
                      appName,
                      renderNixosModule(context),
                      { path: context.layout.agentConfigPath, content: renderAgentSettings(agentSettings) },
                      { dashboardTokenFile: context.layout.dashboardTokenFile },
                  );
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

        const staged = agentStagingPath(appName);
        this.agentInstall = new SshCommand(
            `${name}-agent-install`,
            {
                connection: host.connection,
                // Into the SSH user's home: SFTP runs as that user, and a private directory leaves no
                // window for another local user to swap the file before root installs it.
                uploads: [fileUpload(args.agent.path, staged, "0600", args.agent.sha256)],
                create: agentInstallCommand(host.sshUser, context.layout.agentPath, staged, args.agent.sha256, context.layout.dashboardUnit),
                triggers: [host.hostId, args.agent.sha256],
            },
            { ...child, dependsOn: [this.setup] },
        );
        this.registerOutputs({});
    }
}
