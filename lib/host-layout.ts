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
    /** /srv/<app>/shared — state that outlives releases. */
    sharedDir: string;
    /** /srv/<app>/shared/env — app environment (secrets), 0600, owned by the app user. */
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
    /** HAProxy runtime API socket (admin level, root only). */
    haproxySocket: string;
    /** HAProxy server-state file: runtime weights survive reloads. */
    haproxyStateFile: string;
    haproxyConfigFile: string;
    nginxSiteFile: string;
    /** /var/www/<app>-maintenance — the maintenance page NGINX serves when HAProxy cannot. */
    maintenanceDir: string;
    /** <maintenanceDir>/maintenance.html — also HAProxy's own 503 when no slot is up. */
    maintenancePage: string;
    tlsDir: string;
    /** systemd template unit name, without ".service": <app>@ — instances are slots. */
    unitTemplate: string;
    unitFile: string;
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
        agentConfigPath: `${deployDir}/agent.json`,
        haproxySocket: `${r}/run/haproxy/${appName}-admin.sock`,
        haproxyStateFile: `${r}/var/lib/haproxy/${appName}.state`,
        haproxyConfigFile: `${r}/etc/haproxy/haproxy.cfg`,
        nginxSiteFile: `${r}/etc/nginx/sites-enabled/${appName}.conf`,
        maintenanceDir: `${r}/var/www/${appName}-maintenance`,
        maintenancePage: `${r}/var/www/${appName}-maintenance/maintenance.html`,
        tlsDir: `${r}/etc/ssl/${appName}`,
        unitTemplate: `${appName}@`,
        unitFile: `${r}/etc/systemd/system/${appName}@.service`,
    };
}

export interface SlotPorts {
    blue: number;
    green: number;
}

export function slotPorts(basePort: number): SlotPorts {
    return { blue: basePort, green: basePort + 1 };
}
