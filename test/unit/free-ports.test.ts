// The harness's ports: never from the kernel's ephemeral range, where a connection to a down slot
// port can be made from that same port (to itself) and keep it bound for a minute.
import * as assert from "assert";
import * as net from "net";
import { candidateRange, ephemeralRange, RESERVED_PORTS } from "../../dev/loopback/free-ports";
import { freePorts } from "../../dev/loopback/harness";

describe("free loopback ports for test servers", () => {
    it("come from outside the ephemeral range, the slots' two consecutive, all distinct and free", async () => {
        const [low, high] = ephemeralRange();
        for (let round = 0; round < 5; round++) {
            const { base, others } = await freePorts(4);
            const all = [base, base + 1, ...others];
            for (const p of all) {
                assert.ok(p < low || p > high, `port ${p} is inside the ephemeral range ${low}-${high}`);
                assert.ok(!RESERVED_PORTS.has(p), `port ${p} is reserved`);
            }
            assert.strictEqual(new Set(all).size, all.length, `ports repeat: ${all.join(" ")}`);
            for (const p of all) {
                await new Promise<void>((resolve, reject) => {
                    const s = net.createServer().once("error", reject);
                    s.listen(p, "127.0.0.1", () => s.close(() => resolve()));
                });
            }
        }
    });

    it("choose from a range wholly outside the ephemeral one, wide enough to find free pairs", () => {
        const [low, high] = ephemeralRange();
        const [from, to] = candidateRange();
        assert.ok(to < low || from > high, `${from}-${to} overlaps ${low}-${high}`);
        assert.ok(to - from > 1000, `${from}-${to} is narrow`);
    });
});
