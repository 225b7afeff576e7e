#!/usr/bin/env bash
# Checks the example release archives on this machine, without a host: a throwaway PostgreSQL
# cluster (Unix socket only, peer auth) in a temp dir, then each release served by gunicorn on a free
# loopback port, the way a slot runs it. Verifies:
#   v1  /healthz 503 before migrate, 200 after; GET /; POST /api/notes; the CSRF-protected form
#   v2  its migration leaves v1 healthy and writing (backward compatible); v2 shows authors
#   v3  serves pages but /healthz stays 503
#
# Usage: examples/django-app/check-local.sh [RELEASES_DIR]   (default: <repo>/.local/releases)
# As root the database and the app run as the `postgres` user (PostgreSQL refuses root).
set -euo pipefail

REPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RELEASES=${1:-$REPO_DIR/.local/releases}
PYTHON=${PYTHON:-/usr/bin/python3}
PG_BIN=${PG_BIN:-$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1)}

fail() { printf 'check-local: FAIL: %s\n' "$*" >&2; exit 1; }
ok() { printf 'check-local: ok: %s\n' "$*"; }

[[ -x $PG_BIN/initdb ]] || fail "no PostgreSQL server binaries (apt-get install postgresql)"
for v in v1 v2 v3; do [[ -f $RELEASES/$v.tar.gz ]] || fail "$RELEASES/$v.tar.gz missing; run scripts/build-example-releases.sh"; done

WORK=$(mktemp -d)
chmod 0755 "$WORK"
RUN_AS=()
if [[ $EUID -eq 0 ]]; then
    chown postgres: "$WORK"
    # setpriv execs in place (no fork), so $! is the server's own PID.
    RUN_AS=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
as_user() { "${RUN_AS[@]}" "$@"; }

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -f $WORK/pg/postmaster.pid ]]; then
        as_user "$PG_BIN/pg_ctl" -D "$WORK/pg" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf -- "$WORK"
}
trap cleanup EXIT

as_user mkdir -p "$WORK/sock"
as_user "$PG_BIN/initdb" -D "$WORK/pg" --auth-local=peer --auth-host=reject -E UTF8 --locale=C.UTF-8 >"$WORK/initdb.log" 2>&1 ||
    { cat "$WORK/initdb.log" >&2; fail "initdb"; }
# No TCP listener at all: the socket in the temp dir is the only way in.
as_user "$PG_BIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg.log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$WORK/sock'" start >/dev/null
as_user "$PG_BIN/createdb" -h "$WORK/sock" shop

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

app_env() {
    local version=$1 port=$2
    printf '%s\n' env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "HOME=$WORK" SECRET_KEY=check-local-not-secret \
        "DATABASE_HOST=$WORK/sock" DATABASE_NAME=shop "RELEASE_VERSION=$version" SLOT="slot-$version" "PORT=$port"
}

unpack() {
    as_user mkdir -p "$WORK/releases/$1"
    as_user tar -xzf "$RELEASES/$1.tar.gz" -C "$WORK/releases/$1"
}

manage() {
    local version=$1 envv
    shift
    mapfile -t envv < <(app_env "$version" 0)
    (cd "$WORK/releases/$version" && as_user "${envv[@]}" "$PYTHON" manage.py "$@")
}

# serve VERSION -> PORT[VERSION]; the same command line as startCommand in Pulumi.local.yaml.
declare -A PORT=()
serve() {
    local version=$1 port envv
    port=$(free_port)
    mapfile -t envv < <(app_env "$version" "$port")
    (cd "$WORK/releases/$version" &&
        exec "${RUN_AS[@]}" "${envv[@]}" "$PYTHON" -m gunicorn --bind "127.0.0.1:$port" --workers 2 \
            --graceful-timeout 25 mysite.wsgi) >>"$WORK/gunicorn-$version.log" 2>&1 &
    PIDS+=($!)
    PORT[$version]=$port
    local _
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && return 0
        sleep 0.1
    done
    cat "$WORK/gunicorn-$version.log" >&2
    fail "$version did not start listening on $port"
}

status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

expect_status() {
    local want=$1 what=$2 got
    shift 2
    got=$(status_of "$@")
    [[ $got == "$want" ]] || fail "$what: HTTP $got, expected $want"
    ok "$what -> $got"
}

