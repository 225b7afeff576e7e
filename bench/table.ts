// The tables, for the terminal and (the same cells) as Markdown for the README: per method the
// deploy's figures by phase; the two generators side by side; the capacity search's steps.
import { Spread } from "./analyze";
import { CapacityStep } from "./capacity";
import { MethodResult, summary, Window, WINDOWS } from "./results";

const num = (n: number, digits: number) => (digits ? n.toFixed(digits) : String(Math.round(n)));

/** "median [min–max]", or one figure when every run gave the same. */
function cell(s: Spread, digits = 0): string {
    const m = num(s.median, digits);
    return s.min === s.max || num(s.min, digits) === num(s.max, digits) ? m : `${m} [${num(s.min, digits)}–${num(s.max, digits)}]`;
}

export const HEADERS = [
    "method",
    "runs",
    "requests",
    "failed",
    "p99 ms steady",
    "p99 preparation",
    "p99 shift",
    "p99 drain",
    "worst phase ÷ steady",
    "preparation s",
    "shift s",
    "drain s",
    "rollback s",
    "failed in rollback",
];

export function tableRows(results: MethodResult[]): string[][] {
    return results.map((m) => {
        const s = summary(m);
        if (!s.runs) return [m.title, `0/${m.runs.length}`, ...HEADERS.slice(2).map(() => "-")];
        return [
            m.title,
            s.runs === m.runs.length ? String(s.runs) : `${s.runs}/${m.runs.length}`,
            cell(s.requests),
            cell(s.failed),
            ...WINDOWS.map((w) => cell(s.p99[w])),
            `${cell(s.worstPhaseOverSteady, 1)}x`,
            cell(s.phaseS.preparation, 1),
            cell(s.phaseS.shift, 1),
            cell(s.phaseS.drain, 1),
            cell(s.rollbackS, 1),
            cell(s.rollbackFailed),
        ];
    });
}

export const CROSS_HEADERS = ["method", "generator", "requests", "failed", ...WINDOWS.map((w: Window) => `p99 ms ${w}`)];

/** Both generators' figures for the same windows, median over the runs. */
export function crossRows(results: MethodResult[], names: { own: string; cross: string }): string[][] {
    return results.flatMap((m) =>
        (["figures", "cross"] as const).map((which, i) => {
            const s = summary(m, which);
            const name = which === "figures" ? names.own : names.cross;
            if (!s.runs) return [i ? "" : m.title, name, "-", "-", ...WINDOWS.map(() => "-")];
            return [i ? "" : m.title, name, cell(s.requests), cell(s.failed), ...WINDOWS.map((w) => cell(s.p99[w]))];
        }),
    );
}

export const CAPACITY_HEADERS = ["req/s sent", "answers/s", "requests", "failed", "p50 ms", "p99 ms", "verdict"];

export function capacityRows(steps: CapacityStep[]): string[][] {
    return steps.map((s) => [String(s.rate), String(s.answeredPerS), String(s.requests), String(s.failed), String(s.p50), String(s.p99), s.broke ?? "holds"]);
}

export function textTable(headers: string[], rows: string[][]): string {
    const all = [headers, ...rows];
    const widths = headers.map((_, i) => Math.max(...all.map((r) => r[i].length)));
    const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
    return [line(headers), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

export function markdownTable(headers: string[], rows: string[][], textColumns = 1): string {
    return [
        `| ${headers.join(" | ")} |`,
        `| ${headers.map((_, i) => (i < textColumns ? "---" : "---:")).join(" | ")} |`,
        ...rows.map((r) => `| ${r.join(" | ")} |`),
    ].join("\n");
}
