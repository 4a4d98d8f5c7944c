# shellcheck shell=bash
# tests/integration/lib.sh: TAP output and fixtures for end-to-end tests.
#
# The servers come from scripts/test (REDIS_URL, DATABASE_URL, S3_ENDPOINT,
# ...).  Each test gets its own Redis namespace, PostgreSQL schema and cube
# prefix, so tests run in parallel against the same servers.  Effects are
# checked with independent tools: redis-cli, psql and Debian's aws.

set -uo pipefail

T_NAME=$(basename "$0" .sh)
T_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${CLIPSWEEP_BUILD:?CLIPSWEEP_BUILD must point at the build directory}
WORKER=$BIN/worker/clipsweep-worker
CLI=$BIN/producer/clipsweep
AWS=/usr/bin/aws
T_TMP=$(mktemp -d "/tmp/clipsweep-$T_NAME.XXXXXX")
T_PIDS=()
# Workers run side by side: no metrics endpoint unless a test asks for one.
export CLIPSWEEP_METRICS_LISTEN=${CLIPSWEEP_METRICS_LISTEN:-none}

# shellcheck source=tests/tap.sh
. "$T_ROOT/tests/tap.sh"

for v in REDIS_URL DATABASE_URL S3_ENDPOINT; do
  [ -n "${!v:-}" ] || skip_all "$v is not set (run through scripts/test)"
done

