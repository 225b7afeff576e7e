// The dynamic provider behind SshCommand: runs commands on the host over SSH (ssh2, pure JS) and
// uploads files over SFTP first. Its parts, each in its own file of this directory:
//   inputs.ts      the input types, check's validation and the diff (update or replacement)
//   host-key.ts    parsing the pinned host key and checking the one the server presents
//   dial.ts        one connection attempt, and the retries while a new machine boots
//   upload.ts      the SFTP uploads (hash checked, temp file + rename)
//   exec.ts        running the command, and the message of its failure
//   output.ts      output cut into lines and its tail kept
//   engine-log.ts  lines streamed to the console under the resource
//   errors.ts      the error classes of all of them
// This file puts them together: one step (connect, upload, run, report) and the provider object.
//
// Pulumi serializes this provider's code into the state of every SshCommand (`__provider`) and
// runs it in a separate process (pulumi-resource-pulumi-nodejs). So everything in these files:
//   - captures nothing but the functions, classes and constants of these files: no config, no
//     secrets, no imported module objects of Node or of a package (those are `require`d inside the
//     functions, at run time);
//   - uses function declarations and unexported constants only: TypeScript turns references to an
//     exported const into `exports.X`, which would drag the whole module into the serialized code.
//   - writes a class the way errors.ts explains: the serializer turns classes into functions.
// The files import each other: the serializer copies a local module by value, only the members a
// function uses (test/unit/ssh-provider.test.ts checks what the serialized code holds and runs it).
// Anything else is `import type` only: it is erased at compile time.
import type * as pulumi from "@pulumi/pulumi";
import type { Client } from "ssh2";
import { connectWithRetry } from "./dial";
import { engineLogger } from "./engine-log";
import type { LineLog } from "./engine-log";
import { ConnectError, HostKeyMismatchError } from "./errors";
import { commandFailure, execute } from "./exec";
import { checkInputs, diffInputs } from "./inputs";
import type { SshCommandInputs, SshCommandOutputs, SshLogging } from "./inputs";
import { uploadAll } from "./upload";
import { parseAgentMessage } from "../../lib/contract/messages";

// Imported from here by components/host.ts and the stack tests.
export { diffInputs } from "./inputs";
export type { SshCommandInputs, SshCommandOutputs } from "./inputs";
export { fingerprint, parseHostKey } from "./host-key";
export type { LineLog } from "./engine-log";

/** Lines quoted in the error of a failed command. */
const ERROR_LINES = 20;

/** Reconnections to follow a worker after the connection dropped. */
const REATTACH_ATTEMPTS = 5;

function shows(logging: SshLogging, stream: "stdout" | "stderr"): boolean {
    return logging === "stdoutAndStderr" || logging === stream;
}

/** One step: connect, upload (create/update), run, report. Throws on any failure. */
export async function runStep(
    op: "create" | "update" | "delete",
    props: SshCommandInputs,
    command: string,
    opts: { uploads: boolean; stdin?: string; log?: LineLog },
): Promise<{ stdout: string; stderr: string }> {
    const logging: SshLogging = props.logging ?? "stdoutAndStderr";
    const log = opts.log ?? engineLogger(props.__logUrn);
    const lastLines: string[] = [];
    const emit = (stream: "stdout" | "stderr", line: string) => {
        // The agent's messages (lib/contract/messages.ts) are for the program, not the console.
        if (!shows(logging, stream) || parseAgentMessage(line)) return;
        log.write(line);
        lastLines.push(line);
        if (lastLines.length > ERROR_LINES) lastLines.shift();
    };
    // The worker a detached command announced on its first line (the agent's activate and
    // rollback), and the lines received after it. The message checks the name: only a plain file
    // name is ever put into the reattach command.
    let worker: string | undefined;
    let seen = 0;
    const follow = (stream: "stdout" | "stderr", line: string) => {
        if (seen === 0 && worker === undefined) {
            const m = parseAgentMessage(line);
            worker = m?.type === "worker" ? m.worker : "";
            if (m?.type === "worker") return emit(stream, m.text);
        } else {
            seen++;
        }
        emit(stream, line);
    };
    let client: Client | undefined;
    try {
        // A connection that drops later ends the channel too: execute() then reports exited=false.
        client = await connectWithRetry(props.connection, (line) => log.write(line));
        if (opts.uploads) await uploadAll(client, props.uploads, (line) => log.write(line));
        let r = await execute(client, command, opts.stdin, follow);
        let shown = command;
        for (let attempt = 1; !r.exited && props.reattach && worker && attempt <= REATTACH_ATTEMPTS; attempt++) {
            client?.end();
            client = undefined;
            log.write(`the connection dropped while ${worker} ran on the host; reconnecting to follow it (attempt ${attempt} of ${REATTACH_ATTEMPTS})`);
            shown = props.reattach.replace(/\{worker\}/g, worker).replace(/\{lines\}/g, String(seen));
            try {
                client = await connectWithRetry(props.connection, (line) => log.write(line));
                r = await execute(client, shown, undefined, (stream, line) => {
                    seen++;
                    emit(stream, line);
                });
            } catch (e) {
                log.write(`reconnecting failed: ${(e as Error).message}`);
                await new Promise((resolve) => setTimeout(resolve, 2000));
            }
        }
        if (!r.exited || r.signal || r.code !== 0) throw commandFailure(op, shown, r, lastLines, logging);
        return { stdout: r.stdout, stderr: r.stderr };
    } finally {
        client?.end();
        await log.close();
    }
}

function newId(): string {
    return (require("crypto") as typeof import("crypto")).randomBytes(8).toString("hex");
}

export const sshCommandProvider: pulumi.dynamic.ResourceProvider<SshCommandInputs, SshCommandOutputs> = {
    async check(_olds, news) {
        return { inputs: news, failures: checkInputs(news) };
    },

    async diff(_id, olds, news) {
        return diffInputs(olds, news);
    },

    // Not called on preview. A failure throws before an id exists, so nothing is recorded and the
    // next `pulumi up` runs the command again.
    async create(inputs) {
        const out = await runStep("create", inputs, inputs.create, { uploads: true, stdin: inputs.stdin });
        return { id: newId(), outs: { ...inputs, ...out } };
    },

    async update(_id, _olds, news) {
        const out = await runStep("update", news, news.update ?? news.create, { uploads: true, stdin: news.stdin });
        return { outs: { ...news, ...out } };
    },

    // Runs with the old state's connection and command (the replaced resource's, after a replace).
    async delete(_id, props) {
        if (!props.delete) return;
        try {
            await runStep("delete", props, props.delete, { uploads: false });
        } catch (e) {
            // The pinned key of the old state no longer matches: the machine this command ran on
            // was replaced at the same address, so nothing is left to undo (and nothing is sent).
            if (!(e instanceof ConnectError && e.cause instanceof HostKeyMismatchError)) throw e;
            const log = engineLogger(props.__logUrn);
            log.write(`skipped the delete command: ${e.message}`);
            await log.close();
        }
    },
};
