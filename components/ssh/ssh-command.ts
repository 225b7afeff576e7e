// SshCommand: a command run on the host over SSH, as a Pulumi resource (a dynamic provider, so no
// provider plugin has to be installed; see provider.ts).
//   create  runs on create; `update` (or `create` again) when any other input changes;
//           `delete` when the resource is deleted, with the connection and command of the state.
//   triggers  any change replaces the resource: create-before-delete by default (the new `create`
//           runs, the old `delete` later in the same `pulumi up`); deleteBeforeReplace reverses it.
//   stdin   how data, and secrets above all, reach the host: never put them in a command string.
//   uploads files copied over SFTP before each create/update run, replacing the file atomically.
// Nothing runs on preview. Output lines stream to the console under the resource as they arrive
// (`logging` chooses which), and stdout/stderr (their tails) become outputs. A non-zero exit fails
// the step with the command's last lines; a failed create leaves nothing in state, so the next
// `pulumi up` runs it again.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { SshLogging, SshUpload } from "./inputs";
import { sshCommandProvider } from "./provider";
import { SshConnection } from "./ssh-connection";

export type { SshUpload } from "./inputs";

/** The resource type, `pulumi-nodejs:dynamic/<module>:<type>` as the SDK builds it for dynamic resources. */
export const SSH_COMMAND_TYPE = "pulumi-nodejs:dynamic/ssh:Command";

export interface SshCommandArgs {
    /** Made secret here, whatever the caller passes: it carries the private key. */
    connection: pulumi.Input<SshConnection>;
    create: pulumi.Input<string>;
    update?: pulumi.Input<string>;
    delete?: pulumi.Input<string>;
    /** Written to the command's standard input on create and update. */
    stdin?: pulumi.Input<string>;
    /** Any change replaces the resource. */
    triggers?: pulumi.Input<pulumi.Input<unknown>[]>;
    uploads?: pulumi.Input<pulumi.Input<SshUpload>[]>;
    /** Which output streams to the console and into error messages; default stdoutAndStderr. */
    logging?: pulumi.Input<SshLogging>;
    /** After a dropped connection: the command that follows the announced worker again (see SshCommandInputs.reattach). */
    reattach?: pulumi.Input<string>;
}

export class SshCommand extends pulumi.dynamic.Resource {
    /** Tail of the standard output (secret when listed in additionalSecretOutputs). */
    declare readonly stdout: pulumi.Output<string>;
    declare readonly stderr: pulumi.Output<string>;

    constructor(name: string, args: SshCommandArgs, opts: pulumi.CustomResourceOptions = {}) {
        const secretOutputs = new Set(["connection", ...(opts.additionalSecretOutputs ?? [])]);
        super(
            sshCommandProvider,
            name,
            {
                ...args,
                connection: pulumi.secret(args.connection),
                __logUrn: ownUrn(name, opts.parent),
                stdout: undefined,
                stderr: undefined,
            },
            { ...opts, additionalSecretOutputs: [...secretOutputs] },
            "ssh",
            "Command",
        );
    }
}

/**
 * The URN this resource will get, for the provider's log lines. Built from the parent's URN as a
 * plain promise: an input that depended on the parent component itself would make the resource wait
 * for all the component's children, itself included.
 */
function ownUrn(name: string, parent: pulumi.Resource | undefined): pulumi.Output<string> {
    if (!parent) return pulumi.createUrn(name, SSH_COMMAND_TYPE);
    const parentUrn = new Promise<string>((resolve) => parent.urn.apply((urn) => resolve(urn)));
    return pulumi.createUrn(name, SSH_COMMAND_TYPE, pulumi.output(parentUrn));
}

export function sha256Hex(data: string | Buffer): string {
    return crypto.createHash("sha256").update(data).digest("hex");
}

/**
 * A local file to put on the host. Its hash is taken now (pass it when it is known already), so a
 * changed file is a diff; the upload checks the file still has it.
 */
export function fileUpload(localPath: string, remotePath: string, mode: string, sha256?: string): SshUpload {
    const absolute = path.resolve(localPath);
    return { localPath: absolute, remotePath, mode, sha256: sha256 ?? sha256Hex(fs.readFileSync(absolute)) };
}

/** Text to put on the host as a file; secret text stays secret. */
export function contentUpload(content: pulumi.Input<string>, remotePath: string, mode: string): pulumi.Output<SshUpload> {
    return pulumi.output(content).apply((text) => ({ content: text, remotePath, mode, sha256: sha256Hex(text) }));
}
