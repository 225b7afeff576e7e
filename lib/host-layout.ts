// Where things live on the host. One function derives every path from the app name and a root,
// so the program, the templates, the agent and the tests can never disagree about a path.

export const SLOTS = ["blue", "green"] as const;
export type Slot = (typeof SLOTS)[number];

export function otherSlot(slot: Slot): Slot {
    return slot === "blue" ? "green" : "blue";
}

export interface HostLayout {
    appName: string;
    /** System user and group the app runs as. */
    appUser: string;
    /** /srv/<app> */
    appRoot: string;
    /** /srv/<app>/releases — one directory per version (Capistrano layout). */
    releasesDir: string;
    /**
     * /srv/<app>/builds — <version>/: what a release's build command writes (the release tree itself
     * is root-owned and read-only to the app). The app's processes find it in $SLOTSHIFT_BUILD_DIR;
     * root-owned like the release once prepare is done.
     */
    buildsDir: string;
    /** /srv/<app>/shared — state that outlives releases. */
    sharedDir: string;
    /**
     * /srv/<app>/shared/env — app environment (secrets), root:<app> 0640: only root writes it
     * (write-env); systemd reads it for the app's units (EnvironmentFile=), never a root process's env.
     */
    envFile: string;
    /** /srv/<app>/shared/media — uploads. */
    mediaDir: string;
    /** /srv/<app>/shared/static — fingerprinted static files of every kept release, merged. */
    staticDir: string;
    /** /srv/<app>/current -> releases/<live version>, swapped atomically. */
    currentLink: string;
    /** /srv/<app>/slots — <slot> -> ../releases/<version>, and <slot>.env (PORT, RELEASE_VERSION). */
    slotsDir: string;
    /** /srv/<app>/deploy — the agent's state: slots.json, lock, audit log, uploaded artifacts. */
    deployDir: string;
    lockFile: string;
    stateFile: string;
    auditLog: string;
    artifactsDir: string;
    /** /srv/<app>/deploy/agent.js — the bundled host agent. */
    agentPath: string;
    /** /srv/<app>/deploy/agent.json — the agent's settings (see AgentSettings). */
    agentConfigPath: string;
    /** /run: pid files and temp paths of HAProxy and NGINX when a test runs them unprivileged. */
    runDir: string;
    /** HAProxy runtime API socket (admin level, root only). */
    haproxySocket: string;
    /** HAProxy server-state file: runtime weights survive reloads. */
    haproxyStateFile: string;
    haproxyConfigFile: string;
    /**
     * /etc/haproxy/<app>-health-paths.map and -health-hosts.map — slot -> health path, slot -> Host
     * of its checks: each slot is checked as its activation asked (lib/slot-activation.ts). Written by
     * the agent when it starts a slot, read by haproxy.cfg's http-check.
     */
    haproxyHealthPathMap: string;
    haproxyHealthHostMap: string;
    nginxSiteFile: string;
    /**
     * /etc/nginx/<app>-live-slot.inc — included in the site's upstream: the live slot as a backup
     * server, NGINX's way around HAProxy while HAProxy refuses connections. Written by the agent at
     * every commit (not *.conf, and outside sites-enabled: nothing includes it at http level).
     */
    nginxLiveSlotFile: string;
    /** /var/www/<app>-maintenance — the maintenance page NGINX serves when HAProxy cannot. */
    maintenanceDir: string;
    /** <maintenanceDir>/maintenance.html — also HAProxy's own 503 when no slot is up. */
    maintenancePage: string;
    /** <deployDir>/maintenance — while it exists NGINX answers every request with the maintenance page. */
    maintenanceFlag: string;
    /** <deployDir>/logs — one log (and result file) per detached deploy worker. */
    logsDir: string;
    /** <deployDir>/transient — root-only env files of running transient units (see transientEnvFile). */
    transientEnvDir: string;
    /** <deployDir>/migrations — <version>.json once that version's migrations ran. */
    migrationsDir: string;
    /**
     * <deployDir>/env-snapshots — <sha256>.env: the app environment each activation started with,
     * root-only, so a rollback starts a release with its own environment again.
     */
    envSnapshotsDir: string;
    /** <deployDir>/static-manifests — <version>.json: the static files a release brought. */
    staticManifestsDir: string;
    /**
     * <deployDir>/release-digests — <version>.sha256: the bytes a version was prepared from. Kept
     * after the release is pruned: a version never names other bytes. Root-only, outside the
     * release tree the app can write.
     */
    releaseDigestsDir: string;
    /**
     * <deployDir>/rollback — the rollback command (templates/rollback.sh.njk): flips to the warm
     * previous release itself, before any Node.js starts, else runs the agent's rollback.
     */
    rollbackScript: string;
    /** <deployDir>/warm-flip — what that script flips (agent/state/warm-flip.ts), while a warm flip is possible. */
    warmFlipFile: string;
    /** <deployDir>/haproxy-save-state — saves HAProxy's runtime state before a reload (ExecReload). */
    haproxySaveStateScript: string;
    tlsDir: string;
    /** <tlsDir>/cert.pem and key.pem — the self-signed certificate. */
    selfSignedCertFile: string;
    selfSignedKeyFile: string;
    /** /var/www/<app>-acme — certbot's HTTP-01 webroot on Debian. */
    debianAcmeWebroot: string;
    /** /etc/letsencrypt/live — certbot's certificates on Debian: <dir>/<domain>/fullchain.pem. */
    letsencryptLiveDir: string;
    /** /var/lib/acme — NixOS's acme module: <dir>/<cert>/ holds a certificate and its state. */
    nixosAcmeDir: string;
    /**
     * /var/lib/acme/acme-challenge — the HTTP-01 webroot on NixOS: the acme module's units run as
     * user acme and may only write under /var/lib/acme and /run/acme (it is also nixpkgs' default).
     */
    nixosAcmeWebroot: string;
    /**
     * /var/lib/slotshift/<app>-data — where the data volume (aws) is mounted. Its `shared` and
     * `postgresql` directories are bind-mounted onto sharedDir and postgresqlDir (dataVolumeBinds).
     */
    dataMount: string;
    /** /var/lib/postgresql — PostgreSQL's clusters (Debian and NixOS alike). */
    postgresqlDir: string;
    /** <deployDir>/dashboard-token — the dashboard's login token, created at setup, 0600 root. */
    dashboardTokenFile: string;
    /** <app>-dashboard — the dashboard's systemd service, without ".service". */
    dashboardUnit: string;
    dashboardUnitFile: string;
    /** systemd template unit name, without ".service": <app>@ — instances are slots. */
    unitTemplate: string;
    unitFile: string;
    /** <app>-recover: the boot-time oneshot that runs `agent recover` (after HAProxy and the slots). */
    recoverUnit: string;
    recoverUnitFile: string;
    /**
     * system-<app>-deploy.slice: where the transient units of a deploy (build, check, migrations)
     * run, with low CPU and IO weights (lib/app-sandbox.ts), next to the slots in system-<app>.slice.
     */
    deploySlice: string;
    deploySliceFile: string;
}

