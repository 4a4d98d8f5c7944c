#!/usr/bin/env bash
# Self-check of scripts/lib/services.sh: start every throwaway server and
# talk to each with an independent client. TAP output; non-zero exit on any
# failure. Servers are stopped and SVC_DIR removed on exit.
#
#   bash tests/integration/services_smoke.sh
#   CLIPSWEEP_SKIP_DEPS=1 ...   skip the (fast) dependency check
#   CLIPSWEEP_KEEP_SVC=1 ...    keep SVC_DIR for inspection
# (single-quoted bash -c scripts take their values as arguments)
# shellcheck disable=SC2016,SC2119
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=scripts/lib/services.sh
. "$ROOT/scripts/lib/services.sh"

T0=$(_svc_now_ms)
N=0
FAILED=0
ok() { # ok COND-EXIT-STATUS DESCRIPTION
  N=$((N + 1))
  if [ "$1" -eq 0 ]; then
    echo "ok $N - $2"
  else
    echo "not ok $N - $2"
    FAILED=$((FAILED + 1))
  fi
}
# check DESCRIPTION CMD...: run CMD, ok if it succeeds; its output is shown
# as TAP comments when it fails.
check() {
  local desc=$1 out rc=0
  shift
  out=$("$@" 2>&1) || rc=$?
  ok "$rc" "$desc"
  if [ "$rc" -ne 0 ] && [ -n "$out" ]; then
    printf '%s\n' "$out" | sed 's/^/# /'
  fi
  return 0
}
bail() {
  echo "Bail out! $*"
  svc_dump_logs
  exit 1
}

if [ "${CLIPSWEEP_SKIP_DEPS:-0}" != 1 ]; then
  clipsweep_deps || bail "dependencies could not be installed"
fi

svc_init

# --- ports
p1=$(svc_free_port)
p2=$(svc_free_port)
check "svc_free_port gives two distinct ports ($p1, $p2)" test "$p1" != "$p2"

# --- plain redis
svc_start_redis || bail "svc_start_redis"
check "redis: REDIS_URL is redis://127.0.0.1:$REDIS_PORT/0" \
  test "$REDIS_URL" = "redis://127.0.0.1:$REDIS_PORT/0"
redis_setget() {
  local v
  [ "$(redis-cli "$@" SET clipsweep:smoke "hello world")" = OK ] || return 1
  v=$(redis-cli "$@" GET clipsweep:smoke)
  [ "$v" = "hello world" ] || { echo "GET returned '$v'"; return 1; }
}
check "redis: redis-cli SET/GET" redis_setget -h 127.0.0.1 -p "$REDIS_PORT"
check "redis: appendonly is on" \
  bash -c '[ "$(redis-cli -p "$1" CONFIG GET appendonly | tail -n1)" = yes ]' _ "$REDIS_PORT"

# --- TLS material
svc_make_certs || bail "svc_make_certs"
T=$SVC_TLS_DIR
check "certs: server.crt verifies against ca.crt for localhost and 127.0.0.1" \
  bash -c 'openssl verify -CAfile "$1/ca.crt" -verify_hostname localhost "$1/server.crt" &&
           openssl verify -CAfile "$1/ca.crt" -verify_ip 127.0.0.1 "$1/server.crt"' _ "$T"
check "certs: other.crt does not verify against ca.crt" \
  bash -c '! openssl verify -CAfile "$1/ca.crt" "$1/other.crt"' _ "$T"
check "certs: other.crt verifies against other-ca.crt" \
  openssl verify -CAfile "$T/other-ca.crt" -verify_hostname localhost "$T/other.crt"
check "certs: wronghost.crt chains to ca.crt but fails for localhost/127.0.0.1" \
  bash -c 'openssl verify -CAfile "$1/ca.crt" "$1/wronghost.crt" &&
           ! openssl verify -CAfile "$1/ca.crt" -verify_hostname localhost "$1/wronghost.crt" &&
           ! openssl verify -CAfile "$1/ca.crt" -verify_ip 127.0.0.1 "$1/wronghost.crt"' _ "$T"

