// The SSH command provider's own decisions, without a host: what is an update and what a
// replacement, what check refuses, host key parsing, how output is split, kept and quoted in errors.
// Running commands for real (sshd + the Pulumi engine) is test/integration/ssh-command.test.ts.
import * as assert from "assert";
import * as path from "path";
import { utils } from "ssh2";
import { engineAddress } from "../../components/ssh/engine-log";
import { failureMessage } from "../../components/ssh/exec";
import { fingerprint, hostKeyAlgorithms, parseHostKey } from "../../components/ssh/host-key";
import { checkInputs, containsUnknown, diffInputs, SshCommandInputs } from "../../components/ssh/inputs";
import { createLineSplitter, createTail } from "../../components/ssh/output";
import { contentUpload, fileUpload, sha256Hex } from "../../components/ssh/ssh-command";
import { runProgram } from "./helpers/mock-program";
import { cliConfig } from "./helpers/stack-config";

const UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsNzbmH1hc0ZFBDZo4v1pIoxaHFyw4nWENwI9mYFLNp";

function inputs(extra: Partial<SshCommandInputs> = {}): SshCommandInputs {
    return {
        connection: {
            host: "192.0.2.10",
            port: 22,
            user: "deploy",
            privateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
            hostKey: HOST_KEY,
        },
        create: "node agent.js activate --version 1",
        triggers: ["deploy@192.0.2.10:22", "1"],
        logging: "stdoutAndStderr",
        ...extra,
    };
}

describe("ssh command: diff", () => {
    it("unchanged inputs run nothing, whatever the outputs and the provider code say", () => {
        const olds = { ...inputs(), stdout: "ok\n", stderr: "", __provider: "old code", __logUrn: "urn:a" };
        const news = { ...inputs(), __provider: "new code", __logUrn: "urn:b" };
        assert.deepStrictEqual(diffInputs(olds, news), { changes: false, replaces: [], deleteBeforeReplace: false });
    });

    it("a changed command, stdin, upload or connection is an update", () => {
        for (const change of [
            { create: "node agent.js activate --version 2" },
            { stdin: "A=1\n" },
            { update: "node agent.js status" },
            { delete: "node agent.js retire" },
            { logging: "stderr" as const },
            { uploads: [{ content: "x", remotePath: "f", mode: "0644", sha256: sha256Hex("x") }] },
            { connection: { ...inputs().connection, port: 2200 } },
        ]) {
            assert.deepStrictEqual(diffInputs(inputs(), inputs(change)), { changes: true, replaces: [], deleteBeforeReplace: false }, JSON.stringify(change));
        }
    });

    it("an upload is the same file wherever the checkout is: its target, mode and hash decide", () => {
        const upload = { localPath: "/home/a/slotshift/dist/agent.js", remotePath: ".agent.js", mode: "0600", sha256: "a".repeat(64) };
        const moved = { ...upload, localPath: "/builds/ci/slotshift/dist/agent.js" };
        assert.strictEqual(diffInputs(inputs({ uploads: [upload] }), inputs({ uploads: [moved] })).changes, false);
        for (const change of [{ sha256: "b".repeat(64) }, { mode: "0644" }, { remotePath: ".agent2.js" }]) {
            assert.deepStrictEqual(diffInputs(inputs({ uploads: [upload] }), inputs({ uploads: [{ ...upload, ...change }] })), {
                changes: true,
                replaces: [],
                deleteBeforeReplace: false,
            });
        }
        assert.strictEqual(diffInputs(inputs({ uploads: [upload] }), inputs({ uploads: [upload, { ...upload, remotePath: "b" }] })).changes, true);
    });

    it("a changed trigger is a replacement, create-before-delete (the resource option can reverse it)", () => {
        const d = diffInputs(inputs(), inputs({ triggers: ["deploy@192.0.2.10:22", "2"], create: "node agent.js activate --version 2" }));
        assert.deepStrictEqual(d, { changes: true, replaces: ["triggers"], deleteBeforeReplace: false });
        assert.deepStrictEqual(diffInputs(inputs({ triggers: undefined }), inputs({ triggers: ["x"] })).replaces, ["triggers"]);
    });

    it("on preview, a value not known yet counts as changed (a new host's id is unknown: replace)", () => {
        assert.deepStrictEqual(diffInputs(inputs(), inputs({ triggers: [UNKNOWN, "1"] })).replaces, ["triggers"]);
        const d = diffInputs(inputs(), { ...inputs(), connection: UNKNOWN as any });
        assert.deepStrictEqual([d.changes, d.replaces], [true, []]);
        assert.ok(containsUnknown({ a: [1, { b: UNKNOWN }] }));
        assert.ok(!containsUnknown({ a: [1, { b: "x" }] }));
    });

    it("treats a missing optional input and undefined alike", () => {
        const { logging: _unused, ...withoutLogging } = inputs();
        assert.strictEqual(diffInputs({ ...withoutLogging, update: undefined }, withoutLogging).changes, false);
    });
});

