// Bundles the host agent (agent/main.ts and the lib/ files it imports) into one file, dist/agent.js,
// that runs on the host's Node 18+ with nothing installed: platform node, no external packages.
import { build } from "esbuild";
import { chmodSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outfile = join(root, "dist", "agent.js");

const result = await build({
    entryPoints: [join(root, "agent", "main.ts")],
    outfile,
    bundle: true,
    platform: "node",
    target: "node18",
    format: "cjs",
    banner: { js: "#!/usr/bin/env node" },
    // Readable on the host when something goes wrong; it is small anyway.
    minify: false,
    sourcemap: false,
    legalComments: "none",
    logLevel: "warning",
    metafile: true,
});

// Only Node built-ins may stay as imports: anything else would need an npm install on the host.
const inputs = Object.keys(result.metafile.inputs);
const foreign = inputs.filter((p) => p.includes("node_modules"));
if (foreign.length) {
    console.error(`agent bundle pulls in npm packages: ${foreign.join(", ")}`);
    process.exit(1);
}
chmodSync(outfile, 0o755);
console.log(`dist/agent.js: ${(statSync(outfile).size / 1024).toFixed(0)} KiB from ${inputs.length} files`);
