#!/usr/bin/env bash
# Secrets never leave the process: with sentinel values for the Redis
# password (the TLS server requires one, set by scripts/test), the
# PostgreSQL password (in the URL; the test server trusts, so any password
# connects) and the S3 secret key (s3rver 3.7.1 does not check SigV4
# signatures, so any secret is accepted), run the worker and the CLI
# through good tasks, dead letters, a sweep, configuration and connection
# errors; then search the worker's logs, the CLI's output, every Redis
# value in the namespace, the server logs and /proc/PID/cmdline of running
# processes for the sentinels.  Each search is first shown to find a
# planted sentinel, so that it can fail.
# shellcheck disable=SC2317,SC2119 # (helpers called through wait_for; list_keys without arguments)
. "$(dirname "$0")/lib.sh"
for v in REDIS_TLS_URL REDIS_TLS_PORT CLIPSWEEP_TEST_CA; do
  [ -n "${!v:-}" ] || skip_all "$v is not set (run through scripts/test)"
done

urlencode() {
  /usr/bin/python3 -c 'import sys, urllib.parse
print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"
}

# --- The sentinels.  Each has a plain core (letters, digits, '-') that is
# searched for: it is in the raw value and in its URL-encoded form.
REDIS_PW=${CLIPSWEEP_TEST_REDIS_TLS_PASSWORD:-}
PG_PW='clipsweep-sentinel-pgpw-4Rt9#&x'
S3_SECRET='clipsweep-sentinel-s3secret-Vb3m/+='
WRONG_PW='clipsweep-sentinel-wrongpw-Zz81'
core() { [[ $1 =~ ^[A-Za-z0-9-]+ ]] && printf '%s' "${BASH_REMATCH[0]}"; }
SENTINELS=("$(core "$REDIS_PW")" "$(core "$PG_PW")" "$(core "$S3_SECRET")" \
  "$(core "$WRONG_PW")")
SENTINEL_NAMES=("Redis password" "PostgreSQL password" "S3 secret key" \
  "wrong Redis password")
if [ "${#SENTINELS[0]}" -ge 16 ]; then
  ok 0 "the TLS Redis requires a distinctive password (CLIPSWEEP_TEST_REDIS_TLS_PASSWORD)"
else
  ok 1 "the TLS Redis requires a distinctive password (CLIPSWEEP_TEST_REDIS_TLS_PASSWORD)"
  echo "Bail out! CLIPSWEEP_TEST_REDIS_TLS_PASSWORD must be set, as scripts/test does"
  exit 1
fi

# found_in FILE...: prints the names of the sentinels found; status 0 if any.
found_in() {
  local i rc=1
  for i in "${!SENTINELS[@]}"; do
    [ -n "${SENTINELS[$i]}" ] || continue
    if grep -aqF -- "${SENTINELS[$i]}" "$@" 2>/dev/null; then
      printf '%s; ' "${SENTINEL_NAMES[$i]}"
      rc=0
    fi
  done
  return "$rc"
}
# no_secret DESCRIPTION FILE...: ok when no sentinel is in any FILE.
no_secret() {
  local d=$1 f what
  shift
  for f in "$@"; do
    if [ ! -f "$f" ]; then
      ok 1 "$d"
      diag "$f does not exist"
      return
    fi
  done
  if what=$(found_in "$@"); then
    ok 1 "$d"
    diag "found: $what"
    grep -aHnF -e "${SENTINELS[0]}" -e "${SENTINELS[1]}" -e "${SENTINELS[2]}" \
      -e "${SENTINELS[3]}" -- "$@" | head -n 5 | sed 's/^/#   /'
  else
    ok 0 "$d"
  fi
}

# The searches can fail: each sentinel, raw and URL-encoded, is found.
PLANT=$T_TMP/plant
mkdir -p "$PLANT"
i=0
for v in "$REDIS_PW" "$PG_PW" "$S3_SECRET" "$WRONG_PW"; do
  printf 'x %s y\n' "$v" >"$PLANT/raw"
  printf 'x %s y\n' "$(urlencode "$v")" >"$PLANT/enc"
  is "$(found_in "$PLANT/raw")|$(found_in "$PLANT/enc")" \
    "${SENTINEL_NAMES[$i]}; |${SENTINEL_NAMES[$i]}; " \
    "self-check: a planted ${SENTINEL_NAMES[$i]} is found, raw and URL-encoded"
  i=$((i + 1))
