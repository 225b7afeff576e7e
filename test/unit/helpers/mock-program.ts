// Runs the program (defineStack) under Pulumi mocks and records what it declared: every resource
// with its inputs, parent, protect flag and direct dependencies, and every provider function call.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { AgentBundle } from "../../../program/agent-bundle";
import type { StackOutputs } from "../../../components/stack";
import { ProgramConfig } from "./stack-config";

const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export const EIP_ADDRESS = "198.51.100.77";
export const INSTANCE_ID = "i-0abc123def4567890";

export interface RecordedResource {
    type: string;
    name: string;
    urn: string;
    parent: string;
    custom: boolean;
    protect: boolean;
    /** URNs of direct dependencies (explicit and through inputs). */
    dependencies: string[];
    additionalSecretOutputs: string[];
    ignoreChanges: string[];
    deleteBeforeReplace: boolean;
    /** As the mock received them: secrets are { [SECRET_SIG_KEY]: SECRET_SIG, value }. */
    inputs: Record<string, any>;
}

export interface ProgramRun {
    resources: RecordedResource[];
    calls: { token: string; inputs: Record<string, any> }[];
    /** Provider calls or resources the run must not make (existing hosts: anything aws:*). */
    violations: string[];
    outputs: Record<keyof StackOutputs, unknown>;
    /** Resources by name; throws on unknown names so a typo never passes silently. */
    byName(name: string): RecordedResource;
    ofType(type: string): RecordedResource[];
    /** Every URN `urn` waits for, directly or through other resources. */
    dependsOnTransitively(urn: string): Set<string>;
}

export interface RunOptions {
    stack: string;
    cfg: ProgramConfig;
    /** Fail every aws:* call and resource (and record it). */
    forbidAws?: boolean;
    agentBundle?: AgentBundle;
    baseDir?: string;
}

let fakeAgent: AgentBundle | undefined;
/** A stand-in bundle, so the graph tests do not depend on the agent's source. */
export function fakeAgentBundle(): AgentBundle {
    if (!fakeAgent) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-agent-"));
        const file = path.join(dir, "agent.js");
        fs.writeFileSync(file, "console.log('agent');\n");
        fakeAgent = { path: file, sha256: "a".repeat(64) };
    }
    return fakeAgent;
}

let releaseDir: string | undefined;
/** A project directory holding the local release archives the stack files name. */
function fakeProjectDir(): string {
    if (!releaseDir) {
        releaseDir = fs.mkdtempSync(path.join(os.tmpdir(), "slotshift-project-"));
        fs.mkdirSync(path.join(releaseDir, "build"));
        for (const v of ["2026.11.21-rc1", "2026.11.22-rc2", "1.4.0", "1.5.0"]) {
            fs.writeFileSync(path.join(releaseDir, "build", `shop-${v}.tar.gz`), `archive ${v}`);
        }
    }
    return releaseDir;
}

let hostKeyPair: { publicKey: string; privateKey: string } | undefined;
/** The host key the generator gives every run (one per test process, as a stack keeps its own). */
export function mockHostKey(): { publicKey: string; privateKey: string } {
    if (!hostKeyPair) {
        const pair = (require("ssh2") as typeof import("ssh2")).utils.generateKeyPairSync("ed25519", { comment: "mock-host" });
        hostKeyPair = { publicKey: pair.public.trim(), privateKey: pair.private };
    }
    return hostKeyPair;
}

function amiFor(inputs: Record<string, any>): Record<string, unknown> {
    const owner = inputs.owners?.[0];
    const name = inputs.filters?.find((f: any) => f.name === "name")?.values?.[0] ?? "";
    return { id: owner === "427812963091" ? "ami-nixos" : "ami-debian", name, architecture: "x86_64", ownerId: owner };
}

function mockState(type: string, name: string, inputs: Record<string, any>): { id: string; state: Record<string, any> } {
    switch (type) {
        case "aws:ec2/instance:Instance":
            return { id: INSTANCE_ID, state: { ...inputs, publicIp: "203.0.113.9" } };
        case "aws:ec2/eip:Eip":
            return { id: "eipalloc-1", state: { ...inputs, publicIp: EIP_ADDRESS, allocationId: "eipalloc-1" } };
        case "aws:ec2/eipAssociation:EipAssociation":
            return { id: "eipassoc-1", state: { ...inputs, publicIp: EIP_ADDRESS } };
        case "aws:ec2/keyPair:KeyPair":
            return { id: `${name}-id`, state: { ...inputs, keyName: `${name}-1234` } };
        case "aws:ebs/volume:Volume":
            return { id: "vol-0123456789abcdef0", state: inputs };
        case "aws:ec2/volumeAttachment:VolumeAttachment":
            return { id: "vai-1", state: inputs };
        case "aws:ec2/securityGroup:SecurityGroup":
            return { id: "sg-0123", state: inputs };
        case "pulumi-nodejs:dynamic/ssh:HostKey":
            return { id: `${name}-id`, state: { ...inputs, ...mockHostKey() } };
        case "pulumi-nodejs:dynamic/ssh:Command":
            return { id: `${name}-id`, state: { ...inputs, stdout: "ok\n", stderr: "" } };
        default:
            return { id: `${name}-id`, state: inputs };
    }
}

export function isSecret(value: unknown): value is { value: unknown } {
    return typeof value === "object" && value !== null && (value as any)[SECRET_SIG_KEY] === SECRET_SIG;
}

/** The value with secret envelopes opened (to read it). */
export function reveal(value: any): any {
    if (isSecret(value)) return reveal(value.value);
    if (Array.isArray(value)) return value.map(reveal);
    if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, reveal(v)]));
    return value;
}

