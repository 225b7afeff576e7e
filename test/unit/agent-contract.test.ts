import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import {
    ActivateRequest,
    AGENT_SETTINGS_SCHEMA_VERSION,
    ArgsError,
    checkAgentSettings,
    COMMAND_SPECS,
    DEFAULTS,
    formatActivateArgs,
    formatMigrateArgs,
    formatPrepareArgs,
    formatPruneArgs,
    formatReloadProxyArgs,
    formatAbortArgs,
    formatDashboardArgs,
    formatMaintenanceArgs,
    parseAbortArgs,
    parseDashboardArgs,
    parseMaintenanceArgs,
    formatRetireArgs,
    formatRollbackArgs,
    formatStatusArgs,
    formatWriteEnvArgs,
    MigrateRequest,
    parseActivateArgs,
    parseMigrateArgs,
    parsePrepareArgs,
    parsePruneArgs,
    parseReloadProxyArgs,
    parseRetireArgs,
    parseRollbackArgs,
    parseStatusArgs,
    parseWriteEnvArgs,
    PrepareRequest,
    PruneRequest,
    RawArgs,
    rawFlag,
    rawSwitch,
    RetireRequest,
    RollbackRequest,
    tokenize,
} from "../../lib/agent-contract";
import { buildAgentSettings } from "../../program/agent-settings";
import { formatSystemdEnvFile, parseEnvLines, parseSystemdEnvFile } from "../../lib/env-lines";
import { parseShiftPlan } from "../../lib/shift-plan";
import { parseStackConfig } from "../../program/config-schema";
import { AGENT_COMMAND_NAMES } from "../../agent/main";

/** What the agent does with the program's argv: the command word first, then the arguments. */
function roundTrip<R>(command: string, format: (r: R) => string[], parse: (a: RawArgs) => R, request: R): void {
    const argv = [command, "--config", "/srv/shop/deploy/agent.json", ...format(request)];
    const parsed = tokenize(argv);
    assert.strictEqual(parsed.command, command);
    assert.deepStrictEqual(parse(parsed), request, `${command}: ${argv.join(" ")}`);
}

const PLAN = parseShiftPlan("10%:30s,50%:1m,100%");
const ALLOW = ["notes.0004_drop_note_author:drop_column:notes_note.author", "notes.0005_x:drop_table:notes_old"];

