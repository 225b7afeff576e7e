// The resource graph of the prod, staging and existing-host stacks, under Pulumi mocks: what the
// host looks like on AWS, what is protected, that secrets stay secret, the order of the steps,
// and that a new version touches nothing but the release and the shift.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import {
    EIP_ADDRESS,
    fakeAgentBundle,
    INSTANCE_ID,
    isSecret,
    mockHostKey,
    plainParts,
    ProgramRun,
    RecordedResource,
    reveal,
    runProgram,
} from "./helpers/mock-program";
import { cliConfig, NAMESPACE, stackFile, TEST_ENV_SECRET, TEST_PRIVATE_KEY } from "./helpers/stack-config";
import { renderDebianSetupScript, renderRollbackScript } from "../../program/host-files";
import { hostLayout } from "../../lib/host-layout";
import { buildDataVolumeContext } from "../../program/template-context";
import { agentSettingsFor, templateContextFor } from "../../components/stack";
import { hostReplacementGuardProvider } from "../../components/host-replacement-guard";
import { diffInputs } from "../../components/ssh/provider";
import { sha256Hex, SSH_COMMAND_TYPE } from "../../components/ssh/ssh-command";
import { parseStackConfig } from "../../program/config-schema";

const HOST_TYPES = /^(aws:|slotshift:host:Host$|pulumi-nodejs:dynamic\/ssh:HostKey$|pulumi-nodejs:dynamic\/host:ReplacementGuard$)/;
const DEPLOY_TYPES = /^slotshift:release:|^pulumi-nodejs:dynamic\/ssh:Command$/;

/** What the provider decides for a resource whose inputs went from `before` to `after` (secrets opened, as the provider sees them). */
function providerDiff(before: RecordedResource, after: RecordedResource) {
    return diffInputs(reveal(before.inputs), reveal(after.inputs));
}

/** Resources that upload files before their command runs. */
function uploaders(r: ProgramRun): string[] {
    return r
        .ofType(SSH_COMMAND_TYPE)
        .filter((x) => (x.inputs.uploads ?? []).length > 0)
        .map((x) => x.name);
}

function stackValue(stack: string, key: string): any {
    return stackFile(stack)[`${NAMESPACE}:${key}`];
}

/** Names of the resources `r` waits for (transitively). */
function waitsFor(run: ProgramRun, r: RecordedResource): Set<string> {
    const urns = run.dependsOnTransitively(r.urn);
    return new Set(run.resources.filter((x) => urns.has(x.urn)).map((x) => x.name));
}

function assertWaits(run: ProgramRun, name: string, expected: string[]): void {
    const deps = waitsFor(run, run.byName(name));
    for (const e of expected) assert.ok(deps.has(e), `${name} does not wait for ${e} (waits for: ${[...deps].join(", ")})`);
}

const runs: Record<string, ProgramRun> = {};
async function run(stack: string): Promise<ProgramRun> {
    runs[stack] ??= await runProgram({ stack, cfg: cliConfig(stack), forbidAws: stack.startsWith("existing") });
    return runs[stack];
}

