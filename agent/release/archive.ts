// Release content is untrusted, and root unpacks it. So every member of the archive is checked
// before anything is extracted, by the same tar that then extracts it (no second parser to
// disagree with): regular files, directories and symlinks only; no absolute or ".." paths; no
// setuid, setgid or sticky bits; symlinks relative and resolving inside the release, also through
// other symlinks of the archive; nothing below a symlink; no member twice. After extraction the
// tree on disk is checked again (lstat, realpath), and sealed: root-owned, readable by the app's
// group, writable by nobody else. The same check and seal run over the build dir after the build
// (which the app user wrote), so what the build planted is held to the same rules before root
// reads any of it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { AgentError } from "../common/errors";

/** tar runs with the agent's own PATH (the deployer's, trusted) and C messages, nothing else. */
const TAR_ENV = { PATH: process.env.PATH || "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" };

export interface ArchiveMember {
    /** "file" | "dir" | "symlink", or what tar's listing showed for anything else. */
    type: string;
    /** The name as stored, without a leading "./". */
    name: string;
    /** The permission string of tar's listing, e.g. "-rwxr-xr-x". */
    mode: string;
    linkTarget?: string;
}

/** Refusals name at most this many members (an archive may hold thousands of bad ones). */
const MAX_NAMED = 5;

const TYPES: Record<string, string> = {
    "-": "file",
    d: "dir",
    l: "symlink",
    h: "hard link",
    c: "character device",
    b: "block device",
    p: "FIFO",
    s: "socket",
};

/** A C-quoted string (tar --quoting-style=c) at the start of `text`: its value and what follows. */
function readQuoted(text: string): { value: string; rest: string } | undefined {
    if (text[0] !== '"') return undefined;
    const bytes: number[] = [];
    const simple: Record<string, number> = { n: 10, t: 9, r: 13, a: 7, b: 8, f: 12, v: 11, "\\": 92, '"': 34, "?": 63 };
    let i = 1;
    while (i < text.length) {
        const c = text[i];
        if (c === '"') return { value: Buffer.from(bytes).toString("utf8"), rest: text.slice(i + 1) };
        if (c === "\\") {
            const n = text[i + 1];
            const oct = /^[0-7]{1,3}/.exec(text.slice(i + 1));
            if (oct) {
                bytes.push(parseInt(oct[0], 8));
                i += 1 + oct[0].length;
            } else if (n !== undefined && n in simple) {
                bytes.push(simple[n]);
                i += 2;
            } else return undefined;
            continue;
        }
        bytes.push(...Buffer.from(c, "utf8"));
        i++;
    }
    return undefined;
}

