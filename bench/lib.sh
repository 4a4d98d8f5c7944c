# shellcheck shell=bash
# bench/lib.sh: what every benchmark needs first.  Sourced from bench/*.sh:
# dependencies installed, GNU time present, the optimized build current,
# and scripts/lib/services.sh loaded (throwaway Redis and PostgreSQL).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
# shellcheck source=scripts/lib/services.sh
. scripts/lib/services.sh
clipsweep_deps
command -v /usr/bin/time >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
}
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
# Benchmarks may run workers side by side: no metrics endpoints.
export CLIPSWEEP_METRICS_LISTEN=none

# bench_s3mem [S3MEM OPTIONS...]: the project's in-memory S3 server on a
# free port with the bucket cloud-cube, logging to $SVC_DIR/logs/s3mem.log;
# sets S3MEM (its pid), S3PORT and S3URL.  It is stopped on exit through
# services.sh's hook, so that its EXIT trap still stops the other servers.
bench_s3mem() {
  rm -f "$SVC_DIR/s3mem.port"
  build/tests/s3mem/s3mem --listen 127.0.0.1:0 --ready-file "$SVC_DIR/s3mem.port" \
    --bucket cloud-cube "$@" 2>>"$SVC_DIR/logs/s3mem.log" &
  S3MEM=$!
  local _
  for _ in $(seq 1 100); do [ -s "$SVC_DIR/s3mem.port" ] && break; sleep 0.05; done
  S3PORT=$(cat "$SVC_DIR/s3mem.port")
  S3URL="http://127.0.0.1:$S3PORT"
}
svc_on_exit_hook() { [ -z "${S3MEM:-}" ] || kill "$S3MEM" 2>/dev/null || true; }
