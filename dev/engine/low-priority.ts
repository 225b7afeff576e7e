// The Pulumi engine at a low CPU and IO priority, for `npm run local`: there the engine shares this
// machine with the local host it deploys to, while in production it runs elsewhere (an operator's
// machine, CI). The shift's figures should measure the host's services, not the engine's own CPU.
//
// - systemd as init, and a scope it makes gets the CPU weight (probed once): `systemd-run --scope`
//   with CPUWeight= and IOWeight=. A weight counts against the scope's siblings in system.slice.
// - otherwise nice 19, the idle IO class (when ionice exists) and a session of its own whose
//   autogroup gets nice 19 too: with autogroup scheduling, a process's nice level counts only
//   within its session (agent/processes/cpu-scheduling.ts), and the local host's services are sessions of
//   their own. Measured on this project's machines (legacy cgroup hierarchy, no systemd as init):
//   nice 19 vs 0 in one session 4/316 CPU ticks, in two sessions 256/243; this priority against a
//   CPU burner unit on the local host, both on one CPU, 11/737 (1.5 %), none 397/396.
import { spawnSync } from "child_process";
import * as fs from "fs";
import { setAutogroupNice } from "../../agent/processes/cpu-scheduling";

const ENGINE_CPU_WEIGHT = 10;
const ENGINE_NICE = 19;

export interface EnginePriority {
    /** Put before `pulumi ARGS`. */
    prefix: readonly string[];
    /** pulumi runs in a session of its own (then its autogroup is its own, set by started()). */
    ownSession: boolean;
    /** Called with the child's pid as soon as it runs. */
    started(pid: number): void;
    /** What took effect, for the log. */
    description: string;
    /** What the prefix alone does: for a command that keeps the terminal's session (it may prompt). */
    prefixOnly: string;
}

const onPath = (tool: string) => (process.env.PATH ?? "/usr/bin:/bin").split(":").some((d) => d && fs.existsSync(`${d}/${tool}`));

/**
 * The CPU weight of the cgroup a probe runs in inside a systemd scope with CPUWeight=: cpu.weight on
 * the unified hierarchy, cpu.shares (systemd's conversion: weight * 1024 / 100) on the legacy one.
 */
const WEIGHT_PROBE = [
    "v1=$(sed -n 's/^[0-9]*:[a-z,]*cpu[a-z,]*:\\(.*\\)$/\\1/p' /proc/self/cgroup | head -n 1)",
    'if [ -n "$v1" ]; then cat /sys/fs/cgroup/cpu,cpuacct"$v1"/cpu.shares /sys/fs/cgroup/cpu"$v1"/cpu.shares 2>/dev/null | head -n 1',
    'else cat "/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup)/cpu.weight"; fi',
].join("\n");

function systemdScope(): EnginePriority | undefined {
    if (!fs.existsSync("/run/systemd/system") || !onPath("systemd-run")) return undefined;
    const prefix = ["systemd-run", "--scope", "--quiet", "--collect", "-p", `CPUWeight=${ENGINE_CPU_WEIGHT}`, "-p", `IOWeight=${ENGINE_CPU_WEIGHT}`, "--"];
    const probe = spawnSync(prefix[0], [...prefix.slice(1), "/bin/sh", "-c", WEIGHT_PROBE], { encoding: "utf8", timeout: 15_000 });
    const value = Number((probe.stdout ?? "").trim());
    const expected = [ENGINE_CPU_WEIGHT, Math.floor((ENGINE_CPU_WEIGHT * 1024) / 100)];
    if (probe.status !== 0 || !expected.includes(value)) return undefined;
    return {
        prefix,
        ownSession: false,
        started: () => undefined,
        description: `a systemd scope with CPUWeight=${ENGINE_CPU_WEIGHT} and IOWeight=${ENGINE_CPU_WEIGHT} (its cgroup's CPU weight reads ${value})`,
        get prefixOnly() {
            return this.description;
        },
    };
}

function niceLevels(why: string): EnginePriority {
    const ionice = onPath("ionice");
    let autogroup = false;
    const levels = `nice ${ENGINE_NICE}, ${ionice ? "the idle IO class" : "no ionice"}`;
    return {
        prefix: ["nice", "-n", String(ENGINE_NICE), ...(ionice ? ["ionice", "-c", "3"] : [])],
        ownSession: true,
        started(pid) {
            autogroup = setAutogroupNice(pid, ENGINE_NICE);
        },
        get description() {
            return `${levels}, ${autogroup ? `its own session's autogroup at nice ${ENGINE_NICE}` : "no autogroup"} (${why})`;
        },
        prefixOnly: `${levels}; no autogroup of its own: it keeps the terminal's session (${why})`,
    };
}

/** The way this machine lowers the engine, probed once. */
export function enginePriority(): EnginePriority {
    return (
        systemdScope() ??
        niceLevels(fs.existsSync("/run/systemd/system") ? "a systemd scope's CPU weight is not honoured here" : "no systemd as init on this machine")
    );
}
