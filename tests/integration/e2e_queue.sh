#!/usr/bin/env bash
# The queue protocol end to end through the two binaries and a real Redis:
# claiming, dead letters for every kind of bad message, results, leftovers
# taken back on start, --drain and SIGTERM.
. "$(dirname "$0")/lib.sh"
make_schema || exit 1

Q=$NS:queue:jobs
S=$NS:queue:sweeps
P=$NS:processing:$CLIPSWEEP_WORKER_ID

# Producer side, without a worker: the CLI pushes exactly one valid message.
out=$("$CLI" job 42 --json 2>"$T_TMP/cli.err")
ok $? "clipsweep job exits 0 without --wait"
is "$(echo "$out" | wc -l)" 1 "--json prints exactly one line"
is "$(echo "$out" | json type)" job_cleanup "the printed task is a job_cleanup"
is "$(echo "$out" | json job_id)" 42 "job_id is a string"
is "$(rcli LLEN "$Q")" 1 "one message in the jobs queue"
is "$(rcli LINDEX "$Q" 0)" "$out" "the queued message is the printed one"
rcli DEL "$Q" >/dev/null

"$CLI" job 'bad
id' >/dev/null 2>"$T_TMP/cli.err"
is "$?" 65 "a job id with a newline is refused before enqueuing (EX_DATAERR)"
is "$(rcli LLEN "$Q")" 0 "nothing was enqueued"
"$CLI" job >/dev/null 2>&1
is "$?" 64 "a missing job id is a usage error"
"$CLI" frobnicate >/dev/null 2>&1
is "$?" 64 "an unknown command is a usage error"
CLIPSWEEP_REDIS_URL=redis://127.0.0.1:1/0 "$CLI" job 1 >/dev/null 2>"$T_TMP/cli.err"
is "$?" 69 "an unreachable Redis is EX_UNAVAILABLE"
like "$(cat "$T_TMP/cli.err")" "127.0.0.1:1" "the error names the server"

# --wait with no worker: the last word is EX_TEMPFAIL, and the task stays.
"$CLI" job 77 --wait=1 >"$T_TMP/wait.out" 2>"$T_TMP/wait.err"
is "$?" 75 "no result within --wait is EX_TEMPFAIL"
like "$(cat "$T_TMP/wait.err")" "still queued or running" "and says so"
is "$(rcli LLEN "$Q")" 1 "the task is still queued"
rcli DEL "$Q" >/dev/null

# Bad messages, each with the dead-letter reason code it must get.
rcli LPUSH "$Q" 'not json' >/dev/null
rcli LPUSH "$Q" '{"type":"job_cleanup","id":"dup-1","job_id":"1","dry_run":false,"dry_run":true}' >/dev/null
rcli LPUSH "$Q" '{"type":"nuke","id":"unknown-1","job_id":"1"}' >/dev/null
rcli LPUSH "$Q" '{"type":"job_cleanup","id":"missing-1"}' >/dev/null
rcli LPUSH "$Q" '{"type":"job_cleanup","id":"typo-1","job_id":"1","dryrun":true}' >/dev/null
printf '{"type":"job_cleanup","job_id":"\xff\xfe"}' | rcli -x LPUSH "$Q" >/dev/null
head -c 70000 /dev/zero | tr '\0' ' ' | sed 's/^/{"type":"job_cleanup","job_id":"1"}/' | rcli -x LPUSH "$Q" >/dev/null
rcli LPUSH "$S" '{"type":"retention_sweep","id":"sweep-1","dry_run":true}' >/dev/null

"$CLI" watch --json >"$T_TMP/watch.out" 2>"$T_TMP/watch.err" &
WATCH=$!
T_PIDS+=("$WATCH")
wait_for grep -q watching "$T_TMP/watch.err" || sleep 0.5

start_worker --drain
ok $? "worker starts"
rc=0
wait "$WORKER_PID" || rc=$?
is "$rc" 0 "--drain exits 0 once the queues are empty"
head -n 1 "$T_TMP/worker.log" | grep -q '"msg":"started"'
ok $? "the first log line is 'started'"

