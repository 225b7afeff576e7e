// Stack config: Pulumi.yaml declares exactly what the schema reads, the stack files pass the CLI's
// checks and the schema, and every bad value fails the program before any resource exists, with
// one message that names the key and the reason (and never a secret).
import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_KEY_TYPES, parseStackConfig, SECRET_KEYS, stackConfigSchema } from "../../program/config-schema";
import { decodeConfigValue } from "../../program/load-config";
import { runProgram } from "./helpers/mock-program";
import { cliConfig, NAMESPACE, projectFile, ProgramConfig, stackFile, TEST_APP_ENV, TEST_PRIVATE_KEY } from "./helpers/stack-config";

const STACKS = ["prod", "staging", "existing-example"];

describe("Pulumi.yaml config declarations", () => {
    const project = projectFile();

    it("is the slotshift project on the nodejs runtime with TypeScript", () => {
        assert.strictEqual(project.name, "slotshift");
        assert.deepStrictEqual((project.runtime as any).name, "nodejs");
        assert.strictEqual((project.runtime as any).options?.typescript, true);
    });

    it("declares every schema key, and only those, with the type the program decodes it by", () => {
        const declared = Object.fromEntries(Object.entries(project.config).map(([k, d]) => [k, d.type]));
        assert.deepStrictEqual(declared, { ...CONFIG_KEY_TYPES });
        assert.deepStrictEqual(Object.keys(CONFIG_KEY_TYPES).sort(), Object.keys(stackConfigSchema.shape).sort());
    });

    it("describes every key, in the shape Pulumi's project schema allows", () => {
        for (const [key, decl] of Object.entries(project.config)) {
            // Pulumi's configTypeDeclaration: additionalProperties false, type required.
            assert.deepStrictEqual(
                Object.keys(decl).filter((k) => !["type", "items", "description", "secret", "default"].includes(k)),
                [],
                key,
            );
            assert.ok(["string", "integer", "boolean", "array"].includes(decl.type), `${key} type ${decl.type}`);
            assert.ok(decl.description && decl.description.length > 15, `${key} has no description`);
            if (decl.type === "array") assert.strictEqual(decl.items?.type, "string", `${key} items`);
        }
    });

    it("marks exactly the secret keys secret, with no default (a default would be stored in plain text)", () => {
        const secret = Object.entries(project.config)
            .filter(([, d]) => d.secret)
            .map(([k]) => k);
        assert.deepStrictEqual(secret.sort(), [...SECRET_KEYS].sort());
        for (const key of SECRET_KEYS) assert.strictEqual(project.config[key].default, undefined, key);
    });

    it("has defaults that mean the same as the schema's own defaults", () => {
        const required = {
            appName: "shop",
            releaseVersion: "1.0.0",
            releaseSource: "https://example.com/a.tar.gz",
            releaseSha256: "e3".repeat(32),
            startCommand: "app --port $PORT",
            domain: "shop.example.com",
            hostTarget: "existing",
            hostAddress: "192.0.2.1",
            sshUser: "root",
            sshHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsNzbmH1hc0ZFBDZo4v1pIoxaHFyw4nWENwI9mYFLNp",
            sshPrivateKey: TEST_PRIVATE_KEY,
            appEnv: "",
        };
        const fromSchema = parseStackConfig(required);
        // The program reads Pulumi.yaml's defaults as text, decodes them by type, and treats "" as unset.
        const withDefaults: Record<string, unknown> = { ...required };
        for (const [key, decl] of Object.entries(project.config)) {
            if (key in withDefaults || decl.default === undefined) continue;
            const text = typeof decl.default === "object" ? JSON.stringify(decl.default) : String(decl.default);
            if (text !== "") withDefaults[key] = decodeConfigValue(decl.type, text);
        }
        assert.deepStrictEqual(parseStackConfig(withDefaults), fromSchema);
    });
});

