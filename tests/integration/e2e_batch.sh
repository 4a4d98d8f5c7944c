#!/usr/bin/env bash
# Jobs in flight together share their database lookups and their
# DeleteObjects requests, and each still gets exactly the result it would
# get alone: ids the batch cannot answer for certain ("0101", "abc", an id
# out of range) are looked up on their own.
. "$(dirname "$0")/lib.sh"
make_schema || exit 1

sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key)
  SELECT g, 'completed', 'up/' || g || '.mp4', 'audio/' || g || '.mp3'
  FROM generate_series(100, 149) g" || exit 1
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key) VALUES (150, 'rendering', 'up/150.mp4')"
sql "INSERT INTO $SCHEMA.clips (id, job_id, status, key) VALUES (1, 150, 'rendering', 'clips/150/1.mp4')"
# 101 objects in one upload (one put-object each took about a minute).
keys=()
for i in $(seq 100 150); do
  keys+=("$CUBE/up/$i.mp4")
  [ "$i" -lt 150 ] && keys+=("$CUBE/audio/$i.mp3")
done
put_objects "${keys[@]}" || { echo "Bail out! cannot seed the objects"; exit 1; }

push() { rcli LPUSH "$NS:queue:jobs" "{\"type\":\"job_cleanup\",\"id\":\"$1\",\"job_id\":\"$2\"}" >/dev/null; }
for i in $(seq 100 149); do push "b-$i" "$i"; done
push b-0101 0101
push b-abc abc
push b-huge 99999999999999999999999
push b-none 999
push b-150 150
start_worker --concurrency 64 --drain || { echo "Bail out! worker did not start"; exit 1; }
wait "$WORKER_PID"
is "$?" 0 "the worker drained the queue"

st() { rcli GET "$NS:result:$1" | json "${2:-status}"; }
bad=0
for i in $(seq 100 149); do
  [ "$(st "b-$i")" = ok ] || bad=$((bad + 1))
done
is "$bad" 0 "the 50 completed jobs: ok"
is "$(list_keys "$CUBE/up/1" | grep -c .)" 1 "their uploads are gone, job 150's is kept"
is "$(list_keys "$CUBE/audio/" | grep -c .)" 0 "their audio is gone"
is "$(st b-0101)" ok "job_id \"0101\" finds job 101 (asked alone)"
is "$(st b-abc errors.0.code)" job_not_found "\"abc\" for a bigint id: job_not_found"
like "$(st b-abc errors.0.message)" "not a valid id" "saying it is not a valid id"
is "$(st b-huge errors.0.code)" job_not_found "an id out of the column's range: job_not_found"
is "$(st b-none errors.0.code)" job_not_found "a missing job: job_not_found"
is "$(st b-150 errors.0.code)" clips_not_finished "an unfinished job: clips_not_finished"
line=$(grep '"msg":"stopped"' "$T_TMP/worker.log")
q=$(echo "$line" | json job_queries)
d=$(echo "$line" | json job_deletes)
diag "job queries: $q; deletes: $d"
batched=${q%% batched*}
single=${q#*, }; single=${single%% single}
ok "$([ "$batched" -ge 1 ] && [ "$single" -le 8 ] && echo 0 || echo 1)" \
  "55 jobs took $batched batched queries and $single single ones"
reqs=${d%% requests*}
# How many share one depends on the server's pace (a request waits at
# most 5 ms for company); one per job would be 50.
ok "$([ "$reqs" -ge 1 ] && [ "$reqs" -le 30 ] && echo 0 || echo 1)" \
  "and the 50 jobs' deletes $reqs DeleteObjects requests"
done_testing
