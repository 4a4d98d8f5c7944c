#!/usr/bin/env bash
# bench/volume.sh: a retention sweep on a local volume
# (CLIPSWEEP_STORAGE_URL=file://), against real Redis and PostgreSQL, with
# GNU find and rclone deleting the same files in the same run.
#
#   bench/volume.sh [N] [LAYOUT]     default: 100000 files, layout "dirs"
#
# LAYOUT "dirs" spreads the files over 100 directories, "flat" puts them
# all in one.  All are 30 days old; an active job refers to every fifth
# (20% kept), the rest are orphans.  Each tool runs on a fresh copy of the
# tree (made with cp -al, so the copies cost no data):
#
#   clipsweep  clipsweep-worker --drain, one retention_sweep (min age 0:
#              the copies were just made, and a file's age is the later of
#              its mtime and ctime; force:
#              80% orphans is above the default delete ratio); keeps 20%
#   find       find DIR -type f -mtime +1 -delete (deletes 100%)
#   rclone     rclone delete --min-age 24h DIR (deletes 100%)
#
# Prints a Markdown table: wall time, CPU time, peak RSS (GNU time), files
# deleted and left (counted with find).
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

N=${1:-100000}
LAYOUT=${2:-dirs}

svc_init
svc_start_redis >/dev/null
svc_start_postgres >/dev/null
export CLIPSWEEP_REDIS_URL=$REDIS_URL CLIPSWEEP_DATABASE_URL=$DATABASE_URL
export CLIPSWEEP_LOG_LEVEL=warn CLIPSWEEP_METRICS_LISTEN=none
unset CLOUDCUBE_URL

SRC=$SVC_DIR/src/media
mkdir -p "$SRC"
# The tree: k<i>.mp4 under d<i % 100>/ (or all in one directory).
/usr/bin/python3 - "$SRC" "$N" "$LAYOUT" <<'PY'
import os, sys, time
root, n, layout = sys.argv[1], int(sys.argv[2]), sys.argv[3]
old = time.time() - 30 * 86400
for i in range(n):
    d = os.path.join(root, "d%02d" % (i % 100)) if layout == "dirs" else root
    if i < 100 or layout != "dirs":
        os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "k%09d.mp4" % i)
    with open(p, "wb") as f:
        f.write(b"x" * 100)
    os.utime(p, (old, old))
PY
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 <<SQL
\i sql/schema.sql
INSERT INTO jobs (id, status, original_key)
  SELECT i, 'processing', $(if [ "$LAYOUT" = dirs ]; then
    echo "'d' || lpad((i % 100)::text, 2, '0') || '/k' || lpad(i::text, 9, '0') || '.mp4'"
  else
    echo "'k' || lpad(i::text, 9, '0') || '.mp4'"
  fi)
  FROM generate_series(0, $N - 1, 5) i;
ANALYZE jobs;
SQL

timed() { # NAME CMD...: one row
  local name=$1 vol=$SVC_DIR/run-$1/media
  shift
  rm -rf "$SVC_DIR/run-$name"
  mkdir -p "$SVC_DIR/run-$name"
  cp -al "$SRC" "$vol"
  sync
  VOL=$vol /usr/bin/time -f "%M %e %U %S" -o "$SVC_DIR/time" "$@" \
    >"$SVC_DIR/$name.log" 2>&1
  read -r rss wall user sys <"$SVC_DIR/time"
  left=$(find "$vol" -type f | wc -l)
  printf '| %s | %s | %s | %.2f | %.2f | %.1f | %d | %d |\n' "$name" "$N" \
    "$LAYOUT" "$wall" "$(echo "$user + $sys" | bc)" \
    "$(echo "$rss / 1024" | bc -l)" "$((N - left))" "$left"
  rm -rf "$SVC_DIR/run-$name"
}

run_clipsweep() {
  export CLIPSWEEP_STORAGE_URL="file://$VOL"
  redis-cli -u "$REDIS_URL" LPUSH clipsweep:queue:sweeps \
    '{"type":"retention_sweep","id":"vol-'"$RANDOM"'","min_age_hours":0,"force":true}' >/dev/null
  build/worker/clipsweep-worker --drain --queues sweeps --concurrency 1
}
export -f run_clipsweep
export REDIS_URL

echo "| tool | files | layout | wall (s) | CPU (s) | peak RSS (MiB) | deleted | left |"
echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
timed clipsweep bash -c run_clipsweep
timed find bash -c 'find "$VOL" -type f -mtime +1 -delete'
timed rclone bash -c 'env -u AWS_CA_BUNDLE rclone delete --min-age 24h "$VOL"'
