#!/usr/bin/env bash
# bench/sweep_peers.sh: a retention sweep against rclone and the AWS CLI on
# the same data and the same server, interleaved in one run.
#
#   bench/sweep_peers.sh [--sizes 100000,1000000] [--latency-ms 0,20]
#                        [--repeat 3] [--repeat-upto 100000]
#                        [--latency-upto [LAT:]N,...] [--cap SECONDS]
#                        [--rclone-n N] [--aws-n N] [--shards N]
#                        [--tools LIST] [--write-doc]
#
# Data: N objects under one prefix of the in-memory S3 server
# (build/tests/s3mem/s3mem, seeded in bulk with ?s3mem-seed), all 30 days
# old; an active job in PostgreSQL refers to every fifth one (20%
# preserved), the rest are orphans.  For every size and latency, and every
# repetition, each tool gets a freshly started s3mem holding the same
# data, in turn:
#
#   clipsweep  clipsweep-worker --drain, one retention_sweep (min_age_hours
#              24, force: 80% orphans is above the default delete ratio);
#              deletes the 80% orphans, keeps the 20%
#   clipsweep-sharded
#              the same sweep with "shards": N (--shards, default 8) and
#              --concurrency N: one worker runs the N key ranges at once
#   rclone     /usr/bin/rclone delete --min-age 24h --fast-list
#              --use-server-modtime --checkers N --transfers N
#   aws        /usr/bin/aws s3 rm --recursive --only-show-errors with
#              s3.max_concurrent_requests N (private AWS_CONFIG_FILE)
#
# The peers cannot ask the database, so they delete 100% of the prefix.
# --latency-ms L adds an s3mem fault rule "delay=L" (every S3 request is
# answered L ms late, as a real region's round trip); delayed runs are
# limited to sizes up to --latency-upto (default 100000; a list LAT:N,...
# sets it per latency, e.g. 20:1000000,100:100000).  Sizes up to
# --repeat-upto run --repeat times (default 3) and the run with the median
# wall time is reported; larger sizes run once.  A peer run is stopped
# after --cap seconds (default 900) and reported as "> cap", with its
# objects deleted per second from what it did delete.
#
# Measured per run: wall time (from start to exit), the client's CPU time
# (user + system) and peak RSS (GNU time), s3mem's CPU time during the run
# (/proc/PID/stat), the S3 requests by kind (s3mem fault rules that never
# fire, read from GET /?s3mem-faults) and the objects left afterwards.
#
# N defaults (the best of the values tried, see docs/BENCHMARKS.md):
# rclone 16 without latency, 1024 with; aws 32.  --tools LIST runs a subset
# (clipsweep,clipsweep-sharded,rclone,aws), e.g. to try other N.  The
# ratios are against clipsweep-sharded when it ran, else clipsweep.  --write-doc puts the table, the machine and the
# command into docs/BENCHMARKS.md between the sweep_peers markers (appending
# the section if it is missing).  Raw per-run figures: $SVC_DIR/runs.tsv,
# kept with CLIPSWEEP_KEEP_SVC=1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CMDLINE="bench/sweep_peers.sh${*:+ $*}"

sizes=100000,1000000
latencies=0,20
repeat=3
repeat_upto=100000
latency_upto=100000
cap=900
rclone_n=
aws_n=
write_doc=0
tools=clipsweep,clipsweep-sharded,rclone,aws
shards=8

die() { echo "sweep_peers: $*" >&2; exit 64; }
while [ $# -gt 0 ]; do
  case $1 in
    --sizes) sizes=${2:?}; shift 2 ;;
    --latency-ms) latencies=${2:?}; shift 2 ;;
    --repeat) repeat=${2:?}; shift 2 ;;
    --repeat-upto) repeat_upto=${2:?}; shift 2 ;;
    --latency-upto) latency_upto=${2:?}; shift 2 ;;
    --cap) cap=${2:?}; shift 2 ;;
    --rclone-n) rclone_n=${2:?}; shift 2 ;;
    --aws-n) aws_n=${2:?}; shift 2 ;;
    --tools) tools=${2:?}; shift 2 ;;
    --shards) shards=${2:?}; shift 2 ;;
    --write-doc) write_doc=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