/** The value with every secret replaced by a marker (what anyone could read in plain text). */
export function plainParts(value: any): any {
    if (isSecret(value)) return "[secret]";
    if (Array.isArray(value)) return value.map(plainParts);
    if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plainParts(v)]));
    return value;
}

async function settle(value: any): Promise<any> {
    value = await value;
    if (Array.isArray(value)) return Promise.all(value.map(settle));
    if (value && typeof value === "object") {
        const out: Record<string, any> = {};
        for (const [k, v] of Object.entries(value)) out[k] = await settle(v);
        return out;
    }
    return value;
}

/** Rejects when the output failed (apply would never call back). Output.promise is SDK-internal. */
function outputValue<T>(o: pulumi.Output<T>): Promise<T> {
    return (o as unknown as { promise(): Promise<T> }).promise();
}

/** Runs defineStack once. Rejects with the program's error (e.g. a config error). */
export async function runProgram(opts: RunOptions): Promise<ProgramRun> {
    const resources: RecordedResource[] = [];
    const calls: ProgramRun["calls"] = [];
    const violations: string[] = [];

    await pulumi.runtime.setMocks(
        {
            newResource(args) {
                if (opts.forbidAws && args.type.startsWith("aws:")) {
                    violations.push(`resource ${args.type} ${args.name}`);
                    throw new Error(`AWS resource ${args.type} declared for an existing host`);
                }
                return mockState(args.type, args.name, args.inputs);
            },
            call(args) {
                calls.push({ token: args.token, inputs: args.inputs });
                if (args.token.startsWith("aws:")) {
                    if (opts.forbidAws) {
                        violations.push(`call ${args.token}`);
                        throw new Error(`AWS function ${args.token} called for an existing host`);
                    }
                    switch (args.token) {
                        case "aws:ec2/getVpc:getVpc":
                            return { id: "vpc-default", cidrBlock: "172.31.0.0/16" };
                        case "aws:ec2/getSubnets:getSubnets":
                            return { ids: ["subnet-0bbb", "subnet-0aaa"], filters: args.inputs.filters };
                        case "aws:ec2/getSubnet:getSubnet":
                            return {
                                id: args.inputs.id,
                                vpcId: args.inputs.id === "subnet-0123abcd" ? "vpc-custom" : "vpc-default",
                                availabilityZone: `eu-central-1${args.inputs.id.endsWith("b") ? "b" : "a"}`,
                            };
                        case "aws:ec2/getAmi:getAmi":
                            return amiFor(args.inputs);
                    }
                }
                throw new Error(`unexpected call ${args.token}`);
            },
        },
        "slotshift",
        opts.stack,
        false,
    );

    // The mock monitor hands newResource no dependencies or options; read them off the request.
    const settings = require("@pulumi/pulumi/runtime/settings");
    const monitor = settings.getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, callback: any) => {
        const urn = monitor.newUrn(req.getParent(), req.getType(), req.getName());
        const inputs = require("@pulumi/pulumi/runtime/rpc").deserializeProperties(req.getObject());
        resources.push({
            type: req.getType(),
            name: req.getName(),
            urn,
            parent: req.getParent(),
            custom: req.getCustom(),
            protect: !!req.getProtect(),
            dependencies: req.getDependenciesList(),
            additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
            ignoreChanges: req.getIgnorechangesList(),
            deleteBeforeReplace: !!req.getDeletebeforereplace(),
            inputs,
        });
        return register(req, callback);
    };

    pulumi.runtime.setAllConfig(opts.cfg.config, opts.cfg.secretKeys);
    const { defineStack } = require("../../../components/stack") as typeof import("../../../components/stack");
    const out = defineStack({ agentBundle: opts.agentBundle ?? fakeAgentBundle(), baseDir: opts.baseDir ?? fakeProjectDir() });
    let outputs: ProgramRun["outputs"];
    try {
        outputs = {
            url: await outputValue(out.url),
            hostAddress: await outputValue(out.hostAddress),
            liveVersion: await outputValue(out.liveVersion),
            lastDeploy: await outputValue(out.lastDeploy),
            sshCommand: await outputValue(out.sshCommand),
            agentStatusCommand: await outputValue(out.agentStatusCommand),
            rollbackCommand: await outputValue(out.rollbackCommand),
            dashboardCommand: await outputValue(out.dashboardCommand),
            dashboardTokenCommand: await outputValue(out.dashboardTokenCommand),
        };
        await settings.waitForRPCs();
    } catch (e) {
        // Tests of the AWS guard look at what was attempted.
        throw Object.assign(e as Error, { violations });
    }
    // Asset paths arrive as promises; settle them so inputs compare and print as plain data.
    for (const r of resources) r.inputs = await settle(r.inputs);

    const byUrn = new Map(resources.map((r) => [r.urn, r]));
    return {
        resources,
        calls,
        violations,
        outputs,
        byName(name) {
            const found = resources.filter((r) => r.name === name);
            if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length}: ${resources.map((r) => r.name).join(", ")}`);
            return found[0];
        },
        ofType(type) {
            return resources.filter((r) => r.type === type);
        },
        dependsOnTransitively(urn) {
            const seen = new Set<string>();
            const stack = [...(byUrn.get(urn)?.dependencies ?? [])];
            while (stack.length > 0) {
                const next = stack.pop()!;
                if (seen.has(next)) continue;
                seen.add(next);
                stack.push(...(byUrn.get(next)?.dependencies ?? []));
            }
            return seen;
        },
    };
}