/** The warm-flip file's name: beside slots.json, which it is derived from. */
const WARM_FLIP_FILE_NAME = "warm-flip";

/** The agent's settings file's name: beside agent.js, where the agent looks when no --config is given. */
const AGENT_CONFIG_FILE_NAME = "agent.json";

/** `<dir of file>/<name>`: a file named `name` in the directory of `file` ("" for a bare name). */
function besideFile(file: string, name: string): string {
    return `${file.slice(0, file.lastIndexOf("/") + 1)}${name}`;
}

/** agent.json beside an agent.js (see AGENT_CONFIG_FILE_NAME). */
export function agentConfigBeside(agentScript: string): string {
    return besideFile(agentScript, AGENT_CONFIG_FILE_NAME);
}

/**
 * `<dir>/.<name>.slotshift-new`: where a file is staged beside its target before it is checked and
 * renamed over it. A hidden name, because NGINX includes `sites-enabled/*` and glob patterns skip
 * dot files, so a staged or backup copy is never loaded as a second site.
 */
export function stagedPath(path: string, suffix = "slotshift-new"): string {
    const slash = path.lastIndexOf("/");
    return `${path.slice(0, slash + 1)}.${path.slice(slash + 1)}.${suffix}`;
}

export interface LayoutOptions {
    /** Prefix for every absolute path (tests run under a temp dir). Default "". */
    root?: string;
}

