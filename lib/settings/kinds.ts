// What kind of value a setting holds, with its unit and bounds: one description that the config
// schema (program/config-schema.ts), the agent's flags (lib/contract/), Pulumi.yaml and the
// README's table are all derived from. Parsing here is the agent's (text from a command line);
// the program's schema adds Pulumi's own decoding on top. No npm dependency: the agent bundles it.
import { parseDuration, parseShiftPlan, ShiftStep, formatShiftPlan } from "../shift-plan";

/** A check a text value must pass, with the reason that follows the key when it does not. */
export interface TextCheck {
    test(value: string): boolean;
    message: string;
}

/** Seconds; written as 30s, 2m, 1h, 500ms or a plain number of seconds. */
export interface DurationKind {
    kind: "duration";
    min: number;
    max: number;
    /** The bounds as the error names them ("between 1s and 1h"). */
    range: string;
}
/** A plain number (0.01, 3); `offAtZero`: 0 is allowed below `min` and turns the gate off. */
export interface RatioKind {
    kind: "ratio";
    min: number;
    max: number;
    offAtZero?: boolean;
}
/** A whole number; `unit` names what it counts (requests, MiB, GiB, releases). */
export interface CountKind {
    kind: "count";
    min: number;
    max: number;
    unit?: string;
    /** Why the lower bound (the reason a too-small value gets). */
    minReason?: string;
}
export interface SwitchKind {
    kind: "switch";
}
/** A TCP port, 1-65535. */
export interface PortKind {
    kind: "port";
}
/** An absolute URL path (HTTP_PATH_PATTERN). */
export interface PathKind {
    kind: "path";
}
export interface TextKind {
    kind: "text";
    pattern?: RegExp;
    /** What `pattern` demands, phrased after "must ...". */
    rule?: string;
    maxLength?: number;
    minLength?: number;
    /** No newline, carriage return or NUL. */
    singleLine?: boolean;
    /** Compared lowercase (DNS names). */
    lowercase?: boolean;
    checks?: readonly TextCheck[];
    /** A check whose reason depends on the value (a parser's own message). */
    problem?: (value: string) => string | undefined;
}
export interface ChoiceKind<V extends string = string> {
    kind: "choice";
    values: readonly V[];
}
export interface ListKind {
    kind: "list";
    item: TextKind | PathKind;
    max: number;
    min?: number;
}
/** The shift plan: PERCENT[:PAUSE] steps. */
export interface PlanKind {
    kind: "plan";
}
/** KEY=value lines (the app environment). */
export interface EnvKind {
    kind: "env";
}

export type SettingKind = DurationKind | RatioKind | CountKind | SwitchKind | PortKind | PathKind | TextKind | ChoiceKind | ListKind | PlanKind | EnvKind;

/** The value a kind holds once parsed. */
export type KindValue<K> = K extends DurationKind | RatioKind | CountKind | PortKind
    ? number
    : K extends SwitchKind
      ? boolean
      : K extends ListKind
        ? string[]
        : K extends PlanKind
          ? ShiftStep[]
          : K extends ChoiceKind<infer V>
            ? V
            : K extends EnvKind
              ? Record<string, string>
              : string;

export const duration = (min: number, max: number, range: string): DurationKind => ({ kind: "duration", min, max, range });
export const ratio = (min: number, max: number, opts: { offAtZero?: boolean } = {}): RatioKind => ({ kind: "ratio", min, max, ...opts });
export const count = (min: number, max: number, opts: { unit?: string; minReason?: string } = {}): CountKind => ({ kind: "count", min, max, ...opts });
export const switchKind: SwitchKind = { kind: "switch" };
export const port: PortKind = { kind: "port" };
export const urlPath: PathKind = { kind: "path" };
export const text = (opts: Omit<TextKind, "kind"> = {}): TextKind => ({ kind: "text", ...opts });
export const choice = <V extends string>(...values: V[]): ChoiceKind<V> => ({ kind: "choice", values });
export const list = (item: TextKind | PathKind, max: number, min?: number): ListKind => ({ kind: "list", item, max, ...(min ? { min } : {}) });
export const plan: PlanKind = { kind: "plan" };
export const envLines: EnvKind = { kind: "env" };

/**
 * A request path with an optional query, as HAProxy's `http-check send uri` reads it unquoted: no
 * quote (HAProxy's quoting), space or tab (a word break), '#' (a comment), '\\' (an escape), '$'
 * (variable expansion) or control character, and '%' only as a %XX escape.
 */
const HTTP_PATH_PATTERN = /^\/(?:[A-Za-z0-9._~!&()*+,;=:@/?-]|%[0-9A-Fa-f]{2})*$/;
const HTTP_PATH_RULE = "letters, digits, - . _ ~ / ? & = + , ; : @ ! * ( ) and %XX escapes (no quotes, spaces, '#', '$', '\\' or control characters)";

/** Why a text value does not fit its kind, or undefined. */
export function textProblem(k: TextKind | PathKind, value: string): string | undefined {
    if (k.kind === "path") return HTTP_PATH_PATTERN.test(value) ? undefined : `must be an absolute URL path such as /healthz, of ${HTTP_PATH_RULE}`;
    if (k.minLength !== undefined && value.length < k.minLength) return k.minLength <= 1 ? "must not be empty" : `must be at least ${k.minLength} characters`;
    if (k.maxLength !== undefined && value.length > k.maxLength) return `must be at most ${k.maxLength} characters`;
    if (k.singleLine && /[\n\r\0]/.test(value)) return "must be a single line";
    const v = k.lowercase ? value.toLowerCase() : value;
    if (k.pattern && !k.pattern.test(v)) return `must ${k.rule ?? `match ${k.pattern}`}`;
    for (const c of k.checks ?? []) if (!c.test(v)) return c.message;
    return k.problem?.(v);
}

