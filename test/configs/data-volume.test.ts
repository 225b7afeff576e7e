// The data volume's setup (templates/data-volume.sh.njk) on a real block device: a loop device
// over a sparse file stands in for the EBS volume. A blank volume is formatted and mounted; a
// volume that holds a filesystem is never formatted again, so its data survives a re-run (as on
// a replaced instance). NixOS's variant is run (the mounts are the module's); the Debian one,
// which writes /etc/fstab, is checked by shellcheck in setup-debian.test.ts and by its rendering.
// Needs root (losetup, mount); skipped otherwise.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { renderDataVolumeScript } from "../../program/host-files";
import { buildDataVolumeContext } from "../../program/template-context";
import { contextFor, run, tempDir } from "./helpers";

describe("data volume setup on a real block device", function () {
    this.timeout(120_000);
    let dir: string;
    let loop = "";
    let script = "";
    let mount = "";

    before(function () {
        if (process.getuid?.() !== 0 || run("sh", ["-c", "command -v losetup mkfs.ext4 blkid"]).status !== 0) {
            console.log("      skipped: needs root, losetup, mkfs.ext4 and blkid");
            return this.skip();
        }
        dir = tempDir("data-volume");
        const image = path.join(dir, "volume.img");
        fs.writeFileSync(image, "");
        fs.truncateSync(image, 64 * 1024 * 1024);
        const attach = run("losetup", ["--find", "--show", image]);
        assert.strictEqual(attach.status, 0, attach.stderr);
        loop = attach.stdout.trim();
        const ctx = contextFor({}, dir);
        assert.ok(ctx.layout.dataMount.startsWith(dir), "every path under the temp root");
        // The volume as NixOS's apply step sees it; its device is the loop device here.
        const dataVolume = { ...buildDataVolumeContext(ctx.layout, "vol-0123456789abcdef0", "nixos"), devices: [path.join(dir, "no-such-device"), loop] };
        mount = dataVolume.mount;
        script = ["set -euo pipefail", "TMP_FILES=()", renderDataVolumeScript({ ...ctx, dataVolume })].join("\n");
    });

    after(function () {
        if (mount && run("mountpoint", ["-q", mount]).status === 0) run("umount", [mount]);
        if (loop) run("losetup", ["-d", loop]);
    });

    it("formats a blank volume, mounts it and makes its directories", () => {
        const r = run("bash", ["-c", script]);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.match(r.stdout, /formatted the new data volume vol-0123456789abcdef0/);
        assert.strictEqual(run("mountpoint", ["-q", mount]).status, 0);
        assert.ok(fs.statSync(path.join(mount, "shared")).isDirectory());
        assert.ok(fs.statSync(path.join(mount, "postgresql")).isDirectory());
        fs.writeFileSync(path.join(mount, "postgresql", "PG_VERSION"), "15\n");
    });

    it("never formats a volume that holds a filesystem: a re-run (or a new instance) keeps the data", () => {
        run("umount", [mount]);
        const r = run("bash", ["-c", script]);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.doesNotMatch(r.stdout, /formatted/);
        assert.strictEqual(fs.readFileSync(path.join(mount, "postgresql", "PG_VERSION"), "utf8"), "15\n");
    });

    it("refuses a device it cannot find, saying which volume", () => {
        const missing = script.replace(new RegExp(loop.replace(/\//g, "\\/"), "g"), path.join(dir, "gone")).replace("seq 1 60", "seq 1 2");
        const r = run("bash", ["-c", missing]);
        assert.strictEqual(r.status, 1);
        assert.match(r.stderr, /the data volume vol-0123456789abcdef0 is not attached to this instance/);
    });
});
