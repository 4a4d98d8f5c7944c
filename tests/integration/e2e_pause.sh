#!/usr/bin/env bash
# The kill switch: clipsweep pause holds every delete batch of running
# workers (a job's and a sweep's) before it is sent, clipsweep resume lets
# them go on; a paused worker stopped by SIGTERM hands its tasks back
# having deleted nothing.  clipsweep cancel stops a sweep (whole or
# sharded) at its next check.  S3 is checked with aws s3api.
# shellcheck disable=SC2317 # (helpers called through wait_for)
. "$(dirname "$0")/lib.sh"
make_schema || exit 1
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key) VALUES
  (1, 'completed', 'public/uploads/1/original.mp4', 'public/uploads/1/audio.mp3'),
  (2, 'completed', 'public/uploads/2/original.mp4', NULL)" || exit 1
put_objects "$CUBE/public/uploads/1/original.mp4" "$CUBE/public/uploads/1/audio.mp3" \
  "$CUBE/public/uploads/2/original.mp4" "$CUBE/orphans/a.bin" "$CUBE/orphans/b.bin"
n_keys() { list_keys "$CUBE/$1" | grep -c .; }

start_worker --concurrency 4 --drain-timeout 2 --metrics-listen 127.0.0.1:0
ok $? "a worker starts"
ADDR=$(grep -m1 '"msg":"started"' "$T_TMP/worker.log" | json metrics)
paused_metric() { curl -s "http://$ADDR/metrics" | awk '$1 == "clipsweep_paused" { print $2 }'; }

out=$("$CLI" pause --reason "incident 42" 2>&1)
is "$?" 0 "clipsweep pause exits 0"
like "$out" "paused" "and says so"
v=$(rcli GET "$NS:paused")
is "$(echo "$v" | json reason)" "incident 42" "$NS:paused holds the reason"
like "$(echo "$v" | json by)" "@" "and who"
like "$("$CLI" stats)" "PAUSED            since" "clipsweep stats shows it"
is "$("$CLI" stats --json | json paused.reason)" "incident 42" "and stats --json"

# A job while paused: its HEADs run, its delete waits.
"$CLI" job 1 --json >/dev/null
sleep 2.5
is "$(n_keys public/uploads/1/)" 2 "paused: job 1's two files are still there after 2.5 s"
is "$(rcli EXISTS "$NS:result:$(rcli LRANGE "$NS:processing:w-$T_ID" 0 -1 | head -n 1 | json id)")" 0 \
  "and it has no result yet"
like "$(grep -c 'paused by an operator' "$T_TMP/worker.log")" 1 "the worker logged the pause once"
is "$(paused_metric)" 1 "clipsweep_paused is 1"

# A sweep while paused: it plans and waits at its first delete (force:
# the two orphans are all there is under its prefix, over the delete ratio).
sweep_id=pause-sweep-1
rcli LPUSH "$NS:queue:sweeps" "{\"type\":\"retention_sweep\",\"id\":\"$sweep_id\",\"min_age_hours\":0,\"prefix\":\"orphans/\",\"force\":true}" >/dev/null
sleep 2.5
is "$(n_keys orphans/)" 2 "paused: the sweep deleted nothing after 2.5 s"
is "$(rcli EXISTS "$NS:result:$sweep_id")" 0 "and has no result"

out=$("$CLI" resume 2>&1)
is "$?" 0 "clipsweep resume exits 0"
like "$out" "resumed" "and says so"
is "$(rcli EXISTS "$NS:paused")" 0 "the key is gone"
sweep_done() { [ -n "$(rcli GET "$NS:result:$sweep_id")" ]; }
wait_for sweep_done
ok $? "the sweep finished after resume"
is "$(rcli GET "$NS:result:$sweep_id" | json status)" ok "with status ok"
is "$(n_keys orphans/)" 0 "the orphans are gone"
job_gone() { [ "$(n_keys public/uploads/1/)" = 0 ]; }
wait_for job_gone
ok $? "job 1's files are gone"
like "$(grep -c 'resumed: deletes go on' "$T_TMP/worker.log")" 1 "the worker logged the resume"
is "$(paused_metric)" 0 "clipsweep_paused is 0"
is "$("$CLI" resume)" "not paused" "resume when not paused says so"

