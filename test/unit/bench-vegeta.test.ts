// The benchmark's second load generator: vegeta's results become the same records as the project
// generator's, so both are cut into the same phases.
import * as assert from "assert";
import { decode } from "../../bench/vegeta";

describe("vegeta results as the benchmark's records", () => {
    it("an answer counts when it ended (sent + latency), with its status, method and release; no answer is an error", () => {
        const lines = [
            { code: 200, timestamp: "2026-12-03T08:55:02.602777851Z", latency: 12_500_000, error: "", method: "GET", headers: { "X-Release-Version": ["v1"] } },
            { code: 503, timestamp: "2026-12-03T08:55:02.800000000Z", latency: 1_000_000, error: "503 Service Unavailable", method: "POST", headers: {} },
            { code: 0, timestamp: "2026-12-03T08:55:03Z", latency: 30_000_000_000, error: "net/http: timeout", method: "GET", headers: null },
        ];
        const { records, errorRecords } = decode(lines.map((l) => JSON.stringify(l)).join("\n") + "\n", "x-release-version");
        const sent = Date.parse("2026-12-03T08:55:02.602Z") + 0.777851;
        assert.strictEqual(records.length, 2);
        assert.ok(Math.abs(records[0].t - (sent + 12.5)) < 1e-6, `t ${records[0].t}`);
        assert.deepStrictEqual(
            records.map((r) => [r.status, r.method, r.version, r.latencyMs]),
            [
                [200, "GET", "v1", 12.5],
                [503, "POST", "-", 1],
            ],
        );
        assert.deepStrictEqual(errorRecords, [{ t: Date.parse("2026-12-03T08:55:03Z") + 30_000, message: "net/http: timeout" }]);
    });
});
