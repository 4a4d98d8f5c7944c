#!/usr/bin/env bash
# The operator endpoint: /metrics in the Prometheus text format (checked
# line by line against the format's grammar, every family present from
# start-up, counters following real work), /livez, /readyz following
# Redis, PostgreSQL and S3, and a port that cannot be bound refusing to
# start (EX_CONFIG, naming it).
# shellcheck disable=SC2317 # (helpers called through wait_for)
. "$(dirname "$0")/lib.sh"
make_schema || exit 1

get() { curl -s -o "$T_TMP/body" -w '%{http_code}' --max-time 10 "http://$ADDR$1"; }
metric() { # SERIES: its value in the last scrape
  awk -v s="$1" '$1 == s { print $2 }' "$T_TMP/metrics"
}
scrape() { get /metrics >/dev/null && cp "$T_TMP/body" "$T_TMP/metrics"; }

start_worker --concurrency 4 --metrics-listen 127.0.0.1:0
ok $? "the worker starts with --metrics-listen 127.0.0.1:0"
ADDR=$(grep -m1 '"msg":"started"' "$T_TMP/worker.log" | json metrics)
like "$ADDR" "127.0.0.1:" "the started line names the address bound: $ADDR"

is "$(get /livez) $(cat "$T_TMP/body")" "200 ok" "/livez: 200 ok"
ready() { [ "$(get /readyz)" = 200 ]; }
wait_for ready
ok $? "/readyz: 200 once the worker is up"
is "$(cat "$T_TMP/body")" "ready
redis: ok
postgresql: ok
storage: ok" "/readyz names each check"
is "$(get /nothing-here)" 404 "an unknown path is 404"
is "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$ADDR/metrics")" 501 \
  "POST is refused (501, as libevent answers a method it does not serve)"

is "$(get /metrics)" 200 "/metrics: 200"
cp "$T_TMP/body" "$T_TMP/metrics"
like "$(curl -s -D - -o /dev/null "http://$ADDR/metrics" | tr -d '\r')" \
  "Content-Type: text/plain; version=0.0.4" "with the Prometheus text content type"
# The text format's grammar: comments, or name{labels} value.
bad=$(grep -v -E '^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? ([-+]?[0-9.eE+-]+|NaN|[+-]Inf))$' "$T_TMP/metrics" | head -n 3)
is "$bad" "" "every line follows the exposition format"
types=$(grep -c '^# TYPE' "$T_TMP/metrics")
is "$(grep '^# TYPE' "$T_TMP/metrics" | awk '{print $3}' | sort -u | wc -l)" "$types" \
  "each family is declared once ($types families)"
for f in clipsweep_tasks_total clipsweep_task_duration_seconds \
  clipsweep_objects_deleted_total clipsweep_bytes_deleted_total \
  clipsweep_storage_requests_total clipsweep_queue_depth \
  clipsweep_inflight_tasks clipsweep_last_sweep_success_timestamp_seconds \
  clipsweep_build_info; do
  grep -q "^# TYPE $f " "$T_TMP/metrics"
  ok $? "family $f is exported from start-up"
done
n=$(grep -c '^clipsweep_tasks_total{' "$T_TMP/metrics")
is "$n" 24 "clipsweep_tasks_total has a zero series for each of 4 types x 6 statuses"
is "$(metric 'clipsweep_tasks_total{type="job_cleanup",status="ok"}')" 0 "no job done yet"
is "$(metric 'clipsweep_last_sweep_success_timestamp_seconds')" 0.000 "no sweep yet"
like "$(metric 'clipsweep_build_info{version="'"$("$WORKER" --version | awk '{print $2}')"'"}')" 1 \
  "clipsweep_build_info carries the version"
# The histogram's buckets are cumulative and end with +Inf = count.
hist_ok() {
  awk -F'[{} ]' '/^clipsweep_task_duration_seconds_bucket\{type="job_cleanup"/ {
      if ($NF + 0 < prev) bad = 1; prev = $NF + 0; last = $NF }
    /^clipsweep_task_duration_seconds_count\{type="job_cleanup"\}/ { count = $NF }
    END { exit !(bad == 0 && last == count) }' "$T_TMP/metrics"
}

# Work: two jobs (one deletes two files of 100 and 200 bytes), a dead
# letter, a sweep.
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key) VALUES
  (1, 'completed', 'public/uploads/1/original.mp4', 'public/uploads/1/audio.mp3'),
  (2, 'rendering', 'public/uploads/2/original.mp4', NULL)" || exit 1
