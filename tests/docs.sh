#!/usr/bin/env bash
# The manual and the README stay true to the code: the man pages format
# without a warning and are installed; every variable the code reads, every
# option the two programs accept and every metric family the worker
# exports is documented.
set -uo pipefail
BUILD=${CLIPSWEEP_BUILD:?CLIPSWEEP_BUILD must point at the build directory}
SRC=$(cd "$(dirname "$0")/.." && pwd)
. "$SRC/tests/tap.sh"
T_TMP=$(mktemp -d /tmp/clipsweep-docs.XXXXXX)
trap 'rm -rf "$T_TMP"' EXIT
MAN=$SRC/docs/man

for p in clipsweep.1 clipsweep.env.5 clipsweep-worker.8; do
  out=$(groff -mandoc -ww -z "$MAN/$p" 2>&1)
  is "$out" "" "$p formats without a warning (groff -ww)"
done
printf '.Dd x\n.Dt X 1\n.Sh NAME\n.Xx bogus\n' >"$T_TMP/bad.1"
[ -n "$(groff -mandoc -ww -z "$T_TMP/bad.1" 2>&1)" ]
ok $? "self-check: groff warns about an unknown macro"

meson install -C "$BUILD" --destdir "$T_TMP/root" --no-rebuild --quiet >/dev/null 2>&1
for p in man1/clipsweep.1 man5/clipsweep.env.5 man8/clipsweep-worker.8; do
  [ -n "$(find "$T_TMP/root" -path "*/share/man/$p" | head -n 1)" ]
  ok $? "meson install puts $p in place"
done

# Variables: every one the C code reads.
vars=$(grep -rhoE '"(CLIPSWEEP|CLOUDCUBE)_[A-Z_0-9]+"' "$SRC/common" "$SRC/worker" \
  "$SRC/producer" | tr -d '"' | sort -u)
[ "$(echo "$vars" | wc -l)" -ge 15 ]
ok $? "found the variables the code reads ($(echo "$vars" | wc -l))"
missing_env= missing_readme=
for v in $vars; do
  grep -q "Ev $v\b" "$MAN/clipsweep.env.5" || missing_env+="$v "
  grep -q "\`$v\`" "$SRC/README.md" || missing_readme+="$v "
done
is "$missing_env" "" "clipsweep.env(5) documents every variable"
is "$missing_readme" "" "the README documents every variable"
grep -q 'Ev CLIPSWEEP_NOT_A_VARIABLE\b' "$MAN/clipsweep.env.5"
ok $((!$?)) "self-check: an undocumented name is not found"

# Options: every long option in --help, in the formatted page.
opts() { "$1" --help | grep -oE -- '--[a-z][a-z-]+' | sort -u; }
text() { groff -mandoc -Tascii -P -cbou "$1" 2>/dev/null; }
text "$MAN/clipsweep-worker.8" >"$T_TMP/worker.txt"
text "$MAN/clipsweep.1" >"$T_TMP/cli.txt"
missing=
for o in $(opts "$BUILD/worker/clipsweep-worker"); do
  grep -qE -- "$o([^a-z-]|$)" "$T_TMP/worker.txt" || missing+="$o "
  grep -qE -- "$o([^a-z-]|$)" "$SRC/README.md" || missing+="(README)$o "
done
is "$missing" "" "clipsweep-worker(8) and the README document every worker option"
missing=
for o in $(opts "$BUILD/producer/clipsweep"); do
  grep -qE -- "$o([^a-z-]|$)" "$T_TMP/cli.txt" || missing+="$o "
done
is "$missing" "" "clipsweep(1) documents every CLI option"
grep -qE -- "--no-such-option([^a-z-]|$)" "$T_TMP/cli.txt"
ok $((!$?)) "self-check: an undocumented option is not found"

# Metric families: every name the worker's exposition declares.
fams=$(grep -oE 'family\(b, "clipsweep_[a-z_]+"' "$SRC/worker/metrics.c" |
  grep -oE 'clipsweep_[a-z_]+' | sort -u)
[ "$(echo "$fams" | wc -l)" -ge 9 ]
ok $? "found the metric families ($(echo "$fams" | wc -l))"
missing=
for f in $fams; do
  grep -q "\`$f\`" "$SRC/README.md" || missing+="$f "
done
is "$missing" "" "the README documents every metric family"
done_testing
