#!/usr/bin/env bash
# bench/sweep_memory.sh: a retention sweep's peak memory and time as the
# bucket grows (10^4, 10^5, 10^6 objects), against the project's in-memory
# S3 server and real Redis and PostgreSQL.  20% of the objects are kept by
# the database (an active job refers to them); the rest are orphans.
#
#   bench/sweep_memory.sh [N...]        default: 10000 100000 1000000
#
# Prints a Markdown table: for each N, a dry run and a real run (force,
# since 80% orphans is above the default delete ratio), with the worker's
# peak RSS (GNU time's %M), wall time and CPU time, and checks that the
# kept objects are all still there afterwards.
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000 1000000)

svc_init
svc_start_redis
svc_start_postgres
bench_s3mem

export CLIPSWEEP_REDIS_URL=$REDIS_URL CLIPSWEEP_DATABASE_URL=$DATABASE_URL
export CLOUDCUBE_ACCESS_KEY_ID=bench CLOUDCUBE_SECRET_ACCESS_KEY=bench
export CLIPSWEEP_LOG_LEVEL=warn

run_sweep() { # N DRY_RUN -> "rss_kib wall_s cpu_s scanned candidates deleted"
  local n=$1 dry=$2 id out
  id="bench-$n-$dry"
  redis-cli -u "$REDIS_URL" LPUSH clipsweep:queue:sweeps \
    "{\"type\":\"retention_sweep\",\"id\":\"$id\",\"min_age_hours\":0,\"force\":true,\"dry_run\":$dry}" >/dev/null
  /usr/bin/time -f "%M %e %U %S" -o "$SVC_DIR/time" \
    build/worker/clipsweep-worker --drain --queues sweeps --concurrency 1 \
    >"$SVC_DIR/worker-$id.log" 2>&1
  out=$(redis-cli -u "$REDIS_URL" GET "clipsweep:result:$id")
  read -r rss wall user sys <"$SVC_DIR/time"
  echo "$rss $wall $(echo "$user + $sys" | bc) $(echo "$out" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
print(r["total_objects_scanned"], r["plan"]["candidates"] if "plan" in r else r["execution"]["planned_candidates"] if "execution" in r else r["deleted_count"], r["deleted_count"], r["status"])')"
}

echo "| objects | run | peak RSS (MiB) | wall (s) | worker CPU (s) | CPU per object (µs) | scanned | deleted | status |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
for n in "${sizes[@]}"; do
  cube="bench$n"
  export CLOUDCUBE_URL="http://127.0.0.1:$S3PORT/cloud-cube/$cube"
  export CLIPSWEEP_WORKER_ID="bench-$n"
  old=$(( $(date +%s) - 30 * 86400 ))
  awk -v n="$n" -v c="$cube" -v t="$old" \
    'BEGIN { for (i = 0; i < n; i++) printf "%s/media/k%09d.mp4\t1000\t%d\n", c, i, t }' \
    >"$SVC_DIR/seed"
  curl -sf --data-binary @"$SVC_DIR/seed" \
    "http://127.0.0.1:$S3PORT/cloud-cube?s3mem-seed" >/dev/null
  schema="b$n"
  psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE SCHEMA $schema;
SET search_path = $schema;
\i sql/schema.sql
INSERT INTO jobs (id, status, original_key)
  SELECT i, 'processing', 'media/k' || lpad(i::text, 9, '0') || '.mp4'
  FROM generate_series(0, $n - 1, 5) i;
ANALYZE jobs;
SQL
  export CLIPSWEEP_JOBS_TABLE="$schema.jobs" CLIPSWEEP_CLIPS_TABLE="$schema.clips"
  for dry in true false; do
    read -r rss wall cpu scanned planned deleted status < <(run_sweep "$n" "$dry")
    printf '| %s | %s | %.1f | %s | %s | %.2f | %s | %s | %s |\n' "$n" \
      "$([ "$dry" = true ] && echo "dry run" || echo "real")" \
      "$(echo "$rss / 1024" | bc -l)" "$wall" "$cpu" \
      "$(echo "$cpu * 1000000 / $n" | bc -l)" "$scanned" "$deleted" "$status"
  done
  kept=$(curl -sf "http://127.0.0.1:$S3PORT/cloud-cube?list-type=2&prefix=$cube/&max-keys=1" >/dev/null && \
    env -u AWS_CA_BUNDLE AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x /usr/bin/aws \
      --endpoint-url "http://127.0.0.1:$S3PORT" s3api list-objects-v2 --bucket cloud-cube \
      --prefix "$cube/" --query 'length(Contents)' --output text 2>/dev/null |
      awk '{ s += $1 } END { print s }' || echo "?")
  echo "<!-- $n objects: $kept left after the real run (aws s3api), $((n / 5)) expected -->"
done
