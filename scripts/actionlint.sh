#!/usr/bin/env bash
# Runs actionlint (the GitHub Actions workflow checker) with the given arguments, building it from
# its Go module once per version into a cache directory; a warm run only checks a stamp file.
#
#   scripts/actionlint.sh [ACTIONLINT ARGS...]    e.g. scripts/actionlint.sh .github/workflows/*.yml
#   scripts/actionlint.sh --print-path            build if needed, print the binary's path only
#
# actionlint also runs shellcheck on every `run:` block when shellcheck is on PATH
# (scripts/install-deps.sh installs it).
#
# Environment (all optional):
#   SLOTSHIFT_ACTIONLINT_CACHE   cache directory (default:
#                                ${XDG_CACHE_HOME:-$HOME/.cache}/slotshift/actionlint-<version>)
#   GOMODCACHE, GOCACHE, GOPROXY honoured as usual by `go`
#
# Progress of a build goes to stderr, so actionlint's own output stays the only thing on stdout.
set -euo pipefail

# Pinned: a new actionlint release can add checks, and a lint result must not change by itself.
readonly ACTIONLINT_VERSION=1.7.12
readonly ACTIONLINT_MODULE=github.com/rhysd/actionlint
readonly RECIPE=1   # bump to invalidate every cache built by this script

log() { printf '[actionlint] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache=${SLOTSHIFT_ACTIONLINT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/slotshift/actionlint-$ACTIONLINT_VERSION}
bin=$cache/bin/actionlint
stamp=$cache/.complete
key="recipe=$RECIPE actionlint=$ACTIONLINT_VERSION os=$(uname -s)/$(uname -m)"

locked=''
cached() { [ -x "$bin" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ]; }

build() {
    command -v go >/dev/null || die "go is needed to build actionlint $ACTIONLINT_VERSION (Go at /usr/local/go/bin?)"
    mkdir -p "$cache"
    if command -v flock >/dev/null; then
        exec 9>"$cache/.lock"
        flock 9            # a concurrent run may be building the same cache
        if cached; then
            exec 9>&-
            return 0
        fi
        locked=1
    fi
    local start=$SECONDS
    log "building $ACTIONLINT_MODULE@v$ACTIONLINT_VERSION into $cache ($(go env GOVERSION))"
    rm -f "$stamp"
    # `go install module@version` builds from the module's own go.mod and go.sum, so the
    # dependency versions are the ones that release was tested with. The version variable is set
    # because a build outside the repository cannot read it from VCS information.
    if ! GOBIN="$cache/bin" GOFLAGS='-buildvcs=false' GOWORK=off GO111MODULE=on CGO_ENABLED=0 \
        go install -trimpath \
        -ldflags "-s -w -X $ACTIONLINT_MODULE.version=v$ACTIONLINT_VERSION" \
        "$ACTIONLINT_MODULE/cmd/actionlint@v$ACTIONLINT_VERSION" >"$cache/build.log" 2>&1; then
        grep -v '^go: downloading' "$cache/build.log" | tail -n 20 >&2
        die "go install $ACTIONLINT_MODULE/cmd/actionlint@v$ACTIONLINT_VERSION failed (log: $cache/build.log)"
    fi
    printf '%s\n' "$key" >"$stamp"
    log "built in $((SECONDS - start)) s: $bin"
    [ -z "$locked" ] || exec 9>&-   # actionlint itself must not hold the build lock
}

cached || build

if [ "${1:-}" = --print-path ]; then
    printf '%s\n' "$bin"
    exit 0
fi
exec "$bin" "$@"
