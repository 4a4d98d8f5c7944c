# shellcheck shell=bash
# scripts/lib/services.sh - throwaway real servers for clipsweep's tests and demo.
#
# Source from a bash script (works under `set -euo pipefail`):
#
#   . scripts/lib/services.sh
#   svc_init                      # SVC_DIR + EXIT trap that stops everything
#   svc_start_redis               # REDIS_PORT, REDIS_URL
#   svc_make_certs                # SVC_TLS_DIR/{ca,server,other-ca,other,wronghost}.{crt,key}
#   svc_start_redis_tls REDIS_TLS "$SVC_TLS_DIR/server.crt" "$SVC_TLS_DIR/server.key"
#                                 # REDIS_TLS_PORT, REDIS_TLS_URL
#   svc_start_postgres            # PGHOST PGPORT PGUSER PGDATABASE DATABASE_URL
#   svc_start_s3 cloud-cube       # S3_PORT S3_ENDPOINT S3_BUCKET AWS_* ; s3api helper
#   ... on failure: svc_dump_logs
#
# Every server listens on 127.0.0.1 only, keeps its data and log under SVC_DIR
# (a fresh mktemp dir) and is stopped by the EXIT trap (or svc_stop_all /
# svc_stop NAME). Set CLIPSWEEP_KEEP_SVC=1 to keep SVC_DIR after exit.
# Servers are children of the sourcing shell but disowned, so a bare `wait`
# in the caller does not wait for them; bash still reaps them.
#
# Tunables: SVC_START_TIMEOUT (s, default 20), SVC_LOG_LINES (default 40).
# A caller that needs its own EXIT work defines svc_on_exit_hook(); it is
# called (with the exit status in $1) before the servers are stopped.

_SVC_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CLIPSWEEP_ROOT=${CLIPSWEEP_ROOT:-$(cd "$_SVC_LIB_DIR/../.." && pwd)}
# shellcheck source=scripts/lib/deps.sh
. "$_SVC_LIB_DIR/deps.sh"

# Debian's aws (v2, python from /usr/bin/python3); another `aws` may come
# first on PATH (e.g. a pyenv shim) and must not be used.
AWS=/usr/bin/aws
export AWS

# PostgreSQL server binaries are not on PATH on Debian.
PG_BINDIR=${PG_BINDIR:-}
if [ -z "$PG_BINDIR" ]; then
  PG_BINDIR=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null |
    sort -V | tail -n 1)
fi
if [ -n "$PG_BINDIR" ] && [[ ":$PATH:" != *":$PG_BINDIR:"* ]]; then
  PATH="$PG_BINDIR:$PATH"
  export PATH
fi

SVC_START_TIMEOUT=${SVC_START_TIMEOUT:-20}
_SVC_PORT_DIR=/tmp/clipsweep-ports
_SVC_OWNER_PID=
SVC_DIR=${SVC_DIR:-}

_svc_msg() { printf 'services: %s\n' "$*" >&2; }

# _svc_fail MESSAGE [LOG]: print an error and the log's tail; returns 1.
_svc_fail() {
  _svc_msg "ERROR: $1"
  if [ -n "${2:-}" ] && [ -f "$2" ]; then
    printf -- '----- last %s lines of %s -----\n' "${SVC_LOG_LINES:-40}" "$2" >&2
    tail -n "${SVC_LOG_LINES:-40}" "$2" >&2
    printf -- '-----\n' >&2
  fi
  return 1
}

_svc_need_init() {
  if [ -z "$SVC_DIR" ] || [ ! -d "$SVC_DIR" ]; then
    _svc_fail "svc_init has not been called"
    return 1
  fi
}

