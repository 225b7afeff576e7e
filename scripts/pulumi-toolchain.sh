#!/usr/bin/env bash
# Provides the Pulumi toolchain this project needs and prints, as its last stdout line, the
# directory to put in front of PATH:
#
#     PATH="$(scripts/pulumi-toolchain.sh):$PATH"
#
# - If a `pulumi` is already on PATH (a developer's machine with the official install), that one
#   is used and nothing is built.
# - Otherwise the CLI (`pulumi`), the Node.js language host (`pulumi-language-nodejs`), the
#   dynamic-provider shim (`pulumi-resource-pulumi-nodejs`) and the resource plugins the project
#   uses (`pulumi-resource-command`, `pulumi-resource-random`) are built from Go modules into a
#   cache directory, once per set of versions. A warm run only checks a stamp file.
#
# Versions come from package.json (@pulumi/pulumi, @pulumi/command, @pulumi/random, exact pins).
# Without a package.json: `pulumi-toolchain.sh [PULUMI_VERSION [COMMAND_VERSION]]`, else the
# environment (SLOTSHIFT_PULUMI_VERSION, SLOTSHIFT_COMMAND_VERSION, SLOTSHIFT_RANDOM_VERSION),
# else the defaults below.
#
# Environment (all optional):
#   SLOTSHIFT_CACHE                  cache directory (default:
#                                    ${XDG_CACHE_HOME:-$HOME/.cache}/slotshift/pulumi-<versions-hash>)
#   SLOTSHIFT_PACKAGE_JSON           package.json to read (default: the one beside scripts/)
#   SLOTSHIFT_PULUMI_IGNORE_PATH=1   build even if a pulumi is on PATH
#   SLOTSHIFT_LANGUAGE_NODEJS_VERSION  language host version (default: the CLI's, else 3.68.0;
#                                    see build_language_host)
#   SLOTSHIFT_PULUMI_REQUIRE_PLUGINS=1  fail when a resource plugin cannot be built (default: warn)
#   GOMODCACHE, GOCACHE, GOPROXY     honoured as usual by `go`
#
# The Go wrapper modules are generated at run time under the cache directory; nothing Go is kept
# in the repository. Progress goes to stderr.
set -euo pipefail

readonly RECIPE=1                          # bump to invalidate every cache built by this script
readonly DEFAULT_PULUMI_VERSION=3.259.0
readonly DEFAULT_COMMAND_VERSION=1.2.1
# The last pulumi release whose Node.js language host is a package of the sdk/v3 module; later
# releases keep it in a module of its own that has no version tags (only pseudo-versions).
readonly LANGHOST_IN_SDK_MAX=3.68.0

