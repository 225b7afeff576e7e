// Release: one per version. Writes the app environment from the secret config (stdin only: never
// in a command line, never echoed), puts a local artifact on the host, and has the agent check the
// archive's sha256, unpack, build and check the release beside the live one. An https source goes
// on stdin too (a presigned URL is a credential). No traffic moves here.
import * as pulumi from "@pulumi/pulumi";
import { artifactPath, artifactStagingPath, HostLayout } from "../lib/host-layout";
import { GroupSettings } from "../lib/settings/table";
import { formatEnvLines } from "../program/load-config";
import { shellJoin, shellQuote } from "../lib/shell-quote";
import { asRoot, HostHandle, remoteAgentCommand } from "./remote";

export { artifactPath } from "../lib/host-layout";
import { fileUpload, SshCommand } from "./ssh/ssh-command";

export interface ReleaseArgs {
    host: HostHandle;
    layout: HostLayout;
    version: string;
    /** An https:// URL the agent downloads, or (with localArtifact) the configured path. */
    source: string;
    /** Absolute local path of the archive when the source is a local file. */
    localArtifact?: string;
    /** The archive's sha256 (releaseSha256, or computed from the local file). */
    sha256: string;
    download: DownloadBounds;
    /** Secret. */
    appEnv: pulumi.Input<Record<string, string>>;
}

/**
 * Root can upload straight into the agent's (root-only) artifacts directory. Anyone else uploads
 * into their home, and the prepare step moves the file in as root.
 */
export function artifactUploadPath(sshUser: string, layout: HostLayout, version: string): string {
    return sshUser === "root" ? artifactPath(layout, version) : artifactStagingPath(layout, version);
}

/** Limits of an https download on the host: the release group's settings. */
type DownloadBounds = Pick<GroupSettings<"release">, "releaseDownloadMaxMiB" | "releaseDownloadTimeout">;

export interface PrepareInvocation {
    version: string;
    sha256: string;
    /** true: the archive was uploaded to the host; false: the https URL comes on the command's stdin. */
    uploaded: boolean;
    download?: DownloadBounds;
}

export function prepareCommand(sshUser: string, layout: HostLayout, p: PrepareInvocation): string {
    const { version, uploaded } = p;
    const target = artifactPath(layout, version);
    const prepare = remoteAgentCommand(sshUser, layout, "prepare", {
        version,
        ...(uploaded ? { source: target } : { sourceStdin: true }),
        sha256: p.sha256,
        ...(!uploaded && p.download
            ? { releaseDownloadMaxMiB: p.download.releaseDownloadMaxMiB, releaseDownloadTimeout: p.download.releaseDownloadTimeout }
            : {}),
    });
    const staged = artifactUploadPath(sshUser, layout, version);
    if (!uploaded || staged === target) return prepare;
    // Only when the staged copy is there: a re-run after a failed prepare finds it moved already.
    const move = asRoot(
        sshUser,
        `sh -c ${shellQuote(`${shellJoin(["install", "-m", "0600", "-o", "root", "-g", "root", staged, target])} && ${shellJoin(["rm", "-f", staged])}`)}`,
    );
    return `cd && if [ -f ${shellQuote(staged)} ]; then ${move}; fi && ${prepare}`;
}

export class Release extends pulumi.ComponentResource {
    readonly env: SshCommand;
    /** Uploads a local artifact first (SFTP), then `agent prepare`. */
    readonly prepare: SshCommand;
    readonly version: string;

    constructor(name: string, args: ReleaseArgs, opts?: pulumi.ComponentResourceOptions) {
        super("slotshift:release:Release", name, {}, opts);
        const { host, layout, version } = args;
        const child = { parent: this, dependsOn: opts?.dependsOn };
        this.version = version;

        // Written before prepare: build steps (e.g. collectstatic) may need the environment. A
        // changed environment is an update that rewrites the file; slots read it when they start.
        this.env = new SshCommand(
            `${name}-env`,
            {
                connection: host.connection,
                create: remoteAgentCommand(host.sshUser, layout, "write-env", {}),
                stdin: pulumi.secret(pulumi.output(args.appEnv).apply(formatEnvLines)),
                triggers: [host.hostId],
                logging: "stderr",
            },
            { ...child, additionalSecretOutputs: ["stdin", "stdout", "stderr"] },
        );

        const uploaded = args.localArtifact !== undefined;
        this.prepare = new SshCommand(
            `${name}-prepare`,
            {
                connection: host.connection,
                // Before every run: a re-run after a failed build finds the archive again.
                uploads: args.localArtifact ? [fileUpload(args.localArtifact, artifactUploadPath(host.sshUser, layout, version), "0600", args.sha256)] : [],
                create: prepareCommand(host.sshUser, layout, { version, sha256: args.sha256, uploaded, download: args.download }),
                // The URL may be presigned: a credential, so it stays a secret and out of argv.
                ...(uploaded ? {} : { stdin: pulumi.secret(args.source) }),
                triggers: [host.hostId, version],
                logging: "stdoutAndStderr",
            },
            // Build commands run with the app environment and could print it: keep their output
            // out of the state file in plain text (it still streams to the console).
            { ...child, dependsOn: [this.env], additionalSecretOutputs: ["stdin", "stdout", "stderr"] },
        );
        this.registerOutputs({ version });
    }
}
