// npm run bench [-- --runs N | --quick] [--rate R] [--connections C] [--methods 1,2,3,4] [--out DIR]
//
// Four ways of deploying the example Django app from v1 to v2 on one host, each under the same
// constant load through NGINX, each rolled back to v1 by its own means, each repeated: a table of
// failed requests, latency, deploy and rollback time; raw figures as JSON; a per-second picture.
// The stack is the integration tests' (real HAProxy + NGINX from the project's templates, the agent
// as on a host, processes started directly: no systemd), with the real app (gunicorn) on a
// throwaway PostgreSQL. Figures only: the assertions live in the test suites.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { Stack, StackApp } from "../test/integration/harness";
import { startLoad } from "../test/integration/load";
import { analyzeRun, RunFigures, RunMarks, spread, Spread } from "./analyze";
import { renderChart } from "./chart";
import { gatedShift, GATES, haproxyReload, Method, MethodContext, restartInPlace, sleep, stopAll, stopStart, waitServedBy } from "./methods";
import { pgBin, Postgres, startPostgres } from "./postgres";
import { markdownTable, textTable } from "./table";

const REPO = path.resolve(__dirname, "..");
const APP_CTL = path.join(__dirname, "app-ctl.cjs");
const PYTHON = "/usr/bin/python3";
const WARMUP_MS = 2000;
const STEADY_MS = 5000;
/** After the deploy (and the rollback) ends: late failures still count to its window. */
const TAIL_MS = 3000;
/** Method 3 keeps both servers in the config this long (the gated shift holds 3 s + 3 s). */
const HOLD_MS = 3000;

interface Options {
    runs: number;
    rate: number;
    connections: number;
    postEvery: number;
    methods: string[];
    out: string;
    plan: string;
}

export interface RunResult {
    run: number;
    error?: string;
    figures?: RunFigures;
}

export interface MethodResult {
    id: string;
    title: string;
    runs: RunResult[];
}

function usage(message?: string): never {
    if (message) console.error(`bench: ${message}`);
    console.error(
        "usage: npm run bench -- [--runs N | --quick] [--rate R] [--connections C] [--post-every N] [--methods 1,2,3,4] [--plan 10%:3s,50%:3s,100%] [--out DIR]",
    );
    process.exit(2);
}

function parseArgs(argv: string[]): Options {
    const o: Options = {
        runs: 3,
        rate: 100,
        connections: 20,
        postEvery: 5,
        methods: ["1", "2", "3", "4"],
        out: path.join(REPO, "docs", "bench"),
        plan: "10%:3s,50%:3s,100%",
    };
    const int = (v: string | undefined, name: string, min: number) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < min) usage(`${name} needs an integer >= ${min}`);
        return n;
    };
    for (let i = 0; i < argv.length; i++) {
        const a = argv[i];
        const next = () => argv[++i];
        if (a === "--quick") o.runs = 1;
        else if (a === "--runs") o.runs = int(next(), a, 1);
        else if (a === "--rate") o.rate = int(next(), a, 1);
        else if (a === "--connections") o.connections = int(next(), a, 1);
        else if (a === "--post-every") o.postEvery = int(next(), a, 0);
        else if (a === "--methods") o.methods = (next() ?? "").split(",").filter(Boolean);
        else if (a === "--plan") o.plan = next() ?? usage("--plan needs a value");
        else if (a === "--out") o.out = path.resolve(next() ?? usage("--out needs a directory"));
        else if (a === "--help" || a === "-h") usage();
        else usage(`unknown argument ${a}`);
    }
    if (o.methods.some((m) => !["1", "2", "3", "4"].includes(m))) usage("--methods takes numbers 1-4");
    return o;
}

function tool(cmd: string, args: string[]): string {
    try {
        return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] })
            .trim()
            .split("\n")[0];
    } catch (e) {
        return `unknown (${(e as Error).message.split("\n")[0]})`;
    }
}

