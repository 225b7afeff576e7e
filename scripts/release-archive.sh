#!/usr/bin/env bash
# Builds the release archive of one version of the app from a git ref, reproducibly: the files git
# tracks under APP_DIR at REF (never the work tree, so nothing untracked or locally changed gets in),
# plus a VERSION file, packed with fixed owners, modes, order and timestamps (the commit's time).
# The same ref gives the same bytes, so the deploy on a release tag and the pull request preview of
# prod, which rebuilds the newest tag's archive, see the same sha256 and the same release.
#
#   scripts/release-archive.sh REF APP_DIR VERSION OUT_DIR
#
# Writes OUT_DIR/<VERSION>.tar.gz and OUT_DIR/<VERSION>.tar.gz.sha256 (`sha256sum -c` format) and
# prints the archive's path. The archive's root is APP_DIR's content (for a Django app: manage.py at
# the top); the host's buildCommand (e.g. collectstatic) runs after unpacking.
set -euo pipefail

die() { printf 'release-archive: error: %s\n' "$*" >&2; exit 1; }

[ "$#" -eq 4 ] || die "usage: release-archive.sh REF APP_DIR VERSION OUT_DIR"
ref=$1 app_dir=${2%/} version=$3 out_dir=$4

# The same rule as the releaseVersion config key: it becomes a directory name on the host.
[[ $version =~ ^[A-Za-z0-9._+-]{1,63}$ && $version != . && $version != .. ]] ||
    die "version '$version' must be 1-63 of letters, digits, '.', '_', '+', '-'"
commit=$(git rev-parse --verify --quiet "$ref^{commit}") || die "$ref is not a commit in $(pwd)"
[ "$(git cat-file -t "$commit:$app_dir" 2>/dev/null)" = tree ] || die "$app_dir is not a directory at $ref"

mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
archive=$out_dir/$version.tar.gz
stage=$(mktemp -d)
trap 'rm -rf -- "$stage"' EXIT

git archive --format=tar "$commit" -- "$app_dir" | tar -x -C "$stage"
printf '%s\n' "$version" >"$stage/$app_dir/VERSION"
epoch=$(git show -s --format=%ct "$commit")
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
    --mode='u+rwX,go+rX,go-w' -C "$stage/$app_dir" -cf - . | gzip -n -9 >"$archive.part"
mv -f "$archive.part" "$archive"
(cd "$out_dir" && sha256sum "$version.tar.gz" >"$version.tar.gz.sha256")
printf '%s\n' "$archive"
