#!/usr/bin/env bash
# Sweeps against the project's own S3 server (tests/s3mem) where s3rver
# cannot help: a listing that fails halfway through the plan, or halfway
# through the deletes, and objects dated in the future (clock skew).
# Whatever fails, nothing the database protects is deleted, and a plan
# that could not finish deletes nothing at all.
. "$(dirname "$0")/lib.sh"
make_schema || exit 1
# One attempt: these scenarios check what a single run does when the
# listing fails (a retry, tested in e2e_retry, would run the sweep again).
export CLIPSWEEP_MAX_ATTEMPTS=1
S3MEM=$BIN/tests/s3mem/s3mem

# s3mem_start [ARGS]: a fresh server; sets S3MEM_URL and S3MEM_PID.
s3mem_start() {
  rm -f "$T_TMP/s3mem.port"
  "$S3MEM" --listen 127.0.0.1:0 --ready-file "$T_TMP/s3mem.port" \
    --bucket cloud-cube "$@" 2>>"$T_TMP/s3mem.log" &
  S3MEM_PID=$!
  T_PIDS+=("$S3MEM_PID")
  wait_for test -s "$T_TMP/s3mem.port" || return 1
  S3MEM_URL="http://127.0.0.1:$(cat "$T_TMP/s3mem.port")"
  export CLOUDCUBE_URL="$S3MEM_URL/cloud-cube/$CUBE"
}

# seed N MTIME PATTERN: N objects named by printf PATTERN, one call.
seed() {
  awk -v n="$1" -v t="$2" -v c="$CUBE" -v p="$3" \
    'BEGIN { for (i = 0; i < n; i++) printf "%s/" p "\t100\t%d\n", c, i, t }' \
    >"$T_TMP/seed"
  curl -sf --data-binary @"$T_TMP/seed" "$S3MEM_URL/cloud-cube?s3mem-seed=" >/dev/null
}

# count PATTERN: objects under the cube whose key matches (grep -E).
count() {
  env -u AWS_CA_BUNDLE AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x "$AWS" \
    --endpoint-url "$S3MEM_URL" s3api list-objects-v2 --bucket cloud-cube \
    --prefix "$CUBE/" --query 'Contents[].Key' --output text |
    tr '\t' '\n' | grep -cE "$1"
}


old=$(( $(date +%s) - 30 * 86400 ))
# Every even-numbered object is protected by an active job; odd ones are
# orphans: 5,000 of each, ten listing pages.
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key)
  SELECT i, 'processing', 'p/k' || lpad(i::text, 6, '0')
  FROM generate_series(0, 9999, 2) i"
prepare() { # s3mem ARGS
  if [ -n "${S3MEM_PID:-}" ]; then
    kill "$S3MEM_PID" 2>/dev/null
    wait "$S3MEM_PID" 2>/dev/null
  fi
  s3mem_start "$@" || { echo "Bail out! s3mem did not start"; exit 1; }
  seed 10000 "$old" 'p/k%06d'
}
protected() { count '/p/k[0-9]{5}[02468]$'; }
orphans() { count '/p/k[0-9]{5}[13579]$'; }

# --- The listing fails on the plan's third page, twice: the S3 client's
# retries (3 attempts, standard mode) absorb it.
prepare --fail-lists 2:2
start_worker --queues sweeps || { echo "Bail out! worker did not start"; exit 1; }
sweep '"min_age_hours":0,"force":true'
is "$(f status)" ok "a listing that fails twice is retried: ok"
is "$(f deleted_count)" 5000 "every orphan deleted"
is "$(protected)" 5000 "all 5,000 protected objects survive"
stop_worker

