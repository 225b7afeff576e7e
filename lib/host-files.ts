// Every file the program puts on a host, rendered from templates/. The components upload these;
// the config tests check them with the real tools; the end-to-end tests copy them to a local host.
import { AgentSettings } from "./agent-settings";
import { renderTemplate } from "./render";
import { TemplateContext } from "./template-context";

export interface ProxyFiles {
    haproxyCfg: string;
    nginxSite: string;
    /** The site's backup upstream before anything is live (written only when the file is missing). */
    nginxLiveSlotPlaceholder: string;
    maintenancePage: string;
}

export function renderProxyFiles(ctx: TemplateContext): ProxyFiles {
    return {
        haproxyCfg: renderTemplate("haproxy.cfg.njk", ctx),
        nginxSite: renderTemplate("nginx-site.conf.njk", ctx),
        nginxLiveSlotPlaceholder: renderNginxLiveSlot(ctx.app.name, null),
        maintenancePage: renderTemplate("maintenance.html.njk", ctx),
    };
}

/** NGINX's backup upstream: the slot on `port` (the live one), or none yet. */
export function renderNginxLiveSlot(appName: string, port: number | null): string {
    return renderTemplate("nginx-live-slot.conf.njk", { app: { name: appName }, port });
}

/** The systemd template unit <app>@.service; instances are slots (blue, green). */
export function renderSlotUnit(ctx: TemplateContext): string {
    return renderTemplate("app@.service.njk", ctx);
}

/** The dashboard's service <app>-dashboard.service (the Debian setup script embeds the same text). */
export function renderDashboardUnit(ctx: TemplateContext): string {
    return renderTemplate("dashboard.service.njk", ctx);
}

/** Idempotent bash script that prepares a Debian 12 host (packages, user, layout, units, TLS). */
export function renderDebianSetupScript(ctx: TemplateContext, agent: AgentSettings): string {
    return renderTemplate("setup-debian.sh.njk", { ...ctx, agentSettingsJson: JSON.stringify(agent, null, 2) });
}

/**
 * NixOS module declaring the same users, services, units and firewall. It carries no agent
 * settings: everything in it ends up in the world-readable /nix/store.
 */
export function renderNixosModule(ctx: TemplateContext): string {
    return renderTemplate("nixos-module.nix.njk", ctx);
}

/** <deployDir>/agent.json as the NixOS apply step writes it (the Debian script embeds the same JSON). */
export function renderAgentSettings(agent: AgentSettings): string {
    return `${JSON.stringify(agent, null, 2)}\n`;
}

/** cloud-init user data for the EC2 instance (first boot only). */
export function renderCloudInit(ctx: TemplateContext): string {
    return renderTemplate("cloud-init.yaml.njk", ctx);
}
