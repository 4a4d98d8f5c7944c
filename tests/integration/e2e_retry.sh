#!/usr/bin/env bash
# Retries: a message that races the app's commit is retried until the row
# appears; one that never becomes ready, or whose storage stays down, is
# given up with retries_exhausted and dead-lettered with its history.
. "$(dirname "$0")/lib.sh"
make_schema || exit 1
export CLIPSWEEP_RETRY_BASE_MS=100

# 1. The job row is committed after the message arrives.
export CLIPSWEEP_NOT_READY_RETRY_SECONDS=60
start_worker --concurrency 2 || { echo "Bail out! worker did not start"; exit 1; }
put_object "$CUBE/up/50.mp4"
"$CLI" job 50 --wait=30 --json >"$T_TMP/race.out" 2>"$T_TMP/race.err" &
CLI_PID=$!
retrying() {
  rcli --scan --pattern "$NS:result:*" | while read -r k; do rcli GET "$k"; done |
    grep -q '"status":"retrying"'
}
wait_for retrying
ok $? "a job that is not in the database yet gets an interim 'retrying' result"
r=$(rcli --scan --pattern "$NS:result:*" | head -n 1 | xargs -r -I{} redis-cli -u "$REDIS_URL" GET {})
is "$(echo "$r" | json errors.0.code)" job_not_found "with the reason"
like "$(echo "$r" | json next_attempt_at)" "T" "and the time of the next attempt"
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key) VALUES (50, 'completed', 'up/50.mp4')"
rc=0
wait "$CLI_PID" || rc=$?
is "$rc" 0 "clipsweep job --wait exits 0 once a retry succeeds"
is "$(json status <"$T_TMP/race.out")" ok "the final result is ok"
is "$(json deleted_count <"$T_TMP/race.out")" 1 "and the upload was deleted"
like "$(cat "$T_TMP/race.err")" "retrying" "the CLI showed the interim status"
is "$(rcli ZCARD "$NS:scheduled")" 0 "nothing is left scheduled"
stop_worker

# 2. A job that never appears: given up after the not-ready window.
export CLIPSWEEP_NOT_READY_RETRY_SECONDS=1
start_worker
rcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"never-1","job_id":"51"}' >/dev/null
final() { one_of_status=$(rcli GET "$NS:result:$1" | json status); [ "$one_of_status" = failed ]; }
wait_for final never-1
ok $? "a job that never appears ends failed"
r=$(rcli GET "$NS:result:never-1")
like "$(echo "$r" | json errors)" retries_exhausted "with retries_exhausted"
d=$(rcli LINDEX "$NS:dead" 0)
is "$(echo "$d" | json reason.code)" retries_exhausted "it is dead-lettered"
is "$(echo "$d" | json id)" never-1 "under its id"
n=$(echo "$d" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["history"]))')
[ "$n" -ge 2 ]
ok $? "with the history of its attempts ($n)"
is "$(echo "$d" | json history.0.code)" job_not_found "each with its error"
stop_worker

# 3. Storage down: transient, given up after CLIPSWEEP_MAX_ATTEMPTS runs.
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key) VALUES (52, 'completed', 'up/52.mp4')"
CLOUDCUBE_URL="http://127.0.0.1:1/cloud-cube/$CUBE" CLIPSWEEP_MAX_ATTEMPTS=3 start_worker
rcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"down-1","job_id":"52"}' >/dev/null
wait_for final down-1
ok $? "storage that stays down ends the task failed"
d=$(rcli LINDEX "$NS:dead" 0)
is "$(echo "$d" | json id)" down-1 "it is dead-lettered"
is "$(echo "$d" | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["history"]))')" 3 \
  "after exactly three attempts"
is "$(echo "$d" | json history.2.code)" storage_unavailable "each storage_unavailable"
stop_worker

# 4. --drain does not wait for the schedule.
export CLIPSWEEP_NOT_READY_RETRY_SECONDS=600 CLIPSWEEP_RETRY_BASE_MS=60000
rcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"later-1","job_id":"53"}' >/dev/null
t0=$(date +%s)
start_worker --drain
wait "$WORKER_PID"
is "$?" 0 "--drain exits 0 with a retry scheduled"
[ $(( $(date +%s) - t0 )) -lt 10 ]
ok $? "without waiting for it"
is "$(rcli ZCARD "$NS:scheduled")" 1 "the retry stays scheduled"
done_testing
