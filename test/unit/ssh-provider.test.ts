// The SSH command provider as the engine runs it: Pulumi serializes the provider object into the
// state and a separate process evaluates that text. Classes come out of the serializer as plain
// constructor functions, so what holds for the compiled code (an error's message, `instanceof`)
// has to be checked on the serialized code too.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import * as errors from "../../components/ssh/errors";
import { sshCommandProvider } from "../../components/ssh/provider";

/** Serializes `fn` as the SDK serializes a dynamic provider (`() => provider`), loads the text and calls it. */
async function loadSerialized<T>(fn: () => T): Promise<{ text: string; containsSecrets: boolean; value: T }> {
    const serialized = await pulumi.runtime.serializeFunction(fn, { allowSecrets: true });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "ssh-provider-test-"));
    try {
        const file = path.join(dir, "serialized.js");
        fs.writeFileSync(file, serialized.text);
        const value = require(file)[serialized.exportName]() as T;
        return { text: serialized.text, containsSecrets: serialized.containsSecrets, value };
    } finally {
        fs.rmSync(dir, { recursive: true, force: true });
    }
}

const MESSAGE_ONLY_CLASSES = [
    "DialError",
    "TransientDialError",
    "HostKeyMismatchError",
    "ConnectionSettingsError",
    "UploadSourceChangedError",
    "UploadFailedError",
    "CommandStartError",
] as const;

describe("ssh command provider: the serialized code", function () {
    this.timeout(60_000);

    it("keeps every error's message, name and class chain", async () => {
        const { value } = await loadSerialized(() => {
            // Referenced one by one, as the provider's files do; the serializer copies what is used.
            const made = [
                new errors.DialError("m DialError"),
                new errors.TransientDialError("m TransientDialError"),
                new errors.HostKeyMismatchError("m HostKeyMismatchError"),
                new errors.ConnectionSettingsError("m ConnectionSettingsError"),
                new errors.UploadSourceChangedError("m UploadSourceChangedError"),
                new errors.UploadFailedError("m UploadFailedError"),
                new errors.CommandStartError("m CommandStartError"),
            ];
            const cause = new errors.HostKeyMismatchError("host key mismatch: expected A, presented B");
            const connect = new errors.ConnectError(`cannot connect to h: ${cause.message}`, cause);
            const failed = new errors.CommandFailedError("exited 3", "create", 3, null);
            const lost = new errors.ConnectionLostError("lost the connection", "delete");
            return {
                made: made.map((e) => ({ message: e.message, name: e.name, step: e instanceof errors.SshStepError, error: e instanceof Error })),
                dialChain: made.slice(0, 4).every((e) => e instanceof errors.DialError),
                connect: {
                    message: connect.message,
                    causeIsMismatch: connect.cause instanceof errors.HostKeyMismatchError,
                    causeMessage: connect.cause.message,
                },
                failed: { message: failed.message, op: failed.op, exitCode: failed.exitCode, isStep: failed instanceof errors.SshStepError },
                lost: { message: lost.message, op: lost.op, isFailed: lost instanceof errors.CommandFailedError },
            };
        });
        assert.deepStrictEqual(
            value.made,
            MESSAGE_ONLY_CLASSES.map((name) => ({ message: `m ${name}`, name, step: true, error: true })),
        );
        assert.ok(value.dialChain);
        assert.deepStrictEqual(value.connect, {
            message: "cannot connect to h: host key mismatch: expected A, presented B",
            causeIsMismatch: true,
            causeMessage: "host key mismatch: expected A, presented B",
        });
        assert.deepStrictEqual(value.failed, { message: "exited 3", op: "create", exitCode: 3, isStep: true });
        assert.deepStrictEqual(value.lost, { message: "lost the connection", op: "delete", isFailed: true });
    });

    it("holds the provider's methods and captures no secret", async () => {
        const { text, containsSecrets, value } = await loadSerialized(() => sshCommandProvider);
        for (const method of ["check", "diff", "create", "update", "delete"] as const) {
            assert.strictEqual(typeof value[method], "function", method);
        }
        assert.strictEqual(containsSecrets, false);
        assert.doesNotMatch(text, /PRIVATE KEY-----\n[A-Za-z0-9+/]/);
    });
});
