// What ran on the "host" while a method deployed, sampled from /proc: each process of the stack
// (the proxies, PostgreSQL, the app's processes, the agent) and of the load generators, with its
// nice level and the CPU it used. So the figures show which priority each piece of deploy work
// actually had (not what it was meant to get) and what took the cores in each phase.
import * as fs from "fs";
import * as path from "path";

export interface ProcessSample {
    t: number;
    pid: number;
    kind: string;
    nice: number;
    /** utime + stime, in clock ticks. */
    cpuTicks: number;
}

export interface ProbeOptions {
    /** The stack's temp dir: a process whose command line or working dir is under it is the stack's. */
    root: string;
    /** The slots' ports, to tell the slots' gunicorns from the rehearsal's. */
    slotPorts: { blue: number; green: number };
    /** Processes of the load generators (this process, vegeta), by pid. */
    loadPids: () => Record<number, string>;
    intervalMs?: number;
}

/** Linux's USER_HZ: /proc/<pid>/stat counts CPU time in these. */
const TICKS_PER_S = 100;

function readStat(pid: number): { ppid: number; nice: number; cpuTicks: number } | undefined {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
        // Fields from state (3): ppid 4, utime 14, stime 15, nice 19.
        return { ppid: Number(f[1]), cpuTicks: Number(f[11]) + Number(f[12]), nice: Number(f[16]) };
    } catch {
        return undefined;
    }
}

function readArgv(pid: number): string[] {
    try {
        return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    } catch {
        return [];
    }
}

function readCwd(pid: number): string {
    try {
        return fs.readlinkSync(`/proc/${pid}/cwd`);
    } catch {
        return "";
    }
}

/** What a process of the stack is, from its command line and working directory; undefined when it is not the stack's. */
function classify(argv: string[], cwd: string, o: Pick<ProbeOptions, "root" | "slotPorts">): string | undefined {
    const line = argv.join(" ");
    const under = (p: string) => p === o.root || p.startsWith(`${o.root}/`);
    if (!line.includes(o.root) && !under(cwd)) return undefined;
    const exe = path.basename(argv[0] ?? "");
    if (exe === "haproxy") return "haproxy";
    if (exe === "nginx" || line.startsWith("nginx:")) return "nginx";
    if (exe === "postgres" || line.startsWith("postgres:")) return "postgres";
    if (exe === "sshd" || line.startsWith("sshd")) return "sshd";
    // releases/<version>, or prepare's temp dir releases/.tmp-<version>-<pid>.
    const dir = /\/(?:releases|naive)\/([^/]+)/.exec(cwd)?.[1] ?? "?";
    const version = /^\.tmp-(.+)-\d+$/.exec(dir)?.[1] ?? dir;
    if (line.includes("gunicorn")) {
        const port = Number(/127\.0\.0\.1:(\d+)/.exec(line)?.[1]);
        const slot = port === o.slotPorts.blue ? "blue" : port === o.slotPorts.green ? "green" : "rehearsal";
        return `gunicorn ${version} (${slot})`;
    }
    const manage = argv.indexOf("manage.py");
    if (manage >= 0) return `manage.py ${argv[manage + 1] ?? ""}`.trim();
    const agent = argv.findIndex((a) => a.endsWith("/agent.js"));
    if (agent >= 0) return `agent ${argv[agent + 1] ?? ""}`.trim();
    if (argv.some((a) => a.endsWith("app-ctl.cjs"))) return "app-ctl";
    if (exe === "python3" || exe === "python") return `python ${version}`;
    return exe || "?";
}

export interface RunningProbe {
    stop(): ProcessSample[];
}

/** The kind under which the CPU of everything else on the machine is counted. */
const OTHER_WORK = "other work on this machine";
/** Pseudo pid of the machine's busy ticks (all CPUs, from /proc/stat). */
const MACHINE_PID = -1;

/** Busy clock ticks of all CPUs together since boot: everything but idle and iowait. */
function machineBusyTicks(): number | undefined {
    try {
        const f = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
        // user nice system idle iowait irq softirq steal (guest time is inside user already)
        return f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0);
    } catch {
        return undefined;
    }
}

export function startProbe(o: ProbeOptions): RunningProbe {
    const samples: ProcessSample[] = [];
    const sample = () => {
        const t = Date.now();
        const load = o.loadPids();
        const seen = new Map<number, { kind?: string; ppid: number; nice: number; cpuTicks: number }>();
        for (const name of fs.readdirSync("/proc")) {
            if (!/^[0-9]+$/.test(name)) continue;
            const pid = Number(name);
            const stat = readStat(pid);
            if (stat) seen.set(pid, { ...stat, kind: load[pid] ?? classify(readArgv(pid), readCwd(pid), o) });
        }
        // What a process of the stack forked and renamed (NGINX's workers) is part of it.
        const kindOf = (pid: number, depth = 0): string | undefined => {
            const p = seen.get(pid);
            if (!p || depth > 5) return undefined;
            return p.kind ?? kindOf(p.ppid, depth + 1);
        };
        for (const [pid, p] of seen) {
            const kind = kindOf(pid);
            if (kind) samples.push({ t, pid, kind, nice: p.nice, cpuTicks: p.cpuTicks });
        }
        const busy = machineBusyTicks();
        if (busy !== undefined) samples.push({ t, pid: MACHINE_PID, kind: OTHER_WORK, nice: 0, cpuTicks: busy });
    };
    sample();
    const timer = setInterval(sample, o.intervalMs ?? 200);
    return {
        stop() {
            clearInterval(timer);
            sample();
            return samples;
        },
    };
}

export interface KindFigures {
    /** Lowest and highest nice level seen. */
    nice: [number, number];
    /** CPU seconds used within the window. */
    cpuS: number;
}

/**
 * Per kind of process: the nice levels it had and the CPU it used between `from` and `to` (a
 * process's CPU between two samples counts to the window the later one falls in).
 */
export function processFigures(samples: ProcessSample[], from: number, to: number): Record<string, KindFigures> {
    const out: Record<string, KindFigures> = {};
    const last = new Map<number, ProcessSample>();
    const firstT = samples[0]?.t;
    for (const s of samples) {
        const prev = last.get(s.pid);
        last.set(s.pid, s);
        if (s.t < from || s.t >= to) continue;
        const k = (out[s.kind] ??= { nice: [s.nice, s.nice], cpuS: 0 });
        k.nice = [Math.min(k.nice[0], s.nice), Math.max(k.nice[1], s.nice)];
        // A process first seen after the probe started was born since the sample before: all its CPU is new.
        const before = prev ? prev.cpuTicks : s.t === firstT ? s.cpuTicks : 0;
        k.cpuS += Math.max(0, s.cpuTicks - before) / TICKS_PER_S;
    }
    // The machine's busy time less what the stack's processes used: the other work here.
    const other = out[OTHER_WORK];
    if (other) {
        const ours = Object.entries(out).reduce((sum, [kind, k]) => (kind === OTHER_WORK ? sum : sum + k.cpuS), 0);
        other.cpuS = Math.max(0, other.cpuS - ours);
        other.nice = [0, 0];
    }
    for (const k of Object.values(out)) k.cpuS = Math.round(k.cpuS * 100) / 100;
    return out;
}
