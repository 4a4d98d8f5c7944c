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
