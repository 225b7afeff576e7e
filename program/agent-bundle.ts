// Bundles the host agent into one file at program time, so the host needs only Node.js (no npm,
// no node_modules) and a changed agent is re-uploaded because its hash changed.
import * as crypto from "crypto";
import * as fs from "fs";
import { builtinModules } from "module";
import * as path from "path";
import { buildSync } from "esbuild";
import { readDashboardAssets } from "../lib/dashboard-assets";

const REPO_ROOT = path.resolve(__dirname, "..");
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

/** Where the stand-ins of Node's built-in modules are written (a fixed place: their paths name modules in the bundle). */
const LAZY_BUILTINS_DIR = path.join(REPO_ROOT, "dist", ".lazy-builtins");

/**
 * Node's built-in modules load on first use, not when the agent starts. Debian 12's Node 18 is
 * built without a code cache for them, so each one it loads is compiled from source at every
 * start, and a warm rollback's weight flip must not wait for http, tls, crypto, dgram or
 * child_process, which only later steps and other commands use. Each built-in is aliased to a
 * stand-in with one getter per export (as the Node that builds the bundle names them) that
 * requires the real module (`node:` prefix: not aliased) at the first access; esbuild's import
 * interop copies getters without calling them. Returns esbuild's alias map.
 */
/** Modules that warn when loaded to read their names (experimental, deprecated); the agent imports none. */
const NOT_LAZY = new Set(["wasi", "sys", "punycode"]);

function lazyBuiltinAliases(): Record<string, string> {
    fs.mkdirSync(LAZY_BUILTINS_DIR, { recursive: true });
    const aliases: Record<string, string> = {};
    for (const name of builtinModules) {
        if (name.startsWith("_") || NOT_LAZY.has(name)) continue;
        const file = path.join(LAZY_BUILTINS_DIR, `${name.replace(/\//g, "__")}.js`);
        const names = Object.getOwnPropertyNames(require(`node:${name}`)).sort();
        const content = [
            `// Stand-in for node:${name}, written by program/agent-bundle.ts: the real module loads at the first use of an export.`,
            "let real;",
            `const load = () => (real ??= require(${JSON.stringify(`node:${name}`)}));`,
            "module.exports = Object.defineProperties({}, {",
            ...names.map((n) => `    ${JSON.stringify(n)}: { enumerable: true, get: () => load()[${JSON.stringify(n)}] },`),
            "});",
            "",
        ].join("\n");
        // Builds may run side by side: never leave a half-written stand-in for another to read.
        if (!fs.existsSync(file) || fs.readFileSync(file, "utf8") !== content) {
            const tmp = `${file}.${process.pid}.tmp`;
            fs.writeFileSync(tmp, content);
            fs.renameSync(tmp, file);
        }
        aliases[name] = file;
    }
    return aliases;
}

/** The dashboard's page and uPlot as agent/dashboard/page/assets.json lists them, as the bundle's constant. */
function dashboardAssetsDefine(): Record<string, string> {
    const { global, assets } = readDashboardAssets(path.join(REPO_ROOT, "agent", "dashboard"), require.resolve);
    return { [global]: JSON.stringify(assets) };
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
        alias: lazyBuiltinAliases(),
        // The dashboard's page and the uPlot library (an npm package, carried as text: nothing of it
        // runs in Node), so the host serves them on its own.
        define: dashboardAssetsDefine(),
    });
    // The host has Node.js and nothing else: an npm package in the bundle would be a bug.
    const foreign = Object.keys(result.metafile?.inputs ?? {}).filter((p) => p.includes("node_modules"));
    if (foreign.length > 0) throw new Error(`agent bundle pulls in npm packages: ${foreign.join(", ")}`);
    return { path: outfile, sha256: sha256File(outfile) };
}

export function sha256File(file: string): string {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}