is "$(rcli LLEN "$NS:dead")" 7 "seven dead letters"
is "$(rcli LLEN "$Q")" 0 "jobs queue empty"
is "$(rcli LLEN "$P")" 0 "processing list empty after acks"
codes=$(for i in $(seq 0 6); do rcli LINDEX "$NS:dead" "$i" | json reason.code; done | sort | tr '\n' ' ')
is "$codes" "duplicate_key invalid_json invalid_utf8 missing_field too_large unknown_field unknown_type " \
  "each bad message has its reason code"
for i in $(seq 0 6); do
  d=$(rcli LINDEX "$NS:dead" "$i")
  if [ "$(echo "$d" | json reason.code)" = invalid_utf8 ]; then
    raw=$(echo "$d" | json raw_base64 | base64 -d | od -An -tx1 | tr -d ' \n')
    like "$raw" "fffe" "non-UTF-8 raw bytes are kept as base64"
  fi
  if [ "$(echo "$d" | json reason.code)" = duplicate_key ]; then
    like "$(echo "$d" | json raw)" '"dry_run":true' "the raw message is kept"
    is "$(echo "$d" | json id)" dup-1 "the dead letter names the task id"
  fi
done
r=$(rcli GET "$NS:result:typo-1")
is "$(echo "$r" | json status)" failed "a bad message with an id gets a failed result"
is "$(echo "$r" | json errors.0.code)" unknown_field "with the reason"
r=$(rcli GET "$NS:result:sweep-1")
is "$(echo "$r" | json status)" ok "a dry-run sweep of an empty cube is ok"
is "$(echo "$r" | json total_objects_scanned)" 0 "and scanned nothing"
ttl=$(rcli TTL "$NS:result:sweep-1")
[ "$ttl" -gt 600000 ] && [ "$ttl" -le 604800 ]
ok $? "results are kept for 7 days (ttl $ttl)"
is "$(rcli XLEN "$NS:results:log")" 5 "five results in the stream"
watched() { [ "$(wc -l <"$T_TMP/watch.out")" -ge 5 ]; }
wait_for watched
is "$(wc -l <"$T_TMP/watch.out")" 5 "clipsweep watch printed every published result"
kill -INT "$WATCH"
rc=0
wait "$WATCH" || rc=$?
is "$rc" 0 "watch exits 0 on SIGINT"

# A crashed worker's claimed message is taken back on start.
rcli LPUSH "$P" '{"type":"retention_sweep","id":"left-1","dry_run":true}' >/dev/null
start_worker --drain
wait "$WORKER_PID"
is "$(rcli GET "$NS:result:left-1" | json status)" ok "a leftover message is run on start"
is "$(rcli LLEN "$P")" 0 "and removed from the processing list"

# SIGTERM: stop claiming and exit 0.
start_worker
sleep 0.3
stop_worker
is "$STOP_RC" 0 "SIGTERM exits 0"
grep -q '"msg":"stopped"' "$T_TMP/worker.log"
ok $? "the worker logs that it stopped"

# Two workers with the same id never share a processing list.
start_worker
first=$WORKER_PID
lock_held() { [ "$(rcli EXISTS "$NS:worker:$CLIPSWEEP_WORKER_ID")" = 1 ]; }
wait_for lock_held
ok $? "a running worker holds its id's lock"
"$WORKER" >"$T_TMP/second.log" 2>&1 &
second=$!
T_PIDS+=("$second")
wait_for grep -q 'in use by another live process' "$T_TMP/second.log"
ok $? "a second worker with the same id waits instead of sharing"
kill -TERM "$second"; wait "$second" 2>/dev/null
WORKER_PID=$first
stop_worker
is "$STOP_RC" 0 "first worker stops cleanly"

# Bad options.
"$WORKER" --concurrency 0 >/dev/null 2>&1
is "$?" 64 "--concurrency 0 is a usage error"
"$WORKER" --queues 'a b' >/dev/null 2>&1
is "$?" 64 "a bad queue name is a usage error"
env -u CLOUDCUBE_URL "$WORKER" >"$T_TMP/cfg.log" 2>&1
is "$?" 78 "missing CLOUDCUBE_URL is EX_CONFIG"
like "$(cat "$T_TMP/cfg.log")" CLOUDCUBE_URL "and says which variable"
CLOUDCUBE_URL="$S3_ENDPOINT/cloud-cube" "$WORKER" >"$T_TMP/cfg.log" 2>&1
is "$?" 78 "a URL without a cube prefix is refused"

done_testing
