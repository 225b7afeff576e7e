// The failures of an SSH step, one class each, so callers tell them apart with `instanceof`.
// Part of the serialized provider: see the rules in provider.ts.
//
// Only the message crosses the dynamic provider boundary (the engine shows it as the step's error),
// so the messages are the ones the provider always gave. No class here has an `id`, `code`,
// `details` or `metadata` property: the dynamic provider host reads `id` as "created, but failed to
// initialize", and gRPC takes a numeric `code` as the response's status. Nor do they keep the
// command's output, which may be secret.
//
// Pulumi's serializer turns each class into a plain constructor function, and that shapes how
// these are written (test/unit/ssh-provider.test.ts runs the serialized code):
//   - every class has its own constructor: the one it would generate for a class without one
//     passes no arguments to the parent, so the message would be lost;
//   - SshStepError sets `message` (and the stack) itself: `super(message)` becomes
//     `Error.call(this, message)`, which leaves `this` alone;
//   - each name is set on the class's prototype, after the class: class fields are dropped, and a
//     prototype with an own property is what makes the serializer keep the prototype chain, which
//     `instanceof` needs.

/** The root of the errors here. */
export class SshStepError extends Error {
    constructor(message: string) {
        super(message);
        this.message = message;
        if (this.stack === undefined) Error.captureStackTrace(this, SshStepError);
    }
}
SshStepError.prototype.name = "SshStepError";

/** One connection attempt failed; the subclass says whether another attempt can help. */
export class DialError extends SshStepError {
    constructor(message: string) {
        super(message);
    }
}
DialError.prototype.name = "DialError";

/** Refused, timed out, closed during the handshake, key not accepted yet: the host may be booting, so it is dialed again. */
export class TransientDialError extends DialError {
    constructor(message: string) {
        super(message);
    }
}
TransientDialError.prototype.name = "TransientDialError";

/** The server presented another host key than the pinned one; nothing was sent to it. */
export class HostKeyMismatchError extends DialError {
    constructor(message: string) {
        super(message);
    }
}
HostKeyMismatchError.prototype.name = "HostKeyMismatchError";

/** The connection's settings cannot work (a host key or private key that cannot be parsed): dialing again will not help. */
export class ConnectionSettingsError extends DialError {
    constructor(message: string) {
        super(message);
    }
}
ConnectionSettingsError.prototype.name = "ConnectionSettingsError";

/** No connection after the attempts the connection allows; `cause` is the last attempt's failure (a DialError). */
export class ConnectError extends SshStepError {
    constructor(
        message: string,
        override readonly cause: Error,
    ) {
        super(message);
    }
}
ConnectError.prototype.name = "ConnectError";

/** A file to upload no longer has the hash the program took: the program has to run again. */
export class UploadSourceChangedError extends SshStepError {
    constructor(message: string) {
        super(message);
    }
}
UploadSourceChangedError.prototype.name = "UploadSourceChangedError";

/** Putting a file on the host over SFTP failed (its temp file is removed). */
export class UploadFailedError extends SshStepError {
    constructor(message: string) {
        super(message);
    }
}
UploadFailedError.prototype.name = "UploadFailedError";

/** The server refused to start the command. */
export class CommandStartError extends SshStepError {
    constructor(message: string) {
        super(message);
    }
}
CommandStartError.prototype.name = "CommandStartError";

/** The command exited non-zero or was killed; the message quotes its last visible lines. */
export class CommandFailedError extends SshStepError {
    constructor(
        message: string,
        readonly op: "create" | "update" | "delete",
        readonly exitCode: number | null,
        readonly signal: string | null,
    ) {
        super(message);
    }
}
CommandFailedError.prototype.name = "CommandFailedError";

/** The connection ended before the command reported how it exited: it may have finished or not. */
export class ConnectionLostError extends CommandFailedError {
    constructor(message: string, op: "create" | "update" | "delete") {
        super(message, op, null, null);
    }
}
ConnectionLostError.prototype.name = "ConnectionLostError";
