// Where the kernel groups CPU time by session (sched_autogroup, on by default in most distribution
// kernels), a nice level only weighs a process against the others of its own session: against a
// process of another session (every systemd service, every detached command) it competes as an
// equal. Autogrouping applies only outside CPU cgroups, which is exactly where the agent falls back
// to nice levels; so there the session's own nice level (/proc/<pid>/autogroup) is set too.
import * as fs from "fs";

export function autogroupEnabled(): boolean {
    try {
        return fs.readFileSync("/proc/sys/kernel/sched_autogroup_enabled", "utf8").trim() === "1";
    } catch {
        return false;
    }
}

/** The autogroup of a process ("/autogroup-12"), or undefined. */
function autogroupOf(pid: number): string | undefined {
    try {
        return /^(\S+)/.exec(fs.readFileSync(`/proc/${pid}/autogroup`, "utf8"))?.[1];
    } catch {
        return undefined;
    }
}

/**
 * Sets the nice level of the sessions `pids` belong to, each once; best effort (lowering one takes
 * root). Returns how many sessions took it: 0 where the kernel does not group by session.
 */
export function setSessionNice(pids: readonly number[], nice: number): number {
    if (!autogroupEnabled()) return 0;
    const done = new Set<string>();
    for (const pid of pids) {
        const group = autogroupOf(pid);
        if (!group || done.has(group)) continue;
        try {
            fs.writeFileSync(`/proc/${pid}/autogroup`, String(nice));
            done.add(group);
        } catch {
            // exited meanwhile, or not ours to lower
        }
    }
    return done.size;
}