# --- TLS redis
svc_start_redis_tls REDIS_TLS "$T/server.crt" "$T/server.key" || bail "svc_start_redis_tls"
check "redis-tls: redis-cli --tls --cacert ca.crt SET/GET" \
  redis_setget --tls --cacert "$T/ca.crt" -h 127.0.0.1 -p "$REDIS_TLS_PORT"
check "redis-tls: plain-text connection is refused" \
  bash -c '! [ "$(timeout 5 redis-cli -h 127.0.0.1 -p "$1" ping 2>&1)" = PONG ]' _ "$REDIS_TLS_PORT"
check "redis-tls: REDIS_TLS_URL is rediss://127.0.0.1:$REDIS_TLS_PORT/0" \
  test "$REDIS_TLS_URL" = "rediss://127.0.0.1:$REDIS_TLS_PORT/0"

svc_start_redis_tls REDIS_OTHER "$T/other.crt" "$T/other.key" || bail "svc_start_redis_tls other"
check "redis-tls: server with other-CA cert is rejected with --cacert ca.crt" \
  bash -c '! [ "$(timeout 5 redis-cli --tls --cacert "$1/ca.crt" -h 127.0.0.1 -p "$2" ping 2>&1)" = PONG ]' \
  _ "$T" "$REDIS_OTHER_PORT"
check "redis-tls: same server is accepted with --cacert other-ca.crt" \
  _svc_redis_ping --tls --cacert "$T/other-ca.crt" -h 127.0.0.1 -p "$REDIS_OTHER_PORT"

REDIS_TLS_PASSWORD='s3cr3t p@ss' svc_start_redis_tls REDIS_AUTH "$T/server.crt" "$T/server.key" ||
  bail "svc_start_redis_tls with password"
check "redis-tls: requirepass: no password -> NOAUTH" \
  bash -c 'timeout 5 redis-cli --tls --cacert "$1/ca.crt" -p "$2" ping 2>&1 | grep -q NOAUTH' \
  _ "$T" "$REDIS_AUTH_PORT"
check "redis-tls: requirepass: with password -> PONG" \
  _svc_redis_ping --tls --cacert "$T/ca.crt" -p "$REDIS_AUTH_PORT" --no-auth-warning -a 's3cr3t p@ss'
check "redis-tls: password is URL-encoded in REDIS_AUTH_URL" \
  test "$REDIS_AUTH_URL" = "rediss://:s3cr3t%20p%40ss@127.0.0.1:$REDIS_AUTH_PORT/0"

# --- postgres
svc_start_postgres || bail "svc_start_postgres"
check "postgres: DATABASE_URL" \
  test "$DATABASE_URL" = "postgresql://postgres@127.0.0.1:$PGPORT/clipsweep"
check "postgres: psql \$DATABASE_URL -c 'select 1'" \
  bash -c '[ "$(psql "$DATABASE_URL" -X -Atqc "select 1")" = 1 ]'
check "postgres: PG* environment reaches database clipsweep" \
  bash -c '[ "$(psql -X -Atqc "select current_database()")" = clipsweep ]'
check "postgres: psql is Debian's, from $PG_BINDIR or /usr/bin" \
  bash -c 'psql --version | grep -q "(PostgreSQL)"'

# --- S3
svc_start_s3 cloud-cube || bail "svc_start_s3"
check "s3: S3_ENDPOINT=http://127.0.0.1:$S3_PORT, credentials S3RVER" \
  test "$S3_ENDPOINT" = "http://127.0.0.1:$S3_PORT" -a "$AWS_ACCESS_KEY_ID" = S3RVER \
  -a "${AWS_CA_BUNDLE-unset}" = unset
check "s3: bucket cloud-cube exists (head-bucket)" s3api head-bucket --bucket cloud-cube
body=$SVC_DIR/body.bin
printf 'clip data\n' >"$body"
check "s3: put-object clips/a/1.mp4" \
  s3api put-object --bucket cloud-cube --key clips/a/1.mp4 --body "$body"
check "s3: put-object clips/a/2.mp4" \
  s3api put-object --bucket cloud-cube --key clips/a/2.mp4 --body "$body"
