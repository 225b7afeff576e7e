// The summary table, for the terminal and (the same cells) as Markdown for the README.
import { spread, Spread } from "./analyze";
import type { MethodResult } from "./run";

const num = (n: number, digits: number) => (digits ? n.toFixed(digits) : String(Math.round(n)));

/** "median [min–max]", or one figure when every run gave the same. */
function cell(s: Spread, digits = 0): string {
    const m = num(s.median, digits);
    return s.min === s.max ? m : `${m} [${num(s.min, digits)}–${num(s.max, digits)}]`;
}

/** Steady state median → deploy window "median [min–max]". */
function latencyCell(steady: Spread, deploy: Spread): string {
    return `${num(steady.median, 0)} → ${cell(deploy)}`;
}

export const HEADERS = [
    "method",
    "runs",
    "requests sent",
    "failed",
    "p50 ms steady → deploy",
    "p99 ms steady → deploy",
    "max ms steady → deploy",
    "deploy s",
    "rollback s",
    "failed in rollback",
];

export function tableRows(results: MethodResult[]): string[][] {
    return results.map((m) => {
        const ok = m.runs.filter((r) => r.figures);
        const s = (pick: (r: (typeof ok)[number]) => number) => spread(ok.map(pick));
        const f = (r: (typeof ok)[number]) => r.figures!;
        if (!ok.length) return [m.title, `0/${m.runs.length}`, "-", "-", "-", "-", "-", "-", "-", "-"];
        return [
            m.title,
            ok.length === m.runs.length ? String(ok.length) : `${ok.length}/${m.runs.length}`,
            cell(s((r) => f(r).deploy.requests)),
            cell(s((r) => f(r).deploy.failed)),
            latencyCell(
                s((r) => f(r).steady.p50),
                s((r) => f(r).deploy.p50),
            ),
            latencyCell(
                s((r) => f(r).steady.p99),
                s((r) => f(r).deploy.p99),
            ),
            latencyCell(
                s((r) => f(r).steady.max),
                s((r) => f(r).deploy.max),
            ),
            cell(
                s((r) => f(r).deployS),
                1,
            ),
            cell(
                s((r) => f(r).rollbackS),
                1,
            ),
            cell(s((r) => f(r).rollback.failed)),
        ];
    });
}

export function textTable(results: MethodResult[]): string {
    const rows = [HEADERS, ...tableRows(results)];
    const widths = HEADERS.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    const line = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
    return [line(rows[0]), widths.map((w) => "-".repeat(w)).join("  "), ...rows.slice(1).map(line)].join("\n");
}

export function markdownTable(results: MethodResult[]): string {
    const rows = tableRows(results);
    return [
        `| ${HEADERS.join(" | ")} |`,
        `| ${HEADERS.map((_, i) => (i === 0 ? "---" : "---:")).join(" | ")} |`,
        ...rows.map((r) => `| ${r.join(" | ")} |`),
    ].join("\n");
}
