// Host: the one machine the app runs on, and the SSH connection every later step uses.
//   aws      - EC2 instance in the default VPC (or a given subnet), locked-down security group,
//              key pair, encrypted gp3 root volume, IMDSv2 only, Elastic IP that survives
//              instance replacement, and an SSH host key the program generates (a secret) and
//              hands to the instance in its user data: every SSH step pins it from the start.
//              The data (PostgreSQL, media, the env file) lives on an encrypted EBS volume of its
//              own that outlives the instance. Rotating the deploy key never replaces the
//              instance (keyName is ignored after creation; HostSetup keeps authorized_keys), and
//              a change that would replace the instance of a stack with PostgreSQL fails preview
//              unless acknowledged (HostReplacementGuard).
//   existing - an SSH host from config, its host key pinned (sshHostKey, required); declares
//              nothing and calls no AWS function.
import * as pulumi from "@pulumi/pulumi";
import type * as ebsTypes from "@pulumi/aws/ebs";
import type * as ec2Types from "@pulumi/aws/ec2";
import { effectiveSshUser } from "../program/config-schema";
import { DATA_VOLUME_DEVICE_NAME } from "../lib/host-layout";
import { CONFIG_NAMESPACE } from "../program/load-config";
import { HostKeyPair } from "../program/host-files";
import { PublicSettings } from "../program/load-config";
import { HostReplacementGuard } from "./host-replacement-guard";
import { HostHandle } from "./remote";
import { SshHostKey } from "./instance-host-key";
import { fingerprint, parseHostKey } from "./ssh/provider";
import { SshConnection } from "./ssh/ssh-connection";

type HostSettings = Pick<
    PublicSettings,
    | "appName"
    | "hostTarget"
    | "osFlavour"
    | "nixosRelease"
    | "instanceType"
    | "rootVolumeGiB"
    | "dataVolumeGiB"
    | "allowHostReplacement"
    | "postgresql"
    | "subnetId"
    | "allowedSshCidrs"
    | "sshPublicKey"
    | "sshUser"
    | "sshHostKey"
    | "hostAddress"
    | "sshPort"
    | "httpPort"
    | "httpsPort"
>;

export interface HostArgs {
    settings: HostSettings;
    /** Secret. */
    sshPrivateKey: pulumi.Input<string>;
    /**
     * The instance's user data (aws), given its SSH host key: cloud-init on Debian, the host-key
     * lines NixOS reads. First boot only, so later changes are ignored.
     */
    userData?: (hostKey: HostKeyPair) => string;
}

/** Official image publishers: Debian's cloud team and the NixOS project. */
const AMI_OWNERS = { debian: "136693071363", nixos: "427812963091" } as const;

/** Graviton families have a "g" after the generation digit (t4g, m7g, c7gn, r6gd, x2gd, im4gn). */
export function instanceArchitecture(instanceType: string): "x86_64" | "arm64" {
    const family = instanceType.split(".")[0];
    const m = /^[a-z]+\d+([a-z-]*)$/.exec(family);
    return m && m[1].includes("g") && !m[1].startsWith("-") ? "arm64" : "x86_64";
}

export function amiNamePattern(flavour: "debian" | "nixos", arch: "x86_64" | "arm64", nixosRelease: string): string {
    if (flavour === "debian") return `debian-12-${arch === "arm64" ? "arm64" : "amd64"}-*`;
    return `nixos/${nixosRelease}*-${arch === "arm64" ? "aarch64" : "x86_64"}-linux`;
}

export class Host extends pulumi.ComponentResource implements HostHandle {
    readonly connection: pulumi.Output<SshConnection>;
    readonly hostId: pulumi.Output<string>;
    readonly address: pulumi.Output<string>;
    readonly sshUser: string;
    readonly sshPort: number;
    /** Only for hostTarget aws. */
    readonly instanceId?: pulumi.Output<string>;
    /** The host key every step pins: sshHostKey, or on aws the generated one. */
    readonly hostKey: pulumi.Output<string>;
    /** aws: the data volume's id, known once it is attached to the instance. */
    readonly dataVolumeId?: pulumi.Output<string>;

