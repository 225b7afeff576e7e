// The `local` stack (Pulumi.local.yaml) replayed over SSH: the same rendered files and the same
// command lines the components run during `pulumi up`, in the same order, without the Pulumi
// engine. So the end-to-end tests exercise the host setup, the proxy files and the agent exactly
// as a deploy would, and can interleave load and assertions between the steps.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { parse as parseYaml } from "yaml";
import { agentInstallCommand } from "../../components/host-setup";
import { artifactPath, prepareCommand } from "../../components/release";
import { asRoot, remoteAgentCommand, ROLLBACK_SSH_OPTIONS } from "../../components/remote";
import { sha256Hex } from "../../components/ssh/ssh-command";
import { agentSettingsFor, templateContextFor } from "../../components/stack";
import { activateRequest } from "../../components/traffic-shift";
import { pickGroup } from "../../lib/settings/table";
import { shellJoin } from "../../lib/shell-quote";
import { AGENT_OUTFILE } from "../../program/agent-bundle";
import { effectiveSshUser, parseStackConfig, StackConfigInput, StackSettings } from "../../program/config-schema";
import { renderDebianSetupScript, renderProxyApplyScript, renderRollbackScript } from "../../program/host-files";
import { agentStagingPath, rollbackScriptStagingPath } from "../../lib/host-layout";
import { formatEnvLines } from "../../program/load-config";
import { CommandError, LocalHost, REPO, RunResult, shellQuote } from "../local-host";

export const STACK_FILE = path.join(REPO, "Pulumi.local.yaml");
/** Where scripts/build-example-releases.sh puts v1/v2/v3.tar.gz by default. */
export const RELEASES_DIR = path.join(REPO, ".local", "releases");

/**
 * Pulumi.local.yaml as validated settings, with overrides (e.g. another releaseVersion). The SSH
 * key and host key are placeholders: these settings never open a connection, LocalHost does.
 */
export function localStackSettings(overrides: Partial<StackConfigInput> = {}): StackSettings {
    const doc = parseYaml(fs.readFileSync(STACK_FILE, "utf8")) as { config: Record<string, unknown> };
    const raw: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(doc.config)) {
        if (key.startsWith("slotshift:")) raw[key.slice("slotshift:".length)] = value;
    }
    raw.sshPrivateKey = "-----BEGIN OPENSSH PRIVATE KEY-----\nplaceholder\n-----END OPENSSH PRIVATE KEY-----\n";
    // The same for the host key (run-local sets the host's own).
    raw.sshHostKey ??= "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsNzbmH1hc0ZFBDZo4v1pIoxaHFyw4nWENwI9mYFLNp placeholder";
    return parseStackConfig({ ...raw, ...overrides });
}

export function archiveFor(version: string): string {
    return path.join(RELEASES_DIR, `${version}.tar.gz`);
}

