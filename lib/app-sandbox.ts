// The sandbox every process of the app runs in: the slot unit (templates/app@.service.njk) and the
// transient units the agent starts for a release's build, check, migration gate and migrate
// (agent/processes/transient-unit.ts). One list, so the two can never drift apart. `systemd-analyze security`
// must stay at or below 2.0 for both (test/configs pins the slot unit, test/e2e the transient ones).
import { HostLayout } from "./host-layout";

export interface SandboxDirective {
    name: string;
    value: string;
    /** Why it is set (or set this way); rendered as a comment above it in unit files. */
    why?: string;
}

export interface SandboxOptions {
    /** Directories the process may write; everything else is read-only or hidden. */
    readWritePaths: readonly string[];
    /** "loopback": the process may reach loopback addresses only (the slot unit's appEgress). */
    egress?: "any" | "loopback";
}

/** EC2's instance metadata service, IPv4 and IPv6 (the same addresses on other clouds' IPv4). */
const METADATA_ADDRESSES = "169.254.169.254 fd00:ec2::254";

export function appSandbox(layout: HostLayout, opts: SandboxOptions): SandboxDirective[] {
    const d = (name: string, value: string, why?: string): SandboxDirective => (why ? { name, value, why } : { name, value });
    const out: SandboxDirective[] = [d("ProtectSystem", "strict")];
    opts.readWritePaths.forEach((p, i) =>
        out.push(
            d(
                "ReadWritePaths",
                p,
                i === 0 ? "The only writable places. Releases are root-owned, so app code can never rewrite itself even without this." : undefined,
            ),
        ),
    );
    out.push(
        d("InaccessiblePaths", `-${layout.deployDir}`, "The agent's state and the TLS keys are root-only by mode already; hide them as well."),
        d("InaccessiblePaths", `-${layout.tlsDir}`),
        d("ProtectHome", "yes"),
        d("PrivateTmp", "yes"),
        d("PrivateDevices", "yes"),
        d("DevicePolicy", "closed"),
        d("PrivateIPC", "yes"),
        d("PrivateMounts", "yes"),
        d(
            "PrivateUsers",
            "yes",
            "Maps only root and the app user; files of other users show as nobody. Peer authentication to PostgreSQL still sees the real uid (SO_PEERCRED is translated into the server's namespace).",
        ),
        d("NoNewPrivileges", "yes"),
        d("CapabilityBoundingSet", ""),
        d("AmbientCapabilities", ""),
        d(
            "RestrictAddressFamilies",
            "AF_UNIX AF_INET AF_INET6",
            "PostgreSQL's /run/postgresql socket keeps working under ProtectSystem=strict: connect() needs write permission on the socket inode (mode 0777), not a writable mount.",
        ),
    );
    if (opts.egress === "loopback") {
        out.push(
            d("IPAddressDeny", "any", "The app talks to loopback only (HAProxy's checks, PostgreSQL); no DNS, SMTP or outside APIs."),
            d("IPAddressAllow", "localhost"),
        );
    } else {
        out.push(
            d(
                "IPAddressDeny",
                METADATA_ADDRESSES,
                "Never the cloud's instance metadata service: on aws its user data holds the host's SSH host key, and it hands out any instance role's credentials.",
            ),
        );
    }
    out.push(
        d("SystemCallFilter", "@system-service"),
        d("SystemCallFilter", "~@privileged @resources"),
        d(
            "SystemCallFilter",
            "@setuid @chown",
            "...but setuid/setgid/setgroups/chown to the app's own ids: gunicorn's workers call setuid(own uid) at boot and die on EPERM otherwise. Without capabilities these calls cannot change identity.",
        ),
        d("SystemCallErrorNumber", "EPERM", "A filtered call fails with EPERM instead of killing the process (runtimes probe e.g. setrlimit)."),
        d("SystemCallArchitectures", "native"),
        d("ProtectKernelTunables", "yes"),
        d("ProtectKernelModules", "yes"),
        d("ProtectKernelLogs", "yes"),
        d("ProtectControlGroups", "yes"),
        d("ProtectClock", "yes"),
        d("ProtectHostname", "yes"),
        d(
            "ProtectProc",
            "invisible",
            "No ProcSubset=pid: it hides /proc/cpuinfo and /proc/stat, so Node's os.cpus() returns [] and apps sizing their worker pool from it start none. It costs under 0.1 of exposure.",
        ),
        d("RestrictNamespaces", "yes"),
        d("RestrictSUIDSGID", "yes"),
        d("RestrictRealtime", "yes"),
        d("LockPersonality", "yes"),
        d("KeyringMode", "private"),
        d("RemoveIPC", "yes"),
        d("UMask", "0077", "NGINX still reads uploads: the media directory's default ACL takes the umask's place there."),
    );
    // MemoryDenyWriteExecute stays off: it breaks JITs (Node's V8, PyPy) and libffi callbacks.
    return out;
}

/**
 * The deploy slice's resource controls: build, check and migrations run there, so under contention
 * the live release keeps the CPU and the disk (the slot units keep the default weight of 100).
 * Tune them here; templates/app-deploy.slice.njk and the NixOS module render them.
 */
export const DEPLOY_SLICE_PROPERTIES: readonly SandboxDirective[] = [
    { name: "CPUWeight", value: "10", why: "A tenth of a slot's share of the CPU when both want it; all of it when idle." },
    { name: "IOWeight", value: "10" },
];

/**
 * Set on each transient unit as well: where cgroup weights are not honoured (no CPU/IO controller
 * delegated, a scheduler that ignores io.weight), the kernel's nice level and idle I/O class still
 * put the deploy behind the live release.
 */
export const DEPLOY_PROCESS_PROPERTIES: readonly SandboxDirective[] = [
    { name: "Nice", value: "15" },
    { name: "IOSchedulingClass", value: "idle" },
];
