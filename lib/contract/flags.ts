// Flags of the agent's command line: each one is a single declaration binding its name, its kind
// (how its value is parsed and written back), its default and its help. Setting-backed flags take
// all of that from the settings table, so a setting has one name and one unit from stack config
// to the agent (`maxStepExtension` is `--max-step-extension`, in seconds). The program formats a
// request with formatFlags, the agent reads it back with parseFlags; a unit test runs the round
// trip for every command. No npm dependency: the agent bundles this file.
import { formatKindText, KindValue, parseKindText, SettingKind, SwitchKind, switchKind } from "../settings/kinds";
import { groupRows, SettingGroup, SettingKey, SettingKindOf, settingRow, SettingsTable } from "../settings/table";

/** A bad agent command line; the agent exits 2 (usage) with this message. */
export class ArgsError extends Error {
    constructor(message: string) {
        super(message);
        this.name = "ArgsError";
    }
}

export interface FlagDef<F extends string = string, K extends SettingKind = SettingKind> {
    /** The request field it fills: a setting's key for setting-backed flags. */
    field: F;
    /** Without the leading "--". */
    name: string;
    kind: K;
    /** Placeholder of the value in the usage text; switches have none. */
    value?: string;
    help: string;
    /** What an absent flag means, for the usage text (the agent applies it where the request is resolved). */
    default?: string;
    /** The command fails without it. */
    required?: boolean;
    /** May be given as a plain word instead (`prepare v2 ...`), in declaration order. */
    positional?: boolean;
    /** A switch that also answers to `--no-<name>` (a setting's switch: either way may be meant). */
    negatable?: boolean;
}

