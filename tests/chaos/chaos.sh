#!/usr/bin/env bash
# tests/chaos/chaos.sh: clipsweep under chaos, with real processes.
#
# Three workers run about a thousand job_cleanup tasks and four retention
# sweeps against their own Redis (AOF, fsync always), PostgreSQL and s3mem,
# while this script kill -9's a random worker every 0.5 to 2 s and restarts
# it (under the same id or a new one), restarts Redis once (kill -9, 3 s
# down, same port, same AOF), stops PostgreSQL for 3 s, freezes a worker
# twice past its lease (so that tasks run twice), and s3mem fails about
# 10% of the S3 requests; old orphans turn up before each sweep.  Then it
# checks, with redis-cli, psql and Debian's aws:
# every task ended (ok, refused, or failed with a reason and a dead letter),
# none was lost, no object that must be kept was deleted, what was deleted
# was deletable and, for a job_cleanup run, that job's own upload; the
# workers never stopped on their own and still stop cleanly.  Figures go to
# TAP comments (and to CHAOS_REPORT as one JSON line).
#
#   CLIPSWEEP_BUILD=build bash tests/chaos/chaos.sh [--soak N] [--seed N]
#
#   CLIPSWEEP_CHAOS_SOAK=N  (or --soak N) N x 1000 tasks over an N x longer
#                           run, N Redis restarts and PostgreSQL stops
#   CHAOS_SEED=N            (or --seed N) the seed of every random choice
#                           here and in s3mem's faults; default from the
#                           clock, always printed.  Timing still varies.
#   CHAOS_REPORT=PATH       append the figures as one JSON line to PATH
#   CLIPSWEEP_KEEP_SVC=1    keep the servers' data and every log; a failed
#                           run keeps them anyway and prints where
#
# Registered as meson test 'chaos' (suite 'chaos'), which scripts/test runs.
# shellcheck disable=SC2317 # functions called through traps and helpers
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${CLIPSWEEP_BUILD:-$ROOT/build}
WORKER=$BIN/worker/clipsweep-worker
S3MEM=$BIN/tests/s3mem/s3mem
PY=/usr/bin/python3
DATA_PY=$ROOT/tests/chaos/chaos_data.py

SOAK=${CLIPSWEEP_CHAOS_SOAK:-1}
SEED=${CHAOS_SEED:-}
while [ $# -gt 0 ]; do
  case $1 in
    --soak) SOAK=${2:-}; shift ;;
    --soak=*) SOAK=${1#*=} ;;
    --seed) SEED=${2:-}; shift ;;
    --seed=*) SEED=${1#*=} ;;
    *) echo "chaos.sh: unknown argument $1" >&2; exit 64 ;;
  esac
  shift
