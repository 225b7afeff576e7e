// cloud-init user data: valid YAML that cloud-init recognises, keys only SSH, no injectable values.
import * as assert from "assert";
import { utils } from "ssh2";
import { parseDocument } from "yaml";
import { renderCloudInit } from "../../program/host-files";
import { TemplateInputs } from "../../program/template-context";
import { BASE_INPUTS, CASES, contextFor } from "./helpers";

interface CloudConfig {
    package_update?: boolean;
    ssh_pwauth?: boolean;
    disable_root?: boolean;
    ssh_authorized_keys?: string[];
    users?: (string | { name: string; ssh_authorized_keys: string[]; sudo: string; lock_passwd: boolean })[];
    write_files: { path: string; content: string; permissions: string; owner: string }[];
    runcmd?: unknown[];
}

/** Strict YAML 1.2 parse: duplicate keys, bad escapes or tabs are errors, not guesses. */
function load(text: string): CloudConfig {
    const doc = parseDocument(text, { uniqueKeys: true, strict: true, prettyErrors: true });
    assert.deepStrictEqual(doc.errors.map(String), []);
    assert.deepStrictEqual(doc.warnings.map(String), []);
    return doc.toJS() as CloudConfig;
}

function sshdDropIn(cfg: CloudConfig): string {
    const f = cfg.write_files.find((w) => w.path.startsWith("/etc/ssh/sshd_config.d/"));
    assert.ok(f, "no sshd drop-in");
    return f.content;
}

describe("cloud-init user data", () => {
    for (const c of CASES) {
        describe(c.name, () => {
            const ctx = contextFor(c.inputs);
            const text = renderCloudInit(ctx);
            const root = ctx.ssh.user === "root";
            let cfg: CloudConfig;
            before(() => {
                cfg = load(text);
            });

            it("starts with #cloud-config and parses as strict YAML", () => {
                assert.ok(text.startsWith("#cloud-config\n"));
                load(text);
                assert.strictEqual(cfg.package_update, true);
            });

            it("allows keys only, root login only when the deploy user is root", () => {
                assert.strictEqual(cfg.ssh_pwauth, false);
                assert.strictEqual(cfg.disable_root, !root);
                const sshd = sshdDropIn(cfg);
                assert.match(sshd, /^PasswordAuthentication no$/m);
                assert.match(sshd, /^KbdInteractiveAuthentication no$/m);
                assert.match(sshd, new RegExp(`^PermitRootLogin ${root ? "prohibit-password" : "no"}$`, "m"));
                assert.match(sshd, new RegExp(`^Port ${ctx.ssh.port}$`, "m"));
            });

            it("authorizes the deploy key", () => {
                assert.deepStrictEqual(cfg.ssh_authorized_keys, [ctx.ssh.publicKey]);
            });
        });
    }

    it("creates a sudo user with the key when the deploy user is not the image's default", () => {
        const cfg = load(renderCloudInit(contextFor({ sshUser: "deploy" })));
        assert.deepStrictEqual(cfg.users?.[0], "default");
        const user = cfg.users?.[1] as { name: string; ssh_authorized_keys: string[]; lock_passwd: boolean };
        assert.strictEqual(user.name, "deploy");
        assert.strictEqual(user.lock_passwd, true);
        assert.deepStrictEqual(user.ssh_authorized_keys, [BASE_INPUTS.sshPublicKey]);
        assert.strictEqual(cfg.ssh_authorized_keys, undefined);
    });

    it("keeps hostile values inside their strings", () => {
        const hostile: Partial<TemplateInputs> = {
            sshUser: "deploy",
            sshPublicKey: 'ssh-ed25519 AAAA x"\nruncmd: [["rm", "-rf", "/"]]\n#',
            domain: 'x.example.com"\nbootcmd: [reboot]\n',
        };
        const cfg = load(renderCloudInit(contextFor(hostile)));
        assert.deepStrictEqual(Object.keys(cfg).sort(), ["disable_root", "package_update", "package_upgrade", "runcmd", "ssh_pwauth", "users", "write_files"]);
        const user = cfg.users?.[1] as { ssh_authorized_keys: string[] };
        assert.deepStrictEqual(user.ssh_authorized_keys, [hostile.sshPublicKey]);
        const marker = cfg.write_files.find((w) => w.path === "/var/lib/slotshift/provisioned");
        assert.strictEqual(marker?.content, `app=${BASE_INPUTS.appName}\ndomain=${hostile.domain}\n`);
        assert.strictEqual(cfg.runcmd?.length, 1);
    });

    it("installs the program's SSH host key, with the image's own keys deleted and none generated", () => {
        const pair = utils.generateKeyPairSync("ed25519", { comment: "shop-prod" });
        const cfg = load(renderCloudInit(contextFor({}), { publicKey: pair.public, privateKey: pair.private })) as CloudConfig & Record<string, unknown>;
        assert.deepStrictEqual(cfg.ssh_keys, { ed25519_private: pair.private, ed25519_public: pair.public });
        assert.strictEqual(cfg.ssh_deletekeys, true);
        assert.deepStrictEqual(cfg.ssh_genkeytypes, []);
        assert.ok(!("ssh_keys" in load(renderCloudInit(contextFor({})))));
    });

    it("omits the key entries when no key is configured (the EC2 key pair still applies)", () => {
        const cfg = load(renderCloudInit(contextFor({ sshPublicKey: undefined })));
        assert.strictEqual(cfg.ssh_authorized_keys, undefined);
        assert.strictEqual(cfg.users, undefined);
    });
});
