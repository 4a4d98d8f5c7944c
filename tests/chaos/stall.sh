#!/usr/bin/env bash
# The loop never blocks: PostgreSQL, then S3, then Redis are frozen with
# SIGSTOP for 5 s each while per-job tasks flow.  While one server is
# frozen the worker goes on with the others (claims from Redis while
# PostgreSQL is frozen, deletes on S3 while Redis is frozen), its event
# loop stays on time, and once each server thaws every task completes.
#
# It freezes servers, so it starts its own: Redis, PostgreSQL and s3mem
# (without keys: it checks no signature, the other tests do that).
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/lib/services.sh
. "$ROOT/scripts/lib/services.sh"
BIN=${CLIPSWEEP_BUILD:?CLIPSWEEP_BUILD must point at the build directory}
svc_init >/dev/null
{ svc_start_redis && svc_start_postgres; } >/dev/null 2>&1 ||
  { echo "Bail out! cannot start Redis and PostgreSQL"; exit 1; }
SVC_S3_DIR=$SVC_DIR/s3mem
mkdir -p "$SVC_S3_DIR"
export AWS_ACCESS_KEY_ID=STALLKEY AWS_SECRET_ACCESS_KEY=stall-secret
"$BIN/tests/s3mem/s3mem" --listen 127.0.0.1:0 --ready-file "$SVC_S3_DIR/port" \
  --bucket cloud-cube >"$SVC_DIR/logs/s3mem.log" 2>&1 &
S3_PID=$!
for _ in $(seq 1 100); do [ -s "$SVC_S3_DIR/port" ] && break; sleep 0.05; done
export S3_ENDPOINT="http://127.0.0.1:$(cat "$SVC_S3_DIR/port")"

# shellcheck source=tests/integration/lib.sh
. "$ROOT/tests/integration/lib.sh"
trap 'kill -CONT "${FROZEN[@]}" 2>/dev/null; kill "$S3_PID" 2>/dev/null; cleanup; _svc_on_exit' EXIT
FROZEN=()
make_schema || { echo "Bail out! no schema"; exit 1; }

REDIS_PID=$(rcli INFO server | tr -d '\r' | sed -n 's/^process_id://p')
PG_DATA=$(sql "SHOW data_directory")
PG_PID=$(head -n 1 "$PG_DATA/postmaster.pid")
pg_pids() { echo "$PG_PID" $(pgrep -P "$PG_PID"); }

# Jobs 1..N: an upload and its audio each; the worker deletes both.
N=240
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key)
     SELECT g, 'completed', 'up/' || g || '.mp4', 'audio/' || g || '.mp3'
     FROM generate_series(1, $N) g"
seed=$T_TMP/seed
for i in $(seq 1 $N); do
  printf '%s/up/%d.mp4\t10\t1000000000\n%s/audio/%d.mp3\t10\t1000000000\n' \
    "$CUBE" "$i" "$CUBE" "$i"
done >"$seed"
curl -sf --data-binary @"$seed" "$S3_ENDPOINT/cloud-cube?s3mem-seed=" >/dev/null ||
  { echo "Bail out! cannot seed s3mem"; exit 1; }
left() { list_keys | grep -c . ; }
is "$(left)" $((2 * N)) "seeded $((2 * N)) objects"

start_worker --concurrency 16 || { echo "Bail out! worker did not start"; exit 1; }
NEXT=1
push() { # COUNT: the next COUNT jobs
  local i args=()
  for i in $(seq "$NEXT" $((NEXT + $1 - 1))); do
    args+=("{\"type\":\"job_cleanup\",\"id\":\"stall-$i\",\"job_id\":\"$i\"}")
  done
  rcli LPUSH "$NS:queue:jobs" "${args[@]}" >/dev/null
  NEXT=$((NEXT + $1))
}
results() { rcli --scan --pattern "$NS:result:*" | grep -c . ; }
all_done() { [ "$(results)" -ge $((NEXT - 1)) ] && [ "$(rcli LLEN "$NS:queue:jobs")" = 0 ] &&
  [ "$(rcli LLEN "$NS:processing:$CLIPSWEEP_WORKER_ID")" = 0 ]; }

