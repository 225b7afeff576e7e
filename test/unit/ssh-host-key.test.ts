// The host key generator of aws stacks, as the engine runs it: serialized (see ssh-provider.test.ts),
// loaded from text, then asked to create a key.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import { utils } from "ssh2";
import { parseHostKey } from "../../components/ssh/host-key";
import { sshHostKeyProvider } from "../../components/instance-host-key";
import { renderNixosUserData } from "../../program/host-files";

/** The provider as the engine loads it; `dir` holds its text (and, as the project does, node_modules). */
async function serializedProvider(dir: string): Promise<{ text: string; provider: typeof sshHostKeyProvider }> {
    const serialized = await pulumi.runtime.serializeFunction(() => sshHostKeyProvider, { allowSecrets: true });
    fs.symlinkSync(path.resolve(__dirname, "..", "..", "node_modules"), path.join(dir, "node_modules"));
    fs.writeFileSync(path.join(dir, "p.js"), serialized.text);
    return { text: serialized.text, provider: require(path.join(dir, "p.js"))[serialized.exportName]() };
}

describe("ssh host key generator", function () {
    this.timeout(60_000);
    let dir: string;
    before(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "host-key-provider-"));
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("creates an ed25519 pair from its serialized code: a private key ssh2 reads, and its own public key", async () => {
        const { text, provider } = await serializedProvider(dir);
        assert.match(text, /require\("ssh2"\)/, "ssh2 is loaded where the provider runs");
        const { id, outs: created } = await provider.create!({ comment: "shop-prod" });
        const outs = created!;
        assert.match(id, /^[0-9a-f]{16}$/);
        assert.match(outs.publicKey, /^ssh-ed25519 AAAA[A-Za-z0-9+/=]+ shop-prod$/);
        assert.strictEqual(parseHostKey(outs.publicKey)?.type, "ssh-ed25519");
        const parsed = utils.parseKey(outs.privateKey);
        assert.ok(!(parsed instanceof Error), String(parsed));
        const key = Array.isArray(parsed) ? parsed[0] : parsed;
        assert.ok(key.getPublicSSH().equals(parseHostKey(outs.publicKey)!.blob), "the public key is the private key's own");
        const second = await provider.create!({ comment: "shop-prod" });
        assert.notStrictEqual(second.outs!.privateKey, outs.privateKey, "a new key each time");
    });

    it("never replaces the key: a new comment is only recorded", async () => {
        const olds = { comment: "a", publicKey: "ssh-ed25519 AAAA a", privateKey: "k" };
        assert.deepStrictEqual(await sshHostKeyProvider.diff!("id", olds, { comment: "b" }), { changes: true, replaces: [], deleteBeforeReplace: false });
        assert.deepStrictEqual(await sshHostKeyProvider.diff!("id", olds, { comment: "a" }), { changes: false, replaces: [], deleteBeforeReplace: false });
        assert.deepStrictEqual((await sshHostKeyProvider.update!("id", olds, { comment: "b" })).outs, { ...olds, comment: "b" });
    });

    it("NixOS user data: the key's lines survive the '|' encoding apply-ec2-data undoes", () => {
        const pair = utils.generateKeyPairSync("ed25519", { comment: "c" });
        const text = renderNixosUserData({ publicKey: pair.public, privateKey: pair.private });
        // What apply-ec2-data does: sed 's/|/\n/g; s/SSH_HOST_ED25519_KEY://; t; d'
        const line = text.split("\n").find((l) => l.startsWith("SSH_HOST_ED25519_KEY:"))!;
        assert.strictEqual(`${line.slice("SSH_HOST_ED25519_KEY:".length).replace(/\|/g, "\n")}\n`, pair.private);
        // amazon-init takes user data for a configuration.nix unless only comments and SSH_HOST_ lines remain.
        assert.deepStrictEqual(
            text.split("\n").filter((l) => l.trim() !== "" && !/^(#|SSH_HOST_)/.test(l)),
            [],
        );
    });
});
