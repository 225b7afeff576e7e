#!/usr/bin/env bash
# Builds the example Django app's release archives into OUT_DIR:
#   v1          the base app (examples/django-app/src)
#   v2          v1 + overlays/v2: an additive migration (a nullable column) and a visible page change
#   v3          v2 + overlays/v3: boots, but /healthz always answers 503 (never becomes ready)
#   v2-drop     v1 + overlays/v2-drop: drops created_at, which v1 reads (the safety gate refuses it)
#   v2b         v2 + overlays/v2b: stops using notes_note.author (model only; the column stays)
#   v2c         v2b + overlays/v2c: drops notes_note.author (needs the acknowledgement)
#   v2-failing  v2c + overlays/v2-failing: a migration whose second operation fails
# The lock-safety and rehearsal cases, each unsafe form beside its safe one (a chain on v2):
#   v2-lock-index[-safe]     CREATE INDEX / CREATE INDEX CONCURRENTLY (non-atomic)
#   v2-lock-check[-safe]     CHECK validated at once / NOT VALID, then VALIDATE in a later migration
#   v2-lock-backfill[-safe]  AddField + RunPython in one atomic migration / in two, the backfill non-atomic
#   v2-stats                 a view the code reads with raw SQL
#   v2-stats-rename          renames the view's column: passes the static rules, the rehearsal refuses it
# Each archive's root is the Django project (manage.py at the top) with its static files already
# collected into static/ (fingerprinted), and a VERSION file. Archives are reproducible: same
# sources, same bytes.
#
# Usage: scripts/build-example-releases.sh [OUT_DIR]   (default: <repo>/.local/releases)
# Needs Debian's python3-django (3.2); no pip. PYTHON overrides the interpreter (/usr/bin/python3).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
APP_DIR=$REPO_DIR/examples/django-app
OUT_DIR=${1:-$REPO_DIR/.local/releases}
# Debian's interpreter: a python3 earlier on PATH (pyenv, a venv) may not see python3-django.
PYTHON=${PYTHON:-/usr/bin/python3}
# Fixed timestamps inside the archives, so rebuilding unchanged sources gives identical bytes.
EPOCH=${SOURCE_DATE_EPOCH:-1700000000}

die() { printf 'build-example-releases: error: %s\n' "$*" >&2; exit 1; }

"$PYTHON" -c 'import django' 2>/dev/null || die "$PYTHON cannot import django; install Debian's python3-django (apt-get install python3-django)"

mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf -- "$WORK"' EXIT

# build VERSION OVERLAY...
build() {
    local version=$1 stage=$WORK/$1 overlay
    shift
    mkdir -p "$stage"
    cp -R "$APP_DIR/src/." "$stage/"
    for overlay in "$@"; do
        cp -R "$APP_DIR/overlays/$overlay/." "$stage/"
    done
    printf '%s\n' "$version" >"$stage/VERSION"
    # No database needed: collectstatic only reads the app's static dirs.
    (cd "$stage" && PYTHONDONTWRITEBYTECODE=1 DJANGO_SETTINGS_MODULE=mysite.settings \
        "$PYTHON" manage.py collectstatic --noinput --verbosity 0)
    find "$stage" -name __pycache__ -type d -prune -exec rm -rf {} +
    tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
        --mode='u+rwX,go+rX,go-w' -C "$stage" -cf - . | gzip -n -9 >"$OUT_DIR/$version.tar.gz.part"
    mv -f "$OUT_DIR/$version.tar.gz.part" "$OUT_DIR/$version.tar.gz"
    printf '%s\n' "$OUT_DIR/$version.tar.gz"
}

build v1
build v2 v2
build v3 v2 v3
build v2-drop v2-drop
build v2b v2 v2b
build v2c v2 v2b v2c
build v2-failing v2 v2b v2c v2-failing
build v2-lock-index v2 lock-index
build v2-lock-index-safe v2 lock-index-safe
build v2-lock-check v2 lock-index-safe lock-check
build v2-lock-check-safe v2 lock-index-safe lock-check-safe
build v2-lock-backfill v2 lock-index-safe lock-check-safe lock-backfill
build v2-lock-backfill-safe v2 lock-index-safe lock-check-safe lock-backfill-safe
build v2-stats v2 lock-index-safe lock-check-safe lock-backfill-safe stats
build v2-stats-rename v2 lock-index-safe lock-check-safe lock-backfill-safe stats stats-rename
(cd "$OUT_DIR" && sha256sum ./*.tar.gz | sed 's# \./# #' >SHA256SUMS)
