// The Host's own dynamic resources through the real Pulumi engine (the CLI from
// scripts/pulumi-toolchain.sh), with fixtures/host-program and a file backend in a temp directory:
// the generated SSH host key stays a secret in the state and never changes, and the replacement
// guard fails `pulumi preview` (and `up`) naming the key unless the change is acknowledged.
// Without the Pulumi CLI the tests are skipped, saying why.
import * as assert from "assert";
import { spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

const REPO = path.resolve(__dirname, "..", "..");
const PROGRAM = path.join(__dirname, "fixtures", "host-program");

describe("host resources through the Pulumi engine (fixtures/host-program)", function () {
    this.timeout(10 * 60_000);
    const stack = `host-it-${process.pid}`;
    let tmp: string;
    let env: NodeJS.ProcessEnv;
    let configFile: string;

    function pulumi(args: string[], stackArgs = true): Promise<{ code: number | null; out: string }> {
        const full = stackArgs ? [...args, "--stack", stack, "--config-file", configFile] : args;
        return new Promise((resolve, reject) => {
            const child = spawn("pulumi", full, { cwd: PROGRAM, env, stdio: ["ignore", "pipe", "pipe"] });
            let out = "";
            child.stdout.on("data", (c: Buffer) => (out += c.toString("utf8")));
            child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
            child.on("error", reject);
            child.on("close", (code) => resolve({ code, out }));
        });
    }
    async function ok(args: string[], stackArgs = true): Promise<string> {
        const r = await pulumi(args, stackArgs);
        assert.strictEqual(r.code, 0, `pulumi ${args.join(" ")} failed:\n${r.out}`);
        return r.out;
    }
    const UP = ["up", "--yes", "--skip-preview", "--non-interactive", "--color", "never", "--suppress-progress"];
    const PREVIEW = ["preview", "--non-interactive", "--color", "never", "--suppress-progress"];

    before(async function () {
        const tc = spawnSync("bash", [path.join(REPO, "scripts", "pulumi-toolchain.sh")], { cwd: REPO, encoding: "utf8", timeout: 20 * 60_000 });
        const bin = tc.stdout.trim().split("\n").pop();
        if (tc.status !== 0 || !bin || !fs.existsSync(path.join(bin, "pulumi"))) {
            console.log(
                `      skipped: no Pulumi CLI (scripts/pulumi-toolchain.sh: ${(tc.stderr || String(tc.error)).trim().split("\n").slice(-3).join(" | ")})`,
            );
            return this.skip();
        }
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-host-it-"));
        fs.mkdirSync(path.join(tmp, "state"));
        env = {
            ...process.env,
            PATH: `${bin}:${process.env.PATH}`,
            PULUMI_HOME: path.join(tmp, "pulumi-home"),
            PULUMI_CONFIG_PASSPHRASE: "slotshift-test-passphrase",
            PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
            PULUMI_SKIP_UPDATE_CHECK: "true",
            PULUMI_NODEJS_TRANSPILE_ONLY: "true",
        };
        delete env.PULUMI_BACKEND_URL;
        delete env.PULUMI_ACCESS_TOKEN;
        await ok(["login", `file://${path.join(tmp, "state")}`], false);
        await ok(["stack", "init", stack], false);
        configFile = path.join(tmp, `Pulumi.${stack}.yaml`);
        fs.renameSync(path.join(PROGRAM, `Pulumi.${stack}.yaml`), configFile);
        await ok(["config", "set", "subnetId", "subnet-0aaa"]);
        await ok(["config", "set", "postgresql", "true"]);
    });

    after(async function () {
        if (!env) return;
        await pulumi(["destroy", "--yes", "--non-interactive", "--skip-preview"]);
        await pulumi(["stack", "rm", "--yes", "--force", stack], false);
        for (const f of fs.readdirSync(PROGRAM).filter((n) => n.startsWith(`Pulumi.${stack}`))) fs.rmSync(path.join(PROGRAM, f));
        if (!process.env.SLOTSHIFT_KEEP_TMP) fs.rmSync(tmp, { recursive: true, force: true });
    });

    it("generates the host key once: the private key a secret in the state, the same key on every later up", async () => {
        await ok(UP);
        const publicKey = (await ok(["stack", "output", "publicKey", "--stack", stack], false)).trim();
        assert.match(publicKey, /^ssh-ed25519 AAAA\S+ host-program$/);
        const privateKey = await ok(["stack", "output", "privateKey", "--show-secrets", "--stack", stack], false);
        assert.match(privateKey, /BEGIN OPENSSH PRIVATE KEY/);
        const state = await ok(["stack", "export", "--stack", stack], false);
        for (const line of privateKey.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"))) {
            assert.ok(!state.includes(line), "a line of the private host key is in the state in plain text");
        }
        await ok(UP);
        assert.strictEqual((await ok(["stack", "output", "publicKey", "--stack", stack], false)).trim(), publicKey, "the key never changes");
    });

    it("a subnet change of a stack with postgresql fails preview and up naming the key; acknowledged, it passes", async () => {
        await ok(["config", "set", "subnetId", "subnet-0bbb"]);
        for (const cmd of [PREVIEW, UP]) {
            const r = await pulumi(cmd);
            assert.notStrictEqual(r.code, 0, r.out);
            assert.match(r.out, /slotshift:subnetId changed from "subnet-0aaa" to "subnet-0bbb": that replaces the instance of a stack with postgresql/);
            assert.match(r.out, /Set slotshift:allowHostReplacement true to mean it/);
        }
        await ok(["config", "set", "allowHostReplacement", "true"]);
        await ok(PREVIEW);
        await ok(UP);
        // The new subnet is now the recorded one: no acknowledgement needed any more.
        await ok(["config", "rm", "allowHostReplacement"]);
        await ok(PREVIEW);
    });
});