export function hostLayout(appName: string, opts: LayoutOptions = {}): HostLayout {
    const r = opts.root ?? "";
    const appRoot = `${r}/srv/${appName}`;
    const deployDir = `${appRoot}/deploy`;
    return {
        appName,
        appUser: appName,
        appRoot,
        releasesDir: `${appRoot}/releases`,
        buildsDir: `${appRoot}/builds`,
        sharedDir: `${appRoot}/shared`,
        envFile: `${appRoot}/shared/env`,
        mediaDir: `${appRoot}/shared/media`,
        staticDir: `${appRoot}/shared/static`,
        currentLink: `${appRoot}/current`,
        slotsDir: `${appRoot}/slots`,
        deployDir,
        lockFile: `${deployDir}/lock`,
        stateFile: `${deployDir}/slots.json`,
        auditLog: `${deployDir}/audit.log`,
        artifactsDir: `${deployDir}/artifacts`,
        agentPath: `${deployDir}/agent.js`,
        agentConfigPath: `${deployDir}/${AGENT_CONFIG_FILE_NAME}`,
        runDir: `${r}/run`,
        haproxySocket: `${r}/run/haproxy/${appName}-admin.sock`,
        haproxyStateFile: `${r}/var/lib/haproxy/${appName}.state`,
        haproxyConfigFile: `${r}/etc/haproxy/haproxy.cfg`,
        haproxyHealthPathMap: `${r}/etc/haproxy/${appName}-health-paths.map`,
        haproxyHealthHostMap: `${r}/etc/haproxy/${appName}-health-hosts.map`,
        nginxSiteFile: `${r}/etc/nginx/sites-enabled/${appName}.conf`,
        nginxLiveSlotFile: `${r}/etc/nginx/${appName}-live-slot.inc`,
        maintenanceDir: `${r}/var/www/${appName}-maintenance`,
        maintenancePage: `${r}/var/www/${appName}-maintenance/maintenance.html`,
        maintenanceFlag: `${deployDir}/maintenance`,
        logsDir: `${deployDir}/logs`,
        migrationsDir: `${deployDir}/migrations`,
        envSnapshotsDir: `${deployDir}/env-snapshots`,
        transientEnvDir: `${deployDir}/transient`,
        staticManifestsDir: `${deployDir}/static-manifests`,
        releaseDigestsDir: `${deployDir}/release-digests`,
        rollbackScript: `${deployDir}/rollback`,
        warmFlipFile: `${deployDir}/${WARM_FLIP_FILE_NAME}`,
        haproxySaveStateScript: `${deployDir}/haproxy-save-state`,
        tlsDir: `${r}/etc/ssl/${appName}`,
        selfSignedCertFile: `${r}/etc/ssl/${appName}/cert.pem`,
        selfSignedKeyFile: `${r}/etc/ssl/${appName}/key.pem`,
        debianAcmeWebroot: `${r}/var/www/${appName}-acme`,
        letsencryptLiveDir: `${r}/etc/letsencrypt/live`,
        nixosAcmeDir: `${r}/var/lib/acme`,
        nixosAcmeWebroot: `${r}/var/lib/acme/acme-challenge`,
        dataMount: `${r}/var/lib/slotshift/${appName}-data`,
        postgresqlDir: `${r}/var/lib/postgresql`,
        dashboardTokenFile: `${deployDir}/dashboard-token`,
        dashboardUnit: `${appName}-dashboard`,
        dashboardUnitFile: `${r}/etc/systemd/system/${appName}-dashboard.service`,
        unitTemplate: `${appName}@`,
        unitFile: `${r}/etc/systemd/system/${appName}@.service`,
        recoverUnit: `${appName}-recover`,
        recoverUnitFile: `${r}/etc/systemd/system/${appName}-recover.service`,
        deploySlice: deploySliceName(appName),
        deploySliceFile: `${r}/etc/systemd/system/${deploySliceName(appName)}`,
    };
}

/**
 * A template's instances run in system-<escaped prefix>.slice; the deploy slice is a child of it
 * ("-" nests slices, so a "-" in the app name is escaped as systemd-escape does).
 */
function deploySliceName(appName: string): string {
    return `system-${appName.replace(/-/g, "\\x2d")}-deploy.slice`;
}

/** The variable that tells a release's processes (build, check, migrations, the slots) their build dir. */
export const BUILD_DIR_ENV = "SLOTSHIFT_BUILD_DIR";

export interface SlotPorts {
    blue: number;
    green: number;
}

export function slotPorts(basePort: number): SlotPorts {
    return { blue: basePort, green: basePort + 1 };
}

// Paths that depend on a version, a slot or a process as well as on the layout.

/** Marker file inside a release dir: prepare writes it last, so its presence means "complete". */
export const RELEASE_MARKER = ".slotshift-release.json";

/** releases/<version> */
export function releaseDir(layout: HostLayout, version: string): string {
    return `${layout.releasesDir}/${version}`;
}

/** A release dir's marker file (see RELEASE_MARKER); `dir` is a release dir or prepare's temp dir. */
export function releaseMarkerIn(dir: string): string {
    return `${dir}/${RELEASE_MARKER}`;
}

