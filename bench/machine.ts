// The machine a run was measured on, for the JSON: cores, memory, kernel, the versions of the parts.
import { execFileSync } from "child_process";
import * as os from "os";
import * as path from "path";

function tool(cmd: string, args: string[]): string {
    try {
        return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
            .trim()
            .split("\n")[0];
    } catch (e) {
        return `unknown (${(e as Error).message.split("\n")[0]})`;
    }
}

export function machine(python: string, pgBin: string): Record<string, unknown> & { cpus: number } {
    return {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model,
        memGiB: Math.round(os.totalmem() / 2 ** 30),
        kernel: os.release(),
        node: process.version,
        haproxy: tool("haproxy", ["-v"]),
        nginx: execFileSync("sh", ["-c", "nginx -v 2>&1"], { encoding: "utf8" }).trim(),
        python: tool(python, [
            "-c",
            "import sys, django, gunicorn, psycopg2; print(sys.version.split()[0], 'django', django.get_version(), 'gunicorn', gunicorn.__version__, 'psycopg2', psycopg2.__version__.split()[0])",
        ]),
        postgres: tool(path.join(pgBin, "postgres"), ["--version"]),
        openssh: tool("sh", ["-c", "/usr/sbin/sshd -V 2>&1 || true"]),
    };
}
