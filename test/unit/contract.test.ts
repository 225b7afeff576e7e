// The contract between the program and the agent (lib/contract/): every command's request survives
// format -> parse, bad values are named with their flag and reason, the settings table reaches
// the flags with one name and one unit, and agent.json carries the table's groups.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { AgentCommandName, ArgsError, COMMANDS, formatCommand, parseCommand, RequestFor, tokenizeArgs, usageText } from "../../lib/contract/commands";
import { AGENT_SETTINGS_SCHEMA_VERSION, checkAgentSettings } from "../../lib/contract/agent-json";
import { flagName } from "../../lib/contract/flags";
import { formatAgentMessage, parseAgentMessage } from "../../lib/contract/messages";
import { groupRows, SettingRow, SETTINGS, settingDefault } from "../../lib/settings/table";
import { formatKindDefault } from "../../lib/settings/kinds";
import { buildAgentSettings } from "../../program/agent-settings";
import { formatSystemdEnvFile, parseEnvLines, parseSystemdEnvFile } from "../../lib/env-lines";
import { parseShiftPlan } from "../../lib/shift-plan";
import { parseStackConfig } from "../../program/config-schema";
import { AGENT_COMMAND_NAMES } from "../../agent/main";

/** What the agent does with the program's argv: the command word first, then the arguments. */
function roundTrip<C extends AgentCommandName>(command: C, request: RequestFor<C>): void {
    const argv = [...formatCommand(command, request), "--config", "/srv/shop/deploy/agent.json"];
    const parsed = tokenizeArgs(argv);
    assert.strictEqual(parsed.command, command);
    assert.deepStrictEqual(parseCommand(command, parsed), request, `${command}: ${argv.join(" ")}`);
}

function parse(argv: string[]): unknown {
    const args = tokenizeArgs(argv);
    return parseCommand(args.command as AgentCommandName, args);
}

const PLAN = parseShiftPlan("10%:30s,50%:1m,100%");
const ALLOW = ["notes.0004_drop_note_author:drop_column:notes_note.author", "notes.0005_x:drop_table:notes_old"];

