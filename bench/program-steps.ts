// A deploy of a new version the way `pulumi up` drives it, minus the engine: the program's own
// command lines (components/release.ts, components/traffic-shift.ts, built with the contract,
// lib/contract/commands.ts) sent over SSH by the SshCommand provider's own step function (components/ssh), in
// the order the engine runs the resources:
//   Release env       agent write-env            (the app environment on stdin)
//   Release prepare   SFTP upload, agent prepare (sha256 checked, unpack, check, seal, static)
//   TrafficShift      agent activate             (gate, rehearsal, migrate, boot, smoke, shift, drain)
//   old TrafficShift  agent retire <old>         (delete after create: the old one kept warm)
// The engine itself is not run: on a real deploy it runs on the deployer's machine, and here it
// would take CPU from the two cores the host has. What the provider does on its side (the SSH
// client, the uploads, following the detached worker) runs in this process.
import { formatEnvLines } from "../lib/env-lines";
import { HostLayout } from "../lib/host-layout";
import { artifactUploadPath, prepareCommand } from "../components/release";
import { remoteAgentCommand, remoteAttachTemplate } from "../components/remote";
import { fileUpload } from "../components/ssh/ssh-command";
import { runStep } from "../components/ssh/provider";
import type { SshCommandInputs } from "../components/ssh/provider";
import type { SshConnection } from "../components/ssh/ssh-connection";
import { activateRequest, ShiftSettings } from "../components/traffic-shift";

export interface ProgramTarget {
    connection: SshConnection;
    layout: HostLayout;
    appEnv: Record<string, string>;
    shift: ShiftSettings;
}

/** One line the agent printed, and when it arrived here. */
export interface TimedLine {
    t: number;
    line: string;
}

/**
 * Runs one SshCommand step as the provider does on create, streaming lines to `onLine`. Throws
 * the provider's own error (exit code and last lines) when the command fails.
 */
async function step(target: ProgramTarget, name: string, inputs: Omit<SshCommandInputs, "connection">, onLine: (l: TimedLine) => void): Promise<string> {
    const props: SshCommandInputs = { connection: target.connection, logging: "stdoutAndStderr", ...inputs };
    const log = {
        write: (line: string) => onLine({ t: Date.now(), line: `${name}: ${line}` }),
        close: async () => undefined,
    };
    const r = await runStep("create", props, props.create, { uploads: !!props.uploads?.length, stdin: props.stdin, log });
    return r.stdout;
}

/** The Release of `version` and its TrafficShift, then the delete of the previous version's TrafficShift. */
export async function deployVersion(
    target: ProgramTarget,
    release: { version: string; archive: string; sha256: string; previous: string },
    onLine: (l: TimedLine) => void,
): Promise<void> {
    const { layout } = target;
    const user = target.connection.user;
    const { version } = release;
    await step(target, "env", { create: remoteAgentCommand(user, layout, "write-env", {}), stdin: formatEnvLines(target.appEnv), logging: "stderr" }, onLine);
    await step(
        target,
        "prepare",
        {
            uploads: [fileUpload(release.archive, artifactUploadPath(user, layout, version), "0600", release.sha256)],
            create: prepareCommand(user, layout, { version, sha256: release.sha256, uploaded: true }),
        },
        onLine,
    );
    await step(
        target,
        "activate",
        {
            create: remoteAgentCommand(user, layout, "activate", activateRequest({ version, shift: target.shift })),
            reattach: remoteAttachTemplate(user, layout),
        },
        onLine,
    );
    await step(target, "retire", { create: remoteAgentCommand(user, layout, "retire", { version: release.previous }) }, onLine);
}

/** Rolling back by hand, as the README says: `ssh host sudo node .../agent.js rollback --config ...`, with --json for its result. */
export async function rollBack(target: ProgramTarget, onLine: (l: TimedLine) => void): Promise<{ mode?: string }> {
    const out = await step(target, "rollback", { create: remoteAgentCommand(target.connection.user, target.layout, "rollback", {}, { json: true }) }, onLine);
    try {
        return JSON.parse(out.trim().split("\n").pop() ?? "{}");
    } catch {
        return {};
    }
}
