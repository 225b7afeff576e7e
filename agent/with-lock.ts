// Runs a state-changing command under the host-wide deploy lock, after bringing the host back to
// its last committed state when a previous deploy was interrupted (recorded in slots.json, or a
// holder that died with the lock).
import { AgentContext } from "./context";
import { AgentError } from "./errors";
import { AcquireOptions, acquireLock, newLockInfo, releaseLock } from "./lock";
import { recoverInterrupted } from "./recovery";

export interface DeployLockOptions extends AcquireOptions {
    /** Fail unless the lock was this process's already (adoptOwn): what took it must have handed it over. */
    mustAdopt?: string;
}

export async function withDeployLock<T>(
    ctx: AgentContext,
    command: string,
    version: string | undefined,
    fn: (recovered: boolean) => Promise<T>,
    opts: DeployLockOptions = {},
): Promise<T> {
    const { stale, adopted } = acquireLock(ctx.layout.lockFile, newLockInfo(command, version), opts);
    try {
        if (opts.mustAdopt && !adopted) throw new AgentError(opts.mustAdopt);
        const recovered = await recoverInterrupted(ctx, stale);
        return await fn(recovered);
    } finally {
        releaseLock(ctx.layout.lockFile);
    }
}
