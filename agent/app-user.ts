// The app user: who release code runs as (build, check, migrations), and the environment it gets.
import * as fs from "fs";
import { parseSystemdEnvFile } from "../lib/env-lines";
import { AgentContext } from "./context";
import { AgentError } from "./errors";
import { cacheKeyPrefix } from "./releases";
import { isRoot, lookupUser } from "./run-command";

export interface Owner {
    uid: number;
    gid: number;
    home?: string;
}

/** The app user, when the agent runs as root (it must exist then); undefined otherwise. */
export function appOwner(ctx: AgentContext): Owner | undefined {
    if (!isRoot()) return undefined;
    const u = lookupUser(ctx.layout.appUser);
    if (!u) throw new AgentError(`the app user ${ctx.layout.appUser} does not exist on this host (host setup creates it)`);
    return u;
}

/**
 * Build/check/migrate environment: a clean PATH, the app's shared env (secrets are never printed),
 * the version and its cache key prefix.
 */
export function buildEnv(ctx: AgentContext, version: string, home?: string): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        LANG: process.env.LANG ?? "C.UTF-8",
        HOME: home ?? process.env.HOME ?? "/",
    };
    try {
        for (const [k, v] of parseSystemdEnvFile(fs.readFileSync(ctx.layout.envFile, "utf8"))) env[k] = v;
    } catch {
        // No env file yet (write-env runs after the first prepare): build without it.
    }
    env.RELEASE_VERSION = version;
    env.CACHE_KEY_PREFIX = cacheKeyPrefix(ctx.settings.appName, version);
    return env;
}
