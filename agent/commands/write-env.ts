// write-env: KEY=value lines on stdin -> the shared env file, atomically, root:<app> 0640: the app's
// units read it through systemd (EnvironmentFile=), the app itself may read but never rewrite it (a
// PATH= or LD_PRELOAD= of its own would otherwise reach the next deploy). Values are secrets: only
// names and counts are ever printed.
import * as fs from "fs";
import { RequestFor } from "../../lib/contract/commands";
import { appOwner } from "../processes/app-process";
import { AgentContext } from "../context";
import { formatSystemdEnvFile, parseEnvLines } from "../../lib/env-lines";
import { AgentError, errorMessage } from "../common/errors";
import { writeFileAtomic } from "../common/fs-atomic";

function readStdin(): Promise<string> {
    return new Promise((resolve, reject) => {
        const chunks: Buffer[] = [];
        process.stdin.on("data", (c: Buffer) => chunks.push(c));
        process.stdin.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
        process.stdin.on("error", reject);
    });
}

export async function writeEnvCommand(ctx: AgentContext, _req: RequestFor<"write-env">, input?: string): Promise<void> {
    const text = input ?? (await readStdin());
    let env: Map<string, string>;
    try {
        env = parseEnvLines(text);
    } catch (e) {
        throw new AgentError(`write-env: ${errorMessage(e)}; nothing written`);
    }
    const file = ctx.layout.envFile;
    const owner = appOwner(ctx);
    const content = formatSystemdEnvFile(env);
    let unchanged = false;
    try {
        unchanged = fs.readFileSync(file, "utf8") === content;
    } catch {
        unchanged = false;
    }
    writeFileAtomic(file, content, { mode: 0o640, owner: owner ? { uid: 0, gid: owner.gid } : undefined });
    const names = [...env.keys()].sort();
    ctx.log.info(`wrote ${names.length} variable(s) to ${file}${unchanged ? " (unchanged)" : ""}: ${names.join(", ") || "(none)"}`);
    Object.assign(ctx.result, { ok: true, command: "write-env", file, names, changed: !unchanged });
}
