#!/usr/bin/env bash
# retention_sweep against real servers, modelled on seed 001: objects under
# other prefixes and at the bucket root, keys stored in the wrong form,
# mostly-orphan prefixes, unfinished jobs, fresh uploads, a database that
# fails halfway, awkward keys.  Every scenario names the objects that must
# survive and checks them with aws s3api.  Scenarios are separated by the
# task's sub-prefix.
. "$(dirname "$0")/lib.sh"
make_schema || exit 1

present() { list_keys | grep -qxF "$CUBE/$1"; }
root_present() { s3api head-object --bucket cloud-cube --key "$1" >/dev/null 2>&1; }


# --- Outside the cube: must never be touched.
for k in lambda/pkg.zip listings/1.json books/515/image_00.webp root.txt; do
  put_object "$k"
done
put_object "other-$CUBE/main/orphan.mp4"

# --- main/: a realistic mix.
old="now() - interval '10 days'"
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key, created_at) VALUES
  (1, 'completed', 'main/uploads/1/original.mp4', 'main/uploads/1/audio.mp3', $old),
  (2, 'rendering', 'main/uploads/2/original.mp4', 'main/uploads/2/audio.mp3', $old),
  (3, NULL, 'main/uploads/3/original.mp4', NULL, $old)"
sql "INSERT INTO $SCHEMA.clips (id, job_id, status, key, created_at) VALUES
  (1, 1, 'completed', 'main/clips/1/recent.mp4', now() - interval '1 day'),
  (2, 1, 'completed', 'main/clips/1/expired.mp4', $old),
  (3, 2, 'rendering', 'main/clips/2/rendering.mp4', $old),
  (4, 2, 'failed', 'main/clips/2/failed.mp4', $old),
  (5, 1, 'completed', 'main/clips/1/my clip é+1.mp4', now())"
# One key per line (keys may hold spaces).
keep_main="main/clips/1/recent.mp4
main/clips/2/rendering.mp4
main/uploads/2/original.mp4
main/uploads/2/audio.mp3
main/uploads/3/original.mp4
main/clips/1/my clip é+1.mp4"
gone_main="main/uploads/1/original.mp4
main/uploads/1/audio.mp3
main/clips/1/expired.mp4
main/clips/2/failed.mp4
main/orphans/a.tmp
main/orphans/b c+d.tmp"
while read -r k; do put_object "$CUBE/$k"; done <<<"$keep_main
$gone_main"

start_worker --concurrency 2 || { echo "Bail out! worker did not start"; exit 1; }

sweep '"prefix":"main/","min_age_hours":24'
is "$(f status)" ok "fresh uploads: a sweep with min_age 24 h succeeds"
is "$(f deleted_count)" 0 "and deletes nothing: every object is younger than a day"
is "$(f kept_by_reason.recent)" 6 "the would-be candidates are kept as recent"

sweep '"prefix":"main/","min_age_hours":0,"dry_run":true'
is "$(f status)" ok "dry run: ok"
is "$(f deleted_count)" 6 "dry run: six candidates"
is "$(f total_objects_scanned)" 12 "dry run: twelve objects scanned under the prefix"
is "$(f scan_prefix)" "$CUBE/main/" "dry run: scan prefix is the full prefix"
is "$(f candidates_by_reason.orphan)" 2 "dry run: two orphans"
is "$(f candidates_by_reason.temporary)" 2 "dry run: two temporary files"
is "$(f candidates_by_reason.expired_clip)" 2 "dry run: two expired clips"
is "$(f kept_by_reason.active)" 4 "dry run: four kept as active"
is "$(f kept_by_reason.retained_clip)" 2 "dry run: two retained clips"
is "$(f delete_ratio)" 0.5 "dry run: the ratio is reported"
like "$(f sample_candidate_keys)" "$CUBE/main/orphans/a.tmp" "dry run: sample keys are full keys"
is "$(f objects_in_database)" 10 "dry run: ten keys in the database"
present main/uploads/1/original.mp4
ok $? "dry run deleted nothing"

sweep '"prefix":"main/","min_age_hours":0'
is "$(f status)" ok "real sweep: ok"
is "$(f deleted_count)" 6 "real sweep: six deleted"
is "$(f execution.planned_candidates)" 6 "real sweep: the plan is reported"
lost=0
while read -r k; do present "$k" || { lost=$((lost + 1)); diag "LOST: $k"; }; done <<<"$keep_main"
is "$lost" 0 "zero preserved objects lost under main/"
left=0
while read -r k; do present "$k" && { left=$((left + 1)); diag "left: $k"; }; done <<<"$gone_main"
is "$left" 0 "every candidate under main/ is gone"
for k in lambda/pkg.zip listings/1.json books/515/image_00.webp root.txt "other-$CUBE/main/orphan.mp4"; do
  root_present "$k"
  ok $? "outside the cube: $k survives"