function sha256(file: string): string {
    return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** One step's outcome; `ok` is exit code 0. Output is kept for assertions and failure messages. */
export interface StepResult extends RunResult {
    ok: boolean;
}

export class LocalStack {
    readonly sshUser: string;

    constructor(
        readonly host: LocalHost,
        readonly settings: StackSettings = localStackSettings(),
    ) {
        this.sshUser = effectiveSshUser(settings);
    }

    get context() {
        return templateContextFor(this.settings);
    }

    get layout() {
        return this.context.layout;
    }

    private async step(what: string, p: Promise<RunResult>, mustSucceed: boolean): Promise<StepResult> {
        const r = await p;
        if (mustSucceed && r.code !== 0) throw new CommandError(what, r);
        return { ...r, ok: r.code === 0 };
    }

    /** HostSetup: the rendered setup-debian.sh, as root on stdin. */
    setup(): Promise<StepResult> {
        const script = renderDebianSetupScript(this.context, agentSettingsFor(this.settings));
        return this.step("host setup", this.host.ssh("bash -s", { input: script }), true);
    }

    /** HostSetup: the bundled agent (dist/agent.js; `npm run build:agent`), staged then installed. */
    async installAgent(bundle = AGENT_OUTFILE): Promise<StepResult> {
        if (!fs.existsSync(bundle)) throw new Error(`${bundle} is missing; run npm run build:agent`);
        const staged = agentStagingPath(this.layout);
        await this.host.upload(bundle, staged);
        // The rollback command beside it, as HostSetup installs it.
        const rollback = renderRollbackScript(this.layout, { backend: agentSettingsFor(this.settings).haproxy.backend });
        const script = { path: this.layout.rollbackScript, staged: rollbackScriptStagingPath(this.layout), sha256: sha256Hex(rollback) };
        await this.host.writeFile(`${script.staged}`, rollback, "0600");
        return this.step(
            "agent install",
            this.host.ssh(agentInstallCommand(this.sshUser, this.layout.agentPath, staged, sha256(bundle), this.layout.dashboardUnit, script)),
            true,
        );
    }

    /** Proxy: haproxy.cfg, the NGINX site and the maintenance page, checked and reloaded. */
    applyProxy(): Promise<StepResult> {
        return this.step("proxy apply", this.host.ssh("bash -s", { input: renderProxyApplyScript(this.context, "debian") }), true);
    }

    /** Release: the app environment through the agent's stdin (never a command line). */
    writeEnv(env: Record<string, string>): Promise<StepResult> {
        return this.step("write-env", this.host.ssh(remoteAgentCommand(this.sshUser, this.layout, "write-env", {}), { input: formatEnvLines(env) }), true);
    }

    /** Release: upload the archive of `version`, then `agent prepare`. */
    async prepare(version: string, archive = archiveFor(version), mustSucceed = true): Promise<StepResult> {
        if (!fs.existsSync(archive)) throw new Error(`${archive} is missing; run scripts/build-example-releases.sh`);
        const target = artifactPath(this.layout, version);
        await this.host.sshOk(`install -d -m 0700 ${path.posix.dirname(target)}`);
        await this.host.upload(archive, target);
        return this.step(
            `prepare ${version}`,
            this.host.ssh(
                prepareCommand(this.sshUser, this.layout, {
                    version,
                    sha256: crypto.createHash("sha256").update(fs.readFileSync(archive)).digest("hex"),
                    uploaded: true,
                }),
            ),
            mustSucceed,
        );
    }

    /** TrafficShift create: the gated shift to `version` with the stack's plan and gates. */
    activate(version: string, mustSucceed = true): Promise<StepResult> {
        const s = this.settings;
        const request = activateRequest({ version, shift: pickGroup(s, "shift"), allowContractOperations: s.allowContractOperations });
        return this.step(`activate ${version}`, this.host.ssh(remoteAgentCommand(this.sshUser, this.layout, "activate", request)), mustSucceed);
    }

    /** TrafficShift delete (after a newer version went live). */
    retire(version: string, mustSucceed = true): Promise<StepResult> {
        return this.step(`retire ${version}`, this.host.ssh(remoteAgentCommand(this.sshUser, this.layout, "retire", { version })), mustSucceed);
    }

    /** The stack output rollbackCommand's command line: deploy/rollback over ssh with its options. */
    rollback(args: readonly string[] = [], mustSucceed = true): Promise<StepResult> {
        const command = asRoot(this.sshUser, [this.layout.rollbackScript, ...args].map(shellQuote).join(" "));
        return this.step("rollback", this.host.ssh(command, {}, ROLLBACK_SSH_OPTIONS), mustSucceed);
    }

    /** The agent's command line as an operator types it (flags as given: the tests exercise the CLI itself). */
    agent(command: string, args: readonly string[] = [], mustSucceed = true): Promise<StepResult> {
        const line = shellJoin(["node", this.layout.agentPath, command, "--config", this.layout.agentConfigPath, ...args]);
        return this.step(`agent ${command}`, this.host.ssh(asRoot(this.sshUser, line)), mustSucceed);
    }

    /** `agent status --json`, parsed. */
    async status(): Promise<unknown> {
        const r = await this.agent("status", ["--json"]);
        return JSON.parse(r.stdout);
    }

    /**
     * Forgets the app on the host: stops both slots, drops its database, removes its releases,
     * slots, shared static files and the agent's state. Host setup, the proxy files and the env
     * file stay; the next setup run recreates the database. For suites that need a known start
     * (e.g. a schema without later migrations) on a host earlier suites deployed to.
     */
    async resetApp(): Promise<void> {
        const app = this.settings.appName;
        const l = this.layout;
        const q = shellQuote;
        const script = [
            "set -euo pipefail",
            `systemctl stop ${app}@blue.service ${app}@green.service 2>/dev/null || true`,
            `systemctl reset-failed ${app}@blue.service ${app}@green.service 2>/dev/null || true`,
            `if systemctl is-active --quiet postgresql; then (cd / && runuser -u postgres -- dropdb --if-exists --force -- ${app}); fi`,
            `rm -rf -- ${[l.releasesDir, l.buildsDir, l.slotsDir, l.currentLink, l.staticDir, l.stateFile, l.lockFile, l.auditLog, l.staticManifestsDir, l.migrationsDir, l.artifactsDir, l.logsDir].map(q).join(" ")}`,
            "",
        ].join("\n");
        await this.host.sshOk("bash -s", { input: script });
    }

    /** A query on the app's database as postgres; rows as lines, columns separated by '|'. */
    async sql(query: string): Promise<string> {
        const db = this.settings.appName;
        return (await this.host.sshOk(`cd / && runuser -u postgres -- psql -X -q -tA -v ON_ERROR_STOP=1 -d ${db}`, { input: query })).trim();
    }

    /** The first `pulumi up`: setup, agent, proxy, env, prepare + activate the configured version. */
    async firstDeploy(env: Record<string, string>): Promise<void> {
        await this.setup();
        await this.installAgent();
        await this.applyProxy();
        await this.writeEnv(env);
        await this.prepare(this.settings.releaseVersion);
        await this.activate(this.settings.releaseVersion);
    }
}