describe("stack files", () => {
    for (const stack of STACKS) {
        it(`Pulumi.${stack}.yaml uses only declared keys, keeps no secret in plain text, and validates`, () => {
            const declared = new Set(Object.keys(projectFile().config));
            for (const full of Object.keys(stackFile(stack))) {
                const [ns, key] = full.split(":");
                if (ns === NAMESPACE) assert.ok(declared.has(key), `${full} is not declared in Pulumi.yaml`);
            }
            const cfg = cliConfig(stack); // throws like the CLI on missing keys, wrong types, plain-text secrets
            const raw: Record<string, unknown> = {};
            for (const [full, text] of Object.entries(cfg.config)) {
                const [ns, key] = full.split(":");
                if (ns === NAMESPACE && text !== "") raw[key] = decodeConfigValue(CONFIG_KEY_TYPES[key as keyof typeof CONFIG_KEY_TYPES], text);
            }
            assert.doesNotThrow(() => parseStackConfig(raw));
        });
    }

    it("prod is protected, on AWS, with ACME; staging is not protected, on AWS, self-signed; the example is an existing host", () => {
        const prod = stackFile("prod");
        const staging = stackFile("staging");
        const existing = stackFile("existing-example");
        assert.deepStrictEqual([prod["slotshift:protect"], prod["slotshift:hostTarget"], prod["slotshift:tlsMode"]], [true, "aws", "acme"]);
        assert.deepStrictEqual([staging["slotshift:protect"], staging["slotshift:hostTarget"], staging["slotshift:tlsMode"]], [false, "aws", "self-signed"]);
        assert.strictEqual(existing["slotshift:hostTarget"], "existing");
    });
});

/** cliConfig for `stack`, then raw text set as-is (values the CLI's type check might not stop). */
function withText(stack: string, text: Record<string, string | undefined>, overrides: Record<string, unknown> = {}): ProgramConfig {
    const cfg = cliConfig(stack, overrides);
    for (const [key, value] of Object.entries(text)) {
        if (value === undefined) delete cfg.config[`${NAMESPACE}:${key}`];
        else cfg.config[`${NAMESPACE}:${key}`] = value;
    }
    return cfg;
}

/** Runs the program and returns its error message; fails if it declared anything first. */
async function configError(stack: string, cfg: ProgramConfig): Promise<string> {
    let declared = 0;
    try {
        const run = await runProgram({ stack, cfg });
        declared = run.resources.length;
    } catch (e) {
        assert.ok(e instanceof pulumi.RunError, `expected a RunError (clean failure), got ${(e as Error).stack}`);
        const message = (e as Error).message;
        assert.ok(!message.includes("leakcanary"), `a secret leaked into: ${message}`);
        return message;
    }
    assert.fail(`the program accepted the config and declared ${declared} resources`);
}

interface BadCase {
    title: string;
    stack?: string;
    /** Plain YAML values by key (undefined removes the key). */
    set?: Record<string, unknown>;
    /** Raw config text by key. */
    text?: Record<string, string | undefined>;
    expect: RegExp;
}