done

sweep '"prefix":"main/","min_age_hours":0'
is "$(f deleted_count)" 0 "a second sweep deletes nothing"

# --- orph/: 98% orphans must be refused unless forced.
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key) VALUES (10, 'uploading', 'orph/keep.mp4')"
keys=("$CUBE/orph/keep.mp4")
for i in $(seq 1 49); do keys+=("$CUBE/orph/o$i"); done
put_objects "${keys[@]}" || { echo "Bail out! cannot seed orph/"; exit 1; }
sweep '"prefix":"orph/","min_age_hours":0'
is "$(f status)" refused "98% orphans: refused"
like "$(f refused_reason)" "delete ratio 98.0%" "and says why"
is "$(list_keys | grep -c "^$CUBE/orph/")" 50 "refused: nothing deleted"
sweep '"prefix":"orph/","min_age_hours":0,"dry_run":true'
is "$(f status)" refused "a dry run says a real run would be refused"
sweep '"prefix":"orph/","min_age_hours":0,"force":true'
is "$(f status)" ok "forced: ok"
is "$(f deleted_count)" 49 "forced: the orphans are deleted"
like "$(f warnings)" "force" "forced: a warning says so"
present orph/keep.mp4
ok $? "forced: the active job's upload survives"

# --- books/: seed 001, database keys that never match the listing.
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key) VALUES
  (20, 'processing', 'books/515/IMAGE_00.webp'), (21, 'processing', 'books/516/IMAGE_00.webp')"
for k in books/515/image_00.webp books/516/image_00.webp; do put_object "$CUBE/$k"; done
sweep '"prefix":"books/","min_age_hours":0,"force":true'
is "$(f status)" refused "key mismatch: refused even with force"
like "$(f refused_reason)" "key mismatch" "and names the mismatch"
present books/515/image_00.webp && present books/516/image_00.webp
ok $? "key mismatch: nothing deleted"

# --- stored/: keys stored with the cube prefix.
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key) VALUES
  (30, 'processing', '$CUBE/stored/a.mp4')"
put_object "$CUBE/stored/a.mp4"
put_object "$CUBE/stored/b.mp4"
sweep '"min_age_hours":0,"force":true,"dry_run":true'
is "$(f status)" refused "database keys that include the cube prefix: refused"
like "$(f errors)" "cube prefix" "and says why"

sql "DELETE FROM $SCHEMA.jobs WHERE id = 30"

# --- lead/: a key stored with a leading slash, outside the swept
# sub-prefix's filter: it must still refuse the sweep, not hide.
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key) VALUES
  (31, 'processing', '/lead/a.mp4')"
put_object "$CUBE/lead/a.mp4"
sweep '"prefix":"lead/","min_age_hours":0,"force":true'
is "$(f status)" refused "a database key with a leading slash: refused"
like "$(f refused_reason)" "cannot name an object" "and says why"
present lead/a.mp4
ok $? "the object it meant survives"
sql "DELETE FROM $SCHEMA.jobs WHERE id = 31"

stop_worker
is "$STOP_RC" 0 "worker stops cleanly"

# --- A database that fails halfway: a view that errors on row 1500.
sql "CREATE TABLE $SCHEMA.many_clips AS SELECT g AS id, 1 AS job_id,
  'completed' AS status, 'half/k' || lpad(g::text, 5, '0') AS key,
  now() AS created_at FROM generate_series(1, 3000) g"
sql "CREATE VIEW $SCHEMA.bad_clips AS SELECT id, job_id, status,
  CASE WHEN id = 1500 THEN (1 / (id - 1500))::text ELSE key END AS key,
  created_at FROM $SCHEMA.many_clips"
put_object "$CUBE/half/orphan.tmp"
CLIPSWEEP_CLIPS_TABLE="$SCHEMA.bad_clips" start_worker
sweep '"prefix":"half/","min_age_hours":0,"force":true'
is "$(f status)" failed "a database error mid-stream fails the sweep"
like "$(f errors)" "22012" "with the database's error"
present half/orphan.tmp
ok $? "and nothing was deleted"
stop_worker
done_testing
