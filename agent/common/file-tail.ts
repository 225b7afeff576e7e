// The end of a file that only grows (logs, the audit log), read without loading all of it.
import * as fs from "fs";

/** The last `n` non-empty lines of a file, reading at most its last `maxBytes`; [] when it cannot be read. A line cut by the byte bound is dropped. */
export function readTailLines(file: string, n: number, maxBytes = 16 * 1024): string[] {
    let fd: number | undefined;
    try {
        fd = fs.openSync(file, "r");
        const size = fs.fstatSync(fd).size;
        const len = Math.min(size, maxBytes);
        const buf = Buffer.alloc(len);
        fs.readSync(fd, buf, 0, len, size - len);
        let lines = buf.toString("utf8").split("\n");
        if (len < size) lines = lines.slice(1);
        return lines.filter((l) => l !== "").slice(-n);
    } catch {
        return [];
    } finally {
        if (fd !== undefined) fs.closeSync(fd);
    }
}