describe("ssh command: check", () => {
    it("accepts complete inputs, and unknown values on preview", () => {
        assert.deepStrictEqual(checkInputs(inputs()), []);
        assert.deepStrictEqual(checkInputs({ ...inputs(), connection: UNKNOWN, create: UNKNOWN, triggers: [UNKNOWN] }), []);
        assert.deepStrictEqual(checkInputs({ ...inputs(), connection: { ...inputs().connection, host: UNKNOWN } }), []);
    });

    it("names each bad field", () => {
        const bad = checkInputs({
            connection: { host: "", user: "root", port: 70000, hostKey: "not a key", dialErrorLimit: 0, perDialTimeout: -1 },
            create: "",
            delete: "",
            logging: "all",
            triggers: "x",
            uploads: [
                { remotePath: "a", mode: "644", sha256: "0".repeat(64) },
                { localPath: "relative/file", content: "x", remotePath: "", mode: "rw", sha256: "nope" },
            ],
        });
        assert.deepStrictEqual(bad.map((f) => f.property).sort(), [
            "connection.dialErrorLimit",
            "connection.host",
            "connection.hostKey",
            "connection.perDialTimeout",
            "connection.port",
            "connection.privateKey",
            "create",
            "delete",
            "logging",
            "triggers",
            "uploads[0]",
            "uploads[1]",
            "uploads[1].localPath",
            "uploads[1].mode",
            "uploads[1].remotePath",
            "uploads[1].sha256",
        ]);
        assert.deepStrictEqual(
            checkInputs({ create: "true" }).map((f) => f.property),
            ["connection"],
        );
    });

    it("refuses a connection without a host key: none goes unchecked", () => {
        const { hostKey: _, ...unpinned } = inputs().connection;
        for (const connection of [unpinned, { ...unpinned, hostKey: "" }]) {
            assert.deepStrictEqual(checkInputs({ ...inputs(), connection }), [
                { property: "connection.hostKey", reason: "is required: the host key every connection pins" },
            ]);
        }
    });
});

describe("ssh command: host keys", () => {
    const pair = utils.generateKeyPairSync("ed25519");
    const [type, b64] = pair.public.split(" ");

    it("parses a public key line, with or without a comment or a leading host name", () => {
        for (const line of [pair.public, `${pair.public} deploy@example`, `[192.0.2.10]:22 ${type} ${b64}`]) {
            const k = parseHostKey(line);
            assert.ok(k, line);
            assert.strictEqual(k.type, "ssh-ed25519");
            assert.ok(k.blob.equals(Buffer.from(b64, "base64")));
        }
        assert.match(fingerprint(Buffer.from(b64, "base64")), /^SHA256:[A-Za-z0-9+/]{43}$/);
    });

    it("refuses a key whose blob is of another type than its label, and garbage", () => {
        assert.strictEqual(parseHostKey(`ssh-rsa ${b64}`), undefined);
        assert.strictEqual(parseHostKey("ssh-ed25519"), undefined);
        assert.strictEqual(parseHostKey("hello world"), undefined);
    });

    it("offers only the pinned key's algorithms, so the server presents that key", () => {
        assert.deepStrictEqual(hostKeyAlgorithms("ssh-ed25519"), ["ssh-ed25519"]);
        assert.deepStrictEqual(hostKeyAlgorithms("ssh-rsa"), ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]);
    });
});