done
: >"$PLANT/clean"
! found_in "$PLANT/clean" >/dev/null
ok $? "self-check: a clean file has no sentinel"

# --- Configuration with the sentinels.
CAQ="ssl_ca_certs=$(urlencode "$CLIPSWEEP_TEST_CA")"
export CLIPSWEEP_REDIS_URL="$REDIS_TLS_URL?$CAQ"
PG_BASE=${DATABASE_URL%%\?*}
PG_URL=${PG_BASE/\/\/postgres@/\/\/postgres:$(urlencode "$PG_PW")@}
export CLIPSWEEP_DATABASE_URL=$PG_URL
export CLOUDCUBE_SECRET_ACCESS_KEY=$S3_SECRET
# The most talkative logs: debug lines are where secrets slip out.
export CLIPSWEEP_LOG_LEVEL=debug
like "$CLIPSWEEP_REDIS_URL" "${SENTINELS[0]}" "the worker's Redis URL carries the password"
like "$CLIPSWEEP_DATABASE_URL" "${SENTINELS[1]}" "the database URL carries the password"

TCLI_AUTH=(--no-auth-warning -a "$REDIS_PW")
tcli() {
  redis-cli --tls --cacert "$CLIPSWEEP_TEST_CA" -h 127.0.0.1 \
    -p "$REDIS_TLS_PORT" "${TCLI_AUTH[@]}" "$@"
}
# The password is really needed, and the sentinels really work.
like "$(redis-cli --tls --cacert "$CLIPSWEEP_TEST_CA" -h 127.0.0.1 \
  -p "$REDIS_TLS_PORT" PING 2>&1)" NOAUTH "the TLS Redis refuses clients without the password"
is "$(tcli PING 2>&1)" PONG "and accepts the sentinel password"
is "$(psql "$PG_URL" -X -At -c 'SELECT 1' 2>&1)" 1 "PostgreSQL accepts the URL with the sentinel password"
AWS_SECRET_ACCESS_KEY=$S3_SECRET check \
  "s3rver accepts the sentinel secret key (it does not check SigV4 signatures)" \
  s3api list-objects-v2 --bucket cloud-cube --max-items 1

make_schema || { echo "Bail out! cannot create the schema"; exit 1; }
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key) VALUES
  (1, 'completed', 'public/uploads/1/original.mp4', 'public/uploads/1/audio.mp3'),
  (2, 'completed', 'public/uploads/2/original.mp4', NULL),
  (3, 'rendering', 'public/uploads/3/original.mp4', NULL)" || exit 1
sql "INSERT INTO $SCHEMA.clips (id, job_id, status, key) VALUES
  (1, 1, 'completed', 'clips/1/clip_1.mp4')" || exit 1
for k in public/uploads/1/original.mp4 public/uploads/1/audio.mp3 \
  clips/1/clip_1.mp4 public/uploads/2/original.mp4 public/uploads/3/original.mp4; do
  put_object "$CUBE/$k" || { echo "Bail out! cannot put $k"; exit 1; }
done

# /proc/PID/cmdline, NUL-separated, into a file.
cmdline_of() { # PID FILE
  tr '\0' ' ' <"/proc/$1/cmdline" >"$2" 2>/dev/null && [ -s "$2" ]
}
bash -c 'sleep 30; :' "sentinel-in-argv $REDIS_PW" &
probe=$!
T_PIDS+=("$probe")
cmdline_of "$probe" "$PLANT/cmdline" && found_in "$PLANT/cmdline" >/dev/null
ok $? "self-check: a sentinel in a running process's arguments is found in /proc/PID/cmdline"
kill "$probe" 2>/dev/null

# --- A running watch and worker; their command lines.
"$CLI" watch --json >"$T_TMP/watch.out" 2>"$T_TMP/watch.err" &
WATCH=$!
T_PIDS+=("$WATCH")
subscribed() { [ "$(tcli PUBSUB NUMSUB "$NS:results" | tail -n 1)" -ge 1 ]; }
wait_for subscribed
ok $? "clipsweep watch is subscribed (with the password)"
cmdline_of "$WATCH" "$T_TMP/watch.cmdline"
ok $? "read clipsweep watch's /proc/PID/cmdline"
no_secret "no secret in clipsweep watch's command line" "$T_TMP/watch.cmdline"

