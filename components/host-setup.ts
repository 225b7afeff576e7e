// HostSetup: makes the host able to run the app and the agent, from the same inputs on either OS.
//   debian - runs the setup script (packages, app user, layout, slot unit, agent settings, TLS).
//   nixos  - installs a NixOS module next to configuration.nix, imports it, nixos-rebuild switch,
//            then writes the agent's settings (kept out of the module: the /nix/store is world-readable)
//            (templates/nixos-apply.sh.njk).
// On aws, the setup first finds the data volume by its id, formats it only when blank and mounts it
// (templates/data-volume.sh.njk), and the SSH user's authorized_keys is kept by a step of its own,
// so rotating the deploy key is an SSH step, not a new instance.
// Then uploads and installs the bundled agent and the rollback command beside it
// (templates/agent-install.sh.njk, templates/rollback.sh.njk), again when either changes or the
// host is replaced.
import * as pulumi from "@pulumi/pulumi";
import { AgentBundle } from "../program/agent-bundle";
import { AgentSettings } from "../program/agent-settings";
import {
    renderAgentInstallScript,
    renderAgentSettings,
    renderAuthorizedKeys,
    renderAuthorizedKeysScript,
    renderDataVolumeScript,
    renderDebianSetupScript,
    renderNixosApplyScript,
    renderNixosModule,
    renderRollbackScript,
    StagedUpload,
} from "../program/host-files";
import { agentStagingPath, rollbackScriptStagingPath } from "../lib/host-layout";
import { buildDataVolumeContext, TemplateContext } from "../program/template-context";
import { asRoot, HostHandle, shellQuote } from "./remote";
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

/** Root writes the SSH user's ~/.ssh/authorized_keys from stdin, atomically (templates/authorized-keys.sh.njk). */
function authorizedKeysCommand(sshUser: string): string {
    return asRoot(sshUser, `sh -c ${shellQuote(renderAuthorizedKeysScript(sshUser))}`);
}

/**
 * From the SSH user's home, where the uploads are, as root: the staged agent (and `script`, the
 * rollback command) checked against the expected hash and swapped in atomically, then
 * `restartUnit` (the dashboard, a resident agent process) restarted so it runs the new agent
 * (templates/agent-install.sh.njk).
 */
export function agentInstallCommand(sshUser: string, agentPath: string, staged: string, sha256: string, restartUnit?: string, script?: StagedUpload): string {
    const steps = renderAgentInstallScript({ path: agentPath, staged, sha256 }, restartUnit, script);
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
                : renderNixosApplyScript(
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
                    stdin: pulumi.output(args.authorizedKeys).apply(renderAuthorizedKeys),
                    triggers: [host.hostId],
                    logging: "stderr",
                },
                { ...child, dependsOn: [this.setup] },
            );
        }

        const staged = agentStagingPath(context.layout);
        const rollbackScript = renderRollbackScript(context.layout, { backend: agentSettings.haproxy.backend });
        const script: StagedUpload = {
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