function machine(): Record<string, unknown> {
    return {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model,
        memGiB: Math.round(os.totalmem() / 2 ** 30),
        kernel: os.release(),
        node: process.version,
        haproxy: tool("haproxy", ["-v"]),
        nginx: execFileSync("sh", ["-c", "nginx -v 2>&1"], { encoding: "utf8" }).trim(),
        python: tool(PYTHON, [
            "-c",
            "import sys, django, gunicorn, psycopg2; print(sys.version.split()[0], 'django', django.get_version(), 'gunicorn', gunicorn.__version__, 'psycopg2', psycopg2.__version__.split()[0])",
        ]),
        postgres: tool(path.join(pgBin(), "postgres"), ["--version"]),
    };
}

const round1 = (n: number) => Math.round(n * 10) / 10;

const lat = (w: { p50: number; p99: number; max: number }) => [w.p50, w.p99, w.max].map((n) => Math.round(n)).join("/");

function describeRun(f: RunFigures): string {
    const by = Object.entries(f.deploy.failedBy)
        .map(([k, n]) => `${k}×${n}`)
        .join(" ");
    return (
        `${f.deploy.requests} requests, ${f.deploy.failed} failed${by ? ` (${by})` : ""} in the deploy window; ` +
        `deploy ${round1(f.deployS)} s; rollback ${round1(f.rollbackS)} s (${f.rollback.failed} failed of ${f.rollback.requests}); ` +
        `latency p50/p99/max steady ${lat(f.steady)} ms, deploy ${lat(f.deploy)} ms`
    );
}

