// Pinning the server's host key: parsing the expected key line, the algorithms to offer, and the
// check of the key the server presents. Part of the serialized provider: see the rules in provider.ts.
import { HostKeyMismatchError } from "./errors";

/** A public key: its type name ("ssh-ed25519") and its wire-format blob. */
export interface HostKey {
    type: string;
    blob: Buffer;
}

/** Parses "ssh-ed25519 AAAA... [comment]" (a known_hosts line with a leading host name is fine too). */
export function parseHostKey(text: string): HostKey | undefined {
    const tokens = text.trim().split(/\s+/);
    for (let i = 0; i + 1 < tokens.length; i++) {
        if (!/^(ssh-|ecdsa-|sk-)/.test(tokens[i]) || !/^[A-Za-z0-9+/]+={0,2}$/.test(tokens[i + 1])) continue;
        const blob = Buffer.from(tokens[i + 1], "base64");
        // The key blob starts with its own type name: a pasted key of another type is caught here.
        if (blob.length < 4) return undefined;
        const len = blob.readUInt32BE(0);
        if (blob.length < 4 + len || blob.subarray(4, 4 + len).toString("latin1") !== tokens[i]) return undefined;
        return { type: tokens[i], blob };
    }
    return undefined;
}

/** Host key algorithms to offer, so a server with several host keys presents the pinned one. */
export function hostKeyAlgorithms(type: string): string[] {
    return type === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [type];
}

/** OpenSSH's fingerprint notation, for messages. */
export function fingerprint(blob: Buffer): string {
    const crypto = require("crypto") as typeof import("crypto");
    return `SHA256:${crypto.createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

export interface HostKeyCheck {
    /** For ssh2's hostVerifier: true when the server presented the pinned key. */
    verify(key: Buffer): boolean;
    /** After a refused key: the error naming both fingerprints; undefined while nothing was refused. */
    mismatch(): HostKeyMismatchError | undefined;
}

/**
 * Compares the key the server presents with the pinned one. ssh2 reports a refused key only as
 * "Host denied (verification failed)", so the check remembers what was presented, for the error.
 */
export function createHostKeyCheck(pinned: HostKey): HostKeyCheck {
    let presented: string | undefined;
    return {
        verify(key: Buffer) {
            if (key.equals(pinned.blob)) return true;
            presented = fingerprint(key);
            return false;
        },
        mismatch() {
            if (!presented) return undefined;
            return new HostKeyMismatchError(
                `host key mismatch: expected ${pinned.type} ${fingerprint(pinned.blob)}, the server presented ${presented}; refusing to connect`,
            );
        },
    };
}