log() { printf '[pulumi-toolchain] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/slotshift"

# --- a pulumi that is already installed wins -------------------------------------------------
if [ "${SLOTSHIFT_PULUMI_IGNORE_PATH:-}" != 1 ] && existing=$(command -v pulumi 2>/dev/null); then
    existing_dir=$(cd "$(dirname "$existing")" && pwd)
    case "$existing_dir/" in
        "$cache_root"/* | "${SLOTSHIFT_CACHE:-/nonexistent}"/*) ;;   # one of ours: check versions below
        *)
            log "using the pulumi already on PATH: $existing (building nothing)"
            printf '%s\n' "$existing_dir"
            exit 0
            ;;
    esac
fi

# --- versions -----------------------------------------------------------------------------------
strip_pin() {   # "3.259.0" or "=3.259.0" -> 3.259.0; ranges are refused: the CLI must match exactly
    local v=${1#=}
    v=${v#v}
    [ -z "$v" ] && return 0
    [[ $v =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$2 must be pinned to an exact version in package.json (found '$1')"
    printf '%s' "$v"
}

package_json=${SLOTSHIFT_PACKAGE_JSON:-$script_dir/../package.json}
pulumi_version='' command_version='' random_version=''
if [ -f "$package_json" ]; then
    command -v node >/dev/null || die "node is needed to read $package_json"
    read -r pj_pulumi pj_command pj_random < <(node -e '
        const p = require(require("path").resolve(process.argv[1]));
        const d = { ...(p.devDependencies || {}), ...(p.dependencies || {}) };
        console.log(["@pulumi/pulumi", "@pulumi/command", "@pulumi/random"].map((n) => d[n] || "-").join(" "));
    ' "$package_json") || die "cannot read $package_json"
    [ "$pj_pulumi" = - ] && pj_pulumi=''
    [ "$pj_command" = - ] && pj_command=''
    [ "$pj_random" = - ] && pj_random=''
    pulumi_version=$(strip_pin "$pj_pulumi" @pulumi/pulumi)
    command_version=$(strip_pin "$pj_command" @pulumi/command)
    random_version=$(strip_pin "$pj_random" @pulumi/random)
    [ -n "$pulumi_version" ] || die "$package_json has no @pulumi/pulumi dependency"
else
    pulumi_version=$(strip_pin "${1:-${SLOTSHIFT_PULUMI_VERSION:-$DEFAULT_PULUMI_VERSION}}" pulumi)
    command_version=$(strip_pin "${2:-${SLOTSHIFT_COMMAND_VERSION:-$DEFAULT_COMMAND_VERSION}}" command)
    random_version=$(strip_pin "${SLOTSHIFT_RANDOM_VERSION:-}" random)
fi
langhost_request=${SLOTSHIFT_LANGUAGE_NODEJS_VERSION:-auto}

key="recipe=$RECIPE pulumi=$pulumi_version language-nodejs=$langhost_request command=${command_version:-none} random=${random_version:-none} os=$(uname -s)/$(uname -m)"
key_hash=$(printf '%s\n' "$key" | sha256sum | cut -c1-12)
cache=${SLOTSHIFT_CACHE:-$cache_root/pulumi-$key_hash}
bin=$cache/bin
stamp=$bin/.complete

warn_unavailable() {
    local f
    for f in "$bin"/.unavailable-*; do
        [ -f "$f" ] || continue
        log "warning: ${f##*/.unavailable-} is not available: $(cat "$f")"
    done
}

cached() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; }

if cached; then
    log "cached: $bin ($key)"
    warn_unavailable
    printf '%s\n' "$bin"
    exit 0
fi

# --- cold path ----------------------------------------------------------------------------------
command -v go >/dev/null || die "go is needed to build pulumi (Go >= 1.25 for pulumi 3.2xx)"
mkdir -p "$cache"
if command -v flock >/dev/null; then
    exec 9>"$cache/.lock"
    flock 9            # another run may be building the same cache
    if cached; then
        log "built by a concurrent run: $bin"
        warn_unavailable
        printf '%s\n' "$bin"
        exit 0
    fi
fi
rm -rf "$bin"
mkdir -p "$bin"
printf '%s\n' "$key" >"$cache/versions.txt"

export GOFLAGS='-mod=mod -buildvcs=false' GOWORK=off GO111MODULE=on CGO_ENABLED=0
log "building into $cache ($key); go: $(go env GOVERSION), GOMODCACHE=$(go env GOMODCACHE)"

version_le() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n1)" = "$1" ]; }