start_worker --concurrency 4
ok $? "the worker starts with the sentinel secrets"
cmdline_of "$WORKER_PID" "$T_TMP/worker.cmdline"
ok $? "read the worker's /proc/PID/cmdline"
no_secret "no secret in the worker's command line" "$T_TMP/worker.cmdline"
started=$(grep -m1 '"msg":"started"' "$T_TMP/worker.log")
like "$started" '"redis":"rediss://:***@127.0.0.1' "the started line shows the Redis password redacted"
like "$started" '"database":"postgresql://postgres:***@127.0.0.1' "and the database password redacted"

# --- Tasks: a good cleanup, a dry run, failures, dead letters, a sweep.
job() { # NAME JOB_ID [ARGS]: stdout in NAME.out, stderr in NAME.err
  local name=$1
  shift
  JOB_RC=0
  timeout 60 "$CLI" job "$@" --wait=30 >"$T_TMP/$name.out" 2>"$T_TMP/$name.err" ||
    JOB_RC=$?
}
job job1 1 --json
is "$JOB_RC" 0 "clipsweep job 1 --wait --json exits 0"
r=$(cat "$T_TMP/job1.out")
is "$(echo "$r" | json status)" ok "job 1 cleaned up: status ok"
is "$(echo "$r" | json deleted_count)" 2 "two files deleted"
is "$(list_keys | tr '\n' ' ')" "$CUBE/clips/1/clip_1.mp4 $CUBE/public/uploads/2/original.mp4 $CUBE/public/uploads/3/original.mp4 " \
  "S3 lost exactly job 1's two files (the secret key signed the requests)"

job job2 2 --dry-run
is "$JOB_RC" 0 "clipsweep job 2 --dry-run --wait (text output) exits 0"
like "$(cat "$T_TMP/job2.out")" "Would delete 1 file" "the dry run reports"

job job3 3 --json
is "$JOB_RC" 1 "a job whose clips are not finished ends not ok"
is "$(json errors.0.code <"$T_TMP/job3.out")" clips_not_finished "with clips_not_finished"

job job404 404 --json
is "$(json errors.0.code <"$T_TMP/job404.out")" job_not_found "an unknown job is job_not_found"

tcli LPUSH "$NS:queue:jobs" 'not json' >/dev/null
tcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"typo-1","job_id":"1","dryrun":true}' >/dev/null
printf '{"type":"job_cleanup","job_id":"\xff"}' | tcli -x LPUSH "$NS:queue:jobs" >/dev/null
tcli LPUSH "$NS:queue:sweeps" '{"type":"retention_sweep","id":"sweep-1","dry_run":true}' >/dev/null
# (wait_for runs its command again each time: a function, not "$(...)")
dead_letters() { [ "$(tcli LLEN "$NS:dead")" -ge 3 ]; }
wait_for dead_letters
is "$(tcli LLEN "$NS:dead")" 3 "three dead letters"
sweep_answered() { [ "$(tcli EXISTS "$NS:result:sweep-1")" = 1 ]; }
wait_for sweep_answered
one_of "$(tcli GET "$NS:result:sweep-1" | json status)" "ok failed" "the sweep is answered"
# Results: jobs 1, 2, 3, 404, the dead letter with an id, the sweep.
watched() { [ "$(wc -l <"$T_TMP/watch.out")" -ge 6 ]; }
wait_for watched
is "$(wc -l <"$T_TMP/watch.out")" 6 "watch printed the six results"
# Not "$(stop_worker)": wait in a subshell cannot wait for our child.
kill -TERM "$WORKER_PID"
rc=0
wait "$WORKER_PID" || rc=$?
is "$rc" 0 "the worker stops on SIGTERM"
grep -q '"level":"debug"' "$T_TMP/worker.log"
ok $? "the worker logged at debug level"
no_secret "no secret in the worker's log" "$T_TMP/worker.log"
no_secret "no secret in the CLI's output (job, --wait, --json, --dry-run, watch)" \
  "$T_TMP"/job*.out "$T_TMP"/job*.err "$T_TMP/watch.out" "$T_TMP/watch.err"
kill -INT "$WATCH"
rc=0
wait "$WATCH" || rc=$?
is "$rc" 0 "watch exits 0 on SIGINT"

