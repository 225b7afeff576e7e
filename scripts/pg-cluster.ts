// A throwaway PostgreSQL cluster (check-migrations, the integration tests): a temp dir, a Unix socket only (no TCP), trust auth.
// PostgreSQL refuses to run as root: as root, the server runs as `postgres` (and tests connect as it).
import { execFileSync, spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { isRoot, lookupUser } from "../agent/common/run-command";

export const PYTHON = "/usr/bin/python3";

export const PG_BIN = (() => {
    try {
        const versions = fs.readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a));
        return versions.map((v) => `/usr/lib/postgresql/${v}/bin`).find((d) => fs.existsSync(`${d}/initdb`));
    } catch {
        return undefined;
    }
})();

/** Why the Django + PostgreSQL tests cannot run here, or undefined. */
export function djangoPostgresMissing(): string | undefined {
    if (!PG_BIN) return "no PostgreSQL server binaries (apt-get install postgresql)";
    if (spawnSync(PYTHON, ["-c", "import django, psycopg2, gunicorn"]).status !== 0)
        return `${PYTHON} cannot import django, psycopg2 and gunicorn (apt-get install python3-django python3-psycopg2 gunicorn)`;
    if (isRoot() && !lookupUser("postgres")) return "no postgres user";
    return undefined;
}

export class PgCluster {
    readonly sock: string;
    private constructor(
        readonly root: string,
        readonly dataDir: string,
    ) {
        this.sock = path.join(root, "sock");
    }

    /** The role the tests (and the app) connect as. */
    static get dbUser(): string {
        return isRoot() ? "postgres" : os.userInfo().username;
    }

    /** [file, args] running as the database's owner. */
    static asDbUser(file: string, args: string[]): [string, string[]] {
        return isRoot() ? ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", file, ...args]] : [file, args];
    }

    static start(root: string): PgCluster {
        const c = new PgCluster(root, path.join(root, "pg"));
        fs.mkdirSync(c.sock, { recursive: true });
        if (isRoot()) execFileSync("chown", ["postgres:", root, c.sock]);
        c.run(`${PG_BIN}/initdb`, ["-D", c.dataDir, "--auth-local=trust", "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8"]);
        c.run(`${PG_BIN}/pg_ctl`, [
            "-D",
            c.dataDir,
            "-l",
            path.join(root, "pg.log"),
            "-w",
            "-o",
            `-c listen_addresses='' -c unix_socket_directories='${c.sock}'`,
            "start",
        ]);
        return c;
    }

    run(file: string, args: string[]): string {
        const [f, a] = PgCluster.asDbUser(file, args);
        return execFileSync(f, a, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
    }

    createdb(name: string): void {
        this.run(`${PG_BIN}/createdb`, ["-h", this.sock, name]);
    }

    sql(db: string, query: string): string {
        return this.run(`${PG_BIN}/psql`, ["-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", this.sock, "-d", db, "-c", query]).trim();
    }

    /** argv of a psql session on db, for a test that holds a lock from another connection. */
    psqlArgv(db: string): [string, string[]] {
        return PgCluster.asDbUser(`${PG_BIN}/psql`, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", this.sock, "-d", db]);
    }

    stop(): void {
        if (!fs.existsSync(path.join(this.dataDir, "postmaster.pid"))) return;
        const [f, a] = PgCluster.asDbUser(`${PG_BIN}/pg_ctl`, ["-D", this.dataDir, "-m", "fast", "-w", "stop"]);
        spawnSync(f, a, { stdio: "pipe" });
    }
}
