// KEY=value lines (dotenv style), as the stack's appEnv and as systemd's EnvironmentFile= read them.
// Parse errors name the line number only: the line may hold a secret.

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function parseEnvLines(text: string): Map<string, string> {
    const env = new Map<string, string>();
    text.split("\n").forEach((line, i) => {
        const trimmed = line.replace(/\r$/, "").trim();
        if (trimmed === "" || trimmed.startsWith("#")) return;
        const eq = trimmed.indexOf("=");
        const name = eq > 0 ? trimmed.slice(0, eq) : "";
        if (!ENV_NAME.test(name)) throw new Error(`line ${i + 1} is not KEY=value with KEY of letters, digits and '_'`);
        const value = trimmed.slice(eq + 1);
        if (/[\0]/.test(value)) throw new Error(`line ${i + 1} holds a NUL byte`);
        env.set(name, value);
    });
    return env;
}

export function formatEnvLines(env: Map<string, string>): string {
    return [...env].map(([k, v]) => `${k}=${v}\n`).join("");
}
