#!/usr/bin/env bash
# The systemd units as installed by `meson install`: systemd-analyze
# verify finds them well-formed with their commands in place, and
# systemd-analyze security rates each service 2.0 or lower.  Each check is
# first shown to fail on a broken copy.
set -uo pipefail
BUILD=${CLIPSWEEP_BUILD:?CLIPSWEEP_BUILD must point at the build directory}
. "$(dirname "$0")/../tap.sh"
command -v systemd-analyze >/dev/null ||
  skip_all "systemd-analyze is not installed (scripts/lib/deps.sh installs it)"

T_TMP=$(mktemp -d /tmp/clipsweep-units.XXXXXX)
trap 'rm -rf "$T_TMP"' EXIT
ROOT=$T_TMP/root
meson install -C "$BUILD" --destdir "$ROOT" --no-rebuild --quiet \
  >"$T_TMP/install.log" 2>&1
ok $? "meson install --destdir"
UNITDIR=$(find "$ROOT" -name 'clipsweep-worker@.service' -printf '%h\n' | head -n 1)
[ -n "$UNITDIR" ]
ok $? "the units are installed (in ${UNITDIR#"$ROOT"})"
for u in clipsweep-worker@.service clipsweep-sweep.service clipsweep-sweep.timer; do
  [ -f "$UNITDIR/$u" ]
  ok $? "$u is installed"
done
BINDIR=$(dirname "$(find "$ROOT" -name clipsweep-worker -type f | head -n 1)")
like "$(grep '^ExecStart=' "$UNITDIR/clipsweep-worker@.service")" \
  "ExecStart=${BINDIR#"$ROOT"}/clipsweep-worker " "the worker unit runs the installed binary"
like "$(grep '^ExecStart=' "$UNITDIR/clipsweep-sweep.service")" \
  "ExecStart=${BINDIR#"$ROOT"}/clipsweep sweep " "the sweep unit runs the installed CLI"

# systemd-analyze verify --root needs the standard targets in the root.
mkdir -p "$ROOT/usr/lib/systemd/system"
for t in /lib/systemd/system/*.target; do
  cp "$t" "$ROOT/usr/lib/systemd/system/"
done
verify() { # UNIT...: status and stderr (anything printed is a finding)
  local out
  out=$(cd "$UNITDIR" && systemd-analyze verify --root="$ROOT" --man=no "$@" 2>&1)
  local rc=$?
  [ "$rc" -eq 0 ] && [ -z "$out" ] && return 0
  printf '%s\n' "$out" | sed 's/^/#   /'
  return 1
}
verify clipsweep-worker@a.service clipsweep-sweep.service clipsweep-sweep.timer
ok $? "systemd-analyze verify: the worker (as instance a), the sweep and its timer"

# Verify can fail: a missing binary, an unknown directive.
mv "$BINDIR/clipsweep-worker" "$T_TMP/worker.bin"
! verify clipsweep-worker@a.service >/dev/null
ok $? "self-check: verify fails when the worker binary is missing"
mv "$T_TMP/worker.bin" "$BINDIR/clipsweep-worker"
sed 's/^Restart=/Restrat=/' "$UNITDIR/clipsweep-worker@.service" >"$UNITDIR/broken@.service"
! verify broken@a.service >/dev/null
ok $? "self-check: verify fails on an unknown directive"
rm -f "$UNITDIR/broken@.service"

exposure() { # UNIT-FILE: the overall exposure level, e.g. 1.2
  systemd-analyze security --offline=true "$1" 2>/dev/null |
    sed -n 's/^→ Overall exposure level for .*: \([0-9.]*\) .*/\1/p'
}
for u in clipsweep-worker@.service clipsweep-sweep.service; do
  e=$(exposure "$UNITDIR/$u")
  [ -n "$e" ] && awk -v e="$e" 'BEGIN { exit !(e <= 2.0) }'
  ok $? "$u: systemd-analyze security rates it ${e:-?} (at most 2.0)"
  systemd-analyze security --offline=true --threshold=20 "$UNITDIR/$u" >/dev/null 2>&1
  ok $? "$u: and --threshold=20 agrees"
done
# The rating can fail: the worker unit without its sandbox.
grep -v -E '^(DynamicUser|Protect|Private|Restrict|SystemCallFilter|CapabilityBoundingSet)' \
  "$UNITDIR/clipsweep-worker@.service" >"$T_TMP/bare@.service"
e=$(exposure "$T_TMP/bare@.service")
awk -v e="${e:-0}" 'BEGIN { exit !(e > 2.0) }'
ok $? "self-check: without its sandbox the worker unit rates ${e:-?} (over 2.0)"

# What the units promise each other.
drain=$(sed -n 's/^ExecStart=.*--drain-timeout \([0-9]*\).*/\1/p' "$UNITDIR/clipsweep-worker@.service")
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$UNITDIR/clipsweep-worker@.service")
[ -n "$drain" ] && [ -n "$stop" ] && [ "$stop" -gt "$drain" ]
ok $? "TimeoutStopSec (${stop:-?} s) is above the drain timeout (${drain:-?} s)"
for k in Type=notify WatchdogSec= Restart=on-failure KillSignal=SIGTERM \
  'EnvironmentFile=-/etc/clipsweep/%i.env' RestartPreventExitStatus=78; do
  grep -q -- "^$k" "$UNITDIR/clipsweep-worker@.service"
  ok $? "the worker unit has $k"
done
for k in OnCalendar=daily Persistent=true RandomizedDelaySec=; do
  grep -q -- "^$k" "$UNITDIR/clipsweep-sweep.timer"
  ok $? "the timer has $k"
done
done_testing
