// TrafficShift: the deploy itself. Creating it runs the agent's gated weight shift to the new
// version (output streamed to the console); a failed gate fails `pulumi up` and the agent has
// already moved traffic back. Replacing it (a new version) retires the old version afterwards.
import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { formatEnvLines } from "../lib/env-lines";
import { ActivateRequest } from "../lib/contract/commands";
import { formatDeployTraffic, lastResult } from "../lib/contract/messages";
import { HostLayout } from "../lib/host-layout";
import { GroupSettings } from "../lib/settings/table";
import { HostHandle, remoteAgentCommand, remoteAttachTemplate } from "./remote";
import { SshCommand } from "./ssh/ssh-command";

/** The shift and its gates: the shift group of the settings, under their own keys and units. */
export type ShiftSettings = GroupSettings<"shift">;

export interface TrafficShiftArgs {
    host: HostHandle;
    layout: HostLayout;
    version: string;
    shift: ShiftSettings;
    /**
     * The settings a running slot depends on besides its release (lib/slot-activation.ts). A change
     * of any of them replaces the shift: the agent then starts the same version on the idle slot
     * with them and shifts to it, gated like a new release (unchanged ones make that a no-op).
     */
    activation: SlotActivationSettings;
    /** Secret: the app environment; only a keyed digest of it is a trigger (see shiftTriggers). */
    appEnv: pulumi.Input<Record<string, string>>;
    /** Secret: the key of that digest (the stack's SSH private key: every stack has one, and it never leaves the stack). */
    envDigestKey: pulumi.Input<string>;
    /**
     * Contract operations the migration-safety gate may let through for this version. On the
     * command line (not in agent.json) so an acknowledgement shows in `pulumi preview`.
     */
    allowContractOperations?: readonly string[];
}

/** What of the stack config a running slot was started with (its environment aside). */
interface SlotActivationSettings {
    healthPath: string;
    domain: string;
    startCommand: string;
    slotBasePort: number;
}

/**
 * The shift's triggers: the host, the version, the slots' settings and the app environment's
 * HMAC under a secret key. Public, so that `pulumi preview --diff` shows which of them changed (a
 * secret element would hide the whole list); keyed, so that the digest tells nothing of a value,
 * however guessable.
 */
function shiftTriggers(a: Pick<TrafficShiftArgs, "host" | "version" | "activation" | "appEnv" | "envDigestKey">): pulumi.Input<unknown>[] {
    const r = a.activation;
    const envDigest = pulumi.unsecret(
        pulumi
            .all([a.appEnv, a.envDigestKey])
            .apply(([env, key]) => `appEnv=hmac-sha256:${crypto.createHmac("sha256", key).update(formatEnvLines(env)).digest("hex").slice(0, 32)}`),
    );
    return [a.host.hostId, a.version, `healthPath=${r.healthPath} domain=${r.domain} slotBasePort=${r.slotBasePort} startCommand=${r.startCommand}`, envDigest];
}

/** The activate request: the version, the whole shift group, and the acknowledged contract operations. */
export function activateRequest(a: Pick<TrafficShiftArgs, "version" | "shift" | "allowContractOperations">): ActivateRequest {
    return {
        version: a.version,
        ...a.shift,
        ...(a.allowContractOperations?.length ? { allowContractOperations: [...a.allowContractOperations] } : {}),
    };
}

/** The agent's count of the deploy's own traffic, from the activate's result message; a placeholder when the output has none. */
export function deploySummary(stdout: string | undefined): string {
    const traffic = lastResult(stdout ?? "")?.traffic;
    return traffic ? formatDeployTraffic(traffic) : "no deploy figures (the last update did not shift traffic)";
}

export class TrafficShift extends pulumi.ComponentResource {
    readonly activate: SshCommand;
    /** The version serving traffic, known once the shift succeeded. */
    readonly liveVersion: pulumi.Output<string>;
    /** The deploy's own count of its requests ("this deploy: N requests, 0 failed, ..."), from the agent's closing line. */
    readonly lastDeploy: pulumi.Output<string>;

    constructor(name: string, args: TrafficShiftArgs, opts?: pulumi.ComponentResourceOptions) {
        super("slotshift:release:TrafficShift", name, {}, opts);
        const { host, layout, version } = args;
        this.activate = new SshCommand(
            `${name}-activate`,
            {
                connection: host.connection,
                create: remoteAgentCommand(host.sshUser, layout, "activate", activateRequest(args)),
                // A changed plan or gate alone must not shift again to the live version; it applies
                // to the next version. The update only reports where things stand.
                update: remoteAgentCommand(host.sshUser, layout, "status", {}),
                // Runs from the old state after the new version went live (create-before-delete).
                // It drains as long as the activation did (slots.json records it) and keeps the
                // warm previous per agent.json, both from the same stack config as the activation.
                delete: remoteAgentCommand(host.sshUser, layout, "retire", { version }),
                triggers: shiftTriggers(args),
                logging: "stdoutAndStderr",
                // The shift runs in a detached worker on the host: a dropped connection reconnects
                // and follows it to its end, so `pulumi up` reports the shift's real outcome.
                reattach: remoteAttachTemplate(host.sshUser, layout),
            },
            // The migrations run here: their output (and a failing migration's error) may carry
            // data or secrets, so the tails in the state are secrets (the console still streams them).
            { parent: this, dependsOn: opts?.dependsOn, additionalSecretOutputs: ["stdout", "stderr"] },
        );
        // Only the version, which is public: known once the shift succeeded.
        this.liveVersion = pulumi.unsecret(this.activate.stdout.apply(() => version));
        // The line holds counts and times only: nothing of the command's output that may be secret.
        this.lastDeploy = pulumi.unsecret(this.activate.stdout.apply((out) => deploySummary(out)));
        this.registerOutputs({ liveVersion: this.liveVersion, lastDeploy: this.lastDeploy });
    }
}
