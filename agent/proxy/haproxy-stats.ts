// Parsing HAProxy runtime API output. `show stat` columns move between versions, so every field is
// read by its header name, never by position.

export type StatRow = Record<string, string>;

export function parseShowStat(text: string): StatRow[] {
    const lines = text.split("\n").filter((l) => l.trim() !== "");
    const headerLine = lines.find((l) => l.startsWith("# "));
    if (!headerLine) throw new Error(`unexpected "show stat" output: ${text.slice(0, 200)}`);
    const header = headerLine.slice(2).split(",");
    return lines
        .filter((l) => !l.startsWith("#"))
        .map((line) => {
            const cells = line.split(",");
            const row: StatRow = {};
            header.forEach((name, i) => {
                if (name !== "") row[name] = cells[i] ?? "";
            });
            return row;
        });
}

export interface ServerStats {
    name: string;
    /** "UP", "DOWN", "UP 1/2" (going down), "DOWN 1/2" (coming up), "DRAIN", "MAINT", "NOLB", "no check". */
    status: string;
    /** Last check result without the "* " prefix HAProxy adds while a check runs: "L7OK", "L4CON", "L7STS", ... */
    checkStatus: string;
    /** Current runtime weight; the config weight is 100, so this is the traffic percent. */
    weight: number;
    /** Current sessions (requests in flight on this server). */
    scur: number;
    /** Total sessions since HAProxy (re)started. */
    stot: number;
    hrsp1xx: number;
    hrsp2xx: number;
    hrsp3xx: number;
    hrsp4xx: number;
    hrsp5xx: number;
    hrspOther: number;
    /** Response errors (server closed or sent garbage). */
    eresp: number;
    /** Connection errors. */
    econ: number;
    /** Retries and redispatches (reported, not gated: the request still succeeded elsewhere). */
    wretr: number;
    wredis: number;
}

function num(row: StatRow, name: string): number {
    const v = row[name];
    if (v === undefined || v === "") return 0;
    const n = Number(v);
    return Number.isFinite(n) ? n : 0;
}

export function toServerStats(row: StatRow): ServerStats {
    return {
        name: row.svname ?? "",
        status: row.status ?? "",
        checkStatus: (row.check_status ?? "").replace(/^\*\s*/, ""),
        weight: num(row, "weight"),
        scur: num(row, "scur"),
        stot: num(row, "stot"),
        hrsp1xx: num(row, "hrsp_1xx"),
        hrsp2xx: num(row, "hrsp_2xx"),
        hrsp3xx: num(row, "hrsp_3xx"),
        hrsp4xx: num(row, "hrsp_4xx"),
        hrsp5xx: num(row, "hrsp_5xx"),
        hrspOther: num(row, "hrsp_other"),
        eresp: num(row, "eresp"),
        econ: num(row, "econ"),
        wretr: num(row, "wretr"),
        wredis: num(row, "wredis"),
    };
}

/** Server rows of one backend (the BACKEND/FRONTEND summary rows are skipped), keyed by server name. */
export function backendServers(rows: StatRow[], backend: string): Map<string, ServerStats> {
    const servers = new Map<string, ServerStats>();
    for (const row of rows) {
        if (row.pxname !== backend || row.svname === "BACKEND" || row.svname === "FRONTEND") continue;
        servers.set(row.svname, toServerStats(row));
    }
    return servers;
}

/** `get weight app/blue` -> "10 (initial 100)". */
export function parseGetWeight(text: string): { current: number; initial: number } {
    const m = /^\s*(\d+)\s*\(initial\s+(\d+)\)/.exec(text);
    if (!m) throw new Error(`unexpected "get weight" output: ${text.trim().slice(0, 200)}`);
    return { current: Number(m[1]), initial: Number(m[2]) };
}

/** Total responses the server produced (all HTTP classes). */
export function totalResponses(s: ServerStats): number {
    return s.hrsp1xx + s.hrsp2xx + s.hrsp3xx + s.hrsp4xx + s.hrsp5xx + s.hrspOther;
}