describe("agent contract: command lines", () => {
    it("prepare: format -> parse gives the same request", () => {
        const cases: PrepareRequest[] = [
            { version: "v2", source: "/srv/shop/deploy/artifacts/v2.tar.gz" },
            { version: "2026.11.20-1+build.7", source: "https://example.com/r/v2.tar.gz?X-Amz-Signature=abc&x=1" },
            { version: "v3", source: "/tmp/v3.tar.gz", sha256: "ab".repeat(32) },
            { version: "v4", sourceOnStdin: true, sha256: "0f".repeat(32), maxDownloadBytes: 512 * 1024 * 1024, downloadTimeoutSeconds: 90 },
        ];
        for (const r of cases) roundTrip("prepare", formatPrepareArgs, parsePrepareArgs, r);
    });

    it("activate: format -> parse gives the same request, with every option or none", () => {
        const cases: ActivateRequest[] = [
            { version: "v2", allowContract: [] },
            {
                version: "v2",
                plan: PLAN,
                maxErrorRatio: 0.005,
                minRequests: 25,
                maxStepExtensionSeconds: 90,
                maxLatencyRatio: 2.5,
                healthTimeoutSeconds: 90,
                drainTimeoutSeconds: 45.5,
                keepWarm: true,
                allowContract: ALLOW,
            },
            { version: "v2b", minRequests: 0, maxLatencyRatio: 0, allowContract: [] },
            { version: "v3", plan: parseShiftPlan("100"), maxErrorRatio: 0, keepWarm: false, allowContract: [ALLOW[0]] },
        ];
        for (const r of cases) roundTrip("activate", formatActivateArgs, parseActivateArgs, r);
    });

    it("rollback: format -> parse gives the same request", () => {
        const cases: RollbackRequest[] = [
            {},
            { plan: PLAN, maxErrorRatio: 1, minRequests: 1, healthTimeoutSeconds: 3600, drainTimeoutSeconds: 0.5, keepWarm: false },
        ];
        for (const r of cases) roundTrip("rollback", formatRollbackArgs, parseRollbackArgs, r);
    });

    it("rollback --script-flip: the rollback script's two times, checked", () => {
        assert.deepStrictEqual(parseRollbackArgs(tokenize(["rollback", "--script-flip", "1796289572102:1796289572131", "--json"])).scriptFlip, {
            startedAt: 1796289572102,
            flippedAt: 1796289572131,
        });
        for (const bad of ["1796289572131:1796289572102", "now:later", "1796289572102", "17:18"])
            assert.throws(() => parseRollbackArgs(tokenize(["rollback", "--script-flip", bad])), /--script-flip must be STARTED:FLIPPED/);
    });

    it("migrate: format -> parse gives the same request", () => {
        const cases: MigrateRequest[] = [
            { version: "v2", allowContract: [], checkOnly: false },
            { version: "v2c", allowContract: ALLOW, checkOnly: true },
        ];
        for (const r of cases) roundTrip("migrate", formatMigrateArgs, parseMigrateArgs, r);
    });

    it("retire, prune and the option-less commands: format -> parse gives the same request", () => {
        const retire: RetireRequest[] = [{ version: "v1" }, { version: "v1", drainTimeoutSeconds: 60, keepWarm: true }, { version: "v1", keepWarm: false }];
        for (const r of retire) roundTrip("retire", formatRetireArgs, parseRetireArgs, r);
        const prune: PruneRequest[] = [{}, { keep: 3 }];
        for (const r of prune) roundTrip("prune", formatPruneArgs, parsePruneArgs, r);
        roundTrip("status", formatStatusArgs, parseStatusArgs, {});
        roundTrip("write-env", formatWriteEnvArgs, parseWriteEnvArgs, {});
        roundTrip("reload-proxy", formatReloadProxyArgs, parseReloadProxyArgs, {});
        roundTrip("abort", formatAbortArgs, parseAbortArgs, {});
        for (const on of [true, false]) roundTrip("maintenance", formatMaintenanceArgs, parseMaintenanceArgs, { on });
        for (const port of [8090, 1, 65535]) roundTrip("dashboard", formatDashboardArgs, parseDashboardArgs, { port });
        assert.deepStrictEqual(parseDashboardArgs(tokenize(["dashboard"])), { port: DEFAULTS.dashboardPort });
        assert.throws(() => parseMaintenanceArgs(tokenize(["maintenance"])), /exactly one of --on and --off/);
        assert.throws(() => parseMaintenanceArgs(tokenize(["maintenance", "--on", "--off"])), /exactly one of --on and --off/);
        assert.throws(() => parseDashboardArgs(tokenize(["dashboard", "--port", "0"])), /--port must be a TCP port/);
    });

    it("the agent runs exactly the contract's commands", () => {
        assert.deepStrictEqual(
            [...AGENT_COMMAND_NAMES],
            COMMAND_SPECS.map((c) => c.name),
        );
    });

    it("takes the version as a plain argument too, and rejects what is left over", () => {
        assert.deepStrictEqual(parsePrepareArgs(tokenize(["prepare", "v2", "/tmp/v2.tar.gz"])), { version: "v2", source: "/tmp/v2.tar.gz" });
        assert.deepStrictEqual(parseRetireArgs(tokenize(["retire", "v2"])), { version: "v2" });
        assert.throws(() => parsePrepareArgs(tokenize(["prepare", "v2", "--source", "/a.tar.gz", "--source-stdin"])), /exclude each other/);
        assert.throws(() => parsePrepareArgs(tokenize(["prepare", "v2", "--source-stdin", "--sha256", "ABC"])), /--sha256 must be 64 lowercase hex digits/);
        assert.throws(() => parsePrepareArgs(tokenize(["prepare", "v2"])), /missing --source/);
        assert.throws(() => parseActivateArgs(tokenize(["activate", "--version", "v2", "extra"])), /unexpected argument "extra" for activate/);
    });

    it("names the flag and the reason for a bad value", () => {
        const bad: [string[], RegExp][] = [
            [["activate", "--version", "../etc"], /version "\.\.\/etc" must be 1-63 characters/],
            [["activate", "--version", "v..2"], /must not contain '\.\.'/],
            [["activate"], /missing version/],
            [["activate", "--version", "v2", "--plan", "50,10"], /--plan: steps must strictly increase/],
            [["activate", "--version", "v2", "--max-error-ratio", "2"], /--max-error-ratio must be between 0 and 1/],
            [["activate", "--version", "v2", "--max-error-ratio", "lots"], /--max-error-ratio must be a number/],
            [["activate", "--version", "v2", "--health-timeout", "soon"], /--health-timeout: "soon" is not a duration/],
            [["activate", "--version", "v2", "--keep-warm", "--no-keep-warm"], /exclude each other/],
            [["activate", "--version", "v2", "--allow-contract", "drop everything"], /--allow-contract: "drop everything" is not MIGRATION:OPERATION:TARGET/],
            [["activate", "--version", "v2", "--gates", "x"], /unknown option --gates for activate/],
            [["prepare", "--version", "v2"], /missing --source/],
            [["prune", "--keep", "0"], /--keep must be a whole number/],
        ];
        const parsers: Record<string, (a: RawArgs) => unknown> = { activate: parseActivateArgs, prepare: parsePrepareArgs, prune: parsePruneArgs };
        for (const [argv, expect] of bad) {
            assert.throws(
                () => parsers[argv[0]](tokenize(argv)),
                (e: Error) => e instanceof ArgsError && expect.test(e.message),
                argv.join(" "),
            );
        }
    });
});

