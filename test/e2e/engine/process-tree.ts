// A process and everything it started, read from /proc: what a cancelled CI job or a closed
// terminal takes down with the `pulumi` CLI (its language host, the program, the provider plugins).
import * as fs from "fs";

function parentOf(pid: number): number | undefined {
    try {
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        // The command name (field 2) may hold spaces and parentheses: split after the last ")".
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    } catch {
        return undefined;
    }
}

/** `pid` and its descendants, parents before children. */
function processTree(pid: number): number[] {
    const children = new Map<number, number[]>();
    for (const entry of fs.readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        const ppid = parentOf(Number(entry));
        if (ppid !== undefined) children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    }
    const tree = [pid];
    for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i]) ?? []));
    return tree;
}

/** SIGKILLs `pid` and its descendants at once (the tree is read first, before any is reparented); returns their pids. */
export function killTree(pid: number): number[] {
    const tree = processTree(pid);
    for (const p of tree) {
        try {
            process.kill(p, "SIGKILL");
        } catch {
            // exited meanwhile
        }
    }
    return tree;
}