    constructor(name: string, args: HostArgs, opts?: pulumi.ComponentResourceOptions) {
        super("slotshift:host:Host", name, {}, opts);
        const s = args.settings;
        this.sshUser = effectiveSshUser(s);
        this.sshPort = s.sshPort;

        if (s.hostTarget === "existing") {
            const address = s.hostAddress ?? "";
            this.address = pulumi.output(address);
            // A pinned host key names the machine: one reinstalled at the same address (a new
            // key) gets every step again, as a replaced instance does.
            // The schema requires sshHostKey for an existing host.
            const key = s.sshHostKey ? parseHostKey(s.sshHostKey) : undefined;
            this.hostKey = pulumi.output(s.sshHostKey ?? "");
            this.hostId = pulumi.output(`${this.sshUser}@${address}:${s.sshPort}${key ? ` ${fingerprint(key.blob)}` : ""}`);
            this.connection = pulumi.secret(
                pulumi.output(args.sshPrivateKey).apply((privateKey): SshConnection => ({
                    host: address,
                    port: s.sshPort,
                    user: this.sshUser,
                    privateKey,
                    hostKey: s.sshHostKey ?? "",
                })),
            );
        } else {
            const aws = this.declareAws(name, args);
            this.instanceId = aws.instance.id;
            this.hostId = aws.instance.id;
            this.address = aws.eip.publicIp;
            this.hostKey = aws.hostKey.publicKey;
            this.dataVolumeId = aws.dataAttachment.volumeId;
            // Through the association, so no command dials before the address points at the instance.
            this.connection = pulumi.secret(
                // ...and the data volume is attached, so the setup step finds it.
                pulumi
                    .all([aws.association.publicIp, args.sshPrivateKey, aws.hostKey.publicKey, aws.dataAttachment.volumeId])
                    .apply(([host, privateKey, hostKey]): SshConnection => ({
                        host,
                        port: s.sshPort,
                        user: this.sshUser,
                        privateKey,
                        hostKey,
                        // A new instance takes a minute or two to boot and start sshd.
                        dialErrorLimit: 40,
                        perDialTimeout: 15,
                    })),
            );
        }
        this.registerOutputs({ address: this.address, hostId: this.hostId });
    }

