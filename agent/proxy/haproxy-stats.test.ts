import * as assert from "assert";
import { backendServers, parseGetWeight, parseShowStat, totalResponses } from "./haproxy-stats";

// Shape of HAProxy 2.6 `show stat app 4 -1` (columns trimmed; parsing is by name, so order and
// extra columns must not matter).
const SHOW_STAT = [
    "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,check_status,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other",
    "app,blue,0,0,3,9,,1200,0,0,,0,,1,2,0,1,UP,90,1,0,L7OK,0,1100,10,40,50,0",
    "app,green,0,0,0,2,,130,0,0,,0,,0,0,0,0,UP 1/2,10,1,0,* L7STS,0,120,0,0,10,0",
    "app,BACKEND,0,0,3,9,,1330,0,0,,0,,1,2,0,1,UP,100,2,0,,0,1220,10,40,60,0",
    "",
].join("\n");

describe("stats: show stat parsing", () => {
    it("reads servers by column name and skips the BACKEND row", () => {
        const servers = backendServers(parseShowStat(SHOW_STAT), "app");
        assert.deepStrictEqual([...servers.keys()], ["blue", "green"]);
        const blue = servers.get("blue")!;
        assert.strictEqual(blue.status, "UP");
        assert.strictEqual(blue.checkStatus, "L7OK");
        assert.strictEqual(blue.weight, 90);
        assert.strictEqual(blue.scur, 3);
        assert.strictEqual(blue.hrsp5xx, 50);
        assert.strictEqual(blue.econ, 1);
        assert.strictEqual(blue.eresp, 2);
        assert.strictEqual(totalResponses(blue), 1200);
    });

    it("strips the in-progress marker from check_status", () => {
        const green = backendServers(parseShowStat(SHOW_STAT), "app").get("green")!;
        assert.strictEqual(green.checkStatus, "L7STS");
        assert.strictEqual(green.status, "UP 1/2");
    });

    it("does not depend on column order", () => {
        const swapped = ["# svname,pxname,hrsp_5xx,status,weight,scur", "blue,app,7,DOWN,0,0", ""].join("\n");
        const blue = backendServers(parseShowStat(swapped), "app").get("blue")!;
        assert.strictEqual(blue.hrsp5xx, 7);
        assert.strictEqual(blue.status, "DOWN");
        assert.strictEqual(blue.hrsp2xx, 0, "missing columns read as 0");
    });

    it("ignores other backends", () => {
        const text = ["# pxname,svname,status", "other,blue,UP", "app,green,UP", ""].join("\n");
        assert.deepStrictEqual([...backendServers(parseShowStat(text), "app").keys()], ["green"]);
    });

    it("rejects output that is not CSV stats", () => {
        assert.throws(() => parseShowStat("Unknown command.\n"), /unexpected "show stat" output/);
    });

    it("parses get weight", () => {
        assert.deepStrictEqual(parseGetWeight("10 (initial 100)\n\n"), { current: 10, initial: 100 });
        assert.throws(() => parseGetWeight("No such server.\n"));
    });
});
