#!/usr/bin/env bash
# A real Debian 12 host on this machine: a debootstrap root filesystem booted with systemd-nspawn,
# reachable over SSH on loopback. The end-to-end tests and the `local` stack deploy to it.
#
#   scripts/local-host.sh start     build (or reuse) the rootfs, boot it, wait until it is running
#   scripts/local-host.sh wait      wait until the booted host reports `running`
#   scripts/local-host.sh status    running / stopped / absent (exit 0 only when running)
#   scripts/local-host.sh ssh [CMD] ssh into the host as root (or run CMD there)
#   scripts/local-host.sh stop      power it off (SIGTERM to the recorded nspawn PID as fallback)
#   scripts/local-host.sh destroy   stop, then delete the host's rootfs (the cached pristine one stays)
#   scripts/local-host.sh env       print the paths and port as KEY=value lines for other scripts
#
# Environment:
#   SLOTSHIFT_LOCAL_DIR     state dir: rootfs/, SSH key, known_hosts, pid file, console log
#                           (default: <repo>/.local/host)
#   SLOTSHIFT_CACHE         cache dir for the pristine rootfs tarball (default: ~/.cache/slotshift)
#   SLOTSHIFT_SSH_PORT      port the host's sshd listens on, 127.0.0.1 only (default: 2222)
#   SLOTSHIFT_BOOT_TIMEOUT  seconds `start`/`wait` wait for `running` (default: 180)
#   SLOTSHIFT_DEBIAN_MIRROR Debian mirror URI (default: this machine's apt sources)
#
# The container shares this machine's network namespace (no --private-network): its nginx binds
# :80/:443, haproxy :8080, the slots :8001/:8002 and postgres :5432 here. Only one host can run.
set -euo pipefail

readonly SUITE=bookworm
# Bump when the way the pristine rootfs is built changes, so stale caches are not reused.
readonly RECIPE=1
# What the host setup installs anyway: baking it into the cached rootfs makes setup fast.
readonly PACKAGES=(
    systemd systemd-sysv dbus openssh-server sudo ca-certificates
    haproxy nginx-light nodejs openssl socat postgresql
    python3-django gunicorn python3-psycopg2
    acl iproute2 procps curl
)

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
# Absolute: the PID check matches the rootfs path in nspawn's command line, from any working dir.
STATE_DIR=$(realpath -m -- "${SLOTSHIFT_LOCAL_DIR:-$REPO_DIR/.local/host}")
CACHE_DIR=$(realpath -m -- "${SLOTSHIFT_CACHE:-${HOME:-/root}/.cache/slotshift}")
SSH_PORT=${SLOTSHIFT_SSH_PORT:-2222}
BOOT_TIMEOUT=${SLOTSHIFT_BOOT_TIMEOUT:-180}
MACHINE_NAME=slotshift-local

ROOTFS=$STATE_DIR/rootfs
PID_FILE=$STATE_DIR/nspawn.pid
CONSOLE_LOG=$STATE_DIR/console.log
SSH_KEY=$STATE_DIR/id_ed25519
KNOWN_HOSTS=$STATE_DIR/known_hosts
ROOTFS_SOURCE=$STATE_DIR/rootfs.source

