// The whole program as a function: validate the config, then host -> setup -> proxy -> release ->
// shift, each step waiting for the one before. index.ts calls it once; the unit tests call it once
// per stack under Pulumi mocks.
import * as pulumi from "@pulumi/pulumi";
import { AgentBundle, bundleAgent } from "../program/agent-bundle";
import { AgentSettings, buildAgentSettings } from "../program/agent-settings";
import { effectiveSshUser } from "../program/config-schema";
import { renderCloudInit, renderNixosUserData } from "../program/host-files";
import { loadStackConfig, PublicSettings } from "../program/load-config";
import { buildTemplateContext, TemplateContext } from "../program/template-context";
import { Host } from "./host";
import { HostSetup, publicKeyOf } from "./host-setup";
import { Proxy } from "./proxy";
import { Release } from "./release";
import { shellJoin } from "../lib/shell-quote";
import { asRoot, remoteAgentCommand, ROLLBACK_SSH_OPTIONS, shellQuote } from "./remote";
import { TrafficShift } from "./traffic-shift";
import { pickGroup } from "../lib/settings/table";

export interface DefineStackOptions {
    /** Prebuilt agent (tests); default: bundle agent/main.ts now. */
    agentBundle?: AgentBundle;
    /** Directory a relative releaseSource is resolved against; default: the working directory. */
    baseDir?: string;
}

export interface StackOutputs {
    url: pulumi.Output<string>;
    hostAddress: pulumi.Output<string>;
    liveVersion: pulumi.Output<string>;
    /** "this deploy: N requests, F failed (per release), p50, p99": the last shift's own count of its traffic. */
    lastDeploy: pulumi.Output<string>;
    sshCommand: pulumi.Output<string>;
    agentStatusCommand: pulumi.Output<string>;
    /** Rollback to the previous release: a weight flip before any Node.js starts when it is warm (templates/rollback.sh.njk). */
    rollbackCommand: pulumi.Output<string>;
    /** The SSH tunnel to the dashboard (then open http://127.0.0.1:9090/). */
    dashboardCommand: pulumi.Output<string>;
    /** Prints the dashboard's login token on your terminal (it is never in the stack's outputs or logs). */
    dashboardTokenCommand: pulumi.Output<string>;
}

/** The local end of the dashboard tunnel. */
const DASHBOARD_LOCAL_PORT = 9090;

export function templateContextFor(s: PublicSettings): TemplateContext {
    return buildTemplateContext({
        appName: s.appName,
        domain: s.domain,
        healthPath: s.healthPath,
        startCommand: s.startCommand,
        tlsMode: s.tlsMode,
        acmeEmail: s.acmeEmail,
        slotBasePort: s.slotBasePort,
        haproxyPort: s.haproxyPort,
        dashboardPort: s.dashboardPort,
        httpPort: s.httpPort,
        httpsPort: s.httpsPort,
        sshPort: s.sshPort,
        allowedSshCidrs: s.allowedSshCidrs,
        sshPublicKey: s.sshPublicKey,
        sshUser: effectiveSshUser(s),
        postgresql: s.postgresql,
        appEgress: s.appEgress,
        osFlavour: s.osFlavour,
    });
}

/** agent.json of the stack: the settings bound for it, in their groups (program/agent-settings.ts). */
export function agentSettingsFor(s: PublicSettings): AgentSettings {
    return buildAgentSettings(s, { osFlavour: s.osFlavour });
}

export function defineStack(opts: DefineStackOptions = {}): StackOutputs {
    // Everything is validated before the first resource is declared.
    const { settings: s, secrets, localArtifact, releaseSha256 } = loadStackConfig({ baseDir: opts.baseDir });
    const agent = opts.agentBundle ?? bundleAgentOrFail();
    const context = templateContextFor(s);
    const layout = context.layout;
    const agentSettings = agentSettingsFor(s);

    const host = new Host(
        `${s.appName}-host`,
        {
            settings: s,
            sshPrivateKey: secrets.sshPrivateKey,
            userData: (hostKey) => (s.osFlavour === "debian" ? renderCloudInit(context, hostKey) : renderNixosUserData(hostKey)),
        },
        // Children inherit it: the instance, its address, key pair and security group.
        { protect: s.protect },
    );
    // aws: the configured public key and the private key's own, so a rotation in two steps (new
    // public key first, then the new private key) never locks the deploys out. Public values.
    const authorizedKeys =
        s.hostTarget === "aws"
            ? pulumi.unsecret(secrets.sshPrivateKey.apply((key) => [s.sshPublicKey ?? "", publicKeyOf(key) ?? ""].filter((k) => k !== "")))
            : undefined;
    const setup = new HostSetup(`${s.appName}-setup`, { host, osFlavour: s.osFlavour, context, agentSettings, agent, authorizedKeys }, { dependsOn: [host] });
    const proxy = new Proxy(`${s.appName}-proxy`, { host, osFlavour: s.osFlavour, context }, { dependsOn: [setup] });
    const release = new Release(
        `${s.appName}-release`,
        {
            host,
            layout,
            version: s.releaseVersion,
            source: s.releaseSource,
            localArtifact,
            sha256: releaseSha256,
            download: { releaseDownloadMaxMiB: s.releaseDownloadMaxMiB, releaseDownloadTimeout: s.releaseDownloadTimeout },
            appEnv: secrets.appEnv,
        },
        { dependsOn: [proxy] },
    );
    const shift = new TrafficShift(
        `${s.appName}-shift`,
        {
            host,
            layout,
            version: s.releaseVersion,
            shift: pickGroup(s, "shift"),
            activation: { healthPath: s.healthPath, domain: s.domain, startCommand: s.startCommand, slotBasePort: s.slotBasePort },
            appEnv: secrets.appEnv,
            envDigestKey: secrets.sshPrivateKey,
            allowContractOperations: s.allowContractOperations,
        },
        { dependsOn: [release] },
    );

    const sshPrefix = pulumi.interpolate`ssh${s.sshPort === 22 ? "" : ` -p ${s.sshPort}`} ${host.sshUser}@${host.address}`;
    return {
        url: pulumi.output(`https://${s.domain}${s.httpsPort === 443 ? "" : `:${s.httpsPort}`}/`),
        hostAddress: host.address,
        liveVersion: shift.liveVersion,
        lastDeploy: shift.lastDeploy,
        sshCommand: sshPrefix,
        agentStatusCommand: pulumi.interpolate`${sshPrefix} ${remoteAgentCommand(host.sshUser, layout, "status", {})}`,
        rollbackCommand: pulumi.interpolate`ssh ${shellJoin(ROLLBACK_SSH_OPTIONS)}${s.sshPort === 22 ? "" : ` -p ${s.sshPort}`} ${host.sshUser}@${host.address} ${asRoot(host.sshUser, shellQuote(layout.rollbackScript))}`,
        dashboardCommand: pulumi.interpolate`ssh -N -L ${DASHBOARD_LOCAL_PORT}:127.0.0.1:${s.dashboardPort}${s.sshPort === 22 ? "" : ` -p ${s.sshPort}`} ${host.sshUser}@${host.address}`,
        dashboardTokenCommand: pulumi.interpolate`${sshPrefix} ${asRoot(host.sshUser, shellJoin(["cat", layout.dashboardTokenFile]))}`,
    };
}

function bundleAgentOrFail(): AgentBundle {
    try {
        return bundleAgent();
    } catch (e) {
        throw new pulumi.RunError(`cannot bundle the host agent: ${(e as Error).message}`);
    }
}
