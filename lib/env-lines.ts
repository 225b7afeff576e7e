// The app environment in its two text forms:
// - stack config / the agent's stdin: KEY=value lines, the value taken literally after the first '=';
// - the env file systemd reads (EnvironmentFile=): KEY="value" with \ " ` $ escaped, so systemd's
//   own unquoting gives back exactly the literal value.
// Parse errors name the line number only: the line may hold a secret.

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function parseLines(text: string, unquote: (v: string) => string): Map<string, string> {
    const env = new Map<string, string>();
    text.split("\n").forEach((line, i) => {
        const trimmed = line.replace(/\r$/, "").trim();
        if (trimmed === "" || trimmed.startsWith("#")) return;
        const eq = trimmed.indexOf("=");
        const name = eq > 0 ? trimmed.slice(0, eq) : "";
        if (!ENV_NAME.test(name)) throw new Error(`line ${i + 1} is not KEY=value with KEY of letters, digits and '_'`);
        const value = trimmed.slice(eq + 1);
        if (value.includes("\0")) throw new Error(`line ${i + 1} holds a NUL byte`);
        env.set(name, unquote(value));
    });
    return env;
}

/** KEY=value lines, values literal. */
export function parseEnvLines(text: string): Map<string, string> {
    return parseLines(text, (v) => v);
}

/** The inverse of parseEnvLines. */
export function formatEnvLines(env: Map<string, string> | Record<string, string>): string {
    const entries = env instanceof Map ? [...env] : Object.entries(env);
    return entries.map(([k, v]) => `${k}=${v}\n`).join("");
}

/** An env file for systemd's EnvironmentFile=: every value double-quoted and escaped. */
export function formatSystemdEnvFile(env: Map<string, string>): string {
    return [...env].map(([k, v]) => `${k}="${v.replace(/[\\"`$]/g, "\\$&")}"\n`).join("");
}

/** Reads what formatSystemdEnvFile wrote (and plain unquoted lines). */
export function parseSystemdEnvFile(text: string): Map<string, string> {
    return parseLines(text, (v) => {
        const m = /^"(.*)"$/.exec(v);
        if (m) return m[1].replace(/\\([\\"`$])/g, "$1");
        const s = /^'(.*)'$/.exec(v);
        return s ? s[1] : v;
    });
}
