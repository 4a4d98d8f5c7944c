#!/usr/bin/env bash
# Sharded retention sweeps against real servers.  Two sub-prefixes, a/ and
# b/, hold the same layout (jobs active and finished, clips retained,
# expired and rendering, orphans at both ends of the key space); a/ is
# swept whole and b/ in shards, and the two must agree object for object.
# Then the guards judge the sum of the shard plans, a key stored in the
# wrong form in any one range refuses the whole sweep, and messages from
# another run of a sweep are dropped.
. "$(dirname "$0")/lib.sh"
make_schema || exit 1

N=60
keys=()
declare -A keep
for p in a b; do
  base=0
  [ "$p" = b ] && base=1000
  rows_j=() rows_c=()
  for i in $(seq 1 $N); do
    id=$((base + i))
    st=completed
    [ $((i % 6)) -eq 0 ] && st=rendering
    audio="'$p/uploads/$i/audio.mp3'"
    [ $((i % 5)) -eq 0 ] && audio=NULL
    rows_j+=("($id, '$st', '$p/uploads/$i/original.mp4', $audio, now() - interval '10 days')")
    cst=completed
    [ $((i % 7)) -eq 0 ] && cst=rendering
    age="now() - interval '10 days'"
    [ $((i % 3)) -eq 0 ] && age="now() - interval '1 day'"
    rows_c+=("($id, $id, '$cst', '$p/clips/$i/clip.mp4', $age)")
    keys+=("$CUBE/$p/uploads/$i/original.mp4" "$CUBE/$p/clips/$i/clip.mp4")
    if [ "$st" = rendering ]; then
      keep[$p/uploads/$i/original.mp4]=1
    fi
    if [ "$audio" != NULL ]; then
      keys+=("$CUBE/$p/uploads/$i/audio.mp3")
      [ "$st" = rendering ] && keep[$p/uploads/$i/audio.mp3]=1
    fi
    if [ "$cst" = rendering ] || [ $((i % 3)) -eq 0 ]; then
      keep[$p/clips/$i/clip.mp4]=1
    fi
    [ $((i % 4)) -eq 0 ] && keys+=("$CUBE/$p/uploads/$i/stray.tmp")
  done
  for n in $(seq 1 20); do keys+=("$CUBE/$p/zz/orphan-$n.bin"); done
  for n in $(seq 1 5); do keys+=("$CUBE/$p/00/orphan-$n"); done
  sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key, created_at) VALUES $(IFS=,; echo "${rows_j[*]}")"
  sql "INSERT INTO $SCHEMA.clips (id, job_id, status, key, created_at) VALUES $(IFS=,; echo "${rows_c[*]}")"
done
keys+=("$CUBE/c/outside-the-prefix.bin" "elsewhere/outside-the-cube.bin")
put_objects "${keys[@]}" || { echo "Bail out! cannot seed the bucket"; exit 1; }

