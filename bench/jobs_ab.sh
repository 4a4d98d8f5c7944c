#!/usr/bin/env bash
# bench/jobs_ab.sh: two worker binaries on the same per-job work, in turn,
# with each process's CPU per task (worker, Redis, s3mem).
#
#   bench/jobs_ab.sh OTHER_WORKER [TASKS] [CONCURRENCY] [ROUNDS]
#
# OTHER_WORKER is another build's clipsweep-worker (e.g. from a git
# worktree of an older commit); build/worker/clipsweep-worker is the
# other side.  Defaults: 20000 tasks, concurrency 256, 2 rounds.
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
OTHER=${1:?usage: bench/jobs_ab.sh OTHER_WORKER [TASKS] [CONCURRENCY] [ROUNDS]}
N=${2:-20000} C=${3:-256} ROUNDS=${4:-2}

svc_init
svc_start_redis >/dev/null
svc_start_postgres >/dev/null
bench_s3mem
export CLIPSWEEP_REDIS_URL=$REDIS_URL CLIPSWEEP_DATABASE_URL=$DATABASE_URL
export CLOUDCUBE_ACCESS_KEY_ID=bench CLOUDCUBE_SECRET_ACCESS_KEY=bench
export CLOUDCUBE_URL=$S3URL/cloud-cube/cube CLIPSWEEP_LOG_LEVEL=warn
psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 -f sql/schema.sql >/dev/null
psql "$DATABASE_URL" -X -q -c "INSERT INTO jobs (id, status, original_key, audio_key)
  SELECT g, 'completed', 'up/' || g || '.mp4', 'audio/' || g || '.mp3'
  FROM generate_series(1, $N) g; ANALYZE" >/dev/null
REDIS_PID=$(redis-cli -u "$REDIS_URL" INFO server | tr -d '\r' | sed -n 's/^process_id://p')
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

run() { # WORKER: one round on fresh objects and a full queue
  awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++)
    printf "cube/up/%d.mp4\t1000\t1000000000\ncube/audio/%d.mp3\t100\t1000000000\n", i, i }' \
    >"$SVC_DIR/seed"
  curl -sf --data-binary @"$SVC_DIR/seed" "$S3URL/cloud-cube?s3mem-seed=" >/dev/null
  awk -v n="$N" 'BEGIN { for (i = 1; i <= n; i++)
    printf "LPUSH clipsweep:queue:jobs %c{\"type\":\"job_cleanup\",\"id\":\"t%d\",\"job_id\":\"%d\"}%c\n", 39, i, i, 39 }' |
    redis-cli -u "$REDIS_URL" --pipe >/dev/null
  local r0 s0 r1 s1 t0 t1 u s
  r0=$(ticks "$REDIS_PID") s0=$(ticks "$S3MEM") t0=$(date +%s%N)
  /usr/bin/time -f "%U %S" -o "$SVC_DIR/time" "$1" --drain --queues jobs \
    --concurrency "$C" >"$SVC_DIR/worker.log" 2>&1
  t1=$(date +%s%N) r1=$(ticks "$REDIS_PID") s1=$(ticks "$S3MEM")
  read -r u s <"$SVC_DIR/time"
  awk -v w="$2" -v n="$N" -v ns=$((t1 - t0)) -v u="$u" -v s="$s" \
    -v r=$((r1 - r0)) -v m=$((s1 - s0)) 'BEGIN {
    printf "| %s | %.0f | %.0f | %.0f | %.0f |\n", w, n / (ns / 1e9),
      (u + s) * 1e6 / n, r * 1e4 / n, m * 1e4 / n }'
}

echo "| worker | tasks/s | worker µs/task | Redis µs/task | s3mem µs/task |"
echo "| --- | ---: | ---: | ---: | ---: |"
for _ in $(seq 1 "$ROUNDS"); do
  run build/worker/clipsweep-worker this
  run "$OTHER" other
done
