// The rendered haproxy.cfg and NGINX site serving real requests: HAProxy and NGINX run in the
// foreground on free loopback ports, one slot is a small HTTP server in this process. Checks what a
// visitor gets from /media/ (never a file behind a symlink, never an active document) and that the
// maintenance page shows when no slot can answer, while the app's own 503 reaches the visitor as is.
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as http from "http";
import * as https from "https";
import * as net from "net";
import * as path from "path";
import { renderProxyFiles } from "../../program/host-files";
import { TemplateContext } from "../../program/template-context";
import { freePorts } from "../../dev/loopback/harness";
import { contextFor, requireTools, run, tempDir, writeFile } from "./helpers";

interface Answer {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
}

function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

async function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const ok = await new Promise<boolean>((resolve) => {
            const s = net.connect(port, "127.0.0.1");
            s.on("connect", () => {
                s.destroy();
                resolve(true);
            });
            s.on("error", () => resolve(false));
        });
        if (ok) return;
        if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port}`);
        await sleep(100);
    }
}

describe("proxy configs serving requests (real haproxy and nginx)", function () {
    let root: string;
    let ctx: TemplateContext;
    let haproxy: ChildProcess | undefined;
    let nginx: ChildProcess | undefined;
    let slot: http.Server | undefined;
    let outsideFile: string;

    const get = (p: string): Promise<Answer> =>
        new Promise((resolve, reject) => {
            const req = https.request(
                {
                    host: "127.0.0.1",
                    port: ctx.ports.https,
                    path: p,
                    servername: ctx.domain,
                    headers: { host: ctx.domain },
                    rejectUnauthorized: false,
                    agent: false,
                    timeout: 15_000,
                },
                (res) => {
                    let body = "";
                    res.setEncoding("utf8");
                    res.on("data", (c: string) => (body += c));
                    res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
                },
            );
            req.on("timeout", () => req.destroy(new Error("timeout")));
            req.on("error", reject);
            req.end();
        });

    /** Polls until `test` holds for an answer to `p` (HAProxy's checks take a few seconds to settle). */
    async function eventually(p: string, test: (a: Answer) => boolean, timeoutMs = 15_000): Promise<Answer> {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
            const a = await get(p);
            if (test(a)) return a;
            if (Date.now() > deadline) return a;
            await sleep(250);
        }
    }

    before(async function () {
        requireTools("haproxy", "nginx", "openssl");
        root = tempDir("serving");
        const { base, others } = await freePorts(3);
        const [haproxyPort, httpPort, httpsPort] = others;
        ctx = contextFor({ slotBasePort: base, haproxyPort, httpPort, httpsPort, systemService: false }, root);
        const L = ctx.layout;
        const files = renderProxyFiles(ctx);
        for (const dir of [
            path.dirname(L.haproxySocket),
            path.dirname(L.haproxyStateFile),
            L.mediaDir,
            L.deployDir,
            path.join(root, "log"),
            path.join(root, "cache"),
        ]) {
            fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
        }
        // In the proxy step's order: the maintenance page before haproxy.cfg, which reads it.
        writeFile(path.join(L.maintenanceDir, "maintenance.html"), files.maintenancePage);
        writeFile(L.haproxyHealthPathMap, files.healthMapsPlaceholder.paths);
        writeFile(L.haproxyHealthHostMap, files.healthMapsPlaceholder.hosts);
        writeFile(L.haproxyConfigFile, files.haproxyCfg);
        // The site's upstream includes the live-slot file; the proxy step writes its placeholder first.
        writeFile(L.nginxLiveSlotFile, files.nginxLiveSlotPlaceholder);
        writeFile(L.nginxSiteFile, files.nginxSite);
        fs.mkdirSync(path.dirname(ctx.tls.certFile), { recursive: true });
        const cert = run("openssl", [
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            `/CN=${ctx.domain}`,
            "-keyout",
            ctx.tls.keyFile,
            "-out",
            ctx.tls.certFile,
        ]);
        assert.strictEqual(cert.status, 0, cert.stderr);

        // Uploads as a compromised app could leave them: active documents, a file of unknown
        // type, and links to a file outside media/ (a secret readable by NGINX's user).
        outsideFile = writeFile(path.join(root, "secret", "key.pem"), "PRIVATE KEY MATERIAL\n");
        writeFile(path.join(L.mediaDir, "photo.png"), "\x89PNG\r\n\x1a\nnot really");
        writeFile(path.join(L.mediaDir, "page.html"), "<script>alert(document.cookie)</script>\n");
        writeFile(path.join(L.mediaDir, "drawing.svg"), `<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>\n`);
        writeFile(path.join(L.mediaDir, "upload.blob"), "<html><script>alert(1)</script></html>\n");
        fs.symlinkSync(outsideFile, path.join(L.mediaDir, "linked.txt"));
        fs.mkdirSync(path.join(L.mediaDir, "sub"));
        fs.symlinkSync(path.dirname(outsideFile), path.join(L.mediaDir, "sub", "dir"));

        const check = run("haproxy", ["-c", "-q", "-f", L.haproxyConfigFile]);
        assert.strictEqual(check.status, 0, `${check.stdout}${check.stderr}`);
        const hlog = fs.openSync(path.join(root, "log", "haproxy.log"), "a");
        haproxy = spawn("haproxy", ["-W", "-f", L.haproxyConfigFile], { stdio: ["ignore", hlog, hlog] });
        fs.closeSync(hlog);

        // As Debian's nginx.conf, the MIME types map is included at http level; the server-wide
        // default type is the worst one here, so /media/ must set its own.
        const nginxConf = writeFile(
            path.join(root, "nginx.conf"),
            [
                ...(process.getuid?.() === 0 ? ["user root;"] : []),
                "worker_processes 1;",
                `pid ${path.join(root, "nginx.pid")};`,
                `error_log ${path.join(root, "log", "nginx-error.log")} notice;`,
                "events { worker_connections 64; }",
                "http {",
                "    include /etc/nginx/mime.types;",
                "    default_type text/html;",
                `    access_log ${path.join(root, "log", "nginx-access.log")};`,
                ...["client_body", "proxy", "fastcgi", "uwsgi", "scgi"].map((t) => `    ${t}_temp_path ${path.join(root, "cache", t)};`),
                `    include ${L.nginxSiteFile};`,
                "}",
                "",
            ].join("\n"),
        );
        const t = run("nginx", ["-t", "-q", "-c", nginxConf, "-p", root]);
        assert.strictEqual(t.status, 0, `${t.stdout}${t.stderr}`);
        const nlog = fs.openSync(path.join(root, "log", "nginx.out"), "a");
        nginx = spawn("nginx", ["-c", nginxConf, "-p", root, "-g", "daemon off;"], { stdio: ["ignore", nlog, nlog] });
        fs.closeSync(nlog);
        await waitForPort(ctx.ports.https);
        await waitForPort(ctx.ports.haproxy);
    });

    after(async () => {
        if (slot) await new Promise((r) => slot!.close(r));
        for (const child of [nginx, haproxy]) {
            if (child?.pid && child.exitCode === null) {
                child.kill("SIGTERM");
                await new Promise((r) => child.once("exit", r));
            }
        }
    });

    describe("/media/", () => {
        it("serves a plain upload, with nosniff and a sandboxing CSP", async () => {
            const a = await get("/media/photo.png");
            assert.strictEqual(a.status, 200);
            assert.strictEqual(a.headers["content-type"], "image/png");
            assert.strictEqual(a.headers["x-content-type-options"], "nosniff");
            assert.match(String(a.headers["content-security-policy"]), /default-src 'none'.*sandbox/);
            assert.strictEqual(a.headers["content-disposition"], undefined, "images stay inline");
        });

        for (const [file, type] of [
            ["page.html", "text/html"],
            ["drawing.svg", "image/svg+xml"],
        ]) {
            it(`serves ${file} (${type}) as a download in a sandbox, never as a page of the site`, async () => {
                const a = await get(`/media/${file}`);
                assert.strictEqual(a.status, 200);
                assert.strictEqual(a.headers["content-type"]?.split(";")[0], type);
                assert.strictEqual(a.headers["content-disposition"], "attachment");
                assert.strictEqual(a.headers["x-content-type-options"], "nosniff");
                assert.match(String(a.headers["content-security-policy"]), /sandbox/);
            });
        }

        it("gives a file of unknown type application/octet-stream, whatever the server-wide default", async () => {
            const a = await get("/media/upload.blob");
            assert.strictEqual(a.status, 200);
            assert.strictEqual(a.headers["content-type"], "application/octet-stream");
            assert.strictEqual(a.headers["x-content-type-options"], "nosniff");
        });

        it("does not follow a symlink to a file outside media/", async () => {
            const a = await get("/media/linked.txt");
            assert.notStrictEqual(a.status, 200);
            assert.ok(!a.body.includes("PRIVATE KEY MATERIAL"), a.body);
        });

        it("does not follow a symlinked directory inside media/", async () => {
            const a = await get("/media/sub/dir/key.pem");
            assert.notStrictEqual(a.status, 200);
            assert.ok(!a.body.includes("PRIVATE KEY MATERIAL"), a.body);
        });
    });

    describe("maintenance page", () => {
        it("shows when every slot is down (HAProxy has no server to send to)", async () => {
            // Neither slot port has a listener: HAProxy's checks mark both down and it answers 503 itself.
            const a = await eventually("/", (x) => x.status === 503 && x.body.includes("Back shortly"));
            assert.strictEqual(a.status, 503);
            assert.match(a.body, /Back shortly/);
            assert.match(a.body, new RegExp(ctx.domain.replace(/\./g, "\\.")));
            assert.match(String(a.headers["content-type"]), /^text\/html/);
            assert.match(String(a.headers["cache-control"]), /no-store/);
        });

        it("does not hide the app's own 503 (and the app's answers get through)", async () => {
            slot = http.createServer((req, res) => {
                if (req.url === ctx.healthPath) {
                    res.writeHead(200, { "content-type": "text/plain" }).end("ok");
                } else if (req.url === "/busy") {
                    res.writeHead(503, { "content-type": "application/json", "retry-after": "5" }).end(`{"error":"queue full"}`);
                } else {
                    res.writeHead(200, { "content-type": "text/plain" }).end("hello from the app");
                }
            });
            await new Promise<void>((r) => slot!.listen(ctx.slots[0].port, "127.0.0.1", () => r()));
            const up = await eventually("/", (x) => x.status === 200);
            assert.strictEqual(up.body, "hello from the app", `the slot never came up: ${up.status} ${up.body}`);
            const busy = await get("/busy");
            assert.strictEqual(busy.status, 503);
            assert.strictEqual(busy.body, `{"error":"queue full"}`);
            assert.strictEqual(busy.headers["content-type"], "application/json");
        });
    });
});