    private declareAws(name: string, args: HostArgs) {
        // Loaded here only: an existing-host stack needs neither the AWS plugin nor credentials.
        // Only the EC2 module: the whole package is far slower to load and to type-check.
        const ec2: typeof ec2Types = require("@pulumi/aws/ec2");
        const ebs: typeof ebsTypes = require("@pulumi/aws/ebs");
        const s = args.settings;
        const parent = { parent: this };
        const tags = { Name: `${s.appName}-${pulumi.getStack()}`, "slotshift:app": s.appName };

        let subnetId: pulumi.Output<string>;
        let vpcId: pulumi.Output<string>;
        let availabilityZone: pulumi.Output<string>;
        if (s.subnetId) {
            subnetId = pulumi.output(s.subnetId);
            const subnet = ec2.getSubnetOutput({ id: s.subnetId }, parent);
            vpcId = subnet.vpcId;
            availabilityZone = subnet.availabilityZone;
        } else {
            vpcId = ec2.getVpcOutput({ default: true }, parent).id;
            const subnets = ec2.getSubnetsOutput(
                {
                    filters: [
                        { name: "vpc-id", values: [vpcId] },
                        { name: "default-for-az", values: ["true"] },
                    ],
                },
                parent,
            );
            // Sorted, so the choice is stable from run to run (a different subnet replaces the instance).
            subnetId = subnets.ids.apply((ids) => {
                if (ids.length === 0) throw new Error("the default VPC has no default subnets; set slotshift:subnetId");
                return [...ids].sort()[0];
            });
            availabilityZone = ec2.getSubnetOutput({ id: subnetId }, parent).availabilityZone;
        }

        const arch = instanceArchitecture(s.instanceType);
        const ami = ec2.getAmiOutput(
            {
                owners: [AMI_OWNERS[s.osFlavour]],
                mostRecent: true,
                filters: [
                    { name: "name", values: [amiNamePattern(s.osFlavour, arch, s.nixosRelease)] },
                    { name: "architecture", values: [arch] },
                    { name: "virtualization-type", values: ["hvm"] },
                    { name: "root-device-type", values: ["ebs"] },
                ],
            },
            parent,
        );

        const anywhere = { cidrBlocks: ["0.0.0.0/0"], ipv6CidrBlocks: ["::/0"] };
        const securityGroup = new ec2.SecurityGroup(
            `${name}-sg`,
            {
                vpcId,
                description: `slotshift ${s.appName}: HTTP and HTTPS from anywhere, SSH from the allowed CIDRs only`,
                ingress: [
                    { description: "HTTP (ACME challenges, redirect to HTTPS)", protocol: "tcp", fromPort: s.httpPort, toPort: s.httpPort, ...anywhere },
                    { description: "HTTPS", protocol: "tcp", fromPort: s.httpsPort, toPort: s.httpsPort, ...anywhere },
                    { description: "SSH (deploys)", protocol: "tcp", fromPort: s.sshPort, toPort: s.sshPort, cidrBlocks: s.allowedSshCidrs },
                ],
                egress: [{ description: "packages, ACME, outside APIs", protocol: "-1", fromPort: 0, toPort: 0, ...anywhere }],
                tags,
            },
            parent,
        );

        const keyPair = new ec2.KeyPair(`${name}-key`, { publicKey: s.sshPublicKey ?? "", tags }, parent);

        // Outlives any one instance: a replaced instance at the same address presents the same key.
        const hostKey = new SshHostKey(`${name}-ssh-host-key`, { comment: `${s.appName}-${pulumi.getStack()}` }, parent);
        const userData = args.userData
            ? pulumi.secret(pulumi.all([hostKey.publicKey, hostKey.privateKey]).apply(([publicKey, privateKey]) => args.userData!({ publicKey, privateKey })))
            : undefined;

        // What replaces the instance when it changes, by config key: checked before anything else.
        const guard = new HostReplacementGuard(
            `${name}-replacement-guard`,
            {
                identity: pulumi.all([subnetId]).apply(([subnet]) => ({ subnetId: subnet, osFlavour: s.osFlavour })),
                postgresql: s.postgresql,
                allowHostReplacement: s.allowHostReplacement,
                namespace: CONFIG_NAMESPACE,
            },
            parent,
        );

        // The flavour is part of the name: switching OS is a new instance, while `ami` itself is
        // ignored below so a newer image in the same family never replaces a running host.
        const instance = new ec2.Instance(
            `${name}-${s.osFlavour}`,
            {
                ami: ami.id,
                instanceType: s.instanceType,
                subnetId,
                vpcSecurityGroupIds: [securityGroup.id],
                keyName: keyPair.keyName,
                rootBlockDevice: { volumeType: "gp3", volumeSize: s.rootVolumeGiB, encrypted: true, deleteOnTermination: true },
                metadataOptions: { httpTokens: "required", httpEndpoint: "enabled", httpPutResponseHopLimit: 1 },
                userData,
                tags,
            },
            // User data only runs on first boot; a change would only stop and start the instance.
            // The key pair's name forces a replacement in EC2: it is used when the instance is
            // created, and HostSetup keeps authorized_keys from then on, so a rotation is an SSH step.
            { ...parent, dependsOn: [guard], ignoreChanges: ["ami", "userData", "keyName"] },
        );

        // The data outlives the instance: a volume of its own (never a launch block device, which
        // EC2 may delete with the instance), attached after launch, so termination leaves it alone.
        // It stays in its availability zone: a subnet elsewhere fails the attachment instead of
        // replacing the volume (HostReplacementGuard refuses that change first).
        const dataVolume = new ebs.Volume(
            `${name}-data`,
            { availabilityZone, size: s.dataVolumeGiB, type: "gp3", encrypted: true, tags: { ...tags, Name: `${tags.Name}-data` } },
            { ...parent, ignoreChanges: ["availabilityZone"] },
        );
        // A replaced instance: the old attachment goes first (the old instance stopped, so
        // PostgreSQL shuts down cleanly), then the volume is attached to the new one.
        const dataAttachment = new ec2.VolumeAttachment(
            `${name}-data-attachment`,
            { deviceName: DATA_VOLUME_DEVICE_NAME, volumeId: dataVolume.id, instanceId: instance.id, stopInstanceBeforeDetaching: true },
            { ...parent, deleteBeforeReplace: true },
        );

        // A separate association keeps the address when the instance is replaced.
        const eip = new ec2.Eip(`${name}-eip`, { domain: "vpc", tags }, parent);
        const association = new ec2.EipAssociation(`${name}-eip-assoc`, { allocationId: eip.allocationId, instanceId: instance.id }, parent);
        return { instance, eip, association, securityGroup, keyPair, hostKey, dataVolume, dataAttachment, guard };
    }
}
