// Writes .tar.gz archives member by member (ustar headers), so tests can build the archives an
// attacker would: device nodes, FIFOs, hard links, setuid files, absolute or ".." names and links,
// without root and without touching the filesystem for the members themselves.
import * as zlib from "zlib";

export interface TarMember {
    name: string;
    type?: "file" | "dir" | "symlink" | "hardlink" | "chardev" | "blockdev" | "fifo";
    /** Permission bits, including setuid (0o4000), setgid (0o2000), sticky (0o1000). */
    mode?: number;
    data?: string | Buffer;
    /** Target of a symlink or hard link. */
    link?: string;
    devmajor?: number;
    devminor?: number;
}

const TYPE_FLAG: Record<NonNullable<TarMember["type"]>, string> = {
    file: "0",
    hardlink: "1",
    symlink: "2",
    chardev: "3",
    blockdev: "4",
    dir: "5",
    fifo: "6",
};

function octal(n: number, width: number): string {
    return n.toString(8).padStart(width - 1, "0") + "\0";
}

function header(m: TarMember, size: number): Buffer {
    const h = Buffer.alloc(512);
    const put = (text: string, offset: number, width: number) => {
        const b = Buffer.from(text, "utf8");
        if (b.length > width) throw new Error(`tar field too long: ${text}`);
        b.copy(h, offset);
    };
    const type = m.type ?? "file";
    put(m.name, 0, 100);
    put(octal(m.mode ?? (type === "dir" ? 0o755 : 0o644), 8), 100, 8);
    put(octal(0, 8), 108, 8);
    put(octal(0, 8), 116, 8);
    put(octal(size, 12), 124, 12);
    put(octal(Math.floor(Date.now() / 1000), 12), 136, 12);
    put("        ", 148, 8);
    put(TYPE_FLAG[type], 156, 1);
    put(m.link ?? "", 157, 100);
    put("ustar\0", 257, 6);
    put("00", 263, 2);
    put(octal(m.devmajor ?? 0, 8), 329, 8);
    put(octal(m.devminor ?? 0, 8), 337, 8);
    let sum = 0;
    for (const byte of h) sum += byte;
    put(octal(sum, 7) + " ", 148, 8);
    return h;
}

/** A gzipped tar of the members, in order. */
export function tarGz(members: readonly TarMember[]): Buffer {
    const parts: Buffer[] = [];
    for (const m of members) {
        const data = m.type === undefined || m.type === "file" ? Buffer.from(m.data ?? "") : Buffer.alloc(0);
        parts.push(header(m, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
    }
    parts.push(Buffer.alloc(1024));
    return zlib.gzipSync(Buffer.concat(parts));
}
