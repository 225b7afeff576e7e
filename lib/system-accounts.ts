// Account and group names the app must never be given. The app runs as a system user named after
// it (setup creates the user and a group of the same name only when they do not exist yet), so an
// app named after an existing account would run as that account, and one named after an existing
// group would join it: `postgres` owns the database cluster, `www-data` is NGINX, `sudo` and `adm`
// grant root or the logs.

/** Debian 12 base-passwd users and groups, those of the packages setup installs, and NixOS's. */
const RESERVED_ACCOUNT_NAMES: ReadonlySet<string> = new Set([
    // base-passwd users
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "_apt",
    // base-passwd groups
    "adm",
    "tty",
    "disk",
    "kmem",
    "dialout",
    "fax",
    "voice",
    "cdrom",
    "floppy",
    "tape",
    "sudo",
    "audio",
    "dip",
    "operator",
    "src",
    "shadow",
    "utmp",
    "video",
    "sasl",
    "plugdev",
    "staff",
    "users",
    "nogroup",
    "input",
    "kvm",
    "render",
    "sgx",
    "netdev",
    "crontab",
    "ssl-cert",
    "lpadmin",
    // daemons of the base system and of what setup installs (sshd, dbus, PostgreSQL, HAProxy,
    // NGINX, certbot, time sync, polkit, the TPM stack, uuidd, tcpdump, chrony, rsyslog)
    "sshd",
    "messagebus",
    "postgres",
    "haproxy",
    "nginx",
    "acme",
    "certbot",
    "polkitd",
    "tss",
    "uuidd",
    "tcpdump",
    "_chrony",
    "chrony",
    "ntp",
    "ntpsec",
    "_rpc",
    "statd",
    "syslog",
    "dnsmasq",
    "avahi",
    "_laurel",
    "ec2-instance-connect",
    // the login user of the Debian cloud images, and the usual admin groups elsewhere
    "admin",
    "wheel",
    "docker",
    "lxd",
    // NixOS
    "nixbld",
    "nscd",
    "keys",
]);

/** Name families: systemd's own users (systemd-network, systemd-journal, ...) and Nix's builders. */
const RESERVED_ACCOUNT_PREFIXES = [/^systemd-/, /^nixbld\d*$/];

export function isReservedAccountName(name: string): boolean {
    return RESERVED_ACCOUNT_NAMES.has(name) || RESERVED_ACCOUNT_PREFIXES.some((p) => p.test(name));
}
