# shellcheck shell=bash
# tests/tap.sh: TAP output for the shell tests (integration, chaos).
# T_N counts the checks, T_FAILED the failed ones.

T_N=0
T_FAILED=0

ok() { # STATUS DESCRIPTION
  T_N=$((T_N + 1))
  if [ "$1" -eq 0 ]; then
    echo "ok $T_N - $2"
  else
    echo "not ok $T_N - $2"
    T_FAILED=$((T_FAILED + 1))
  fi
}

check() { # DESCRIPTION COMMAND...
  local d=$1 rc=0
  shift
  "$@" >/dev/null 2>&1 || rc=$?
  ok "$rc" "$d"
}

is() { # GOT WANT DESCRIPTION
  if [ "$1" == "$2" ]; then
    ok 0 "$3"
  else
    ok 1 "$3"
    printf '#   got:  %s\n#   want: %s\n' "$1" "$2"
  fi
}

like() { # GOT SUBSTRING DESCRIPTION
  if [[ "$1" == *"$2"* ]]; then
    ok 0 "$3"
  else
    ok 1 "$3"
    printf '#   got:  %s\n#   missing: %s\n' "$1" "$2"
  fi
}

at_least() { # GOT MIN DESCRIPTION
  if [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge "$2" ]; then
    ok 0 "$3"
  else
    ok 1 "$3"
    printf '#   got:  %s\n#   want: at least %s\n' "$1" "$2"
  fi
}

one_of() { # GOT "WORD WORD..." DESCRIPTION
  local w
  for w in $2; do
    if [ "$1" == "$w" ]; then
      ok 0 "$3"
      return
    fi
  done
  ok 1 "$3"
  printf '#   got:  %s\n#   want one of: %s\n' "$1" "$2"
}

diag() { printf '# %s\n' "$*"; }

skip_all() {
  echo "1..0 # SKIP $*"
  exit 0
}

done_testing() {
  echo "1..$T_N"
  [ "$T_FAILED" -eq 0 ] && [ "$T_N" -gt 0 ]
  exit $?
}
