// The dashboard's service <app>-dashboard.service, checked by systemd's own parser and security
// analysis, as the slot unit is.
import * as assert from "assert";
import * as path from "path";
import { renderDashboardUnit } from "../../program/host-files";
import { APP, contextFor, requireTools, run, tempDir, unitDirectives, writeFile } from "./helpers";

/** The highest `systemd-analyze security` exposure the dashboard unit may have (it runs as root, without capabilities). */
const MAX_EXPOSURE = 2.0;

function unitFile(unit: string): { dir: string; file: string } {
    const dir = tempDir("dashboard-unit");
    return { dir, file: writeFile(path.join(dir, `${APP}-dashboard.service`), unit) };
}

describe("dashboard unit", () => {
    before(() => {
        requireTools("systemd-analyze");
    });

    it("passes systemd-analyze verify", () => {
        const { dir, file } = unitFile(renderDashboardUnit(contextFor()));
        const r = run("systemd-analyze", ["verify", "--man=no", "--generators=no", "--recursive-errors=no", file]);
        const ours = `${r.stdout}${r.stderr}`
            .split("\n")
            .filter((l) => l.includes(dir) || l.includes(`${APP}-dashboard`))
            // The agent and the node binary do not exist on this machine.
            .filter((l) => !/is not executable|No such file or directory|Command .* is not executable/.test(l));
        assert.deepStrictEqual(ours, []);
    });

    it(`has a systemd-analyze security exposure of at most ${MAX_EXPOSURE}`, () => {
        const { file } = unitFile(renderDashboardUnit(contextFor()));
        const r = run("systemd-analyze", ["security", "--offline=true", `--threshold=${MAX_EXPOSURE * 10}`, "--no-pager", file]);
        const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout);
        assert.ok(m, r.stdout + r.stderr);
        console.log(`      exposure ${m[1]}`);
        assert.ok(Number(m[1]) <= MAX_EXPOSURE, r.stdout);
    });

    it("listens on loopback only and is reached on the configured port", () => {
        const d = unitDirectives(renderDashboardUnit(contextFor({ dashboardPort: 9123 })));
        const exec = d.find(([k]) => k === "ExecStart")![1];
        assert.match(exec, / \/srv\/shop\/deploy\/agent\.js dashboard --dashboard-port 9123$/);
        assert.deepStrictEqual(
            d.filter(([k]) => k.startsWith("IPAddress")),
            [
                ["IPAddressDeny", "any"],
                ["IPAddressAllow", "localhost"],
            ],
        );
    });
});
