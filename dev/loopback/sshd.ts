// An sshd of our own on a free loopback port, so the program's command lines reach the agent the way
// `pulumi up` sends them: over SSH, through the SshCommand provider's own code (ssh2, SFTP
// uploads, the pinned host key). Its own config, host key and one authorized client key, all in a
// directory of ours; it serves the user running this (root on the benchmark machine).
// Needs /usr/sbin/sshd (Debian's openssh-server, in scripts/install-deps.sh).
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import type { SshConnection } from "../../components/ssh/ssh-connection";
import { freePorts } from "./free-ports";

const SSHD = "/usr/sbin/sshd";

function keygen(file: string): void {
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "slotshift-loopback", "-f", file], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
}

function accepts(port: number): Promise<boolean> {
    return new Promise((resolve) => {
        const s = net.connect(port, "127.0.0.1");
        s.once("connect", () => {
            s.destroy();
            resolve(true);
        });
        s.once("error", () => resolve(false));
    });
}

export class LoopbackSshd {
    private child?: ChildProcess;
    port = 0;

    constructor(readonly dir: string) {}

    /** Keys, config, sshd in the foreground (-D) as our child; resolves once it accepts connections. */
    async start(): Promise<void> {
        if (!fs.existsSync(SSHD)) throw new Error(`${SSHD} is missing (apt-get install openssh-server; scripts/install-deps.sh does)`);
        fs.mkdirSync(this.dir, { recursive: true, mode: 0o700 });
        keygen(path.join(this.dir, "host_key"));
        keygen(path.join(this.dir, "client_key"));
        fs.copyFileSync(path.join(this.dir, "client_key.pub"), path.join(this.dir, "authorized_keys"));
        this.port = (await freePorts(1)).others[0];
        const config = path.join(this.dir, "sshd.conf");
        fs.writeFileSync(
            config,
            [
                `Port ${this.port}`,
                "ListenAddress 127.0.0.1",
                `HostKey ${path.join(this.dir, "host_key")}`,
                `PidFile ${path.join(this.dir, "sshd.pid")}`,
                `AuthorizedKeysFile ${path.join(this.dir, "authorized_keys")}`,
                // The temp directory's modes are not sshd's business here.
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "Subsystem sftp internal-sftp",
                "LogLevel INFO",
                "",
            ].join("\n"),
        );
        // Its privilege separation directory (a package install normally creates it).
        if (process.getuid?.() === 0) fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
        this.child = spawn(SSHD, ["-D", "-f", config, "-E", path.join(this.dir, "sshd.log")], { stdio: "ignore" });
        const until = Date.now() + 10_000;
        while (!(await accepts(this.port))) {
            if (this.child.exitCode !== null || Date.now() > until) throw new Error(`sshd did not start on ${this.port}: ${this.log().slice(-500)}`);
            await new Promise((r) => setTimeout(r, 100));
        }
    }

    /** What a stack's SSH settings give the provider: the address, the user, the key, the pinned host key. */
    connection(): SshConnection {
        return {
            host: "127.0.0.1",
            port: this.port,
            user: os.userInfo().username,
            privateKey: fs.readFileSync(path.join(this.dir, "client_key"), "utf8"),
            hostKey: fs.readFileSync(path.join(this.dir, "host_key.pub"), "utf8").trim(),
        };
    }

    log(): string {
        const f = path.join(this.dir, "sshd.log");
        return fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
    }

    /** Stops our sshd (by its own pid) and waits until it is gone. */
    async stop(): Promise<void> {
        const child = this.child;
        if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await gone;
    }
}
