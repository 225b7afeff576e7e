// npm run bench [-- --runs N | --quick] [--rate R] [--methods 1,2,3,4] ... (bench/options.ts)
//
// Four ways of deploying the example Django app from v1 to v2 on one host, compared under what
// users see: first the app's capacity is measured (the load stepped up until p99 or errors
// break), then every method deploys under a constant load at 70 % of it through NGINX — the whole
// deploy, from the new release's archive and migrations to the old release done with — and rolls
// back to v1 by its own means; repeated, interleaved. Figures per phase (steady, preparation,
// shift, drain): failed requests and p99 from the project's load generator, the same from vegeta
// for the same windows, which process had which priority and CPU. A table, raw figures as JSON,
// a per-second picture.
//
// The stack is the integration tests' (real HAProxy + NGINX from the project's templates, the
// agent as on a host, processes started directly: no systemd), with the real app (gunicorn) on a
// throwaway PostgreSQL and an sshd on loopback that the gated shift's deploy goes through.
// Figures only: the assertions live in the test suites.
import { execFileSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { resolveShiftOptions } from "../agent/deploy/shift-options";
import { slotPorts } from "../lib/host-layout";
import { parseShiftPlan } from "../lib/shift-plan";
import { Stack, StackApp } from "../dev/loopback/harness";
import { LoopbackSshd } from "../dev/loopback/sshd";
import { addSeconds, analyzeRun, PHASES, RunMarks } from "./analyze";
import { findCapacity, CapacityResult } from "./capacity";
import { renderChart } from "./chart";
import { startMix, MixOptions, PATHS, splitRate } from "./load-mix";
import { machine } from "./machine";
import { gatedShift, haproxyReload, Method, MethodContext, restartInPlace, sleep, stopAll, stopStart, waitServedBy } from "./methods";
import { parseArgs, usage } from "./options";
import { pgBin, Postgres, startPostgres } from "./postgres";
import { ProgramDriver, startProgramDriver } from "./program-driver";
import { ProgramTarget } from "./program-steps";
import { processFigures, startProbe } from "./process-probe";
import { MethodResult, RunResult, summary, Window, WINDOWS, worstRatio } from "./results";
import { capacityRows, CAPACITY_HEADERS, crossRows, CROSS_HEADERS, HEADERS, markdownTable, tableRows, textTable } from "./table";
import { findVegeta, VEGETA_MODULE, vegetaVersion } from "./vegeta";

const REPO = path.resolve(__dirname, "..");
const APP_CTL = path.join(__dirname, "app-ctl.cjs");
const PYTHON = "/usr/bin/python3";
const WARMUP_MS = 2000;
const STEADY_MS = 10000;
/** After the deploy (and the rollback) ends: late failures still count to its window. */
const TAIL_MS = 3000;
/** Method 3 keeps both servers in the config this long (the gated shift holds 3 s + 3 s). */
const HOLD_MS = 3000;
/** The targets the gated shift is measured against. */
const TARGET_RATIO = 1.5;

const round1 = (n: number) => Math.round(n * 10) / 10;
const lat = (w: { p99: number }) => Math.round(w.p99);

function describeRun(r: RunResult): string {
    const f = r.figures!;
    const by = Object.entries(f.deploy.failedBy)
        .map(([k, n]) => `${k}×${n}`)
        .join(" ");
    const cross = r.cross
        ? `; vegeta: ${r.cross.deploy.failed} failed of ${r.cross.deploy.requests}, p99 ${WINDOWS.map((w) => lat(w === "steady" ? r.cross!.steady : r.cross!.phases[w])).join("/")} ms`
        : "";
    return (
        `${f.deploy.requests} requests, ${f.deploy.failed} failed${by ? ` (${by})` : ""}; ` +
        `p99 steady/preparation/shift/drain ${WINDOWS.map((w) => lat(w === "steady" ? f.steady : f.phases[w])).join("/")} ms (worst ${round1(worstRatio(f))}x steady); ` +
        `phases ${PHASES.map((p) => round1(f.phaseS[p])).join("/")} s; rollback ${round1(f.rollbackS)} s (${f.rollback.failed} failed of ${f.rollback.requests})${cross}`
    );
}

/** The kinds of process that used the most CPU in a window, with their nice levels. */
function describeProcesses(p: Record<string, { nice: [number, number]; cpuS: number }>, top = 6): string {
    return Object.entries(p)
        .filter(([, k]) => k.cpuS >= 0.05)
        .sort((a, b) => b[1].cpuS - a[1].cpuS)
        .slice(0, top)
        .map(([kind, k]) => `${kind} ${k.cpuS.toFixed(1)} s at nice ${k.nice[0] === k.nice[1] ? k.nice[0] : `${k.nice[0]}..${k.nice[1]}`}`)
        .join(", ");
}

function sha256(file: string): string {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

async function main(): Promise<void> {
    const opts = parseArgs(process.argv.slice(2), REPO);
    const started = Date.now();
    const log = (line: string) => console.log(`[${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}`);
    if (!fs.existsSync(path.join(REPO, "dist", "agent.js"))) usage("dist/agent.js is missing; npm run build:agent (npm run bench does)");
    const vegeta = opts.crossShare > 0 ? findVegeta() : undefined;
    if (opts.crossShare > 0 && !vegeta) usage(`vegeta is not installed (scripts/install-deps.sh --bench: go install ${VEGETA_MODULE}); or --no-cross-check`);

    const root = process.getuid?.() === 0;
    // As root the app runs as an unprivileged user with a PostgreSQL role of its own (peer auth);
    // otherwise everything runs as the invoking user.
    const appUser = root ? "nobody" : os.userInfo().username;
    // The example app as the `local` stack configures it (Pulumi.local.yaml).
    const app: StackApp = {
        startCommand: `${PYTHON} -m gunicorn --bind 127.0.0.1:$PORT --workers 2 --graceful-timeout 25 mysite.wsgi`,
        healthPath: "/healthz",
        smokePaths: ["/", "/healthz"],
        checkCommand: `${PYTHON} manage.py check --deploy --fail-level ERROR`,
        migrateCommand: `${PYTHON} manage.py migrate --noinput`,
        versionHeader: "X-Release-Version",
        control: (appRoot, runDir) => {
            const ctl = (cmd: string) => `${process.execPath} ${APP_CTL} ${cmd} {slot} ${appRoot} ${runDir}${root ? ` ${appUser}` : ""}`;
            return { start: ctl("start"), stop: ctl("stop"), pids: ctl("pids") };
        },
    };
    const stack = new Stack({ appName: "nobody", keepPreviousWarm: true, app });
    const sshd = new LoopbackSshd(path.join(stack.root, "sshd"));
    let pg: Postgres | undefined;
    let ctx: MethodContext | undefined;
    let driver: ProgramDriver | undefined;
    let cleaned = false;
    const cleanup = async () => {
        if (cleaned) return;
        cleaned = true;
        if (ctx) await stopAll(ctx).catch(() => undefined);
        await driver?.stop().catch(() => undefined);
        await sshd.stop().catch(() => undefined);
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
        const archives = Object.fromEntries(
            ["v1", "v2"].map((v) => {
                const file = path.join(releases, `${v}.tar.gz`);
                return [v, { file, sha256: sha256(file) }];
            }),
        );
        log(`starting HAProxy and NGINX from the project's templates, a throwaway PostgreSQL and an sshd on loopback`);
        await stack.start();
        pg = startPostgres(path.join(stack.root, "pg"), "shop", appUser);
        await sshd.start();
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
        // v1 is prepared once, before anything is measured; v2 is prepared by each gated deploy.
        const prepared = await stack.agent(["prepare", "--version", "v1", "--source", archives.v1.file, "--sha256", archives.v1.sha256]);
        if (prepared.code !== 0) throw new Error(`prepare v1: ${prepared.stdout}\n${prepared.stderr}`);
        const target: ProgramTarget = {
            connection: sshd.connection(),
            layout: stack.layout,
            appEnv,
            shift: resolveShiftOptions({ shiftPlan: parseShiftPlan(opts.plan.split(",")), healthTimeout: 60, drainTimeout: 30 }, true),
        };
        // Started (and compiled) before anything is measured.
        driver = await startProgramDriver(target);
        ctx = {
            stack,
            appUser,
            appEnv,
            projectConfig: fs.readFileSync(stack.layout.haproxyConfigFile, "utf8"),
            archives,
            pg,
            program: driver,
            log,
        };
        const mixBase: Omit<MixOptions, "rate"> = {
            port: stack.ports.https,
            host: stack.domain,
            connections: opts.connections,
            postEvery: opts.postEvery,
            versionHeader: app.versionHeader,
            vegeta,
            crossShare: opts.crossShare,
            dir: path.join(stack.root, "vegeta"),
        };
        const machineStart = { ...machine(PYTHON, pgBin()), vegeta: vegeta ? vegetaVersion(vegeta) : "not used", loadavgStart: os.loadavg().map(round1) };
        log(`machine: ${machineStart.cpus} cores, load average ${machineStart.loadavgStart.join(" ")}`);

        let capacity: CapacityResult | undefined;
        let rate = opts.rate ?? 0;
        if (!opts.rate) {
            log(`capacity: v1 behind the project's proxies, the load stepped up from ${opts.capacityStart} req/s`);
            const base = gatedShift(ctx);
            await base.setup();
            try {
                let n = 0;
                capacity = await findCapacity(
                    (r) => {
                        const mix = startMix({ ...mixBase, rate: r }, `capacity-${++n}-${Date.now()}`);
                        return { stop: async () => Object.values(await mix.stop()).filter((x) => !!x) };
                    },
                    opts.capacityStart,
                    log,
                );
            } finally {
                await base.teardown();
                await stopAll(ctx);
            }
            rate = Math.max(1, Math.round(capacity.capacity * opts.loadFactor));
            log(`capacity ${capacity.capacity} req/s; the deploys run at ${Math.round(opts.loadFactor * 100)} % of it: ${rate} req/s`);
        }

        const lines: { method: string; run: number; lines: { t: number; line: string }[] }[] = [];
        const gatedLines: { t: number; line: string }[] = [];
        const all: Record<string, Method> = {
            "1": restartInPlace(ctx),
            "2": stopStart(ctx),
            "3": haproxyReload(ctx, HOLD_MS),
            "4": gatedShift(ctx, gatedLines),
        };
        const methods = opts.methods.map((m) => all[m]);
        const results: MethodResult[] = methods.map((m) => ({ id: m.id, title: m.title, runs: [] }));
        const raw: unknown[] = [];
        const split = splitRate({ ...mixBase, rate });
        log(
            `load: ${rate} req/s through NGINX (every ${opts.postEvery}th a POST ${PATHS.post}): ${split.own} from the project's generator over ${opts.connections} keep-alive connections` +
                `${vegeta ? `, ${split.cross} from vegeta` : ""}; ${opts.runs} run(s) of each method, interleaved`,
        );

        // Rounds interleave the methods, so a noisy neighbour on this machine hits them alike.
        for (let r = 1; r <= opts.runs; r++) {
            for (const [i, method] of methods.entries()) {
                log(`${method.title} — run ${r}/${opts.runs}`);
                const res: RunResult = { run: r };
                results[i].runs.push(res);
                let mix: ReturnType<typeof startMix> | undefined;
                let probe: ReturnType<typeof startProbe> | undefined;
                try {
                    await method.setup();
                    mix = startMix({ ...mixBase, rate }, `${method.id}-${r}-${Date.now()}`);
                    const load = mix;
                    probe = startProbe({
                        root: stack.root,
                        slotPorts: slotPorts(stack.settings.app.slotBasePort),
                        loadPids: () => ({
                            [process.pid]: "bench (load)",
                            [driver!.pid]: "deployer (SSH client)",
                            ...(load.crossPid() ? { [load.crossPid()!]: "vegeta" } : {}),
                        }),
                    });
                    const m = {} as RunMarks;
                    await sleep(WARMUP_MS);
                    m.steadyStart = Date.now();
                    await sleep(STEADY_MS);
                    m.deployStart = Date.now();
                    await method.deploy((phase) => {
                        if (phase === "shift") m.shiftStart = Date.now();
                        else m.drainStart = Date.now();
                    });
                    await waitServedBy(ctx, "v2");
                    m.deployEnd = Date.now();
                    if (!m.shiftStart || !m.drainStart) throw new Error("the deploy did not mark its shift and drain");
                    await sleep(TAIL_MS);
                    m.rollbackStart = Date.now();
                    await method.rollback();
                    await waitServedBy(ctx, "v1");
                    m.rollbackEnd = Date.now();
                    await sleep(TAIL_MS);
                    m.end = Date.now();
                    const samples = probe.stop();
                    probe = undefined;
                    const report = await mix.stop();
                    mix = undefined;
                    res.figures = analyzeRun(report.own.records, report.own.errorRecords, m, TAIL_MS);
                    if (report.cross) res.cross = analyzeRun(report.cross.records, report.cross.errorRecords, m, TAIL_MS);
                    const bounds: Record<Window, [number, number]> = {
                        steady: [m.steadyStart, m.deployStart],
                        preparation: [m.deployStart, m.shiftStart],
                        shift: [m.shiftStart, m.drainStart],
                        drain: [m.drainStart, m.deployEnd + TAIL_MS],
                    };
                    res.processes = Object.fromEntries(WINDOWS.map((w) => [w, processFigures(samples, ...bounds[w])])) as RunResult["processes"];
                    raw.push({ method: method.id, run: r, marks: m, records: report.own, cross: report.cross, processes: samples });
                    if (method.id === "gated-shift") lines.push({ method: method.id, run: r, lines: [...gatedLines] });
                    log(`  ${describeRun(res)}`);
                    for (const w of WINDOWS) log(`    ${w}: ${describeProcesses(res.processes![w])}`);
                } catch (e) {
                    res.error = (e as Error).message;
                    log(`  run failed: ${res.error}`);
                    probe?.stop();
                    await mix?.stop().catch(() => undefined);
                } finally {
                    await method.teardown().catch((e) => log(`  teardown: ${(e as Error).message}`));
                    await stopAll(ctx);
                }
            }
        }

        const names = { own: "project (autocannon)", cross: "vegeta" };
        const heading = `Deploy v1 -> v2 and roll back at ${rate} req/s through NGINX${capacity ? ` (${Math.round(opts.loadFactor * 100)} % of the measured ${capacity.capacity} req/s)` : ""}; median [min–max] over runs; the drain phase ends ${TAIL_MS / 1000} s after the deploy`;
        if (capacity) console.log(`\nCapacity: ${capacity.definition}\n\n${textTable(CAPACITY_HEADERS, capacityRows(capacity.steps))}`);
        console.log(`\n${heading}\n\n${textTable(HEADERS, tableRows(results))}`);
        if (vegeta) console.log(`\nThe two load generators over the same windows\n\n${textTable(CROSS_HEADERS, crossRows(results, names))}`);
        const md = markdownTable(HEADERS, tableRows(results));
        const crossMd = vegeta ? markdownTable(CROSS_HEADERS, crossRows(results, names), 2) : "";
        const capacityMd = capacity ? markdownTable(CAPACITY_HEADERS, capacityRows(capacity.steps), 0) : "";
        console.log(`\n${capacityMd}\n\n${md}\n\n${crossMd}\n`);

        const gated = results.find((m) => m.id === "gated-shift");
        if (gated && summary(gated).runs) {
            const s = summary(gated);
            const worst = s.worstPhaseOverSteady.max;
            console.log(
                `gated shift against the targets: worst phase p99 ÷ steady p99 ${round1(s.worstPhaseOverSteady.median)}x median, ${round1(worst)}x worst run (target <= ${TARGET_RATIO}x): ${worst <= TARGET_RATIO ? "met" : "NOT met"}; ` +
                    `failed requests ${s.failed.max} in the worst run (target 0): ${s.failed.max === 0 ? "met" : "NOT met"}`,
            );
        }

        fs.mkdirSync(opts.out, { recursive: true });
        const json = {
            generated: new Date().toISOString(),
            durationS: Math.round((Date.now() - started) / 1000),
            machine: { ...machineStart, loadavgEnd: os.loadavg().map(round1) },
            settings: {
                runs: opts.runs,
                rate,
                loadFactor: capacity ? opts.loadFactor : undefined,
                split,
                connections: opts.connections,
                postEvery: opts.postEvery,
                warmupS: WARMUP_MS / 1000,
                steadyS: STEADY_MS / 1000,
                tailS: TAIL_MS / 1000,
                gatedShift: { ...target.shift, plan: opts.plan, over: "SSH (loopback sshd, the SshCommand provider's step function)" },
                haproxyReloadHoldS: HOLD_MS / 1000,
                app: app.startCommand,
                targets: { worstPhaseOverSteady: TARGET_RATIO, failed: 0 },
            },
            capacity,
            definitions: {
                requests: "requests sent in the deploy window (deploy start to deploy end + tail), by the time they were sent",
                failed: "non-2xx answers + requests without an answer (connection errors, timeouts)",
                latency: "ms from writing the request to the end of its answer, over every answer (any status)",
                steady: `the ${STEADY_MS / 1000} s before the deploy starts`,
                preparation:
                    "from the deploy's first step (unpack, migrations, for the gated shift also the check, the migration gate, the rehearsal, the new slot's boot and smoke tests) until traffic starts to move",
                shift: "from the first change of what serves traffic until every new request goes to v2",
                drain: `from then until the deploy's steps are done and NGINX answers from v2, + ${TAIL_MS / 1000} s`,
                rollbackS: "from the rollback's first step until its steps are done and NGINX answers 200 from v1",
                processes:
                    "per window and kind of process of the host (stack, app, agent, load generators): nice levels seen and CPU seconds used, sampled from /proc every 200 ms; " +
                    "'other work on this machine' is the machine's busy CPU time less all of that (it includes the stack's processes that lived less than 200 ms)",
                perSecond: "answers by the second they arrived, relative to the deploy start: ok = 2xx by release",
            },
            methods: results.map((m) => ({ ...m, summary: summary(m), crossSummary: vegeta ? summary(m, "cross") : undefined })),
            gatedShiftLines: lines,
            table: md,
            crossTable: crossMd,
            capacityTable: capacityMd,
        };
        fs.writeFileSync(path.join(opts.out, "results.json"), JSON.stringify(json, null, 1) + "\n");

        const panels = results
            .map((m) => {
                const ok = m.runs.filter((x) => x.figures);
                if (!ok.length) return undefined;
                // The run with the median worst-phase ratio stands for the method.
                const pick = [...ok].sort((a, b) => worstRatio(a.figures!) - worstRatio(b.figures!))[Math.floor((ok.length - 1) / 2)];
                const f = pick.figures!;
                const p99s = WINDOWS.map((w) => lat(w === "steady" ? f.steady : f.phases[w])).join(" / ");
                return {
                    title: m.title,
                    subtitle: `run ${pick.run} of ${m.runs.length}: ${f.deploy.failed} of ${f.deploy.requests} requests failed in the deploy (${round1(f.deployS)} s)${pick.cross ? ` (vegeta: ${pick.cross.deploy.failed} of ${pick.cross.deploy.requests})` : ""}, ${f.rollback.failed} in the rollback (${round1(f.rollbackS)} s); p99 steady / preparation / shift / drain ${p99s} ms`,
                    // The bars: both generators' answers, the whole load.
                    run: pick.cross ? { ...f, perSecond: addSeconds(f.perSecond, pick.cross.perSecond) } : f,
                };
            })
            .filter((p): p is NonNullable<typeof p> => !!p);
        const svg = renderChart(
            panels,
            "Deploy v1 → v2, then roll back to v1, under constant load",
            `${rate} req/s through NGINX${capacity ? ` (${Math.round(opts.loadFactor * 100)} % of the measured ${capacity.capacity} req/s)` : ""}, both generators, every ${opts.postEvery}th a POST; Django + gunicorn + PostgreSQL on ${os.cpus().length} cores; x: s from the deploy start`,
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