IFS=, read -r -a sizes <<<"$sizes"
IFS=, read -r -a latencies <<<"$latencies"
IFS=, read -r -a tools <<<"$tools"
# latency_upto LAT -> the largest size run at LAT ms
upto_for() {
  local e def=100000
  IFS=, read -r -a _ups <<<"$latency_upto"
  for e in "${_ups[@]}"; do
    case $e in
      "$1":*) echo "${e#*:}"; return ;;
      *:*) ;;
      *) def=$e ;;
    esac
  done
  echo "$def"
}
[[ $latency_upto =~ ^([0-9]+:)?[0-9]+(,([0-9]+:)?[0-9]+)*$ ]] || die "bad --latency-upto $latency_upto"
for v in "${sizes[@]}" "${latencies[@]}" "$repeat" "$repeat_upto" "$cap" "$shards" \
  ${rclone_n:+"$rclone_n"} ${aws_n:+"$aws_n"}; do
  [[ $v =~ ^[0-9]+$ ]] || die "not a number: $v"
done
for t in "${tools[@]}"; do
  case $t in clipsweep | clipsweep-sharded | rclone | aws) ;; *) die "unknown tool $t" ;; esac
done

. scripts/lib/services.sh
clipsweep_deps
command -v /usr/bin/time >/dev/null || {
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
}
[ -x /usr/bin/rclone ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q rclone >/dev/null
[ -x /usr/bin/aws ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -q awscli >/dev/null
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
BUCKET=cloud-cube
CLK_TCK=$(getconf CLK_TCK)

svc_init
# Private copies: the build may change while the benchmark runs.
mkdir -p "$SVC_DIR/bin"
cp build/worker/clipsweep-worker build/tests/s3mem/s3mem "$SVC_DIR/bin/"
WORKER=$SVC_DIR/bin/clipsweep-worker
S3MEM_BIN=$SVC_DIR/bin/s3mem
WORKER_SHA=$(sha256sum "$WORKER" | cut -c1-12)
svc_start_redis
svc_start_postgres
RUNS=$SVC_DIR/runs.tsv
: >"$RUNS"

export CLIPSWEEP_REDIS_URL=$REDIS_URL CLIPSWEEP_DATABASE_URL=$DATABASE_URL
export CLOUDCUBE_ACCESS_KEY_ID=bench CLOUDCUBE_SECRET_ACCESS_KEY=bench
export CLIPSWEEP_LOG_LEVEL=warn
# The AWS CLI from a private configuration; nothing from the user's.
AWS_CONF=$SVC_DIR/aws.conf
: >"$SVC_DIR/rclone.conf"

log() { printf '%s sweep_peers: %s\n' "$(date +%T)" "$*" >&2; }

# ------------------------------------------------------------- s3mem

S3MEM_PID=
s3mem_stop() {
  if [ -n "$S3MEM_PID" ]; then
    kill "$S3MEM_PID" 2>/dev/null || true
    wait "$S3MEM_PID" 2>/dev/null || true
    S3MEM_PID=
  fi
}
svc_on_exit_hook() { s3mem_stop; }

# s3mem_start LATENCY_MS: a fresh s3mem (S3MEM_PID, S3PORT); rules 1 to 4
# count requests by kind and never fire (count=0), rule 5 is the latency.
s3mem_start() {
  local lat=$1
  local -a faults=(
    --fault "op=list count=0 delay=1"
    --fault "op=delete count=0 delay=1"
    --fault "op=delete-objects count=0 delay=1"
    --fault "op=head op=get op=put op=bucket count=0 delay=1")
  [ "$lat" -gt 0 ] && faults+=(--fault "delay=$lat")
  rm -f "$SVC_DIR/s3mem.port"
  "$S3MEM_BIN" --listen 127.0.0.1:0 --ready-file "$SVC_DIR/s3mem.port" \
    --bucket "$BUCKET" "${faults[@]}" 2>>"$SVC_DIR/logs/s3mem.log" &
  S3MEM_PID=$!
  for _ in $(seq 1 200); do
    [ -s "$SVC_DIR/s3mem.port" ] && break
    kill -0 "$S3MEM_PID" 2>/dev/null || { svc_dump_logs; exit 70; }
    sleep 0.025
  done
  S3PORT=$(cat "$SVC_DIR/s3mem.port")
}

s3mem_cpu() { # -> seconds of user + system CPU so far
  local st
  read -r st <"/proc/$S3MEM_PID/stat"
  st=${st##*) }
  # after "pid (comm) ": state is field 3, utime 14, stime 15
  # shellcheck disable=SC2086
  set -- $st
  echo "scale=3; (${12} + ${13}) / $CLK_TCK" | bc
}

pg_cpu() { # -> seconds of CPU of the PostgreSQL cluster so far (the
  # postmaster, its live processes and those it has reaped)
  local pm st ticks=0 p
  read -r pm _ <"$SVC_DIR/run/PG.svc"
  for p in "$pm" $(pgrep -P "$pm"); do
    { read -r st <"/proc/$p/stat"; } 2>/dev/null || continue
    st=${st##*) }
    # shellcheck disable=SC2086 # fields 3... (cutime 16, cstime 17)
    set -- $st
    ticks=$((ticks + ${12} + ${13}))
    [ "$p" = "$pm" ] && ticks=$((ticks + ${14} + ${15}))
  done
  echo "scale=3; $ticks / $CLK_TCK" | bc
}

s3mem_objects() { # objects in the bucket (an empty seed reports them)
  curl -sf -X POST --data-binary '' "http://127.0.0.1:$S3PORT/$BUCKET?s3mem-seed=" |
    sed -n 's:.*<ObjectCount>\([0-9]*\)</ObjectCount>.*:\1:p'
}

s3mem_requests() { # -> "list delete delete_objects other"
  curl -sf "http://127.0.0.1:$S3PORT/?s3mem-faults=" |
    grep -o '<Matched>[0-9]*</Matched>' | sed 's/[^0-9]//g' | head -n 4 | paste -sd' '
}

# ------------------------------------------------------------- data

make_data() { # N: seed file and the preserved rows (schema bN)
  local n=$1 cube="peers$1" old
  old=$(($(date +%s) - 30 * 86400))
  awk -v n="$n" -v c="$cube" -v t="$old" \
    'BEGIN { for (i = 0; i < n; i++) printf "%s/media/k%09d.mp4\t1000\t%d\n", c, i, t }' \
    >"$SVC_DIR/seed-$n"
  psql "$DATABASE_URL" -X -q -v ON_ERROR_STOP=1 <<SQL
DROP SCHEMA IF EXISTS p$n CASCADE;
CREATE SCHEMA p$n;
SET search_path = p$n;
\i sql/schema.sql
INSERT INTO jobs (id, status, original_key)
  SELECT i, 'processing', 'media/k' || lpad(i::text, 9, '0') || '.mp4'
  FROM generate_series(0, $n - 1, 5) i;
ANALYZE jobs;
SQL
}

seed() { # N
  local got
  got=$(curl -sf --data-binary @"$SVC_DIR/seed-$1" \
    "http://127.0.0.1:$S3PORT/$BUCKET?s3mem-seed=" |
    sed -n 's:.*<Seeded>\([0-9]*\)</Seeded>.*:\1:p')
  [ "$got" = "$1" ] || { log "seeding $1 objects stored ${got:-nothing}"; exit 70; }
}

# ------------------------------------------------------------- tools

# Each runner runs its tool against S3PORT under /usr/bin/time into
# $SVC_DIR/time and prints "STATUS DETAIL" (STATUS ok, capped or failed).

run_clipsweep() { # N LAT REP [SHARDS]
  local n=$1 k=${4:-1} id="peers-$1-$2-$3-${4:-1}" rc=0 out
  redis-cli -u "$REDIS_URL" LPUSH clipsweep:queue:sweeps \
    "{\"type\":\"retention_sweep\",\"id\":\"$id\",\"min_age_hours\":24,\"force\":true,\"dry_run\":false,\"shards\":$k}" >/dev/null
  CLOUDCUBE_URL="http://127.0.0.1:$S3PORT/$BUCKET/peers$n" CLIPSWEEP_WORKER_ID="$id" \
    CLIPSWEEP_JOBS_TABLE="p$n.jobs" CLIPSWEEP_CLIPS_TABLE="p$n.clips" \
    /usr/bin/time -f "%e %M %U %S" -o "$SVC_DIR/time" \
    timeout -k 10 "$cap" "$WORKER" --drain --queues sweeps --concurrency "$k" \
    >"$SVC_DIR/logs/worker-$id.log" 2>&1 || rc=$?
  out=$(redis-cli -u "$REDIS_URL" GET "clipsweep:result:$id")
  if [ "$rc" = 124 ]; then
    echo "capped -"
  elif [ "$rc" != 0 ] || [ -z "$out" ]; then
    echo "failed exit=$rc"
  else
    echo "$out" | /usr/bin/python3 -c '
import json, sys
r = json.load(sys.stdin)
print("ok" if r["status"] == "ok" else "failed", "status=%s,scanned=%s,deleted=%s" % (
    r["status"], r.get("total_objects_scanned"), r.get("deleted_count")))'
  fi
}

run_clipsweep-sharded() { # N LAT REP
  run_clipsweep "$1" "$2" "$3" "$shards"
}

run_rclone() { # N LAT REP
  local n=$1 rc=0
  env -u AWS_CA_BUNDLE -u AWS_PROFILE -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
    RCLONE_CONFIG="$SVC_DIR/rclone.conf" \
    RCLONE_CONFIG_S3MEM_TYPE=s3 RCLONE_CONFIG_S3MEM_PROVIDER=Other \
    RCLONE_CONFIG_S3MEM_ENDPOINT="http://127.0.0.1:$S3PORT" \
    RCLONE_CONFIG_S3MEM_ACCESS_KEY_ID=bench RCLONE_CONFIG_S3MEM_SECRET_ACCESS_KEY=bench \
    RCLONE_CONFIG_S3MEM_REGION=us-east-1 RCLONE_CONFIG_S3MEM_FORCE_PATH_STYLE=true \
    /usr/bin/time -f "%e %M %U %S" -o "$SVC_DIR/time" \
    timeout -k 10 "$cap" /usr/bin/rclone delete "s3mem:$BUCKET/peers$n" \
    --min-age 24h --fast-list --use-server-modtime \
    --checkers "$RCLONE_N" --transfers "$RCLONE_N" -q \
    >"$SVC_DIR/logs/rclone-$n-$2-$3.log" 2>&1 || rc=$?
  case $rc in
    0) echo "ok -" ;;
    124) echo "capped -" ;;
    *) echo "failed exit=$rc" ;;
  esac
}

run_aws() { # N LAT REP
  local n=$1 rc=0
  rm -f "$AWS_CONF"
  AWS_CONFIG_FILE=$AWS_CONF /usr/bin/aws configure set default.s3.max_concurrent_requests "$AWS_N"
  env -u AWS_CA_BUNDLE -u AWS_PROFILE -u AWS_SESSION_TOKEN AWS_PAGER= \
    AWS_CONFIG_FILE="$AWS_CONF" AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1 \
    AWS_EC2_METADATA_DISABLED=true \
    /usr/bin/time -f "%e %M %U %S" -o "$SVC_DIR/time" \
    timeout -k 10 "$cap" /usr/bin/aws --endpoint-url "http://127.0.0.1:$S3PORT" \
    s3 rm "s3://$BUCKET/peers$n/" --recursive --only-show-errors \
    >"$SVC_DIR/logs/aws-$n-$2-$3.log" 2>&1 || rc=$?
  case $rc in
    0) echo "ok -" ;;
    124) echo "capped -" ;;
    *) echo "failed exit=$rc" ;;
  esac
}

