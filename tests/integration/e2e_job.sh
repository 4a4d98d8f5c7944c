#!/usr/bin/env bash
# job_cleanup end to end: the CLI enqueues, the worker reads PostgreSQL and
# deletes from S3, and the effects are checked with psql and aws s3api.
. "$(dirname "$0")/lib.sh"
make_schema || exit 1

sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key) VALUES
  (1, 'completed', 'public/uploads/1/original.mp4', 'public/uploads/1/audio.mp3'),
  (2, 'rendering', 'public/uploads/2/original.mp4', 'public/uploads/2/audio.mp3'),
  (3, 'clipping',  'public/uploads/3/original.mp4', 'public/uploads/3/audio.mp3'),
  (4, 'completed', 'public/uploads/4/original.mp4', 'public/uploads/4/audio.mp3'),
  (5, 'completed', '../x', 'public/uploads/5/audio.mp3'),
  (6, 'completed', 'a//b', 'public/uploads/6/audio.mp3'),
  (7, 'completed', 'public/uploads/7/original.mp4', 'clips/7/clip_1.mp4'),
  (8, 'completed', 'public/shared/talk.mp4', 'public/uploads/8/audio.mp3'),
  (9, 'uploading', 'public/shared/talk.mp4', NULL),
  (10, 'completed', 'public/uploads/10/my video (final) é+x=1&y.mp4', NULL),
  (11, 'processing', 'public/uploads/11/original.mp4', NULL),
  (12, 'completed', 'public/uploads/12/original.mp4', NULL),
  (13, 'failed', 'public/shared/talk2.mp4', NULL),
  (14, 'completed', 'public/shared/talk2.mp4', NULL),
  (15, 'completed', 'public/uploads/15/original.mp4', 'public/uploads/15/x'||chr(10)||'y')" || exit 1
sql "INSERT INTO $SCHEMA.clips (id, job_id, status, key) VALUES
  (1, 1, 'completed', 'clips/1/clip_1.mp4'),
  (2, 1, 'completed', 'clips/1/clip_2.mp4'),
  (3, 2, 'completed', 'clips/2/clip_1.mp4'),
  (4, 2, 'rendering', 'clips/2/clip_2.mp4'),
  (5, 3, 'completed', 'clips/3/clip_1.mp4'),
  (6, 7, 'completed', 'clips/7/clip_1.mp4')" || exit 1

for k in public/uploads/1/original.mp4 public/uploads/1/audio.mp3 \
    clips/1/clip_1.mp4 clips/1/clip_2.mp4 public/uploads/2/original.mp4 \
    public/uploads/3/original.mp4 public/uploads/3/audio.mp3 \
    public/uploads/5/audio.mp3 public/uploads/6/audio.mp3 \
    public/uploads/7/original.mp4 clips/7/clip_1.mp4 \
    public/shared/talk.mp4 public/uploads/8/audio.mp3 \
    'public/uploads/10/my video (final) é+x=1&y.mp4' \
    public/uploads/11/original.mp4 public/uploads/12/original.mp4 \
    public/shared/talk2.mp4 public/uploads/15/original.mp4; do
  put_object "$CUBE/$k" || { echo "Bail out! cannot put $k"; exit 1; }
done
put_object "x" "outside the cube"
put_object "other-$CUBE/public/uploads/1/original.mp4" "another cube"

start_worker --concurrency 4 || { echo "Bail out! worker did not start"; exit 1; }

job() { # JOB_ID [ARGS]: the result JSON on stdout; exit status in $JOB_RC
  JOB_RC=0
  JOB_OUT=$("$CLI" job "$@" --wait=20 --json 2>>"$T_TMP/cli.log") || JOB_RC=$?
}
present() { list_keys | grep -qxF "$CUBE/$1"; }

# Dry run first: the full report, nothing deleted.
job 1 --dry-run
is "$JOB_RC" 0 "dry run exits 0"
is "$(echo "$JOB_OUT" | json status)" ok "dry run status ok"
is "$(echo "$JOB_OUT" | json dry_run)" true "dry_run is reported"
is "$(echo "$JOB_OUT" | json deleted_count)" 2 "dry run counts both candidates"
like "$(echo "$JOB_OUT" | json deleted_keys)" "$CUBE/public/uploads/1/original.mp4" \
  "dry run names full storage keys"
present public/uploads/1/original.mp4
ok $? "dry run deleted nothing"

# The real thing.
size1=$(s3api head-object --bucket cloud-cube --key "$CUBE/public/uploads/1/original.mp4" | json ContentLength)
size2=$(s3api head-object --bucket cloud-cube --key "$CUBE/public/uploads/1/audio.mp3" | json ContentLength)
job 1
is "$JOB_RC" 0 "completed job: exit 0"
is "$(echo "$JOB_OUT" | json status)" ok "completed job: ok"
is "$(echo "$JOB_OUT" | json deleted_count)" 2 "two files deleted"
is "$(echo "$JOB_OUT" | json deleted_size_bytes)" "$((size1 + size2))" "sizes add up"
is "$(echo "$JOB_OUT" | json retained_count)" 2 "two clips retained"
is "$(echo "$JOB_OUT" | json job_id)" 1 "job_id in the result"
! present public/uploads/1/original.mp4 && ! present public/uploads/1/audio.mp3
ok $? "original and audio are gone (aws s3api)"
present clips/1/clip_1.mp4 && present clips/1/clip_2.mp4
ok $? "clips are kept"
s3api head-object --bucket cloud-cube --key "other-$CUBE/public/uploads/1/original.mp4" >/dev/null 2>&1
ok $? "the same relative key in another cube is untouched"

