// A throwaway PostgreSQL cluster for the example app, as examples/django-app/check-local.sh makes
// one: a data dir under a temp dir, a Unix socket there and no TCP listener, peer authentication.
// PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user and the app
// user gets a role of its own name (peer auth maps the OS user to it) owning the database.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export interface Postgres {
    socketDir: string;
    database: string;
    /** The database dropped (with any connection still open to it) and created again, empty. */
    reset(): void;
    stop(): void;
}

export function pgBin(): string {
    const base = "/usr/lib/postgresql";
    const versions = fs.existsSync(base) ? fs.readdirSync(base).filter((v) => fs.existsSync(path.join(base, v, "bin", "initdb"))) : [];
    versions.sort((a, b) => Number(a) - Number(b));
    if (!versions.length) throw new Error("no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)");
    return path.join(base, versions[versions.length - 1], "bin");
}

function userIds(name: string): { uid: number; gid: number } {
    for (const line of fs.readFileSync("/etc/passwd", "utf8").split("\n")) {
        const f = line.split(":");
        if (f[0] === name) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
    throw new Error(`no user ${name}`);
}

/** Starts a cluster under `dir` with database `database` owned by `appUser`. */
export function startPostgres(dir: string, database: string, appUser: string): Postgres {
    const bin = pgBin();
    const root = process.getuid?.() === 0;
    const server = root ? "postgres" : os.userInfo().username;
    const data = path.join(dir, "pg-data");
    const socketDir = path.join(dir, "pg-sock");
    fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
    for (const d of [dir, data, socketDir]) {
        if (!fs.existsSync(d)) fs.mkdirSync(d, { mode: d === data ? 0o700 : 0o755 });
        if (root) {
            const ids = userIds(server);
            fs.chownSync(d, ids.uid, ids.gid);
        }
    }
    const run = (exe: string, args: string[]) => {
        // setpriv execs in place: the server's pid is the one pg_ctl records, nothing in between.
        const argv = root
            ? ["setpriv", `--reuid=${server}`, `--regid=${server}`, "--init-groups", "--", path.join(bin, exe), ...args]
            : [path.join(bin, exe), ...args];
        return execFileSync(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], cwd: dir, encoding: "utf8" });
    };
    run("initdb", ["-D", data, "--auth-local=peer", "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8"]);
    // fsync off: the data is thrown away, and the disk is shared with whatever else runs here.
    run("pg_ctl", [
        "-D",
        data,
        "-l",
        path.join(dir, "pg.log"),
        "-w",
        "-o",
        `-c listen_addresses='' -c unix_socket_directories='${socketDir}' -c fsync=off`,
        "start",
    ]);
    let stopped = false;
    const stop = () => {
        if (stopped) return;
        stopped = true;
        try {
            run("pg_ctl", ["-D", data, "-m", "fast", "-w", "stop"]);
        } catch {
            // Already gone; the temp dir goes with the stack.
        }
    };
    const create = () => run("createdb", ["-h", socketDir, "-O", appUser, database]);
    try {
        if (appUser !== server) run("createuser", ["-h", socketDir, appUser]);
        create();
    } catch (e) {
        stop();
        throw e;
    }
    const reset = () => {
        run("dropdb", ["-h", socketDir, "--force", database]);
        create();
    };
    return { socketDir, database, reset, stop };
}
