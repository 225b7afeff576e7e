// Connecting to the host: one attempt with the host key pinned, and the retries while a new
// machine boots. Part of the serialized provider: see the rules in provider.ts.
import type { Client, ConnectConfig } from "ssh2";
import { ConnectError, ConnectionSettingsError, DialError, TransientDialError } from "./errors";
import { createHostKeyCheck, hostKeyAlgorithms, parseHostKey } from "./host-key";
import type { SshConnection } from "./ssh-connection";

/** One connection attempt; rejects with a DialError. */
export type Dial = (conn: SshConnection, timeoutMs: number) => Promise<Client>;

function sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
}

function connectOnce(conn: SshConnection, timeoutMs: number): Promise<Client> {
    const { Client } = require("ssh2") as typeof import("ssh2");
    return new Promise((resolve, reject) => {
        const client = new Client();
        const pinned = conn.hostKey ? parseHostKey(conn.hostKey) : undefined;
        const hostKeyCheck = pinned ? createHostKeyCheck(pinned) : undefined;
        let settled = false;
        const fail = (e: DialError) => {
            if (settled) return;
            settled = true;
            client.end();
            reject(e);
        };
        const cfg: ConnectConfig = {
            host: conn.host,
            port: conn.port ?? 22,
            username: conn.user,
            privateKey: conn.privateKey,
            readyTimeout: timeoutMs,
            // A host that vanishes mid-command fails the step within a minute instead of hanging.
            keepaliveInterval: 15000,
            keepaliveCountMax: 4,
        };
        if (pinned && hostKeyCheck) {
            cfg.algorithms = { serverHostKey: hostKeyAlgorithms(pinned.type) as any };
            cfg.hostVerifier = (key: Buffer) => hostKeyCheck.verify(key);
        }
        client.on("ready", () => {
            settled = true;
            resolve(client);
        });
        client.on("error", (err: Error) => fail(hostKeyCheck?.mismatch() ?? new TransientDialError(err.message)));
        client.on("close", () => fail(new TransientDialError("the connection closed during the handshake")));
        if (!pinned) {
            // check() refuses this before anything runs; never fall back to an unchecked connection.
            fail(
                new ConnectionSettingsError(
                    conn.hostKey
                        ? `connection.hostKey is not a public key line: ${conn.hostKey.slice(0, 40)}`
                        : "connection.hostKey is required: no connection goes unchecked",
                ),
            );
            return;
        }
        try {
            client.connect(cfg);
        } catch (e) {
            // A key ssh2 cannot parse: retrying will not help. The message names no key material.
            fail(new ConnectionSettingsError((e as Error).message));
        }
    });
}

/**
 * Connects, retrying while the host boots (refused, timed out, sshd or the key not ready yet).
 * `dial` makes one attempt; only a TransientDialError is tried again.
 */
export async function connectWithRetry(conn: SshConnection, note: (line: string) => void, dial: Dial = connectOnce): Promise<Client> {
    const limit = conn.dialErrorLimit ?? 10;
    const timeoutMs = (conn.perDialTimeout ?? 15) * 1000;
    const where = `${conn.user}@${conn.host}:${conn.port ?? 22}`;
    const started = Date.now();
    for (let attempt = 1; ; attempt++) {
        try {
            return await dial(conn, timeoutMs);
        } catch (e) {
            const err = e as Error;
            if (!(err instanceof TransientDialError) || (limit >= 0 && attempt >= limit)) {
                const took = Math.round((Date.now() - started) / 1000);
                throw new ConnectError(`cannot connect to ${where} (${attempt} attempt${attempt === 1 ? "" : "s"} in ${took} s): ${err.message}`, err);
            }
            if (attempt === 1 || attempt % 5 === 0) note(`waiting for SSH on ${where} (attempt ${attempt}${limit >= 0 ? ` of ${limit}` : ""}): ${err.message}`);
            await sleep(Math.min(1000 * attempt, 5000));
        }
    }
}
