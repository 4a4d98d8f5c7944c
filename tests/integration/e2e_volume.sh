#!/usr/bin/env bash
# A local volume (CLIPSWEEP_STORAGE_URL=file://, seeds 002 and 003): the
# same job_cleanup and retention_sweep as on S3, with the same guards and
# reports, on a directory.  Symbolic links are never followed nor removed,
# nothing outside the volume directory is touched, and directories stay.
# Effects are checked with find(1) and test(1).
. "$(dirname "$0")/lib.sh"
make_schema || exit 1

TOP=$T_TMP/srv
VOL=$TOP/media
unset CLOUDCUBE_URL CLOUDCUBE_ACCESS_KEY_ID CLOUDCUBE_SECRET_ACCESS_KEY
export CLIPSWEEP_STORAGE_URL="file://$VOL"

mk() { # REL [AGE]: a file in the volume, AGE old (default 10 days)
  mkdir -p "$(dirname "$VOL/$1")" &&
    printf 'data for %s' "$1" >"$VOL/$1" &&
    touch -d "${2:-10 days ago}" "$VOL/$1"
}
there() { [ -e "$VOL/$1" ] || [ -L "$VOL/$1" ]; }
files() { (cd "$VOL" && find . -type f | sed 's|^\./||' | LC_ALL=C sort); }

old="now() - interval '10 days'"
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key, created_at) VALUES
  (1, 'completed', 'uploads/1/original.mp4', 'uploads/1/audio.mp3', $old),
  (2, 'rendering', 'uploads/2/original.mp4', NULL, $old),
  (3, 'rendering', 'uploads/3/original.mp4', NULL, $old)"
sql "INSERT INTO $SCHEMA.clips (id, job_id, status, key, created_at) VALUES
  (1, 1, 'completed', 'clips/1/recent.mp4', now() - interval '1 day'),
  (2, 1, 'completed', 'clips/1/expired.mp4', $old),
  (3, 2, 'rendering', 'clips/2/rendering.mp4', $old),
  (4, 1, 'completed', 'clips/1/recent two.mp4', now()),
  (5, 1, 'completed', 'clips/1/third.mp4', now())"
keep="clips/1/recent two.mp4
clips/1/recent.mp4
clips/1/third.mp4
clips/2/rendering.mp4
uploads/2/original.mp4
uploads/3/original.mp4"
for k in uploads/1/original.mp4 uploads/1/audio.mp3 clips/1/expired.mp4 \
  "orphans/a.tmp" "orphans/b c+d.tmp" deep/nested/dir/old.bin \
  clips/1/recent.mp4 "clips/1/recent two.mp4" clips/2/rendering.mp4 \
  uploads/2/original.mp4 clips/1/third.mp4 uploads/3/original.mp4; do
  mk "$k" || { echo "Bail out! cannot make $k"; exit 1; }
done
mk orphans/new.tmp now
# Not objects, or not in the volume: all must stay.
mkdir -p "$TOP/elsewhere" "$TOP/media-other"
echo precious >"$TOP/elsewhere/precious.mp4"
echo sibling >"$TOP/media-other/x.mp4"
touch -d '10 days ago' "$TOP/elsewhere/precious.mp4" "$TOP/media-other/x.mp4"
ln -s ../../elsewhere/precious.mp4 "$VOL/orphans/link.tmp"
ln -s ../elsewhere "$VOL/linked"
touch -h -d '10 days ago' "$VOL/orphans/link.tmp" "$VOL/linked"
mkfifo "$VOL/orphans/fifo"
mkdir -p "$VOL/empty"

# Both storages named: refused at start-up, naming both.
rc=0
CLOUDCUBE_URL=$S3_ENDPOINT/cloud-cube/x "$WORKER" --drain >"$T_TMP/both.log" 2>&1 || rc=$?
is "$rc" 78 "CLOUDCUBE_URL and CLIPSWEEP_STORAGE_URL both set: exit 78 (EX_CONFIG)"
like "$(cat "$T_TMP/both.log")" "CLIPSWEEP_STORAGE_URL and CLOUDCUBE_URL are both set" \
  "naming both"