/** builds/<version>: see HostLayout.buildsDir. */
export function buildDir(layout: HostLayout, version: string): string {
    return `${layout.buildsDir}/${version}`;
}

const PREPARE_TEMP = /^\.tmp-(.+)-(\d+)$/;

/** releases/.tmp-<version>-<pid>: where prepare builds a release before renaming it into place. */
export function prepareTempDir(layout: HostLayout, version: string, pid: number): string {
    return `${layout.releasesDir}/.tmp-${version}-${pid}`;
}

/** The version and pid of a prepare temp dir's name (a name inside releasesDir), or undefined. */
export function parsePrepareTempName(name: string): { version: string; pid: number } | undefined {
    const m = PREPARE_TEMP.exec(name);
    return m ? { version: m[1], pid: Number(m[2]) } : undefined;
}

/** deploy/artifacts/<version>.tar.gz: the archive prepare unpacks (uploaded or downloaded). */
export function artifactPath(layout: HostLayout, version: string): string {
    return `${layout.artifactsDir}/${version}.tar.gz`;
}

/**
 * Where a non-root SSH user uploads before root moves files into place: relative names, so they
 * land in that user's home directory.
 */
export function artifactStagingPath(layout: HostLayout, version: string): string {
    return `.slotshift-${layout.appName}-${version}.tar.gz`;
}

export function agentStagingPath(layout: HostLayout): string {
    return `.slotshift-${layout.appName}-agent.js`;
}

/** The rollback script's (templates/rollback.sh.njk), uploaded with the agent. */
export function rollbackScriptStagingPath(layout: HostLayout): string {
    return `.slotshift-${layout.appName}-rollback.sh`;
}

/** deploy/transient/<unit>.env: a transient unit's own variables, read by systemd (EnvironmentFile=). */
export function transientEnvFile(layout: HostLayout, unit: string): string {
    return `${layout.transientEnvDir}/${unit}.env`;
}

/** deploy/migrations/<version>.json */
export function migrationMarkerPath(layout: HostLayout, version: string): string {
    return `${layout.migrationsDir}/${version}.json`;
}

/** deploy/release-digests/<version>.sha256 */
export function releaseDigestPath(layout: HostLayout, version: string): string {
    return `${layout.releaseDigestsDir}/${version}.sha256`;
}

/** deploy/static-manifests/<version>.json */
export function staticManifestPath(layout: HostLayout, version: string): string {
    return `${layout.staticManifestsDir}/${version}.json`;
}

/**
 * systemd's instance specifier: the slot of a template unit instance (<app>@blue -> blue). The slot
 * files below take it in place of a slot, so the slot unit names the same files the agent writes.
 */
export const UNIT_INSTANCE = "%i";

/** A slot, or the slot unit's instance specifier (UNIT_INSTANCE). */
export type SlotOrInstance = Slot | typeof UNIT_INSTANCE;

/** slots/<slot> -> ../releases/<version>: what the slot's unit runs (its WorkingDirectory). */
export function slotLink(layout: HostLayout, slot: SlotOrInstance): string {
    return `${layout.slotsDir}/${slot}`;
}

/** slots/<slot>.env: PORT, RELEASE_VERSION, SLOT, CACHE_KEY_PREFIX of the slot's release. */
export function slotEnvFile(layout: HostLayout, slot: SlotOrInstance): string {
    return `${layout.slotsDir}/${slot}.env`;
}

/** slots/<slot>.start: the start script of the slot's activation (see lib/slot-activation.ts). */
export function slotStartScript(layout: HostLayout, slot: SlotOrInstance): string {
    return `${layout.slotsDir}/${slot}.start`;
}

/** slots/<slot>.app-env: the app environment snapshot the slot was started with (root-only). */
export function slotAppEnvFile(layout: HostLayout, slot: SlotOrInstance): string {
    return `${layout.slotsDir}/${slot}.app-env`;
}

const ENV_SNAPSHOT_SUFFIX = ".env";

/** <sha256>.env: the name of an environment snapshot inside envSnapshotsDir. */
export function envSnapshotName(sha256: string): string {
    return `${sha256}${ENV_SNAPSHOT_SUFFIX}`;
}

/** Whether a name inside envSnapshotsDir is an environment snapshot's. */
export function isEnvSnapshotName(name: string): boolean {
    return name.endsWith(ENV_SNAPSHOT_SUFFIX);
}

/** env-snapshots/<sha256>.env: one activation's app environment, kept for rollbacks. */
export function envSnapshotFile(layout: HostLayout, sha256: string): string {
    return envSnapshotFileNamed(layout, envSnapshotName(sha256));
}