put_object "$CUBE/public/uploads/1/original.mp4" "$(head -c 100 /dev/zero | tr '\0' a)"
put_object "$CUBE/public/uploads/1/audio.mp3" "$(head -c 200 /dev/zero | tr '\0' b)"
timeout 60 "$CLI" job 1 --wait=30 --json >"$T_TMP/job1.out" 2>&1
is "$(json status <"$T_TMP/job1.out") $(json deleted_count <"$T_TMP/job1.out")" "ok 2" "job 1 deleted two files"
timeout 60 "$CLI" job 2 --wait=30 --json >"$T_TMP/job2.out" 2>&1
is "$(json status <"$T_TMP/job2.out")" failed "job 2 failed (clips not finished)"
rcli LPUSH "$NS:queue:jobs" 'not json' >/dev/null
sweep '"dry_run":false,"min_age_hours":0'
is "$(f status)" ok "a sweep ends ok"
counted() {
  scrape && [ "$(metric 'clipsweep_tasks_total{type="invalid",status="dead_letter"}')" = 1 ]
}
wait_for counted
ok $? "the dead letter is counted"
is "$(metric 'clipsweep_tasks_total{type="job_cleanup",status="ok"}')" 1 "one job ok"
is "$(metric 'clipsweep_tasks_total{type="job_cleanup",status="failed"}')" 1 "one job failed"
is "$(metric 'clipsweep_tasks_total{type="retention_sweep",status="ok"}')" 1 "one sweep ok"
is "$(metric 'clipsweep_objects_deleted_total')" 2 "two objects deleted (the sweep found none left)"
is "$(metric 'clipsweep_bytes_deleted_total')" 300 "300 bytes deleted"
is "$(metric 'clipsweep_task_duration_seconds_count{type="job_cleanup"}')" 2 "two job durations observed"
hist_ok
ok $? "the job_cleanup histogram is cumulative and ends at its count"
ts=$(metric 'clipsweep_last_sweep_success_timestamp_seconds')
awk -v t="$ts" -v now="$(date +%s)" 'BEGIN { exit !(t > now - 60 && t <= now + 1) }'
ok $? "the last sweep's success time is now ($ts)"
is "$(metric 'clipsweep_storage_requests_total{op="head",code="200"}')" 2 "two HEADs answered 200"
is "$(metric 'clipsweep_storage_requests_total{op="delete",code="200"}')" 1 "one DeleteObjects answered 200"
[ "$(metric 'clipsweep_storage_requests_total{op="list",code="200"}')" -ge 2 ]
ok $? "at least two listings (the sweep's passes and /readyz)"

depth0() { scrape && [ "$(metric 'clipsweep_queue_depth{queue="jobs"}')" = 0 ]; }
wait_for depth0
ok $? "clipsweep_queue_depth{queue=\"jobs\"} is 0 once Redis answered (refreshed every 5 s)"

# /readyz follows the servers: the database unreachable, through a second
# worker with one slot.  Its one slot waits for the database, so of three
# jobs queued, two stay in the queue.
stop_worker
is "$STOP_RC" 0 "the worker stops"
CLIPSWEEP_DATABASE_URL="postgresql://postgres@127.0.0.1:1/x" "$WORKER" \
  --concurrency 1 --metrics-listen 127.0.0.1:0 >"$T_TMP/worker-nodb.log" 2>&1 &
pid=$!
T_PIDS+=("$pid")
wait_for grep -q '"msg":"started"' "$T_TMP/worker-nodb.log"
ADDR=$(grep -m1 '"msg":"started"' "$T_TMP/worker-nodb.log" | json metrics)
for i in 1 2 3; do
  rcli LPUSH "$NS:queue:jobs" "{\"type\":\"job_cleanup\",\"id\":\"q$i\",\"job_id\":\"1\"}" >/dev/null
done
depth2() {
  scrape && [ "$(metric 'clipsweep_queue_depth{queue="jobs"}')" = 2 ] &&
    [ "$(metric 'clipsweep_inflight_tasks')" = 1 ]
}
wait_for depth2
ok $? "clipsweep_queue_depth{queue=\"jobs\"} 2 and clipsweep_inflight_tasks 1"
code=$(get /readyz)
is "$code" 503 "/readyz: 503 with the database unreachable"
like "$(cat "$T_TMP/body")" "postgresql: no answer within 2000 ms" "naming the check that failed"
like "$(cat "$T_TMP/body")" "redis: ok" "and the others ok"
is "$(get /livez)" 200 "/livez is still 200 (the loop turns)"
kill -TERM "$pid"
wait "$pid"
is "$?" 0 "that worker stops"

# A port in use: EX_CONFIG, naming it.
coproc HOLD { /usr/bin/python3 -c 'import socket, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(60)'; }
T_PIDS+=("$HOLD_PID")
read -r port <&"${HOLD[0]}"
"$WORKER" --metrics-listen "127.0.0.1:$port" >"$T_TMP/worker-busy.log" 2>&1
is "$?" 78 "a metrics port in use: exit 78 (EX_CONFIG)"
like "$(cat "$T_TMP/worker-busy.log")" "cannot listen on 127.0.0.1:$port" "naming the address"
"$WORKER" --metrics-listen "localhost:99999" >"$T_TMP/worker-bad.log" 2>&1
is "$?" 78 "a malformed address: exit 78"
like "$(cat "$T_TMP/worker-bad.log")" "'localhost:99999' is not HOST:PORT" "naming it"
CLIPSWEEP_METRICS_LISTEN="127.0.0.1:$port" "$WORKER" >"$T_TMP/worker-env.log" 2>&1
is "$?" 78 "CLIPSWEEP_METRICS_LISTEN is the default address"
CLIPSWEEP_METRICS_LISTEN="127.0.0.1:$port" "$WORKER" --metrics-listen none --drain \
  >"$T_TMP/worker-none.log" 2>&1
is "$?" 0 "--metrics-listen none turns it off (and wins over the variable)"
like "$(grep -m1 started "$T_TMP/worker-none.log")" '"metrics":"none"' "the started line says none"
done_testing
