// The dashboard page and what it loads: its own HTML, script and style (agent/dashboard/page/) and
// the uPlot charting library from its npm package. The agent bundle carries them as strings
// (program/agent-bundle.ts defines SLOTSHIFT_DASHBOARD_ASSETS as what this function returns at build
// time), so the host serves them itself: no CDN, nothing fetched at run time, nothing installed
// there. Run from source (the unit tests), they are read from disk.
import * as fs from "fs";
import * as path from "path";

interface DashboardAsset {
    type: string;
    body: string;
}

export interface DashboardAssets {
    /** URL path -> content. */
    files: Record<string, DashboardAsset>;
}

/** The name the bundler replaces with the assets' text. */
export const DASHBOARD_ASSETS_GLOBAL = "SLOTSHIFT_DASHBOARD_ASSETS";
declare const SLOTSHIFT_DASHBOARD_ASSETS: DashboardAssets | undefined;

export function dashboardAssets(): DashboardAssets {
    if (typeof SLOTSHIFT_DASHBOARD_ASSETS !== "undefined") return SLOTSHIFT_DASHBOARD_ASSETS;
    const page = (name: string) => fs.readFileSync(path.join(__dirname, "page", name), "utf8");
    const uplot = (name: string) => fs.readFileSync(require.resolve(`uplot/dist/${name}`), "utf8");
    return {
        files: {
            "/index.html": { type: "text/html; charset=utf-8", body: page("index.html") },
            "/app.js": { type: "text/javascript; charset=utf-8", body: page("app.js") },
            "/style.css": { type: "text/css; charset=utf-8", body: page("style.css") },
            "/uPlot.iife.min.js": { type: "text/javascript; charset=utf-8", body: uplot("uPlot.iife.min.js") },
            "/uPlot.min.css": { type: "text/css; charset=utf-8", body: uplot("uPlot.min.css") },
        },
    };
}
