// Loads agent.json (written by the program; its shape and schema version are in
// lib/contract/agent-json.ts), so a mismatched program/agent pair fails with a clear message, not a
// TypeError half way through a deploy.
import * as fs from "fs";
import { AgentSettings, checkAgentSettings } from "../../lib/contract/agent-json";
import { agentConfigBeside } from "../../lib/host-layout";
import { UsageError } from "../common/errors";

export function defaultConfigPath(): string {
    return agentConfigBeside(process.argv[1] ?? "");
}

export function loadSettings(file: string): AgentSettings {
    let raw: unknown;
    try {
        raw = JSON.parse(fs.readFileSync(file, "utf8"));
    } catch (e) {
        throw new UsageError(`cannot read agent settings ${file}: ${(e as Error).message}`);
    }
    try {
        return checkAgentSettings(raw, file);
    } catch (e) {
        throw new UsageError((e as Error).message);
    }
}