const BAD: BadCase[] = [
    {
        title: "app name with capitals and a space",
        set: { appName: "My Shop" },
        expect: /^Invalid stack config: slotshift:appName must be 2-32 lowercase letters/,
    },
    { title: "version with a slash", set: { releaseVersion: "1.0/evil" }, expect: /slotshift:releaseVersion must be 1-63 characters .*no '\/'/ },
    { title: "version with ..", set: { releaseVersion: "1..2" }, expect: /slotshift:releaseVersion must not contain '\.\.'/ },
    { title: "version with a space", set: { releaseVersion: "1.0 beta" }, expect: /slotshift:releaseVersion must be 1-63 characters/ },
    {
        title: "version with quotes and shell metacharacters",
        set: { releaseVersion: `1.0";rm -rf /` },
        expect: /slotshift:releaseVersion must be 1-63 characters .*shell metacharacters/,
    },
    { title: "version of 64 characters", set: { releaseVersion: "v" + "1".repeat(63) }, expect: /slotshift:releaseVersion must be 1-63 characters/ },
    { title: "version empty", set: { releaseVersion: "" }, expect: /slotshift:releaseVersion is required$/ },
    {
        title: "release source over plain http",
        set: { releaseSource: "http://example.com/shop.tar.gz" },
        expect: /slotshift:releaseSource must be an https:\/\/ URL or a local path to a \.tar\.gz/,
    },
    {
        title: "release source that is not an archive",
        set: { releaseSource: "build/shop.zip" },
        expect: /slotshift:releaseSource must be an https:\/\/ URL or a local path/,
    },
    {
        title: "release source file that does not exist",
        stack: "staging",
        set: { releaseSource: "build/missing-9.9.9.tar.gz" },
        expect: /slotshift:releaseSource must name an existing archive file \(.*build\/missing-9\.9\.9\.tar\.gz not found\)/,
    },
    {
        title: "start command without $PORT",
        set: { startCommand: "gunicorn shop.wsgi --bind 127.0.0.1:8000" },
        expect: /slotshift:startCommand must use \$PORT/,
    },
    {
        title: "start command chaining two commands",
        set: { startCommand: "cd app && gunicorn --bind :$PORT" },
        expect: /slotshift:startCommand must be one simple command/,
    },
    { title: "start command of two lines", set: { startCommand: "gunicorn --bind :$PORT\nrm -rf /" }, expect: /slotshift:startCommand must be a single line/ },
    { title: "health path that is not absolute", set: { healthPath: "healthz" }, expect: /slotshift:healthPath must be an absolute URL path/ },
    { title: "smoke path that is not absolute", set: { smokePaths: ["/", "login"] }, expect: /slotshift:smokePaths item 2 must be an absolute URL path/ },
    {
        title: "shift plan that goes down",
        set: { shiftPlan: ["50%:30s", "10%:30s", "100%"] },
        expect: /slotshift:shiftPlan steps must strictly increase: step 2 \(10%\) is not above step 1 \(50%\)/,
    },
    { title: "shift plan that repeats a step", set: { shiftPlan: ["10%:30s", "10%:30s", "100%"] }, expect: /slotshift:shiftPlan steps must strictly increase/ },
    {
        title: "shift plan that stops short of 100%",
        set: { shiftPlan: ["10%:30s", "50%:30s"] },
        expect: /slotshift:shiftPlan must end at 100% \(last step is 50%\)/,
    },
    {
        title: "shift plan step that is not PERCENT[:PAUSE]",
        set: { shiftPlan: ["ten percent", "100%"] },
        expect: /slotshift:shiftPlan step "ten percent" is not PERCENT\[:PAUSE\]/,
    },
    { title: "shift plan step above 100%", set: { shiftPlan: ["10%", "150%"] }, expect: /slotshift:shiftPlan step 2 \(150%\) must be between 1% and 100%/ },
    {
        title: "shift plan pause that is not a duration",
        set: { shiftPlan: ["10%:forever", "100%"] },
        expect: /slotshift:shiftPlan "forever" is not a duration such as 30s/,
    },
    { title: "shift plan empty", set: { shiftPlan: [] }, expect: /slotshift:shiftPlan must have at least 1 item/ },
    { title: "error ratio above 1", set: { maxErrorRatio: "1.5" }, expect: /slotshift:maxErrorRatio must be between 0 and 1/ },
    {
        title: "a negative minimum of requests per step",
        set: { minRequestsPerStep: -1 },
        expect: /slotshift:minRequestsPerStep must be 0 \(steps pass without traffic\) or more/,
    },
    { title: "a latency ratio below 1", set: { maxLatencyRatio: "0.5" }, expect: /slotshift:maxLatencyRatio must be 0 \(off\) or between 1 and 100/ },
    { title: "a step extension of two hours", set: { maxStepExtension: "2h" }, expect: /slotshift:maxStepExtension must be between 1s and 3600s/ },
    { title: "error ratio that is not a number", set: { maxErrorRatio: "lots" }, expect: /slotshift:maxErrorRatio must be a number/ },
    { title: "health timeout that is not a duration", set: { healthTimeout: "soon" }, expect: /slotshift:healthTimeout "soon" is not a duration/ },
    { title: "health timeout of zero", set: { healthTimeout: "0s" }, expect: /slotshift:healthTimeout must be between 1s and 3600s/ },
    { title: "drain timeout above an hour", set: { drainTimeout: "2h" }, expect: /slotshift:drainTimeout must be between 1s and 3600s/ },
    { title: "keep-warm that is not a boolean", text: { keepPreviousWarm: "sometimes" }, expect: /slotshift:keepPreviousWarm must be true or false/ },
    { title: "releases to keep below 2", set: { releasesToKeep: 1 }, expect: /slotshift:releasesToKeep must be at least 2/ },
    { title: "releases to keep that is not an integer", text: { releasesToKeep: "five" }, expect: /slotshift:releasesToKeep must be a number/ },
    { title: "domain that is not a DNS name", set: { domain: "not a domain!" }, expect: /slotshift:domain must be a DNS name/ },
    { title: "unknown TLS mode", set: { tlsMode: "letsencrypt" }, expect: /slotshift:tlsMode must be one of "self-signed", "acme"/ },
    { title: "ACME without an e-mail address", stack: "staging", set: { tlsMode: "acme" }, expect: /slotshift:acmeEmail is required when tlsMode is acme/ },
    { title: "ACME e-mail that is not an address", set: { acmeEmail: "ops at example" }, expect: /slotshift:acmeEmail must be an e-mail address/ },
    { title: "unknown host target", set: { hostTarget: "gcp" }, expect: /slotshift:hostTarget must be one of "aws", "existing"/ },
    { title: "instance type that is not one", set: { instanceType: "big" }, expect: /slotshift:instanceType must be an EC2 instance type/ },
    { title: "unknown OS flavour", set: { osFlavour: "ubuntu" }, expect: /slotshift:osFlavour must be one of "debian", "nixos"/ },
    { title: "SSH CIDR with a /33 prefix", set: { allowedSshCidrs: ["203.0.113.0/33"] }, expect: /slotshift:allowedSshCidrs item 1 must be an IPv4 CIDR/ },
    { title: "SSH CIDR without a prefix", set: { allowedSshCidrs: ["203.0.113.7"] }, expect: /slotshift:allowedSshCidrs item 1 must be an IPv4 CIDR/ },
    { title: "AWS host without allowed SSH CIDRs", set: { allowedSshCidrs: [] }, expect: /slotshift:allowedSshCidrs is required when hostTarget is aws/ },
    { title: "AWS host without an SSH public key", set: { sshPublicKey: "" }, expect: /slotshift:sshPublicKey is required when hostTarget is aws/ },
    { title: "SSH public key that is not one", set: { sshPublicKey: "hello" }, expect: /slotshift:sshPublicKey must be one OpenSSH public key line/ },
    {
        title: "NixOS on AWS with a non-root SSH user",
        set: { osFlavour: "nixos", sshUser: "admin" },
        expect: /slotshift:sshUser must be root \(or unset\) on the NixOS images/,
    },
    { title: "SSH port out of range", set: { sshPort: 70000 }, expect: /slotshift:sshPort must be at most 65535/ },
    {
        title: "existing host without an address",
        stack: "existing-example",
        set: { hostAddress: "" },
        expect: /slotshift:hostAddress is required when hostTarget is existing/,
    },
    {
        title: "existing host without an SSH user",
        stack: "existing-example",
        set: { sshUser: "" },
        expect: /slotshift:sshUser is required when hostTarget is existing/,
    },
    {
        title: "host address with shell characters",
        stack: "existing-example",
        set: { hostAddress: "host;reboot" },
        expect: /slotshift:hostAddress must be a host name or IP address/,
    },
    {
        title: "SSH private key that is not a key (and not echoed)",
        text: { sshPrivateKey: "leakcanary-not-a-key" },
        expect: /slotshift:sshPrivateKey must be a PEM\/OpenSSH private key$/,
    },
    {
        title: "SSH private key missing",
        text: { sshPrivateKey: undefined },
        expect: /slotshift:sshPrivateKey is required \(the deploy commands connect over SSH\)/,
    },
    {
        title: "app environment line that is not KEY=value (and not echoed)",
        text: { appEnv: "GOOD=1\nleakcanary secret line\n" },
        expect: /slotshift:appEnv line 2 is not KEY=value/,
    },
    { title: "unknown key (a typo)", text: { releaseVerison: "1.2.3" }, expect: /slotshift:releaseVerison is not a known key/ },
    { title: "two slots on one port with HAProxy", set: { haproxyPort: 8002 }, expect: /slotshift:haproxyPort port 8002 is also used by slotBasePort\+1/ },
    // The app runs as a user named after it: an existing account (or group) would hand the app its rights.
    ...[
        "root",
        "postgres",
        "www-data",
        "haproxy",
        "nobody",
        "sshd",
        "daemon",
        "bin",
        "sys",
        "mail",
        "backup",
        "nginx",
        "acme",
        "messagebus",
        "systemd-network",
        "systemd-journal",
        "admin",
        "sudo",
        "shadow",
        "nixbld1",
    ].map((name): BadCase => ({
        title: `app name of the system account or group ${name}`,
        set: { appName: name },
        expect: new RegExp(`^Invalid stack config: slotshift:appName must not be "${name}": it names an existing system account or group`),
    })),
    {
        title: "app name equal to the SSH user (the deploy user)",
        stack: "existing-example",
        set: { appName: "deploy" },
        expect: /slotshift:appName must not be "deploy", the SSH user/,
    },
    // HAProxy reads healthPath as a config word; quotes, spaces and '#' change what it reads.
    ...[`/health'z`, `/health"z`, "/health z", "/health#z", "/health\\z", "/health$z", "/health\tz", "/health%zz"].map((healthPath): BadCase => ({
        title: `health path ${JSON.stringify(healthPath)}`,
        set: { healthPath },
        expect: /^Invalid stack config: slotshift:healthPath must be an absolute URL path such as \/healthz.*no quotes, spaces, '#'/,
    })),
    { title: "smoke path with a quote", set: { smokePaths: ["/", "/it's"] }, expect: /slotshift:smokePaths item 2 must be an absolute URL path .*no quotes/ },
    { title: "smoke path with a fragment", set: { smokePaths: ["/#top"] }, expect: /slotshift:smokePaths item 1 must be an absolute URL path .*'#'/ },
    { title: "slots on the SSH port", set: { slotBasePort: 22 }, expect: /^Invalid stack config: slotshift:slotBasePort port 22 is also used by sshPort$/ },
    {
        title: "second slot on the SSH port",
        set: { slotBasePort: 2221, sshPort: 2222 },
        expect: /^Invalid stack config: slotshift:slotBasePort port 2222 \(slotBasePort\+1\) is also used by sshPort$/,
    },
    { title: "HAProxy on the SSH port", set: { haproxyPort: 22 }, expect: /^Invalid stack config: slotshift:haproxyPort port 22 is also used by sshPort$/ },
    {
        title: "slots on PostgreSQL's port",
        set: { slotBasePort: 5432 },
        expect: /^Invalid stack config: slotshift:slotBasePort port 5432 is PostgreSQL's \(postgresql is true\)$/,
    },
    {
        title: "second slot on PostgreSQL's port",
        set: { slotBasePort: 5431 },
        expect: /^Invalid stack config: slotshift:slotBasePort port 5432 \(slotBasePort\+1\) is PostgreSQL's \(postgresql is true\)$/,
    },
    { title: "ACME with HTTP off port 80", set: { httpPort: 8081 }, expect: /^Invalid stack config: slotshift:httpPort must be 80 when tlsMode is acme/ },
    {
        title: "SSH from anywhere on a protected stack",
        set: { allowedSshCidrs: ["203.0.113.0/28", "0.0.0.0/0"] },
        expect: /^Invalid stack config: slotshift:allowedSshCidrs item 2 "0\.0\.0\.0\/0" opens SSH to the whole internet on a protected stack: set slotshift:allowSshFromAnywhere true/,
    },
    {
        title: "SSH from anywhere spelled another way on a protected stack",
        set: { allowedSshCidrs: ["10.0.0.0/0"] },
        expect: /slotshift:allowedSshCidrs item 1 "10\.0\.0\.0\/0" opens SSH to the whole internet/,
    },
    {
        title: "an https release source without its sha256",
        stack: "staging",
        set: { releaseSha256: undefined },
        expect: /^Invalid stack config: slotshift:releaseSha256 is required when releaseSource is an https URL/,
    },
    {
        title: "a sha256 that is not one",
        stack: "staging",
        set: { releaseSha256: "abc" },
        expect: /slotshift:releaseSha256 must be the archive's sha256: 64 lowercase hex/,
    },
    {
        title: "a local archive whose sha256 is not the given one",
        stack: "existing-example",
        set: { releaseSha256: "0".repeat(64) },
        expect: /^Invalid stack config: slotshift:releaseSha256 does not match the archive \/.*shop-1\.4\.0\.tar\.gz \(its sha256 is [0-9a-f]{64}\)/,
    },
    {
        title: "an existing host without its host key (the first up would trust whoever answers)",
        stack: "existing-example",
        set: { sshHostKey: undefined },
        expect: /^Invalid stack config: slotshift:sshHostKey is required when hostTarget is existing: the host's own key/,
    },
    { title: "a download limit of 0 MiB", stack: "staging", set: { releaseDownloadMaxMiB: 0 }, expect: /slotshift:releaseDownloadMaxMiB must be at least 1/ },
    {
        title: "SSH from anywhere on IPv6 (the security group is IPv4-only for SSH)",
        set: { allowedSshCidrs: ["::/0"] },
        expect: /slotshift:allowedSshCidrs item 1 must be an IPv4 CIDR/,
    },
];

