// How every remote step reaches the host: one typed SSH connection, produced by the Host component
// for both host kinds and handed unchanged to every SshCommand.

export interface SshConnection {
    /** Host name or IP address. */
    host: string;
    /** Default 22. */
    port?: number;
    user: string;
    /** PEM or OpenSSH private key (unencrypted). Secret: the whole connection is kept secret. */
    privateKey: string;
    /**
     * Expected host key, as in a known_hosts or .pub line: "ssh-ed25519 AAAA...". Required: only a
     * server presenting exactly this key is accepted (the provider refuses a connection without one).
     */
    hostKey: string;
    /**
     * Connection attempts before giving up (default 10; -1 for no limit). A machine that was just
     * created refuses or times out until it has booted, so it needs more (see Host).
     */
    dialErrorLimit?: number;
    /** Seconds one attempt may take to connect and authenticate (default 15). */
    perDialTimeout?: number;
}
