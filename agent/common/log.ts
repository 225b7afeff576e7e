// Progress lines. They stream into `pulumi up` (and into the worker's log file), so each is one
// self-contained line with a wall-clock time; with --json they go to stderr and stdout stays
// machine-readable.

export interface Logger {
    info(message: string): void;
    warn(message: string): void;
}

/** A progress line as the logger writes it (its time of day first), without the newline. */
export function logLine(message: string): string {
    return `${timeOfDay(new Date())} ${message}`;
}

function timeOfDay(d: Date): string {
    const p = (n: number, w = 2) => String(n).padStart(w, "0");
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

export function createLogger(stream: NodeJS.WritableStream = process.stdout): Logger {
    // A dropped SSH session turns writes into EPIPE; losing progress lines must never fail a deploy.
    let broken = false;
    stream.on("error", () => {
        broken = true;
    });
    const write = (line: string) => {
        if (broken) return;
        try {
            stream.write(line);
        } catch {
            broken = true;
        }
    };
    return {
        info: (message) => write(`${logLine(message)}\n`),
        warn: (message) => write(`${timeOfDay(new Date())} warning: ${message}\n`),
    };
}

/** Logger that discards everything (unit tests, quiet helpers). */
export const silentLogger: Logger = { info: () => undefined, warn: () => undefined };

export function seconds(ms: number): string {
    return `${(ms / 1000).toFixed(1)}s`;
}

export function percent(ratio: number): string {
    return `${(ratio * 100).toFixed(1)}%`;
}

/** Millisecond durations as seconds with millisecond precision, for audit lines and results. */
export function secondsOf(d: Record<string, number>): Record<string, number> {
    return Object.fromEntries(Object.entries(d).map(([k, v]) => [k, Math.round(v) / 1000]));
}