# --- The database unreachable, with the password in the URL; then in a
# key=value conninfo.
db_down() { # NAME CONNINFO
  local name=$1 pid
  # One attempt: the final result comes after the 10 s connect wait, well
  # inside --wait, instead of an interim one after retries.
  CLIPSWEEP_MAX_ATTEMPTS=1 CLIPSWEEP_DATABASE_URL=$2 "$WORKER" \
    >"$T_TMP/worker-$name.log" 2>&1 &
  pid=$!
  T_PIDS+=("$pid")
  job "$name" 1 --json
  is "$JOB_RC $(json status <"$T_TMP/$name.out") $(json errors.0.code <"$T_TMP/$name.out")" \
    "1 failed database_unavailable" \
    "$name: the task fails with database_unavailable"
  like "$(grep -m1 '"msg":"started"' "$T_TMP/worker-$name.log")" "$3" \
    "$name: the started line shows where the database is, without the password"
  kill -TERM "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  no_secret "$name: no secret in the worker's log" "$T_TMP/worker-$name.log"
  no_secret "$name: no secret in the result or the CLI's messages" \
    "$T_TMP/$name.out" "$T_TMP/$name.err"
}
db_down db_url "postgresql://postgres:$(urlencode "$PG_PW")@127.0.0.1:1/clipsweep" \
  '"database":"postgresql://postgres:***@127.0.0.1:1/clipsweep"'
db_down db_kv "host=127.0.0.1 port=1 user=postgres password='$PG_PW' dbname=clipsweep" \
  "\"database\":\"host='127.0.0.1' port='1' dbname='clipsweep' user='postgres'\""

# A database URL that libpq cannot parse (a bad %-escape in the password):
# the error must not quote it.
tcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"db-bad-1","job_id":"1"}' >/dev/null
CLIPSWEEP_DATABASE_URL="postgresql://postgres:${PG_PW%%#*}%zz@127.0.0.1:1/clipsweep" \
  timeout 20 "$WORKER" --drain >"$T_TMP/worker-db_bad.log" 2>&1
rc=$?
is "$rc" 78 "an unparsable database URL is a configuration error at start-up"
no_secret "an unparsable database URL is not quoted in the log" "$T_TMP/worker-db_bad.log"
is "$(tcli LLEN "$NS:queue:jobs")" 1 "and its task stays queued for a worker that can run it"
tcli DEL "$NS:queue:jobs" >/dev/null

# --- Configuration errors.
CLOUDCUBE_URL="http://S3RVER:$(urlencode "$S3_SECRET")@${S3_ENDPOINT#http://}/cloud-cube/$CUBE" \
  "$WORKER" >"$T_TMP/worker-cfg1.log" 2>&1
is "$?" 78 "a CLOUDCUBE_URL with credentials is a configuration error"
no_secret "and the log does not quote them (or any other secret)" "$T_TMP/worker-cfg1.log"
CLOUDCUBE_URL="$S3_ENDPOINT/cloud-cube" "$WORKER" >"$T_TMP/worker-cfg2.log" 2>&1
is "$?" 78 "a CLOUDCUBE_URL without a cube prefix is a configuration error"
no_secret "no secret in that log" "$T_TMP/worker-cfg2.log"
CLIPSWEEP_REDIS_URL="rediss://:$(urlencode "$REDIS_PW")@127.0.0.1:notaport/0" \
  "$WORKER" >"$T_TMP/worker-cfg3.log" 2>&1
is "$?" 78 "a Redis URL with a bad port is a configuration error for the worker"
no_secret "no secret in that log" "$T_TMP/worker-cfg3.log"
CLIPSWEEP_REDIS_URL="$REDIS_TLS_URL?password=$(urlencode "$WRONG_PW")" \
  "$CLI" job 1 >"$T_TMP/cfg4.out" 2>"$T_TMP/cfg4.err"
is "$?" 78 "an unknown Redis URL option is a configuration error for the CLI"
no_secret "and its value is not quoted" "$T_TMP/cfg4.out" "$T_TMP/cfg4.err"
CLIPSWEEP_REDIS_URL="rediss://:$(urlencode "$REDIS_PW")@127.0.0.1:$REDIS_TLS_PORT/0?ssl_cert_reqs=maybe" \
  "$CLI" watch >"$T_TMP/cfg5.out" 2>"$T_TMP/cfg5.err"
