// Shared by the config tests: rendering every host file for a case, and running the real tools
// (haproxy, nginx, systemd-analyze, nix-instantiate, bash, shellcheck) on the result.
import { spawnSync, SpawnSyncOptions } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { AgentSettings, buildAgentSettings } from "../../program/agent-settings";
import { buildTemplateContext, TemplateContext, TemplateInputs } from "../../program/template-context";

export interface RunResult {
    status: number | null;
    stdout: string;
    stderr: string;
}

export function run(cmd: string, args: string[], opts: SpawnSyncOptions = {}): RunResult {
    const r = spawnSync(cmd, args, { encoding: "utf8", timeout: 60_000, ...opts });
    if (r.error) throw new Error(`${cmd}: ${r.error.message}`);
    return { status: r.status, stdout: String(r.stdout), stderr: String(r.stderr) };
}

/** Fails (not skips) when a tool is missing: these tests exist to run the real tools. */
export function requireTools(...tools: string[]): void {
    for (const tool of tools) {
        if (run("sh", ["-c", `command -v ${tool}`]).status !== 0) {
            throw new Error(`${tool} is not installed (apt-get install haproxy nginx-light systemd nix-bin shellcheck openssl)`);
        }
    }
}

const dirs: string[] = [];

/** A temp dir readable by every user (systemd's test mode runs unprivileged); removed after the run. */
export function tempDir(prefix: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `slotshift-${prefix}-`));
    fs.chmodSync(dir, 0o755);
    dirs.push(dir);
    return dir;
}

after(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

export function writeFile(file: string, content: string, mode = 0o644): string {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
    fs.writeFileSync(file, content, { mode });
    fs.chmodSync(file, mode);
    return file;
}

export const APP = "shop";
const DOMAIN = "shop.example.com";

export const BASE_INPUTS: TemplateInputs = {
    appName: APP,
    domain: DOMAIN,
    healthPath: "/healthz",
    startCommand: "gunicorn shop.wsgi --bind 127.0.0.1:$PORT --workers 3",
    tlsMode: "self-signed",
    acmeEmail: "ops@example.com",
    slotBasePort: 8001,
    haproxyPort: 8080,
    httpPort: 80,
    httpsPort: 443,
    sshPort: 22,
    sshPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG0n5B8mE2p7Wf2m3k1lq4s6y0Yb3rXj2Jc9m7nq8Zt deploy@ci",
    sshUser: "admin",
    postgresql: false,
};

/** The rendering cases every template is checked under: both TLS modes, with and without extras. */
export const CASES: { name: string; inputs: Partial<TemplateInputs> }[] = [
    { name: "self-signed TLS, PostgreSQL", inputs: { tlsMode: "self-signed", postgresql: true } },
    { name: "ACME TLS, loopback-only egress, root SSH", inputs: { tlsMode: "acme", appEgress: "loopback", sshUser: "root", sshPort: 2222 } },
];

export function contextFor(inputs: Partial<TemplateInputs> = {}, root?: string): TemplateContext {
    return buildTemplateContext({ ...BASE_INPUTS, ...inputs, root });
}

export function agentFor(inputs: Partial<TemplateInputs> = {}, root?: string): AgentSettings {
    const i = { ...BASE_INPUTS, ...inputs };
    return buildAgentSettings(
        {
            appName: i.appName,
            domain: i.domain,
            healthPath: i.healthPath,
            smokePaths: ["/", "/accounts/login/"],
            slotBasePort: i.slotBasePort,
            haproxyPort: i.haproxyPort,
            keepPreviousWarm: true,
            releasesToKeep: 5,
        },
        {
            root,
        },
    );
}

/**
 * The [Service] directives of a unit file as [key, value] pairs, in order (comments, blank lines
 * and other sections skipped). Enough for the units rendered here: no line continuations.
 */
export function unitDirectives(unit: string, section = "Service"): [string, string][] {
    const out: [string, string][] = [];
    let current = "";
    for (const raw of unit.split("\n")) {
        const line = raw.trim();
        if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
        const header = /^\[(.+)\]$/.exec(line);
        if (header) {
            current = header[1];
            continue;
        }
        if (current !== section) continue;
        const eq = line.indexOf("=");
        out.push([line.slice(0, eq), line.slice(eq + 1)]);
    }
    return out;
}