# --- Four times: the client's three attempts are used up, then the
# server recovers for our count.
prepare --fail-lists 2:4
start_worker --queues sweeps || { echo "Bail out! worker did not start"; exit 1; }
sweep '"min_age_hours":0,"force":true'
is "$(f status)" failed "a listing that fails during the plan fails the sweep"
is "$(f errors.0.code)" storage_unavailable "as storage_unavailable"
like "$(f errors.0.message)" "after 3 attempts" "after the client's three attempts"
like "$(f errors.0.message)" "nothing further is decided" "and says nothing further was decided"
is "$(f deleted_count)" 0 "a plan that could not finish deletes nothing"
is "$(protected)" 5000 "all 5,000 protected objects survive (aws s3api)"
is "$(orphans)" 5000 "and so do the orphans"
stop_worker

# --- The listing fails on the third page of the second pass (the plan
# takes ten): the first two pages' orphans are deleted, then it stops.
prepare --fail-lists 12:4
start_worker --queues sweeps
sweep '"min_age_hours":0,"force":true'
is "$(f status)" partial "a listing that fails during the deletes stops the sweep: partial"
is "$(f deleted_count)" 1000 "only the first two pages' orphans were deleted"
is "$(f execution.planned_candidates)" 5000 "the report keeps the plan"
is "$(protected)" 5000 "all 5,000 protected objects survive"
is "$(orphans)" 4000 "the orphans after the fault survive"
stop_worker

# --- A sharded sweep (4 ranges, run one at a time, so that the faults
# meet one range) whose third listing request fails four
# times: that range's plan fails with storage_unavailable and runs again
# later, quietly; the sweep then ends ok with one result.
prepare --fail-lists 2:4
CLIPSWEEP_MAX_ATTEMPTS=3 CLIPSWEEP_RETRY_BASE_MS=100 start_worker --queues sweeps --concurrency 1
sweep '"min_age_hours":0,"force":true,"shards":4'
is "$(f status)" ok "sharded: a range whose listing failed runs again: ok"
is "$(f shards)" 4 "sharded: four ranges"
is "$(f deleted_count)" 5000 "sharded: every orphan deleted"
is "$(protected)" 5000 "sharded: all 5,000 protected objects survive"
is "$(orphans)" 0 "sharded: no orphan left (aws s3api)"
grep -q '"msg":"shard will run again".*"code":"storage_unavailable"' "$T_TMP/worker.log"
ok $? "sharded: the worker log says which range runs again, and why"
is "$(rcli --scan --pattern "$NS:result:sweep-$T_ID-$SWEEP_SEQ:*" | wc -l)" 0 \
  "sharded: no interim result under a range's id"
is "$(rcli ZCARD "$NS:scheduled")" 0 "sharded: nothing left scheduled"
stop_worker

# --- The same with one attempt: the range fails for good, the others
# stop, and a plan that could not finish deletes nothing.
prepare --fail-lists 2:4
start_worker --queues sweeps --concurrency 1
sweep '"min_age_hours":0,"force":true,"shards":4'
is "$(f status)" failed "sharded, one attempt: the sweep fails"
like "$(f errors)" storage_unavailable "sharded, one attempt: storage_unavailable reported"
is "$(f deleted_count)" 0 "sharded, one attempt: nothing deleted"
is "$(protected)" 5000 "sharded, one attempt: all 5,000 protected objects survive"
is "$(orphans)" 5000 "sharded, one attempt: and so do the orphans"
stop_worker

# --- Clock skew: objects dated a day in the future are kept as recent
# even with min_age_hours 0; those a month old are deleted.
prepare
seed 100 "$(( $(date +%s) + 86400 ))" 'q/future%03d'
seed 100 "$old" 'q/past%03d'
start_worker --queues sweeps
sweep '"min_age_hours":0,"prefix":"q/"'
is "$(f status)" ok "skewed clock: ok"
is "$(f kept_by_reason.recent)" 100 "future-dated objects are kept as recent"
is "$(f deleted_count)" 100 "month-old orphans are deleted"
is "$(count '/q/future')" 100 "every future-dated object survives"
stop_worker
done_testing