const LINE = /^(\S{10}) +\d+\/\d+ +\S+ +\S+ \S+ +(".*)$/;

/** One line of `tar -tv --quoting-style=c --numeric-owner --full-time`. */
export function parseListingLine(line: string): ArchiveMember | undefined {
    const m = LINE.exec(line);
    if (!m) return undefined;
    const mode = m[1];
    const first = readQuoted(m[2]);
    if (!first) return undefined;
    const type = TYPES[mode[0]] ?? `type "${mode[0]}"`;
    let name = first.value;
    let linkTarget: string | undefined;
    if (first.rest.startsWith(" -> ") || first.rest.startsWith(" link to ")) {
        const second = readQuoted(first.rest.slice(first.rest.startsWith(" -> ") ? 4 : 9));
        if (!second || second.rest !== "") return undefined;
        linkTarget = second.value;
    } else if (first.rest !== "") return undefined;
    if (type === "dir") name = name.replace(/\/+$/, "");
    name = name.replace(/^(\.\/)+/, "");
    if (name === ".") name = "";
    return { type, name, mode, ...(linkTarget !== undefined ? { linkTarget } : {}) };
}

/** The members of a .tar.gz, as the tar that extracts it reads them (names verbatim: -P). */
export function listArchive(archive: string): ArchiveMember[] {
    const r = spawnSync("tar", ["-tvzf", archive, "-P", "--numeric-owner", "--full-time", "--quoting-style=c"], {
        encoding: "utf8",
        env: TAR_ENV,
        maxBuffer: 256 * 1024 * 1024,
    });
    if (r.status !== 0) throw new AgentError(`reading ${archive} failed: ${(r.stderr || r.error?.message || "").trim().split("\n").slice(-2).join(" / ")}`);
    const out: ArchiveMember[] = [];
    for (const line of r.stdout.split("\n")) {
        if (line === "") continue;
        const m = parseListingLine(line);
        if (!m) throw new AgentError(`${archive}: cannot read the member listing line ${JSON.stringify(line.slice(0, 200))}; nothing was unpacked`);
        out.push(m);
    }
    return out;
}

export interface MemberRules {
    /** Names at the release's top level the archive must not bring (prepare's own marker). */
    reserved: readonly string[];
    /** Names prepare replaces with links out of the release (media, .env): a symlink may not resolve through them. */
    linkedOut: readonly string[];
}

/**
 * Where a symlink's target ends, as components below the release root, resolving the archive's
 * own symlinks on the way (as the kernel will on disk); undefined when it leaves the release.
 */
function resolveInside(dir: string[], target: string, links: Map<string, string | null>, depth = 0): string[] | undefined {
    if (depth > 40) return undefined;
    let cur = [...dir];
    for (const comp of target.split("/")) {
        if (comp === "" || comp === ".") continue;
        if (comp === "..") {
            if (cur.length === 0) return undefined;
            cur.pop();
            continue;
        }
        cur.push(comp);
        const key = cur.join("/");
        if (!links.has(key)) continue;
        const next = links.get(key);
        if (next === null || next === undefined) return undefined;
        cur.pop();
        const resolved = resolveInside(cur, next, links, depth + 1);
        if (!resolved) return undefined;
        cur = resolved;
    }
    return cur;
}

/** Why a member may not be unpacked, or undefined when it may. */
function memberProblem(m: ArchiveMember, rules: MemberRules, links: Map<string, string | null>, seen: Set<string>, symlinkNames: string[]): string | undefined {
    if (m.type !== "file" && m.type !== "dir" && m.type !== "symlink")
        return `is a ${m.type}; only regular files, directories and symlinks may be in a release`;
    if (m.name.includes("\0")) return "has a NUL byte in its name";
    if (m.name.startsWith("/")) return "has an absolute path";
    const parts = m.name.split("/").filter((p) => p !== "" && p !== ".");
    if (parts.includes("..")) return 'has a ".." component';
    if (/[sStT]/.test(m.mode[3] + m.mode[6] + m.mode[9])) return `has the setuid, setgid or sticky bit (${m.mode})`;
    const name = parts.join("/");
    if (name === "") return m.type === "dir" ? undefined : "has no name";
    if (parts.length === 1 && rules.reserved.includes(name)) return `uses the name ${name}, which prepare reserves for itself`;
    if (m.type !== "dir") {
        if (seen.has(name)) return "appears more than once";
        seen.add(name);
    }
    const below = symlinkNames.find((l) => name.startsWith(`${l}/`));
    if (below) return `lies below the symlink ${below}`;
    if (m.type === "symlink") {
        const t = m.linkTarget ?? "";
        if (t === "") return "is a symlink without a target";
        if (t.startsWith("/")) return `is a symlink to the absolute path ${t}; only relative links inside the release are allowed`;
        if (!resolveInside(parts.slice(0, -1), t, links)) return `is a symlink to ${t}, which resolves outside the release`;
    }
    return undefined;
}

/** Throws one error naming the offending members (and why) unless every member may be unpacked. */
export function checkMembers(archive: string, members: readonly ArchiveMember[], rules: MemberRules): void {
    const links = new Map<string, string | null>();
    for (const name of rules.linkedOut) links.set(name, null);
    const symlinkNames: string[] = [];
    for (const m of members) {
        if (m.type !== "symlink") continue;
        const name = m.name
            .split("/")
            .filter((p) => p !== "" && p !== ".")
            .join("/");
        symlinkNames.push(name);
        if (!links.has(name)) links.set(name, m.linkTarget ?? null);
    }
    const seen = new Set<string>();
    const bad: string[] = [];
    for (const m of members) {
        const why = memberProblem(m, rules, links, seen, symlinkNames);
        if (why) bad.push(`${JSON.stringify(m.name)} ${why}`);
    }
    if (bad.length) {
        const more = bad.length > MAX_NAMED ? ` (and ${bad.length - MAX_NAMED} more)` : "";
        throw new AgentError(`refusing to unpack ${path.basename(archive)}: member ${bad.slice(0, MAX_NAMED).join("; member ")}${more}; nothing was unpacked`);
    }
}

/** Checks every member, then extracts into `dest` (an empty root-only dir): owner and modes are not taken from the archive. */
export function extractChecked(archive: string, dest: string, rules: MemberRules): void {
    checkMembers(archive, listArchive(archive), rules);
    const r = spawnSync(
        "tar",
        ["-xzf", archive, "-C", dest, "--no-same-owner", "--no-same-permissions", "--no-overwrite-dir", "--no-acls", "--no-xattrs", "--no-selinux"],
        { encoding: "utf8", env: TAR_ENV },
    );
    if (r.status !== 0) throw new AgentError(`unpacking ${archive} failed: ${(r.stderr || r.error?.message || "").trim().split("\n").slice(-2).join(" / ")}`);
}

function isInside(p: string, roots: readonly string[]): boolean {
    return roots.some((r) => p === r || p.startsWith(r + path.sep));
}

/**
 * Where `p` really leads (every symlink resolved), or undefined when that is outside `roots`
 * (real paths). A dangling link is judged by where its target would be.
 */
export function realPathInside(p: string, roots: readonly string[]): string | undefined {
    let real: string;
    try {
        real = fs.realpathSync(p);
    } catch {
        let parent: string;
        try {
            parent = fs.realpathSync(path.dirname(p));
        } catch {
            return undefined;
        }
        const t = fs.readlinkSync(p);
        real = path.resolve(parent, t);
        // The target's own parent may be a link as well: resolve what exists of it.
        try {
            real = path.join(fs.realpathSync(path.dirname(real)), path.basename(real));
        } catch {
            // Nothing of it exists: the lexical answer stands.
        }
    }
    return isInside(real, roots) ? real : undefined;
}

export interface TreeRules {
    /**
     * "inside": relative symlinks resolving into `linkRoots` only (a release from an archive).
     * "any": any symlink (a build dir: a virtualenv links to the system's python). Root never
     * follows one of those; what does read the build dir as root (the static merge) checks each
     * path it takes with realPathInside.
     */
    links: "inside" | "any";
    /** Real paths a symlink may resolve into ("inside"). */
    linkRoots: readonly string[];
}

/**
 * Walks `root` without following anything and throws naming the first entries that break the
 * rules: only directories, regular files with one link (a hard link would let root's later chown
 * take a file away from its owner, or share an inode with one outside), symlinks per `rules`; no
 * setuid/setgid/sticky bits; no FIFOs, sockets or devices.
 */
export function checkTree(root: string, rules: TreeRules): void {
    const bad: string[] = [];
    const walk = (dir: string) => {
        for (const name of fs.readdirSync(dir)) {
            const p = path.join(dir, name);
            const rel = path.relative(root, p);
            const st = fs.lstatSync(p);
            if (st.isSymbolicLink()) {
                if (rules.links === "any") continue;
                const t = fs.readlinkSync(p);
                if (path.isAbsolute(t)) bad.push(`${rel} is a symlink to the absolute path ${t}`);
                else if (!realPathInside(p, rules.linkRoots)) bad.push(`${rel} is a symlink to ${t}, which resolves outside the release`);
            } else if (st.isDirectory()) {
                if (st.mode & 0o7000) bad.push(`${rel} has the setuid, setgid or sticky bit`);
                walk(p);
            } else if (st.isFile()) {
                if (st.mode & 0o7000) bad.push(`${rel} has the setuid, setgid or sticky bit`);
                if (st.nlink > 1) bad.push(`${rel} is a hard link (${st.nlink} names)`);
            } else bad.push(`${rel} is neither a regular file, a directory nor a symlink`);
            if (bad.length >= MAX_NAMED) return;
        }
    };
    walk(root);
    if (bad.length) throw new AgentError(`${root}: ${bad.slice(0, MAX_NAMED).join("; ")}`);
}

/**
 * Makes a checked tree root's: owner root, group `gid` (the app's, which may read it), nobody else
 * may write or, beyond the group, read. Call only when no process of the app can reach the tree
 * (checkTree first, on a tree whose top is root-only).
 */
export function sealTree(root: string, gid: number | undefined): void {
    const seal = (p: string, st: fs.Stats) => {
        if (st.isSymbolicLink()) {
            if (gid !== undefined) fs.lchownSync(p, 0, gid);
            return;
        }
        // chmod before chown: the mode never carries a bit the new owner should not have.
        const exec = st.isDirectory() || st.mode & 0o111;
        fs.chmodSync(p, exec ? 0o750 : 0o640);
        if (gid !== undefined) fs.lchownSync(p, 0, gid);
    };
    const walk = (dir: string) => {
        for (const name of fs.readdirSync(dir)) {
            const p = path.join(dir, name);
            const st = fs.lstatSync(p);
            if (st.isDirectory()) walk(p);
            seal(p, st);
        }
    };
    walk(root);
}