cleanup() {
  local p
  for p in "${T_PIDS[@]+"${T_PIDS[@]}"}"; do
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ "$T_FAILED" -gt 0 ]; then
    for f in "$T_TMP"/*.log; do
      [ -f "$f" ] || continue
      echo "# ----- $f"
      tail -n 30 "$f" | sed 's/^/# /'
    done
  fi
  rm -rf "$T_TMP"
}
trap cleanup EXIT

# Per-test isolation.
T_ID=$(echo "$T_NAME-$$" | tr -c 'a-z0-9\n' '_')
export CLIPSWEEP_NAMESPACE="t_$T_ID"
export CLIPSWEEP_WORKER_ID="w-$T_ID"
CUBE="cube-$T_ID"
export CLOUDCUBE_URL="$S3_ENDPOINT/cloud-cube/$CUBE"
export CLOUDCUBE_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID
export CLOUDCUBE_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY
export CLIPSWEEP_REDIS_URL=$REDIS_URL
export CLIPSWEEP_DATABASE_URL=$DATABASE_URL
SCHEMA="s_$T_ID"
export CLIPSWEEP_JOBS_TABLE="$SCHEMA.jobs"
export CLIPSWEEP_CLIPS_TABLE="$SCHEMA.clips"
NS=$CLIPSWEEP_NAMESPACE
# A missing job is final at once unless a test asks for retries.
export CLIPSWEEP_NOT_READY_RETRY_SECONDS=${CLIPSWEEP_NOT_READY_RETRY_SECONDS:-0}

rcli() { redis-cli -u "$REDIS_URL" --no-auth-warning "$@"; }
sql() { psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -At -c "$1"; }
s3api() {
  env -u AWS_CA_BUNDLE "$AWS" --endpoint-url "$S3_ENDPOINT" --output json \
    s3api "$@"
}

make_schema() {
  sql "CREATE SCHEMA $SCHEMA" &&
    PGOPTIONS="-c search_path=$SCHEMA" psql "$DATABASE_URL" -X -q \
      -v ON_ERROR_STOP=1 -f "$T_ROOT/sql/schema.sql" >/dev/null
}

# put_object KEY [CONTENT]: KEY relative to the bucket.
put_object() {
  local f=$T_TMP/body
  printf '%s' "${2:-data for $1}" >"$f"
  s3api put-object --bucket cloud-cube --key "$1" --body "$f" >/dev/null
}

# put_objects KEY...: put_object KEY for each KEY (with put_object's default
# content), in one `aws s3 cp --recursive`.  One aws process costs about
# half a second, so seed more than a handful of objects with this.  Keys
# must be usable as relative paths: no leading, doubled or trailing /,
# no . or .. part.
put_objects() {
  local dir k rc=0
  dir=$(mktemp -d "$T_TMP/objects.XXXXXX") || return 1
  for k in "$@"; do
    mkdir -p "$dir/$(dirname "$k")" &&
      printf '%s' "data for $k" >"$dir/$k" || { rc=1; break; }
  done
  if [ "$rc" -eq 0 ]; then
    env -u AWS_CA_BUNDLE "$AWS" --endpoint-url "$S3_ENDPOINT" s3 cp \
      --recursive --quiet --no-guess-mime-type "$dir" s3://cloud-cube/ || rc=$?
  fi
  rm -rf "$dir"
  return "$rc"
}

# list_keys [PREFIX]: every key under the prefix, one per line, sorted.
list_keys() {
  s3api list-objects-v2 --bucket cloud-cube --prefix "${1:-$CUBE/}" \
    --query 'Contents[].Key' --output text | tr '\t' '\n' |
    grep -v '^None$' | LC_ALL=C sort
}

# start_worker [ARGS...]: runs the worker in the background, logging to
# $T_TMP/worker.log; waits for its "started" line.  Sets WORKER_PID.
# With CLIPSWEEP_TEST_VALGRIND=1 the worker runs under valgrind, and a leak
# or memory error makes its exit status 99 (so "stops cleanly" fails).
start_worker() {
  local -a wrap=()
  if [ "${CLIPSWEEP_TEST_VALGRIND:-0}" = 1 ]; then
    wrap=(valgrind -q --leak-check=full --show-leak-kinds=definite,indirect
      --errors-for-leak-kinds=definite,indirect --error-exitcode=99
      --log-file="$T_TMP/valgrind.%p.log")
  fi
  ${wrap[@]+"${wrap[@]}"} "$WORKER" "$@" >>"$T_TMP/worker.log" 2>&1 &
  WORKER_PID=$!
  T_PIDS+=("$WORKER_PID")
  local i
  for i in $(seq 1 400); do
    grep -q '"msg":"started"' "$T_TMP/worker.log" 2>/dev/null && return 0
    kill -0 "$WORKER_PID" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

# stop_worker: SIGTERM and wait; the exit status is left in STOP_RC.
# (Not for $(...): a subshell cannot wait for the worker.)
stop_worker() {
  STOP_RC=0
  kill -TERM "$WORKER_PID" 2>/dev/null || true
  wait "$WORKER_PID" || STOP_RC=$?
  if [ "${CLIPSWEEP_TEST_VALGRIND:-0}" = 1 ]; then
    ok "$([ "$STOP_RC" != 99 ] && echo 0 || echo 1)" \
      "valgrind: no leak or memory error in the worker"
  fi
}

# wait_for COMMAND...: up to 10 s for COMMAND to succeed.
wait_for() {
  local i
  for i in $(seq 1 200); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}

# sweep JSON-FIELDS: push a retention sweep (fields after type and id) and
# wait up to a minute for its final result, left in R (at once when the
# worker started by start_worker has died).  f FIELD reads R.
SWEEP_SEQ=0
sweep() {
  SWEEP_SEQ=$((SWEEP_SEQ + 1))
  local id="sweep-$T_ID-$SWEEP_SEQ" i
  rcli LPUSH "$NS:queue:sweeps" \
    "{\"type\":\"retention_sweep\",\"id\":\"$id\",$1}" >/dev/null
  R=
  for i in $(seq 1 600); do
    R=$(rcli GET "$NS:result:$id")
    [ -n "$R" ] && return 0
    # A dead worker answers nothing: fail now, not after a minute.
    if [ -n "${WORKER_PID:-}" ] && ! kill -0 "$WORKER_PID" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}
f() { echo "$R" | json "$1"; }

# json FIELD < JSON: one field via python's json module (Debian python).
json() {
  /usr/bin/python3 -c '
import json, sys
v = json.load(sys.stdin)
for part in sys.argv[1].split("."):
    v = v[int(part)] if isinstance(v, list) else v.get(part)
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)
' "$1"
}

# start_blackhole: a TCP port that completes handshakes and never answers
# (a hung server).  Sets BH_PORT and BH_PID; kill BH_PID to reset them all.
start_blackhole() {
  local f=$T_TMP/blackhole.port
  rm -f "$f"
  /usr/bin/python3 -c '
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(128)
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(3600)' "$f" &
  BH_PID=$!
  T_PIDS+=("$BH_PID")
  wait_for test -s "$f" || return 1
  BH_PORT=$(cat "$f")
}