# --- v1 -------------------------------------------------------------------------------------
unpack v1
serve v1
expect_status 503 "v1 /healthz before migrate" "http://127.0.0.1:${PORT[v1]}/healthz"
manage v1 migrate --noinput >/dev/null
manage v1 check --deploy --fail-level ERROR >/dev/null 2>&1 || fail "v1 manage.py check --deploy"
expect_status 200 "v1 /healthz after migrate" "http://127.0.0.1:${PORT[v1]}/healthz"
expect_status 200 "v1 GET /" "http://127.0.0.1:${PORT[v1]}/"
curl -s "http://127.0.0.1:${PORT[v1]}/" | grep -q 'id="release">v1<' || fail "v1 page does not show its release"
grep -q 'href="/static/notes/style\.[0-9a-f]\{12\}\.css"' <(curl -s "http://127.0.0.1:${PORT[v1]}/") || fail "v1 page does not link fingerprinted CSS"
ok "v1 page shows release v1 and fingerprinted CSS"
expect_status 201 "v1 POST /api/notes (JSON)" -X POST -H 'Content-Type: application/json' -d '{"text":"from v1 api"}' "http://127.0.0.1:${PORT[v1]}/api/notes"
expect_status 201 "v1 POST /api/notes (form)" -X POST -d 'text=from v1 form api' "http://127.0.0.1:${PORT[v1]}/api/notes"
expect_status 403 "v1 POST /notes/ without CSRF token" -X POST -d 'text=nope' "http://127.0.0.1:${PORT[v1]}/notes/"
jar=$WORK/cookies
token=$(curl -s -c "$jar" "http://127.0.0.1:${PORT[v1]}/" | sed -n 's/.*name="csrfmiddlewaretoken" value="\([^"]*\)".*/\1/p')
[[ -n $token ]] || fail "no CSRF token in the form"
expect_status 303 "v1 POST /notes/ with CSRF token" -b "$jar" -X POST --data-urlencode "csrfmiddlewaretoken=$token" \
    --data-urlencode 'text=from the v1 form' "http://127.0.0.1:${PORT[v1]}/notes/"
curl -s "http://127.0.0.1:${PORT[v1]}/" | grep -q 'from the v1 form' || fail "the form's note is not listed"
ok "v1 lists the note posted through the form"
[[ $(curl -s -D - -o /dev/null "http://127.0.0.1:${PORT[v1]}/" | tr -d '\r' | sed -n 's/^X-Release-Version: //Ip') == v1 ]] || fail "no X-Release-Version header"
ok "v1 responses carry X-Release-Version"

# --- v2 beside v1: expand-only migration ---------------------------------------------------
unpack v2
manage v2 migrate --noinput >/dev/null
serve v2
expect_status 200 "v2 /healthz" "http://127.0.0.1:${PORT[v2]}/healthz"
expect_status 200 "v1 /healthz after v2's migration" "http://127.0.0.1:${PORT[v1]}/healthz"
expect_status 201 "v1 POST /api/notes after v2's migration" -X POST -d 'text=v1 on the v2 schema' "http://127.0.0.1:${PORT[v1]}/api/notes"
expect_status 201 "v2 POST /api/notes with author" -X POST -H 'Content-Type: application/json' \
    -d '{"text":"from v2","author":"Ada"}' "http://127.0.0.1:${PORT[v2]}/api/notes"
page=$(curl -s "http://127.0.0.1:${PORT[v2]}/")
if ! grep -q 'id="release">v2<' <<<"$page" || ! grep -q 'New in v2' <<<"$page" || ! grep -q '— Ada' <<<"$page"; then
    fail "v2 page lacks its changes"
fi
ok "v2 page shows release v2, the news banner and the author"
v1css=$(curl -s "http://127.0.0.1:${PORT[v1]}/" | grep -o 'style\.[0-9a-f]*\.css')
v2css=$(grep -o 'style\.[0-9a-f]*\.css' <<<"$page")
[[ $v1css != "$v2css" ]] || fail "v1 and v2 link the same CSS file name"
ok "v1 and v2 link different fingerprinted CSS ($v1css, $v2css)"
expect_status 200 "v1 GET / after v2's migration" "http://127.0.0.1:${PORT[v1]}/"

# --- v3: never ready ------------------------------------------------------------------------
unpack v3
manage v3 migrate --noinput >/dev/null
serve v3
expect_status 503 "v3 /healthz" "http://127.0.0.1:${PORT[v3]}/healthz"
expect_status 200 "v3 GET /" "http://127.0.0.1:${PORT[v3]}/"

# --- graceful stop --------------------------------------------------------------------------
kill -TERM "${PIDS[0]}"
wait "${PIDS[0]}" || fail "v1's gunicorn did not exit cleanly on SIGTERM"
ok "v1's gunicorn exits 0 on SIGTERM"
echo "check-local: all checks passed"
