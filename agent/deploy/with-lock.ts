// Runs a state-changing command under the host-wide deploy lock, after bringing the host back to
// its last committed state when a previous deploy was interrupted (recorded in slots.json, or a
// holder that died with the lock).
import { AgentContext } from "../context";
import { AgentError } from "../common/errors";
import { AcquireOptions, acquireLock, newLockInfo, releaseLock } from "../state/lock";
import { recoverInterrupted } from "./recovery";

interface DeployLockOptions extends AcquireOptions {
    /** Fail unless the lock was this process's already (adoptOwn): what took it handed it over. */
    mustAdopt?: boolean;
}

export function withDeployLock<T>(ctx: AgentContext, command: string, version: string | undefined, fn: (recovered: boolean) => Promise<T>): Promise<T> {
    return underDeployLock(ctx, command, version, fn, {});
}

/**
 * withDeployLock in a process that holds the lock already: taken before an exec, by the rollback
 * script (templates/rollback.sh.njk). Fails, changing nothing, when the lock was not this process's.
 */
export function withAdoptedDeployLock<T>(ctx: AgentContext, command: string, version: string | undefined, fn: (recovered: boolean) => Promise<T>): Promise<T> {
    return underDeployLock(ctx, command, version, fn, { adoptOwn: true, mustAdopt: true });
}

async function underDeployLock<T>(
    ctx: AgentContext,
    command: string,
    version: string | undefined,
    fn: (recovered: boolean) => Promise<T>,
    opts: DeployLockOptions,
): Promise<T> {
    const { stale, adopted } = acquireLock(ctx.layout.lockFile, newLockInfo(command, version), opts);
    try {
        if (opts.mustAdopt && !adopted)
            throw new AgentError(
                `${command}: this process does not hold the deploy lock it was started to go on with (--script-flip is deploy/rollback's, which takes the lock first)`,
            );
        const recovered = await recoverInterrupted(ctx, stale);
        return await fn(recovered);
    } finally {
        releaseLock(ctx.layout.lockFile);
    }
}