# Again: idempotent, honest.
job 1
is "$(echo "$JOB_OUT" | json status)" ok "second run is ok"
is "$(echo "$JOB_OUT" | json deleted_count)" 0 "second run deletes nothing"
is "$(echo "$JOB_OUT" | json already_absent_count)" 2 "second run reports already_absent"

job 2
is "$JOB_RC" 1 "unfinished job: exit 1"
is "$(echo "$JOB_OUT" | json errors.0.code)" clips_not_finished "unfinished job: clips_not_finished"
present public/uploads/2/original.mp4
ok $? "unfinished job: nothing deleted"

job 11
is "$(echo "$JOB_OUT" | json errors.0.code)" clips_not_finished "active job without clips is not cleaned"
job 12
is "$(echo "$JOB_OUT" | json deleted_count)" 1 "completed job without clips is cleaned"

job 3
is "$(echo "$JOB_OUT" | json status)" ok "all clips completed, job still 'clipping': cleaned (seed 004's trigger)"
! present public/uploads/3/original.mp4
ok $? "its original is gone"

job 999
is "$(echo "$JOB_OUT" | json errors.0.code)" job_not_found "missing job: job_not_found"
job abc
is "$(echo "$JOB_OUT" | json errors.0.code)" job_not_found "non-numeric id for a bigint table: job_not_found"

job 4
is "$(echo "$JOB_OUT" | json status)" ok "already-deleted files: ok"
is "$(echo "$JOB_OUT" | json already_absent_count)" 2 "already-deleted files: already_absent"

for j in 5 6 15; do
  job $j
  is "$(echo "$JOB_OUT" | json status)" refused "job $j with an unsafe key is refused"
  is "$(echo "$JOB_OUT" | json errors.0.code)" unsafe_key "job $j: unsafe_key"
  present "public/uploads/$j/audio.mp3" || [ $j = 15 ]
  ok $? "job $j: the safe key was not deleted either"
done
present public/uploads/15/original.mp4
ok $? "job 15: nothing deleted"
s3api head-object --bucket cloud-cube --key x >/dev/null 2>&1
ok $? "'../x' outside the cube still exists"

job 7
is "$(echo "$JOB_OUT" | json kept_keys.0.reason)" referenced "audio key that is a clip is kept"
present clips/7/clip_1.mp4
ok $? "the clip is still there"
! present public/uploads/7/original.mp4
ok $? "the original is deleted"

job 8
is "$(echo "$JOB_OUT" | json kept_keys.0.key)" "$CUBE/public/shared/talk.mp4" \
  "an original shared with an active job is kept"
present public/shared/talk.mp4
ok $? "the shared original is still there"

job 14
! present public/shared/talk2.mp4
ok $? "an original shared only with a terminal job is deleted"

job 10
is "$(echo "$JOB_OUT" | json deleted_count)" 1 "a key with spaces, unicode, + = & is deleted"
! present 'public/uploads/10/my video (final) é+x=1&y.mp4'
ok $? "and is really gone"

stop_worker
is "$STOP_RC" 0 "worker stops cleanly"
# Drain timeout: a task still running when it expires goes back to its
# queue, nothing is published for it, and the worker exits 0.
sql "CREATE VIEW $SCHEMA.slow_jobs AS SELECT j.* FROM $SCHEMA.jobs j,
  (SELECT pg_sleep(4)) s"
sql "INSERT INTO $SCHEMA.jobs (id, status) VALUES (40, 'completed')"
CLIPSWEEP_JOBS_TABLE="$SCHEMA.slow_jobs" start_worker --drain-timeout 1
rcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"slow-1","job_id":"40"}' >/dev/null
claimed() { [ "$(rcli LLEN "$NS:processing:$CLIPSWEEP_WORKER_ID")" = 1 ]; }
wait_for claimed
ok $? "the slow task is claimed"
t0=$(date +%s%N)
stop_worker
t1=$(date +%s%N)
is "$STOP_RC" 0 "the worker exits 0 at the drain timeout"
[ $(( (t1 - t0) / 1000000 )) -lt 3500 ]
ok $? "within the timeout, not after the task ($(( (t1 - t0) / 1000000 )) ms)"
is "$(rcli LRANGE "$NS:queue:jobs" 0 -1)" '{"type":"job_cleanup","id":"slow-1","job_id":"40"}' \
  "the unfinished task is back in its queue, unchanged"
is "$(rcli LLEN "$NS:processing:$CLIPSWEEP_WORKER_ID")" 0 "and out of the processing list"
is "$(rcli EXISTS "$NS:result:slow-1")" 0 "no result was published for it"
is "$(rcli EXISTS "$NS:worker:$CLIPSWEEP_WORKER_ID")$(rcli ZSCORE "$NS:leases" "$CLIPSWEEP_WORKER_ID")" 0 \
  "the worker gave up its id lock and its lease"
start_worker --drain
wait "$WORKER_PID"
is "$(rcli GET "$NS:result:slow-1" | json status)" ok "the next worker runs it"

grep -q '"level":"error"' "$T_TMP/worker.log"
ok $((!$?)) "no error lines in the worker log"
done_testing