# Prints the replace directives of a go.mod that point at other modules (not at local
# directories), as arguments for `go mod edit -replace`: old[@v]=new[@v].
nonlocal_replaces() {
    local line lhs rhs old oldv new newv
    awk '
        { sub(/\/\/.*/, "") }
        /^replace[ \t]*\(/ { blk = 1; next }
        blk && /^[ \t]*\)/ { blk = 0; next }
        blk && /=>/ { print; next }
        /^replace[ \t]/ { sub(/^replace[ \t]+/, ""); print }
    ' "$1" | while IFS= read -r line; do
        lhs=${line%%=>*}
        rhs=${line#*=>}
        read -r old oldv <<<"$lhs" || true
        read -r new newv <<<"$rhs" || true
        case "$new" in ./* | ../* | /*) continue ;; esac
        printf '%s%s=%s%s\n' "$old" "${oldv:+@$oldv}" "$new" "${newv:+@$newv}"
    done
}

# build_tool NAME PACKAGE LDFLAGS MODULE@VERSION...
# Generates a wrapper module requiring the given modules (repeating their non-local replace
# directives, which `go install pkg@version` would refuse) and builds PACKAGE into $bin/NAME.
# On failure returns 1 and leaves the reason in $build_error. Go's output is in wrap/NAME/build.log.
build_tool() {
    local name=$1 pkg=$2 ldflags=$3
    shift 3
    local dir=$cache/wrap/$name json gomod moddir godir go_min=1.21 mv m r start pkgdir=''
    local -a edits=() replaces=()
    build_error=''
    rm -rf "$dir"
    mkdir -p "$dir"
    printf 'module slotshift.invalid/toolchain/%s\n' "$name" >"$dir/go.mod"
    start=$SECONDS
    for mv in "$@"; do
        log "$name: fetching $mv"
        if ! json=$(cd "$dir" && go mod download -json "$mv" 2>&1); then
            build_error=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Error": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
            build_error=${build_error:-$(printf '%s\n' "$json" | tail -n1)}
            build_error="${build_error%%\\n*}"        # first line of go's message
            return 1
        fi
        gomod=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
        moddir=$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' | head -n1)
        [ -f "$gomod" ] || { build_error="$mv: go mod download gave no go.mod"; return 1; }
        case "$pkg/" in "${mv%@*}/"*) pkgdir=$moddir${pkg#"${mv%@*}"} ;; esac
        godir=$(awk '$1 == "go" { print $2; exit }' "$gomod")
        if [ -n "$godir" ] && ! version_le "$godir" "$go_min"; then go_min=$godir; fi
        edits+=("-require=$mv")
        while IFS= read -r r; do
            for m in "$@"; do   # never replace a module required on purpose
                case "$r" in "${m%@*}="* | "${m%@*}@"*) continue 2 ;; esac
            done
            case " ${replaces[*]} " in *" $r "*) continue ;; esac
            replaces+=("$r")
            edits+=("-replace=$r")
        done < <(nonlocal_replaces "$gomod")
    done
    if [ -n "$pkgdir" ] && [ ! -d "$pkgdir" ]; then
        build_error="$*: no package $pkg in that module version"
        return 1
    fi
    (cd "$dir" && go mod edit -go="$go_min" "${edits[@]}") || { build_error="go mod edit failed"; return 1; }
    [ "${#replaces[@]}" -eq 0 ] || log "$name: replace directives: ${replaces[*]}"
    log "$name: go build $pkg (minutes on a cold Go cache; output in $dir/build.log)"
    if ! (cd "$dir" && go build -trimpath -ldflags "-s -w $ldflags" -o "$bin/.$name.tmp" "$pkg") >"$dir/build.log" 2>&1; then
        grep -v '^go: downloading' "$dir/build.log" | tail -n 20 >&2
        build_error="go build $pkg failed: $(grep -v '^go: downloading' "$dir/build.log" | head -n1)"
        rm -f "$bin/.$name.tmp"
        return 1
    fi
    mv -f "$bin/.$name.tmp" "$bin/$name"
    log "$name: built in $((SECONDS - start)) s"
}

readonly PULUMI=github.com/pulumi/pulumi
readonly VERSION_VAR=$PULUMI/sdk/v3/go/common/version.Version

build_cli() {
    build_tool pulumi "$PULUMI/pkg/v3/cmd/pulumi" "-X $VERSION_VAR=v$pulumi_version" \
        "$PULUMI/pkg/v3@v$pulumi_version" "$PULUMI/sdk/v3@v$pulumi_version" ||
        die "cannot build the pulumi CLI $pulumi_version: $build_error"
}

# The language host matching the CLI is the module $PULUMI/sdk/nodejs/cmd/pulumi-language-nodejs/v3,
# which pulumi never tags, so a module proxy has it at pseudo-versions only (and a restricted one
# not at all). It is tried first; the fallback is the last release that still shipped it inside
# sdk/v3 (3.68.0). That host speaks the same gRPC protocol; newer engines fall back when it
# answers Unimplemented to newer calls.
build_language_host() {
    local candidates v err=''
    if [ "$langhost_request" = auto ]; then
        candidates="$pulumi_version $LANGHOST_IN_SDK_MAX"
    else
        candidates=$(strip_pin "$langhost_request" SLOTSHIFT_LANGUAGE_NODEJS_VERSION)
    fi
    for v in $candidates; do
        if version_le "$v" "$LANGHOST_IN_SDK_MAX"; then
            build_tool pulumi-language-nodejs "$PULUMI/sdk/v3/nodejs/cmd/pulumi-language-nodejs" \
                "-X $VERSION_VAR=v$v" "$PULUMI/sdk/v3@v$v" && langhost_version=$v && return 0
        else
            build_tool pulumi-language-nodejs "$PULUMI/sdk/nodejs/cmd/pulumi-language-nodejs/v3" \
                "-X $VERSION_VAR=v$v" "$PULUMI/sdk/nodejs/cmd/pulumi-language-nodejs/v3@v$v" \
                "$PULUMI/pkg/v3@v$v" "$PULUMI/sdk/v3@v$v" && langhost_version=$v && return 0
        fi
        log "pulumi-language-nodejs $v: $build_error"
        err="${err:+$err; }$build_error"
    done
    die "cannot build pulumi-language-nodejs: $err"
}

# A resource plugin that cannot be built is recorded (so warm runs do not retry) and reported.
plugin_unavailable() {
    local name=$1 reason=$2
    printf '%s\n' "$reason" >"$bin/.unavailable-$name"
    log "warning: $name is not available: $reason"
    if [ "${SLOTSHIFT_PULUMI_REQUIRE_PLUGINS:-}" = 1 ]; then
        die "$name is required (SLOTSHIFT_PULUMI_REQUIRE_PLUGINS=1)"
    fi
}

# pulumi-command keeps the provider at the import path .../provider/cmd/pulumi-resource-command
# in every layout, but the module holding it changed: up to 1.2.x the nested module
# github.com/pulumi/pulumi-command/provider (tagged only as vX.Y.Z on the repository root, so it
# has no proxy versions), later the root module github.com/pulumi/pulumi-command.
build_command_plugin() {
    local v=$command_version pkg=github.com/pulumi/pulumi-command/provider/cmd/pulumi-resource-command
    local ld="-X github.com/pulumi/pulumi-command/provider/pkg/version.Version=$v" errs=''
    build_tool pulumi-resource-command "$pkg" "$ld" "github.com/pulumi/pulumi-command/provider@v$v" && return 0
    errs=$build_error
    build_tool pulumi-resource-command "$pkg" "$ld" "github.com/pulumi/pulumi-command@v$v" && return 0
    plugin_unavailable pulumi-resource-command "command $v cannot be built from Go modules: the provider is the nested module github.com/pulumi/pulumi-command/provider, which has no tagged versions (only the repository root is tagged), and the root module at v$v does not contain it [go: $errs; $build_error]"
}

# pulumi-random's provider module replaces github.com/terraform-providers/terraform-provider-random/shim
# with its local ./shim directory: a module zip cannot carry that, so this only works where the
# proxy serves github.com/pulumi/pulumi-random/provider/v4 and the shim path resolves.
build_random_plugin() {
    local v=$random_version
    build_tool pulumi-resource-random github.com/pulumi/pulumi-random/provider/v4/cmd/pulumi-resource-random \
        "-X github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version=$v" \
        "github.com/pulumi/pulumi-random/provider/v4@v$v" && return 0
    plugin_unavailable pulumi-resource-random "random $v cannot be built from Go modules ($build_error; its provider go.mod also replaces a local ./shim module)"
}

# The official CLI archive ships this shim for dynamic providers (pulumi.dynamic.Resource).
write_dynamic_provider_shim() {
    cat >"$bin/pulumi-resource-pulumi-nodejs" <<'EOF'
#!/bin/sh
PULUMI_DYNAMIC_PROVIDER_SCRIPT_PATH=$(node -e "console.log(require.resolve('@pulumi/pulumi/cmd/dynamic-provider'))")
if [ -n "$PULUMI_DYNAMIC_PROVIDER_SCRIPT_PATH" ]; then
    exec node "$PULUMI_DYNAMIC_PROVIDER_SCRIPT_PATH" "$@"
fi
EOF
    chmod +x "$bin/pulumi-resource-pulumi-nodejs"
}

total_start=$SECONDS
langhost_version=''
build_cli
build_language_host
write_dynamic_provider_shim
[ -z "$command_version" ] || build_command_plugin
[ -z "$random_version" ] || build_random_plugin

{
    printf '%s\n' "$key"
    printf 'built: pulumi=%s pulumi-language-nodejs=%s' "$pulumi_version" "$langhost_version"
    [ -x "$bin/pulumi-resource-command" ] && printf ' pulumi-resource-command=%s' "$command_version"
    [ -x "$bin/pulumi-resource-random" ] && printf ' pulumi-resource-random=%s' "$random_version"
    printf '\n'
} >"$cache/versions.txt"
printf '%s\n' "$key" >"$stamp"
log "done in $((SECONDS - total_start)) s: $(tail -n1 "$cache/versions.txt")"
printf '%s\n' "$bin"
