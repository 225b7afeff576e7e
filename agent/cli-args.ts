// A small argv parser: the agent must run on a bare Node 18 with no npm install, and
// util.parseArgs only exists from 18.3.
import { UsageError } from "./errors";

export interface ParsedArgs {
    command: string | undefined;
    positionals: string[];
    flags: Map<string, string | true>;
}

/** Flags that never take a value. */
const BOOLEAN_FLAGS = new Set(["json", "keep-warm", "no-keep-warm", "check-only", "help"]);

export function parseArgs(argv: readonly string[]): ParsedArgs {
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
            if (name === "") throw new UsageError(`bad option "${arg}"`);
            if (eq > 0) {
                flags.set(name, arg.slice(eq + 1));
            } else if (BOOLEAN_FLAGS.has(name)) {
                flags.set(name, true);
            } else {
                const value = argv[i + 1];
                if (value === undefined || value.startsWith("--")) throw new UsageError(`option --${name} needs a value`);
                flags.set(name, value);
                i++;
            }
        } else {
            positionals.push(arg);
        }
    }
    return { command: positionals.shift(), positionals, flags };
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
    const v = args.flags.get(name);
    if (v === true) throw new UsageError(`option --${name} needs a value`);
    return v;
}

export function boolFlag(args: ParsedArgs, name: string): boolean {
    const v = args.flags.get(name);
    if (v === undefined) return false;
    if (v === true || v === "true" || v === "1" || v === "yes") return true;
    if (v === "false" || v === "0" || v === "no") return false;
    throw new UsageError(`option --${name} is a switch, not "${v}"`);
}

export function numberFlag(args: ParsedArgs, name: string): number | undefined {
    const v = stringFlag(args, name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new UsageError(`option --${name} must be a number, not "${v}"`);
    return n;
}

/** Rejects options the command does not know, so a typo never silently falls back to a default. */
export function checkFlags(args: ParsedArgs, allowed: readonly string[]): void {
    const known = new Set([...allowed, "config", "json", "help"]);
    for (const name of args.flags.keys()) {
        if (!known.has(name)) throw new UsageError(`unknown option --${name} for ${args.command}`);
    }
}
