// Runs a state-changing command under the host-wide deploy lock, after bringing the host back to
// its last committed state when a previous deploy was interrupted (recorded in slots.json, or a
// holder that died with the lock).
import { AgentContext } from "./context";
import { acquireLock, newLockInfo, releaseLock } from "./lock";
import { recoverInterrupted } from "./recovery";

export async function withDeployLock<T>(ctx: AgentContext, command: string, version: string | undefined, fn: (recovered: boolean) => Promise<T>): Promise<T> {
    const { stale } = acquireLock(ctx.layout.lockFile, newLockInfo(command, version));
    try {
        const recovered = await recoverInterrupted(ctx, stale);
        return await fn(recovered);
    } finally {
        releaseLock(ctx.layout.lockFile);
    }
}
