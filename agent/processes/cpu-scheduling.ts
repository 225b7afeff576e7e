// What decides a process's share of the CPU on this host, read from /proc: a CPU cgroup of its
// unit's own (where CPUWeight= counts), or the kernel's autogroup of its session (where only the
// session's nice level counts against other sessions, so a per-process nice does not).
//
// A systemd service is a session of its own. With autogroup scheduling on (the default of most
// kernels) and the service left in the root CPU cgroup (the legacy hierarchy without a delegated
// CPU controller, e.g. a systemd-nspawn container on such a machine), neither CPUWeight= nor Nice=
// weighs anything against another service; the autogroup's nice level does. Measured on the local
// host of test/e2e (legacy hierarchy): two CPU burners on one CPU share it 50/50 at CPUWeight 10
// vs 100 and at Nice 15 vs 0, and 3/97 with autogroup nice 15 vs 0.
import * as fs from "fs";

/**
 * Whether a process's CPU cgroup is its unit's own: on the legacy hierarchy the path of the
 * controller list holding "cpu" in /proc/<pid>/cgroup must be the unit's; on the unified one the
 * unit's cgroup must have the cpu controller (a cpu.weight file).
 */
export function ownCpuCgroup(procCgroup: string, controlGroup: string, unifiedCpuWeightExists: (path: string) => boolean): boolean {
    let unifiedPath: string | undefined;
    for (const line of procCgroup.split("\n")) {
        const m = /^\d+:([^:]*):(.*)$/.exec(line.trim());
        if (!m) continue;
        if (m[1] === "") unifiedPath = m[2];
        else if (m[1].split(",").includes("cpu")) return m[2] === controlGroup;
    }
    return unifiedPath !== undefined && unifiedPath === controlGroup && unifiedCpuWeightExists(unifiedPath);
}

/** ownCpuCgroup for a running process; undefined when it is gone. */
export function processHasOwnCpuCgroup(pid: number, controlGroup: string): boolean | undefined {
    let text: string;
    try {
        text = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8");
    } catch {
        return undefined;
    }
    return ownCpuCgroup(text, controlGroup, (p) => fs.existsSync(`/sys/fs/cgroup${p}/cpu.weight`));
}

/**
 * Sets the nice level of the autogroup a process belongs to (its session's); false where the
 * kernel has no autogroups or the process is gone. Root may lower it again (CAP_SYS_NICE).
 */
export function setAutogroupNice(pid: number, nice: number): boolean {
    try {
        fs.writeFileSync(`/proc/${pid}/autogroup`, String(nice));
        return true;
    } catch {
        return false;
    }
}

/**
 * A shell line that puts the shell's own autogroup (the unit's session, so everything the unit
 * starts) at `nice`; silent and harmless where there are no autogroups. Raising a nice level
 * needs no privilege, and no process of the app can lower it again (that needs CAP_SYS_NICE).
 */
export function autogroupNiceShellLine(nice: number): string {
    return `{ echo ${Math.trunc(nice)} > /proc/self/autogroup; } 2>/dev/null || :`;
}
