// The app user: who release code runs as (build, check, migrations; agent/processes/transient-unit.ts), and
// the variables a release's steps get besides the app's own env file.
import * as fs from "fs";
import { parseSystemdEnvFile } from "../../lib/env-lines";
import { BUILD_DIR_ENV, buildDir } from "../../lib/host-layout";
import { AgentContext } from "../context";
import { AgentError } from "../common/errors";
import { cacheKeyPrefix } from "../release/releases";
import { isRoot, lookupUser } from "../common/run-command";
import { AppProcessSpec, appProcessBackend } from "./transient-unit";

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

/** A release's own variables for its build/check/migrate steps (not secrets; the app's env file comes first). */
export function releaseEnv(ctx: AgentContext, version: string): Record<string, string> {
    return {
        RELEASE_VERSION: version,
        CACHE_KEY_PREFIX: cacheKeyPrefix(ctx.settings.app.appName, version),
        [BUILD_DIR_ENV]: buildDir(ctx.layout, version),
    };
}

/** One value of the app's env file, read as data (root never runs with it in its environment). */
export function appEnvValue(ctx: AgentContext, name: string): string | undefined {
    try {
        return parseSystemdEnvFile(fs.readFileSync(ctx.layout.envFile, "utf8")).get(name);
    } catch {
        return undefined;
    }
}

/** The fields of a transient-unit spec every release step shares. */
export function appProcessBase(ctx: AgentContext): Pick<AppProcessSpec, "layout" | "backend" | "log"> {
    return { layout: ctx.layout, backend: appProcessBackend(ctx.settings), log: ctx.log };
}