done
[[ $SOAK =~ ^[1-9][0-9]{0,2}$ ]] || { echo "chaos.sh: --soak wants 1 to 999" >&2; exit 64; }
[ -n "$SEED" ] || SEED=$(( ${EPOCHREALTIME/[.,]/} % 1000000 ))
[[ $SEED =~ ^[0-9]{1,9}$ ]] || { echo "chaos.sh: the seed is a number" >&2; exit 64; }
SEED=$((10#$SEED))
RANDOM=$SEED

# ------------------------------------------------------------------ TAP

# shellcheck source=tests/tap.sh
. "$ROOT/tests/tap.sh"
bail() {
  echo "Bail out! $*"
  T_FAILED=$((T_FAILED + 1))
  exit 1
}

for p in redis-server redis-cli psql curl; do
  command -v "$p" >/dev/null || skip_all "$p is not installed"
done
[ -x /usr/bin/aws ] || skip_all "/usr/bin/aws is not installed"
[ -x "$PY" ] || skip_all "$PY is not installed"
[ -x "$WORKER" ] || skip_all "$WORKER is not built"
[ -x "$S3MEM" ] || skip_all "$S3MEM is not built"

# shellcheck source=scripts/lib/services.sh
. "$ROOT/scripts/lib/services.sh"
[ -n "$PG_BINDIR" ] || skip_all "PostgreSQL server binaries are not installed"
svc_init

now_ms() { NOW=$((${EPOCHREALTIME/[.,]/} / 1000)); }
now_ms
T_START=$NOW
T=$SVC_DIR/chaos
mkdir -p "$T"

# Workers are our own children (not services.sh's), so that `wait` gives
# each one's exit status; whatever still runs at exit is killed.  A failed
# run keeps its logs: they are the evidence.
W_SLOTS=3
W_PID=()
W_ID=()
W_LOG=()
svc_on_exit_hook() {
  local i
  for i in "${!W_PID[@]}"; do
    [ -n "${W_PID[$i]}" ] && kill -KILL "${W_PID[$i]}" 2>/dev/null
  done
  if [ "$T_FAILED" -gt 0 ] || [ "$1" -ne 0 ]; then
    CLIPSWEEP_KEEP_SVC=1
    echo "# logs and data kept in $SVC_DIR (worker logs in $T); rerun with CHAOS_SEED=$SEED"
  fi
}

diag "seed $SEED (CHAOS_SEED=$SEED reproduces every random choice), soak $SOAK"

# ---------------------------------------------------------------- Redis
#
# Our own, not svc_start_redis: fsync on every write, and a fixed port and
# directory so that a kill -9 and a restart bring back the same data.
RPORT=$(svc_free_port) || bail "no free port"
REDIS_DIR=$SVC_DIR/chaos-redis
mkdir -p "$REDIS_DIR"
redis_up() {
  local rc=0
  _svc_spawn REDIS TERM "$SVC_DIR/logs/redis.log" redis-server --bind 127.0.0.1 \
    --port "$RPORT" --dir "$REDIS_DIR" --appendonly yes --appendfsync always \
    --save '' --protected-mode no --daemonize no --logfile ''
  REDIS_PID=$_SVC_PID
  # PING answers LOADING until the AOF is read back.
  _svc_wait "$REDIS_PID" 30 _svc_redis_ping -h 127.0.0.1 -p "$RPORT" || rc=$?
  return "$rc"
}
rc() { timeout 10 redis-cli -h 127.0.0.1 -p "$RPORT" "$@"; }
redis_up || bail "redis-server did not start (port $RPORT)"

# ----------------------------------------------------------- PostgreSQL
#
# services.sh's cluster (it knows how to run it as an unprivileged user);
# to restart it we run again the command the postmaster recorded.
svc_start_postgres || bail "PostgreSQL did not start"
PG_DATA=$SVC_DIR/pg
PG_CMD=()
eval "PG_CMD=($(cat "$PG_DATA/postmaster.opts"))" # postgres's own quoting
PG_AS=()
if [ "$(id -u)" -eq 0 ]; then
  pg_user=$(stat -c %U "$PG_DATA")
  PG_AS=(setpriv --reuid="$pg_user" --regid="$(id -g "$pg_user")" --init-groups --)
fi
pg_down() {
  local pid
  read -r pid <"$PG_DATA/postmaster.pid" || return 1
  kill -INT "$pid" || return 1 # fast shutdown: sessions are cut
  _svc_wait "$pid" 30 false
  [ $? -eq 2 ]
}
pg_up() {
  local rc=0
  _svc_spawn PG INT "$SVC_DIR/logs/postgres.log" "${PG_AS[@]}" "${PG_CMD[@]}"
  _svc_wait "$_SVC_PID" 30 pg_isready -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres ||
    rc=$?
  return "$rc"
}
sql() { psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -At "$@"; }

# ----------------------------------------------------------------- s3mem
AK=AKIDCHAOS
SK='chaos/Secret+Key'
_svc_spawn S3MEM TERM "$SVC_DIR/logs/s3mem.log" "$S3MEM" --listen 127.0.0.1:0 \
  --ready-file "$T/s3mem.port" --access-key "$AK" --secret-key "$SK" \
  --bucket cloud-cube --fault-seed "$SEED"
_svc_wait "$_SVC_PID" 20 test -s "$T/s3mem.port" || bail "s3mem did not start"
S3_EP=http://127.0.0.1:$(cat "$T/s3mem.port")
# s3mem_call PATH?QUERY [BODY-FILE]: a signed request to s3mem's extensions.
s3mem_call() {
  local body=${2:-/dev/null}
  curl -sS --fail --max-time 60 --aws-sigv4 aws:amz:us-east-1:s3 --user "$AK:$SK" \
    -H "x-amz-content-sha256: $(sha256sum <"$body" | cut -c1-64)" \
    ${2:+--data-binary @"$body"} "$S3_EP$1"
}
aws_s3() {
  env -u AWS_CA_BUNDLE -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_PAGER= \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_EC2_METADATA_DISABLED=true AWS_ACCESS_KEY_ID=$AK AWS_SECRET_ACCESS_KEY=$SK \
    AWS_DEFAULT_REGION=us-east-1 /usr/bin/aws --endpoint-url "$S3_EP" --output json \
    s3api "$@"
}
list_bucket() { # FILE: every object of the bucket, as aws prints it
  aws_s3 list-objects-v2 --bucket cloud-cube >"$1" 2>>"$T/aws.log"
}
count_listing() { # FILE
  "$PY" -c 'import json,sys; print(len(json.load(open(sys.argv[1])).get("Contents") or []))' "$1"
}
diag "servers: redis 127.0.0.1:$RPORT (AOF, fsync always), postgres 127.0.0.1:$PGPORT, s3mem $S3_EP"

# ------------------------------------------------------------------ data
NS=chaos
CUBE=cube-chaos
JOBS=$((1000 * SOAK))
echo "$CUBE" >"$T/cube.txt"
"$PY" "$DATA_PY" gen "$T" "$JOBS" "$CUBE" "$SEED" "$(date +%s)" || bail "data generation failed"
sql -f "$ROOT/sql/schema.sql" >/dev/null || bail "schema"
{
  sql -c "\\copy jobs (id, status, original_key, audio_key, created_at) FROM '$T/jobs.tsv'" &&
    sql -c "\\copy clips (id, job_id, status, key, created_at) FROM '$T/clips.tsv'"
} || bail "cannot load the rows"
sql -c "ANALYZE" || bail "ANALYZE"
s3mem_call "/cloud-cube?s3mem-seed=" "$T/seed.tsv" >"$T/seed.out" || bail "cannot seed s3mem"
list_bucket "$T/list_before.json" || bail "cannot list the bucket"
is "$(count_listing "$T/list_before.json")" "$(wc -l <"$T/seed.tsv")" \
  "s3mem holds the $(wc -l <"$T/seed.tsv") seeded objects (aws s3api)"

# What must survive, from the data contract, by psql: completed clips in
# the 5-day window, every key a job or clip that is not terminal names;
# plus fresh uploads no row knows yet and objects outside the cube.
{
  sql -c "SELECT '$CUBE/' || key FROM clips WHERE key IS NOT NULL AND
      (coalesce(status, '') NOT IN ('completed', 'failed') OR
       (status = 'completed' AND created_at >= now() - interval '5 days'))
    UNION SELECT '$CUBE/' || k FROM jobs, LATERAL (VALUES (original_key), (audio_key)) v(k)
    WHERE k IS NOT NULL AND coalesce(status, '') NOT IN ('completed', 'failed', 'cancelled')" &&
    cat "$T/extra_keep.txt"
} | LC_ALL=C sort -u >"$T/must_keep.txt" || bail "cannot list the must-keep keys"
{
  sql -F $'\t' -c "SELECT id, coalesce(status, ''), coalesce(original_key, ''),
    coalesce(audio_key, '') FROM jobs" >"$T/jobs.db.tsv" &&
    sql -F $'\t' -c "SELECT id, job_id, coalesce(status, ''), key,
    created_at >= now() - interval '5 days' FROM clips" >"$T/clips.db.tsv"
} || bail "cannot read the rows back"

mapfile -t TASKS <"$T/tasks.txt"
mapfile -t SWEEPS <"$T/sweeps.txt"
mapfile -t IDS <"$T/task_ids.txt"
NTASKS=${#TASKS[@]}
NSWEEPS=${#SWEEPS[@]}
diag "data: $JOBS completed jobs, $(wc -l <"$T/jobs.tsv") job rows, $(wc -l <"$T/clips.tsv") clips," \
  "$(wc -l <"$T/seed.tsv") objects, $(wc -l <"$T/must_keep.txt") must be kept;" \
  "$NTASKS job_cleanup tasks and $NSWEEPS sweeps"

# --------------------------------------------------------------- workers
export CLIPSWEEP_REDIS_URL=redis://127.0.0.1:$RPORT/0
export CLIPSWEEP_DATABASE_URL=$DATABASE_URL
export CLOUDCUBE_URL=$S3_EP/cloud-cube/$CUBE
export CLOUDCUBE_ACCESS_KEY_ID=$AK CLOUDCUBE_SECRET_ACCESS_KEY=$SK
export CLIPSWEEP_NAMESPACE=$NS
export CLIPSWEEP_LEASE_SECONDS=2     # a killed worker's tasks come back fast
export CLIPSWEEP_RETRY_BASE_MS=100   # retries within seconds, not minutes
export CLIPSWEEP_MAX_ATTEMPTS=8      # enough to outlast a 3 s database stop
export CLIPSWEEP_NOT_READY_RETRY_SECONDS=0
export CLIPSWEEP_LOG_LEVEL=info
export CLIPSWEEP_METRICS_LISTEN=none # several workers on one host
unset CLOUDCUBE_SESSION_TOKEN CLIPSWEEP_JOBS_TABLE CLIPSWEEP_CLIPS_TABLE \
  CLIPSWEEP_S3_MAX_RPS CLIPSWEEP_MAX_DELETE_RATIO CLIPSWEEP_INSTANCE CLIPSWEEP_S3_REGION

W_SEQ=0
NEXT_ID=$((W_SLOTS + 1))
KILLS=0
KILLS_SWEEP=0
KILL_BAD_STATUS=()
UNEXPECTED=()
ALL_LOGS=()
start_worker() { # SLOT ID
  W_SEQ=$((W_SEQ + 1))
  local log=$T/worker-$W_SEQ-$2.log
  CLIPSWEEP_WORKER_ID=$2 "$WORKER" >"$log" 2>&1 &
  W_PID[$1]=$!
  W_ID[$1]=$2
  W_LOG[$1]=$log
  ALL_LOGS+=("$log")
}
for ((s = 0; s < W_SLOTS; s++)); do
  start_worker "$s" "w$((s + 1))"
done
started_all() {
  local s
  for ((s = 0; s < W_SLOTS; s++)); do
    grep -q '"msg":"started"' "${W_LOG[$s]}" || return 1
  done
}
_svc_wait "$$" 10 started_all
ok $? "three workers started (w1, w2, w3)"

# kill_worker SLOT: kill -9, reap, and start again under the same id or a
# fresh one (the same id must first wait for its lock to be given up).
declare -A SWEEP_HITS=()
kill_worker() {
  local s=$1 st=0
  kill -KILL "${W_PID[$s]}" 2>/dev/null
  wait "${W_PID[$s]}" 2>/dev/null || st=$? # (bash would print "Killed")
  KILLS=$((KILLS + 1))
  # 137: our SIGKILL.  Anything else: it had stopped on its own first.
  [ "$st" -eq 137 ] || KILL_BAD_STATUS+=("${W_ID[$s]}: $st (${W_LOG[$s]})")
  if ((RANDOM % 2)); then
    start_worker "$s" "${W_ID[$s]}"
  else
    start_worker "$s" "w$NEXT_ID"
    NEXT_ID=$((NEXT_ID + 1))
  fi
}
# sweep_slot [MAX-HITS]: the slot of a worker (not the frozen one) that has
# a sweep or a sweep's shard claimed, hit fewer than MAX-HITS times so far;
# sets SWEEP_SLOT and SWEEP_ID, or fails.
sweep_slot() {
  local s m
  for ((s = 0; s < W_SLOTS; s++)); do
    [ "$s" = "$FROZEN_SLOT" ] && continue
    m=$(rc --raw LRANGE "$NS:processing:${W_ID[$s]}" 0 -1 2>/dev/null |
      grep -E 'retention_sweep|sweep_shard' | grep -o '"id":"[^"]*"' | head -n 1)
    SWEEP_ID=${m#\"id\":}
    if [ -n "$SWEEP_ID" ] && [ "${SWEEP_HITS[$SWEEP_ID]:-0}" -lt "${1:-2}" ]; then
      SWEEP_SLOT=$s
      return 0
    fi
  done
  return 1
}
# chaos_kill: every other kill aims at a worker running a sweep, at most
# twice per sweep (a sweep killed nine times is dead-lettered, correctly,
# but then it tells us less); the rest pick a worker at random.
chaos_kill() {
  local target=$((RANDOM % W_SLOTS)) aim=$((RANDOM % 2))
  # Not the frozen one: its thaw is what makes a task finish twice.
  [ "$target" = "$FROZEN_SLOT" ] && target=$(((target + 1) % W_SLOTS))
  if [ "$aim" -eq 1 ] && sweep_slot 2; then
    SWEEP_HITS[$SWEEP_ID]=$((${SWEEP_HITS[$SWEEP_ID]:-0} + 1))
    KILLS_SWEEP=$((KILLS_SWEEP + 1))
    target=$SWEEP_SLOT
  fi
  kill_worker "$target"
}
# check_workers: a worker that is gone and that we did not kill stopped on
# its own: that is a failure (recorded), and it is replaced to go on.
check_workers() {
  local s st
  for ((s = 0; s < W_SLOTS; s++)); do
    _svc_alive "${W_PID[$s]}" && continue
    st=0
    wait "${W_PID[$s]}" 2>/dev/null || st=$?
    UNEXPECTED+=("${W_ID[$s]} exited with status $st ($(tail -n 1 "${W_LOG[$s]}"))")
    start_worker "$s" "w$NEXT_ID"
    NEXT_ID=$((NEXT_ID + 1))
  done
}

# ------------------------------------------------------------- the run
#
# One loop, so that the chaos never races our own Redis commands: tasks
# are pushed over WINDOW_MS in small batches, a kill every 0.5 to 2 s,
# and per 1000 tasks four sweeps (at 12.5, 37.5, 62.5 and 87.5% of its
# stretch), one Redis restart (38%: during the second sweep, 3 s down),
# one PostgreSQL stop (63%: the third sweep, 3 s) and two worker freezes
# (SIGSTOP at 20%, and at 88% the fourth sweep's worker; SIGCONT 3 s
# later).
WINDOW_MS=$((36000 * SOAK))
DEADLINE_MS=$((240000 * SOAK))
FAULTS="seed=$SEED
# about 10% of requests fail: SlowDown, or the connection is reset
rate=0.08 error=503
rate=0.02 reset
# a DeleteObjects that happens but whose answer is lost
op=delete-objects rate=0.02 reset applied
# every answer a little late, so kills find work in flight; listings
# more, so that a sweep lasts long enough to be hit
delay=2 jitter=30
op=list delay=50"
printf '%s\n' "$FAULTS" >"$T/faults.txt"
s3mem_call "/?s3mem-faults=" "$T/faults.txt" >"$T/faults.out" || bail "cannot set the S3 faults"
diag "S3 faults: $(grep -v '^#' "$T/faults.txt" | grep -v '^seed' | paste -sd';' | sed 's/;/; /g')"

now_ms
T0=$NOW
ENQ=0
SWEEP_NEXT=0
NEXT_KILL=$((T0 + 500 + RANDOM % 1501))
REDIS_RESTARTS=0
REDIS_DOWN_MS=0
REDIS_DOWN_SINCE=
PG_STOPS=0
PG_DOWN_MS=0
PG_DOWN_SINCE=
PG_FAILS=0
REDIS_FAILS=0
FREEZES=0
FREEZE_SWEEPS=0
FROZEN_SLOT=
FROZEN_SINCE=
LAST_ID=0-0
NEXT_COLLECT=$T0
NEXT_POLL=$T0
DONE=0
FINAL_N=0
BUSY=-1
: >"$T/results_log.raw"

# collect_results: the results stream keeps only ~10,000 entries, so it is
# read as it grows (three lines per entry with --raw: id, field, result).
collect_results() {
  local n
  while :; do
    rc --raw XRANGE "$NS:results:log" "($LAST_ID" + COUNT 2000 >"$T/xr.tmp" 2>/dev/null || return 1
    [ -s "$T/xr.tmp" ] || return 0
    head -n 1 "$T/xr.tmp" | grep -Eq '^[0-9]+-[0-9]+$' || return 1 # LOADING...
    n=$(wc -l <"$T/xr.tmp")
    [ $((n % 3)) -eq 0 ] || return 1
    awk 'NR % 3 == 0' "$T/xr.tmp" >>"$T/results_log.raw"
    LAST_ID=$(tail -n 3 "$T/xr.tmp" | head -n 1)
    [ "$n" -lt 6000 ] && return 0
  done
}
# poll: how many task ids have a final result or a dead letter, and how
# many messages are still queued, scheduled or claimed (one script, all
# on the server).
POLL_LUA="local p, n, busy, dead = ARGV[1], 0, 0, {}
for _, e in ipairs(redis.call('LRANGE', p .. ':dead', 0, -1)) do
  local ok, d = pcall(cjson.decode, e)
  if ok and type(d) == 'table' and type(d.id) == 'string' then dead[d.id] = true end
end
for i = 2, #ARGV do
  local r = redis.call('GET', p .. ':result:' .. ARGV[i])
  if dead[ARGV[i]] or (r and not string.find(r, '\"status\":\"retrying\"', 1, true)) then
    n = n + 1
  end
end
busy = redis.call('LLEN', p .. ':queue:jobs') + redis.call('LLEN', p .. ':queue:sweeps')
  + redis.call('ZCARD', p .. ':scheduled')
for _, k in ipairs(redis.call('KEYS', p .. ':processing:*')) do busy = busy + redis.call('LLEN', k) end
return {n, busy}"
poll() {
  local out
  out=$(rc --raw EVAL "$POLL_LUA" 0 "$NS" "${IDS[@]}" 2>/dev/null) || return 1
  [[ $out =~ ^([0-9]+)$'\n'([0-9]+)$ ]] || return 1
  FINAL_N=${BASH_REMATCH[1]}
  BUSY=${BASH_REMATCH[2]}
}
# push_tasks: what is due by now, in batches of at most 200; a batch that
# Redis did not take is pushed again on the next round.
push_tasks() {
  local due=$(((NOW - T0) * NTASKS / WINDOW_MS + 1)) n out late
  [ "$due" -gt "$NTASKS" ] && due=$NTASKS
  while [ "$ENQ" -lt "$due" ]; do
    n=$((due - ENQ))
    [ "$n" -gt 200 ] && n=200
    out=$(rc LPUSH "$NS:queue:jobs" "${TASKS[@]:ENQ:n}" 2>/dev/null)
    [[ $out =~ ^[0-9]+$ ]] || return 1
    ENQ=$((ENQ + n))
  done
  due=$((((NOW - T0) * NSWEEPS + WINDOW_MS / 2) / WINDOW_MS))
  while [ "$SWEEP_NEXT" -lt "$due" ] && [ "$SWEEP_NEXT" -lt "$NSWEEPS" ]; do
    # New old orphans first (s3mem's seeding is never faulted), so that the
    # sweep has something to delete; .done tells the analysis they exist.
    late=$T/seed_late_$((SWEEP_NEXT + 1)).tsv
    if [ ! -e "$late.done" ]; then
      s3mem_call "/cloud-cube?s3mem-seed=" "$late" >/dev/null || return 1
      : >"$late.done"
    fi
    out=$(rc LPUSH "$NS:queue:sweeps" "${SWEEPS[$SWEEP_NEXT]}" 2>/dev/null)
    [[ $out =~ ^[0-9]+$ ]] || return 1
    SWEEP_NEXT=$((SWEEP_NEXT + 1))
  done
}

while :; do
  now_ms
  EL=$((NOW - T0))
  [ "$EL" -ge "$DEADLINE_MS" ] && break
  check_workers
  [ -z "$REDIS_DOWN_SINCE" ] && push_tasks
  chaos_on=0
  [ "$EL" -lt "$WINDOW_MS" ] && chaos_on=1
  if [ "$chaos_on" = 1 ] && [ "$NOW" -ge "$NEXT_KILL" ]; then
    chaos_kill
    NEXT_KILL=$((NOW + 500 + RANDOM % 1501))
  fi
  # Redis: kill -9 at 38% of each 1000 tasks' stretch, back 3 s later:
  # longer than a lease, so live workers' leases lapse and get reaped, and
  # their tasks run twice (which must be harmless).
  if [ -z "$REDIS_DOWN_SINCE" ] && [ "$REDIS_RESTARTS" -lt "$SOAK" ] &&
    [ "$EL" -ge $(((REDIS_RESTARTS * 100 + 38) * WINDOW_MS / (100 * SOAK))) ]; then
    kill -KILL "$REDIS_PID"
    _svc_wait "$REDIS_PID" 10 false
    REDIS_DOWN_SINCE=$NOW
    diag "$((EL / 1000)) s: Redis killed (kill -9)"
  elif [ -n "$REDIS_DOWN_SINCE" ] && [ "$NOW" -ge $((REDIS_DOWN_SINCE + 3000)) ]; then
    redis_up || REDIS_FAILS=$((REDIS_FAILS + 1))
    now_ms
    REDIS_DOWN_MS=$((REDIS_DOWN_MS + NOW - REDIS_DOWN_SINCE))
    diag "$(((NOW - T0) / 1000)) s: Redis back after $((NOW - REDIS_DOWN_SINCE)) ms (AOF reloaded)"
    REDIS_DOWN_SINCE=
    REDIS_RESTARTS=$((REDIS_RESTARTS + 1))
  fi
  # A worker frozen past its lease: the others take its tasks back and run
  # them, and when it thaws it finishes them too.  Only one result each
  # may be published, and deleting twice must be harmless.
  if [ -z "$FROZEN_SLOT" ] && [ "$FREEZES" -lt $((2 * SOAK)) ] &&
    [ "$EL" -ge $((((FREEZES / 2) * 100 + (FREEZES % 2) * 68 + 20) * WINDOW_MS / (100 * SOAK))) ]; then
    FROZEN_SLOT=$((RANDOM % W_SLOTS))
    # The second one freezes a sweep in the middle: when it thaws, another
    # worker is running the same sweep.
    if [ $((FREEZES % 2)) = 1 ] && sweep_slot 99; then
      FROZEN_SLOT=$SWEEP_SLOT
      FREEZE_SWEEPS=$((FREEZE_SWEEPS + 1))
    fi
    kill -STOP "${W_PID[$FROZEN_SLOT]}"
    FROZEN_SINCE=$NOW
    diag "$((EL / 1000)) s: worker ${W_ID[$FROZEN_SLOT]} frozen (SIGSTOP)"
  elif [ -n "$FROZEN_SLOT" ] && [ "$NOW" -ge $((FROZEN_SINCE + 3000)) ]; then
    kill -CONT "${W_PID[$FROZEN_SLOT]}"
    diag "$((EL / 1000)) s: worker ${W_ID[$FROZEN_SLOT]} thawed (SIGCONT)"
    FROZEN_SLOT=
    FREEZES=$((FREEZES + 1))
  fi
  # PostgreSQL: stopped at 63% for three seconds.
  if [ -z "$PG_DOWN_SINCE" ] && [ "$PG_STOPS" -lt "$SOAK" ] &&
    [ "$EL" -ge $(((PG_STOPS * 100 + 63) * WINDOW_MS / (100 * SOAK))) ]; then
    pg_down || PG_FAILS=$((PG_FAILS + 1))
    PG_DOWN_SINCE=$NOW
    diag "$((EL / 1000)) s: PostgreSQL stopped (fast shutdown)"
  elif [ -n "$PG_DOWN_SINCE" ] && [ "$NOW" -ge $((PG_DOWN_SINCE + 3000)) ]; then
    pg_up || PG_FAILS=$((PG_FAILS + 1))
    now_ms
    PG_DOWN_MS=$((PG_DOWN_MS + NOW - PG_DOWN_SINCE))
    diag "$(((NOW - T0) / 1000)) s: PostgreSQL back after $((NOW - PG_DOWN_SINCE)) ms"
    PG_DOWN_SINCE=
    PG_STOPS=$((PG_STOPS + 1))
  fi
  if [ -z "$REDIS_DOWN_SINCE" ] && [ "$NOW" -ge "$NEXT_COLLECT" ]; then
    collect_results
    NEXT_COLLECT=$((NOW + 2000))
  fi
  # Done: everything pushed, the outages over, every id final, nothing
  # queued, scheduled or claimed (a duplicate still running counts).
  if [ "$ENQ" -eq "$NTASKS" ] && [ "$SWEEP_NEXT" -eq "$NSWEEPS" ] &&
    [ "$REDIS_RESTARTS" -eq "$SOAK" ] && [ "$PG_STOPS" -eq "$SOAK" ] &&
    [ "$FREEZES" -eq $((2 * SOAK)) ] &&
    [ "$chaos_on" = 0 ] && [ "$NOW" -ge "$NEXT_POLL" ]; then
    NEXT_POLL=$((NOW + 500))
    if poll && [ "$FINAL_N" -eq "${#IDS[@]}" ] && [ "$BUSY" -eq 0 ]; then
      DONE=1
      break
    fi
  fi
  sleep 0.1
done
now_ms
RUN_MS=$((NOW - T0))
[ -n "$REDIS_DOWN_SINCE" ] && { redis_up || REDIS_FAILS=$((REDIS_FAILS + 1)); }
[ -n "$PG_DOWN_SINCE" ] && { pg_up || PG_FAILS=$((PG_FAILS + 1)); }
[ -n "$FROZEN_SLOT" ] && kill -CONT "${W_PID[$FROZEN_SLOT]}"
check_workers

ok "$((1 - DONE))" "every task reached a final result (or a dead letter), nothing queued, scheduled or claimed, within $((DEADLINE_MS / 1000)) s (took $((RUN_MS / 1000)) s)"
if [ "$DONE" = 0 ]; then
  poll
  diag "at the deadline: $FINAL_N of ${#IDS[@]} final, $BUSY messages queued, scheduled or claimed"
fi

# ------------------------------------------------------------- evidence
collect_results
sleep 1 # a result published right at the end reaches the stream too
collect_results
REDELIVERED=$(rc HGET "$NS:stats" redelivered)
REDELIVERY_DEAD=$(rc HGET "$NS:stats" redelivery_dead)
printf '%s\n' "${IDS[@]}" | sed "s/^/GET $NS:result:/" | rc --json >"$T/finals.json"
rc --json LRANGE "$NS:dead" 0 -1 >"$T/dead.json"
# s3mem's own count of the faults it injected; then no more faults, so
# that our own listing sees the bucket as it is.
s3mem_call "/?s3mem-faults=" >"$T/faults_report.xml"
: >"$T/nofaults.txt"
s3mem_call "/?s3mem-faults=" "$T/nofaults.txt" >/dev/null
FAULT_FIGURES=$("$PY" -c '
import sys, xml.etree.ElementTree as ET
r = ET.parse(sys.argv[1]).getroot().findall("Rule")
# Requests: the delay rule selects them all.  Faults: errors and resets.
print(sum(int(x.findtext("Fired")) for x in r
          if "error=" in x.findtext("Spec") or "reset" in x.findtext("Spec")),
      max([int(x.findtext("Matched")) for x in r] or [0]))
' "$T/faults_report.xml")
read -r FAULTS_FIRED S3_REQUESTS <<<"$FAULT_FIGURES"
list_bucket "$T/list_after.json"
ok $? "the bucket is listed after the run (aws s3api list-objects-v2)"

is "$(rc LLEN "$NS:queue:jobs") $(rc LLEN "$NS:queue:sweeps") $(rc ZCARD "$NS:scheduled")" \
  "0 0 0" "the queues and the retry schedule are empty"
left=0
for k in $(rc --raw KEYS "$NS:processing:*"); do
  left=$((left + $(rc LLEN "$k")))
done
is "$left" 0 "no processing list holds a message"

# --------------------------------------------------------------- workers
alive=0
for ((s = 0; s < W_SLOTS; s++)); do
  _svc_alive "${W_PID[$s]}" && alive=$((alive + 1))
done
is "$alive" "$W_SLOTS" "every worker started last is still running (${W_ID[*]})"
is "${#UNEXPECTED[@]}" 0 "no worker stopped on its own during the run"
for u in "${UNEXPECTED[@]+"${UNEXPECTED[@]}"}"; do diag "  $u"; done
is "${#KILL_BAD_STATUS[@]}" 0 "every killed worker died of our SIGKILL (status 137)"
for u in "${KILL_BAD_STATUS[@]+"${KILL_BAD_STATUS[@]}"}"; do diag "  $u"; done
for ((s = 0; s < W_SLOTS; s++)); do
  kill -TERM "${W_PID[$s]}" 2>/dev/null
done
# The drain timeout is 20 s; a worker still there after 40 is killed (137).
now_ms
stop_by=$((NOW + 40000))
for ((s = 0; s < W_SLOTS; s++)); do
  st=0
  while _svc_alive "${W_PID[$s]}" && now_ms && [ "$NOW" -lt "$stop_by" ]; do
    sleep 0.1
  done
  kill -KILL "${W_PID[$s]}" 2>/dev/null
  wait "${W_PID[$s]}" 2>/dev/null || st=$?
  is "$st" 0 "worker ${W_ID[$s]} exits 0 on SIGTERM"
  W_PID[s]=
done
errs=$(cat "${ALL_LOGS[@]}" | grep -c '"level":"error"')
is "$errs" 0 "no error lines in the ${#ALL_LOGS[@]} worker logs"
cat "${ALL_LOGS[@]}" | grep '"level":"error"' | sort | uniq -c | sort -rn | head -n 5 |
  sed 's/^/#   /'
splits=$(cat "${ALL_LOGS[@]}" | grep '"msg":"sweep split into shards"' |
  grep -o '"task_id":"[^"]*"' | sort -u | wc -l)
is "$splits" $((NSWEEPS / 2)) "every other sweep ran in key ranges (worker logs)"
san=$(cat "${ALL_LOGS[@]}" | grep -cE 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:')
is "$san" 0 "no sanitizer reports in the worker logs"

# ------------------------------------------------------------ the outcome
"$PY" "$DATA_PY" analyze "$T" >"$T/facts.txt" 2>"$T/analyze.err" ||
  { sed 's/^/# /' "$T/analyze.err"; bail "the analysis failed"; }
fact() { awk -v k="$1" '$1 == k { print $2 }' "$T/facts.txt"; }
diags() { grep '^DIAG ' "$T/facts.txt" | grep -F "$1" | sed 's/^DIAG /#   /'; }

is "$(fact keep_and_deletable)" 0 "the must-keep list and the deletable set do not overlap (test data sanity)"
is "$(fact must_keep_seeded)" "$(fact must_keep_total)" "every must-keep key was seeded"
is "$(fact lost)" 0 "no task is lost: each has a result or a dead letter"
diags "LOST task"
is "$(fact not_final)" 0 "no task is left retrying"
diags "not final"
is "$(fact unexpected_outcome)" 0 "every task ended ok (a sweep: or refused) or failed with a dead letter (an active job's: clips_not_finished)"
diags "unexpected outcome"
is "$(fact failed_without_code)" 0 "every failed or partial result has an error code"
diags "failed without a code"
is "$(fact dead_without_reason)" 0 "every dead letter has a reason code"
is "$(fact dead_unknown_id)" 0 "every dead letter is one of our tasks"
is "$(fact must_keep_missing)" 0 "all $(fact must_keep_total) must-keep objects are still there (aws s3api)"
diags "LOST must-keep"
is "$(fact deleted_not_allowed)" 0 "every deleted object was deletable ($(fact deleted) deleted)"
diags "deleted but not deletable"
is "$(fact objects_appeared)" 0 "no object appeared"
# A duplicate run whose result was dropped is covered by the check above.
is "$(fact job_deletes_outside_job)" 0 "every published job_cleanup result (interim ones too) names only its job's own upload"
diags "job_cleanup deleted"
is "$(fact sweep_deletes_not_allowed)" 0 "every key a sweep reports deleted was deletable"
diags "sweep deleted"
is "$(fact active_job_deletes)" 0 "no run for an active job deleted anything"
is "$(fact ok_jobs_with_uploads_left)" 0 "a job whose cleanup ended ok has no unprotected upload left"
diags "upload left"
is "$(fact tasks_without_logged_final)" 0 "every task's final result is in $NS:results:log"
is "$(fact results_foreign)" 0 "the results log holds only our tasks"

# The chaos itself, so that a quiet run cannot pass for a rough one.
at_least "$KILLS" $((10 * SOAK)) "workers were killed ($KILLS kill -9)"
is "$REDIS_RESTARTS $REDIS_FAILS" "$SOAK 0" "Redis was killed and came back $SOAK time(s)"
is "$PG_STOPS $PG_FAILS" "$SOAK 0" "PostgreSQL was stopped and came back $SOAK time(s)"
is "$FREEZES" $((2 * SOAK)) "workers were frozen past their lease and thawed $FREEZES time(s)"
at_least "${REDELIVERED:-0}" 1 "killed workers' tasks were redelivered"
at_least "${FAULTS_FIRED:-0}" 1 "s3mem injected faults"

# --------------------------------------------------------------- figures
dropped=$(cat "${ALL_LOGS[@]}" | grep -c 'result dropped')
figures=$(grep '^JSON ' "$T/facts.txt" | cut -c6-)
now_ms
report=$("$PY" -c '
import json, sys
f = json.loads(sys.argv[1])
names = sys.argv[2::2]
vals = [int(v) if v.lstrip("-").isdigit() else v for v in sys.argv[3::2]]
f.update(zip(names, vals))
print(json.dumps(f, sort_keys=True))
' "$figures" seed "$SEED" soak "$SOAK" tasks "${#IDS[@]}" job_tasks "$NTASKS" \
  sweeps "$NSWEEPS" wall_ms "$RUN_MS" total_ms "$((NOW - T_START))" kills "$KILLS" \
  kills_in_sweeps "$KILLS_SWEEP" worker_ids "$((NEXT_ID - 1))" \
  redis_restarts "$REDIS_RESTARTS" redis_down_ms "$REDIS_DOWN_MS" \
  pg_stops "$PG_STOPS" pg_down_ms "$PG_DOWN_MS" freezes "$FREEZES" freezes_in_sweeps "$FREEZE_SWEEPS" \
  redeliveries "${REDELIVERED:-0}" \
  redelivery_dead "${REDELIVERY_DEAD:-0}" s3_requests "${S3_REQUESTS:-0}" \
  s3_faults "${FAULTS_FIRED:-0}" results_dropped "$dropped" passed "$((T_FAILED == 0))")
fig() { "$PY" -c 'import json,sys; v=json.loads(sys.argv[1])[sys.argv[2]]; print(v if not isinstance(v, dict) else ", ".join(f"{k} {n}" for k, n in v.items()) or "none")' "$report" "$1"; }
diag "---- figures (seed $SEED)"
diag "tasks: $(fig tasks) ($(fig job_tasks) job_cleanup, $(fig sweeps) retention_sweep); run $(((RUN_MS + 500) / 1000)) s, all in $(((NOW - T_START + 500) / 1000)) s"
diag "chaos: $(fig kills) kill -9 ($(fig kills_in_sweeps) aimed at sweeps), $(fig worker_ids) worker ids;" \
  "Redis down $(fig redis_down_ms) ms ($(fig redis_restarts)x), PostgreSQL down $(fig pg_down_ms) ms ($(fig pg_stops)x), $(fig freezes) freezes ($(fig freezes_in_sweeps) in a sweep);" \
  "S3 faults $(fig s3_faults) of $(fig s3_requests) requests"
diag "redeliveries $(fig redeliveries) (dead-lettered $(fig redelivery_dead)), retries $(fig retries), results dropped by a worker that lost its task $(fig results_dropped)"
diag "duplicate runs: $(fig tasks_run_twice) tasks ran to the end more than once ($(fig runs) final runs for $(fig tasks) tasks)"
diag "final statuses: $(fig statuses); sweeps: $(fig sweep_statuses), $(fig sweep_deleted) objects deleted by their final runs"
diag "dead letters by reason: $(fig dead_letters_by_reason)"
diag "results logged $(fig results_logged), of which final $(fig final_results_logged) for $(fig tasks) tasks (duplicate finals $(fig duplicate_final_results))"
diag "objects: $(fig objects_before) before, $(fig objects_after) after, $(fig objects_deleted) deleted; must-keep kept $(fig must_keep_kept) of $(fig must_keep)"
[ -z "${CHAOS_REPORT:-}" ] || echo "$report" >>"$CHAOS_REPORT"

if [ "$T_FAILED" -gt 0 ]; then
  for u in "${UNEXPECTED[@]+"${UNEXPECTED[@]}"}"; do diag "stopped on its own: $u"; done
  grep -l '"level":"error"' "${ALL_LOGS[@]}" 2>/dev/null | head -n 3 | while read -r f; do
    diag "----- $f (error lines and the 10 before each)"
    grep -B 10 '"level":"error"' "$f" | tail -n 40 | sed 's/^/# /'
  done
fi
echo "1..$T_N"
[ "$T_FAILED" -eq 0 ]