# one_run TOOL N LAT REP: appends a line to $RUNS:
# tool n lat rep status wall cpu rss_kib s3cpu deleted left list delete batch other flags detail pgcpu
one_run() {
  local tool=$1 n=$2 lat=$3 rep=$4 c0 c1 p0 p1 status detail left wall rss user sys flags
  s3mem_start "$lat"
  seed "$n"
  case $tool in
    clipsweep) flags="--concurrency 1" ;;
    clipsweep-sharded) flags="--concurrency $shards, shards $shards" ;;
    rclone) flags="--fast-list --use-server-modtime --checkers $RCLONE_N --transfers $RCLONE_N" ;;
    aws) flags="max_concurrent_requests=$AWS_N" ;;
  esac
  rm -f "$SVC_DIR/time"
  c0=$(s3mem_cpu)
  p0=$(pg_cpu)
  read -r status detail < <("run_$tool" "$n" "$lat" "$rep")
  c1=$(s3mem_cpu)
  p1=$(pg_cpu)
  # the last line: GNU time writes "Command exited with non-zero status" first
  read -r wall rss user sys < <(tail -n 1 "$SVC_DIR/time") || { wall=0 rss=0 user=0 sys=0; }
  left=$(s3mem_objects)
  read -r l d b o < <(s3mem_requests)
  s3mem_stop
  printf '%s\t%s\t%s\t%s\t%s\t%.3f\t%.2f\t%s\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\n' \
    "$tool" "$n" "$lat" "$rep" "$status" "$wall" \
    "$(echo "$user + $sys" | bc)" "$rss" "$(echo "$c1 - $c0" | bc)" \
    "$((n - left))" "$left" "$l" "$d" "$b" "$o" "$flags" "$detail" \
    "$(echo "$p1 - $p0" | bc)" >>"$RUNS"
  log "$(tail -n 1 "$RUNS" | tr '\t' ' ')"
}

