#!/usr/bin/env bash
# Installs the Debian packages the tests and the local host need; quick when they are present.
set -euo pipefail

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
