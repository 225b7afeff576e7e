// A version names one archive: the built agent's prepare against a temp host root, with local
// archives and with https downloads from a local server (its own certificate, trusted through
// NODE_EXTRA_CA_CERTS). A rebuilt archive under a prepared version, an archive that is not the
// given sha256, a download over the size limit and one slower than its deadline are refused.
import * as assert from "assert";
import { execFileSync, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as https from "https";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { buildAgentSettings } from "../../program/agent-settings";
import { HostLayout, hostLayout, releaseDigestPath } from "../../lib/host-layout";

const REPO = path.resolve(__dirname, "..", "..");
const AGENT_NODE = process.env.SLOTSHIFT_AGENT_NODE || process.execPath;

interface Run {
    code: number | null;
    stdout: string;
    stderr: string;
}

function sha256(file: string): string {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

describe("release integrity: one version, one archive (built agent)", function () {
    this.timeout(120_000);
    let root: string;
    let layout: HostLayout;
    let server: https.Server;
    let base: string;
    let caFile: string;

    const agent = (args: string[], stdin?: string): Promise<Run> =>
        new Promise((resolve) => {
            const child = spawn(AGENT_NODE, [layout.agentPath, ...args, "--config", layout.agentConfigPath], {
                env: { ...process.env, NODE_EXTRA_CA_CERTS: caFile },
                stdio: ["pipe", "pipe", "pipe"],
            });
            let stdout = "";
            let stderr = "";
            child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
            child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
            child.stdin.end(stdin ?? "");
            child.on("close", (code) => resolve({ code, stdout, stderr }));
        });
    const show = (r: Run) => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`;

    /** An archive whose one file says `text`, at `file`. */
    const archive = (file: string, text: string): string => {
        const src = fs.mkdtempSync(path.join(root, "src-"));
        fs.writeFileSync(path.join(src, "app.txt"), text);
        fs.mkdirSync(path.dirname(file), { recursive: true });
        execFileSync("tar", ["-czf", file, "-C", src, "."]);
        return file;
    };

    before(async function () {
        const dist = path.join(REPO, "dist", "agent.js");
        if (!fs.existsSync(dist)) throw new Error("dist/agent.js is missing: npm run build:agent");
        root = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-integrity-"));
        fs.chmodSync(root, 0o755);
        // An app user that exists everywhere (as in the deploy suite); no build or check command.
        const settings = buildAgentSettings(
            {
                appName: "nobody",
                domain: "app.test",
                healthPath: "/healthz",
                smokePaths: ["/"],
                slotBasePort: 18001,
                haproxyPort: 18080,
                keepPreviousWarm: true,
                releasesToKeep: 5,
            },
            {
                root,
                processControl: { kind: "command", start: "true", stop: "true" },
            },
        );
        layout = hostLayout("nobody", { root });
        fs.mkdirSync(layout.deployDir, { recursive: true });
        fs.writeFileSync(layout.agentConfigPath, JSON.stringify(settings));
        fs.copyFileSync(dist, layout.agentPath);

        // The download server: its own certificate for 127.0.0.1.
        const key = path.join(root, "server.key");
        caFile = path.join(root, "server.crt");
        execFileSync(
            "openssl",
            ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"].concat([
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-keyout",
                key,
                "-out",
                caFile,
            ]),
            { stdio: "ignore" },
        );
        const good = archive(path.join(root, "served", "good.tar.gz"), "served\n");
        const big = crypto.randomBytes(3 * 1024 * 1024);
        server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(caFile) }, (req, res) => {
            const url = new URL(req.url ?? "/", "https://127.0.0.1");
            if (url.pathname === "/good.tar.gz") {
                res.writeHead(200, { "content-length": fs.statSync(good).size });
                fs.createReadStream(good).pipe(res);
            } else if (url.pathname === "/big-announced.tar.gz") {
                res.writeHead(200, { "content-length": big.length });
                res.end(big);
            } else if (url.pathname === "/big-chunked.tar.gz") {
                // No length up front: the limit has to hold while bytes arrive.
                res.writeHead(200);
                let sent = 0;
                const next = (): void => {
                    if (sent >= big.length || res.destroyed) {
                        res.end();
                        return;
                    }
                    res.write(big.subarray(sent, sent + 65536), next);
                    sent += 65536;
                };
                next();
            } else if (url.pathname === "/slow.tar.gz") {
                // A byte every 200 ms: never idle for long, never done in time.
                res.writeHead(200);
                const timer = setInterval(() => res.write("x"), 200);
                res.on("close", () => clearInterval(timer));
            } else {
                res.writeHead(404).end();
            }
        });
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        base = `https://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    });

    after(async function () {
        server?.closeAllConnections();
        await new Promise((resolve) => server?.close(resolve));
        if (root && !process.env.SLOTSHIFT_KEEP_TMP) fs.rmSync(root, { recursive: true, force: true });
    });

    it("refuses a rebuilt archive under a version that is prepared already, and keeps the release", async () => {
        const file = archive(path.join(root, "artifacts", "v1.tar.gz"), "first build\n");
        const first = await agent(["prepare", "--version", "v1", "--source", file]);
        assert.strictEqual(first.code, 0, show(first));
        const again = await agent(["prepare", "--version", "v1", "--source", file]);
        assert.strictEqual(again.code, 0, show(again));
        assert.match(again.stdout, /already prepared/);
        assert.strictEqual(fs.readFileSync(releaseDigestPath(layout, "v1"), "utf8").trim(), sha256(file));

        const firstSha = sha256(file);
        archive(file, "second build, same version\n");
        const rebuilt = await agent(["prepare", "--version", "v1", "--source", file]);
        assert.strictEqual(rebuilt.code, 1, show(rebuilt));
        assert.match(
            rebuilt.stderr,
            new RegExp(
                `release v1 was prepared from an archive with sha256 ${firstSha}, this one has sha256 ${sha256(file)}: a version never changes its bytes`,
            ),
        );
        assert.strictEqual(fs.readFileSync(path.join(layout.releasesDir, "v1", "app.txt"), "utf8"), "first build\n");
        // The program passes the sha256 it computed: the same refusal.
        const withSha = await agent(["prepare", "--version", "v1", "--source", file, "--sha256", sha256(file)]);
        assert.strictEqual(withSha.code, 1, show(withSha));
        assert.match(withSha.stderr, /a version never changes its bytes/);
    });

    it("refuses an archive that is not the given sha256, unpacking nothing", async () => {
        const file = archive(path.join(root, "artifacts", "v2.tar.gz"), "v2\n");
        const r = await agent(["prepare", "--version", "v2", "--source", file, "--sha256", "0".repeat(64)]);
        assert.strictEqual(r.code, 1, show(r));
        assert.match(r.stderr, new RegExp(`the archive of v2 has sha256 ${sha256(file)}, expected 0{64} \\(releaseSha256\\); nothing was unpacked`));
        assert.ok(!fs.existsSync(path.join(layout.releasesDir, "v2")));
        assert.ok(!fs.existsSync(releaseDigestPath(layout, "v2")));
    });

    it("downloads an https source named on stdin, checks its sha256, and never prints the query string", async () => {
        const url = `${base}/good.tar.gz?X-Amz-Signature=presigned-credential`;
        const sha = sha256(path.join(root, "served", "good.tar.gz"));
        const wrong = await agent(["prepare", "--version", "v3", "--source-stdin", "--sha256", "1".repeat(64)], `${url}\n`);
        assert.strictEqual(wrong.code, 1, show(wrong));
        assert.match(wrong.stderr, /has sha256 [0-9a-f]{64}, expected 1{64}/);
        const r = await agent(["prepare", "--version", "v3", "--source-stdin", "--sha256", sha], `${url}\n`);
        assert.strictEqual(r.code, 0, show(r));
        assert.strictEqual(fs.readFileSync(path.join(layout.releasesDir, "v3", "app.txt"), "utf8"), "served\n");
        for (const run of [wrong, r]) assert.ok(!(run.stdout + run.stderr).includes("presigned-credential"), show(run));
        const noSha = await agent(["prepare", "--version", "v4", "--source-stdin"], `${url}\n`);
        assert.strictEqual(noSha.code, 2, show(noSha));
        assert.match(noSha.stderr, /an https source needs --sha256/);
    });

    for (const [what, name] of [
        ["announced", "big-announced"],
        ["streamed without a length", "big-chunked"],
    ]) {
        it(`refuses a download over the size limit (${what}) and leaves no partial file`, async () => {
            const r = await agent([
                "prepare",
                "--version",
                `v-${name}`,
                "--source",
                `${base}/${name}.tar.gz`,
                "--sha256",
                "2".repeat(64),
                "--release-download-max-mib",
                "1",
            ]);
            assert.strictEqual(r.code, 1, show(r));
            assert.match(r.stderr, /download of https:\/\/127\.0\.0\.1:\d+\/big-[a-z]+\.tar\.gz is larger than 1\.0 MiB .*releaseDownloadMaxMiB\); refused/);
            assert.deepStrictEqual(
                fs.readdirSync(layout.artifactsDir).filter((f) => f.includes(name)),
                [],
            );
        });
    }

    it("refuses a download slower than its deadline", async () => {
        const started = Date.now();
        const r = await agent([
            "prepare",
            "--version",
            "v-slow",
            "--source",
            `${base}/slow.tar.gz`,
            "--sha256",
            "3".repeat(64),
            "--release-download-timeout",
            "2s",
        ]);
        const took = Date.now() - started;
        assert.strictEqual(r.code, 1, show(r));
        assert.match(r.stderr, /download of https:\/\/127\.0\.0\.1:\d+\/slow\.tar\.gz took longer than 2 s \(releaseDownloadTimeout\); refused/);
        console.log(`      figures: slow download refused after ${(took / 1000).toFixed(1)} s (deadline 2 s)`);
        assert.deepStrictEqual(
            fs.readdirSync(layout.artifactsDir).filter((f) => f.includes("slow")),
            [],
        );
    });
});
