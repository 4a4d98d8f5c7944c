# shellcheck shell=bash
# scripts/lib/deps.sh - install everything clipsweep's build, tests and demo
# need, idempotently. Source it and call `clipsweep_deps`, or run it:
#
#   bash scripts/lib/deps.sh [--valgrind]
#
#   clipsweep_deps [--valgrind]   ensure Debian packages + tests/s3rver/node_modules
#
# Environment:
#   CLIPSWEEP_WITH_VALGRIND=1     same as --valgrind
#
# Fast path (everything present): one dpkg-query call and a couple of stat()s.
# Prints one line per action on stderr; tool output goes to a temp log that is
# shown only when the step fails. Needs root (or sudo) only when something has
# to be installed with apt.

CLIPSWEEP_APT_PACKAGES=(
  meson ninja-build pkg-config gcc clang libclang-rt-dev
  libevent-dev libhiredis-dev libssl-dev libcjson-dev libcurl4-openssl-dev
  libpq-dev libexpat1-dev
  redis-server redis-tools postgresql postgresql-client
  awscli openssl curl rclone systemd
)

_deps_root() {
  local here
  here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  (cd "$here/../.." && pwd)
}

_deps_log() { printf 'deps: %s\n' "$*" >&2; }

# Run "$@" with output to a log; on failure show the log's tail and fail.
_deps_run_logged() {
  local what=$1 log rc=0
  shift
  log=$(mktemp /tmp/clipsweep-deps.XXXXXX)
  "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    _deps_log "FAILED ($rc): $what; last lines of output:"
    tail -n 40 "$log" >&2
    rm -f "$log"
    return "$rc"
  fi
  rm -f "$log"
}

# Print the packages from "$@" that are not fully installed.
_deps_missing_apt() {
  local status
  # One dpkg-query for all; unknown packages are reported on stderr and
  # produce no line, so compare against the full list.
  status=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true)
  local p
  for p in "$@"; do
    if ! grep -qx "$p installed" <<<"$status"; then
      printf '%s\n' "$p"
    fi
  done
}

_deps_apt() {
  local -a missing
  mapfile -t missing < <(_deps_missing_apt "$@")
  [ "${#missing[@]}" -eq 0 ] && return 0

  local -a sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo -n)
    else
      _deps_log "missing packages (${missing[*]}) and not root, no sudo"
      return 1
    fi
  fi
  local -a apt_opts=(-y -q --no-install-recommends
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

  # Only reached when something is missing, so always refresh the package
  # lists first: a machine image's lists may be stale or absent.
  _deps_log "apt-get update"
  _deps_run_logged "apt-get update" "${sudo[@]}" apt-get update -q || return
  _deps_log "apt-get install ${missing[*]}"
  _deps_run_logged "apt-get install ${missing[*]}" "${sudo[@]}" \
    env DEBIAN_FRONTEND=noninteractive apt-get install "${apt_opts[@]}" "${missing[@]}" ||
    return
  mapfile -t missing < <(_deps_missing_apt "$@")
  if [ "${#missing[@]}" -ne 0 ]; then
    _deps_log "still not installed after apt-get: ${missing[*]}"
    return 1
  fi
}

# npm ci in tests/s3rver when node_modules is missing, stale or wrong.
_deps_s3rver() {
  local dir
  dir="$(_deps_root)/tests/s3rver"
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    _deps_log "node and npm are required (for tests/s3rver) but not found"
    return 1
  fi
  local stamp="$dir/node_modules/.package-lock.json"
  local pkg="$dir/node_modules/s3rver/package.json"
  if [ -f "$stamp" ] && [ -f "$pkg" ] &&
    ! [ "$dir/package-lock.json" -nt "$stamp" ] &&
    grep -q '"version": "3.7.1"' "$pkg"; then
    return 0
  fi
  _deps_log "npm ci in tests/s3rver"
  _deps_run_logged "npm ci (tests/s3rver)" \
    env -C "$dir" npm ci --no-audit --no-fund --prefer-offline --loglevel=error
}

clipsweep_deps() {
  local valgrind=${CLIPSWEEP_WITH_VALGRIND:-0} arg
  for arg in "$@"; do
    case $arg in
      --valgrind) valgrind=1 ;;
      *)
        _deps_log "unknown argument: $arg"
        return 2
        ;;
    esac
  done
  local -a pkgs=("${CLIPSWEEP_APT_PACKAGES[@]}")
  [ "$valgrind" = 1 ] && pkgs+=(valgrind)
  _deps_apt "${pkgs[@]}" || return
  _deps_s3rver || return
}

# Executed rather than sourced: do the work.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  clipsweep_deps "$@"
fi
