// Bundles the host agent (agent/main.ts and the lib/ files it imports) into one file, dist/agent.js,
// that runs on the host's Node 18+ with nothing installed: program/agent-bundle.ts, the same function
// the program calls at `pulumi up`, so both produce the same bytes.
import { chmodSync, statSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
require("ts-node").register({ transpileOnly: true });
const { bundleAgent } = require("../program/agent-bundle.ts");

try {
    const bundle = bundleAgent();
    chmodSync(bundle.path, 0o755);
    console.log(`dist/agent.js: ${(statSync(bundle.path).size / 1024).toFixed(0)} KiB, sha256 ${bundle.sha256.slice(0, 12)}`);
} catch (e) {
    console.error(e.message);
    process.exit(1);
}