describe("agent contract: command lines", () => {
    it("prepare: format -> parse gives the same request", () => {
        const cases: RequestFor<"prepare">[] = [
            { version: "v2", source: "/srv/shop/deploy/artifacts/v2.tar.gz" },
            { version: "2026.11.20-1+build.7", source: "https://example.com/r/v2.tar.gz?X-Amz-Signature=abc&x=1" },
            { version: "v3", source: "/tmp/v3.tar.gz", sha256: "ab".repeat(32) },
            { version: "v4", sourceStdin: true, sha256: "0f".repeat(32), releaseDownloadMaxMiB: 512, releaseDownloadTimeout: 90 },
        ];
        for (const r of cases) roundTrip("prepare", r);
    });

    it("activate: format -> parse gives the same request, with every option or none", () => {
        const cases: RequestFor<"activate">[] = [
            { version: "v2" },
            {
                version: "v2",
                shiftPlan: PLAN,
                maxErrorRatio: 0.005,
                minRequestsPerStep: 25,
                maxStepExtension: 90,
                maxLatencyRatio: 2.5,
                healthTimeout: 90,
                drainTimeout: 45.5,
                keepPreviousWarm: true,
                allowContractOperations: ALLOW,
            },
            { version: "v2b", minRequestsPerStep: 0, maxLatencyRatio: 0 },
            { version: "v3", shiftPlan: parseShiftPlan("100"), maxErrorRatio: 0, keepPreviousWarm: false, allowContractOperations: [ALLOW[0]] },
        ];
        for (const r of cases) roundTrip("activate", r);
    });

    it("rollback: format -> parse gives the same request", () => {
        const cases: RequestFor<"rollback">[] = [
            {},
            { shiftPlan: PLAN, maxErrorRatio: 1, minRequestsPerStep: 1, healthTimeout: 3600, drainTimeout: 1.5, keepPreviousWarm: false },
        ];
        for (const r of cases) roundTrip("rollback", r);
    });

    it("rollback --script-flip: the rollback script's two times, checked", () => {
        assert.deepStrictEqual(parse(["rollback", "--script-flip", "1796289572102:1796289572131", "--json"]), { scriptFlip: "1796289572102:1796289572131" });
        for (const bad of ["1796289572131:1796289572102", "now:later", "1796289572102", "17:18"])
            assert.throws(() => parse(["rollback", "--script-flip", bad]), /--script-flip "[^"]*": must be STARTED:FLIPPED/);
    });

    it("migrate: format -> parse gives the same request", () => {
        const cases: RequestFor<"migrate">[] = [{ version: "v2" }, { version: "v2c", allowContractOperations: ALLOW, checkOnly: true }];
        for (const r of cases) roundTrip("migrate", r);
    });

    it("retire, prune and the option-less commands: format -> parse gives the same request", () => {
        const retire: RequestFor<"retire">[] = [
            { version: "v1" },
            { version: "v1", drainTimeout: 60, keepPreviousWarm: true },
            { version: "v1", keepPreviousWarm: false },
        ];
        for (const r of retire) roundTrip("retire", r);
        for (const r of [{}, { keep: 3 }]) roundTrip("prune", r);
        for (const c of ["status", "write-env", "reload-proxy", "abort", "recover"] as const) roundTrip(c, {});
        roundTrip("maintenance", { on: true });
        roundTrip("maintenance", { off: true });
        for (const dashboardPort of [8090, 1, 65535]) roundTrip("dashboard", { dashboardPort });
        roundTrip("attach", { worker: "20261201-activate-v2-12", skipLines: 7 });
        assert.deepStrictEqual(parse(["dashboard"]), {});
        assert.throws(() => parse(["maintenance"]), /exactly one of --on and --off/);
        assert.throws(() => parse(["maintenance", "--on", "--off"]), /exactly one of --on and --off/);
        assert.throws(() => parse(["dashboard", "--dashboard-port", "0"]), /--dashboard-port "0": must be at least 1/);
        assert.throws(() => parse(["attach", "--worker", "../etc/x"]), /--worker "..\/etc\/x": must be a worker's log name/);
    });

    it("the agent runs exactly the contract's commands", () => {
        assert.deepStrictEqual([...AGENT_COMMAND_NAMES], Object.keys(COMMANDS));
    });

    it("takes the version as a plain argument too, and rejects what is left over", () => {
        assert.deepStrictEqual(parse(["prepare", "v2", "/tmp/v2.tar.gz"]), { version: "v2", source: "/tmp/v2.tar.gz" });
        assert.deepStrictEqual(parse(["retire", "v2"]), { version: "v2" });
        assert.throws(() => parse(["prepare", "v2", "--source", "/a.tar.gz", "--source-stdin"]), /exactly one of --source PATH\|URL and --source-stdin/);
        assert.throws(() => parse(["prepare", "v2", "--source-stdin", "--sha256", "ABC"]), /--sha256 "ABC": must be 64 lowercase hex digits/);
        assert.throws(() => parse(["prepare", "v2"]), /exactly one of --source/);
        assert.throws(() => parse(["activate", "--version", "v2", "extra"]), /unexpected argument "extra" for activate/);
    });

    it("names the flag and the reason for a bad value", () => {
        const bad: [string[], RegExp][] = [
            [["activate", "--version", "../etc"], /--version "\.\.\/etc": must be 1-63 characters/],
            [["activate", "--version", "v..2"], /must not contain '\.\.'/],
            [["activate"], /missing --version/],
            [["activate", "--version", "v2", "--shift-plan", "50,10"], /--shift-plan "50,10": steps must strictly increase/],
            [["activate", "--version", "v2", "--max-error-ratio", "2"], /--max-error-ratio "2": must be between 0 and 1/],
            [["activate", "--version", "v2", "--max-error-ratio", "lots"], /--max-error-ratio "lots": must be a number/],
            [["activate", "--version", "v2", "--max-error-ratio", "0x1"], /--max-error-ratio "0x1": must be a number/],
            [["activate", "--version", "v2", "--max-latency-ratio", " "], /--max-latency-ratio " ": must be a number/],
            [["activate", "--version", "v2", "--health-timeout", "soon"], /--health-timeout "soon": "soon" is not a duration/],
            [["activate", "--version", "v2", "--keep-previous-warm", "--no-keep-previous-warm"], /exclude each other/],
            [
                ["activate", "--version", "v2", "--allow-contract-operations", "drop everything"],
                /--allow-contract-operations "drop everything": item 1 "drop everything" is not MIGRATION:OPERATION:TARGET/,
            ],
            [["activate", "--version", "v2", "--gates", "x"], /unknown option --gates for activate/],
            [["prepare", "--version", "v2"], /exactly one of --source/],
            [["prune", "--keep", "0"], /--keep "0": must be at least 1/],
        ];
        for (const [argv, expect] of bad) {
            assert.throws(
                () => parse(argv),
                (e: Error) => e instanceof ArgsError && expect.test(e.message),
                argv.join(" "),
            );
        }
    });

    it("the usage lists every command with each flag, its default and its help", () => {
        const text = usageText(() => "");
        for (const c of Object.values(COMMANDS)) {
            assert.ok(text.includes(`  ${c.name}`), c.name);
            for (const f of c.flags) assert.ok(text.includes(`--${f.name}`), `${c.name} --${f.name}`);
        }
        assert.match(
            text,
            /--max-step-extension DURATION: how long a step with fewer than minRequestsPerStep requests is held longer before it fails \(default 60\)/,
        );
        assert.match(text, /--keep-previous-warm\|--no-keep-previous-warm/);
    });
});

describe("agent contract: tokenizer", () => {
    it("parses command, positionals, --k v, --k=v and switches", () => {
        const a = tokenizeArgs(["activate", "--version", "v2", "--shift-plan=10:30,100:0", "--no-keep-previous-warm", "--config", "/x/agent.json", "extra"]);
        assert.strictEqual(a.command, "activate");
        assert.deepStrictEqual(a.positionals, ["extra"]);
        assert.strictEqual(a.flags.get("version"), "v2");
        assert.strictEqual(a.flags.get("shift-plan"), "10:30,100:0");
        assert.strictEqual(a.flags.get("no-keep-previous-warm"), true);
        assert.strictEqual(a.flags.get("keep-previous-warm"), undefined);
    });

    it("rejects a value-less option and unknown options", () => {
        assert.throws(() => tokenizeArgs(["activate", "--version"]), ArgsError);
        assert.throws(() => parse(["prune", "--kep", "3"]), /unknown option --kep/);
        assert.deepStrictEqual(parse(["prune", "--keep", "3"]), { keep: 3 });
        assert.throws(() => parse(["prune", "--keep", "x"]), ArgsError);
    });
});

describe("agent contract: one name and one unit per setting", () => {
    it("every setting-backed flag is the setting's key in kebab case, its kind and its default the table's", () => {
        const rows = new Map((SETTINGS as readonly SettingRow[]).map((r) => [r.key, r]));
        let checked = 0;
        for (const c of Object.values(COMMANDS)) {
            for (const f of c.flags) {
                const row = rows.get(f.field);
                if (!row) continue;
                assert.strictEqual(f.name, flagName(row.key), `${c.name} --${f.name}`);
                assert.strictEqual(f.kind, row.kind, `${c.name} --${f.name} kind`);
                checked++;
            }
        }
        assert.ok(checked >= 15, `only ${checked} setting-backed flags`);
    });

    it("activate and rollback take the whole shift group, by its own keys", () => {
        const shiftKeys = groupRows("shift").map((r) => r.key);
        for (const c of [COMMANDS.activate, COMMANDS.rollback]) {
            const fields = c.flags.map((f) => f.field as string);
            for (const k of shiftKeys) assert.ok(fields.includes(k), `${c.name} lacks ${k}`);
        }
    });

    it("the config schema's defaults are the table's", () => {
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
        for (const row of SETTINGS as readonly SettingRow[]) {
            if (row.default === undefined) continue;
            assert.deepStrictEqual((s as Record<string, unknown>)[row.key], row.default, row.key);
        }
        assert.deepStrictEqual(s.shiftPlan, parseShiftPlan(["10%:30s", "50%:30s", "100%"]));
        assert.strictEqual(settingDefault("maxStepExtension"), 60);
    });

    it("Pulumi.yaml declares the table's defaults, as a person writes them", () => {
        const project = YAML.parse(fs.readFileSync(path.join(__dirname, "..", "..", "Pulumi.yaml"), "utf8")) as {
            config: Record<string, { default?: unknown }>;
        };
        const rows = new Map((SETTINGS as readonly SettingRow[]).map((r) => [r.key, r]));
        let checked = 0;
        for (const [key, decl] of Object.entries(project.config)) {
            const row = rows.get(key);
            assert.ok(row, `Pulumi.yaml declares ${key}, which the settings table lacks`);
            if (row.default === undefined || row.secret) continue;
            assert.deepStrictEqual(decl.default, formatKindDefault(row.kind, row.default), `Pulumi.yaml's default of ${key}`);
            checked++;
        }
        assert.ok(checked >= 30, `only ${checked} defaults checked`);
    });
});

describe("agent contract: agent.json and messages", () => {
    it("agent.json carries its schema version and the table's groups by their keys; the agent refuses another version with a clear message", () => {
        const settings = buildAgentSettings({ appName: "shop", domain: "shop.example.com" });
        assert.strictEqual(settings.schemaVersion, AGENT_SETTINGS_SCHEMA_VERSION);
        assert.strictEqual(settings.health.healthPath, "/healthz", "one spelling of healthPath from config to agent");
        assert.strictEqual(settings.migrations.dbLockTimeout, 5, "seconds, as the setting");
        assert.strictEqual(settings.shift.keepPreviousWarm, true);
        const written = JSON.parse(JSON.stringify(settings));
        assert.deepStrictEqual(checkAgentSettings(written, "agent.json"), written);
        const old = { ...settings } as Record<string, unknown>;
        delete old.schemaVersion;
        assert.throws(
            () => checkAgentSettings(old, "/srv/shop/deploy/agent.json"),
            /agent settings \/srv\/shop\/deploy\/agent.json have schema version \(none\), but this agent reads version \d+: .*run `pulumi up`/,
        );
        assert.throws(() => checkAgentSettings({ ...settings, schemaVersion: 99 }, "agent.json"), /schema version 99/);
        assert.throws(() => checkAgentSettings({ ...settings, haproxy: undefined }, "agent.json"), /lack haproxy\.backend, haproxy\.reloadCommand/);
        // One name per fact: the HAProxy socket and state file are layout paths, not settings.
        assert.ok(!JSON.stringify(settings).includes(".state"), "no HAProxy state-file path in agent.json");
    });

    it("a message line round-trips, and anything else is not one", () => {
        const worker = {
            type: "worker" as const,
            worker: "20261201T1200-activate-v2-42",
            pid: 42,
            log: "/srv/shop/deploy/logs/x.log",
            text: "deploy worker pid 42",
        };
        assert.deepStrictEqual(parseAgentMessage(formatAgentMessage(worker)), worker);
        const result = { type: "result" as const, ok: true, command: "activate", version: "v2" };
        assert.deepStrictEqual(parseAgentMessage(formatAgentMessage(result)), result);
        assert.strictEqual(parseAgentMessage("deploy worker pid 42 (log /x/y.log)"), undefined);
        assert.strictEqual(parseAgentMessage('{"other":"worker"}'), undefined);
        assert.strictEqual(parseAgentMessage(formatAgentMessage({ ...worker, worker: "../../etc/passwd" })), undefined, "only a plain name");
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