rc=0
CLIPSWEEP_STORAGE_URL=file:///srv/../etc "$WORKER" --drain >"$T_TMP/dots.log" 2>&1 || rc=$?
is "$rc" 78 "a volume path with .. is refused"

start_worker --concurrency 2 || { echo "Bail out! worker did not start"; exit 1; }
like "$(cat "$T_TMP/worker.log")" "file://$VOL" "the started line names the volume"

job() { # JOB_ID [ARGS]: the result JSON in JOB_OUT
  JOB_OUT=$("$CLI" job "$@" --wait=20 --json 2>>"$T_TMP/cli.log") || true
}

job 1 --dry-run
is "$(echo "$JOB_OUT" | json deleted_count)" 2 "job dry run: two candidates"
like "$(echo "$JOB_OUT" | json deleted_keys)" "media/uploads/1/original.mp4" \
  "keys carry the volume's name as their prefix"
there uploads/1/original.mp4
ok $? "job dry run: nothing removed"

job 1
is "$(echo "$JOB_OUT" | json status)" ok "job_cleanup on a volume: ok"
is "$(echo "$JOB_OUT" | json deleted_count)" 2 "original and audio deleted"
a='data for uploads/1/original.mp4' b='data for uploads/1/audio.mp3'
want=$(( ${#a} + ${#b} ))
is "$(echo "$JOB_OUT" | json deleted_size_bytes)" "$want" "their sizes, from the volume"
! there uploads/1/original.mp4 && ! there uploads/1/audio.mp3
ok $? "both files are gone (test -e)"
there uploads/1
ok $? "their directory stays"
job 1
is "$(echo "$JOB_OUT" | json already_absent_count)" 2 "again: both already absent"
job 2
is "$(echo "$JOB_OUT" | json errors.0.code)" clips_not_finished "an unfinished job: refused"
there uploads/2/original.mp4
ok $? "and its upload stays"

# The files were placed a moment ago with mtimes 10 days old (as rsync -a
# or cp -p would): their age is their ctime's, so they are all recent.
sweep '"min_age_hours":24'
is "$(f status)" ok "sweep, min age 24 h: ok"
is "$(f deleted_count)" 0 "files placed a moment ago with old mtimes are recent: none deleted"
is "$(f total_objects_scanned)" 11 "eleven regular files scanned (links, FIFO, directories are not objects)"
there orphans/a.tmp
ok $? "the old-looking orphan stays"

sweep '"min_age_hours":0,"dry_run":true'
is "$(f status)" ok "sweep dry run: ok"
is "$(f deleted_count)" 5 "five candidates"
is "$(f scan_prefix)" "media/" "scan prefix: the volume's name"
there orphans/a.tmp
ok $? "sweep dry run: nothing removed"

sweep '"min_age_hours":0'
is "$(f status)" ok "sweep: ok"
is "$(f deleted_count)" 5 "five deleted"
is "$(files)" "$keep" "exactly the protected and recent files are left (find)"
[ -L "$VOL/orphans/link.tmp" ] && [ -f "$TOP/elsewhere/precious.mp4" ]
ok $? "an old symbolic link in orphans/ stays, and so does its target"
[ -L "$VOL/linked" ]
ok $? "a linked directory stays, not walked"
[ -p "$VOL/orphans/fifo" ] && [ -d "$VOL/empty" ] && [ -d "$VOL/deep/nested/dir" ]
ok $? "a FIFO and the directories stay"
[ -f "$TOP/media-other/x.mp4" ]
ok $? "a sibling directory whose name starts with the volume's is untouched"

stop_worker
is "$STOP_RC" 0 "the worker stops cleanly"
done_testing
