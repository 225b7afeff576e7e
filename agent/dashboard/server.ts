// The dashboard's HTTP server: 127.0.0.1 only, reached through an SSH tunnel.
//   GET  /                        the page (assets bundled into the agent: no CDN, nothing fetched)
//   POST /api/login               {token} -> a session cookie and the session's CSRF token
//   GET  /api/session             the CSRF token of the current session
//   GET  /api/status              the status report (agent/status/status-report.ts), rates, the step's gate
//   GET  /api/history             the audit log's last records
//   GET  /api/events              server-sent events: `snapshot` every sample, `samples` at connect
//   POST /api/actions/<name>      rollback, abort, maintenance-on, maintenance-off (session + CSRF)
// Reads need the session cookie (or `Authorization: Bearer <token>`); actions need the session
// cookie and its CSRF token in X-CSRF-Token. The token is the per-host one in
// layout.dashboardTokenFile (root only), read at each login, so a new token needs no restart.
import * as crypto from "crypto";
import * as fs from "fs";
import * as http from "http";
import { AddressInfo } from "net";
import { readAuditTail } from "../state/audit";
import { errorMessage } from "../common/errors";
import { Logger } from "../common/log";
import { ActionName, ACTIONS, ActionRunner } from "./actions";
import { DashboardAssets } from "./assets";
import { Sampler } from "./sampler";

/** The only address the dashboard listens on. */
export const DASHBOARD_HOST = "127.0.0.1";
const SESSION_COOKIE = "slotshift_session";
const SESSION_TTL_MS = 12 * 3600_000;
const MAX_BODY = 16 * 1024;
/** Host headers of a tunnel or a local client; anything else is a DNS-rebinding page or a mistake. */
const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?$/i;

export interface DashboardOptions {
    port: number;
    tokenFile: string;
    auditLog: string;
    sampler: Sampler;
    runAction: ActionRunner;
    assets: DashboardAssets;
    log: Logger;
    /** Records shown in the history table. */
    historySize?: number;
}

interface Session {
    csrf: string;
    expires: number;
}

function digest(s: string): Buffer {
    return crypto.createHash("sha256").update(s).digest();
}

/** Constant-time comparison of two secrets of any length. */
function sameSecret(a: string, b: string): boolean {
    return a.length > 0 && b.length > 0 && crypto.timingSafeEqual(digest(a), digest(b));
}

export function readToken(file: string): string {
    const token = fs.readFileSync(file, "utf8").trim();
    if (token.length < 32) throw new Error(`${file} holds no usable token (at least 32 characters)`);
    return token;
}

function cookies(req: http.IncomingMessage): Map<string, string> {
    const out = new Map<string, string>();
    for (const part of (req.headers.cookie ?? "").split(";")) {
        const eq = part.indexOf("=");
        if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
    }
    return out;
}

const SECURITY_HEADERS: Record<string, string> = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy":
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
};

export class DashboardServer {
    readonly http: http.Server;
    private readonly sessions = new Map<string, Session>();
    private readonly streams = new Set<http.ServerResponse>();
    private busy: ActionName | undefined;

    constructor(private readonly o: DashboardOptions) {
        this.http = http.createServer((req, res) => {
            this.handle(req, res).catch((e) => {
                o.log.warn(`dashboard: ${req.method} ${req.url}: ${errorMessage(e)}`);
                if (!res.headersSent) this.json(res, 500, { error: "internal error" });
                else res.destroy();
            });
        });
        // Slow or idle clients must not pile up in a process meant to stay small.
        this.http.headersTimeout = 10_000;
        this.http.requestTimeout = 30_000;
        this.http.maxHeadersCount = 50;
    }

    /** Listens on 127.0.0.1:<port>; resolves with the bound address. */
    listen(): Promise<AddressInfo> {
        return new Promise((resolve, reject) => {
            this.http.once("error", reject);
            this.http.listen({ port: this.o.port, host: DASHBOARD_HOST, exclusive: true }, () => {
                this.http.off("error", reject);
                resolve(this.http.address() as AddressInfo);
            });
        });
    }

    close(): Promise<void> {
        for (const s of this.streams) s.end();
        this.streams.clear();
        return new Promise((resolve) => this.http.close(() => resolve()));
    }

    private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
        if (!LOOPBACK_HOST.test(req.headers.host ?? ""))
            return this.json(res, 421, { error: "the dashboard answers only to 127.0.0.1 / localhost (through an SSH tunnel)" });
        const url = new URL(req.url ?? "/", "http://127.0.0.1");
        const route = `${req.method} ${url.pathname}`;

        const asset = this.o.assets.files[url.pathname === "/" ? "/index.html" : url.pathname];
        if (req.method === "GET" && asset) {
            res.writeHead(200, { ...SECURITY_HEADERS, "Content-Type": asset.type, "Content-Length": Buffer.byteLength(asset.body) });
            res.end(asset.body);
            return;
        }
        if (route === "POST /api/login") return this.login(req, res);

        const session = this.session(req);
        if (!session && !this.bearer(req)) return this.json(res, 401, { error: "log in with the host's dashboard token" });