is "$?" 78 "a bad ssl_cert_reqs is a configuration error"
no_secret "no secret in that error" "$T_TMP/cfg5.out" "$T_TMP/cfg5.err"

# --- Connection errors with the password in the URL.
BADPORT_URL="rediss://:$(urlencode "$REDIS_PW")@127.0.0.1:1/0?$CAQ"
CLIPSWEEP_REDIS_URL=$BADPORT_URL timeout 30 "$CLI" job 1 >"$T_TMP/conn1.out" 2>"$T_TMP/conn1.err"
is "$?" 69 "clipsweep job with a wrong Redis port is EX_UNAVAILABLE"
like "$(cat "$T_TMP/conn1.err")" "rediss://:***@127.0.0.1:1/0" "the error shows the URL redacted"
no_secret "no secret in its output" "$T_TMP/conn1.out" "$T_TMP/conn1.err"
CLIPSWEEP_REDIS_URL=$BADPORT_URL timeout 30 "$CLI" job 1 --wait=5 --json \
  >"$T_TMP/conn2.out" 2>"$T_TMP/conn2.err"
is "$?" 69 "clipsweep job --wait with a wrong Redis port is EX_UNAVAILABLE"
no_secret "no secret in its output" "$T_TMP/conn2.out" "$T_TMP/conn2.err"
CLIPSWEEP_REDIS_URL=$BADPORT_URL timeout 30 "$CLI" watch >"$T_TMP/conn3.out" 2>"$T_TMP/conn3.err"
is "$?" 69 "clipsweep watch with a wrong Redis port is EX_UNAVAILABLE"
no_secret "no secret in its output" "$T_TMP/conn3.out" "$T_TMP/conn3.err"

CLIPSWEEP_REDIS_URL="rediss://:$(urlencode "$WRONG_PW")@127.0.0.1:$REDIS_TLS_PORT/0?$CAQ" \
  timeout 30 "$CLI" job 1 >"$T_TMP/conn4.out" 2>"$T_TMP/conn4.err"
is "$?" 69 "a wrong Redis password is EX_UNAVAILABLE"
like "$(cat "$T_TMP/conn4.err")" "AUTH" "the error says authentication failed"
no_secret "neither password is in its output" "$T_TMP/conn4.out" "$T_TMP/conn4.err"

CLIPSWEEP_REDIS_URL=$BADPORT_URL "$WORKER" >"$T_TMP/worker-conn.log" 2>&1 &
pid=$!
T_PIDS+=("$pid")
wait_for grep -q 'redis connection failed' "$T_TMP/worker-conn.log"
ok $? "the worker logs that it cannot reach Redis"
cmdline_of "$pid" "$T_TMP/worker-conn.cmdline"
no_secret "no secret in that worker's command line" "$T_TMP/worker-conn.cmdline"
kill -TERM "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
no_secret "no secret in that worker's log" "$T_TMP/worker-conn.log"

# --- Secrets from files: the Redis URL (with its password) as a systemd
# credential, the database URL and the S3 secret key through _FILE
# variables; none of them in the environment.
CRED=$T_TMP/credentials
mkdir -p "$CRED"
printf '%s\n' "$CLIPSWEEP_REDIS_URL" >"$CRED/CLIPSWEEP_REDIS_URL"
printf '%s\n' "$PG_URL" >"$T_TMP/db.secret"
printf '%s\n' "$S3_SECRET" >"$T_TMP/s3.secret"
chmod 600 "$CRED/CLIPSWEEP_REDIS_URL" "$T_TMP/db.secret" "$T_TMP/s3.secret"
tcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"from-files-1","job_id":"2","dry_run":true}' >/dev/null
env -u CLIPSWEEP_REDIS_URL -u REDIS_URL -u CLIPSWEEP_DATABASE_URL -u DATABASE_URL \
  -u CLOUDCUBE_SECRET_ACCESS_KEY CREDENTIALS_DIRECTORY="$CRED" \
  CLIPSWEEP_DATABASE_URL_FILE="$T_TMP/db.secret" \
  CLOUDCUBE_SECRET_ACCESS_KEY_FILE="$T_TMP/s3.secret" \
  timeout 60 "$WORKER" --drain >"$T_TMP/worker-files.log" 2>&1
