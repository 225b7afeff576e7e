import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LockBusyError } from "../common/errors";
import { acquireLock, describeLock, isProcessAlive, lockStatus, newLockInfo, processStartTime, readLock, releaseLock } from "./lock";

/** A pid that certainly exited (a child we waited for). */
function deadPid(): number {
    const r = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    return Number(r.stdout);
}

describe("lock", () => {
    let dir: string;
    let lockFile: string;
    beforeEach(() => {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-lock-"));
        lockFile = path.join(dir, "deploy", "lock");
    });
    afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("records the holder and releases only its own lock", () => {
        const info = newLockInfo("activate", "v2");
        assert.deepStrictEqual(acquireLock(lockFile, info), { stale: undefined });
        const read = readLock(lockFile)!;
        assert.strictEqual(read.pid, process.pid);
        assert.strictEqual(read.version, "v2");
        assert.ok(read.procStart);
        releaseLock(lockFile, process.pid + 1);
        assert.ok(fs.existsSync(lockFile), "someone else's release is a no-op");
        releaseLock(lockFile);
        assert.ok(!fs.existsSync(lockFile));
    });

    it("a second acquire fails at once naming pid, command, version and start time", () => {
        acquireLock(lockFile, newLockInfo("activate", "v2"));
        const t = Date.now();
        assert.throws(
            () => acquireLock(lockFile, newLockInfo("activate", "v3")),
            (e: unknown) => e instanceof LockBusyError && new RegExp(`pid ${process.pid}, activate v2, started \\d{4}-`).test(e.message) && e.exitCode === 3,
        );
        assert.ok(Date.now() - t < 100, "never waits");
    });

    it("adopts a lock this very process holds (taken before an exec) only when asked; never another's", () => {
        acquireLock(lockFile, newLockInfo("rollback"));
        assert.throws(() => acquireLock(lockFile, newLockInfo("rollback")), LockBusyError, "not asked: busy, as always");
        assert.deepStrictEqual(acquireLock(lockFile, newLockInfo("rollback"), { adoptOwn: true }), { adopted: true });
        // Same pid, other start time: a dead holder whose pid was reused, taken over as stale, not adopted.
        fs.writeFileSync(lockFile, JSON.stringify({ ...newLockInfo("rollback"), procStart: "1" }));
        const taken = acquireLock(lockFile, newLockInfo("rollback"), { adoptOwn: true });
        assert.deepStrictEqual([taken.adopted, taken.stale?.procStart], [undefined, "1"]);
        // Another live process (the test runner's parent) holding it.
        fs.writeFileSync(lockFile, JSON.stringify({ ...newLockInfo("activate", "v2"), pid: process.ppid, procStart: processStartTime(process.ppid) }));
        assert.throws(() => acquireLock(lockFile, newLockInfo("rollback"), { adoptOwn: true }), LockBusyError);
    });

    it("a lock whose holder is dead is stale: reported, then taken over", () => {
        const dead = { ...newLockInfo("activate", "v2"), pid: deadPid() };
        fs.mkdirSync(path.dirname(lockFile), { recursive: true });
        fs.writeFileSync(lockFile, JSON.stringify(dead));
        assert.strictEqual(lockStatus(lockFile).state, "stale");
        const got = acquireLock(lockFile, newLockInfo("activate", "v3"));
        assert.strictEqual(got.stale?.pid, dead.pid);
        assert.strictEqual(readLock(lockFile)?.version, "v3");
    });

    it("a reused pid (different start time) is not the holder", () => {
        const info = { ...newLockInfo("activate", "v2"), procStart: "1" };
        assert.strictEqual(isProcessAlive(info.pid, info.procStart), false);
        assert.strictEqual(isProcessAlive(process.pid, processStartTime(process.pid)), true);
    });

    it("a corrupt lock file counts as stale", () => {
        fs.mkdirSync(path.dirname(lockFile), { recursive: true });
        fs.writeFileSync(lockFile, "{not json");
        assert.strictEqual(lockStatus(lockFile).state, "stale");
        assert.ok(acquireLock(lockFile, newLockInfo("prune")).stale);
    });

    it("describes the holder with its age", () => {
        const info = { ...newLockInfo("rollback"), startedAt: new Date(Date.now() - 42_000).toISOString() };
        assert.match(describeLock(info), /rollback, started .* \(42 s ago\)/);
    });
});
