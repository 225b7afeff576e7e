// Starts and stops one gunicorn serving the example Django app, the way a process supervisor does
// (supervisord, systemd): detached, with an environment from files, as the app user, a pid file
// per name. The benchmark's naive deploy scripts require() it; the agent runs it as its
// processControl command (no systemd here), exactly like dev/loopback/fixtures/slot-ctl.cjs.
//   node app-ctl.cjs start|stop|pids <slot> <appRoot> <runDir> [user]
// `pids` lists the slot's processes (gunicorn's master and its workers), so the agent can set their
// nice level and I/O class as it does a systemd unit's cgroup.
"use strict";
const { spawn } = require("child_process");
const fs = require("fs");
const path = require("path");

const PYTHON = process.env.SLOTSHIFT_PYTHON || "/usr/bin/python3";
// The example app's startCommand (Pulumi.local.yaml, examples/django-app/README.md).
const gunicornArgs = (port) => ["-m", "gunicorn", "--bind", `127.0.0.1:${port}`, "--workers", "2", "--graceful-timeout", "25", "mysite.wsgi"];
// gunicorn waits up to --graceful-timeout for its workers; a supervisor's stop timeout is longer.
const STOP_TIMEOUT_MS = 30000;

function alive(pid) {
    try {
        process.kill(pid, 0);
    } catch {
        return false;
    }
    try {
        // A zombie (exited, not yet reaped by its parent) counts as gone.
        const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
    } catch {
        return false;
    }
}

const pidFile = (runDir, name) => path.join(runDir, `app-${name}.pid`);

function readPid(runDir, name) {
    try {
        return Number(fs.readFileSync(pidFile(runDir, name), "utf8")) || 0;
    } catch {
        return 0;
    }
}

function envFile(file) {
    const env = {};
    let text = "";
    try {
        text = fs.readFileSync(file, "utf8");
    } catch {
        return env;
    }
    for (const line of text.split("\n")) {
        const eq = line.indexOf("=");
        if (eq > 0 && !line.startsWith("#")) env[line.slice(0, eq).trim()] = line.slice(eq + 1).replace(/^"(.*)"$/, (_, v) => v.replace(/\\([\\"`$])/g, "$1"));
    }
    return env;
}

/** uid/gid of a user from /etc/passwd; undefined when not root (the app then runs as this user). */
function account(user) {
    if (!user || process.getuid() !== 0) return undefined;
    for (const line of fs.readFileSync("/etc/passwd", "utf8").split("\n")) {
        const f = line.split(":");
        if (f[0] === user) return { uid: Number(f[2]), gid: Number(f[3]) };
    }
    throw new Error(`no user ${user}`);
}

/**
 * Starts gunicorn in `dir` (a symlink is followed once, at chdir, as supervisord's `directory=`
 * does) on `port`. Returns its pid; the caller does not wait for readiness.
 */
function start({ name, dir, port, env, runDir, user }) {
    fs.mkdirSync(runDir, { recursive: true });
    const running = readPid(runDir, name);
    if (running && alive(running)) throw new Error(`${name} is already running (pid ${running})`);
    const out = fs.openSync(path.join(runDir, `app-${name}.log`), "a");
    const child = spawn(PYTHON, gunicornArgs(port), {
        cwd: dir,
        env: { PATH: "/usr/bin:/bin", LANG: "C.UTF-8", HOME: "/", ...env, PORT: String(port) },
        detached: true,
        stdio: ["ignore", out, out],
        ...account(user),
    });
    fs.closeSync(out);
    fs.writeFileSync(pidFile(runDir, name), String(child.pid));
    child.unref();
    return child.pid;
}

/** SIGTERM, wait for the exit (gunicorn finishes in-flight requests), SIGKILL after the timeout. */
async function stop({ name, runDir, timeoutMs = STOP_TIMEOUT_MS }) {
    const pid = readPid(runDir, name);
    if (pid && alive(pid)) {
        process.kill(pid, "SIGTERM");
        const deadline = Date.now() + timeoutMs;
        while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        if (alive(pid)) process.kill(pid, "SIGKILL");
    }
    fs.rmSync(pidFile(runDir, name), { force: true });
}

/** `pid` and every process below it, from /proc (the ppid field of each process's stat). */
function processTree(pid) {
    const parent = new Map();
    for (const name of fs.readdirSync("/proc")) {
        if (!/^[0-9]+$/.test(name)) continue;
        try {
            const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
            parent.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
        } catch {
            // exited meanwhile
        }
    }
    const tree = [pid];
    for (let i = 0; i < tree.length; i++) for (const [child, ppid] of parent) if (ppid === tree[i]) tree.push(child);
    return tree.filter(alive);
}

/**
 * The agent's slot: slots/<slot> -> a release, slots/<slot>.env (PORT, RELEASE_VERSION, SLOT), and
 * the app environment the activation snapshotted for it (slots/<slot>.app-env; shared/env before it).
 */
function slotSpec(slot, appRoot, runDir, user) {
    const snapshot = path.join(appRoot, "slots", `${slot}.app-env`);
    const appEnv = fs.existsSync(snapshot) ? snapshot : path.join(appRoot, "shared", "env");
    const env = { ...envFile(appEnv), ...envFile(path.join(appRoot, "slots", `${slot}.env`)) };
    return { name: slot, dir: fs.realpathSync(path.join(appRoot, "slots", slot)), port: Number(env.PORT), env, runDir, user };
}

module.exports = { start, stop, alive, readPid, envFile, processTree };

if (require.main === module) {
    const [cmd, slot, appRoot, runDir, user] = process.argv.slice(2);
    const main = async () => {
        if (cmd === "start") {
            // Like `systemctl start` of an active unit: a running slot is left alone.
            const pid = readPid(runDir, slot);
            if (!(pid && alive(pid))) start(slotSpec(slot, appRoot, runDir, user));
        } else if (cmd === "stop") {
            await stop({ name: slot, runDir });
        } else if (cmd === "pids") {
            const pid = readPid(runDir, slot);
            if (pid && alive(pid)) process.stdout.write(processTree(pid).join("\n") + "\n");
        } else {
            throw new Error("usage: app-ctl.cjs start|stop|pids <slot> <appRoot> <runDir> [user]");
        }
    };
    main().catch((e) => {
        process.stderr.write(`app-ctl: ${e.message}\n`);
        process.exit(1);
    });
}
