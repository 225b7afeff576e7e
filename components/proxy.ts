// Proxy: haproxy.cfg, the NGINX site and the maintenance page, applied without dropping a
// connection. Each file is staged beside its target, checked, and renamed into place only when it
// changed; HAProxy is reloaded through the agent (runtime weights saved first), NGINX with a
// graceful reload; a bad NGINX site is rolled back before it can take the server down
// (templates/proxy-apply.sh.njk).
import * as pulumi from "@pulumi/pulumi";
import { renderProxyApplyScript } from "../program/host-files";
import { TemplateContext } from "../program/template-context";
import { asRoot, HostHandle } from "./remote";
import { SshCommand } from "./ssh/ssh-command";

export interface ProxyArgs {
    host: HostHandle;
    osFlavour: "debian" | "nixos";
    context: TemplateContext;
}

export class Proxy extends pulumi.ComponentResource {
    readonly apply: SshCommand;

    constructor(name: string, args: ProxyArgs, opts?: pulumi.ComponentResourceOptions) {
        super("slotshift:proxy:Proxy", name, {}, opts);
        this.apply = new SshCommand(
            `${name}-apply`,
            {
                connection: args.host.connection,
                create: asRoot(args.host.sshUser, "bash -s"),
                stdin: renderProxyApplyScript(args.context, args.osFlavour),
                triggers: [args.host.hostId],
                logging: "stdoutAndStderr",
            },
            { parent: this, dependsOn: opts?.dependsOn },
        );
        this.registerOutputs({});
    }
}
