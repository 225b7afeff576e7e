// The dashboard's page and what it loads, as agent/dashboard/page/assets.json lists them (a file
// of page/, or one of an npm package's): read from disk by the program when it bundles the agent
// (the bundle carries them as text), and by the agent run from source (the unit tests).
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

interface AssetManifest {
    /** The constant the bundler defines with the assets' text. */
    global: string;
    files: Record<string, { type: string; page?: string; npm?: string }>;
}

/** The manifest of the dashboard directory `dir`, and its assets read from `dir`/page and the npm packages `resolve` finds. */
export function readDashboardAssets(dir: string, resolve: (id: string) => string): { global: string; assets: DashboardAssets } {
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, "page", "assets.json"), "utf8")) as AssetManifest;
    const files: Record<string, DashboardAsset> = {};
    for (const [url, src] of Object.entries(manifest.files)) {
        const file = src.page ? path.join(dir, "page", src.page) : resolve(src.npm ?? "");
        files[url] = { type: src.type, body: fs.readFileSync(file, "utf8") };
    }
    return { global: manifest.global, assets: { files } };
}
