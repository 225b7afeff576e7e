// Error types carry the process exit code, so main.ts can map any failure to one `error: ...` line.

/** Exit codes: 1 a deploy step or gate failed (traffic restored), 2 bad usage, 3 another deploy holds the lock. */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
const EXIT_LOCKED = 3;

export class AgentError extends Error {
    constructor(
        message: string,
        readonly exitCode: number = EXIT_FAILED,
    ) {
        super(message);
        this.name = "AgentError";
    }
}

export class UsageError extends AgentError {
    constructor(message: string) {
        super(message, EXIT_USAGE);
        this.name = "UsageError";
    }
}

export class LockBusyError extends AgentError {
    constructor(message: string) {
        super(message, EXIT_LOCKED);
        this.name = "LockBusyError";
    }
}

/** A deploy gate (health, smoke, HAProxy check, error rate) failed; the message names it and its figures. */
export class GateError extends AgentError {
    constructor(
        readonly gate: string,
        message: string,
    ) {
        super(message, EXIT_FAILED);
        this.name = "GateError";
    }
}

export function errorMessage(e: unknown): string {
    return e instanceof Error ? e.message : String(e);
}
