#!/usr/bin/env bash
# The audit trail (CLIPSWEEP_AUDIT=postgres): clipsweep migrate makes the
# table; every key a job or a sweep (whole or sharded) deletes has its row
# (task, reason, size, worker), checked with psql against what aws s3api
# saw go; a dry run writes none; and when the rows cannot be written the
# deletes are not sent: the sweep stops with audit_failed and the job
# waits to retry, their files still there.
# shellcheck disable=SC2317 # (helpers called through wait_for)
. "$(dirname "$0")/lib.sh"
make_schema || exit 1
export CLIPSWEEP_AUDIT_TABLE="$SCHEMA.audit"
AUDIT="$SCHEMA.audit"

out=$("$CLI" migrate 2>&1)
is "$?" 0 "clipsweep migrate exits 0"
like "$out" "is ready" "and says the table is ready"
is "$(sql "SELECT count(*) FROM $AUDIT")" 0 "the table exists, empty"
"$CLI" migrate >/dev/null 2>&1
is "$?" 0 "migrate again: nothing to do, exit 0"
is "$(sql "SELECT count(*) FROM pg_indexes WHERE schemaname = '$SCHEMA' AND tablename = 'audit'")" 4 \
  "with its primary key and three indexes (key, task, time)"
CLIPSWEEP_DATABASE_URL=postgresql://postgres@127.0.0.1:1/x "$CLI" migrate >/dev/null 2>&1
is "$?" 69 "migrate with the database unreachable: 69"

sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key) VALUES
  (1, 'completed', 'public/uploads/1/original.mp4', 'public/uploads/1/audio.mp3'),
  (2, 'completed', 'public/uploads/2/original.mp4', NULL)" || exit 1
orphans=()
for i in $(seq 1 30); do orphans+=("$CUBE/orphans/o$i.bin"); done
put_objects "$CUBE/public/uploads/1/original.mp4" "$CUBE/public/uploads/1/audio.mp3" \
  "$CUBE/public/uploads/2/original.mp4" "${orphans[@]}"

export CLIPSWEEP_AUDIT=postgres
start_worker --concurrency 4
ok $? "a worker starts with CLIPSWEEP_AUDIT=postgres"
timeout 60 "$CLI" job 1 --wait=30 --json >"$T_TMP/job1.out" 2>&1
is "$(json status <"$T_TMP/job1.out") $(json deleted_count <"$T_TMP/job1.out")" "ok 2" "job 1 deleted two files"
is "$(sql "SELECT task_type, reason, key, size_bytes, worker FROM $AUDIT WHERE task_id = '$(json id <"$T_TMP/job1.out")' ORDER BY key" | tr '\n' ';')" \
  "job_cleanup|job_audio|$CUBE/public/uploads/1/audio.mp3|$(printf 'data for %s' "$CUBE/public/uploads/1/audio.mp3" | wc -c)|w-$T_ID;job_cleanup|job_original|$CUBE/public/uploads/1/original.mp4|$(printf 'data for %s' "$CUBE/public/uploads/1/original.mp4" | wc -c)|w-$T_ID;" \
  "its two rows: type, reason, key, size, worker"

sweep '"dry_run":true,"min_age_hours":0,"prefix":"orphans/","force":true'
is "$(f status)" ok "a dry-run sweep"
is "$(sql "SELECT count(*) FROM $AUDIT WHERE task_type = 'retention_sweep'")" 0 "writes no rows"
sweep '"min_age_hours":0,"prefix":"orphans/o1","force":true'
is "$(f status) $(f deleted_count)" "ok 11" "a sweep of orphans/o1* deleted 11"
sid=$(f id)
is "$(sql "SELECT count(*), count(DISTINCT key), min(reason), max(reason) FROM $AUDIT WHERE task_id = '$sid'")" \
  "11|11|orphan|orphan" "11 rows for it, one per key, reason orphan"
is "$(sql "SELECT string_agg(key, ' ' ORDER BY key) FROM $AUDIT WHERE task_id = '$sid'")" \
  "$(printf '%s\n' "${orphans[@]}" | grep '/o1[0-9]*\.bin$' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')" \
  "exactly the keys it deleted"
is "$(list_keys "$CUBE/orphans/o1" | grep -c .)" 0 "and S3 no longer has them"

# Sharded: the rows carry the sweep's id.
sweep '"min_age_hours":0,"prefix":"orphans/o2","force":true,"shards":2'
is "$(f status) $(f deleted_count)" "ok 11" "a sweep in 2 ranges deleted 11"
is "$(sql "SELECT count(*) FROM $AUDIT WHERE task_id = '$(f id)'")" 11 "11 rows under the sweep's id"

# The audit fails: nothing is deleted.
sql "ALTER TABLE $AUDIT RENAME TO audit_gone" || exit 1
sweep '"min_age_hours":0,"prefix":"orphans/","force":true'
is "$(f status) $(f errors.0.code)" "failed audit_failed" "with the table gone a sweep fails: audit_failed"
like "$(f errors.0.message)" "the audit trail could not be written" "saying why"
is "$(list_keys "$CUBE/orphans/" | grep -c .)" 8 "and its 8 orphans are still there"
CLIPSWEEP_NOT_READY_RETRY_SECONDS=0 "$CLI" job 2 --json >"$T_TMP/job2.id"
jid=$(json id <"$T_TMP/job2.id")
retrying() { [ "$(rcli GET "$NS:result:$jid" | json status)" = retrying ]; }
wait_for retrying
ok $? "a job whose rows cannot be written is retried"
is "$(list_keys "$CUBE/public/uploads/2/" | grep -c .)" 1 "and its file is still there"
grep -q '"msg":"deletes held back: the audit trail failed"' "$T_TMP/worker.log"
ok $? "the worker logs that the audit failed"
sql "ALTER TABLE $SCHEMA.audit_gone RENAME TO audit" || exit 1
job_done() { [ "$(rcli GET "$NS:result:$jid" | json status)" = ok ]; }
for i in 1 2 3; do wait_for job_done && break; done
ok $? "with the table back, the retry deletes it"
is "$(sql "SELECT count(*) FROM $AUDIT WHERE task_id = '$jid'")" 1 "with its row"

CLIPSWEEP_AUDIT=maybe "$WORKER" >"$T_TMP/bad.log" 2>&1
is "$?" 78 "CLIPSWEEP_AUDIT=maybe: configuration error"
stop_worker
is "$STOP_RC" 0 "the worker stops"
done_testing