for (const stack of ["prod", "staging"]) {
    describe(`${stack} stack (aws)`, () => {
        let r: ProgramRun;
        before(async () => {
            r = await run(stack);
        });

        it("opens 80 and 443 to everyone and SSH only to the allowed CIDRs", () => {
            const sgs = r.ofType("aws:ec2/securityGroup:SecurityGroup");
            assert.strictEqual(sgs.length, 1);
            const ingress = sgs[0].inputs.ingress as any[];
            const byPort = (p: number) => ingress.filter((i) => i.fromPort <= p && p <= i.toPort);
            for (const p of [80, 443]) {
                assert.strictEqual(byPort(p).length, 1, `one rule for ${p}`);
                assert.deepStrictEqual([byPort(p)[0].protocol, byPort(p)[0].cidrBlocks], ["tcp", ["0.0.0.0/0"]]);
            }
            const ssh = byPort(22);
            assert.strictEqual(ssh.length, 1);
            assert.deepStrictEqual(ssh[0].cidrBlocks, stackValue(stack, "allowedSshCidrs"));
            assert.deepStrictEqual(ssh[0].ipv6CidrBlocks ?? [], []);
            assert.strictEqual(ingress.length, 3, "no other ingress rule");
            assert.strictEqual(r.byName("shop-host-debian").inputs.vpcSecurityGroupIds[0], "sg-0123");
        });

        it("puts the security group in the default VPC and the instance in a stable default subnet", () => {
            assert.strictEqual(r.ofType("aws:ec2/securityGroup:SecurityGroup")[0].inputs.vpcId, "vpc-default");
            assert.strictEqual(r.byName("shop-host-debian").inputs.subnetId, "subnet-0aaa");
        });

        it("requires IMDSv2 and encrypts a gp3 root volume", () => {
            const instance = r.byName("shop-host-debian").inputs;
            assert.strictEqual(instance.metadataOptions.httpTokens, "required");
            assert.strictEqual(instance.metadataOptions.httpEndpoint, "enabled");
            assert.strictEqual(instance.rootBlockDevice.encrypted, true);
            assert.strictEqual(instance.rootBlockDevice.volumeType, "gp3");
            assert.strictEqual(instance.instanceType, stackValue(stack, "instanceType"));
        });

        it("boots the latest official Debian 12 image, ignoring newer images later", () => {
            const amiCall = r.calls.find((c) => c.token === "aws:ec2/getAmi:getAmi")!;
            assert.deepStrictEqual(amiCall.inputs.owners, ["136693071363"]);
            assert.strictEqual(amiCall.inputs.mostRecent, true);
            assert.deepStrictEqual(amiCall.inputs.filters.find((f: any) => f.name === "name").values, ["debian-12-amd64-*"]);
            assert.strictEqual(r.byName("shop-host-debian").inputs.ami, "ami-debian");
            assert.match(reveal(r.byName("shop-host-debian").inputs.userData), /^#cloud-config/);
        });

        it("installs the configured public key as the key pair", () => {
            const key = r.ofType("aws:ec2/keyPair:KeyPair")[0];
            assert.strictEqual(key.inputs.publicKey, stackValue(stack, "sshPublicKey"));
            assert.strictEqual(r.byName("shop-host-debian").inputs.keyName, "shop-host-key-1234");
        });

        it("gives the host an Elastic IP through a separate association (stable across replacement)", () => {
            const eip = r.ofType("aws:ec2/eip:Eip");
            const assoc = r.ofType("aws:ec2/eipAssociation:EipAssociation");
            assert.strictEqual(eip.length, 1);
            assert.strictEqual(eip[0].inputs.domain, "vpc");
            assert.strictEqual(eip[0].inputs.instance, undefined, "the EIP itself must not name the instance");
            assert.deepStrictEqual([assoc[0].inputs.allocationId, assoc[0].inputs.instanceId], ["eipalloc-1", INSTANCE_ID]);
            assert.strictEqual(r.outputs.hostAddress, EIP_ADDRESS);
            assert.strictEqual(reveal(r.byName("shop-shift-activate").inputs.connection).host, EIP_ADDRESS);
        });

        it("generates the instance's SSH host key, hands it over in the user data (a secret), and pins it on every step", () => {
            const key = r.ofType("pulumi-nodejs:dynamic/ssh:HostKey");
            assert.strictEqual(key.length, 1);
            assert.ok(key[0].additionalSecretOutputs.includes("privateKey"), "the private key is encrypted in the state");
            const { publicKey, privateKey } = mockHostKey();
            for (const x of r.ofType(SSH_COMMAND_TYPE)) assert.strictEqual(reveal(x.inputs.connection).hostKey, publicKey, `${x.name} pins the host key`);
            const userData = r.byName("shop-host-debian").inputs.userData;
            assert.ok(isSecret(userData), "the user data carries the private host key: a secret");
            const cloudInit = parseYaml(reveal(userData));
            assert.deepStrictEqual(cloudInit.ssh_keys, { ed25519_private: privateKey, ed25519_public: publicKey });
            assert.deepStrictEqual([cloudInit.ssh_deletekeys, cloudInit.ssh_genkeytypes], [true, []]);
            for (const x of r.resources) {
                const plain = JSON.stringify(plainParts(x.inputs));
                assert.ok(!plain.includes(privateKey.split("\n")[2]), `${x.name} holds the private host key in plain text`);
            }
        });

        it("connects as the Debian image's user, with sudo", () => {
            const conn = reveal(r.byName("shop-setup-debian").inputs.connection);
            assert.deepStrictEqual([conn.user, conn.port], ["admin", 22]);
            assert.match(r.byName("shop-shift-activate").inputs.create, /^sudo -n node /);
            assert.strictEqual(r.byName("shop-setup-debian").inputs.create, "sudo -n bash -s");
        });

        it("re-runs every host step on a replaced instance (instance id in triggers)", () => {
            const steps = [
                "shop-setup-debian",
                "shop-setup-agent-install",
                "shop-setup-authorized-keys",
                "shop-proxy-apply",
                "shop-release-env",
                "shop-release-prepare",
                "shop-shift-activate",
            ];
            assert.deepStrictEqual(
                r
                    .ofType(SSH_COMMAND_TYPE)
                    .map((x) => x.name)
                    .sort(),
                [...steps].sort(),
                "every remote step is listed here",
            );
            for (const name of steps) assert.strictEqual(r.byName(name).inputs.triggers[0], INSTANCE_ID, name);
        });
    });
}

describe("aws placement", () => {
    it("uses a given subnet and its VPC instead of the default VPC", async () => {
        const r = await runProgram({ stack: "staging", cfg: cliConfig("staging", { subnetId: "subnet-0123abcd" }) });
        assert.strictEqual(r.byName("shop-host-debian").inputs.subnetId, "subnet-0123abcd");
        assert.strictEqual(r.ofType("aws:ec2/securityGroup:SecurityGroup")[0].inputs.vpcId, "vpc-custom");
        assert.deepStrictEqual(
            r.calls.filter((c) => c.token === "aws:ec2/getVpc:getVpc"),
            [],
        );
    });
});

describe("protect", () => {
    it("protects every host resource in prod", async () => {
        const r = await run("prod");
        const host = r.resources.filter((x) => HOST_TYPES.test(x.type));
        assert.strictEqual(host.filter((x) => x.custom).length, 9);
        for (const x of host) assert.strictEqual(x.protect, true, `${x.type} ${x.name}`);
    });

    it("leaves the deploy steps unprotected in prod (a new version replaces them)", async () => {
        const r = await run("prod");
        for (const x of r.resources.filter((x) => DEPLOY_TYPES.test(x.type))) assert.strictEqual(x.protect, false, x.name);
    });

    it("protects nothing in staging", async () => {
        const r = await run("staging");
        assert.ok(r.resources.length > 10);
        for (const x of r.resources) assert.strictEqual(x.protect, false, `${x.type} ${x.name}`);
    });
});

describe("secrets", () => {
    for (const stack of ["prod", "staging", "existing-example"]) {
        it(`${stack}: the private key and env values appear only inside secrets`, async () => {
            const r = await run(stack);
            for (const x of r.resources) {
                const plain = JSON.stringify(plainParts(x.inputs));
                assert.ok(!plain.includes("leakcanary"), `${x.name} has a secret in plain text: ${plain.slice(0, 300)}`);
            }
            assert.ok(!JSON.stringify(r.outputs).includes("leakcanary"));
            // ...and they do reach the host, wrapped.
            const env = r.byName("shop-release-env").inputs;
            assert.ok(isSecret(env.stdin));
            assert.ok(reveal(env.stdin).includes(`DJANGO_SECRET_KEY=${TEST_ENV_SECRET}\n`));
            for (const x of r.ofType(SSH_COMMAND_TYPE)) {
                assert.ok(isSecret(x.inputs.connection), `${x.name} connection`);
                assert.match(reveal(x.inputs.connection).privateKey, /leakcanary/);
                assert.ok(x.additionalSecretOutputs.includes("connection"), `${x.name} keeps the connection secret in its outputs`);
            }
        });
    }

    it("the provider code stored with every command holds no secret and no captured module", async () => {
        const r = await run("existing-example");
        const commands = r.ofType(SSH_COMMAND_TYPE);
        assert.ok(commands.length >= 5);
        const code = commands[0].inputs.__provider;
        assert.strictEqual(typeof code, "string", "not a secret envelope: nothing secret was captured");
        for (const x of commands) assert.strictEqual(x.inputs.__provider, code, `${x.name}: one provider`);
        assert.doesNotMatch(code, /leakcanary|PRIVATE KEY|DJANGO/);
        // ssh2 is loaded where the provider runs, not serialized from this process.
        assert.match(code, /require\("ssh2"\)/);
        assert.doesNotMatch(code, /slotshift:|shop/, "no config value captured");
    });

    it("keeps the env command's stdin and output secret in state and off the console", async () => {
        const env = (await run("prod")).byName("shop-release-env");
        for (const out of ["stdin", "stdout", "stderr"]) assert.ok(env.additionalSecretOutputs.includes(out), out);
        assert.notStrictEqual(env.inputs.logging, "stdoutAndStderr");
        assert.doesNotMatch(env.inputs.create, /DJANGO|=/);
        // Build commands run with that environment: their output is kept secret in state too.
        const prepare = (await run("prod")).byName("shop-release-prepare");
        for (const out of ["stdout", "stderr"]) assert.ok(prepare.additionalSecretOutputs.includes(out), out);
        // So does the shift's, which carries the migrations' output; the live version stays public.
        const shift = (await run("prod")).byName("shop-shift-activate");
        for (const out of ["stdout", "stderr"]) assert.ok(shift.additionalSecretOutputs.includes(out), `shift ${out}`);
        assert.strictEqual((await run("prod")).outputs.liveVersion, stackValue("prod", "releaseVersion"));
    });
});

describe("order: host -> setup -> proxy -> release -> shift", () => {
    for (const stack of ["prod", "staging", "existing-example"]) {
        it(stack, async () => {
            const r = await run(stack);
            const hostParts = stack === "existing-example" ? [] : ["shop-host-debian", "shop-host-eip-assoc", "shop-host-sg", "shop-host-key"];
            const setup = ["shop-setup-debian", "shop-setup-agent-install"];
            const release = ["shop-release-env", "shop-release-prepare"];
            for (const s of setup) assertWaits(r, s, hostParts);
            // The agent is uploaded by the install step itself, after the setup made its directory.
            assertWaits(r, "shop-setup-agent-install", ["shop-setup-debian"]);
            assert.strictEqual(r.byName("shop-setup-agent-install").inputs.uploads.length, 2, "the agent and the rollback script");
            // A local archive is uploaded by the prepare step itself, after the env file is written.
            assert.strictEqual(r.byName("shop-release-prepare").inputs.uploads.length, stack === "existing-example" ? 1 : 0);
            assertWaits(r, "shop-proxy-apply", setup);
            for (const s of release) assertWaits(r, s, ["shop-proxy-apply"]);
            assertWaits(
                r,
                "shop-release-prepare",
                release.filter((n) => n !== "shop-release-prepare"),
            );
            assertWaits(r, "shop-shift-activate", [...release, "shop-proxy-apply", ...setup, ...hostParts]);
            // And never the other way round.
            assert.ok(!waitsFor(r, r.byName("shop-proxy-apply")).has("shop-release-prepare"));
            assert.ok(!waitsFor(r, r.byName("shop-setup-debian")).has("shop-proxy-apply"));
        });
    }
});

describe("deploy steps", () => {
    it("shifts with the configured plan and gates, streams the output, and retires the version on delete", async () => {
        const a = (await run("prod")).byName("shop-shift-activate").inputs;
        const base = "sudo -n node /srv/shop/deploy/agent.js";
        assert.strictEqual(
            a.create,
            `${base} activate --config /srv/shop/deploy/agent.json --version 2026.11.20-1 --shift-plan 10:60,50:60,100:0 --max-error-ratio 0.005 --min-requests-per-step 10 --max-step-extension 60 --max-latency-ratio 3 --health-timeout 120 --drain-timeout 60 --keep-previous-warm`,
        );
        assert.strictEqual(a.delete, `${base} retire --config /srv/shop/deploy/agent.json --version 2026.11.20-1`);
        assert.strictEqual(a.update, `${base} status --config /srv/shop/deploy/agent.json`);
        assert.strictEqual(a.logging, "stdoutAndStderr");
        assert.ok(a.triggers.includes("2026.11.20-1"));
    });

    it("passes --no-keep-previous-warm when keepPreviousWarm is false", async () => {
        const r = await runProgram({ stack: "prod", cfg: cliConfig("prod", { keepPreviousWarm: false }) });
        assert.match(r.byName("shop-shift-activate").inputs.create, / --no-keep-previous-warm$/);
    });

    it("lets the agent download an https source: the URL on stdin (secret), the sha256 and the limits on the command line", async () => {
        const r = await run("prod");
        assert.deepStrictEqual(uploaders(r), ["shop-setup-agent-install"], "only the agent is uploaded");
        const prepare = r.byName("shop-release-prepare");
        assert.strictEqual(
            prepare.inputs.create,
            `sudo -n node /srv/shop/deploy/agent.js prepare --config /srv/shop/deploy/agent.json --version 2026.11.20-1 --source-stdin --sha256 ${stackValue("prod", "releaseSha256")} --release-download-max-mib 2048 --release-download-timeout 600`,
        );
        const url = stackValue("prod", "releaseSource");
        assert.ok(isSecret(prepare.inputs.stdin), "stdin is a secret");
        assert.strictEqual(reveal(prepare.inputs.stdin), url);
        // A presigned URL is a credential: nowhere in plain text, and a secret output too.
        assert.ok(!JSON.stringify(plainParts(prepare.inputs)).includes("artifacts.example.com"));
        assert.ok(prepare.additionalSecretOutputs.includes("stdin"));
        assert.deepStrictEqual(r.byName("shop-release-prepare").inputs.triggers, [INSTANCE_ID, "2026.11.20-1"]);
    });

    it("uploads a local archive, which root moves into the artifacts directory before prepare", async () => {
        const r = await run("existing-example");
        assert.deepStrictEqual(uploaders(r), ["shop-setup-agent-install", "shop-release-prepare"]);
        const uploads = r.byName("shop-release-prepare").inputs.uploads;
        assert.strictEqual(uploads.length, 1);
        const artifact = uploads[0];
        assert.strictEqual(artifact.remotePath, ".slotshift-shop-1.4.0.tar.gz");
        assert.match(artifact.localPath, /^\/.*\/build\/shop-1\.4\.0\.tar\.gz$/);
        assert.strictEqual(artifact.mode, "0600");
        assert.strictEqual(artifact.sha256, sha256Hex("archive 1.4.0"), "the archive's content hash: a rebuilt archive is a diff");
        assert.deepStrictEqual(r.byName("shop-release-prepare").inputs.triggers, [r.byName("shop-release-env").inputs.triggers[0], "1.4.0"]);
        assert.match(r.byName("shop-release-prepare").inputs.triggers[0], /^deploy@192\.0\.2\.10:22 SHA256:/);
        const prepare = r.byName("shop-release-prepare").inputs.create as string;
        assert.match(
            prepare,
            /^cd && if \[ -f \.slotshift-shop-1\.4\.0\.tar\.gz \]; then sudo -n sh -c 'install -m 0600 -o root -g root \.slotshift-shop-1\.4\.0\.tar\.gz \/srv\/shop\/deploy\/artifacts\/1\.4\.0\.tar\.gz && rm -f /,
        );
        assert.match(
            prepare,
            new RegExp(
                `prepare --config /srv/shop/deploy/agent\\.json --version 1\\.4\\.0 --source /srv/shop/deploy/artifacts/1\\.4\\.0\\.tar\\.gz --sha256 ${sha256Hex("archive 1.4.0")}$`,
            ),
        );
    });

    it("uploads straight into the artifacts directory as root, without sudo", async () => {
        const r = await runProgram({ stack: "existing-example", cfg: cliConfig("existing-example", { sshUser: "root" }), forbidAws: true });
        assert.strictEqual(r.byName("shop-release-prepare").inputs.uploads[0].remotePath, "/srv/shop/deploy/artifacts/1.4.0.tar.gz");
        assert.strictEqual(
            r.byName("shop-release-prepare").inputs.create,
            `node /srv/shop/deploy/agent.js prepare --config /srv/shop/deploy/agent.json --version 1.4.0 --source /srv/shop/deploy/artifacts/1.4.0.tar.gz --sha256 ${sha256Hex("archive 1.4.0")}`,
        );
        for (const c of r.ofType(SSH_COMMAND_TYPE)) assert.doesNotMatch(c.inputs.create, /sudo/, c.name);
    });

    it("writes the env file through the agent, with the values on stdin only", async () => {
        const env = (await run("staging")).byName("shop-release-env").inputs;
        assert.strictEqual(env.create, "sudo -n node /srv/shop/deploy/agent.js write-env --config /srv/shop/deploy/agent.json");
        assert.strictEqual(reveal(env.stdin), "DJANGO_SECRET_KEY=sup3r-s3cret-DJANGO-key-leakcanary\nDATABASE_URL=postgres:///shop\n");
    });

    it("runs the Debian setup script rendered from the same settings, on stdin", async () => {
        const r = await run("staging");
        const values = Object.entries(stackFile("staging")).filter(([k]) => k.startsWith(`${NAMESPACE}:`));
        const settings = parseStackConfig({
            ...Object.fromEntries(values.map(([k, v]) => [k.slice(NAMESPACE.length + 1), v])),
            sshPrivateKey: TEST_PRIVATE_KEY,
        });
        // The data volume's id is known once it exists: the mock's.
        const context = { ...templateContextFor(settings), dataVolume: buildDataVolumeContext(hostLayout("shop"), "vol-0123456789abcdef0", "debian") };
        const expected = renderDebianSetupScript(context, agentSettingsFor(settings));
        assert.strictEqual(r.byName("shop-setup-debian").inputs.stdin, expected);
        assert.strictEqual(r.byName("shop-setup-debian").inputs.logging, "stdoutAndStderr");
    });

    it("applies the proxy files as root from stdin, asking for the first ACME certificate in prod", async () => {
        const prod = (await run("prod")).byName("shop-proxy-apply").inputs;
        assert.strictEqual(prod.create, "sudo -n bash -s");
        assert.match(prod.stdin, /certbot certonly --webroot .* -d shop\.example\.com -m ops@example\.com /);
        assert.match(prod.stdin, /node \/srv\/shop\/deploy\/agent\.js reload-proxy --config \/srv\/shop\/deploy\/agent\.json/);
        assert.doesNotMatch((await run("staging")).byName("shop-proxy-apply").inputs.stdin, /certbot/);
    });

    it("uploads the agent and installs it only after checking its hash", async () => {
        const r = await run("staging");
        const install = r.byName("shop-setup-agent-install").inputs;
        const rollbackScript = renderRollbackScript(hostLayout("shop"), { backend: "app" });
        assert.deepStrictEqual(install.uploads, [
            { localPath: fakeAgentBundle().path, remotePath: ".slotshift-shop-agent.js", mode: "0600", sha256: "a".repeat(64) },
            { content: rollbackScript, remotePath: ".slotshift-shop-rollback.sh", mode: "0600", sha256: sha256Hex(rollbackScript) },
        ]);
        assert.match(
            install.create,
            new RegExp(
                `sha256sum -c --quiet .*install -m 0755 -o root -g root .*mv -f /srv/shop/deploy/\\.agent\\.js\\.slotshift-new /srv/shop/deploy/agent\\.js && systemctl restart shop-dashboard\\.service`,
            ),
        );
        assert.match(install.create, /^cd && sudo -n sh -c /);
        // The rollback command beside it, root only, from templates/rollback.sh.njk.
        assert.match(
            install.create,
            /\.slotshift-shop-rollback\.sh'\\'' \| sha256sum -c --quiet - && install -m 0700 -o root -g root \.slotshift-shop-rollback\.sh \/srv\/shop\/deploy\/\.rollback\.slotshift-new && mv -f \/srv\/shop\/deploy\/\.rollback\.slotshift-new \/srv\/shop\/deploy\/rollback && /,
        );
        assert.deepStrictEqual(install.triggers, [INSTANCE_ID, "a".repeat(64), sha256Hex(rollbackScript)]);
    });

    it("exports the URL, address, live version and ready-to-paste commands", async () => {
        const r = await run("prod");
        assert.deepStrictEqual(r.outputs, {
            url: "https://shop.example.com/",
            hostAddress: EIP_ADDRESS,
            liveVersion: "2026.11.20-1",
            lastDeploy: "no deploy figures (the last update did not shift traffic)",
            sshCommand: `ssh admin@${EIP_ADDRESS}`,
            agentStatusCommand: `ssh admin@${EIP_ADDRESS} sudo -n node /srv/shop/deploy/agent.js status --config /srv/shop/deploy/agent.json`,
            rollbackCommand: `ssh -o KexAlgorithms=curve25519-sha256,curve25519-sha256@libssh.org admin@${EIP_ADDRESS} sudo -n /srv/shop/deploy/rollback`,
            // The tunnel and the token's command: the token itself is in no output.
            dashboardCommand: `ssh -N -L 9090:127.0.0.1:8090 admin@${EIP_ADDRESS}`,
            dashboardTokenCommand: `ssh admin@${EIP_ADDRESS} sudo -n cat /srv/shop/deploy/dashboard-token`,
        });
    });
});

describe("a new version", () => {
    function inputsByUrn(r: ProgramRun): Map<string, string> {
        return new Map(r.resources.map((x) => [x.urn, JSON.stringify(reveal(x.inputs))]));
    }

    const CASES = [
        { stack: "prod", next: "2026.11.21-1", changed: ["shop-release-prepare", "shop-shift-activate"] },
        // The upload (its path carries the version) is part of the prepare step.
        { stack: "existing-example", next: "1.5.0", changed: ["shop-release-prepare", "shop-shift-activate"] },
    ];
    for (const { stack, next, changed } of CASES) {
        it(`${stack}: changes only the release and the shift, nothing of the host, its setup or the proxy`, async () => {
            const before = await run(stack);
            const after = await runProgram({ stack, cfg: cliConfig(stack, { releaseVersion: next }), forbidAws: stack.startsWith("existing") });
            const a = inputsByUrn(before);
            const b = inputsByUrn(after);
            assert.deepStrictEqual([...b.keys()].sort(), [...a.keys()].sort(), "same resources");
            const names = [...a.keys()].filter((urn) => a.get(urn) !== b.get(urn)).map((urn) => after.resources.find((x) => x.urn === urn)!.name);
            assert.deepStrictEqual(names.sort(), changed);
            // The version is a trigger (a replacement, so the old version's delete retires it).
            assert.ok(after.byName("shop-shift-activate").inputs.triggers.includes(next));
            assert.ok(after.byName("shop-release-prepare").inputs.triggers.includes(next));
            // ...and that is what the provider decides from these very inputs.
            for (const name of changed) assert.deepStrictEqual(providerDiff(before.byName(name), after.byName(name)).replaces, ["triggers"], name);
            for (const x of after.ofType(SSH_COMMAND_TYPE).filter((x) => !changed.includes(x.name))) {
                assert.strictEqual(providerDiff(before.byName(x.name), x).changes, false, `${x.name} runs nothing`);
            }
        });
    }

    it("a changed plan or gate alone is an update of the shift (it reports status), never a new shift", async () => {
        const before = await run("prod");
        const after = await runProgram({ stack: "prod", cfg: cliConfig("prod", { shiftPlan: ["25%:30s", "100%"], maxErrorRatio: "0.02" }) });
        const d = providerDiff(before.byName("shop-shift-activate"), after.byName("shop-shift-activate"));
        assert.deepStrictEqual([d.changes, d.replaces], [true, []]);
        assert.match(after.byName("shop-shift-activate").inputs.update, / status --config /);
    });

    it("a changed app environment rewrites the env file in place and shifts the same version onto it (a keyed digest in the triggers, no value)", async () => {
        const before = await run("staging");
        const after = await runProgram({
            stack: "staging",
            cfg: cliConfig("staging", {}, { sshPrivateKey: TEST_PRIVATE_KEY, appEnv: "DJANGO_SECRET_KEY=rotated-leakcanary\n" }),
        });
        const changed = after.resources
            .filter((x) => JSON.stringify(reveal(x.inputs)) !== JSON.stringify(reveal(before.byName(x.name).inputs)))
            .map((x) => x.name);
        assert.deepStrictEqual(changed, ["shop-release-env", "shop-shift-activate"]);
        const d = providerDiff(before.byName("shop-release-env"), after.byName("shop-release-env"));
        assert.deepStrictEqual([d.changes, d.replaces], [true, []]);
        assert.ok(isSecret(after.byName("shop-release-env").inputs.stdin));
        // The shift is replaced: the agent starts the live version again with the new environment.
        assert.deepStrictEqual(providerDiff(before.byName("shop-shift-activate"), after.byName("shop-shift-activate")).replaces, ["triggers"]);
        const triggers = after.byName("shop-shift-activate").inputs.triggers as unknown[];
        assert.ok(!isSecret(triggers), "public triggers: preview shows which one changed");
        assert.ok(!JSON.stringify(triggers).includes("rotated-leakcanary"));
        assert.match(String(triggers[3]), /^appEnv=hmac-sha256:[0-9a-f]{32}$/);
    });

    it("a rebuilt archive under the same version uploads and prepares again, without a new shift", async () => {
        const before = await run("existing-example");
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-rebuilt-"));
        fs.mkdirSync(path.join(dir, "build"));
        fs.writeFileSync(path.join(dir, "build", "shop-1.4.0.tar.gz"), "archive 1.4.0, rebuilt");
        const after = await runProgram({ stack: "existing-example", cfg: cliConfig("existing-example"), forbidAws: true, baseDir: dir });
        const changed = after.resources
            .filter((x) => JSON.stringify(reveal(x.inputs)) !== JSON.stringify(reveal(before.byName(x.name).inputs)))
            .map((x) => x.name);
        assert.deepStrictEqual(changed, ["shop-release-prepare"]);
        const d = providerDiff(before.byName("shop-release-prepare"), after.byName("shop-release-prepare"));
        assert.deepStrictEqual([d.changes, d.replaces], [true, []]);
    });

    it("with a new local archive, uploads it", async () => {
        const before = inputsByUrn(await run("existing-example"));
        const after = await runProgram({
            stack: "existing-example",
            cfg: cliConfig("existing-example", { releaseVersion: "1.5.0", releaseSource: "build/shop-1.5.0.tar.gz" }),
            forbidAws: true,
        });
        const changed = after.resources.filter((x) => before.get(x.urn) !== JSON.stringify(reveal(x.inputs))).map((x) => x.name);
        assert.deepStrictEqual(changed.sort(), ["shop-release-prepare", "shop-shift-activate"]);
        const [artifact] = after.byName("shop-release-prepare").inputs.uploads;
        assert.match(artifact.localPath, /build\/shop-1\.5\.0\.tar\.gz$/);
        assert.strictEqual(artifact.remotePath, ".slotshift-shop-1.5.0.tar.gz");
        assert.strictEqual(artifact.sha256, sha256Hex("archive 1.5.0"));
    });

    it("a new agent build re-uploads and reinstalls the agent only", async () => {
        const before = await run("staging");
        const after = await runProgram({ stack: "staging", cfg: cliConfig("staging"), agentBundle: { path: "/tmp/other-agent.js", sha256: "b".repeat(64) } });
        const a = inputsByUrn(before);
        const changed = after.resources.filter((x) => a.get(x.urn) !== JSON.stringify(reveal(x.inputs))).map((x) => x.name);
        assert.deepStrictEqual(changed, ["shop-setup-agent-install"]);
        assert.deepStrictEqual(after.byName("shop-setup-agent-install").inputs.uploads[0], {
            localPath: "/tmp/other-agent.js",
            remotePath: ".slotshift-shop-agent.js",
            mode: "0600",
            sha256: "b".repeat(64),
        });
        assert.deepStrictEqual(providerDiff(before.byName("shop-setup-agent-install"), after.byName("shop-setup-agent-install")).replaces, ["triggers"]);
    });

    it("from another checkout (other absolute paths, same files) nothing runs", async () => {
        const before = await run("existing-example");
        const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-clone-"));
        fs.mkdirSync(path.join(elsewhere, "build"));
        fs.writeFileSync(path.join(elsewhere, "build", "shop-1.4.0.tar.gz"), "archive 1.4.0");
        const agentCopy = path.join(elsewhere, "agent.js");
        fs.copyFileSync(fakeAgentBundle().path, agentCopy);
        const after = await runProgram({
            stack: "existing-example",
            cfg: cliConfig("existing-example"),
            forbidAws: true,
            baseDir: elsewhere,
            agentBundle: { ...fakeAgentBundle(), path: agentCopy },
        });
        assert.notStrictEqual(
            after.byName("shop-release-prepare").inputs.uploads[0].localPath,
            before.byName("shop-release-prepare").inputs.uploads[0].localPath,
        );
        for (const x of after.ofType(SSH_COMMAND_TYPE)) assert.strictEqual(providerDiff(before.byName(x.name), x).changes, false, x.name);
    });
});

describe("existing host", () => {
    it("declares no AWS resource and calls no AWS function", async () => {
        const r = await run("existing-example");
        assert.deepStrictEqual(r.violations, []);
        assert.deepStrictEqual(
            r.calls.filter((c) => c.token.startsWith("aws:")),
            [],
        );
        assert.deepStrictEqual(
            r.resources.filter((x) => x.type.startsWith("aws:")),
            [],
        );
        assert.ok(r.ofType(SSH_COMMAND_TYPE).length >= 5, "it still deploys");
    });

    it("the AWS guard works: an aws stack under it fails", async () => {
        const quiet = console.error;
        console.error = () => undefined; // the SDK logs the failed invoke as well
        try {
            await assert.rejects(runProgram({ stack: "staging", cfg: cliConfig("staging"), forbidAws: true }), (e: any) => {
                assert.ok(
                    e.violations.some((v: string) => v.startsWith("call aws:ec2/")),
                    e.violations.join(", "),
                );
                return true;
            });
        } finally {
            console.error = quiet;
        }
    });

    it("connects to the configured address, port and user, and pins the host key", async () => {
        const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMtd/gCM3IQkztusbHpLbEsZSB0RCR4XakeH9aXyj6h+";
        const r = await runProgram({ stack: "existing-example", cfg: cliConfig("existing-example", { sshPort: 2222, sshHostKey: hostKey }), forbidAws: true });
        const conn = reveal(r.byName("shop-shift-activate").inputs.connection);
        assert.deepStrictEqual([conn.host, conn.port, conn.user, conn.hostKey], ["192.0.2.10", 2222, "deploy", hostKey]);
        // The pinned key is part of the host's identity: a machine reinstalled there gets every step again.
        assert.match(r.byName("shop-shift-activate").inputs.triggers[0], /^deploy@192\.0\.2\.10:2222 SHA256:[A-Za-z0-9+/]{43}$/);
        assert.strictEqual(r.outputs.sshCommand, "ssh -p 2222 deploy@192.0.2.10");
        assert.strictEqual(
            reveal((await run("existing-example")).byName("shop-proxy-apply").inputs.connection).hostKey,
            stackValue("existing-example", "sshHostKey"),
        );
    });
});

describe("nixos", () => {
    it("on aws: boots the official NixOS image as root and applies the module with nixos-rebuild", async () => {
        const r = await runProgram({ stack: "staging", cfg: cliConfig("staging", { osFlavour: "nixos", instanceType: "t4g.small" }) });
        const ami = r.calls.find((c) => c.token === "aws:ec2/getAmi:getAmi")!;
        assert.deepStrictEqual(ami.inputs.owners, ["427812963091"]);
        assert.deepStrictEqual(ami.inputs.filters.find((f: any) => f.name === "name").values, ["nixos/26.05*-aarch64-linux"]);
        assert.deepStrictEqual(ami.inputs.filters.find((f: any) => f.name === "architecture").values, ["arm64"]);
        const instance = r.byName("shop-host-nixos").inputs;
        // Only the host-key lines NixOS's apply-ec2-data reads before sshd starts, which amazon-init ignores.
        const lines = reveal(instance.userData).trim().split("\n");
        assert.ok(isSecret(instance.userData));
        assert.deepStrictEqual(
            lines.map((l: string) => l.replace(/:.*$/, "")),
            ["# SSH host key of this instance (managed by slotshift)", "SSH_HOST_ED25519_KEY", "SSH_HOST_ED25519_KEY_PUB"],
        );
        assert.strictEqual(lines[1].slice("SSH_HOST_ED25519_KEY:".length).replace(/\|/g, "\n") + "\n", mockHostKey().privateKey);
        assert.strictEqual(lines[2], `SSH_HOST_ED25519_KEY_PUB:${mockHostKey().publicKey}`);
        assert.strictEqual(reveal(r.byName("shop-setup-nixos").inputs.connection).hostKey, mockHostKey().publicKey);
        const setup = r.byName("shop-setup-nixos").inputs;
        assert.strictEqual(setup.create, "bash -s");
        assert.match(setup.stdin, /\/etc\/nixos\/slotshift-shop\.nix/);
        assert.match(setup.stdin, /\nnixos-rebuild switch\n/);
        assert.strictEqual(reveal(setup.connection).user, "root");
        assert.doesNotMatch(r.byName("shop-shift-activate").inputs.create, /sudo/);
    });
});

describe("aws: the data outlives the instance", () => {
    it("keeps PostgreSQL, media and the env file on an encrypted volume of its own, protected in prod, never deleted with the instance", async () => {
        const r = await run("prod");
        const volumes = r.ofType("aws:ebs/volume:Volume");
        assert.strictEqual(volumes.length, 1);
        const volume = volumes[0];
        assert.deepStrictEqual([volume.inputs.encrypted, volume.inputs.type, volume.inputs.size], [true, "gp3", 20]);
        assert.strictEqual(volume.inputs.availabilityZone, "eu-central-1a", "in the instance's subnet's zone");
        assert.strictEqual(volume.protect, true, "protected with the stack's protect");
        assert.ok(volume.ignoreChanges.includes("availabilityZone"), "a subnet elsewhere never replaces (empties) it");
        // Not a launch block device: EC2 only deletes those with the instance (deleteOnTermination).
        const instance = r.byName("shop-host-debian");
        assert.deepStrictEqual(instance.inputs.ebsBlockDevices ?? [], []);
        const attachment = r.ofType("aws:ec2/volumeAttachment:VolumeAttachment")[0];
        assert.deepStrictEqual(
            [attachment.inputs.volumeId, attachment.inputs.instanceId, attachment.inputs.deviceName],
            ["vol-0123456789abcdef0", INSTANCE_ID, "/dev/sdf"],
        );
        assert.strictEqual(attachment.inputs.stopInstanceBeforeDetaching, true, "PostgreSQL shuts down before the volume moves");
        assert.strictEqual(attachment.deleteBeforeReplace, true, "detached from the old instance before the new one takes it");
        // The setup mounts it by id before anything else runs there; the steps wait for the attachment.
        const setup = r.byName("shop-setup-debian");
        assert.match(setup.inputs.stdin, /\/dev\/disk\/by-id\/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0/);
        assert.ok(waitsFor(r, setup).has("shop-host-data-attachment"));
        assert.ok(setup.inputs.stdin.indexOf("data_volume\n") < setup.inputs.stdin.indexOf("# --- packages"), "mounted before PostgreSQL is installed");
    });

    it("NixOS: the module mounts the volume by id, the apply step prepares it before the switch", async () => {
        const r = await runProgram({ stack: "staging", cfg: cliConfig("staging", { osFlavour: "nixos" }) });
        const stdin = r.byName("shop-setup-nixos").inputs.stdin as string;
        assert.ok(stdin.indexOf("data_volume\n") < stdin.indexOf("nixos-rebuild switch"));
        assert.match(
            stdin,
            /fileSystems\."\/var\/lib\/slotshift\/shop-data" = \{\n {4}device = "\/dev\/disk\/by-id\/nvme-Amazon_Elastic_Block_Store_vol0123456789abcdef0";/,
        );
        assert.match(
            stdin,
            /fileSystems\."\/var\/lib\/postgresql" = \{\n {4}device = "\/var\/lib\/slotshift\/shop-data\/postgresql";\n {4}fsType = "none";\n {4}options = \[ "bind" "nofail" \];/,
        );
        assert.doesNotMatch(stdin, /\/etc\/fstab/, "NixOS owns its fstab");
    });

    it("rotating the deploy key replaces nothing: keyName is ignored, authorized_keys is an update", async () => {
        const newKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsNzbmH1hc0ZFBDZo4v1pIoxaHFyw4nWENwI9mYFLNp shop-deploy-2027";
        const before = await run("staging");
        const after = await runProgram({ stack: "staging", cfg: cliConfig("staging", { sshPublicKey: newKey }) });
        const instanceBefore = before.byName("shop-host-debian");
        const instanceAfter = after.byName("shop-host-debian");
        assert.ok(instanceAfter.ignoreChanges.includes("keyName"), "EC2 would replace the instance for a new key pair name");
        // What the engine compares: every input but the ignored ones (user data runs on first boot only).
        const compared = (x: RecordedResource) => Object.fromEntries(Object.entries(reveal(x.inputs)).filter(([k]) => !x.ignoreChanges.includes(k)));
        assert.deepStrictEqual(compared(instanceAfter), compared(instanceBefore), "no input the engine compares changes");
        assert.notStrictEqual(after.ofType("aws:ec2/keyPair:KeyPair")[0].inputs.publicKey, before.ofType("aws:ec2/keyPair:KeyPair")[0].inputs.publicKey);
        // The new key reaches the host over SSH, beside the key the deploys still log in with.
        const keys = after.byName("shop-setup-authorized-keys");
        assert.deepStrictEqual(providerDiff(before.byName("shop-setup-authorized-keys"), keys), { changes: true, replaces: [], deleteBeforeReplace: false });
        assert.match(reveal(keys.inputs.stdin), new RegExp(`^${newKey}$`, "m"));
        assert.match(keys.inputs.create, /^sudo -n sh -c .*\.ssh\/authorized_keys/);
        for (const step of after.ofType(SSH_COMMAND_TYPE)) {
            const old = before.byName(step.name);
            assert.deepStrictEqual(providerDiff(old, step).replaces, [], `${step.name} is not replaced`);
        }
    });

    describe("a change that replaces the instance of a stack with postgresql", () => {
        const guardOf = (r: ProgramRun) => reveal(r.ofType("pulumi-nodejs:dynamic/host:ReplacementGuard")[0].inputs);

        it("fails preview naming the key (subnetId), before the instance is touched", async () => {
            const before = await run("staging");
            const after = await runProgram({ stack: "staging", cfg: cliConfig("staging", { subnetId: "subnet-0123abcd" }) });
            const { failures } = await hostReplacementGuardProvider.check!(guardOf(before), guardOf(after));
            assert.strictEqual(failures?.length, 1);
            assert.strictEqual(failures![0].property, "subnetId");
            assert.match(
                failures![0].reason,
                /^slotshift:subnetId changed from "subnet-0aaa" to "subnet-0123abcd": that replaces the instance of a stack with postgresql .* Set slotshift:allowHostReplacement true/,
            );
            const instance = after.byName("shop-host-debian");
            assert.ok(instance.dependencies.includes(after.ofType("pulumi-nodejs:dynamic/host:ReplacementGuard")[0].urn), "the instance waits for the guard");
        });

        it("and a change of osFlavour (a new instance resource)", async () => {
            const before = await run("staging");
            const after = await runProgram({ stack: "staging", cfg: cliConfig("staging", { osFlavour: "nixos" }) });
            const { failures } = await hostReplacementGuardProvider.check!(guardOf(before), guardOf(after));
            assert.deepStrictEqual(
                failures?.map((f) => f.property),
                ["osFlavour"],
            );
        });

        it("passes when acknowledged, without postgresql, on the first deploy, and for changes that replace nothing", async () => {
            const before = await run("staging");
            const acked = await runProgram({ stack: "staging", cfg: cliConfig("staging", { subnetId: "subnet-0123abcd", allowHostReplacement: true }) });
            assert.deepStrictEqual((await hostReplacementGuardProvider.check!(guardOf(before), guardOf(acked))).failures, []);
            const noDb = await runProgram({ stack: "staging", cfg: cliConfig("staging", { subnetId: "subnet-0123abcd", postgresql: false }) });
            assert.deepStrictEqual((await hostReplacementGuardProvider.check!(guardOf(before), guardOf(noDb))).failures, []);
            assert.deepStrictEqual((await hostReplacementGuardProvider.check!({} as any, guardOf(before))).failures, []);
            const bigger = await runProgram({ stack: "staging", cfg: cliConfig("staging", { instanceType: "t3.large", rootVolumeGiB: 40 }) });
            assert.deepStrictEqual((await hostReplacementGuardProvider.check!(guardOf(before), guardOf(bigger))).failures, []);
        });
    });
});
