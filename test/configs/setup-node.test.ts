// scripts/setup.sh, the README's first step, run for real against temp prefixes (never the
// machine's own /usr/local): the pinned Node.js and npm installed from the npm registry, found by
// npm and npx from PATH, a second run that changes nothing, and a node on PATH that already
// satisfies package.json's engines kept as it is.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { requireTools, run, RunResult, tempDir } from "./helpers";

const REPO = path.resolve(__dirname, "..", "..");
const SETUP = path.join(REPO, "scripts", "setup.sh");
const PINNED = fs.readFileSync(path.join(REPO, ".node-version"), "utf8").trim();
const ENGINES: string = JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")).engines.node;

/**
 * The environment of a shell, not of the npm that started these tests: npm's run-script variables
 * (npm_*, NODE = the node running that npm) would point what these tests start at the outer node.
 */
function shellEnv(): NodeJS.ProcessEnv {
    return Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== "NODE"));
}

function setup(prefix: string, env: NodeJS.ProcessEnv = {}): RunResult {
    return run("bash", [SETUP], { env: { ...shellEnv(), SLOTSHIFT_NODE_PREFIX: prefix, ...env }, timeout: 600_000 });
}

function withPath(bin: string): NodeJS.ProcessEnv {
    return { ...shellEnv(), PATH: `${bin}:${process.env.PATH}` };
}

const newer = (a: string, b: string) =>
    a
        .split(".")
        .map(Number)
        .reduce((d, x, i) => d || x - Number(b.split(".")[i]), 0) >= 0;

describe("Node.js setup (scripts/setup.sh)", function () {
    // A cold run downloads about 50 MB through npm (then cached in npm's cache).
    this.timeout(600_000);
    let prefix: string;
    let first: RunResult;

    before(() => {
        requireTools("bash", "npm", "sha512sum", "tar", "shellcheck");
        prefix = tempDir("node-prefix");
        first = setup(prefix, { SLOTSHIFT_NODE_PINNED: "1" });
    });

    it("passes shellcheck, with the scripts .ci/run calls beside it", () => {
        const scripts = ["scripts/setup.sh", "scripts/actionlint.sh", "scripts/release-archive.sh", ".ci/run"];
        const r = run("shellcheck", ["--shell=bash", "--severity=style", ...scripts], { cwd: REPO });
        assert.strictEqual(r.status, 0, r.stdout + r.stderr);
    });

    it("pins a version that satisfies package.json's engines", () => {
        const min = /^>=(\d+\.\d+\.\d+)$/.exec(ENGINES);
        assert.ok(min, `engines.node is ${ENGINES}; setup.sh reads a ">=X.Y.Z" bound`);
        assert.ok(newer(PINNED, min[1]), `.node-version ${PINNED} is below ${ENGINES}`);
        assert.ok(newer(min[1], "22.0.0"), "@pulumi/pulumi declares node >= 22");
    });

    it("installs the pinned node, npm and npx under the prefix and prints its bin directory", () => {
        assert.strictEqual(first.status, 0, first.stderr);
        const bin = path.join(prefix, "bin");
        assert.strictEqual(first.stdout.trim(), bin);
        assert.strictEqual(run(path.join(bin, "node"), ["--version"]).stdout.trim(), `v${PINNED}`);
        const npm = run("npm", ["--version"], { env: withPath(bin) });
        assert.strictEqual(npm.status, 0, npm.stderr);
        assert.match(npm.stdout.trim(), /^\d+\.\d+\.\d+$/);
        const npx = run("npx", ["--version"], { env: withPath(bin) });
        assert.strictEqual(npx.stdout.trim(), npm.stdout.trim(), npx.stderr);
        // What npm runs (scripts, npm exec) finds the same node through PATH.
        const viaScript = run("npm", ["exec", "--", "node", "-p", "process.execPath"], { env: withPath(bin), cwd: REPO });
        assert.strictEqual(fs.realpathSync(viaScript.stdout.trim()), fs.realpathSync(path.join(bin, "node")), viaScript.stderr);
    });

    it("is quick and changes nothing when already done", () => {
        const home = path.join(prefix, "lib", "slotshift-node", `node-v${PINNED}-linux-${process.arch}`);
        const before = fs.statSync(home).ino;
        const started = Date.now();
        const again = setup(prefix, { SLOTSHIFT_NODE_PINNED: "1" });
        assert.strictEqual(again.status, 0, again.stderr);
        assert.strictEqual(again.stdout.trim(), path.join(prefix, "bin"));
        assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
        assert.strictEqual(fs.statSync(home).ino, before, "reinstalled");
        assert.doesNotMatch(again.stderr, /installing/);
    });

    it("keeps a node on PATH that satisfies engines, installing nothing", () => {
        const other = tempDir("node-other");
        const r = run("bash", [SETUP], { env: { ...withPath(path.join(prefix, "bin")), SLOTSHIFT_NODE_PREFIX: other }, timeout: 60_000 });
        assert.strictEqual(r.status, 0, r.stderr);
        assert.strictEqual(r.stdout.trim(), path.join(prefix, "bin"));
        assert.match(r.stderr, /using the node on PATH/);
        assert.deepStrictEqual(fs.readdirSync(other), []);
    });
});
