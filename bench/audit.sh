#!/usr/bin/env bash
# bench/audit.sh: what the audit trail (CLIPSWEEP_AUDIT=postgres) costs a
# retention sweep.  The same sweep of N objects (80% orphans, deleted; 20%
# kept by the database), run with the audit off and on, alternately, R
# times each, against the project's in-memory S3 server and real Redis
# and PostgreSQL; the bucket is seeded again before every run.
#
#   bench/audit.sh [N [R]]      default: 100000 objects, 3 rounds
#
# Prints a Markdown table of the wall times (median) and the ratio, and
# checks that the audited runs wrote one row per deleted object (psql).
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

n=${1:-100000}
rounds=${2:-3}

svc_init
svc_start_redis
svc_start_postgres
bench_s3mem

export CLIPSWEEP_REDIS_URL=$REDIS_URL CLIPSWEEP_DATABASE_URL=$DATABASE_URL
export CLOUDCUBE_ACCESS_KEY_ID=bench CLOUDCUBE_SECRET_ACCESS_KEY=bench
export CLIPSWEEP_LOG_LEVEL=warn CLIPSWEEP_WORKER_ID=bench-audit
export CLOUDCUBE_URL="http://127.0.0.1:$S3PORT/cloud-cube/audit"
export CLIPSWEEP_JOBS_TABLE=ba.jobs CLIPSWEEP_CLIPS_TABLE=ba.clips
export CLIPSWEEP_AUDIT_TABLE=ba.audit
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 <<SQL
CREATE SCHEMA ba;
SET search_path = ba;
\i sql/schema.sql
INSERT INTO jobs (id, status, original_key)
  SELECT i, 'processing', 'media/k' || lpad(i::text, 9, '0') || '.mp4'
  FROM generate_series(0, $n - 1, 5) i;
ANALYZE jobs;
SQL
build/producer/clipsweep migrate >/dev/null
old=$(( $(date +%s) - 30 * 86400 ))
awk -v n="$n" -v t="$old" \
  'BEGIN { for (i = 0; i < n; i++) printf "audit/media/k%09d.mp4\t1000\t%d\n", i, t }' \
  >"$SVC_DIR/seed"

run() { # AUDIT ROUND -> wall seconds
  local audit=$1 id="audit-$1-$2" r
  curl -sf --data-binary @"$SVC_DIR/seed" \
    "http://127.0.0.1:$S3PORT/cloud-cube?s3mem-seed" >/dev/null
  redis-cli -u "$REDIS_URL" LPUSH clipsweep:queue:sweeps \
    "{\"type\":\"retention_sweep\",\"id\":\"$id\",\"min_age_hours\":0,\"force\":true}" >/dev/null
  /usr/bin/time -f "%e" -o "$SVC_DIR/time" env CLIPSWEEP_AUDIT="$audit" \
    build/worker/clipsweep-worker --drain --queues sweeps --concurrency 1 \
    >"$SVC_DIR/worker-$id.log" 2>&1
  r=$(redis-cli -u "$REDIS_URL" GET "clipsweep:result:$id")
  [ "$(echo "$r" | /usr/bin/python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["status"], r["deleted_count"])')" = "ok $((n - n / 5))" ] || {
    echo "bench/audit.sh: run $id did not delete $((n - n / 5)): $r" >&2
    exit 1
  }
  if [ "$audit" = postgres ]; then
    rows=$(psql "$DATABASE_URL" -X -At -c "SELECT count(*) FROM ba.audit WHERE task_id = '$id'")
    [ "$rows" = $((n - n / 5)) ] || {
      echo "bench/audit.sh: run $id wrote $rows audit rows, not $((n - n / 5))" >&2
      exit 1
    }
  fi
  cat "$SVC_DIR/time"
}

off=() on=()
for r in $(seq 1 "$rounds"); do
  off+=("$(run off "$r")")
  on+=("$(run postgres "$r")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
m_off=$(median "${off[@]}")
m_on=$(median "${on[@]}")
echo "| objects | deleted | audit off: wall (s) | audit on: wall (s) | cost |"
echo "| ---: | ---: | --- | --- | ---: |"
printf '| %s | %s | %s (median of %s) | %s (median of %s) | %+.1f%% |\n' "$n" "$((n - n / 5))" \
  "$m_off" "${off[*]}" "$m_on" "${on[*]}" "$(echo "($m_on - $m_off) * 100 / $m_off" | bc -l)"
