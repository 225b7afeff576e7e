import * as assert from "assert";
import { boolFlag, checkFlags, numberFlag, parseArgs, stringFlag } from "./cli-args";
import { formatSystemdEnvFile, parseEnvLines, parseSystemdEnvFile } from "../lib/env-lines";
import { UsageError } from "./errors";

describe("cli-args", () => {
    it("parses command, positionals, --k v, --k=v and switches", () => {
        const a = parseArgs(["activate", "--version", "v2", "--plan=10:30,100:0", "--no-keep-warm", "--config", "/x/agent.json", "extra"]);
        assert.strictEqual(a.command, "activate");
        assert.deepStrictEqual(a.positionals, ["extra"]);
        assert.strictEqual(stringFlag(a, "version"), "v2");
        assert.strictEqual(stringFlag(a, "plan"), "10:30,100:0");
        assert.strictEqual(boolFlag(a, "no-keep-warm"), true);
        assert.strictEqual(boolFlag(a, "keep-warm"), false);
    });

    it("rejects a value-less option and unknown options", () => {
        assert.throws(() => parseArgs(["activate", "--version"]), UsageError);
        assert.throws(() => checkFlags(parseArgs(["prune", "--kep", "3"]), ["keep"]), /unknown option --kep/);
        assert.strictEqual(numberFlag(parseArgs(["prune", "--keep", "3"]), "keep"), 3);
        assert.throws(() => numberFlag(parseArgs(["prune", "--keep", "x"]), "keep"), UsageError);
    });
});

describe("env-file", () => {
    it("parses KEY=value lines, skipping blanks and comments", () => {
        const env = parseEnvLines("# c\nA=1\n\nB=x=y\r\nC=\n");
        assert.deepStrictEqual(
            [...env],
            [
                ["A", "1"],
                ["B", "x=y"],
                ["C", ""],
            ],
        );
    });

    it("names the bad line without echoing it", () => {
        assert.throws(
            () => parseEnvLines("A=1\nsecret-value\n"),
            (e: Error) => /line 2/.test(e.message) && !e.message.includes("secret"),
        );
    });

    it("writes values systemd unquotes back to the literal value", () => {
        const env = new Map([
            ["A", `p"a$$w\\o\`rd`],
            ["B", "x y  "],
            ["C", ""],
        ]);
        const text = formatSystemdEnvFile(env);
        assert.strictEqual(text.split("\n")[0], `A="p\\"a\\$\\$w\\\\o\\\`rd"`);
        assert.deepStrictEqual([...parseSystemdEnvFile(text)], [...env]);
    });
});
