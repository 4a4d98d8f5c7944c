#!/usr/bin/env bash
# Leases: a killed worker's tasks come back to their queue once its lease
# lapses; a live worker's lease outlasts slow work; a worker whose lease
# was taken over neither acks nor publishes; a message that keeps killing
# its workers is dead-lettered, not redelivered forever.
. "$(dirname "$0")/lib.sh"
make_schema || exit 1
export CLIPSWEEP_LEASE_SECONDS=2
start_blackhole || { echo "Bail out! no blackhole"; exit 1; }
HUNG_URL="http://127.0.0.1:$BH_PORT/cloud-cube/$CUBE"

sql "INSERT INTO $SCHEMA.jobs (id, status, original_key) VALUES
  (1, 'completed', 'up/1.mp4'), (2, 'completed', 'up/2.mp4')"
put_object "$CUBE/up/1.mp4"
put_object "$CUBE/up/2.mp4"

# 1. kill -9 while a task runs: its lease lapses and another worker runs it.
CLIPSWEEP_WORKER_ID=wa CLOUDCUBE_URL=$HUNG_URL start_worker ||
  { echo "Bail out! worker did not start"; exit 1; }
A=$WORKER_PID
rcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"k-1","job_id":"1"}' >/dev/null
claimed() { [ "$(rcli LLEN "$NS:processing:wa")" = 1 ]; }
wait_for claimed
ok $? "worker A claimed the task (it hangs on storage)"
lease=$(rcli ZSCORE "$NS:leases" wa)
now=$(rcli TIME | head -n 1)
ok "$([ -n "$lease" ] && [ "${lease%.*}" -gt $((now * 1000)) ] && echo 0 || echo 1)" \
  "A holds a lease in $NS:leases that has not expired"
kill -9 "$A"; wait "$A" 2>/dev/null
CLIPSWEEP_WORKER_ID=wb start_worker
B=$WORKER_PID
done1() { [ "$(rcli GET "$NS:result:k-1" | json status)" = ok ]; }
wait_for done1
ok $? "worker B ran the task after A's lease lapsed"
is "$(rcli LLEN "$NS:processing:wa")" 0 "A's processing list is empty"
is "$(rcli ZSCORE "$NS:leases" wa)" "" "A's lease is gone"
is "$(rcli EXISTS "$NS:worker:wa")" 0 "and so is A's worker id lock"
is "$(rcli HGET "$NS:stats" redelivered)" 1 "the redelivery is counted"
like "$(grep 'lease expired' "$T_TMP/worker.log")" '"workers":"wa"' \
  "B logs whose tasks it returned"
is "$(list_keys "$CUBE/up/1")" "" "the upload was deleted"
WORKER_PID=$B
stop_worker

# 2. A live worker keeps its lease however long a task takes.
: >"$T_TMP/worker.log"
CLIPSWEEP_WORKER_ID=wa CLOUDCUBE_URL=$HUNG_URL start_worker
A=$WORKER_PID
rcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"k-2","job_id":"2"}' >/dev/null
wait_for claimed
CLIPSWEEP_WORKER_ID=wb start_worker
B=$WORKER_PID
sleep 5 # more than twice the lease
is "$(rcli LLEN "$NS:processing:wa")" 1 "after 5 s (lease 2 s) the task is still A's"
is "$(rcli HGET "$NS:stats" redelivered)" 1 "and B's reaper left it alone"

# 3. A stalls (SIGSTOP) past its lease: B's reaper returns the task and B
# runs it; A, resumed, neither acks nor publishes for it.
kill -STOP "$A"
done2() { [ "$(rcli GET "$NS:result:k-2" | json status)" = ok ]; }
wait_for done2
ok $? "B ran A's task while A was stopped"
kill -CONT "$A"
kill "$BH_PID"; wait "$BH_PID" 2>/dev/null # A's storage request fails now
wait_for grep -q 'no longer ours' "$T_TMP/worker.log"
ok $? "A drops its result: the task is no longer its own"
sleep 0.5
is "$(rcli GET "$NS:result:k-2" | json status)" ok "B's result stands; A published nothing over it"
is "$(rcli ZCARD "$NS:scheduled")" 0 "A scheduled no retry"
is "$(rcli LLEN "$NS:queue:jobs")" 0 "and returned nothing to the queue"
is "$(rcli XLEN "$NS:results:log")" 2 "the results log holds one result per task"
WORKER_PID=$B
stop_worker
WORKER_PID=$A
stop_worker
is "$STOP_RC" 0 "A still stops cleanly"

# 4. A message that keeps killing its workers: dead-lettered after
# CLIPSWEEP_MAX_ATTEMPTS redeliveries, with a final failed result.
rcli SET "$NS:redelivered:poison-1" 3 >/dev/null
rcli LPUSH "$NS:processing:ghost" \
  '{"type":"job_cleanup","id":"poison-1","job_id":"1"}' >/dev/null
rcli ZADD "$NS:leases" 1 ghost >/dev/null
CLIPSWEEP_MAX_ATTEMPTS=3 start_worker
gone() { [ "$(rcli LLEN "$NS:processing:ghost")" = 0 ]; }
wait_for gone
ok $? "the reaper took the message from the dead worker"
r=$(rcli GET "$NS:result:poison-1")
is "$(echo "$r" | json status)" failed "its result is failed"
is "$(echo "$r" | json errors.0.code)" redelivery_limit "with redelivery_limit"
d=$(rcli LINDEX "$NS:dead" 0)
is "$(echo "$d" | json reason.code)" redelivery_limit "it is in the dead-letter list"
is "$(echo "$d" | json id)" poison-1 "with its id"
is "$(rcli LLEN "$NS:queue:jobs")" 0 "and not back in the queue"
is "$(rcli HGET "$NS:stats" redelivery_dead)" 1 "counted in $NS:stats"
stop_worker

# 5. A restarted worker returns what its earlier run left, counted too.
rcli LPUSH "$NS:processing:$CLIPSWEEP_WORKER_ID" \
  '{"type":"job_cleanup","id":"left-2","job_id":"999"}' >/dev/null
start_worker --drain
wait "$WORKER_PID"
is "$(rcli GET "$NS:result:left-2" | json status)" failed "a restart runs its leftover"
is "$(rcli HGET "$NS:stats" redelivered)" 3 "and counts it as a redelivery"

# Bad lease settings are refused with the variable's name.
for v in 0 3601 x; do
  out=$(CLIPSWEEP_LEASE_SECONDS=$v "$WORKER" --drain 2>&1)
  rc=$?
  is "$rc" 78 "CLIPSWEEP_LEASE_SECONDS=$v: exit 78 (EX_CONFIG)"
  like "$out" CLIPSWEEP_LEASE_SECONDS "and the error names the variable"
done
done_testing