log() { printf 'local-host: %s\n' "$*" >&2; }
die() { printf 'local-host: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '5,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

require_root() {
    [[ $EUID -eq 0 ]] || die "must run as root (debootstrap, chroot and systemd-nspawn need it): sudo $0 $*"
}

require_tools() {
    local missing=() tool
    for tool in debootstrap:debootstrap systemd-nspawn:systemd-container ssh:openssh-client \
        ssh-keygen:openssh-client ss:iproute2 flock:util-linux setsid:util-linux tar:tar; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
    done
    if ((${#missing[@]})); then
        mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
        die "missing tools; install them with: apt-get install ${missing[*]}"
    fi
    return 0
}

# The pristine rootfs is keyed by everything that goes into it.
cache_tarball() {
    local key
    key=$(printf '%s\n' "recipe=$RECIPE" "suite=$SUITE" "variant=minbase" "arch=$(dpkg --print-architecture)" "${PACKAGES[@]}" |
        sha256sum | cut -c1-16)
    printf '%s/rootfs-%s.tar' "$CACHE_DIR" "$key"
}

# Never hard-code a mirror: use the one this machine's apt is configured with.
debian_mirror() {
    if [[ -n ${SLOTSHIFT_DEBIAN_MIRROR:-} ]]; then
        printf '%s' "$SLOTSHIFT_DEBIAN_MIRROR"
        return
    fi
    local uri=""
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        # deb822: the URIs of the first stanza whose Suites list the release itself.
        uri=$(awk -v suite="$SUITE" '
            /^[[:space:]]*$/ { if (u != "" && s) { print u; exit } u = ""; s = 0; next }
            /^URIs:/ { u = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == suite) s = 1 }
            END { if (u != "" && s) print u }' /etc/apt/sources.list.d/debian.sources | head -n1)
    fi
    if [[ -z $uri && -r /etc/apt/sources.list ]]; then
        uri=$(awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2; exit }' /etc/apt/sources.list)
    fi
    [[ -n $uri ]] || die "no Debian mirror for $SUITE in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list; set SLOTSHIFT_DEBIAN_MIRROR"
    printf '%s' "$uri"
}

# Unmount anything left mounted below DIR, then delete it without crossing into other filesystems.
remove_tree() {
    local dir=$1 mnt
    [[ -n $dir && $dir != / && -e $dir ]] || return 0
    while read -r mnt; do
        if [[ -n $mnt ]]; then umount -l "$mnt" 2>/dev/null || true; fi
    done < <(awk -v d="$dir/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf --one-file-system -- "$dir"
}

build_pristine() {
    local tarball=$1 work mirror started=$SECONDS
    mkdir -p "$CACHE_DIR"
    mirror=$(debian_mirror)
    work=$(mktemp -d "$CACHE_DIR/build.XXXXXX")
    # shellcheck disable=SC2064 # expand now: $work is local
    trap "remove_tree '$work'" EXIT
    log "building a pristine Debian $SUITE rootfs from $mirror (a few minutes, once)"
    local include
    include=$(IFS=,; printf '%s' "${PACKAGES[*]}")
    # Two stages so that a policy-rc.d is in place before any maintainer script runs: otherwise
    # postgresql's postinst would start a server on this machine from inside the chroot.
    debootstrap --variant=minbase --foreign --include="$include" "$SUITE" "$work/root" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap (first stage) failed"; }
    printf '#!/bin/sh\n# no services start while the image is built\nexit 101\n' >"$work/root/usr/sbin/policy-rc.d"
    chmod 0755 "$work/root/usr/sbin/policy-rc.d"
    chroot "$work/root" /debootstrap/debootstrap --second-stage >>"$work/debootstrap.log" 2>&1 ||
        { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap (second stage) failed"; }
    rm -f "$work/root/usr/sbin/policy-rc.d" "$work/root"/var/cache/apt/archives/*.deb
    # Per-host identity is created when a host is made from this image.
    rm -f "$work/root"/etc/ssh/ssh_host_*
    : >"$work/root/etc/machine-id"
    tar -C "$work/root" --numeric-owner --xattrs --xattrs-include='*' --acls -cf "$tarball.part" .
    mv -f "$tarball.part" "$tarball"
    remove_tree "$work"
    trap - EXIT
    log "pristine rootfs cached: $tarball ($(du -h "$tarball" | cut -f1), $((SECONDS - started)) s)"
}

ensure_key() {
    mkdir -p "$STATE_DIR"
    chmod 0700 "$STATE_DIR"
    [[ -f $SSH_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C "slotshift-local" -f "$SSH_KEY"
}

# Copies the host's apt access settings so `apt-get` inside behaves like it does here.
write_apt_config() {
    local root=$1
    if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
        cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/debian.sources"
        : >"$root/etc/apt/sources.list"
    fi
    apt-config dump 2>/dev/null |
        grep -E '^Acquire::(Check-Valid-Until|Check-Date|https?::Proxy) ' >"$root/etc/apt/apt.conf.d/90slotshift-local" || true
}

create_host_rootfs() {
    local tarball=$1 started=$SECONDS staging
    staging=$STATE_DIR/rootfs.new
    remove_tree "$staging"
    mkdir -p "$staging"
    tar -C "$staging" --numeric-owner --xattrs --xattrs-include='*' --acls -xpf "$tarball"

    printf '%s\n' "$MACHINE_NAME" >"$staging/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost ip6-localhost ip6-loopback\n' "$MACHINE_NAME" >"$staging/etc/hosts"
    # A fresh identity per host; an empty machine-id would make systemd-firstboot prompt on the console.
    tr -d '-' </proc/sys/kernel/random/uuid >"$staging/etc/machine-id"
    ssh-keygen -A -f "$staging" >/dev/null

    # Shared network namespace: loopback only, and a port of its own.
    cat >"$staging/etc/ssh/sshd_config.d/10-slotshift-local.conf" <<EOF
# Local test host: it shares the network of the machine it runs on.
Port $SSH_PORT
ListenAddress 127.0.0.1
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
EOF
    install -d -m 0700 "$staging/root/.ssh"
    install -m 0600 "$SSH_KEY.pub" "$staging/root/.ssh/authorized_keys"
    write_apt_config "$staging"

    # Pin this host's identity in our own known_hosts, so the first connection is already verified.
    printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1,2 "$staging/etc/ssh/ssh_host_ed25519_key.pub")" >"$KNOWN_HOSTS"

    mv "$staging" "$ROOTFS"
    basename "$tarball" >"$ROOTFS_SOURCE"
    log "host rootfs created from $(basename "$tarball") in $((SECONDS - started)) s"
}

# The recorded PID, if that process is still our nspawn (guards against PID reuse).
nspawn_pid() {
    [[ -f $PID_FILE ]] || return 1
    local pid cmdline
    pid=$(<"$PID_FILE")
    [[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
    [[ $cmdline == *systemd-nspawn* && $cmdline == *"--directory=$ROOTFS "* ]] || return 1
    printf '%s' "$pid"
}

ssh_opts() {
    printf '%s\n' -i "$SSH_KEY" -p "$SSH_PORT" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o StrictHostKeyChecking=accept-new -o "UserKnownHostsFile=$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null \
        -o LogLevel=ERROR -o ConnectTimeout=5
}

host_ssh() {
    local opts
    mapfile -t opts < <(ssh_opts)
    # shellcheck disable=SC2029 # the arguments are a command line for the host, as with ssh itself
    ssh "${opts[@]}" root@127.0.0.1 "$@"
}

port_in_use() {
    [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]
}

wait_running() {
    local deadline=$((SECONDS + BOOT_TIMEOUT)) state="" pid
    while :; do
        pid=$(nspawn_pid) || { tail -n 40 "$CONSOLE_LOG" >&2 2>/dev/null || true; die "the container exited (console log: $CONSOLE_LOG)"; }
        state=$(host_ssh systemctl is-system-running 2>/dev/null) || true
        case $state in
            running)
                log "host is running (nspawn pid $pid, ssh root@127.0.0.1 -p $SSH_PORT)"
                return 0
                ;;
            degraded)
                log "host booted degraded; failed units:"
                host_ssh systemctl --no-pager --failed >&2 || true
                die "host is degraded (inspect with: $0 ssh journalctl -b -p warning)"
                ;;
        esac
        ((SECONDS < deadline)) || die "host not running after ${BOOT_TIMEOUT}s (last state: ${state:-no ssh}; console log: $CONSOLE_LOG)"
        sleep 1
    done
}

cmd_start() {
    require_root start
    require_tools
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    flock -w 600 9 || die "another local-host command holds $STATE_DIR/.lock"
    local pid started=$SECONDS tarball
    if pid=$(nspawn_pid); then
        log "already running (nspawn pid $pid)"
        wait_running
        return 0
    fi
    ensure_key
    tarball=$(cache_tarball)
    if [[ ! -d $ROOTFS ]]; then
        if [[ ! -f $tarball ]]; then
            mkdir -p "$CACHE_DIR"
            exec 8>"$CACHE_DIR/.build.lock"
            flock -w 1800 8 || die "timed out waiting for another rootfs build"
            [[ -f $tarball ]] || build_pristine "$tarball"
            exec 8>&-
        fi
        create_host_rootfs "$tarball"
    elif [[ -f $ROOTFS_SOURCE && $(<"$ROOTFS_SOURCE") != "$(basename "$tarball")" ]]; then
        log "note: this host was made from $(<"$ROOTFS_SOURCE"), the current image is $(basename "$tarball"); '$0 destroy' to refresh"
    fi

    port_in_use "$SSH_PORT" && die "127.0.0.1:$SSH_PORT is already in use (another local host running? set SLOTSHIFT_SSH_PORT)"
    local p busy=()
    for p in 80 443 8080 8001 8002 5432; do port_in_use "$p" && busy+=("$p"); done
    ((${#busy[@]} == 0)) || log "warning: ports in use here: ${busy[*]} — the host's services that need them will fail"

    : >"$CONSOLE_LOG"
    # setsid: the container must outlive the shell that started it. Without --register=no and
    # --keep-unit nspawn wants machined/the system bus, which this machine does not have.
    # 9>&-: the container must not inherit (and so hold) the state-dir lock.
    setsid systemd-nspawn --register=no --keep-unit --boot --directory="$ROOTFS" \
        --machine="$MACHINE_NAME" --console=read-only --link-journal=no --resolv-conf=copy-host \
        </dev/null >>"$CONSOLE_LOG" 2>&1 9>&- &
    pid=$!
    printf '%s\n' "$pid" >"$PID_FILE"
    sleep 0.5
    nspawn_pid >/dev/null || { tail -n 40 "$CONSOLE_LOG" >&2; die "systemd-nspawn exited at once (console log: $CONSOLE_LOG)"; }
    log "booting (nspawn pid $pid)"
    wait_running
    log "start took $((SECONDS - started)) s"
}

cmd_wait() {
    nspawn_pid >/dev/null || die "not running (start it with: $0 start)"
    wait_running
}

cmd_status() {
    local pid state
    if pid=$(nspawn_pid); then
        state=$(host_ssh systemctl is-system-running 2>/dev/null) || true
        printf 'running: nspawn pid %s, ssh root@127.0.0.1 -p %s, system %s\n' "$pid" "$SSH_PORT" "${state:-unreachable}"
        return 0
    elif [[ -d $ROOTFS ]]; then
        printf 'stopped: rootfs %s (%s)\n' "$ROOTFS" "$(cat "$ROOTFS_SOURCE" 2>/dev/null || echo unknown image)"
    else
        printf 'absent: no host rootfs under %s\n' "$STATE_DIR"
    fi
    return 3
}

# Waits up to $2 seconds for PID $1 to exit.
wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2))
    while [[ -e /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.5; done
    [[ ! -e /proc/$pid ]]
}

cmd_stop() {
    require_root stop
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    flock -w 600 9 || die "another local-host command holds $STATE_DIR/.lock"
    local pid
    if ! pid=$(nspawn_pid); then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "powering off (nspawn pid $pid)"
    local grace=60
    # --no-block: a 0 exit means the shutdown was queued; anything else (no SSH), go to SIGTERM now.
    host_ssh systemctl poweroff --no-block >/dev/null 2>&1 || grace=0
    if ! wait_exit "$pid" "$grace"; then
        # nspawn turns SIGTERM into an orderly shutdown of the container's init.
        log "no clean poweroff; sending SIGTERM to $pid"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_exit "$pid" 30; then
            log "still running; sending SIGKILL to $pid"
            kill -KILL "$pid" 2>/dev/null || true
            wait_exit "$pid" 10 || die "nspawn pid $pid does not exit"
        fi
    fi
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_destroy() {
    require_root destroy
    cmd_stop
    log "removing $ROOTFS (cache kept: $CACHE_DIR)"
    remove_tree "$ROOTFS.new"
    remove_tree "$ROOTFS"
    rm -f "$ROOTFS_SOURCE" "$KNOWN_HOSTS" "$CONSOLE_LOG"
}

cmd_ssh() {
    local opts
    mapfile -t opts < <(ssh_opts)
    # Interactive use wants a terminal; BatchMode only rules out password prompts.
    if (($# == 0)); then
        exec ssh -t "${opts[@]}" root@127.0.0.1
    fi
    exec ssh "${opts[@]}" root@127.0.0.1 "$@"
}

cmd_env() {
    printf 'SLOTSHIFT_LOCAL_DIR=%s\nSLOTSHIFT_LOCAL_SSH_KEY=%s\nSLOTSHIFT_LOCAL_KNOWN_HOSTS=%s\nSLOTSHIFT_LOCAL_SSH_PORT=%s\nSLOTSHIFT_LOCAL_ROOTFS=%s\nSLOTSHIFT_LOCAL_CACHE_IMAGE=%s\n' \
        "$STATE_DIR" "$SSH_KEY" "$KNOWN_HOSTS" "$SSH_PORT" "$ROOTFS" "$(cache_tarball)"
}

main() {
    (($# >= 1)) || usage
    local cmd=$1
    shift
    case $cmd in
        start) cmd_start ;;
        wait) cmd_wait ;;
        status) cmd_status ;;
        stop) cmd_stop ;;
        destroy) cmd_destroy ;;
        ssh) cmd_ssh "$@" ;;
        env) cmd_env ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
