// HTTP(S) to the local host's public side (NGINX on loopback) the way a browser would reach the
// stack's domain: TLS SNI and Host set to the domain, the self-signed certificate accepted. Node
// does not resolve *.localhost itself, so requests go to 127.0.0.1 with the name in SNI/Host.
import * as http from "http";
import * as https from "https";

export interface Site {
    domain: string;
    httpsPort: number;
    address?: string;
}

export interface Reply {
    status: number;
    headers: http.IncomingHttpHeaders;
    body: string;
    ms: number;
}

export interface RequestOptions {
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    timeoutMs?: number;
    agent?: https.Agent;
}

export function siteRequest(site: Site, path: string, opts: RequestOptions = {}): Promise<Reply> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
        const req = https.request(
            {
                host: site.address ?? "127.0.0.1",
                port: site.httpsPort,
                servername: site.domain,
                method: opts.method ?? "GET",
                path,
                headers: {
                    host: site.domain,
                    ...(opts.body !== undefined ? { "content-length": Buffer.byteLength(opts.body).toString() } : {}),
                    ...opts.headers,
                },
                rejectUnauthorized: false,
                agent: opts.agent,
                timeout: opts.timeoutMs ?? 15_000,
            },
            (res) => {
                const chunks: Buffer[] = [];
                res.on("data", (c: Buffer) => chunks.push(c));
                res.on("end", () =>
                    resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8"), ms: Date.now() - started }),
                );
                res.on("error", reject);
            },
        );
        req.on("timeout", () => req.destroy(new Error(`timeout after ${opts.timeoutMs ?? 15_000} ms`)));
        // Whether the request went out on a kept-alive socket: a server may close one just as a
        // request is sent (NGINX's old workers do at a reload), which clients retry (see load.ts).
        req.on("error", (e) => reject(Object.assign(e, { reusedSocket: req.reusedSocket })));
        req.end(opts.body);
    });
}

/** Cookies from Set-Cookie headers as one Cookie header value. */
function cookieHeader(reply: Reply): string {
    return (reply.headers["set-cookie"] ?? []).map((c) => c.split(";")[0]).join("; ");
}

/** The hidden CSRF token of the first form on a Django page. */
function csrfToken(html: string): string {
    const m = /name="csrfmiddlewaretoken" value="([^"]+)"/.exec(html);
    if (!m) throw new Error("no csrfmiddlewaretoken in the page");
    return m[1];
}

/** Posts the page's HTML form like a browser: CSRF cookie + token, Referer/Origin of the site. */
export async function submitNoteForm(site: Site, text: string, extra: Record<string, string> = {}): Promise<Reply> {
    const page = await siteRequest(site, "/");
    const origin = `https://${site.domain}${site.httpsPort === 443 ? "" : `:${site.httpsPort}`}`;
    const form = new URLSearchParams({ csrfmiddlewaretoken: csrfToken(page.body), text, ...extra }).toString();
    return siteRequest(site, "/notes/", {
        method: "POST",
        body: form,
        headers: { "content-type": "application/x-www-form-urlencoded", cookie: cookieHeader(page), referer: `${origin}/`, origin },
    });
}