check "s3: put-object clips/b/1.mp4" \
  s3api put-object --bucket cloud-cube --key clips/b/1.mp4 --body "$body"
list_keys() { # PREFIX -> keys, one per line
  s3api list-objects-v2 --bucket cloud-cube --prefix "$1" --query 'Contents[].Key' --output text |
    tr '\t' '\n' | grep -v '^None$' || true
}
check "s3: list-objects-v2 --prefix clips/a/ lists exactly the two keys" \
  test "$(list_keys clips/a/ | paste -sd,)" = "clips/a/1.mp4,clips/a/2.mp4"
delete_quiet() {
  local out
  out=$(s3api delete-objects --bucket cloud-cube --delete \
    '{"Objects":[{"Key":"clips/a/1.mp4"},{"Key":"clips/a/2.mp4"}],"Quiet":true}') || return 1
  if grep -q '"Errors"' <<<"$out"; then
    echo "$out"
    return 1
  fi
}
check "s3: delete-objects (quiet) reports no errors" delete_quiet
check "s3: prefix clips/a/ is empty afterwards, clips/b/ untouched" \
  test -z "$(list_keys clips/a/)" -a "$(list_keys clips/b/)" = clips/b/1.mp4
# Keys whose S3 byte order differs from s3rver's directory-walk order and
# keys with special characters; uploaded unsigned with curl (s3rver accepts
# anonymous requests), listed page by page with the aws CLI.
tricky_put() {
  local k
  for k in k k-1 k.1 k/1 'k/2%20sp%2B%C3%BC'; do
    curl -sf -o /dev/null -X PUT --data-binary x "$S3_ENDPOINT/cloud-cube/$k" || return 1
  done
}
check "s3: put tricky keys with curl" tricky_put
check "s3: list-objects-v2 pages (size 2) come in S3 byte order, none skipped" \
  test "$(s3api list-objects-v2 --bucket cloud-cube --prefix k --page-size 2 \
    --query 'Contents[].Key' --output text | tr '\t' '\n' | paste -sd'|')" = \
  "k|k-1|k.1|k/1|k/2 sp+ü"
delete_tricky() {
  local out
  out=$(s3api delete-objects --bucket cloud-cube --delete \
    '{"Objects":[{"Key":"k"},{"Key":"k-1"},{"Key":"k.1"},{"Key":"k/1"},{"Key":"k/2 sp+ü"}]}') ||
    return 1
  [ "$(grep -c '"Key"' <<<"$out")" -eq 5 ] || { echo "$out"; return 1; }
  [ -z "$(list_keys k)" ] || { echo "left: $(list_keys k)"; return 1; }
}
check "s3: delete-objects of the tricky keys (same directory) deletes all" delete_tricky
check "s3: no 5xx responses in the s3rver log" \
  bash -c '! grep -- "-> 5[0-9][0-9]" "$1"' _ "$SVC_DIR/logs/s3rver.log"
bad_key() {
  local out
  out=$(AWS_ACCESS_KEY_ID=nope s3api list-objects-v2 --bucket cloud-cube 2>&1) && return 1
  grep -q InvalidAccessKeyId <<<"$out"
}
check "s3: unknown access key is rejected (InvalidAccessKeyId)" bad_key

# --- cleanup
if [ "$FAILED" -ne 0 ]; then
  svc_dump_logs
fi
pids=()
for f in "$SVC_DIR"/run/*.svc; do
  read -r pid _ <"$f"
  pids+=("$pid")
done
dir=$SVC_DIR
svc_stop_all
alive=()
for pid in "${pids[@]}"; do
  if _svc_alive "$pid"; then alive+=("$pid"); fi
done
check "cleanup: all ${#pids[@]} servers stopped${alive:+ (alive: ${alive[*]})}" test "${#alive[@]}" -eq 0
if [ "${CLIPSWEEP_KEEP_SVC:-0}" != 1 ]; then
  check "cleanup: $dir removed" test ! -e "$dir"
fi

echo "1..$N"
echo "# $((N - FAILED))/$N checks passed in $(($(_svc_now_ms) - T0)) ms"
if [ "$FAILED" -ne 0 ]; then
  exit 1
fi
