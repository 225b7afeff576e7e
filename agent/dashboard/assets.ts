// The dashboard page and what it loads: its own HTML, script and style (agent/dashboard/page/) and
// the uPlot charting library from its npm package. The agent bundle carries them as strings
// (program/agent-bundle.ts defines SLOTSHIFT_DASHBOARD_ASSETS from page/assets.json at build
// time), so the host serves them itself: no CDN, nothing fetched at run time, nothing installed
// there. Run from source (the unit tests), they are read from disk.
import { DashboardAssets, readDashboardAssets } from "../../lib/dashboard-assets";

export type { DashboardAssets } from "../../lib/dashboard-assets";

declare const SLOTSHIFT_DASHBOARD_ASSETS: DashboardAssets | undefined;

export function dashboardAssets(): DashboardAssets {
    if (typeof SLOTSHIFT_DASHBOARD_ASSETS !== "undefined") return SLOTSHIFT_DASHBOARD_ASSETS;
    return readDashboardAssets(__dirname, require.resolve).assets;
}
