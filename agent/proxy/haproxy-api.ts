// HAProxy's runtime API over its unix socket (non-interactive mode: one connection per command
// line, HAProxy closes it after answering). Commands on one line separated by ";" run back to back
// in one connection, which is how both weights of a step change together.
import * as net from "net";
import { Slot, SLOTS } from "../../lib/host-layout";
import { writeFileAtomic } from "../common/fs-atomic";
import { backendServers, parseGetWeight, parseShowStat, ServerStats } from "./haproxy-stats";

export type SlotStats = Partial<Record<Slot, ServerStats>>;

export interface RuntimeOptions {
    /** Per-command timeout. */
    timeoutMs?: number;
    /** How long to keep retrying while the socket is missing or refusing (a reload is rebinding it). */
    retryForMs?: number;
}

const RETRYABLE = new Set(["ENOENT", "ECONNREFUSED", "EAGAIN", "ECONNRESET", "EPIPE"]);

export class HaproxyApi {
    private readonly timeoutMs: number;
    private readonly retryForMs: number;

    constructor(
        readonly socketPath: string,
        readonly backend: string,
        opts: RuntimeOptions = {},
    ) {
        this.timeoutMs = opts.timeoutMs ?? 5000;
        this.retryForMs = opts.retryForMs ?? 10000;
    }

    async send(command: string): Promise<string> {
        const deadline = Date.now() + this.retryForMs;
        for (;;) {
            try {
                return await this.sendOnce(command);
            } catch (e) {
                const code = (e as NodeJS.ErrnoException).code ?? "";
                if (!RETRYABLE.has(code) || Date.now() > deadline) {
                    throw new Error(`HAProxy runtime API (${this.socketPath}) "${command.split(" ").slice(0, 2).join(" ")}": ${(e as Error).message}`, {
                        cause: e,
                    });
                }
                await new Promise((r) => setTimeout(r, 200));
            }
        }
    }

    private sendOnce(command: string): Promise<string> {
        return new Promise((resolve, reject) => {
            const sock = net.createConnection(this.socketPath);
            const chunks: Buffer[] = [];
            const timer = setTimeout(
                () => sock.destroy(Object.assign(new Error(`timed out after ${this.timeoutMs} ms`), { code: "ETIMEDOUT" })),
                this.timeoutMs,
            );
            sock.on("connect", () => sock.write(`${command}\n`));
            sock.on("data", (c) => chunks.push(c));
            sock.on("error", (e) => {
                clearTimeout(timer);
                reject(e);
            });
            sock.on("close", (hadError) => {
                clearTimeout(timer);
                if (!hadError) resolve(Buffer.concat(chunks).toString("utf8"));
            });
        });
    }

    /** Runs commands whose success is an empty answer; anything else is HAProxy's error text. */
    private async sendSilent(commands: string[]): Promise<void> {
        const out = await this.send(commands.join("; "));
        const text = out.trim();
        if (text !== "") throw new Error(`HAProxy refused "${commands.join("; ")}": ${text.split("\n")[0]}`);
    }

    /** Sets runtime weights (0..100 = percent, since the config weight is 100) in one connection. */
    async setWeights(weights: Partial<Record<Slot, number>>): Promise<void> {
        const cmds = SLOTS.filter((s) => weights[s] !== undefined).map((s) => `set weight ${this.backend}/${s} ${weights[s]}`);
        if (cmds.length) await this.sendSilent(cmds);
    }

    async setState(slot: Slot, state: "ready" | "drain" | "maint"): Promise<void> {
        await this.sendSilent([`set server ${this.backend}/${slot} state ${state}`]);
    }

    /**
     * Where HAProxy sends the slot's requests and checks (the server-state file then keeps it over
     * reloads). HAProxy answers a change with a sentence, an error with another.
     */
    async setServerPort(slot: Slot, port: number): Promise<void> {
        const cmd = `set server ${this.backend}/${slot} addr 127.0.0.1 port ${port}`;
        const text = (await this.send(cmd)).trim();
        if (text !== "" && !/changed|no need to change/i.test(text)) throw new Error(`HAProxy refused "${cmd}": ${text.split("\n")[0]}`);
    }

    /** Sets a map entry at runtime (the map file itself is the caller's), adding it when missing. */
    async setMapEntry(mapFile: string, key: string, value: string): Promise<void> {
        const set = (await this.send(`set map ${mapFile} ${key} ${value}`)).trim();
        if (set === "") return;
        await this.sendSilent([`add map ${mapFile} ${key} ${value}`]);
    }

    async getWeight(slot: Slot): Promise<number> {
        return parseGetWeight(await this.send(`get weight ${this.backend}/${slot}`)).current;
    }

    async stats(): Promise<SlotStats> {
        // "<proxy> 4 -1": server rows of our backend only.
        const servers = backendServers(parseShowStat(await this.send(`show stat ${this.backend} 4 -1`)), this.backend);
        const out: SlotStats = {};
        for (const s of SLOTS) {
            const row = servers.get(s);
            if (row) out[s] = row;
        }
        return out;
    }

    async pid(): Promise<number | undefined> {
        const m = /^Pid:\s*(\d+)/m.exec(await this.send("show info"));
        return m ? Number(m[1]) : undefined;
    }

    /** Dumps `show servers state` into the server-state file HAProxy loads on (re)start. */
    async saveState(stateFile: string): Promise<void> {
        const text = await this.send("show servers state");
        if (!/^\d+\n# be_id/m.test(text)) throw new Error(`unexpected "show servers state" output: ${text.slice(0, 200)}`);
        // Not secret (names, addresses, weights); readable in case HAProxy reads it after dropping root.
        writeFileAtomic(stateFile, text, { mode: 0o644 });
    }
}