/** A plain decimal number: "0.01", "3", "1e-3"; never "", " ", "0x1" or "Infinity". */
const PLAIN_NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/** Parses a number written as text (a flag, a Pulumi string), strictly. */
export function strictNumber(textValue: string): number | undefined {
    return PLAIN_NUMBER.test(textValue) ? Number(textValue) : undefined;
}

/** Why a number does not fit a ratio/count/duration/port kind, or undefined. */
export function numberProblem(k: DurationKind | RatioKind | CountKind | PortKind, n: number): string | undefined {
    switch (k.kind) {
        case "duration":
            return n < k.min || n > k.max ? `must be ${k.range}` : undefined;
        case "ratio":
            if (k.offAtZero && n === 0) return undefined;
            if (n < k.min || n > k.max) return k.offAtZero ? `must be 0 (off) or between ${k.min} and ${k.max}` : `must be between ${k.min} and ${k.max}`;
            return undefined;
        case "count":
            if (!Number.isInteger(n)) return "must be a whole number";
            if (n < k.min) return k.minReason ?? `must be at least ${k.min}`;
            return n > k.max ? `must be at most ${k.max}` : undefined;
        case "port":
            if (!Number.isInteger(n)) return "must be a whole number";
            if (n < 1) return "must be at least 1";
            return n > 65535 ? "must be at most 65535" : undefined;
    }
}

/** A value of `kind` from its text form (a command-line flag); throws an Error whose message follows the flag's name. */
export function parseKindText(k: SettingKind, raw: string): unknown {
    switch (k.kind) {
        case "duration": {
            const s = parseDuration(raw);
            const problem = numberProblem(k, s);
            if (problem) throw new Error(problem);
            return s;
        }
        case "ratio":
        case "count":
        case "port": {
            const n = strictNumber(raw.trim());
            if (n === undefined) throw new Error(k.kind === "ratio" ? `must be a number, not "${raw}"` : `must be a whole number, not "${raw}"`);
            const problem = numberProblem(k, n);
            if (problem) throw new Error(problem);
            return n;
        }
        case "switch":
            if (raw === "true" || raw === "1" || raw === "yes") return true;
            if (raw === "false" || raw === "0" || raw === "no") return false;
            throw new Error(`is a switch, not "${raw}"`);
        case "path":
        case "text": {
            const problem = textProblem(k, raw);
            if (problem) throw new Error(problem);
            return raw;
        }
        case "choice":
            if (!(k.values as readonly string[]).includes(raw)) throw new Error(`must be one of ${k.values.map((v) => JSON.stringify(v)).join(", ")}`);
            return raw;
        case "list": {
            const items = raw.split(",").filter((s) => s !== "");
            if (items.length > k.max) throw new Error(`must have at most ${k.max} item(s)`);
            items.forEach((item, i) => {
                const problem = textProblem(k.item, item);
                if (problem) throw new Error(`item ${i + 1} ${problem}`);
            });
            return items;
        }
        case "plan":
            return parseShiftPlan(raw);
        case "env":
            throw new Error("is never passed on a command line");
    }
}

/** The text form of a value (the inverse of parseKindText). */
export function formatKindText(k: SettingKind, value: unknown): string {
    switch (k.kind) {
        case "list":
            return (value as string[]).join(",");
        case "plan":
            return formatShiftPlan(value as ShiftStep[]);
        case "switch":
            return value ? "true" : "false";
        default:
            return String(value);
    }
}

/** A default as a person writes it in stack config (Pulumi.yaml, the README): 60s, "0.01", ["/"]. */
export function formatKindDefault(k: SettingKind, value: unknown): unknown {
    switch (k.kind) {
        case "duration":
            return `${value}s`;
        case "ratio":
            return String(value);
        case "plan":
            return (value as ShiftStep[]).map((s) => (s.pauseSeconds ? `${s.percent}%:${s.pauseSeconds}s` : `${s.percent}%`));
        case "env":
            return "";
        default:
            return value;
    }
}

/** Pulumi's project config type of a kind: Pulumi.yaml knows only these four. */
export type PulumiConfigType = "string" | "integer" | "boolean" | "array";

export function pulumiConfigType(k: SettingKind): PulumiConfigType {
    switch (k.kind) {
        case "count":
        case "port":
            return "integer";
        case "switch":
            return "boolean";
        case "list":
        case "plan":
            return "array";
        default:
            return "string";
    }
}

/** The kind with its unit, as the README's table names it. */
export function describeKind(k: SettingKind): string {
    switch (k.kind) {
        case "duration":
            return `duration (${k.range})`;
        case "ratio":
            return k.offAtZero ? `ratio (0: off, or ${k.min}..${k.max})` : `ratio (${k.min}..${k.max})`;
        case "count":
            return `count${k.unit ? ` of ${k.unit}` : ""} (${k.min}..${k.max})`;
        case "switch":
            return "switch";
        case "port":
            return "port";
        case "path":
            return "URL path";
        case "text":
            return "text";
        case "choice":
            return k.values.map((v) => `\`${v}\``).join(" \\| ");
        case "list":
            return k.item.kind === "path" ? "list of URL paths" : "list";
        case "plan":
            return "shift plan";
        case "env":
            return "KEY=value lines";
    }
}