describe("ssh command: output", () => {
    it("splits chunks into lines across UTF-8 boundaries and shows \\r-rewritten lines as their last state", () => {
        const lines: string[] = [];
        const s = createLineSplitter((l) => lines.push(l));
        const bytes = Buffer.from("héllo\nprogress 10%\rprogress 100%\n\n  \nlast without newline", "utf8");
        let text = "";
        for (let i = 0; i < bytes.length; i += 3) text += s.write(bytes.subarray(i, i + 3));
        text += s.end();
        assert.deepStrictEqual(lines, ["héllo", "progress 100%", "last without newline"]);
        assert.strictEqual(text, bytes.toString("utf8"), "the captured text is the output as it was");
    });

    it("keeps the tail of a long output, from a line start, and says how much it dropped", () => {
        const t = createTail(100);
        for (let i = 0; i < 1000; i++) t.add(`line ${i}\n`);
        const text = t.text();
        assert.match(text, /^\[\.\.\. \d+ earlier characters not kept \.\.\.\]\nline \d+\n/);
        assert.ok(text.endsWith("line 999\n"));
        assert.ok(text.length < 200);
        const short = createTail(100);
        short.add("a\nb\n");
        assert.strictEqual(short.text(), "a\nb\n");
    });

    it("puts what ran, how it ended and its last visible lines in the error", () => {
        const r = { exited: true, code: 3, signal: null, stdout: "", stderr: "" };
        const msg = failureMessage("create", "node agent.js activate", r, ["step 50%", "error: gate 50%: 5xx ratio 0.2 > 0.01"], "stdoutAndStderr");
        assert.strictEqual(
            msg,
            "create failed (exit code 3): error: gate 50%: 5xx ratio 0.2 > 0.01\ncommand: node agent.js activate\nlast output:\n    step 50%\n    error: gate 50%: 5xx ratio 0.2 > 0.01",
        );
        assert.strictEqual(failureMessage("update", "x", r, [], "none"), "update failed (exit code 3)\ncommand: x\nits output is not shown (logging: none)");
        assert.match(failureMessage("update", "x", r, [], "stderr"), /\nit printed nothing on stderr$/);
        assert.match(
            failureMessage("delete", "x", { ...r, exited: false, code: null }, [], "stdoutAndStderr"),
            /^delete failed \(lost the connection before the command exited\)\n/,
        );
        assert.match(failureMessage("create", "x", { ...r, code: null, signal: "KILL" }, [], "stdoutAndStderr"), /^create failed \(killed by signal KILL\)/);
        assert.ok(failureMessage("create", "y".repeat(500), r, [], "none").length < 300, "a long command is shortened");
    });

    it("finds the engine's address as the provider process's last argument", () => {
        assert.strictEqual(engineAddress(["node", "dynamic-provider", "127.0.0.1:42807"]), "127.0.0.1:42807");
        assert.strictEqual(engineAddress(["node", "dynamic-provider", "--logtostderr", "-v=9", "127.0.0.1:1"]), "127.0.0.1:1");
        assert.strictEqual(engineAddress(["node", "mocha"]), undefined);
        assert.strictEqual(engineAddress(["node", "mocha", "test/unit/x.test.ts"]), undefined);
    });
});

describe("ssh command: uploads and the resource", () => {
    it("hashes a local file now (or takes the known hash), and content as given", async () => {
        const file = path.join(__dirname, "ssh-command.test.ts");
        const u = fileUpload(path.relative(process.cwd(), file), "x.ts", "0644");
        assert.deepStrictEqual(u, { localPath: file, remotePath: "x.ts", mode: "0644", sha256: sha256Hex(require("fs").readFileSync(file)) });
        assert.strictEqual(fileUpload("/nonexistent", "y", "0600", "c".repeat(64)).sha256, "c".repeat(64));
        const c = await new Promise((resolve) => contentUpload("hello\n", "motd", "0644").apply(resolve));
        assert.deepStrictEqual(c, { content: "hello\n", remotePath: "motd", mode: "0644", sha256: sha256Hex("hello\n") });
    });

    it("passes each command its own URN, so its lines show under it", async () => {
        const r = await runProgram({ stack: "existing-example", cfg: cliConfig("existing-example"), forbidAws: true });
        const commands = r.ofType("pulumi-nodejs:dynamic/ssh:Command");
        assert.ok(commands.length >= 5);
        for (const x of commands) assert.strictEqual(x.inputs.__logUrn, x.urn, x.name);
        // ...without making a command wait for its own component (which would wait for the command).
        for (const x of commands) assert.ok(!x.dependencies.includes(x.parent), `${x.name} does not depend on its parent`);
    });
});
