// The pure half of a slot's runtime (lib/slot-activation.ts): what changed, the start script, the
// health maps HAProxy reads.
import * as assert from "assert";
import { renderHealthMaps, renderStartScript, activationChanges, SlotActivation } from "../../lib/slot-activation";

const base: SlotActivation = {
    port: 8001,
    healthPath: "/healthz",
    healthHost: "app.example.com",
    startCommand: "gunicorn app:wsgi",
    envSha256: "a".repeat(64),
};

describe("slot runtime", () => {
    it("names each changed setting, and the environment only as changed", () => {
        assert.deepStrictEqual(activationChanges(base, base), []);
        const changed = activationChanges(base, { ...base, port: 9001, healthPath: "/db", envSha256: "b".repeat(64) });
        assert.deepStrictEqual(changed, ["port (slotBasePort) 8001 -> 9001", 'healthPath "/healthz" -> "/db"', "appEnv changed"]);
        assert.ok(!changed.join(" ").includes("aaaa"), "no digest in the message");
        assert.deepStrictEqual(activationChanges(base, { ...base, healthHost: "new.example.com", startCommand: "node server.js" }), [
            'Host of the checks (domain) "app.example.com" -> "new.example.com"',
            'startCommand "gunicorn app:wsgi" -> "node server.js"',
        ]);
    });

    it("the start script execs the command once, so it is the unit's main process", () => {
        assert.match(renderStartScript("gunicorn --bind 127.0.0.1:$PORT app:wsgi"), /^exec gunicorn --bind 127\.0\.0\.1:\$PORT app:wsgi$/m);
        assert.match(renderStartScript("exec node server.js"), /^exec node server\.js$/m);
        assert.doesNotMatch(renderStartScript("exec node server.js"), /exec exec/);
    });

    it("health maps name only the slots given, one line each", () => {
        const m = renderHealthMaps({ green: { healthPath: "/db", healthHost: "app.example.com" } });
        assert.strictEqual(m.paths, "green /db\n");
        assert.strictEqual(m.hosts, "green app.example.com\n");
        const both = renderHealthMaps({ blue: { healthPath: "/a", healthHost: "x" }, green: { healthPath: "/b", healthHost: "y" } });
        assert.strictEqual(both.paths, "blue /a\ngreen /b\n");
    });
});
