// Names that cross the SSH boundary and become directory names, unit names and command arguments:
// the patterns that keep them inert, shared by the config schema and the agent.

/** Versions become directory names, unit descriptions and CLI arguments: keep them inert. */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/;
export const VERSION_RULE =
    "be 1-63 characters of letters, digits, '.', '_', '+' or '-', starting with a letter or digit (no '/', spaces, quotes or shell metacharacters)";

/** App names become a Unix user, a directory and unit names. */
export const APP_NAME_PATTERN = /^[a-z][a-z0-9-]{0,30}[a-z0-9]$/;
export const APP_NAME_RULE = "be 2-32 lowercase letters, digits or '-', starting with a letter";

/** A release archive's sha256, as `sha256sum` prints it. */
export const SHA256_PATTERN = /^[0-9a-f]{64}$/;

/** A worker name as the foreground announces it: a file name, never a path. */
const WORKER_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$/;

/** Why a version is not acceptable, or undefined when it is. */
export function versionProblem(version: string): string | undefined {
    if (!VERSION_PATTERN.test(version)) return `must ${VERSION_RULE}`;
    if (version.includes("..")) return "must not contain '..'";
    return undefined;
}

/** Why a worker name is not acceptable, or undefined when it is. */
export function workerNameProblem(name: string): string | undefined {
    if (!WORKER_NAME_PATTERN.test(name) || name.includes("..")) return "must be a worker's log name (letters, digits, '.', '_', '+', '-')";
    return undefined;
}
