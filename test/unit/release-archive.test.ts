// The archive member check on its own: tar's listing read back exactly (names with quotes, arrows,
// newlines and non-ASCII bytes), and the rules applied to what tar itself reports.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { checkMembers, listArchive, parseListingLine } from "../../agent/release/archive";
import { TarMember, tarGz } from "./helpers/tar-archive";

const RULES = { reserved: [".slotshift-release.json"], linkedOut: ["media", ".env"] };

describe("release archive members", () => {
    let dir: string;
    const write = (members: TarMember[]) => {
        const file = path.join(dir, `a-${Math.random().toString(36).slice(2)}.tar.gz`);
        fs.writeFileSync(file, tarGz(members));
        return file;
    };
    before(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-archive-"))));
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("reads names and link targets verbatim, whatever they contain", () => {
        const odd = 'we ird -> x" link to y\nz é';
        const members = listArchive(
            write([
                { name: "./", type: "dir" },
                { name: odd, data: "x" },
                { name: "l", type: "symlink", link: odd },
                { name: "d/", type: "dir" },
            ]),
        );
        assert.deepStrictEqual(
            members.map((m) => [m.type, m.name, m.linkTarget]),
            [
                ["dir", "", undefined],
                ["file", odd, undefined],
                ["symlink", "l", odd],
                ["dir", "d", undefined],
            ],
        );
    });

    it("refuses a listing line it cannot read instead of guessing", () => {
        assert.strictEqual(parseListingLine('-rw-r--r-- 0/0 5 2026-01-01 00:00:00 "a" trailing'), undefined);
        assert.strictEqual(parseListingLine("garbage"), undefined);
    });

    it("names every bad member and why, at most five, in one error", () => {
        const members = listArchive(
            write([
                { name: "ok.txt", data: "x" },
                { name: "null", type: "chardev", devmajor: 1, devminor: 3 },
                { name: "fifo", type: "fifo" },
                { name: "hl", type: "hardlink", link: "ok.txt" },
                { name: "suid", data: "x", mode: 0o4755 },
                { name: "abs", type: "symlink", link: "/etc/shadow" },
                { name: "up", type: "symlink", link: "../x" },
            ]),
        );
        assert.throws(
            () => checkMembers("r.tar.gz", members, RULES),
            (e: Error) => {
                assert.match(e.message, /refusing to unpack r\.tar\.gz: member "null" is a character device/);
                assert.match(e.message, /"fifo" is a FIFO/);
                assert.match(e.message, /"hl" is a hard link/);
                assert.match(e.message, /"suid" has the setuid/);
                assert.match(e.message, /"abs" is a symlink to the absolute path \/etc\/shadow/);
                assert.match(e.message, /\(and 1 more\); nothing was unpacked/);
                return true;
            },
        );
    });

    it("lets relative links that stay inside through (also through other links and ..)", () => {
        const members = listArchive(
            write([
                { name: "a/b/", type: "dir" },
                { name: "a/b/c.js", data: "x" },
                { name: "a/up", type: "symlink", link: ".." },
                { name: "x", type: "symlink", link: "a/up/a/b/../b/c.js" },
                { name: "node_modules/.bin/tool", type: "symlink", link: "../pkg/bin/tool" },
            ]),
        );
        assert.doesNotThrow(() => checkMembers("r.tar.gz", members, RULES));
    });

    it("refuses a second member of the same name (it would replace what was checked)", () => {
        const members = listArchive(
            write([
                { name: "a", type: "symlink", link: "b" },
                { name: "a", type: "symlink", link: "../../etc" },
            ]),
        );
        assert.throws(() => checkMembers("r.tar.gz", members, RULES), /"a" appears more than once/);
    });
});