/** "maxStepExtension" -> "max-step-extension". */
export function flagName(key: string): string {
    return key.replace(/([MG])iB/g, "$1ib").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function placeholder(kind: SettingKind): string | undefined {
    switch (kind.kind) {
        case "switch":
            return undefined;
        case "duration":
            return "DURATION";
        case "ratio":
            return "R";
        case "count":
        case "port":
            return "N";
        case "list":
            return "LIST";
        case "plan":
            return "PLAN";
        case "path":
            return "PATH";
        default:
            return "TEXT";
    }
}

/** One line of help from a setting's help (the table's text without its markdown). */
function plainHelp(help: string): string {
    return help.replace(/`/g, "");
}

/** A flag for a setting: its name, kind, default and help from the settings table. */
export function settingFlag<K extends SettingKey>(key: K, opts: { help?: string; default?: string } = {}): FlagDef<K, SettingKindOf<K>> {
    const row = settingRow(key);
    const defaultText = row.default === undefined ? undefined : formatKindText(row.kind, row.default);
    return {
        field: key,
        name: flagName(key),
        kind: row.kind as SettingKindOf<K>,
        value: placeholder(row.kind),
        help: opts.help ?? plainHelp(row.help),
        default: opts.default ?? defaultText,
        negatable: row.kind.kind === "switch",
    };
}

type CommandLineRow<G extends SettingGroup> =
    Extract<SettingsTable[number], { group: G; to: readonly unknown[] }> extends infer R
        ? R extends { key: infer K extends SettingKey; to: readonly (infer D)[] }
            ? "command line" extends D
                ? K
                : never
            : never
        : never;

/**
 * The flags of a group's settings bound for the command line, in table order: a setting added to
 * the group is a flag of every command that takes the group. `overrides` adjust a flag's help or
 * default text.
 */
export function groupFlags<G extends SettingGroup>(group: G, overrides: Partial<Record<SettingKey, { help?: string; default?: string }>> = {}) {
    return groupRows(group)
        .filter((r) => r.to.includes("command line"))
        .map((r) => settingFlag(r.key as SettingKey, overrides[r.key as SettingKey])) as {
        [K in CommandLineRow<G>]: FlagDef<K, SettingKindOf<K>>;
    }[CommandLineRow<G>][];
}

interface CommandFlagOptions {
    name?: string;
    value?: string;
    required?: boolean;
    positional?: boolean;
    default?: string;
}

/** A flag of a command alone (not a stack setting). */
export function commandFlag<F extends string, K extends SettingKind, const O extends CommandFlagOptions = Record<never, never>>(
    field: F,
    kind: K,
    help: string,
    opts?: O,
): FlagDef<F, K> & O {
    const o = (opts ?? {}) as O;
    return { field, name: o.name ?? flagName(field), kind, value: kind.kind === "switch" ? undefined : (o.value ?? placeholder(kind)), help, ...o };
}

/** A switch of a command alone: `--name` sets it. */
export function commandSwitch<F extends string>(field: F, help: string): FlagDef<F, SwitchKind> {
    return commandFlag(field, switchKind, help);
}

// --- the request type of a list of flags ---------------------------------------------------------

type FlagValue<F> = F extends { kind: infer K } ? KindValue<K> : never;
type RequiredField<F> = F extends { required: true } ? F : never;
type OptionalField<F> = F extends { required: true } ? never : F;

/** What a command's flags parse into: required fields present, the others optional. */
export type RequestOf<Flags extends readonly FlagDef[]> = { [F in Flags[number] as RequiredField<F> extends never ? never : F["field"]]: FlagValue<F> } & {
    [F in Flags[number] as OptionalField<F> extends never ? never : F["field"]]?: FlagValue<F>;
};

// --- tokens ----------------------------------------------------------------------------------------

/** Tokenized argv: the command, positional words and --flags (value, or true for a switch). */
export interface RawArgs {
    command: string | undefined;
    positionals: string[];
    flags: Map<string, string | true>;
}

/** Splits argv into command, positionals and flags; `switches` never take a value. */
export function tokenize(argv: readonly string[], switches: ReadonlySet<string>): RawArgs {
    const positionals: string[] = [];
    const flags = new Map<string, string | true>();
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        if (arg === "--") {
            positionals.push(...argv.slice(i + 1));
            break;
        }
        if (arg.startsWith("--")) {
            const eq = arg.indexOf("=");
            const name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
            if (name === "") throw new ArgsError(`bad option "${arg}"`);
            if (eq > 0) {
                flags.set(name, arg.slice(eq + 1));
            } else if (switches.has(name)) {
                flags.set(name, true);
            } else {
                const value = argv[i + 1];
                if (value === undefined || value.startsWith("--")) throw new ArgsError(`option --${name} needs a value`);
                flags.set(name, value);
                i++;
            }
        } else {
            positionals.push(arg);
        }
    }
    return { command: positionals.shift(), positionals, flags };
}

/** The names a switch answers to: `--x`, and `--no-x` for a setting's switch (it may be turned off). */
export function switchNames(flag: FlagDef): string[] {
    return flag.kind.kind !== "switch" ? [] : flag.negatable ? [flag.name, `no-${flag.name}`] : [flag.name];
}

/** A switch's value from the tokens: true, false (`--no-x`), or undefined when absent. */
function switchValue(args: RawArgs, flag: FlagDef): boolean | undefined {
    const [on, off] = switchNames(flag);
    const read = (name: string): boolean | undefined => {
        const v = args.flags.get(name);
        if (v === undefined) return undefined;
        if (v === true) return true;
        try {
            return parseKindText(switchKind, v) as boolean;
        } catch (e) {
            throw new ArgsError(`option --${name} ${(e as Error).message}`);
        }
    };
    const yes = read(on);
    const no = off ? read(off) : undefined;
    if (yes && no) throw new ArgsError(`--${on} and --${off} exclude each other`);
    if (yes !== undefined) return yes;
    return no === undefined ? undefined : !no;
}

/** Reads the flags of `defs` out of the tokens; rejects unknown flags and extra words. */
export function parseFlags<Flags extends readonly FlagDef[]>(command: string, defs: Flags, args: RawArgs, globalFlags: readonly FlagDef[]): RequestOf<Flags> {
    const known = new Set([...defs, ...globalFlags].flatMap((f) => (f.kind.kind === "switch" ? switchNames(f) : [f.name])));
    for (const name of args.flags.keys()) {
        if (!known.has(name)) throw new ArgsError(`unknown option --${name} for ${command}`);
    }
    const positionals = [...args.positionals];
    const request: Record<string, unknown> = {};
    for (const flag of defs) {
        if (flag.kind.kind === "switch") {
            const v = switchValue(args, flag);
            if (v !== undefined) request[flag.field] = v;
            continue;
        }
        const given = args.flags.get(flag.name);
        if (given === true) throw new ArgsError(`option --${flag.name} needs a value`);
        const raw = given ?? (flag.positional ? positionals.shift() : undefined);
        if (raw === undefined) {
            if (flag.required) throw new ArgsError(`missing --${flag.name} ${flag.value ?? ""}`.trimEnd());
            continue;
        }
        try {
            request[flag.field] = parseKindText(flag.kind, raw);
        } catch (e) {
            throw new ArgsError(`--${flag.name} ${JSON.stringify(raw)}: ${(e as Error).message}`);
        }
    }
    if (positionals.length > 0) throw new ArgsError(`unexpected argument "${positionals[0]}" for ${command}`);
    return request as RequestOf<Flags>;
}

/** The command line of a request: `--name value` per field that is set, in declaration order. */
export function formatFlags<Flags extends readonly FlagDef[]>(defs: Flags, request: RequestOf<Flags>): string[] {
    const out: string[] = [];
    const values = request as Record<string, unknown>;
    for (const flag of defs) {
        const v = values[flag.field];
        if (v === undefined) continue;
        if (flag.kind.kind === "switch") {
            const [on, off] = switchNames(flag);
            if (v) out.push(`--${on}`);
            else if (off) out.push(`--${off}`);
            continue;
        }
        out.push(`--${flag.name}`, formatKindText(flag.kind, v));
    }
    return out;
}

/** The usage lines of a flag: `--name VALUE: help (default ...)`. */
export function flagUsage(flag: FlagDef): string {
    const names =
        flag.kind.kind === "switch"
            ? switchNames(flag)
                  .map((n) => `--${n}`)
                  .join("|")
            : `--${flag.name} ${flag.value}`;
    return `${names}: ${flag.help}${flag.default !== undefined && flag.default !== "" ? ` (default ${flag.default})` : ""}`;
}