# Paused by hand (redis-cli), then SIGTERM: the job goes back untouched.
rcli SET "$NS:paused" 1 >/dev/null
like "$("$CLI" stats)" "PAUSED" "a switch set by hand counts too"
"$CLI" job 2 --json >/dev/null
held() { [ "$(rcli LLEN "$NS:processing:w-$T_ID")" = 1 ]; }
wait_for held
ok $? "job 2 is claimed"
sleep 1
kill -TERM "$WORKER_PID"
rc=0
wait "$WORKER_PID" || rc=$?
is "$rc" 0 "the paused worker stops on SIGTERM after its drain timeout"
is "$(rcli LLEN "$NS:queue:jobs")" 1 "job 2 is back in its queue"
is "$(n_keys public/uploads/2/)" 1 "and its file is still there"
rcli DEL "$NS:paused" >/dev/null
CLIPSWEEP_METRICS_LISTEN=none timeout 60 "$WORKER" --drain >"$T_TMP/worker2.log" 2>&1
is "$?" 0 "unpaused, a worker drains the queue"
is "$(n_keys public/uploads/2/)" 0 "and job 2's file is deleted"

# --- clipsweep cancel.
put_objects "$CUBE/orphans/c1.bin" "$CUBE/orphans/c2.bin" "$CUBE/orphans/c3.bin"
start_worker --concurrency 4 --drain-timeout 2
ok $? "a worker starts again"
# Held at the kill switch, then cancelled: the gate says cancelled.
rcli SET "$NS:paused" 1 >/dev/null
rcli LPUSH "$NS:queue:sweeps" '{"type":"retention_sweep","id":"cancel-1","min_age_hours":0,"prefix":"orphans/","force":true}' >/dev/null
sleep 2
out=$("$CLI" cancel cancel-1 2>&1)
is "$?" 0 "clipsweep cancel cancel-1 exits 0"
like "$out" "cancel requested ($NS:cancel:cancel-1)" "naming the key it set"
like "$(rcli GET "$NS:cancel:cancel-1" | json by)" "@" "which says who"
ttl=$(rcli TTL "$NS:cancel:cancel-1")
[ "$ttl" -gt 600000 ]
ok $? "and expires with the results (TTL $ttl s)"
cancelled() { [ -n "$(rcli GET "$NS:result:cancel-1")" ]; }
wait_for cancelled
ok $? "the paused sweep ended"
r=$(rcli GET "$NS:result:cancel-1")
is "$(echo "$r" | json status) $(echo "$r" | json errors.0.code)" "failed cancelled" \
  "failed, with error code cancelled (nothing was deleted)"
is "$(n_keys orphans/)" 3 "its three orphans are still there"
rcli DEL "$NS:paused" >/dev/null
out=$("$CLI" cancel cancel-1 2>&1)
is "$?" 1 "cancelling a sweep that has ended exits 1"
like "$out" "has already ended (failed)" "saying how it ended"

out=$("$CLI" cancel no-such-sweep 2>&1)
is "$?" 1 "cancelling an id no worker has exits 1"
like "$out" "no sweep 'no-such-sweep' is queued, running or waiting to retry" "saying so"
is "$(rcli EXISTS "$NS:cancel:no-such-sweep")" 0 "and sets nothing"

# A sharded sweep, held at the switch and cancelled: every range stops.
rcli SET "$NS:paused" 1 >/dev/null
rcli LPUSH "$NS:queue:sweeps" '{"type":"retention_sweep","id":"cancel-2","min_age_hours":0,"prefix":"orphans/","force":true,"shards":2}' >/dev/null
sleep 1
"$CLI" cancel cancel-2 >"$T_TMP/cancel2.out" 2>&1
is "$?" 0 "clipsweep cancel of the sharded sweep exits 0"
rcli DEL "$NS:paused" >/dev/null
cancelled2() { [ -n "$(rcli GET "$NS:result:cancel-2")" ]; }
wait_for cancelled2
ok $? "the sharded sweep ended"
r=$(rcli GET "$NS:result:cancel-2")
is "$(echo "$r" | json status)" failed "failed"
like "$r" '"code":"cancelled"' "with cancelled among its errors"
is "$(n_keys orphans/)" 3 "nothing deleted"
"$CLI" cancel >/dev/null 2>&1
is "$?" 64 "cancel without an id: 64"
stop_worker
is "$STOP_RC" 0 "the worker stops"
done_testing
