#!/usr/bin/env bash
# bench/jobs.sh: per-job throughput and latency of job_cleanup tasks (an
# upload and its audio each), against the project's in-memory S3 server and
# real Redis and PostgreSQL.
#
#   bench/jobs.sh [--tasks N] [--concurrency 1,16,256] [--rate 1000]
#                 [--latency-ms 0,20]
#
# Throughput: N tasks are queued first, then one worker runs with --drain
# at each concurrency; tasks/s is N over the worker's wall time, with its
# CPU time and peak RSS, and s3mem's CPU.  Latency: a paced producer pushes
# tasks at --rate per second for 10 s into a running worker (concurrency
# 256); enqueue-to-result latency is finished_at minus enqueued_at of each
# result.  --latency-ms adds that delay to every S3 request (s3mem fault
# rule "delay=N"), as a real region would.  Prints Markdown tables.
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TASKS=20000
CONCS=1,16,256
RATE=1000
LATS=0
while [ $# -gt 0 ]; do
  case $1 in
    --tasks) TASKS=$2; shift ;;
    --concurrency) CONCS=$2; shift ;;
    --rate) RATE=$2; shift ;;
    --latency-ms) LATS=$2; shift ;;
    *) echo "bench/jobs.sh: unknown option $1" >&2; exit 64 ;;
  esac
  shift
done

svc_init
svc_start_redis >/dev/null
svc_start_postgres >/dev/null
# The server checks every request's signature, as a real one does.
AK=benchkey SK=bench-secret
bench_s3mem --access-key "$AK" --secret-key "$SK"

export CLIPSWEEP_REDIS_URL=$REDIS_URL CLIPSWEEP_DATABASE_URL=$DATABASE_URL
export CLOUDCUBE_ACCESS_KEY_ID=$AK CLOUDCUBE_SECRET_ACCESS_KEY=$SK
export CLOUDCUBE_URL=$S3URL/cloud-cube/cube
export CLIPSWEEP_LOG_LEVEL=warn
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null
rcli() { redis-cli -u "$REDIS_URL" "$@"; }

IFS=, read -r -a lats <<<"$LATS"
IFS=, read -r -a concs <<<"$CONCS"
MAXJOBS=$(( (TASKS * ${#concs[@]} + RATE * 10) * ${#lats[@]} ))
psql "$DATABASE_URL" -X -q -c "INSERT INTO jobs (id, status, original_key, audio_key)
  SELECT g, 'completed', 'up/' || g || '.mp4', 'audio/' || g || '.mp3'
  FROM generate_series(1, $MAXJOBS) g" >/dev/null
psql "$DATABASE_URL" -X -q -c "ANALYZE" >/dev/null

seed() { # FIRST LAST: the objects of jobs FIRST..LAST
  awk -v a="$1" -v b="$2" 'BEGIN { for (i = a; i <= b; i++)
    printf "cube/up/%d.mp4\t1000\t1000000000\ncube/audio/%d.mp3\t100\t1000000000\n", i, i }' \
    >"$SVC_DIR/seed"
  s3post "$S3URL/cloud-cube?s3mem-seed=" "$SVC_DIR/seed"
}
s3post() { # URL FILE: a signed POST of FILE
  curl -sf --aws-sigv4 aws:amz:us-east-1:s3 --user "$AK:$SK" \
    -H "x-amz-content-sha256: $(sha256sum <"$2" | cut -c1-64)" \
    --data-binary @"$2" "$1" >/dev/null
}
faults() { printf '%s' "$1" >"$SVC_DIR/faults"; s3post "$S3URL/?s3mem-faults=" "$SVC_DIR/faults"; }
cpu_of() { # PID: user+system CPU seconds so far
  awk '{ printf "%.2f\n", ($14 + $15) / 100 }' "/proc/$1/stat"
}

# queue FIRST LAST: one task per job, pushed in one pipe
queue() {
  awk -v a="$1" -v b="$2" 'BEGIN { for (i = a; i <= b; i++)
    printf "LPUSH clipsweep:queue:jobs %c{\"type\":\"job_cleanup\",\"id\":\"t%d\",\"job_id\":\"%d\"}%c\n", 39, i, i, 39 }' |
    rcli --pipe >/dev/null
}

echo "### Throughput: $TASKS tasks queued, one worker with --drain"
echo
echo "| S3 latency | concurrency | tasks/s | wall (s) | worker CPU (s) | worker CPU per task (µs) | peak RSS (MiB) | s3mem CPU (s) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
next=1
for lat in "${lats[@]}"; do
  if [ "$lat" -gt 0 ]; then faults "delay=$lat"; else faults ""; fi
  for c in "${concs[@]}"; do
    n=$TASKS
    # At 20 ms a round trip, concurrency 1 cannot finish 20,000 in time.
    [ "$c" -lt 16 ] && [ "$n" -gt 2000 ] && n=2000
    [ "$lat" -gt 0 ] && [ "$c" -lt 16 ] && n=200
    first=$next last=$((next + n - 1)) next=$((last + 1))
    seed "$first" "$last"
    queue "$first" "$last"
    s0=$(cpu_of "$S3MEM")
    /usr/bin/time -f "%M %e %U %S" -o "$SVC_DIR/time" \
      build/worker/clipsweep-worker --drain --queues jobs --concurrency "$c" \
      >>"$SVC_DIR/worker.log" 2>&1
    s1=$(cpu_of "$S3MEM")
    read -r rss wall user sys <"$SVC_DIR/time"
    # Every task ended ok: the last one's result, and no object left.
    [ "$(rcli GET "clipsweep:result:t$last" | grep -c '"status":"ok"')" = 1 ] ||
      echo "WARNING: task t$last did not end ok" >&2
    awk -v lat="$lat" -v c="$c" -v n="$n" -v w="$wall" -v u="$user" -v s="$sys" \
      -v r="$rss" -v s3="$(echo "$s1 - $s0" | bc)" 'BEGIN {
      printf "| %d ms | %d | %.0f | %.2f | %.2f | %.0f | %.1f | %.2f |\n",
        lat, c, n / w, w, u + s, (u + s) * 1e6 / n, r / 1024, s3 }'
  done
done

echo
echo "### Latency: $RATE tasks/s for 10 s into a running worker (concurrency 256)"
echo
echo "| S3 latency | rate (tasks/s) | sent | results | p50 (ms) | p99 (ms) | max (ms) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for lat in "${lats[@]}"; do
  if [ "$lat" -gt 0 ]; then faults "delay=$lat"; else faults ""; fi
  n=$((RATE * 10))
  first=$next last=$((next + n - 1)) next=$((last + 1))
  seed "$first" "$last"
  build/worker/clipsweep-worker --queues jobs --concurrency 256 >>"$SVC_DIR/worker.log" 2>&1 &
  W=$!
  sleep 0.5
  out=$(/usr/bin/python3 bench/latency.py 127.0.0.1 "$REDIS_PORT" "$RATE" 10 "$first" || true)
  kill -TERM "$W"; wait "$W" || true
  echo "$out" | awk -v lat="$lat" -v rate="$RATE" '{
    printf "| %d ms | %d | %d | %d | %.1f | %.1f | %.1f |\n", lat, rate, $2, $4, $6, $8, $10 }'
done