# What must remain under P/ after a real sweep, relative to P/.
expected_keep() {
  local k
  for k in "${!keep[@]}"; do
    [[ $k == "$1"/* ]] && echo "${k#"$1"/}"
  done | LC_ALL=C sort
}
remaining() { list_keys "$CUBE/$1/" | sed "s|^$CUBE/$1/||"; }
total_b=$(list_keys "$CUBE/b/" | wc -l)
diag "$total_b objects under b/, $(expected_keep b | wc -l) to keep"

start_worker --concurrency 4 || { echo "Bail out! worker did not start"; exit 1; }

counts='deleted_count total_objects_scanned total_bytes_scanned objects_in_database
database_keys_found delete_ratio candidates_by_reason kept_by_reason'

# --- Dry runs: whole and sharded agree.
sweep '"prefix":"a/","min_age_hours":0,"dry_run":true,"force":true'
declare -A whole
for k in $counts; do whole[$k]=$(f "$k"); done
sweep '"prefix":"b/","min_age_hours":0,"dry_run":true,"force":true,"shards":4'
is "$(f status)" ok "sharded dry run: ok"
is "$(f shards)" 4 "sharded dry run: four shards"
for k in $counts; do
  is "$(f "$k")" "${whole[$k]}" "sharded dry run: $k as the whole sweep's"
done
is "$(f total_objects_scanned)" "$total_b" "sharded dry run: every object under b/ scanned once"
sum=0 empty=0
for i in 0 1 2 3; do
  s=$(f "shard_results.$i.scanned")
  sum=$((sum + s))
  [ "$s" -gt 0 ] || empty=$((empty + 1))
done
is "$sum" "$total_b" "the shards' scans add up to the listing"
is "$empty" 0 "no shard is empty: the boundaries follow the keys"
is "$(remaining b | wc -l)" "$total_b" "the dry run deleted nothing"
is "$(f sample_candidate_keys.0)" "$CUBE/b/00/orphan-1" "samples come from the first range first"
is "$(f errors)" "[]" "sharded dry run: no errors"

# --- The CLI: --shards N, and the summary names the ranges.
RC=0
out=$("$CLI" sweep --prefix b/ --min-age-hours 0 --shards 3 --dry-run --force --wait=60 2>"$T_TMP/cli.err") || RC=$?
is "$RC" 0 "clipsweep sweep --shards 3 --dry-run --wait: exit 0"
echo "$out" | grep -Eq '^  shards +3 key ranges$'
ok $? "the summary shows the three ranges"
echo "$out" | grep -Eq "^  scanned +$total_b objects"
ok $? "and every object under b/ scanned"

# --- The guards judge the sum of the plans.
sweep '"prefix":"b/","min_age_hours":0,"shards":4'
is "$(f status)" refused "sharded, above the delete ratio: refused"
like "$(f refused_reason)" "delete ratio" "refused_reason names the ratio"
is "$(f deleted_count)" 0 "refused: nothing reported deleted"
is "$(remaining b | wc -l)" "$total_b" "refused: nothing deleted"
is "$(f shards)" 4 "refused: the report still counts the shards"

# --- A key stored with the cube prefix refuses the whole sweep, whichever
# range it falls in.
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key) VALUES (9999, 'completed', '$CUBE/b/uploads/x.mp4')"
sweep '"prefix":"b/","min_age_hours":0,"force":true,"shards":3'
is "$(f status)" refused "a key with the cube prefix in one range: the sweep is refused"
like "$(f refused_reason)" "cube prefix" "refused_reason names the key format"
is "$(remaining b | wc -l)" "$total_b" "key format: nothing deleted in any range"
sql "DELETE FROM $SCHEMA.jobs WHERE id = 9999"

# --- Real sweeps: whole and sharded delete the same objects.
sweep '"prefix":"a/","min_age_hours":0,"force":true'
is "$(f status)" ok "whole sweep of a/: ok"
deleted_a=$(f deleted_count)
sweep '"prefix":"b/","min_age_hours":0,"force":true,"shards":4'
is "$(f status)" ok "sharded sweep of b/: ok"
is "$(f deleted_count)" "$deleted_a" "sharded: deleted as many as the whole sweep"
is "$(f execution.deleted)" "$deleted_a" "sharded: execution.deleted agrees"
is "$(f execution.planned_candidates)" "$deleted_a" "sharded: the plan is the sum of the shard plans"
is "$(f execution.scanned)" "$total_b" "sharded: the second pass scanned every object once"
is "$(f shard_results.3.status)" ok "sharded: the last shard reports ok"
id=$(f id)
is "$id" "sweep-$T_ID-$SWEEP_SEQ" "the result carries the sweep's id"
is "$(rcli HGET "$NS:sweep:$id" plan_done)" 4 "redis-cli: four plans recorded"
is "$(rcli HGET "$NS:sweep:$id" execute_done)" 4 "redis-cli: four executions recorded"
at_least "$(rcli TTL "$NS:sweep:$id")" 600000 "redis-cli: the sweep's state expires"
is "$(remaining b)" "$(expected_keep b)" "aws s3api: exactly the objects to keep remain under b/"
is "$(remaining a)" "$(remaining b)" "aws s3api: a/ and b/ kept the same objects"
check "outside the sub-prefix: untouched" \
  s3api head-object --bucket cloud-cube --key "$CUBE/c/outside-the-prefix.bin"
check "outside the cube: untouched" \
  s3api head-object --bucket cloud-cube --key "elsewhere/outside-the-cube.bin"
n_results=$(rcli XRANGE "$NS:results:log" - + | grep -c "\"id\":\"$id\"")
is "$n_results" 1 "one result for the sharded sweep, none for its shards"
is "$(rcli --scan --pattern "$NS:result:$id:*" | wc -l)" 0 "no result stored under a shard's id"

# --- A shard from another run of the sweep is dropped without effect.
put_objects "$CUBE/b/zz/late-orphan.bin"
rcli RPUSH "$NS:queue:sweeps" "{\"type\":\"sweep_shard\",\"id\":\"$id:execute:0\",\"sweep_id\":\"$id\",\"run\":\"not-the-run\",\"phase\":\"execute\",\"shard\":0,\"shards\":2,\"young_after_ms\":$(($(date +%s) * 1000)),\"started_ms\":1,\"planned_candidates\":5,\"retention_days\":5,\"min_age_hours\":0}" >/dev/null
wait_for grep -q 'shard dropped' "$T_TMP/worker.log"
ok $? "a shard of another run is dropped (worker log)"
check "a dropped shard deletes nothing" \
  s3api head-object --bucket cloud-cube --key "$CUBE/b/zz/late-orphan.bin"
is "$(rcli LLEN "$NS:processing:$CLIPSWEEP_WORKER_ID")" 0 "the dropped shard is acknowledged"

# --- An execute shard stops at its candidate_limit: a range that planned
# nothing deletes nothing, even when its second pass meets a candidate.
rcli HSET "$NS:sweep:limit-1" run limit-run shards 2 >/dev/null
now_ms=$(($(date +%s) * 1000 + 60000))
rcli RPUSH "$NS:queue:sweeps" "{\"type\":\"sweep_shard\",\"id\":\"limit-1:execute:0\",\"sweep_id\":\"limit-1\",\"run\":\"limit-run\",\"phase\":\"execute\",\"shard\":0,\"shards\":2,\"after\":\"b/zz/\",\"upto\":\"b/zz/zzz\",\"young_after_ms\":$now_ms,\"started_ms\":1,\"planned_candidates\":0,\"candidate_limit\":0,\"retention_days\":5,\"min_age_hours\":0,\"force\":true,\"prefix\":\"b/\"}" >/dev/null
wait_for test -n "$(rcli HGET "$NS:sweep:limit-1" execute:0)"
rep=$(rcli HGET "$NS:sweep:limit-1" execute:0)
is "$(echo "$rep" | json status)" failed "candidate_limit 0: the range stops at its first candidate"
is "$(echo "$rep" | json errors.0.code)" bucket_changed "candidate_limit 0: bucket_changed"
is "$(echo "$rep" | json deleted)" 0 "candidate_limit 0: nothing deleted"
check "candidate_limit 0: the orphan is still there (aws s3api)" \
  s3api head-object --bucket cloud-cube --key "$CUBE/b/zz/late-orphan.bin"
is "$(rcli HGET "$NS:sweep:limit-1" stop)" execute:0 "the failed range stops the others (redis-cli)"

# --- A shard whose workers keep dying is given up, not lost: the reaper
# hands it back marked gave_up, the next worker records its range as
# failed without running it, and the sweep still ends with a result.
plan1='{"status":"ok","worker":"w","after":"b/m","counts":[3,30,0,0,2,20,0,0,0,0,0,0,2],"deleted":0,"deleted_bytes":0,"delete_errors":0,"candidates_met":0,"duration_ms":1,"by_prefix":{"b/":2},"samples":[],"deleted_sample":[],"warnings":[],"errors":[]}'
rcli HSET "$NS:sweep:rl-1" run rl-run shards 2 started_ms 1 plan:1 "$plan1" plan_done 1 >/dev/null
shard0="{\"type\":\"sweep_shard\",\"id\":\"rl-1:plan:0\",\"sweep_id\":\"rl-1\",\"run\":\"rl-run\",\"phase\":\"plan\",\"shard\":0,\"shards\":2,\"upto\":\"b/m\",\"young_after_ms\":1,\"started_ms\":1,\"retention_days\":5,\"min_age_hours\":0,\"prefix\":\"b/\"}"
rcli SET "$NS:redelivered:rl-1:plan:0" 5 >/dev/null
rcli LPUSH "$NS:processing:ghost" "$shard0" >/dev/null
rcli ZADD "$NS:leases" 1 ghost >/dev/null
wait_for test -n "$(rcli GET "$NS:result:rl-1")"
R=$(rcli GET "$NS:result:rl-1")
is "$(f status)" failed "a shard redelivered too often: the sweep fails, with a result"
like "$(f errors)" redelivery_limit "and says why (redelivery_limit)"
is "$(f shard_results.0.status)" failed "the range given up is reported failed"
is "$(f shard_results.1.status)" ok "the other range as recorded"
is "$(rcli LLEN "$NS:dead")" 0 "the shard is not dead-lettered (redis-cli)"
is "$(rcli EXISTS "$NS:result:rl-1:plan:0")" 0 "no result under the shard's id"
grep -q '"msg":"shard given up: redelivered too often"' "$T_TMP/worker.log"
ok $? "the worker log says the shard was given up"

# --- Bad shard counts are refused before anything runs.
rcli LPUSH "$NS:queue:sweeps" '{"type":"retention_sweep","id":"bad-shards","shards":0}' >/dev/null
rcli LPUSH "$NS:queue:sweeps" '{"type":"retention_sweep","id":"many-shards","shards":257}' >/dev/null
wait_for test "$(rcli LLEN "$NS:dead")" -ge 2
is "$(rcli GET "$NS:result:bad-shards" | json errors.0.code)" invalid_field "shards 0: invalid_field"
is "$(rcli GET "$NS:result:many-shards" | json errors.0.code)" invalid_field "shards 257: invalid_field"

stop_worker
is "$STOP_RC" 0 "worker stops cleanly"

# --- --drain waits for the phases a sharded sweep pushes as it goes: the
# execute shards arrive after the plan shards have emptied the queue.
rows=() dkeys=()
for i in $(seq 1 40); do
  rows+=("($((5000 + i)), 'rendering', 'd/k/$i.mp4', NULL, now())")
  dkeys+=("$CUBE/d/k/$i.mp4" "$CUBE/d/o/$i.bin")
done
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key, created_at) VALUES $(IFS=,; echo "${rows[*]}")"
put_objects "${dkeys[@]}" || { echo "Bail out! cannot seed d/"; exit 1; }
for round in 1 2 3; do
  rcli LPUSH "$NS:queue:sweeps" "{\"type\":\"retention_sweep\",\"id\":\"drain-$round\",\"prefix\":\"d/\",\"min_age_hours\":0,\"force\":true,\"shards\":8}" >/dev/null
  RC=0
  start_worker --drain --queues sweeps --concurrency 8 || RC=1
  wait "$WORKER_PID" || RC=$?
  is "$RC" 0 "--drain, round $round: the worker exits 0"
  is "$(rcli GET "$NS:result:drain-$round" | json status)" ok \
    "--drain, round $round: the sharded sweep ended before the worker did"
  is "$(rcli LLEN "$NS:queue:sweeps")" 0 "--drain, round $round: no shard left behind"
  is "$(rcli LLEN "$NS:processing:$CLIPSWEEP_WORKER_ID")" 0 "--drain, round $round: nothing left claimed"
  # Put the orphans back for the next round.
  [ "$round" -lt 3 ] && { put_objects "${dkeys[@]}" || exit 1; }
done
is "$(list_keys "$CUBE/d/" | wc -l)" 40 "aws s3api: only the 40 referenced keys remain under d/"
done_testing
