// Loads agent.json (lib/agent-settings.ts, written by the program) and checks the fields the agent
// relies on, so a mismatched program/agent pair fails with a clear message, not a TypeError.
import * as fs from "fs";
import * as path from "path";
import { AgentSettings } from "../lib/agent-settings";
import { UsageError } from "./errors";

/** Versions become directory names and arguments: keep them inert (same rule as the stack config). */
export const VERSION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._+-]{0,62}$/;

export function checkVersion(version: string | undefined, what = "version"): string {
    if (!version) throw new UsageError(`missing ${what} (--version V)`);
    if (!VERSION_PATTERN.test(version) || version.includes("..")) {
        throw new UsageError(`${what} "${version}" must be 1-63 letters, digits, '.', '_', '+' or '-', starting with a letter or digit`);
    }
    return version;
}

export function defaultConfigPath(): string {
    return path.join(path.dirname(process.argv[1] ?? "."), "agent.json");
}

export function loadSettings(file: string): AgentSettings {
    let raw: unknown;
    try {
        raw = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
        throw new UsageError(`cannot read agent settings ${file}: ${(e as Error).message}`);
    }
    const s = raw as AgentSettings;
    const missing = [
        ["appName", s?.appName],
        ["layout.deployDir", s?.layout?.deployDir],
        ["layout.releasesDir", s?.layout?.releasesDir],
        ["slots.blue", s?.slots?.blue],
        ["slots.green", s?.slots?.green],
        ["haproxy.socket", s?.haproxy?.socket],
        ["haproxy.stateFile", s?.haproxy?.stateFile],
        ["haproxy.backend", s?.haproxy?.backend],
        ["haproxy.frontend.port", s?.haproxy?.frontend?.port],
        ["health.path", s?.health?.path],
        ["processControl.kind", s?.processControl?.kind],
    ].filter(([, v]) => v === undefined || v === null || v === "");
    if (missing.length) throw new UsageError(`agent settings ${file} lack ${missing.map(([k]) => k).join(", ")}`);
    return s;
}