/** An environment snapshot by its file name (a name inside envSnapshotsDir, see envSnapshotName). */
export function envSnapshotFileNamed(layout: HostLayout, name: string): string {
    return `${layout.envSnapshotsDir}/${name}`;
}

export interface WorkerFiles {
    /** The worker's name (its log file's name without ".log"): what `attach --worker` takes. */
    name: string;
    logFile: string;
    resultFile: string;
    /** Who the worker is (pid, start time, systemd unit), for a later `attach`. */
    workerFile: string;
}

const WORKER_LOG_SUFFIX = ".log";

/** A deploy worker's files by its name (a file name inside logsDir, checked by the caller). */
export function workerFilesByName(layout: HostLayout, name: string): WorkerFiles {
    const base = `${layout.logsDir}/${name}`;
    return { name, logFile: `${base}${WORKER_LOG_SUFFIX}`, resultFile: `${base}.result.json`, workerFile: `${base}.worker.json` };
}

/** The worker whose log a name inside logsDir is, or undefined when it is no worker's log. */
export function workerNameOfLog(fileName: string): string | undefined {
    return fileName.endsWith(WORKER_LOG_SUFFIX) ? fileName.slice(0, -WORKER_LOG_SUFFIX.length) : undefined;
}

/** A deploy worker's log, result and identity files, from its start time, label and pid. */
export function workerLogFiles(layout: HostLayout, stamp: string, label: string, pid: number): WorkerFiles {
    return workerFilesByName(layout, `${stamp}-${label}-${pid}`);
}

/** A directory of the data volume bind-mounted where the host expects it. */
export interface DataBind {
    source: string;
    target: string;
}

/**
 * What lives on the data volume (aws), so a replaced instance finds it again: the app's shared
 * directory (env file, media, merged static files) and PostgreSQL's data.
 */
export function dataVolumeBinds(layout: HostLayout): DataBind[] {
    return [
        { source: `${layout.dataMount}/shared`, target: layout.sharedDir },
        { source: `${layout.dataMount}/postgresql`, target: layout.postgresqlDir },
    ];
}

/** The device attached as /dev/sdX, on the instance: `sd` of the attachment's device name. */
export const DATA_VOLUME_DEVICE_NAME = "/dev/sdf";

/**
 * Where a volume shows up on the instance, by its id: Nitro instances name NVMe devices after the
 * volume id (the serial, without the dash); Xen instances only by the attachment's device name.
 */
export function ebsDevicePaths(volumeId: string, deviceName = DATA_VOLUME_DEVICE_NAME): string[] {
    return [`/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${volumeId.replace("-", "")}`, deviceName.replace(/^\/dev\/sd/, "/dev/xvd")];
}

/** certbot's certificate and key for a domain (Debian, tlsMode acme). */
export function letsencryptFiles(layout: HostLayout, domain: string): { certFile: string; keyFile: string } {
    return { certFile: `${layout.letsencryptLiveDir}/${domain}/fullchain.pem`, keyFile: `${layout.letsencryptLiveDir}/${domain}/privkey.pem` };
}

/** /etc/nixos: where a NixOS host's configuration.nix lives (tests use a temp directory). */
export const NIXOS_ETC_DIR = "/etc/nixos";

/** slotshift-<app>.nix: the module's name beside configuration.nix, which imports it as ./<name>. */
export function nixosModuleFileName(appName: string): string {
    return `slotshift-${appName}.nix`;
}

/** Where the NixOS module goes (see nixosModuleFileName). */
export function nixosModulePath(appName: string, etcDir = NIXOS_ETC_DIR): string {
    return `${etcDir}/${nixosModuleFileName(appName)}`;
}

/** The host's own NixOS configuration, which imports the module. */
export function nixosConfigurationFile(etcDir = NIXOS_ETC_DIR): string {
    return `${etcDir}/configuration.nix`;
}

/** The certificate and key NixOS's acme module keeps for a domain (the NGINX site names certbot's paths, linked to these). */
export function nixosAcmeFiles(layout: HostLayout, domain: string): { certFile: string; keyFile: string } {
    return { certFile: `${layout.nixosAcmeDir}/${domain}/fullchain.pem`, keyFile: `${layout.nixosAcmeDir}/${domain}/key.pem` };
}

/** NixOS's acme module marks a certificate it has issued (not the placeholder) with this file. */
export function nixosAcmeSuccessMarker(layout: HostLayout, domain: string): string {
    return `${layout.nixosAcmeDir}/${domain}/acme-success`;
}