describe("agent contract: tokenizer", () => {
    it("parses command, positionals, --k v, --k=v and switches", () => {
        const a = tokenize(["activate", "--version", "v2", "--plan=10:30,100:0", "--no-keep-warm", "--config", "/x/agent.json", "extra"]);
        assert.strictEqual(a.command, "activate");
        assert.deepStrictEqual(a.positionals, ["extra"]);
        assert.strictEqual(rawFlag(a, "version"), "v2");
        assert.strictEqual(rawFlag(a, "plan"), "10:30,100:0");
        assert.strictEqual(rawSwitch(a, "no-keep-warm"), true);
        assert.strictEqual(rawSwitch(a, "keep-warm"), false);
    });

    it("rejects a value-less option and unknown options", () => {
        assert.throws(() => tokenize(["activate", "--version"]), ArgsError);
        assert.throws(() => parsePruneArgs(tokenize(["prune", "--kep", "3"])), /unknown option --kep/);
        assert.deepStrictEqual(parsePruneArgs(tokenize(["prune", "--keep", "3"])), { keep: 3 });
        assert.throws(() => parsePruneArgs(tokenize(["prune", "--keep", "x"])), ArgsError);
    });
});

describe("agent contract: defaults and agent.json", () => {
    it("the config schema's defaults are the contract's", () => {
        const s = parseStackConfig({
            appName: "shop",
            releaseVersion: "v1",
            releaseSource: "dist/v1.tar.gz",
            startCommand: "app --port $PORT",
            domain: "shop.example.com",
            hostTarget: "existing",
            hostAddress: "203.0.113.7",
            sshUser: "admin",
            sshHostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsNzbmH1hc0ZFBDZo4v1pIoxaHFyw4nWENwI9mYFLNp",
            sshPrivateKey: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----",
        });
        assert.deepStrictEqual(s.shiftPlan, parseShiftPlan(DEFAULTS.shiftPlan));
        assert.deepStrictEqual(
            [
                s.maxErrorRatio,
                s.healthTimeout,
                s.drainTimeout,
                s.dbLockTimeout,
                s.sshPort,
                s.keepPreviousWarm,
                s.releasesToKeep,
                s.healthPath,
                s.smokePaths,
                s.slotBasePort,
            ],
            [
                DEFAULTS.maxErrorRatio,
                DEFAULTS.healthTimeoutSeconds,
                DEFAULTS.drainTimeoutSeconds,
                DEFAULTS.dbLockTimeoutSeconds,
                DEFAULTS.sshPort,
                DEFAULTS.keepPreviousWarm,
                DEFAULTS.releasesToKeep,
                DEFAULTS.healthPath,
                DEFAULTS.smokePaths,
                DEFAULTS.slotBasePort,
            ],
        );
    });

    it("Pulumi.yaml declares the contract's defaults (Pulumi needs them there to make a key optional)", () => {
        const project = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.yaml"), "utf8")) as {
            config: Record<string, { default?: unknown }>;
        };
        // Config keys whose contract name carries a unit: the stack config spells the duration.
        const durationKeys: Record<string, keyof typeof DEFAULTS> = {
            healthTimeout: "healthTimeoutSeconds",
            drainTimeout: "drainTimeoutSeconds",
            dbLockTimeout: "dbLockTimeoutSeconds",
            releaseDownloadTimeout: "releaseDownloadTimeoutSeconds",
            dbStatementTimeout: "dbStatementTimeoutSeconds",
            maxStepExtension: "maxStepExtensionSeconds",
        };
        const checked: string[] = [];
        for (const [key, decl] of Object.entries(project.config)) {
            if (decl.default === undefined) continue;
            const contractKey = (durationKeys[key] ?? key) as keyof typeof DEFAULTS;
            assert.ok(contractKey in DEFAULTS, `Pulumi.yaml gives ${key} a default that the contract (DEFAULTS) lacks`);
            const expected = DEFAULTS[contractKey];
            const actual = durationKeys[key]
                ? Number(String(decl.default).replace(/s$/, ""))
                : ["maxErrorRatio", "maxLatencyRatio"].includes(key)
                  ? Number(decl.default)
                  : decl.default;
            assert.deepStrictEqual(actual, expected, `Pulumi.yaml's default of ${key}`);
            checked.push(key);
        }
        assert.ok(checked.length >= 20, `only ${checked.length} defaults checked`);
    });

    it("agent.json carries its schema version, and the agent refuses another one with a clear message", () => {
        const settings = buildAgentSettings({
            appName: "shop",
            domain: "shop.example.com",
            healthPath: "/healthz",
            smokePaths: ["/"],
            slotBasePort: 8001,
            haproxyPort: 8080,
            keepPreviousWarm: true,
            releasesToKeep: 5,
        });
        assert.strictEqual(settings.schemaVersion, AGENT_SETTINGS_SCHEMA_VERSION);
        const written = JSON.parse(JSON.stringify(settings));
        assert.deepStrictEqual(checkAgentSettings(written, "agent.json"), written);
        const old = { ...settings } as Record<string, unknown>;
        delete old.schemaVersion;
        assert.throws(
            () => checkAgentSettings(old, "/srv/shop/deploy/agent.json"),
            /agent settings \/srv\/shop\/deploy\/agent.json have schema version \(none\), but this agent reads version \d+: .*run `pulumi up`/,
        );
        assert.throws(() => checkAgentSettings({ ...settings, schemaVersion: 99 }, "agent.json"), /schema version 99/);
        assert.throws(
            () => checkAgentSettings({ ...settings, haproxy: undefined }, "agent.json"),
            /lack haproxy\.backend, haproxy\.reloadCommand, haproxy\.frontend\.port/,
        );
        // One name per fact: the HAProxy socket and state file are layout paths, not settings.
        assert.ok(!JSON.stringify(settings).includes(".state"), "no HAProxy state-file path in agent.json");
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
