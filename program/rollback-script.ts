// deploy/rollback: the rollback command an operator runs (`sudo /srv/<app>/deploy/rollback`),
// installed with the agent. When the previous release is warm (deploy/warm-flip names it, see
// agent/state/warm-flip.ts) and HAProxy's checks pass on it, the script itself gives it all traffic with
// one runtime API line, under the deploy lock, before any Node.js starts (Debian's Node 18 takes
// longer to start than the whole flip); then it execs the agent in the same process, which so
// keeps the lock, and the agent records the flip as its own warm rollback would (slots.json,
// HAProxy's saved state, current, NGINX's backup, the audit line). Anything else is the agent's
// own rollback, unchanged: any argument but --json (the agent checks them), no warm previous
// release, the lock held by anyone, a slot that runs another release, a check that is not L7OK.
// It reads only root's files and HAProxy's answers; nothing of the app's reaches it.
import { HostLayout } from "../lib/host-layout";
import { shellQuote } from "../lib/shell-quote";

export interface RollbackScriptOptions {
    /** HAProxy backend of the two slots (agent.json haproxy.backend). */
    backend: string;
}

export function renderRollbackScript(layout: HostLayout, opts: RollbackScriptOptions): string {
    const q = shellQuote;
    const agent = ["node", layout.agentPath, "rollback", "--config", layout.agentConfigPath].map(q).join(" ");
    return `#!/bin/sh
# ${layout.appName}: rollback to the previous release (instant when it is warm). Installed with the
# agent by slotshift (program/rollback-script.ts); edits are overwritten.
set -u
agent() {
    exec ${agent} "$@"
}
case $# in
    0) ;;
    1) [ "$1" = --json ] || agent "$@" ;;
    *) agent "$@" ;;
esac
flip_file=${q(layout.warmFlipFile)}
lock=${q(layout.lockFile)}
socket=${q(layout.haproxySocket)}
backend=${q(opts.backend)}
slots=${q(layout.slotsDir)}
releases=${q(layout.releasesDir)}
[ -r "$flip_file" ] || agent "$@"
now=$(date -u '+%s%3N %Y-%m-%dT%H:%M:%S.%3NZ') || agent "$@"
started=\${now%% *}
started_at=\${now#* }

# The deploy lock as agent/state/lock.ts takes it: written whole, then hard-linked into place. This
# process's id and start time are the agent's after the exec below.
read -r stat </proc/$$/stat
stat=\${stat##*) }
start_time() { shift 19; proc_start=$1; }
# shellcheck disable=SC2086 # split into /proc/<pid>/stat's fields
start_time $stat
read -r host </proc/sys/kernel/hostname
case $host in "" | *[!A-Za-z0-9.-]*) agent "$@" ;; esac
tmp="$lock.$$.rollback"
printf '{"pid":%s,"procStart":"%s","command":"rollback","startedAt":"%s","host":"%s"}\\n' $$ "$proc_start" "$started_at" "$host" >"$tmp" || agent "$@"
if ! ln "$tmp" "$lock" 2>/dev/null; then
    rm -f "$tmp"
    agent "$@"
fi
# The lock is ours from here: the agent gets it back free unless it is handed over by exec. The
# temp name goes after the flip (one process less before it).
fallback() {
    rm -f "$lock" "$tmp"
    agent "$@"
}

# What to flip, read under the lock: the agent rewrites it with every slots.json.
from='' to='' version=''
{ while IFS='=' read -r key value; do
    case $key in
        from) from=$value ;;
        to) to=$value ;;
        version) version=$value ;;
    esac
done <"$flip_file"; } 2>/dev/null || fallback "$@"
case $from:$to in blue:green | green:blue) ;; *) fallback "$@" ;; esac
case $version in "" | *[!A-Za-z0-9._-]*) fallback "$@" ;; esac
# The slot runs that release (its link leads to the release's directory). -ef: a builtin of the
# shells /bin/sh is on Debian (dash) and NixOS (bash).
# shellcheck disable=SC3013
[ "$slots/$to" -ef "$releases/$version" ] || fallback "$@"
# The agent's own test of a warm slot (agent/deploy/gates.ts): HAProxy has it UP and its last check L7OK.
# Both columns come before any text a check's answer can bring in (last_chk and after), so a comma
# there cannot shift them.
checks=$(printf 'show stat %s 4 -1\\n' "$backend" | socat -t 2 - "UNIX-CONNECT:$socket" | awk -F, -v server="$to" '
    NR == 1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) col[$i] = i; next }
    $2 == server { print $col["status"] "/" $col["check_status"] }') || fallback "$@"
[ "$checks" = UP/L7OK ] || fallback "$@"
# One line, so both weights change together; HAProxy answers nothing when it took both.
answer=$(printf 'set weight %s/%s 100; set weight %s/%s 0\\n' "$backend" "$to" "$backend" "$from" | socat -t 2 - "UNIX-CONNECT:$socket") || fallback "$@"
[ -z "$answer" ] || fallback "$@"
flipped=$(date +%s%3N)
rm -f "$tmp"
exec ${agent} --script-flip "$started:$flipped" "$@"
`;
}