describe("bad stack config fails before any resource is declared", () => {
    for (const c of BAD) {
        it(c.title, async () => {
            const stack = c.stack ?? "prod";
            const message = await configError(stack, withText(stack, c.text ?? {}, c.set ?? {}));
            assert.match(message, c.expect);
            assert.ok(!message.includes("\n"), `one problem, one line: ${message}`);
        });
    }

    it("reports every bad key at once, one per line", async () => {
        const message = await configError("prod", cliConfig("prod", { appName: "X", healthPath: "nope" }));
        assert.match(message, /^Invalid stack config:\n {2}- slotshift:appName must be .*\n {2}- slotshift:healthPath must be /);
    });

    it("keeps secret values out of the message even when they are the bad part", async () => {
        const message = await configError("prod", withText("prod", { appEnv: `${TEST_APP_ENV}leakcanary=1 2 3\nnot a line leakcanary` }));
        assert.match(message, /slotshift:appEnv line 4 is not KEY=value/);
    });
});

describe("config the guards above must still accept", () => {
    const accepts = (stack: string, set: Record<string, unknown>) => () => {
        const cfg = cliConfig(stack, set);
        const raw: Record<string, unknown> = {};
        for (const [full, text] of Object.entries(cfg.config)) {
            const [ns, key] = full.split(":");
            if (ns === NAMESPACE && text !== "") raw[key] = decodeConfigValue(CONFIG_KEY_TYPES[key as keyof typeof CONFIG_KEY_TYPES], text);
        }
        for (const key of SECRET_KEYS) raw[key] = cfg.config[`${NAMESPACE}:${key}`];
        assert.doesNotThrow(() => parseStackConfig(raw));
    };

    it("SSH from anywhere on a protected stack, acknowledged", accepts("prod", { allowedSshCidrs: ["0.0.0.0/0"], allowSshFromAnywhere: true }));
    it("SSH from anywhere on a stack that is not protected", accepts("staging", { allowedSshCidrs: ["0.0.0.0/0"] }));
    it("slots on 5432 when the stack has no PostgreSQL", accepts("staging", { postgresql: false, slotBasePort: 5431 }));
    it("self-signed TLS with HTTP off port 80", accepts("staging", { httpPort: 8081 }));
    it(
        "health and smoke paths with queries and escapes",
        accepts("prod", { healthPath: "/health/ready?full=1&db=yes", smokePaths: ["/", "/caf%C3%A9/", "/a;b=c/(x)*,+@:!~"] }),
    );
    it("an app name that only starts like a system account", accepts("prod", { appName: "rootbeer" }));
});