# ------------------------------------------------------------- the runs

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
log "results in $RUNS"
for n in "${sizes[@]}"; do
  make_data "$n"
  for lat in "${latencies[@]}"; do
    if [ "$lat" -gt 0 ] && [ "$n" -gt "$(upto_for "$lat")" ]; then
      log "skipping $n objects at $lat ms (--latency-upto $latency_upto)"
      continue
    fi
    RCLONE_N=${rclone_n:-$([ "$lat" -gt 0 ] && echo 1024 || echo 16)}
    AWS_N=${aws_n:-32}
    reps=1
    [ "$n" -le "$repeat_upto" ] && reps=$repeat
    for rep in $(seq 1 "$reps"); do
      for tool in "${tools[@]}"; do
        one_run "$tool" "$n" "$lat" "$rep"
      done
    done
  done
  rm -f "$SVC_DIR/seed-$n"
done

# ------------------------------------------------------------- the table

TABLE=$SVC_DIR/table.md
/usr/bin/python3 - "$RUNS" "$cap" >"$TABLE" <<'PY'
import sys, collections

runs, cap = sys.argv[1], float(sys.argv[2])
cols = ("tool n lat rep status wall cpu rss s3cpu deleted left "
        "list delete batch other flags detail pgcpu").split()
groups = collections.OrderedDict()
for line in open(runs):
    r = dict(zip(cols, line.rstrip("\n").split("\t")))
    for k in ("n", "lat", "rep", "rss", "deleted", "left", "list", "delete",
              "batch", "other"):
        r[k] = int(r[k] or 0)
    for k in ("wall", "cpu", "s3cpu", "pgcpu"):
        r[k] = float(r[k])
    r["rate"] = r["deleted"] / r["wall"] if r["wall"] > 0 else 0.0
    groups.setdefault((r["n"], r["lat"], r["tool"]), []).append(r)