async function main(): Promise<void> {
    const opts = parseArgs(process.argv.slice(2));
    const started = Date.now();
    const log = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}`);
    if (!fs.existsSync(path.join(REPO, "dist", "agent.js"))) usage("dist/agent.js is missing; npm run build:agent (npm run bench does)");

    const root = process.getuid?.() === 0;
    // As root the app runs as an unprivileged user with a PostgreSQL role of its own (peer auth);
    // otherwise everything runs as the invoking user.
    const appUser = root ? "nobody" : os.userInfo().username;
    const app: StackApp = {
        startCommand: `${PYTHON} -m gunicorn --bind 127.0.0.1:$PORT --workers 2 --graceful-timeout 25 mysite.wsgi`,
        healthPath: "/healthz",
        smokePaths: ["/", "/healthz"],
        buildCommand: `${PYTHON} manage.py migrate --noinput`,
        checkCommand: `${PYTHON} manage.py check --deploy --fail-level ERROR`,
        versionHeader: "X-Release-Version",
        control: (appRoot, runDir) => {
            const ctl = (cmd: string) => `${process.execPath} ${APP_CTL} ${cmd} {slot} ${appRoot} ${runDir}${root ? ` ${appUser}` : ""}`;
            return { start: ctl("start"), stop: ctl("stop") };
        },
    };
    const stack = new Stack({ appName: "nobody", keepPreviousWarm: true, app });
    let pg: Postgres | undefined;
    let ctx: MethodContext | undefined;
    let cleaned = false;
    const cleanup = async () => {
        if (cleaned) return;
        cleaned = true;
        if (ctx) await stopAll(ctx).catch(() => undefined);
        pg?.stop();
        await stack.stop();
    };
    process.once("SIGINT", () => {
        console.error("bench: interrupted; stopping what it started");
        void cleanup().finally(() => process.exit(130));
    });

    try {
        log(`building the example releases`);
        const releases = path.join(stack.root, "example-releases");
        execFileSync("bash", [path.join(REPO, "scripts", "build-example-releases.sh"), releases], { stdio: ["ignore", "pipe", "inherit"] });
        log(`starting HAProxy and NGINX from the project's templates, and a throwaway PostgreSQL`);
        await stack.start();
        pg = startPostgres(path.join(stack.root, "pg"), "shop", appUser);
        const appEnv: Record<string, string> = {
            SECRET_KEY: crypto.randomBytes(32).toString("hex"),
            DATABASE_HOST: pg.socketDir,
            DATABASE_NAME: pg.database,
        };
        const env = await stack.agent(
            ["write-env"],
            Object.entries(appEnv)
                .map(([k, v]) => `${k}=${v}\n`)
                .join(""),
        );
        if (env.code !== 0) throw new Error(`write-env: ${env.stderr}`);
        for (const v of ["v1", "v2"]) {
            // Unpacked, migrated (as the app user) and static merged once; no method's deploy includes it.
            const run = await stack.agent(["prepare", "--version", v, "--source", path.join(releases, `${v}.tar.gz`)]);
            if (run.code !== 0) throw new Error(`prepare ${v}: ${run.stdout}\n${run.stderr}`);
        }
        ctx = { stack, appUser, appEnv, projectConfig: fs.readFileSync(stack.layout.haproxyConfigFile, "utf8"), plan: opts.plan, log };
        const all: Record<string, Method> = { "1": restartInPlace(ctx), "2": stopStart(ctx), "3": haproxyReload(ctx, HOLD_MS), "4": gatedShift(ctx) };
        const methods = opts.methods.map((m) => all[m]);
        const results: MethodResult[] = methods.map((m) => ({ id: m.id, title: m.title, runs: [] }));
        const raw: unknown[] = [];
        const machineStart = { ...machine(), loadavgStart: os.loadavg().map(round1) };
        log(
            `load: ${opts.rate} req/s through NGINX over ${opts.connections} keep-alive connections (every ${opts.postEvery}th a POST /api/notes); ${opts.runs} run(s) of each method, interleaved`,
        );

        // Rounds interleave the methods, so a noisy neighbour on this machine hits them alike.
        for (let r = 1; r <= opts.runs; r++) {
            for (const [i, method] of methods.entries()) {
                const label = `${method.title} — run ${r}/${opts.runs}`;
                log(label);
                const res: RunResult = { run: r };
                results[i].runs.push(res);
                const load = { current: undefined as ReturnType<typeof startLoad> | undefined };
                try {
                    await method.setup();
                    load.current = startLoad({
                        port: stack.ports.https,
                        host: stack.domain,
                        rate: opts.rate,
                        connections: opts.connections,
                        postEvery: opts.postEvery,
                        runId: `${method.id}-${r}-${Date.now()}`,
                        path: "/",
                        postPath: "/api/notes",
                        postBody: (id) => JSON.stringify({ text: id }),
                        versionHeader: app.versionHeader,
                    });
                    const m = {} as RunMarks;
                    await sleep(WARMUP_MS);
                    m.steadyStart = Date.now();
                    await sleep(STEADY_MS);
                    m.deployStart = Date.now();
                    await method.deploy();
                    await waitServedBy(ctx, "v2");
                    m.deployEnd = Date.now();
                    await sleep(TAIL_MS);
                    m.rollbackStart = Date.now();
                    await method.rollback();
                    await waitServedBy(ctx, "v1");
                    m.rollbackEnd = Date.now();
                    await sleep(TAIL_MS);
                    m.end = Date.now();
                    const report = await load.current.stop();
                    load.current = undefined;
                    res.figures = analyzeRun(report.records, report.errorRecords, m, TAIL_MS);
                    raw.push({ method: method.id, run: r, marks: m, records: report.records, errorRecords: report.errorRecords });
                    log(`  ${describeRun(res.figures)}`);
                } catch (e) {
                    res.error = (e as Error).message;
                    log(`  run failed: ${res.error}`);
                    await load.current?.stop().catch(() => undefined);
                } finally {
                    await method.teardown().catch((e) => log(`  teardown: ${(e as Error).message}`));
                    await stopAll(ctx);
                }
            }
        }

        const table = textTable(results);
        console.log(
            `\nDeploy v1 -> v2 and roll back, ${opts.rate} req/s through NGINX; median [min–max] over runs; the deploy window is its start to its end + ${TAIL_MS / 1000} s\n`,
        );
        console.log(table);
        const md = markdownTable(results);
        console.log(`\n${md}\n`);

        fs.mkdirSync(opts.out, { recursive: true });
        const summary = (runs: RunResult[]) => {
            const f = runs.filter((x) => x.figures).map((x) => x.figures!);
            const s = (pick: (x: RunFigures) => number): Spread => spread(f.map(pick));
            return {
                requests: s((x) => x.deploy.requests),
                failed: s((x) => x.deploy.failed),
                failedPosts: s((x) => x.deploy.failedPosts),
                p50: { steady: s((x) => x.steady.p50), deploy: s((x) => x.deploy.p50) },
                p99: { steady: s((x) => x.steady.p99), deploy: s((x) => x.deploy.p99) },
                max: { steady: s((x) => x.steady.max), deploy: s((x) => x.deploy.max) },
                deployS: s((x) => x.deployS),
                rollbackS: s((x) => x.rollbackS),
                rollbackFailed: s((x) => x.rollback.failed),
                rollbackRequests: s((x) => x.rollback.requests),
            };
        };
        const json = {
            generated: new Date().toISOString(),
            durationS: Math.round((Date.now() - started) / 1000),
            machine: { ...machineStart, loadavgEnd: os.loadavg().map(round1) },
            settings: {
                runs: opts.runs,
                rate: opts.rate,
                connections: opts.connections,
                postEvery: opts.postEvery,
                warmupS: WARMUP_MS / 1000,
                steadyS: STEADY_MS / 1000,
                tailS: TAIL_MS / 1000,
                gatedShift: { plan: opts.plan, gates: GATES.join(" "), keepWarm: true },
                haproxyReloadHoldS: HOLD_MS / 1000,
                app: app.startCommand,
            },
            definitions: {
                requests: "requests sent in the deploy window (deploy start to deploy end + tail), by the time they were sent",
                failed: "non-2xx answers + requests without an answer (connection errors, timeouts)",
                latency: "ms from writing the request to the end of its answer, over every answer (any status)",
                steady: `the ${STEADY_MS / 1000} s before the deploy starts`,
                deployS: "from the deploy's first step until its steps are done and NGINX answers 200 from v2",
                rollbackS: "from the rollback's first step until its steps are done and NGINX answers 200 from v1",
                perSecond: "answers by the second they arrived, relative to the deploy start: ok = 2xx by release",
            },
            methods: results.map((m) => ({ ...m, summary: summary(m.runs) })),
            table: md,
        };
        fs.writeFileSync(path.join(opts.out, "results.json"), JSON.stringify(json, null, 1) + "\n");

        const panels = results
            .map((m) => {
                const ok = m.runs.filter((x) => x.figures);
                if (!ok.length) return undefined;
                // The run with the median failures stands for the method.
                const pick = [...ok].sort((a, b) => a.figures!.deploy.failed - b.figures!.deploy.failed)[Math.floor((ok.length - 1) / 2)];
                const f = pick.figures!;
                const failed = spread(ok.map((x) => x.figures!.deploy.failed));
                const range = ok.length > 1 ? `; all runs ${failed.min}–${failed.max}` : "";
                return {
                    title: m.title,
                    subtitle: `run ${pick.run} of ${m.runs.length}${ok.length > 1 ? " (median failures)" : ""}: ${f.deploy.failed} of ${f.deploy.requests} requests failed during the deploy (${round1(f.deployS)} s${range}), ${f.rollback.failed} of ${f.rollback.requests} during the rollback (${round1(f.rollbackS)} s)`,
                    run: f,
                };
            })
            .filter((p): p is NonNullable<typeof p> => !!p);
        const svg = renderChart(
            panels,
            "Deploy v1 → v2, then roll back to v1, under constant load",
            `${opts.rate} req/s through NGINX (every ${opts.postEvery}th a POST), example Django app on gunicorn + PostgreSQL, ${os.cpus().length} cores; x: seconds from the deploy start`,
        );
        fs.writeFileSync(path.join(opts.out, "deploys.svg"), svg);
        const rawDir = path.join(REPO, "bench", "out");
        fs.mkdirSync(rawDir, { recursive: true });
        fs.writeFileSync(path.join(rawDir, "records.json"), JSON.stringify(raw));
        log(
            `wrote ${path.relative(REPO, path.join(opts.out, "results.json"))}, ${path.relative(REPO, path.join(opts.out, "deploys.svg"))}; per-request records in bench/out/records.json`,
        );
        if (results.some((m) => m.runs.some((x) => x.error))) process.exitCode = 1;
    } finally {
        await cleanup();
    }
}

main().catch((e) => {
    console.error(`bench: ${(e as Error).stack ?? e}`);
    process.exit(1);
});
