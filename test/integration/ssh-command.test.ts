// SshCommand for real: a loopback sshd (own config, host key and authorized key, on a free port),
// first driven directly through the provider's functions, then through the real Pulumi engine (the
// CLI from scripts/pulumi-toolchain.sh) running fixtures/ssh-program. The "host" is a temp
// directory; commands append to events.log there, so order and counts can be checked.
//
// Needs /usr/sbin/sshd (Debian's openssh-server, installed here when missing and running as root)
// and, for the engine part, the Pulumi CLI. Without them the tests are skipped, saying why.
// SLOTSHIFT_KEEP_TMP=1 keeps the temp directory (sshd log, stack state, pulumi output).
import * as assert from "assert";
import { ChildProcess, spawn, spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import type { LineLog } from "../../components/ssh/engine-log";
import type { SshCommandInputs } from "../../components/ssh/inputs";
import { runStep } from "../../components/ssh/provider";
import { sha256Hex } from "../../components/ssh/ssh-command";
import { SshConnection } from "../../components/ssh/ssh-connection";
import { Stack } from "../../dev/loopback/harness";

const REPO = path.resolve(__dirname, "..", "..");
const PROGRAM = path.join(__dirname, "fixtures", "ssh-program");
const SSHD = "/usr/sbin/sshd";
/** Ports other local test setups use; never chosen. */
const RESERVED = new Set([2024, 80, 443, 2222, 5432, 8001, 8002, 8080]);
const isRoot = process.getuid?.() === 0;

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => (RESERVED.has(port) ? freePort().then(resolve, reject) : resolve(port)));
        });
    });
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

async function waitForPort(port: number, ms: number): Promise<boolean> {
    const until = Date.now() + ms;
    while (Date.now() < until) {
        if (await accepts(port)) return true;
        await new Promise((r) => setTimeout(r, 100));
    }
    return false;
}

/** Makes sure sshd is there; returns why not otherwise. */
function ensureSshd(): string | undefined {
    if (fs.existsSync(SSHD)) return undefined;
    if (!isRoot) return `${SSHD} is missing (apt-get install openssh-server, as root)`;
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const install = () => spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", "openssh-server"], { env, encoding: "utf8" });
    let r = install();
    if (r.status !== 0) {
        spawnSync("apt-get", ["update", "-qq"], { env });
        r = install();
    }
    return fs.existsSync(SSHD) ? undefined : `cannot install openssh-server: ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").pop()}`;
}

/** One sshd of ours: its own host key, our client key authorized for the current user. */
class TestSshd {
    child?: ChildProcess;
    port = 0;
    constructor(
        readonly dir: string,
        readonly hostKeyFile: string,
        readonly authorizedKeys: string,
    ) {}

    async start(port?: number): Promise<void> {
        this.port = port ?? (await freePort());
        const config = path.join(this.dir, `sshd-${this.port}.conf`);
        fs.writeFileSync(
            config,
            [
                `Port ${this.port}`,
                "ListenAddress 127.0.0.1",
                `HostKey ${this.hostKeyFile}`,
                `PidFile ${path.join(this.dir, `sshd-${this.port}.pid`)}`,
                `AuthorizedKeysFile ${this.authorizedKeys}`,
                // The temp directory's modes are not sshd's business here.
                "StrictModes no",
                "UsePAM no",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "Subsystem sftp internal-sftp",
                "LogLevel VERBOSE",
                "",
            ].join("\n"),
        );
        // Its privilege separation directory (a package install normally creates it).
        if (isRoot) fs.mkdirSync("/run/sshd", { recursive: true, mode: 0o755 });
        this.child = spawn(SSHD, ["-D", "-f", config, "-E", path.join(this.dir, `sshd-${this.port}.log`)], { stdio: "ignore" });
        if (!(await waitForPort(this.port, 10_000))) throw new Error(`sshd did not start on ${this.port}: ${this.log().slice(-500)}`);
    }

