// SshHostKey: the SSH host key of a machine this stack creates, generated once by the program
// (ed25519, with ssh2's key generator, already a dependency) and kept as a Pulumi secret. The
// instance gets it through its user data, so the very first connection already knows which key
// to expect: no key is ever learnt from the network. It never changes on its own: a replaced
// instance gets the same key (the Host keeps it across replacements).
//
// A dynamic resource, like SshCommand: its provider is serialized into the state and run by the
// engine in another process, so it captures nothing but its own functions (modules are required
// at run time), as components/ssh/provider.ts explains.
import * as pulumi from "@pulumi/pulumi";

export interface SshHostKeyInputs {
    /** The public key's comment (names the machine). */
    comment: string;
}

export interface SshHostKeyOutputs extends SshHostKeyInputs {
    /** "ssh-ed25519 AAAA... <comment>" */
    publicKey: string;
    /** OpenSSH private key. Secret. */
    privateKey: string;
}

function generateHostKey(comment: string): { publicKey: string; privateKey: string } {
    const { utils } = require("ssh2") as typeof import("ssh2");
    const pair = utils.generateKeyPairSync("ed25519", { comment });
    return { publicKey: pair.public.trim(), privateKey: pair.private };
}

function newHostKeyId(): string {
    return (require("crypto") as typeof import("crypto")).randomBytes(8).toString("hex");
}

export const sshHostKeyProvider: pulumi.dynamic.ResourceProvider<SshHostKeyInputs, SshHostKeyOutputs> = {
    async create(inputs) {
        return { id: newHostKeyId(), outs: { comment: inputs.comment, ...generateHostKey(inputs.comment) } };
    },
    // Nothing replaces the key: a new comment is only recorded.
    async diff(_id, olds, news) {
        return { changes: olds.comment !== news.comment, replaces: [], deleteBeforeReplace: false };
    },
    async update(_id, olds, news) {
        return { outs: { ...olds, comment: news.comment } };
    },
};

export class SshHostKey extends pulumi.dynamic.Resource {
    declare readonly publicKey: pulumi.Output<string>;
    /** Secret (additionalSecretOutputs): encrypted in the state. */
    declare readonly privateKey: pulumi.Output<string>;

    constructor(name: string, args: { comment: pulumi.Input<string> }, opts: pulumi.CustomResourceOptions = {}) {
        super(
            sshHostKeyProvider,
            name,
            { comment: args.comment, publicKey: undefined, privateKey: undefined },
            { ...opts, additionalSecretOutputs: [...(opts.additionalSecretOutputs ?? []), "privateKey"] },
            "ssh",
            "HostKey",
        );
    }
}