is "$?" 0 "a worker with every secret in a file drains the queue"
is "$(tcli GET "$NS:result:from-files-1" | json status)" ok \
  "its task ran: Redis (the password from a credential), PostgreSQL and S3"
no_secret "no secret in that worker's log" "$T_TMP/worker-files.log"
env -u CLOUDCUBE_SECRET_ACCESS_KEY CLOUDCUBE_SECRET_ACCESS_KEY_FILE="$T_TMP/nothing-here" \
  "$WORKER" --drain >"$T_TMP/worker-files2.log" 2>&1
is "$?" 78 "a missing secret file is a configuration error"
like "$(cat "$T_TMP/worker-files2.log")" "CLOUDCUBE_SECRET_ACCESS_KEY_FILE: cannot open $T_TMP/nothing-here" \
  "naming the variable and the file"

# --- Everything the worker wrote to Redis.
# dump_redis FILE: every key under the namespace with its value(s).
dump_redis() {
  local key type
  : >"$1"
  while IFS= read -r key; do
    [ -n "$key" ] || continue
    type=$(tcli TYPE "$key")
    printf '== %s (%s)\n' "$key" "$type" >>"$1"
    case $type in
      string) tcli --no-raw GET "$key" ;;
      list) tcli --no-raw LRANGE "$key" 0 -1 ;;
      stream) tcli --no-raw XRANGE "$key" - + ;;
      hash) tcli --no-raw HGETALL "$key" ;;
      set) tcli --no-raw SMEMBERS "$key" ;;
      zset) tcli --no-raw ZRANGE "$key" 0 -1 WITHSCORES ;;
      *) echo "unexpected type $type" ;;
    esac >>"$1"
  done < <(tcli --scan --pattern "$NS:*")
}
dump_redis "$T_TMP/redis.dump"
is "$(grep -c '^== ' "$T_TMP/redis.dump")" "$(tcli --scan --pattern "$NS:*" | wc -l)" \
  "every key in the namespace was read"
like "$(cat "$T_TMP/redis.dump")" "== $NS:results:log (stream)" "the dump has the results stream"
like "$(cat "$T_TMP/redis.dump")" "== $NS:dead (list)" "the dead letters"
like "$(cat "$T_TMP/redis.dump")" "== $NS:result:sweep-1 (string)" "and the stored results"
like "$(cat "$T_TMP/redis.dump")" "Deleted 2 files" "with their values"
no_secret "no secret in any Redis value of the namespace" "$T_TMP/redis.dump"

# The dump can fail: a sentinel planted in each type of value is found.
tcli SET "$NS:plant:string" "x$S3_SECRET" >/dev/null
tcli RPUSH "$NS:plant:list" a "x$(urlencode "$PG_PW")" >/dev/null
tcli XADD "$NS:plant:stream" '*' result "x$REDIS_PW" >/dev/null
tcli HSET "$NS:plant:hash" f "x$WRONG_PW" >/dev/null
dump_redis "$PLANT/redis.dump"
is "$(found_in "$PLANT/redis.dump")" \
  "Redis password; PostgreSQL password; S3 secret key; wrong Redis password; " \
  "self-check: sentinels planted in a string, list, stream and hash are found"
tcli DEL "$NS:plant:string" "$NS:plant:list" "$NS:plant:stream" "$NS:plant:hash" >/dev/null

# --- Every output of this test, together, and the servers' logs.
shopt -s nullglob
outputs=("$T_TMP"/*.log "$T_TMP"/*.out "$T_TMP"/*.err "$T_TMP"/*.cmdline)
shopt -u nullglob
[ "${#outputs[@]}" -ge 20 ]
ok $? "collected ${#outputs[@]} output files"
no_secret "no secret in any worker log, CLI output or command line" "${outputs[@]}"
if [ -n "${CLIPSWEEP_TEST_SVC_LOGS:-}" ] && [ -d "$CLIPSWEEP_TEST_SVC_LOGS" ]; then
  shopt -s nullglob
  svc_logs=("$CLIPSWEEP_TEST_SVC_LOGS"/*.log)
  shopt -u nullglob
  no_secret "no secret in the servers' logs (${#svc_logs[@]} files)" "${svc_logs[@]}"
fi

done_testing
