// Running one command on an open connection, and what its failure says. Part of the serialized
// provider: see the rules in provider.ts.
import type { Client } from "ssh2";
import { CommandFailedError, CommandStartError, ConnectionLostError } from "./errors";
import type { SshLogging } from "./inputs";
import { createLineSplitter, createTail } from "./output";

/** stdout and stderr kept in state: the tail, so the state stays small and the end is there. */
const OUTPUT_LIMIT = 64 * 1024;

export interface ExecResult {
    /** False when the connection ended before the command reported an exit status. */
    exited: boolean;
    code: number | null;
    signal: string | null;
    stdout: string;
    stderr: string;
}

/** Runs one command (no pty); stdin, when given, is written and closed, else closed at once. */
export function execute(
    client: Client,
    command: string,
    stdin: string | undefined,
    emit: (stream: "stdout" | "stderr", line: string) => void,
): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
        client.exec(command, (err, stream) => {
            if (err) return reject(new CommandStartError(`cannot start the command: ${err.message}`));
            const out = createTail(OUTPUT_LIMIT);
            const errOut = createTail(OUTPUT_LIMIT);
            const outLines = createLineSplitter((line) => emit("stdout", line));
            const errLines = createLineSplitter((line) => emit("stderr", line));
            const result: ExecResult = { exited: false, code: null, signal: null, stdout: "", stderr: "" };
            stream.on("data", (chunk: Buffer) => out.add(outLines.write(chunk)));
            stream.stderr.on("data", (chunk: Buffer) => errOut.add(errLines.write(chunk)));
            stream.on("exit", (code: number | null, signal?: string) => {
                result.exited = true;
                result.code = typeof code === "number" ? code : null;
                result.signal = signal ?? null;
            });
            // A command that exits without reading its stdin makes the write fail; its exit status says what happened.
            stream.on("error", () => undefined);
            stream.on("close", () => {
                out.add(outLines.end());
                errOut.add(errLines.end());
                result.stdout = out.text();
                result.stderr = errOut.text();
                resolve(result);
            });
            if (stdin !== undefined && stdin !== "") stream.end(stdin);
            else stream.end();
        });
    });
}

/**
 * The error of a failed command. The first line is what the console's progress row shows, so it
 * carries the last line the command printed (where the agent puts a failed gate's figures); then
 * what ran and the last lines it was allowed to show.
 */
export function failureMessage(op: string, command: string, r: ExecResult, lastLines: readonly string[], logging: SshLogging): string {
    const shown = command.length > 200 ? `${command.slice(0, 197)}...` : command;
    const how = !r.exited ? "lost the connection before the command exited" : r.signal ? `killed by signal ${r.signal}` : `exit code ${r.code}`;
    const lines = [`${op} failed (${how})${lastLines.length > 0 ? `: ${lastLines[lastLines.length - 1]}` : ""}`, `command: ${shown}`];
    if (lastLines.length > 0) lines.push("last output:", ...lastLines.map((l) => `    ${l}`));
    else if (logging === "none") lines.push("its output is not shown (logging: none)");
    else lines.push(`it printed nothing${logging === "stdoutAndStderr" ? "" : ` on ${logging}`}`);
    return lines.join("\n");
}

/** failureMessage's text as the error to throw: a ConnectionLostError when the command never reported how it exited. */
export function commandFailure(
    op: "create" | "update" | "delete",
    command: string,
    r: ExecResult,
    lastLines: readonly string[],
    logging: SshLogging,
): CommandFailedError {
    const message = failureMessage(op, command, r, lastLines, logging);
    return r.exited ? new CommandFailedError(message, op, r.code, r.signal) : new ConnectionLostError(message, op);
}