def median_run(rs):
    rs = sorted(rs, key=lambda r: r["wall"])
    return rs[(len(rs) - 1) // 2]

print("| tool | objects | latency (ms) | wall (s) | deleted | deleted/s "
      "| client CPU (s) | client CPU (µs/object) | peak RSS (MiB) "
      "| s3mem CPU (s) | PostgreSQL CPU (s) "
      "| S3 requests: list + DELETE + DeleteObjects | wall ratio | deleted/s ratio |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
notes = []
for (n, lat, tool), rs in groups.items():
    r = median_run(rs)
    base = groups.get((n, lat, "clipsweep-sharded")) or groups.get((n, lat, "clipsweep"))
    b = median_run(base) if base else None
    walls = sorted(x["wall"] for x in rs)
    wall = "%.2f" % r["wall"]
    if r["status"] == "capped":
        wall = "> %d" % cap
        if r["rate"] > 0:
            wall += " (≈ %d est.)" % (n / r["rate"])
    elif r["status"] != "ok":
        wall = "failed (%s)" % r["detail"]
    if len(rs) > 1:
        wall += " [%s]" % ", ".join("%.2f" % w for w in walls)
    # CPU per object listed (the whole data set), or per object deleted
    # when the run was stopped before it was done.
    per = r["deleted"] if r["status"] == "capped" else n
    cpu = "%.1f%s" % (r["cpu"] * 1e6 / per, "*" if r["status"] == "capped" else "") \
        if per else "-"
    wr = rr = "-"
    if b and b["status"] == "ok" and b["wall"] > 0 and r["status"] in ("ok", "capped"):
        est = r["wall"] if r["status"] == "ok" else (n / r["rate"] if r["rate"] else 0)
        if est:
            wr = ("%.2f" if r["status"] == "ok" else "≈ %.1f") % (est / b["wall"])
        if r["rate"] > 0:
            rr = "%.2f" % (b["rate"] / r["rate"])
    print("| %s | %d | %d | %s | %d | %.0f | %.2f | %s | %.1f | %.2f | %.2f | %d + %d + %d%s | %s | %s |" % (
        tool, n, lat, wall, r["deleted"], r["rate"], r["cpu"], cpu, r["rss"] / 1024.0,
        r["s3cpu"], r["pgcpu"], r["list"], r["delete"], r["batch"],
        (" + %d other" % r["other"]) if r["other"] else "", wr, rr))
    if tool.startswith("clipsweep") and r["left"] != n // 5 and r["status"] == "ok":
        notes.append("clipsweep at %d objects, %d ms: %d objects left, %d expected"
                     % (n, lat, r["left"], n // 5))
for x in notes:
    print("\nWARNING: " + x)
PY

cat "$TABLE"

flags_line() {
  echo "Flags: clipsweep-worker --drain --queues sweeps --concurrency 1;" \
    "clipsweep-sharded: \"shards\": $shards and --concurrency $shards;" \
    "rclone delete --min-age 24h --fast-list --use-server-modtime --checkers N --transfers N -q;" \
    "aws s3 rm --recursive --only-show-errors with default.s3.max_concurrent_requests N;" \
    "N = ${rclone_n:-16 without latency, 1024 with} for rclone, ${aws_n:-32} for aws."
}
flags_line

if [ "$write_doc" = 1 ]; then
  cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
  mem=$(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)
  block=$SVC_DIR/block.md
  {
    echo "<!-- sweep_peers: begin (written by bench/sweep_peers.sh --write-doc) -->"
    echo
    echo "    $CMDLINE"
    echo
    echo "Measured $(date -u +%Y-%m-%d) on $(. /etc/os-release && echo "$PRETTY_NAME"), $(nproc) cores ($cpu_model), $mem, kernel $(uname -r);" \
      "$(/usr/bin/rclone version 2>/dev/null | head -n 1), $(/usr/bin/aws --version 2>&1 | cut -d' ' -f1,2);" \
      "clipsweep-worker sha256 $WORKER_SHA...;" \
      "load average at the start $LOAD0, at the end $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "$(flags_line)"
    echo
    cat "$TABLE"
    echo
    echo "<!-- sweep_peers: end -->"
  } >"$block"
  /usr/bin/python3 - docs/BENCHMARKS.md "$block" <<'PY'
import sys
path, block = sys.argv[1], open(sys.argv[2]).read().rstrip("\n")
doc = open(path).read()
b = doc.find("<!-- sweep_peers: begin")
e = doc.find("<!-- sweep_peers: end -->")
if b >= 0 and e > b:
    doc = doc[:b] + block + doc[e + len("<!-- sweep_peers: end -->"):]
else:
    doc = doc.rstrip("\n") + "\n\n## Retention sweep against rclone and the AWS CLI\n\n" + block + "\n"
open(path, "w").write(doc)
PY
  log "wrote the table into docs/BENCHMARKS.md"
fi
