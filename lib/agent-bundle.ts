// Bundles the host agent into one file at program time, so the host needs only Node.js (no npm,
// no node_modules) and a changed agent is re-uploaded because its hash changed.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { buildSync } from "esbuild";
import { DASHBOARD_ASSETS_GLOBAL, dashboardAssets } from "../agent/dashboard/assets";

export const REPO_ROOT = path.resolve(__dirname, "..");
export const AGENT_ENTRY = path.join(REPO_ROOT, "agent", "main.ts");
export const AGENT_OUTFILE = path.join(REPO_ROOT, "dist", "agent.js");

export interface AgentBundle {
    /** Absolute path of the bundled agent. */
    path: string;
    /** Hex sha256 of its content. */
    sha256: string;
}

export interface BundleOptions {
    entry?: string;
    outfile?: string;
}

export function bundleAgent(opts: BundleOptions = {}): AgentBundle {
    const entry = opts.entry ?? AGENT_ENTRY;
    const outfile = opts.outfile ?? AGENT_OUTFILE;
    if (!fs.existsSync(entry)) throw new Error(`agent entry point ${entry} not found`);
    // scripts/build-agent.mjs calls this function too, so both produce the same bytes (and hash).
    const result = buildSync({
        entryPoints: [entry],
        outfile,
        bundle: true,
        platform: "node",
        // Debian 12 ships Node.js 18.
        target: "node18",
        format: "cjs",
        banner: { js: "#!/usr/bin/env node" },
        minify: false,
        // No timestamps or absolute paths: an unchanged agent must not be re-uploaded.
        sourcemap: false,
        legalComments: "none",
        logLevel: "silent",
        metafile: true,
        // The dashboard's page and the uPlot library (an npm package, carried as text: nothing of it
        // runs in Node), so the host serves them on its own.
        define: { [DASHBOARD_ASSETS_GLOBAL]: JSON.stringify(dashboardAssets()) },
    });
    // The host has Node.js and nothing else: an npm package in the bundle would be a bug.
    const foreign = Object.keys(result.metafile?.inputs ?? {}).filter((p) => p.includes("node_modules"));
    if (foreign.length > 0) throw new Error(`agent bundle pulls in npm packages: ${foreign.join(", ")}`);
    return { path: outfile, sha256: sha256File(outfile) };
}

export function sha256File(file: string): string {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}