        switch (route) {
            case "GET /api/session":
                if (!session) return this.json(res, 401, { error: "no session (a bearer token reads, only a session acts)" });
                return this.json(res, 200, { csrf: session.csrf });
            case "POST /api/logout":
                if (session) this.dropSession(req);
                return this.json(res, 200, { ok: true }, { "Set-Cookie": `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0` });
            case "GET /api/status":
                return this.json(res, 200, this.o.sampler.latest());
            case "GET /api/history":
                return this.json(res, 200, { records: readAuditTail(this.o.auditLog, this.o.historySize ?? 50) });
            case "GET /api/events":
                return this.events(res);
        }
        const m = /^POST \/api\/actions\/([a-z-]+)$/.exec(route);
        if (m) return this.action(req, res, session, m[1]);
        return this.json(res, 404, { error: "not found" });
    }

    private async login(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
        if (!this.sameOrigin(req)) return this.json(res, 403, { error: "cross-origin login refused" });
        const body = await this.body(req);
        const given = typeof body?.token === "string" ? body.token.trim() : "";
        let token: string;
        try {
            token = readToken(this.o.tokenFile);
        } catch (e) {
            return this.json(res, 503, { error: `no dashboard token on this host: ${errorMessage(e)}` });
        }
        if (!sameSecret(given, token)) {
            this.o.log.warn("dashboard: a login with a wrong token was refused");
            return this.json(res, 401, { error: "wrong token" });
        }
        const id = crypto.randomBytes(32).toString("hex");
        const session = { csrf: crypto.randomBytes(32).toString("hex"), expires: Date.now() + SESSION_TTL_MS };
        this.sessions.set(id, session);
        this.pruneSessions();
        return this.json(
            res,
            200,
            { csrf: session.csrf },
            { "Set-Cookie": `${SESSION_COOKIE}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_TTL_MS / 1000}` },
        );
    }

    private async action(req: http.IncomingMessage, res: http.ServerResponse, session: Session | undefined, name: string): Promise<void> {
        if (!session) return this.json(res, 401, { error: "actions need a logged-in session" });
        if (!this.sameOrigin(req)) return this.json(res, 403, { error: "cross-origin request refused" });
        const csrf = req.headers["x-csrf-token"];
        if (typeof csrf !== "string" || !sameSecret(csrf, session.csrf)) return this.json(res, 403, { error: "missing or wrong CSRF token" });
        if (!(ACTIONS as readonly string[]).includes(name)) return this.json(res, 404, { error: `no action ${name}` });
        const action = name as ActionName;
        const body = await this.body(req);
        // The page asks for confirmation; the request carries it, so a stray POST does nothing.
        if (body?.confirm !== action) return this.json(res, 400, { error: `confirm the action: {"confirm": "${action}"}` });
        if (this.busy) return this.json(res, 409, { error: `${this.busy} is still running` });
        this.busy = action;
        this.o.log.info(`dashboard: ${action} requested`);
        try {
            const outcome = await this.o.runAction(action);
            this.o.log.info(`dashboard: ${action} exited ${outcome.exitCode}`);
            // The next sample shows the result; push it now rather than at the next tick.
            void this.o.sampler.tick();
            return this.json(res, outcome.exitCode === 0 ? 200 : 409, { action, ...outcome });
        } finally {
            this.busy = undefined;
        }
    }

    private events(res: http.ServerResponse): void {
        res.writeHead(200, { ...SECURITY_HEADERS, "Content-Type": "text/event-stream", Connection: "keep-alive" });
        res.write(`retry: 2000\n\n`);
        this.send(res, "samples", this.o.sampler.samples);
        this.send(res, "snapshot", this.o.sampler.latest());
        this.streams.add(res);
        // Each open page makes the sampler tick at its active rate.
        const unsubscribe = this.o.sampler.subscribe((snap) => this.send(res, "snapshot", snap));
        res.on("close", () => {
            this.streams.delete(res);
            unsubscribe();
        });
    }

    private send(res: http.ServerResponse, event: string, data: unknown): void {
        res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    }

    private session(req: http.IncomingMessage): Session | undefined {
        const id = cookies(req).get(SESSION_COOKIE);
        const s = id ? this.sessions.get(id) : undefined;
        if (s && s.expires < Date.now()) {
            this.sessions.delete(id!);
            return undefined;
        }
        return s;
    }

    private dropSession(req: http.IncomingMessage): void {
        const id = cookies(req).get(SESSION_COOKIE);
        if (id) this.sessions.delete(id);
    }

    private pruneSessions(): void {
        const now = Date.now();
        for (const [id, s] of this.sessions) if (s.expires < now) this.sessions.delete(id);
    }

    private bearer(req: http.IncomingMessage): boolean {
        const m = /^Bearer\s+(\S+)$/.exec(req.headers.authorization ?? "");
        if (!m) return false;
        try {
            return sameSecret(m[1], readToken(this.o.tokenFile));
        } catch {
            return false;
        }
    }

    /** A browser's POST from another origin carries that Origin; tools send none. */
    private sameOrigin(req: http.IncomingMessage): boolean {
        const origin = req.headers.origin;
        if (origin === undefined) return true;
        try {
            return new URL(origin).host === req.headers.host;
        } catch {
            return false;
        }
    }

    private body(req: http.IncomingMessage): Promise<Record<string, unknown> | undefined> {
        return new Promise((resolve, reject) => {
            const chunks: Buffer[] = [];
            let size = 0;
            req.on("data", (c: Buffer) => {
                size += c.length;
                if (size > MAX_BODY) {
                    req.destroy();
                    reject(new Error("request body too large"));
                } else chunks.push(c);
            });
            req.on("end", () => {
                const text = Buffer.concat(chunks).toString("utf8");
                if (!text) return resolve(undefined);
                try {
                    const v = JSON.parse(text) as unknown;
                    resolve(v && typeof v === "object" ? (v as Record<string, unknown>) : undefined);
                } catch {
                    resolve(undefined);
                }
            });
            req.on("error", reject);
        });
    }

    private json(res: http.ServerResponse, status: number, data: unknown, headers: Record<string, string> = {}): void {
        const body = JSON.stringify(data);
        res.writeHead(status, {
            ...SECURITY_HEADERS,
            ...headers,
            "Content-Type": "application/json; charset=utf-8",
            "Content-Length": Buffer.byteLength(body),
        });
        res.end(body);
    }
}