push 40
wait_for all_done
ok $? "40 jobs done before any freeze"

# 1. PostgreSQL frozen: the worker still claims (Redis) what it can run.
FROZEN=($(pg_pids))
kill -STOP "${FROZEN[@]}"
push 40
sleep 1
claimed=$(rcli LLEN "$NS:processing:$CLIPSWEEP_WORKER_ID")
is "$claimed" 16 "PostgreSQL frozen: the worker claimed up to its concurrency (16)"
sleep 4
kill -CONT "${FROZEN[@]}"
FROZEN=()
wait_for all_done
ok $? "PostgreSQL thawed after 5 s: the waiting jobs completed"

# 2. S3 frozen: lookups in PostgreSQL go on; the deletes wait.
FROZEN=("$S3_PID")
kill -STOP "$S3_PID"
t0=$(sql "SELECT now()")
push 40
sleep 1
queried=$(sql "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()
  AND datname = current_database() AND query_start > '$t0'")
ok "$([ "$queried" -ge 1 ] && echo 0 || echo 1)" \
  "S3 frozen: the worker went on querying PostgreSQL ($queried connections since)"
sleep 4
kill -CONT "$S3_PID"
FROZEN=()
wait_for all_done
ok $? "S3 thawed after 5 s: the waiting jobs completed"

# 3. Redis frozen: delete requests already sent still complete on S3.  A
# 1.5 s delay on DeleteObjects keeps 16 tasks in flight when Redis freezes;
# a second after they were claimed, their batches have read the kill switch
# (<ns>:paused, in Redis) and are out.  (A batch that has not read it
# waits for Redis: no delete is sent without the switch's answer.)
set_delay() {
  curl -sf --data-binary "$1" "$S3_ENDPOINT/?s3mem-faults=" >/dev/null
}
set_delay "op=delete-objects delay=1500" || { echo "Bail out! s3mem faults"; exit 1; }
n0=$(left)
push 40
inflight() { [ "$(rcli LLEN "$NS:processing:$CLIPSWEEP_WORKER_ID")" -ge 16 ]; }
wait_for inflight
sleep 1
FROZEN=("$REDIS_PID")
kill -STOP "$REDIS_PID"
sleep 3
n1=$(left)
ok "$([ $((n0 - n1)) -ge 32 ] && echo 0 || echo 1)" \
  "Redis frozen: tasks in flight deleted $((n0 - n1)) objects meanwhile"
sleep 2
kill -CONT "$REDIS_PID"
FROZEN=()
set_delay ""
wait_for all_done
ok $? "Redis thawed after 5 s: every job completed"

statuses=$(for k in $(rcli --scan --pattern "$NS:result:*"); do rcli GET "$k" | json status; done | sort | uniq -c | tr -s ' ' | tr '\n' ',')
is "$statuses" " $((NEXT - 1)) ok," "all $((NEXT - 1)) results are ok"
is "$(left)" $((2 * (N - NEXT + 1))) "exactly their objects are gone"
check "the worker is still running" kill -0 "$WORKER_PID"
stop_worker
is "$STOP_RC" 0 "and stops cleanly"
line=$(grep '"msg":"stopped"' "$T_TMP/worker.log")
max=$(echo "$line" | json max_loop_lag_ms)
late=$(echo "$line" | json loop_ticks_late)
diag "loop lag: max $max ms; ticks later than 50 ms: $late"
ok "$([ -n "$max" ] && [ "$max" -lt 250 ] && echo 0 || echo 1)" \
  "the loop never stalled: its longest lag was $max ms (a blocking call would be 5000)"
slow=${late%/*} ticks=${late#*/}
ok "$([ -n "$ticks" ] && [ "$ticks" -gt 200 ] && [ $((slow * 100)) -le "$ticks" ] && echo 0 || echo 1)" \
  "at most 1% of its 50 ms ticks were late by more than 50 ms ($late)"
done_testing
