// Runs a state-changing command under the host-wide deploy lock, recovering first when the previous
// holder died half way.
import { AgentContext } from "./context";
import { acquireLock, newLockInfo, releaseLock } from "./lock";
import { recoverStaleLock } from "./recovery";

export async function withDeployLock<T>(ctx: AgentContext, command: string, version: string | undefined, fn: () => Promise<T>): Promise<T> {
    const { stale } = acquireLock(ctx.layout.lockFile, newLockInfo(command, version));
    try {
        if (stale) await recoverStaleLock(ctx, stale);
        return await fn();
    } finally {
        releaseLock(ctx.layout.lockFile);
    }
}