    log(): string {
        const f = path.join(this.dir, `sshd-${this.port}.log`);
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

interface Fixture {
    tmp: string;
    hostDir: string;
    sshd: TestSshd;
    connection: SshConnection;
    privateKey: string;
    hostKey: string;
}

function keygen(file: string): void {
    const r = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "slotshift-test", "-f", file], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`ssh-keygen: ${r.stderr}`);
}

function collectingLog(): LineLog & { lines: string[] } {
    const lines: string[] = [];
    return { lines, write: (l) => lines.push(l), close: async () => undefined };
}

describe("SshCommand against a real sshd", function () {
    let fx: Fixture;

    before(async function () {
        this.timeout(300_000);
        const why = ensureSshd();
        if (why) {
            console.log(`      skipped: ${why}`);
            return this.skip();
        }
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-ssh-"));
        const hostDir = path.join(tmp, "host");
        fs.mkdirSync(hostDir);
        keygen(path.join(tmp, "host_key"));
        keygen(path.join(tmp, "client_key"));
        fs.copyFileSync(path.join(tmp, "client_key.pub"), path.join(tmp, "authorized_keys"));
        const sshd = new TestSshd(tmp, path.join(tmp, "host_key"), path.join(tmp, "authorized_keys"));
        await sshd.start();
        const privateKey = fs.readFileSync(path.join(tmp, "client_key"), "utf8");
        const hostKey = fs.readFileSync(path.join(tmp, "host_key.pub"), "utf8").trim();
        const user = os.userInfo().username;
        fx = { tmp, hostDir, sshd, privateKey, hostKey, connection: { host: "127.0.0.1", port: sshd.port, user, privateKey, hostKey } };
    });

    after(async function () {
        if (!fx) return;
        await fx.sshd.stop();
        if (!process.env.SLOTSHIFT_KEEP_TMP) fs.rmSync(fx.tmp, { recursive: true, force: true });
        else console.log(`      kept ${fx.tmp}`);
    });

    describe("the provider's steps", () => {
        const props = (extra: Partial<SshCommandInputs> = {}): SshCommandInputs => ({ connection: fx.connection, create: "true", ...extra });

        it("runs a command with stdin, streams its lines, keeps its output, uploads first", async () => {
            const log = collectingLog();
            const target = path.join(fx.hostDir, "direct.txt");
            const r = await runStep(
                "create",
                props({ uploads: [{ content: "v1\n", remotePath: target, mode: "0640", sha256: sha256Hex("v1\n") }] }),
                `cat ${target}; echo warn >&2; cat; printf tail`,
                {
                    uploads: true,
                    stdin: "from stdin\n",
                    log,
                },
            );
            assert.deepStrictEqual(r, { stdout: "v1\nfrom stdin\ntail", stderr: "warn\n" });
            assert.deepStrictEqual(log.lines.slice(0, 1), [`uploaded ${target} (3 bytes, mode 0640)`]);
            assert.deepStrictEqual([...log.lines.slice(1)].sort(), ["from stdin", "tail", "v1", "warn"]);
            assert.strictEqual(fs.statSync(target).mode & 0o777, 0o640);
        });

        it("replaces an uploaded file whole and leaves no temp file behind", async () => {
            const target = path.join(fx.hostDir, "replaced.txt");
            fs.writeFileSync(target, "old\n", { mode: 0o644 });
            const local = path.join(fx.tmp, "local.bin");
            fs.writeFileSync(local, crypto.randomBytes(300_000));
            await runStep(
                "update",
                props({ uploads: [{ localPath: local, remotePath: target, mode: "0755", sha256: sha256Hex(fs.readFileSync(local)) }] }),
                "true",
                { uploads: true, log: collectingLog() },
            );
            assert.ok(fs.readFileSync(target).equals(fs.readFileSync(local)));
            assert.strictEqual(fs.statSync(target).mode & 0o777, 0o755);
            assert.deepStrictEqual(
                fs.readdirSync(fx.hostDir).filter((f) => f.includes("slotshift-upload")),
                [],
            );
        });

        it("refuses a local file that changed since the program hashed it, and runs nothing", async () => {
            const local = path.join(fx.tmp, "changed.txt");
            fs.writeFileSync(local, "now\n");
            const marker = path.join(fx.hostDir, "must-not-exist");
            await assert.rejects(
                runStep(
                    "create",
                    props({ uploads: [{ localPath: local, remotePath: path.join(fx.hostDir, "changed.txt"), mode: "0644", sha256: sha256Hex("before\n") }] }),
                    `touch ${marker}`,
                    {
                        uploads: true,
                        log: collectingLog(),
                    },
                ),
                /changed since the program read it/,
            );
            assert.ok(!fs.existsSync(marker));
        });

        it("fails with the command's exit code and last lines, on the streams logging allows", async () => {
            const cmd = "echo progress; echo 'error: gate 50%: 5xx ratio 0.3 above 0.01' >&2; exit 4";
            await assert.rejects(runStep("create", props(), cmd, { uploads: false, log: collectingLog() }), (e: Error) => {
                assert.match(e.message, /^create failed \(exit code 4\): error: gate 50%: 5xx ratio 0\.3 above 0\.01\ncommand: echo progress;/);
                assert.match(e.message, /last output:\n {4}progress\n {4}error: gate 50%/);
                return true;
            });
            const log = collectingLog();
            await assert.rejects(
                runStep("create", props({ logging: "stderr" }), "cat; exit 1", { uploads: false, stdin: "SECRET-ON-STDOUT\n", log }),
                (e: Error) => {
                    assert.doesNotMatch(e.message, /SECRET-ON-STDOUT/);
                    return true;
                },
            );
            assert.deepStrictEqual(log.lines, []);
        });

        it("refuses a server whose host key is not the pinned one, at once", async () => {
            const other = path.join(fx.tmp, "other_key");
            keygen(other);
            const started = Date.now();
            await assert.rejects(
                runStep("create", props({ connection: { ...fx.connection, hostKey: fs.readFileSync(`${other}.pub`, "utf8") } }), "touch /tmp/never", {
                    uploads: false,
                    log: collectingLog(),
                }),
                /cannot connect to .* \(1 attempt in \d+ s\): host key mismatch: expected ssh-ed25519 SHA256:\S+, the server presented SHA256:\S+; refusing to connect/,
            );
            assert.ok(Date.now() - started < 5000, "no retries");
        });

        it("refuses another sshd with another key on the same address (a machine in the middle), and sends it nothing", async function () {
            this.timeout(60_000);
            const port = fx.sshd.port;
            const otherKey = path.join(fx.tmp, "impostor_key");
            keygen(otherKey);
            // The impostor accepts our client key too: only the host key can tell them apart.
            const impostor = new TestSshd(fs.mkdtempSync(path.join(fx.tmp, "impostor-")), otherKey, fx.sshd.authorizedKeys);
            const marker = path.join(fx.hostDir, "ran-on-impostor");
            await fx.sshd.stop();
            try {
                await impostor.start(port);
                await assert.rejects(
                    runStep("create", props(), `touch ${marker}`, { uploads: true, stdin: "SECRET=for-the-real-host\n", log: collectingLog() }),
                    (e: Error) => {
                        assert.match(e.message, new RegExp(`cannot connect to .*:${port} \\(1 attempt in \\d+ s\\): host key mismatch`));
                        return true;
                    },
                );
                assert.ok(!fs.existsSync(marker), "the command ran on the impostor");
                // It never got as far as authentication: nothing was offered to it.
                assert.doesNotMatch(impostor.log(), /Accepted publickey|Postponed publickey/);
            } finally {
                await impostor.stop();
                await fx.sshd.start(port);
            }
            const r = await runStep("create", props(), "echo real host", { uploads: false, log: collectingLog() });
            assert.strictEqual(r.stdout, "real host\n");
        });

        it("refuses to connect without a pinned host key, running nothing", async () => {
            const marker = path.join(fx.hostDir, "ran-unpinned");
            const { hostKey: _, ...unpinned } = fx.connection;
            await assert.rejects(
                runStep("create", props({ connection: unpinned as SshConnection }), `touch ${marker}`, { uploads: false, log: collectingLog() }),
                /connection\.hostKey is required: no connection goes unchecked/,
            );
            assert.ok(!fs.existsSync(marker));
        });

        it("keeps dialing while the host boots, then runs", async function () {
            this.timeout(60_000);
            const late = new TestSshd(fx.tmp, fx.sshd.hostKeyFile, fx.sshd.authorizedKeys);
            const port = await freePort();
            const timer = setTimeout(() => void late.start(port), 3000);
            const log = collectingLog();
            try {
                const r = await runStep("create", props({ connection: { ...fx.connection, port, dialErrorLimit: 20, perDialTimeout: 5 } }), "echo booted", {
                    uploads: false,
                    log,
                });
                assert.strictEqual(r.stdout, "booted\n");
                assert.match(log.lines[0], new RegExp(`^waiting for SSH on .*:${port} \\(attempt 1 of 20\\): connect ECONNREFUSED`));
            } finally {
                clearTimeout(timer);
                await late.stop();
            }
            await assert.rejects(
                runStep("create", props({ connection: { ...fx.connection, port, dialErrorLimit: 2, perDialTimeout: 2 } }), "true", {
                    uploads: false,
                    log: collectingLog(),
                }),
                /\(2 attempts in \d+ s\): connect ECONNREFUSED/,
            );
        });
    });

    describe("a dropped connection during the agent's shift", function () {
        this.timeout(300_000);
        const stack = new Stack({ appName: "nobody", keepPreviousWarm: true });

        before(async function () {
            if (!fx) return this.skip();
            await stack.start();
            for (const v of ["v1", "v2"]) {
                const run = await stack.agent(["prepare", "--version", v, "--source", stack.makeArtifact(v)]);
                assert.strictEqual(run.code, 0, run.stderr);
            }
            const first = await stack.agent(["activate", "--version", "v1", "--shift-plan", "100"]);
            assert.strictEqual(first.code, 0, first.stderr);
        });

        after(async function () {
            await stack.stop();
        });

        it("the session killed at a step: the provider reconnects, follows the worker from where it was, and the step succeeds", async () => {
            const agent = (command: string, args: string[]) =>
                [process.execPath, stack.layout.agentPath, command, "--config", stack.layout.agentConfigPath, ...args].join(" ");
            const log = collectingLog();
            const sshdPid = fx.sshd.child!.pid!;
            let killed = 0;
            const watch = setInterval(() => {
                if (killed || !log.lines.some((l) => /step 1\/3 \(10%\):/.test(l))) return;
                // The sessions our sshd serves (its children): the connection drops as if the network went.
                const ps = spawnSync("ps", ["-o", "pid=", "--ppid", String(sshdPid)], { encoding: "utf8" });
                for (const pid of ps.stdout.split("\n").map(Number).filter(Boolean)) {
                    try {
                        process.kill(pid, "SIGKILL");
                        killed++;
                    } catch {
                        // already gone
                    }
                }
            }, 50);
            let r: { stdout: string; stderr: string };
            try {
                r = await runStep(
                    "create",
                    {
                        connection: fx.connection,
                        create: agent("activate", [
                            "--version",
                            "v2",
                            "--shift-plan",
                            "10%:3s,50%:1s,100%",
                            "--drain-timeout",
                            "5s",
                            "--min-requests-per-step",
                            "0",
                        ]),
                        reattach: agent("attach", ["--worker", "'{worker}'", "--skip-lines", "'{lines}'"]),
                    },
                    agent("activate", ["--version", "v2", "--shift-plan", "10%:3s,50%:1s,100%", "--drain-timeout", "5s", "--min-requests-per-step", "0"]),
                    { uploads: false, log },
                );
            } finally {
                clearInterval(watch);
            }
            assert.ok(killed > 0, "the session was killed");
            assert.ok(
                log.lines.some((l) => /the connection dropped while .* ran on the host; reconnecting/.test(l)),
                log.lines.join("\n"),
            );
            const done = log.lines.filter((l) => /activate v2 done in/.test(l));
            assert.strictEqual(done.length, 1, `the worker's last line, once:\n${log.lines.join("\n")}`);
            const steps = log.lines.filter((l) => /step 1\/3 \(10%\):/.test(l));
            assert.strictEqual(steps.length, 1, "no line shown twice");
            assert.match(r.stdout, /activate v2 done in/);
            assert.deepStrictEqual(await stack.weights(), { blue: 0, green: 100 });
        });
    });

    describe("through the Pulumi engine (fixtures/ssh-program)", function () {
        const stack = `ssh-it-${process.pid}`;
        let env: NodeJS.ProcessEnv;
        let configFile: string;
        let destroyed = false;
        /** The program's "host" directory. */
        let dir: string;
        const events = () => (fs.existsSync(path.join(dir, "events.log")) ? fs.readFileSync(path.join(dir, "events.log"), "utf8").trim().split("\n") : []);
        const secretValue = `s3cret-${crypto.randomBytes(6).toString("hex")}-leakcanary`;

        interface PulumiRun {
            code: number | null;
            out: string;
            /** Each stdout line with the time it arrived (ms since start). */
            lines: { at: number; text: string }[];
        }

        function pulumi(args: string[], opts: { input?: string; stackArgs?: boolean } = {}): Promise<PulumiRun> {
            const full = opts.stackArgs === false ? args : [...args, "--stack", stack, "--config-file", configFile];
            return new Promise((resolve, reject) => {
                const started = Date.now();
                const child = spawn("pulumi", full, { cwd: PROGRAM, env, stdio: ["pipe", "pipe", "pipe"] });
                let out = "";
                let partial = "";
                const lines: PulumiRun["lines"] = [];
                child.stdout.on("data", (c: Buffer) => {
                    out += c.toString("utf8");
                    partial += c.toString("utf8");
                    let nl: number;
                    while ((nl = partial.indexOf("\n")) >= 0) {
                        lines.push({ at: Date.now() - started, text: partial.slice(0, nl) });
                        partial = partial.slice(nl + 1);
                    }
                });
                child.stderr.on("data", (c: Buffer) => (out += c.toString("utf8")));
                child.on("error", reject);
                child.on("close", (code) => {
                    fs.appendFileSync(path.join(fx.tmp, "pulumi-output.log"), `\n$ pulumi ${full.join(" ")}\n${out}`);
                    resolve({ code, out, lines });
                });
                child.stdin.end(opts.input ?? "");
            });
        }

        async function ok(args: string[], opts: { input?: string; stackArgs?: boolean } = {}): Promise<PulumiRun> {
            const r = await pulumi(args, opts);
            assert.strictEqual(r.code, 0, `pulumi ${args.join(" ")} failed:\n${r.out}`);
            return r;
        }

        const UP = ["up", "--yes", "--skip-preview", "--non-interactive", "--color", "never", "--suppress-progress"];
        const config = (key: string, value: string, secret = false) => ok(["config", "set", ...(secret ? ["--secret"] : []), key], { input: value });

        before(async function () {
            if (!fx) return this.skip();
            this.timeout(20 * 60_000);
            const tc = spawnSync("bash", [path.join(REPO, "scripts", "pulumi-toolchain.sh")], { cwd: REPO, encoding: "utf8", timeout: 20 * 60_000 });
            const bin = tc.stdout.trim().split("\n").pop();
            if (tc.status !== 0 || !bin || !fs.existsSync(path.join(bin, "pulumi"))) {
                console.log(
                    `      skipped: no Pulumi CLI (scripts/pulumi-toolchain.sh: ${(tc.stderr || String(tc.error)).trim().split("\n").slice(-3).join(" | ")})`,
                );
                return this.skip();
            }
            const home = path.join(fx.tmp, "pulumi-home");
            dir = path.join(fx.tmp, "engine-host");
            fs.mkdirSync(dir);
            fs.mkdirSync(path.join(fx.tmp, "state"));
            env = {
                ...process.env,
                PATH: `${bin}:${process.env.PATH}`,
                PULUMI_HOME: home,
                PULUMI_CONFIG_PASSPHRASE: "slotshift-test-passphrase",
                PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
                PULUMI_SKIP_UPDATE_CHECK: "true",
                PULUMI_NODEJS_TRANSPILE_ONLY: "true",
            };
            delete env.PULUMI_BACKEND_URL;
            delete env.PULUMI_ACCESS_TOKEN;
            await ok(["login", `file://${path.join(fx.tmp, "state")}`], { stackArgs: false });
            await ok(["stack", "init", stack], { stackArgs: false });
            // The stack file (it holds the passphrase salt) goes to the temp directory, not the repo.
            configFile = path.join(fx.tmp, `Pulumi.${stack}.yaml`);
            fs.renameSync(path.join(PROGRAM, `Pulumi.${stack}.yaml`), configFile);
            const localFile = path.join(fx.tmp, "upload.bin");
            fs.writeFileSync(localFile, crypto.randomBytes(5000));
            for (const [k, v] of Object.entries({
                dir,
                version: "v1",
                trigger: "t1",
                port: String(fx.sshd.port),
                user: fx.connection.user,
                hostKey: fx.hostKey,
                localFile,
                uploadText: "hello upload",
            })) {
                await config(k, v);
            }
            await config("privateKey", fx.privateKey, true);
            await config("secret", secretValue, true);
        });

        after(async function () {
            this.timeout(120_000);
            if (!env || !configFile) return;
            if (!destroyed) await pulumi(["destroy", "--yes", "--skip-preview", "--non-interactive"]);
            await pulumi(["stack", "rm", "--yes", "--force", "--stack", stack], { stackArgs: false });
            fs.rmSync(path.join(PROGRAM, `Pulumi.${stack}.yaml`), { force: true });
        });

        it("runs nothing on preview", async function () {
            this.timeout(120_000);
            const r = await ok(["preview", "--diff", "--non-interactive", "--color", "never"]);
            assert.match(r.out, /\+ 6 to create/, "the stack and five commands");
            assert.deepStrictEqual(fs.readdirSync(dir), []);
        });

        it("creates: streams each line under its resource as it arrives, uploads with modes, stdin secret reaches the host", async function () {
            this.timeout(180_000);
            const r = await ok(UP);
            // Live, on the resource's progress row...
            const at = (n: number) =>
                r.lines.find((l) => /ssh:Command stream creating \(\d+s\) stream line/.test(l.text) && l.text.endsWith(`stream line ${n}`));
            assert.ok(at(1) && at(3), r.out);
            assert.ok(at(3)!.at - at(1)!.at >= 1000, `line 3 came ${at(3)!.at - at(1)!.at} ms after line 1: not streamed`);
            // ...and grouped under it in the summary, stderr included.
            assert.match(
                r.out,
                /pulumi-nodejs:dynamic\/ssh:Command \(stream\):\n\s+stream line 1\n\s+stream line 2\n\s+stream line 3\n\s+stream note on stderr\n/,
            );
            assert.doesNotMatch(r.out, /info: \[runtime\]/);

            assert.strictEqual(fs.readFileSync(path.join(dir, "secret.txt"), "utf8"), secretValue);
            assert.doesNotMatch(r.out, /secret written/, "logging: stderr keeps stdout off the console");
            assert.strictEqual(fs.statSync(path.join(dir, "uploaded.bin")).mode & 0o777, 0o750);
            assert.strictEqual(fs.statSync(path.join(dir, "uploaded.txt")).mode & 0o777, 0o640);
            assert.strictEqual(fs.readFileSync(path.join(dir, "uploaded.txt"), "utf8"), "hello upload");
            assert.ok(fs.readFileSync(path.join(dir, "uploaded.bin")).equals(fs.readFileSync(path.join(fx.tmp, "upload.bin"))));
            const outputs = JSON.parse((await ok(["stack", "output", "--json", "--show-secrets", "--stack", stack], { stackArgs: false })).out);
            assert.strictEqual(outputs.uploadStdout, "750 5000\n640 12\n", "the files were there before the command ran");
            assert.strictEqual(outputs.streamStdout, "stream line 1\nstream line 2\nstream line 3\n");
            assert.strictEqual(outputs.streamStderr, "stream note on stderr\n");
            assert.deepStrictEqual(events().slice().sort(), ["cbd create v1", "dbr create v1"]);
        });

        it("keeps the secret, the private key and the provider code's captures out of the state in plain text", async function () {
            this.timeout(60_000);
            const exported = (await ok(["stack", "export"], { stackArgs: false })).out;
            assert.ok(!exported.includes(secretValue), "stdin secret in plain text");
            for (const line of fx.privateKey.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----")))
                assert.ok(!exported.includes(line), "private key in plain text");
            const state = JSON.parse(exported);
            const resources = state.deployment.resources.filter((x: any) => x.type === "pulumi-nodejs:dynamic/ssh:Command");
            assert.strictEqual(resources.length, 5);
            const isSecret = (v: any) => v && typeof v === "object" && v["4dabf18193072939515e22adb298388d"] === "1b47061264138c4ac30d75fd1eb44270";
            for (const x of resources) {
                assert.ok(isSecret(x.outputs.connection) && isSecret(x.inputs.connection), `${x.urn} connection`);
                assert.strictEqual(typeof x.outputs.__provider, "string", "the provider code is not secret: it captured nothing secret");
            }
            const secret = resources.find((x: any) => x.urn.endsWith("::secret-stdin"));
            for (const k of ["stdin", "stdout", "stderr"]) assert.ok(isSecret(secret.outputs[k]), k);
        });

        it("a changed command is an update (update command, nothing recreated); preview shows it and runs nothing", async function () {
            this.timeout(180_000);
            await config("version", "v2");
            const p = await ok(["preview", "--diff", "--non-interactive", "--color", "never"]);
            assert.match(p.out, /~ 2 to update/);
            assert.deepStrictEqual(events().slice().sort(), ["cbd create v1", "dbr create v1"], "preview ran nothing");
            const r = await ok(UP);
            assert.match(r.out, /~ 2 updated/);
            assert.deepStrictEqual(events().slice(2).sort(), ["cbd update v2", "dbr update v2"]);
        });

        it("a changed trigger replaces: create-before-delete by default, delete-before-create when asked", async function () {
            this.timeout(180_000);
            await config("version", "v3");
            await config("trigger", "t2");
            const r = await ok(UP);
            assert.match(r.out, /\+-2 replaced/);
            const now = events().slice(4);
            const cbd = now.filter((l) => l.startsWith("cbd "));
            const dbr = now.filter((l) => l.startsWith("dbr "));
            // The old resource's delete runs its own (old) command.
            assert.deepStrictEqual(cbd, ["cbd create v3", "cbd delete v2"]);
            assert.deepStrictEqual(dbr, ["dbr delete v2", "dbr create v3"]);
        });

        it("a failing command fails `pulumi up` with its message, and is not recorded: the next up runs it again", async function () {
            this.timeout(240_000);
            await config("withGate", "true");
            const failed = await pulumi(UP);
            assert.notStrictEqual(failed.code, 0, failed.out);
            assert.match(
                failed.out,
                /ssh:Command gate \*\*creating failed\*\* error: create failed \(exit code 3\): error: gate 10%: 5xx ratio 0\.25 above 0\.01, rolled back/,
            );
            assert.match(failed.out, /last output:\n\s+shifting 10%\n\s+error: gate 10%: 5xx ratio 0\.25 above 0\.01, rolled back/);
            const exported = JSON.parse((await ok(["stack", "export"], { stackArgs: false })).out);
            assert.ok(!exported.deployment.resources.some((x: any) => x.urn.endsWith("::gate")), "a failed create leaves nothing in state");
            fs.writeFileSync(path.join(dir, "allow-gate"), "");
            const r = await ok(UP);
            assert.match(r.out, /\+ 1 created/);
            assert.deepStrictEqual(
                events().filter((l) => l === "gate attempt"),
                ["gate attempt", "gate attempt"],
            );
        });

        it("destroy runs each delete command (with the last version's state)", async function () {
            this.timeout(180_000);
            const before = events().length;
            await ok(["destroy", "--yes", "--skip-preview", "--non-interactive", "--color", "never"]);
            destroyed = true;
            assert.deepStrictEqual(events().slice(before).sort(), ["cbd delete v3", "dbr delete v3"]);
        });
    });
});
