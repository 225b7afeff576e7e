#!/usr/bin/env bash
# Installs the Debian packages the tests and the local host need; quick when they are present.
#   scripts/install-deps.sh [--bench]
# --bench also installs what only the benchmark (npm run bench) uses: vegeta, its second load
# generator (a Go module, built with the machine's Go toolchain). CI does not run the benchmark.
set -euo pipefail

bench=0
for arg in "$@"; do
    case $arg in
        --bench) bench=1 ;;
        *) echo "usage: scripts/install-deps.sh [--bench]" >&2; exit 2 ;;
    esac
done
# Pinned: the benchmark's figures name the version they were measured with.
VEGETA_MODULE=github.com/tsenart/vegeta/v12@v12.13.0

install_vegeta() {
    local gobin
    if command -v vegeta >/dev/null 2>&1; then
        echo "vegeta present: $(command -v vegeta)"
        return
    fi
    command -v go >/dev/null 2>&1 || { echo "error: vegeta needs a Go toolchain (go install $VEGETA_MODULE)" >&2; exit 1; }
    gobin=$(go env GOPATH | cut -d: -f1)/bin
    if [ -x "$gobin/vegeta" ]; then
        echo "vegeta present: $gobin/vegeta"
        return
    fi
    # As root onto PATH; otherwise into the user's Go bin dir (the benchmark looks there too).
    if [ "$(id -u)" -eq 0 ]; then gobin=/usr/local/bin; fi
    GOBIN=$gobin go install "$VEGETA_MODULE"
    echo "installed: vegeta ($gobin/vegeta)"
}

packages=(
    haproxy nginx-light openssl socat curl ca-certificates   # the proxy layer, run for real in tests
    openssh-server                                            # a real sshd for the SSH resource tests
    systemd nix-bin shellcheck python3-yaml                   # config checkers
    debootstrap systemd-container                             # the local Debian 12 host
    postgresql python3-django gunicorn python3-psycopg2       # the example app, tested on this machine
    chromium fonts-dejavu-core                                # the dashboard's browser tests (headless)
)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "all ${#packages[@]} packages present"
    if [ "$bench" -eq 1 ]; then install_vegeta; fi
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "error: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Package maintainer scripts must not start services on a machine without systemd as PID 1.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed: ${missing[*]}"
if [ "$bench" -eq 1 ]; then install_vegeta; fi
