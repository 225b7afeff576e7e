// TrafficShift: the deploy itself. Creating it runs the agent's gated weight shift to the new
// version (output streamed to the console); a failed gate fails `pulumi up` and the agent has
// already moved traffic back. Replacing it (a new version) retires the old version afterwards.
import * as pulumi from "@pulumi/pulumi";
import { formatActivateArgs, formatRetireArgs, formatStatusArgs } from "../lib/agent-contract";
import { HostLayout } from "../lib/host-layout";
import { ShiftStep } from "../lib/shift-plan";
import { HostHandle, remoteAgentCommand } from "./remote";
import { SshCommand } from "./ssh/ssh-command";

export interface ShiftGates {
    maxErrorRatio: number;
    healthTimeoutSeconds: number;
    drainTimeoutSeconds: number;
}

export interface TrafficShiftArgs {
    host: HostHandle;
    layout: HostLayout;
    version: string;
    plan: readonly ShiftStep[];
    gates: ShiftGates;
    keepPreviousWarm: boolean;
    /**
     * Contract operations the migration-safety gate may let through for this version. On the
     * command line (not in agent.json) so an acknowledgement shows in `pulumi preview`.
     */
    allowContractOperations?: readonly string[];
}

export function activateArgs(a: Pick<TrafficShiftArgs, "version" | "plan" | "gates" | "keepPreviousWarm" | "allowContractOperations">): string[] {
    return formatActivateArgs({
        version: a.version,
        plan: [...a.plan],
        maxErrorRatio: a.gates.maxErrorRatio,
        healthTimeoutSeconds: a.gates.healthTimeoutSeconds,
        drainTimeoutSeconds: a.gates.drainTimeoutSeconds,
        keepWarm: a.keepPreviousWarm,
        allowContract: [...(a.allowContractOperations ?? [])],
    });
}

export class TrafficShift extends pulumi.ComponentResource {
    readonly activate: SshCommand;
    /** The version serving traffic, known once the shift succeeded. */
    readonly liveVersion: pulumi.Output<string>;

    constructor(name: string, args: TrafficShiftArgs, opts?: pulumi.ComponentResourceOptions) {
        super("slotshift:release:TrafficShift", name, {}, opts);
        const { host, layout, version } = args;
        this.activate = new SshCommand(
            `${name}-activate`,
            {
                connection: host.connection,
                create: remoteAgentCommand(host.sshUser, layout, "activate", activateArgs(args)),
                // A changed plan or gate alone must not shift again to the live version; it applies
                // to the next version. The update only reports where things stand.
                update: remoteAgentCommand(host.sshUser, layout, "status", formatStatusArgs({})),
                // Runs from the old state after the new version went live (create-before-delete).
                // It drains as long as the activation did (slots.json records it) and keeps the
                // warm previous per agent.json, both from the same stack config as the activation.
                delete: remoteAgentCommand(host.sshUser, layout, "retire", formatRetireArgs({ version })),
                triggers: [host.hostId, version],
                logging: "stdoutAndStderr",
            },
            // The migrations run here: their output (and a failing migration's error) may carry
            // data or secrets, so the tails in the state are secrets (the console still streams them).
            { parent: this, dependsOn: opts?.dependsOn, additionalSecretOutputs: ["stdout", "stderr"] },
        );
        // Only the version, which is public: known once the shift succeeded.
        this.liveVersion = pulumi.unsecret(this.activate.stdout.apply(() => version));
        this.registerOutputs({ liveVersion: this.liveVersion });
    }
}
