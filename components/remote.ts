// Shared by the components: what they know about the host they run commands on, and how those
// command lines are built. Everything here is plain string work, so it is safe to unit test.
import * as pulumi from "@pulumi/pulumi";
import { AgentCommandName, agentInvocation, attachInvocationTemplate, InvocationOptions, RequestFor } from "../lib/contract/commands";
import { HostLayout } from "../lib/host-layout";
import { shellJoin } from "../lib/shell-quote";
import { SshConnection } from "./ssh/ssh-connection";

export { shellQuote } from "../lib/shell-quote";

/** What every component after the Host needs to reach it. */
export interface HostHandle {
    /** Secret: carries the private key. */
    connection: pulumi.Output<SshConnection>;
    /**
     * Changes when the machine is replaced (instance id, or user@address:port for an existing host).
     * Commands put it in `triggers`, so a new machine gets every file and step again.
     */
    hostId: pulumi.Output<string>;
    /** Public address (the Elastic IP on AWS). */
    address: pulumi.Output<string>;
    sshUser: string;
    sshPort: number;
    /** aws: the data volume's id, known once it is attached (the setup mounts it). */
    dataVolumeId?: pulumi.Output<string>;
}

/** Deploy commands need root; a non-root SSH user must have passwordless sudo (-n never prompts). */
export function asRoot(sshUser: string, command: string): string {
    return sshUser === "root" ? command : `sudo -n ${command}`;
}

/**
 * ssh options of the rollback command (stack output rollbackCommand): the key exchange without
 * the post-quantum hybrid. OpenSSH 9.x's sntrup761x25519 costs its client some 120 ms of CPU per
 * connection (measured: `ssh host true` 320-460 ms with it, 180-230 ms with curve25519-sha256 on
 * the same loopback), more than the whole flip; the session carries no secret (a command line
 * and its result), and authentication does not depend on the key exchange.
 */
export const ROLLBACK_SSH_OPTIONS: readonly string[] = ["-o", "KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org"];

/** `node <agent.js> <command> --config <agent.json> [flags]`, formatted by the contract (lib/contract/commands.ts). */
export function agentCommand<C extends AgentCommandName>(layout: HostLayout, command: C, request: RequestFor<C>, opts?: InvocationOptions): string {
    return shellJoin(agentInvocation(layout, command, request, opts));
}

/** The agent command run as root over SSH. */
export function remoteAgentCommand<C extends AgentCommandName>(
    sshUser: string,
    layout: HostLayout,
    command: C,
    request: RequestFor<C>,
    opts?: InvocationOptions,
): string {
    return asRoot(sshUser, agentCommand(layout, command, request, opts));
}

/** `attach` as root over SSH, with the placeholders the SSH step fills in after a dropped connection. */
export function remoteAttachTemplate(sshUser: string, layout: HostLayout): string {
    return asRoot(sshUser, shellJoin(attachInvocationTemplate(layout)));
}
