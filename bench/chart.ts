// The picture in the README: one panel per method (one run of it), per second: answers that
// succeeded stacked by the release that gave them, failures on top in red, and the new release's
// share of successes as a line. Shaded: the deploy's phases (preparation, shift, drain) and the
// rollback. Plain SVG, written here, so the bench needs no charting dependency.
import { RunFigures } from "./analyze";

export interface Panel {
    title: string;
    subtitle: string;
    run: RunFigures;
}

const COLORS: Record<string, string> = { v1: "#4e79a7", v2: "#59a14f", failed: "#e15759", other: "#bab0ac" };
const SHADES = { preparation: "#fff4d6", shift: "#ffdca8", drain: "#e4f2dc", rollback: "#ece4f7" };
const W = 960;
const PANEL_H = 190;
const M = { left: 52, right: 52, top: 40, bottom: 30 };
const HEADER = 72;

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
const f1 = (n: number) => (Math.round(n * 10) / 10).toString();

function niceMax(v: number): number {
    const steps = [10, 20, 25, 50, 100, 150, 200, 250, 300, 400, 500, 1000];
    return steps.find((s) => s >= v) ?? Math.ceil(v / 500) * 500;
}

export function renderChart(panels: Panel[], heading: string, note: string): string {
    const x0 = Math.min(...panels.map((p) => p.run.perSecond[0]?.s ?? 0));
    const x1 = Math.max(...panels.map((p) => (p.run.perSecond[p.run.perSecond.length - 1]?.s ?? 0) + 1));
    const peak = Math.max(1, ...panels.flatMap((p) => p.run.perSecond.map((b) => Object.values(b.ok).reduce((a, n) => a + n, 0) + b.failed)));
    const yMax = niceMax(peak * 1.1);
    const plotW = W - M.left - M.right;
    const plotH = PANEL_H - M.top - M.bottom;
    const sx = (s: number) => M.left + ((s - x0) / (x1 - x0)) * plotW;
    const H = HEADER + panels.length * PANEL_H + 10;

    const out: string[] = [];
    out.push(
        `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="11">`,
    );
    out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
    out.push(`<text x="${M.left}" y="20" font-size="15" font-weight="bold">${esc(heading)}</text>`);
    out.push(`<text x="${M.left}" y="37" fill="#555">${esc(note)}</text>`);
    // Legend
    const legend: [string, string, string][] = [
        ["rect", COLORS.v1, "2xx from v1"],
        ["rect", COLORS.v2, "2xx from v2"],
        ["rect", COLORS.failed, "failed (non-2xx, no answer)"],
        ["line", "#222", "v2 share of 2xx (right axis)"],
        ["rect", SHADES.preparation, "preparation"],
        ["rect", SHADES.shift, "shift"],
        ["rect", SHADES.drain, "drain"],
        ["rect", SHADES.rollback, "rollback"],
    ];
    let lx = M.left;
    for (const [kind, color, label] of legend) {
        if (kind === "rect") out.push(`<rect x="${lx}" y="46" width="12" height="10" fill="${color}" stroke="#999" stroke-width="0.5"/>`);
        else out.push(`<line x1="${lx}" y1="51" x2="${lx + 12}" y2="51" stroke="${color}" stroke-width="1.5" stroke-dasharray="3 2"/>`);
        out.push(`<text x="${lx + 16}" y="55">${esc(label)}</text>`);
        lx += 16 + label.length * 6.2 + 12;
    }

    panels.forEach((p, i) => {
        const top = HEADER + i * PANEL_H;
        const y = (v: number) => top + M.top + plotH - (v / yMax) * plotH;
        const yShare = (share: number) => top + M.top + plotH - share * plotH;
        const { marks } = p.run;
        out.push(`<g>`);
        out.push(`<text x="${M.left}" y="${top + 16}" font-size="13" font-weight="bold">${esc(p.title)}</text>`);
        out.push(`<text x="${M.left}" y="${top + 31}" fill="#444">${esc(p.subtitle)}</text>`);
        // Windows
        const shade = (from: number, to: number, color: string) =>
            out.push(`<rect x="${sx(from)}" y="${top + M.top}" width="${Math.max(1, sx(to) - sx(from))}" height="${plotH}" fill="${color}"/>`);
        shade(0, marks.shiftStart, SHADES.preparation);
        shade(marks.shiftStart, marks.drainStart, SHADES.shift);
        shade(marks.drainStart, marks.deployEnd, SHADES.drain);
        shade(marks.rollbackStart, marks.rollbackEnd, SHADES.rollback);
        // Grid and axes
        for (let v = 0; v <= yMax; v += yMax / 4) {
            out.push(`<line x1="${M.left}" y1="${y(v)}" x2="${W - M.right}" y2="${y(v)}" stroke="#e6e6e6"/>`);
            out.push(`<text x="${M.left - 6}" y="${y(v) + 4}" text-anchor="end" fill="#555">${v}</text>`);
            out.push(`<text x="${W - M.right + 6}" y="${y(v) + 4}" fill="#555">${Math.round((v / yMax) * 100)}%</text>`);
        }
        out.push(
            `<text x="14" y="${top + M.top + plotH / 2}" transform="rotate(-90 14 ${top + M.top + plotH / 2})" text-anchor="middle" fill="#555">requests/s</text>`,
        );
        for (let s = Math.ceil(x0 / 5) * 5; s <= x1; s += 5) {
            out.push(`<line x1="${sx(s)}" y1="${top + M.top + plotH}" x2="${sx(s)}" y2="${top + M.top + plotH + 4}" stroke="#555"/>`);
            out.push(`<text x="${sx(s)}" y="${top + M.top + plotH + 16}" text-anchor="middle" fill="#555">${s}s</text>`);
        }
        // Bars: v1, v2, anything else, then failures on top.
        const bw = Math.max(1, sx(1) - sx(0) - 1);
        const sharePts: string[] = [];
        for (const b of p.run.perSecond) {
            let acc = 0;
            const stack = (n: number, color: string) => {
                if (n <= 0) return;
                out.push(`<rect x="${f1(sx(b.s) + 0.5)}" y="${f1(y(acc + n))}" width="${f1(bw)}" height="${f1(y(acc) - y(acc + n))}" fill="${color}"/>`);
                acc += n;
            };
            const v1 = b.ok.v1 ?? 0;
            const v2 = b.ok.v2 ?? 0;
            const other = Object.entries(b.ok)
                .filter(([v]) => v !== "v1" && v !== "v2")
                .reduce((a, [, n]) => a + n, 0);
            stack(v1, COLORS.v1);
            stack(v2, COLORS.v2);
            stack(other, COLORS.other);
            stack(b.failed, COLORS.failed);
            const okAll = v1 + v2 + other;
            if (okAll > 0) sharePts.push(`${f1(sx(b.s + 0.5))},${f1(yShare(v2 / okAll))}`);
        }
        if (sharePts.length) out.push(`<polyline points="${sharePts.join(" ")}" fill="none" stroke="#222" stroke-width="1.5" stroke-dasharray="3 2"/>`);
        // Marks
        for (const [t, label] of [
            [0, "deploy starts"],
            [marks.rollbackStart, "rollback starts"],
        ] as [number, string][]) {
            out.push(`<line x1="${sx(t)}" y1="${top + M.top}" x2="${sx(t)}" y2="${top + M.top + plotH}" stroke="#777" stroke-dasharray="2 2"/>`);
            out.push(`<text x="${sx(t) + 3}" y="${top + M.top + 10}" fill="#555">${label}</text>`);
        }
        out.push(`<line x1="${M.left}" y1="${top + M.top + plotH}" x2="${W - M.right}" y2="${top + M.top + plotH}" stroke="#555"/>`);
        out.push(`</g>`);
    });
    out.push(`</svg>`);
    return out.join("\n") + "\n";
}
