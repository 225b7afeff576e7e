// The local host itself: a real Debian 12 with systemd as PID 1, reachable over SSH like any server.
import * as assert from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { useLocalHost } from "./fixture";

describe("local host (Debian 12 under systemd-nspawn)", function () {
    this.timeout(120_000);
    const host = useLocalHost();

    it("boots until systemd reports running, with no failed units", async () => {
        const r = await host.ssh("systemctl is-system-running");
        assert.strictEqual(r.stdout.trim(), "running", `system state: ${r.stdout.trim()} ${r.stderr}`);
        assert.strictEqual((await host.sshOk("systemctl list-units --failed --no-legend --plain")).trim(), "");
        assert.strictEqual((await host.sshOk("readlink /proc/1/exe")).trim(), "/usr/lib/systemd/systemd");
    });

    it("is Debian 12 with the packages the host setup needs already installed", async () => {
        assert.match(await host.sshOk("cat /etc/debian_version"), /^12\./);
        const pkgs = ["haproxy", "nginx-light", "nodejs", "postgresql", "python3-django", "gunicorn", "python3-psycopg2", "socat", "acl"];
        const out = await host.sshOk(`dpkg-query -W -f='\${Package} \${Status}\\n' ${pkgs.join(" ")}`);
        for (const p of pkgs) assert.match(out, new RegExp(`^${p} install ok installed$`, "m"), `${p} not installed:\n${out}`);
        const node = (await host.sshOk("node --version")).trim();
        assert.ok(Number(/^v(\d+)/.exec(node)?.[1]) >= 18, `the agent needs Node 18+, host has ${node}`);
    });

    it("runs sshd on loopback only, keys only, with the host key pinned in our known_hosts", async () => {
        assert.strictEqual((await host.sshOk("systemctl is-active ssh")).trim(), "active");
        const listeners = (await host.sshOk(`ss -Hltn 'sport = :${host.sshPort}'`)).trim().split("\n");
        assert.ok(listeners.length > 0 && listeners.every((l) => l.includes(`127.0.0.1:${host.sshPort}`)), listeners.join("\n"));
        const config = await host.sshOk("sshd -T");
        assert.match(config, /^passwordauthentication no$/m);
        const served = (await host.sshOk("cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub")).trim();
        assert.strictEqual(host.hostKey(), served);
    });

    it("starts hardened units (a transient service under systemd-run)", async () => {
        const out = await host.sshOk(
            "systemd-run --wait --pipe --quiet --collect -p ProtectSystem=strict -p PrivateTmp=yes -p NoNewPrivileges=yes " +
                "-p PrivateDevices=yes -p PrivateUsers=yes -p DynamicUser=yes /bin/sh -c 'echo unit-ran-as-$(id -u)'",
        );
        assert.match(out, /^unit-ran-as-\d+$/m);
    });

    it("copies files both ways with scp and writes files atomically", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-e2e-"));
        try {
            const local = path.join(dir, "up.txt");
            fs.writeFileSync(local, "hello host\n");
            await host.upload(local, "/tmp/up.txt");
            await host.writeFile("/tmp/written.txt", "via stdin\n", "0600");
            assert.strictEqual(await host.sshOk("cat /tmp/up.txt /tmp/written.txt; stat -c %a /tmp/written.txt"), "hello host\nvia stdin\n600\n");
            await host.download("/etc/os-release", path.join(dir, "os-release"));
            assert.match(fs.readFileSync(path.join(dir, "os-release"), "utf8"), /VERSION_CODENAME=bookworm/);
        } finally {
            fs.rmSync(dir, { recursive: true, force: true });
            await host.ssh("rm -f /tmp/up.txt /tmp/written.txt");
        }
    });
});
