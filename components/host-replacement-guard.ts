// HostReplacementGuard: makes a change that replaces the instance of a stack with PostgreSQL fail
// `pulumi preview` (and `up`, before anything changes), naming the config key, unless the stack
// acknowledges it (allowHostReplacement). The data volume survives a replacement, but the database
// stops while it moves, and a subnet in another availability zone cannot take the volume along:
// a replacement is never something a routine change should do unannounced.
//
// A dynamic resource whose provider only judges: check() sees the recorded identity (the inputs
// that replace the instance when they change) beside the new one. Serialized like SshCommand's
// provider: it captures nothing but its own code.
import * as pulumi from "@pulumi/pulumi";

export interface HostReplacementGuardInputs {
    /** Config key -> the value that, changed, replaces the instance. */
    identity: Record<string, string>;
    postgresql: boolean;
    allowHostReplacement: boolean;
    /** The config namespace, for messages. */
    namespace: string;
}

/** What the engine sends for a value not known yet (preview). */
const UNKNOWN_VALUE = "04da6b54-80e4-46f7-96ec-b56ff0331ba9";

/** The failures of a change to `news` from the recorded `olds`: one per changed key. */
function replacementFailures(olds: Partial<HostReplacementGuardInputs> | undefined, news: HostReplacementGuardInputs): pulumi.dynamic.CheckFailure[] {
    if (!olds?.identity || !news.postgresql || news.allowHostReplacement) return [];
    const failures: pulumi.dynamic.CheckFailure[] = [];
    for (const [key, value] of Object.entries(news.identity)) {
        const before = olds.identity[key];
        if (before === undefined || value === UNKNOWN_VALUE || before === value) continue;
        failures.push({
            property: key,
            reason:
                `${news.namespace}:${key} changed from "${before}" to "${value}": that replaces the instance of a stack with postgresql ` +
                `(PostgreSQL stops while its data volume moves to the new instance, and a subnet in another availability zone cannot take the volume along). ` +
                `Set ${news.namespace}:allowHostReplacement true to mean it, or put ${key} back`,
        });
    }
    return failures;
}

export const hostReplacementGuardProvider: pulumi.dynamic.ResourceProvider<HostReplacementGuardInputs, HostReplacementGuardInputs> = {
    async check(olds, news) {
        return { inputs: news, failures: replacementFailures(olds, news) };
    },
    async diff(_id, olds, news) {
        const changes = JSON.stringify(olds) !== JSON.stringify(news);
        return { changes, replaces: [], deleteBeforeReplace: false };
    },
    async create(inputs) {
        return { id: "host-replacement-guard", outs: inputs };
    },
    async update(_id, _olds, news) {
        return { outs: news };
    },
};

export class HostReplacementGuard extends pulumi.dynamic.Resource {
    constructor(
        name: string,
        args: { [K in keyof HostReplacementGuardInputs]: pulumi.Input<HostReplacementGuardInputs[K]> },
        opts?: pulumi.CustomResourceOptions,
    ) {
        super(hostReplacementGuardProvider, name, args, opts, "host", "ReplacementGuard");
    }
}