# True while PID exists and is not a zombie.
_svc_alive() {
  local st
  { read -r st </proc/"$1"/stat; } 2>/dev/null || return 1
  st=${st##*) }
  [ "${st%% *}" != Z ]
}

_svc_now_ms() {
  local t=${EPOCHREALTIME/[.,]/}
  printf '%s' $((t / 1000))
}

svc_init() {
  if [ -n "$SVC_DIR" ] && [ -d "$SVC_DIR" ] && [ "$_SVC_OWNER_PID" = "$BASHPID" ]; then
    return 0
  fi
  SVC_DIR=$(mktemp -d /tmp/clipsweep-svc.XXXXXX) || return 1
  # 0711: an unprivileged postgres user must be able to traverse it.
  chmod 0711 "$SVC_DIR"
  mkdir -p "$SVC_DIR/logs" "$SVC_DIR/run"
  _SVC_OWNER_PID=$BASHPID
  trap '_svc_on_exit' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

_svc_on_exit() {
  local rc=$?
  [ "$BASHPID" = "$_SVC_OWNER_PID" ] || return "$rc"
  set +e
  if declare -F svc_on_exit_hook >/dev/null; then
    svc_on_exit_hook "$rc"
  fi
  svc_stop_all
  return "$rc"
}

# ---------------------------------------------------------------- ports

# Can 127.0.0.1:PORT be bound (with SO_REUSEADDR, as servers do)?
_svc_port_bindable() {
  if [ -x /usr/bin/python3 ]; then
    /usr/bin/python3 -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
' "$1" 2>/dev/null
  else
    node -e '
const s = require("net").createServer();
s.once("error", () => process.exit(1));
s.listen(+process.argv[1], "127.0.0.1", () => s.close());
' "$1" 2>/dev/null
  fi
}

# svc_free_port: print a free TCP port on 127.0.0.1. Ports are picked at
# random below the kernel's ephemeral range and reserved (a symlink
# /tmp/clipsweep-ports/PORT -> owner pid) until svc_stop_all, so two calls in
# one run, or two concurrent runs, never hand out the same port.
svc_free_port() {
  local lo=15000 hi=32767 eph_lo port owner i
  if read -r eph_lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null &&
    [ "$eph_lo" -gt $((lo + 1000)) ]; then
    hi=$((eph_lo - 1))
  fi
  mkdir -p "$_SVC_PORT_DIR" 2>/dev/null && chmod 1777 "$_SVC_PORT_DIR" 2>/dev/null
  for ((i = 0; i < 200; i++)); do
    port=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
    if ! ln -s "$$" "$_SVC_PORT_DIR/$port" 2>/dev/null; then
      owner=$(readlink "$_SVC_PORT_DIR/$port" 2>/dev/null) || continue
      if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
        rm -f "$_SVC_PORT_DIR/$port" # stale reservation of a dead run
      fi
      continue
    fi
    if _svc_port_bindable "$port"; then
      [ -n "$SVC_DIR" ] && [ -d "$SVC_DIR/run" ] && echo "$port" >>"$SVC_DIR/run/ports"
      echo "$port"
      return 0
    fi
    rm -f "$_SVC_PORT_DIR/$port"
  done
  _svc_fail "svc_free_port: no free port found"
}

_svc_release_port() {
  local link=$_SVC_PORT_DIR/$1
  if [ "$(readlink "$link" 2>/dev/null)" = "$$" ]; then
    rm -f "$link"
  fi
}

# ------------------------------------------------------- process helpers

# _svc_spawn NAME SIGNAL LOG CMD...: start CMD in the background (stdin
# /dev/null, output appended to LOG), record it as service NAME to be stopped
# with SIGNAL; the pid is left in _SVC_PID.
_svc_spawn() {
  local name=$1 sig=$2 log=$3
  shift 3
  "$@" </dev/null >>"$log" 2>&1 &
  _SVC_PID=$!
  disown "$_SVC_PID" 2>/dev/null || true
  printf '%s %s %s\n' "$_SVC_PID" "$sig" "$log" >"$SVC_DIR/run/$name.svc"
}

# _svc_wait PID TIMEOUT CMD...: poll CMD until it succeeds (0), PID dies (2)
# or TIMEOUT seconds pass (3).
_svc_wait() {
  local pid=$1 timeout=$2 deadline
  shift 2
  deadline=$(($(_svc_now_ms) + timeout * 1000))
  while :; do
    if "$@" >/dev/null 2>&1; then
      return 0
    fi
    if ! _svc_alive "$pid"; then
      return 2
    fi
    if [ "$(_svc_now_ms)" -ge "$deadline" ]; then
      return 3
    fi
    sleep 0.05
  done
}

# Stop the processes of the given service records, in parallel.
_svc_stop_records() {
  local f pid sig log deadline
  local -a pids=()
  for f in "$@"; do
    [ -f "$f" ] || continue
    read -r pid sig log <"$f" || continue
    if _svc_alive "$pid"; then
      kill -"$sig" "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  deadline=$(($(_svc_now_ms) + 10000))
  for pid in "${pids[@]}"; do
    while _svc_alive "$pid" && [ "$(_svc_now_ms)" -lt "$deadline" ]; do
      sleep 0.02
    done
    if _svc_alive "$pid"; then
      _svc_msg "pid $pid did not stop within 10s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      # postgres children die with the postmaster; give them a moment
      sleep 0.1
    fi
  done
  rm -f "$@"
}

# svc_stop NAME: stop one service (REDIS, REDIS_TLS, PG, S3, ...).
svc_stop() {
  _svc_need_init || return 1
  local f=$SVC_DIR/run/$1.svc
  if [ ! -f "$f" ]; then
    _svc_fail "svc_stop: no running service named $1"
    return 1
  fi
  _svc_stop_records "$f"
}

# svc_stop_all: stop every started server, release ports, remove SVC_DIR
# (unless CLIPSWEEP_KEEP_SVC=1). Safe to call more than once.
svc_stop_all() {
  [ -n "$SVC_DIR" ] && [ -d "$SVC_DIR" ] || return 0
  local -a recs=()
  local f port
  for f in "$SVC_DIR"/run/*.svc; do
    [ -f "$f" ] && recs+=("$f")
  done
  if [ "${#recs[@]}" -gt 0 ]; then
    _svc_stop_records "${recs[@]}"
  fi
  if [ -f "$SVC_DIR/run/ports" ]; then
    while read -r port; do
      _svc_release_port "$port"
    done <"$SVC_DIR/run/ports"
    rm -f "$SVC_DIR/run/ports"
  fi
  if [ "${CLIPSWEEP_KEEP_SVC:-0}" = 1 ]; then
    _svc_msg "kept $SVC_DIR (CLIPSWEEP_KEEP_SVC=1)"
  else
    rm -rf "$SVC_DIR"
    SVC_DIR=
  fi
  return 0
}

# svc_dump_logs: print the tail of every server log to stderr.
svc_dump_logs() {
  [ -n "$SVC_DIR" ] && [ -d "$SVC_DIR/logs" ] || return 0
  local f n=${SVC_LOG_LINES:-40}
  for f in "$SVC_DIR"/logs/*.log; do
    [ -f "$f" ] || continue
    printf -- '----- %s (last %s lines) -----\n' "$f" "$n" >&2
    tail -n "$n" "$f" >&2
  done
  printf -- '----- end of server logs -----\n' >&2
}

# ---------------------------------------------------------------- redis

_svc_redis_ping() { # ARGS... for redis-cli
  [ "$(redis-cli "$@" ping 2>/dev/null)" = PONG ]
}

_svc_urlencode() {
  local s=$1 out="" c i
  local LC_ALL=C
  for ((i = 0; i < ${#s}; i++)); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# _svc_redis NAME TLS(0|1) [CERT KEY]: common part of the redis starters.
_svc_redis() {
  local name=$1 tls=$2 cert=${3:-} key=${4:-}
  local lname=${name,,} dir log conf port attempt rc
  local -a ping=()
  dir=$SVC_DIR/redis-$lname
  log=$SVC_DIR/logs/redis-$lname.log
  if [ -e "$SVC_DIR/run/$name.svc" ]; then
    _svc_fail "a service named $name is already running"
    return 1
  fi
  mkdir -p "$dir"
  for attempt in 1 2 3; do
    port=$(svc_free_port) || return 1
    conf=$dir/redis.conf
    {
      echo "bind 127.0.0.1"
      echo "protected-mode no"
      echo "daemonize no"
      echo "supervised no"
      echo "dir $dir"
      echo "pidfile $dir/redis.pid"
      echo "logfile \"\""
      echo "loglevel notice"
      echo "appendonly yes"
      echo "save \"\""
      if [ "$tls" = 1 ]; then
        echo "port 0"
        echo "tls-port $port"
        echo "tls-cert-file $cert"
        echo "tls-key-file $key"
        echo "tls-ca-cert-file $SVC_TLS_DIR/ca.crt"
        echo "tls-auth-clients no"
        if [ -n "${REDIS_TLS_PASSWORD:-}" ]; then
          echo "requirepass \"${REDIS_TLS_PASSWORD//\"/\\\"}\""
        fi
      else
        echo "port $port"
      fi
    } >"$conf"
    ping=(-h 127.0.0.1 -p "$port")
    if [ "$tls" = 1 ]; then
      ping+=(--tls)
      # A server whose cert is not from the test CA (e.g. other.crt) is
      # probed without verification; the tests check verification.
      if openssl verify -CAfile "$SVC_TLS_DIR/ca.crt" "$cert" >/dev/null 2>&1; then
        ping+=(--cacert "$SVC_TLS_DIR/ca.crt")
      else
        ping+=(--insecure)
      fi
      if [ -n "${REDIS_TLS_PASSWORD:-}" ]; then
        ping+=(--no-auth-warning -a "$REDIS_TLS_PASSWORD")
      fi
    fi
    printf '=== starting redis-server (%s) on 127.0.0.1:%s\n' "$name" "$port" >>"$log"
    _svc_spawn "$name" TERM "$log" redis-server "$conf"
    rc=0
    _svc_wait "$_SVC_PID" "$SVC_START_TIMEOUT" _svc_redis_ping "${ping[@]}" || rc=$?
    [ "$rc" -eq 0 ] && break
    _svc_stop_records "$SVC_DIR/run/$name.svc"
    if [ "$rc" -eq 2 ] && grep -q 'Address already in use' "$log" && [ "$attempt" -lt 3 ]; then
      _svc_msg "redis $name: port $port taken, retrying"
      continue
    fi
    if [ "$rc" -eq 2 ]; then
      _svc_fail "redis-server ($name) exited during startup" "$log"
    else
      _svc_fail "redis-server ($name) not answering PING after ${SVC_START_TIMEOUT}s" "$log"
    fi
    return 1
  done
  local scheme=redis auth=
  if [ "$tls" = 1 ]; then
    scheme=rediss
    if [ -n "${REDIS_TLS_PASSWORD:-}" ]; then
      auth=":$(_svc_urlencode "$REDIS_TLS_PASSWORD")@"
    fi
  fi
  export "${name}_PORT=$port"
  export "${name}_URL=$scheme://${auth}127.0.0.1:$port/0"
}

# svc_start_redis [NAME]: plain redis on a free port; exports NAME_PORT and
# NAME_URL (NAME defaults to REDIS: REDIS_PORT, REDIS_URL=redis://127.0.0.1:P/0).
svc_start_redis() {
  _svc_need_init || return 1
  _svc_redis "${1:-REDIS}" 0
}

# svc_start_redis_tls NAME CERT KEY: TLS-only redis (port 0, tls-port P,
# CA = test CA, client certs not required; requirepass REDIS_TLS_PASSWORD
# if set). Exports NAME_PORT and NAME_URL=rediss://[:pw@]127.0.0.1:P/0.
svc_start_redis_tls() {
  _svc_need_init || return 1
  if [ $# -ne 3 ]; then
    _svc_fail "usage: svc_start_redis_tls NAME CERT KEY"
    return 1
  fi
  if [ ! -f "${SVC_TLS_DIR:-/nonexistent}/ca.crt" ]; then
    svc_make_certs || return 1
  fi
  if [ ! -f "$2" ] || [ ! -f "$3" ]; then
    _svc_fail "svc_start_redis_tls: no such cert/key: $2 $3"
    return 1
  fi
  _svc_redis "$1" 1 "$2" "$3"
}

# ---------------------------------------------------------------- TLS

# svc_make_certs: test PKI in SVC_DIR/tls (exported as SVC_TLS_DIR):
#   ca.crt/ca.key              test CA
#   server.crt/server.key      DNS:localhost, IP:127.0.0.1, signed by the test CA
#   other-ca.crt/other-ca.key  an unrelated CA
#   other.crt/other.key        DNS:localhost, IP:127.0.0.1, signed by the other CA
#   wronghost.crt/wronghost.key DNS:wrong.example only, signed by the test CA
# EC P-256 keys, valid 30 days. Idempotent.
svc_make_certs() {
  _svc_need_init || return 1
  local d=$SVC_DIR/tls log=$SVC_DIR/logs/openssl.log
  SVC_TLS_DIR=$d
  export SVC_TLS_DIR
  [ -f "$d/wronghost.crt" ] && return 0
  mkdir -p "$d"
  _svc_ca() { # NAME CN
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$d/$1.key" -out "$d/$1.crt" -days 30 -subj "/O=clipsweep tests/CN=$2" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -addext "subjectKeyIdentifier=hash"
  }
  _svc_leaf() { # NAME CA CN SAN
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$d/$1.key" -out "$d/$1.csr" -subj "/O=clipsweep tests/CN=$3" &&
      printf '%s\n' \
        "basicConstraints=critical,CA:FALSE" \
        "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" \
        "subjectKeyIdentifier=hash" \
        "authorityKeyIdentifier=keyid" \
        "subjectAltName=$4" >"$d/$1.ext" &&
      openssl x509 -req -in "$d/$1.csr" -CA "$d/$2.crt" -CAkey "$d/$2.key" \
        -set_serial "0x$(openssl rand -hex 8)" -days 30 -sha256 \
        -extfile "$d/$1.ext" -out "$d/$1.crt" &&
      rm -f "$d/$1.csr" "$d/$1.ext"
  }
  if ! {
    _svc_ca ca "clipsweep test CA" &&
      _svc_leaf server ca localhost "DNS:localhost,IP:127.0.0.1" &&
      _svc_ca other-ca "clipsweep other CA" &&
      _svc_leaf other other-ca localhost "DNS:localhost,IP:127.0.0.1" &&
      _svc_leaf wronghost ca wrong.example "DNS:wrong.example"
  } >>"$log" 2>&1; then
    unset -f _svc_ca _svc_leaf
    _svc_fail "svc_make_certs: openssl failed" "$log"
    return 1
  fi
  unset -f _svc_ca _svc_leaf
  chmod 0644 "$d"/*.crt
  chmod 0600 "$d"/*.key
}

# ---------------------------------------------------------------- postgres

# The user postgres runs as when we are root (initdb/postgres refuse root).
_svc_pg_user() {
  if id -u postgres >/dev/null 2>&1; then
    echo postgres
    return 0
  fi
  if ! id -u clipsweep-pg >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin clipsweep-pg >/dev/null 2>&1 ||
      id -u clipsweep-pg >/dev/null 2>&1 || {
      _svc_fail "cannot create user clipsweep-pg"
      return 1
    }
  fi
  echo clipsweep-pg
}

# svc_start_postgres: fresh cluster in SVC_DIR/pg (trust auth, superuser
# postgres, UTF8, C locale, fsync off), database clipsweep. Exports PGHOST,
# PGPORT, PGUSER, PGDATABASE, DATABASE_URL.
svc_start_postgres() {
  _svc_need_init || return 1
  if [ -z "$PG_BINDIR" ] || [ ! -x "$PG_BINDIR/postgres" ]; then
    _svc_fail "PostgreSQL server binaries not found under /usr/lib/postgresql (run scripts/lib/deps.sh)"
    return 1
  fi
  if [ -e "$SVC_DIR/run/PG.svc" ]; then
    _svc_fail "postgres is already running"
    return 1
  fi
  local data=$SVC_DIR/pg sock=$SVC_DIR/pg-run log=$SVC_DIR/logs/postgres.log
  local -a as=()
  local user port attempt rc
  mkdir -p "$data" "$sock"
  chmod 0700 "$data"
  : >>"$log"
  if [ "$(id -u)" -eq 0 ]; then
    user=$(_svc_pg_user) || return 1
    chown "$user:" "$data" "$sock" "$log"
    # setpriv execs (no extra process), so the postmaster is our child.
    as=(setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups --)
  fi
  if ! (cd / && "${as[@]}" "$PG_BINDIR/initdb" -D "$data" -U postgres --auth=trust \
    -E UTF8 --locale=C -N) >>"$log" 2>&1; then
    _svc_fail "initdb failed" "$log"
    return 1
  fi
  for attempt in 1 2 3; do
    port=$(svc_free_port) || return 1
    printf '=== starting postgres on 127.0.0.1:%s\n' "$port" >>"$log"
    # SIGINT = fast shutdown.
    _svc_spawn PG INT "$log" "${as[@]}" "$PG_BINDIR/postgres" -D "$data" -p "$port" \
      -k "$sock" -c listen_addresses=127.0.0.1 -c fsync=off \
      -c synchronous_commit=off -c full_page_writes=off
    rc=0
    _svc_wait "$_SVC_PID" "$SVC_START_TIMEOUT" \
      "$PG_BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres || rc=$?
    [ "$rc" -eq 0 ] && break
    _svc_stop_records "$SVC_DIR/run/PG.svc"
    if [ "$rc" -eq 2 ] && grep -q 'could not bind\|Address already in use' "$log" &&
      [ "$attempt" -lt 3 ]; then
      _svc_msg "postgres: port $port taken, retrying"
      continue
    fi
    if [ "$rc" -eq 2 ]; then
      _svc_fail "postgres exited during startup" "$log"
    else
      _svc_fail "postgres not ready after ${SVC_START_TIMEOUT}s" "$log"
    fi
    return 1
  done
  if ! "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres \
    -d postgres -c 'CREATE DATABASE clipsweep' >>"$log" 2>&1; then
    _svc_fail "CREATE DATABASE clipsweep failed" "$log"
    return 1
  fi
  export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres PGDATABASE=clipsweep
  export DATABASE_URL=postgresql://postgres@127.0.0.1:$port/clipsweep
  unset PGPASSWORD PGSERVICE PGSSLMODE
}

# ---------------------------------------------------------------- S3

# svc_start_s3 BUCKET...: s3rver 3.7.1 (tests/s3rver/run.js) on a free port
# with a fresh data dir and the given buckets. Exports S3_PORT, S3_ENDPOINT,
# S3_BUCKET (first bucket), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY=S3RVER
# (the only key pair s3rver knows), AWS_DEFAULT_REGION/AWS_REGION=us-east-1;
# unsets AWS_CA_BUNDLE, AWS_SESSION_TOKEN, AWS_PROFILE.
svc_start_s3() {
  _svc_need_init || return 1
  local s3dir=$CLIPSWEEP_ROOT/tests/s3rver
  local data=$SVC_DIR/s3-data log=$SVC_DIR/logs/s3rver.log ready=$SVC_DIR/run/s3.port
  local port rc b
  local -a args=()
  if [ ! -f "$s3dir/node_modules/s3rver/package.json" ]; then
    _svc_fail "s3rver is not installed in $s3dir (run scripts/lib/deps.sh)"
    return 1
  fi
  if [ -e "$SVC_DIR/run/S3.svc" ]; then
    _svc_fail "s3rver is already running"
    return 1
  fi
  for b in "$@"; do
    args+=(--configure-bucket "$b")
  done
  rm -f "$ready"
  # Port 0: the kernel picks the port (no race); run.js writes it to $ready.
  _svc_spawn S3 TERM "$log" env NODE_OPTIONS="--openssl-legacy-provider ${NODE_OPTIONS:-}" \
    node "$s3dir/run.js" --address 127.0.0.1 --port 0 --directory "$data" \
    --ready-file "$ready" --log-level "${S3RVER_LOG_LEVEL:-info}" "${args[@]}"
  rc=0
  _svc_wait "$_SVC_PID" "$SVC_START_TIMEOUT" test -s "$ready" || rc=$?
  if [ "$rc" -eq 0 ]; then
    port=$(cat "$ready")
    _svc_wait "$_SVC_PID" "$SVC_START_TIMEOUT" \
      curl -sf -o /dev/null --max-time 2 "http://127.0.0.1:$port/" || rc=$?
  fi
  if [ "$rc" -ne 0 ]; then
    _svc_stop_records "$SVC_DIR/run/S3.svc"
    if [ "$rc" -eq 2 ]; then
      _svc_fail "s3rver exited during startup" "$log"
    else
      _svc_fail "s3rver not reachable after ${SVC_START_TIMEOUT}s" "$log"
    fi
    return 1
  fi
  export S3_PORT=$port S3_ENDPOINT=http://127.0.0.1:$port S3_BUCKET=${1:-}
  export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER
  export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
  unset AWS_CA_BUNDLE AWS_SESSION_TOKEN AWS_PROFILE
}

# s3api ARGS...: Debian's aws CLI against S3_ENDPOINT, JSON output, no
# pager, no user config files.
s3api() {
  env -u AWS_CA_BUNDLE -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_PAGER= \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true \
    "$AWS" --endpoint-url "$S3_ENDPOINT" --output json s3api "$@"
}
