#!/usr/bin/env bash
# Run on the local host as root (sent over SSH by test/e2e/07-engine-faults.test.ts): SIGKILLs the
# sshd processes of the session that runs the shift's foreground (`node <agent.js> activate ...`;
# the worker's argv starts with __worker), as when that connection is cut. Never the listener (its
# parent is PID 1), which serves every other session. Prints the pids.
set -eu
fg=""
for d in /proc/[0-9]*; do
  cmd=$(tr '\0' ' ' < "$d/cmdline" 2>/dev/null || true)
  if [[ $cmd =~ ^node\ [^\ ]*agent\.js\ activate\  ]]; then fg=${d#/proc/}; break; fi
done
[[ -n $fg ]] || { echo "no activate foreground runs" >&2; exit 3; }
ppid_of() { sed -n 's/^PPid:[[:space:]]*//p' "/proc/$1/status"; }
victims=""
p=$(ppid_of "$fg")
while [[ $p -gt 1 && $(ppid_of "$p") -gt 1 ]]; do
  if [[ $(cat "/proc/$p/comm") == sshd* ]]; then victims="$victims $p"; fi
  p=$(ppid_of "$p")
done
[[ -n $victims ]] || { echo "no sshd session above $fg" >&2; exit 4; }
# shellcheck disable=SC2086
kill -9 $victims
echo "foreground $fg, sshd$victims"
