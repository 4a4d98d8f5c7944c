#!/usr/bin/env bash
# TLS to Redis end to end, through both binaries: the CLI enqueues and a
# worker claims and answers over rediss:// with the test CA; servers whose
# certificate is from another CA or names another host are refused (and get
# nothing), unless ?ssl_cert_reqs=none; SNI and host-name verification with
# a DNS name; the system CAs do not trust the test CA.  Effects are checked
# with redis-cli over TLS.
# shellcheck disable=SC2317,SC2119 # (helpers called through wait_for; list_keys without arguments)
. "$(dirname "$0")/lib.sh"
for v in REDIS_TLS_URL REDIS_TLS_PORT REDIS_OTHERCA_URL REDIS_OTHERCA_PORT \
  REDIS_WRONGHOST_URL REDIS_WRONGHOST_PORT CLIPSWEEP_TEST_CA; do
  [ -n "${!v:-}" ] || skip_all "$v is not set (run through scripts/test)"
done

Q=$NS:queue:jobs
S=$NS:queue:sweeps
P=$NS:processing:$CLIPSWEEP_WORKER_ID

urlencode() { # STRING: every byte but unreserved ones as %XX
  /usr/bin/python3 -c 'import sys, urllib.parse
print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"
}

# The test CA under a path that must be URL-encoded (a space, a '+'), so
# that a decoding mistake cannot go unnoticed.
CA="$T_TMP/test ca+dir/ca cert+1.pem"
mkdir -p "$(dirname "$CA")" && cp "$CLIPSWEEP_TEST_CA" "$CA"
CAQ="ssl_ca_certs=$(urlencode "$CA")"
like "$CAQ" "%20" "the CA path is URL-encoded in the query"

GOOD_URL="$REDIS_TLS_URL?$CAQ"

# redis-cli over TLS: tcli verifies against the test CA (and authenticates
# when the TLS server has a password); icli PORT ... skips verification, to
# look into the servers whose certificates clipsweep must refuse.
TCLI_AUTH=()
if [ -n "${CLIPSWEEP_TEST_REDIS_TLS_PASSWORD:-}" ]; then
  TCLI_AUTH=(--no-auth-warning -a "$CLIPSWEEP_TEST_REDIS_TLS_PASSWORD")
fi
tcli() {
  redis-cli --tls --cacert "$CLIPSWEEP_TEST_CA" -h 127.0.0.1 \
    -p "$REDIS_TLS_PORT" "${TCLI_AUTH[@]}" "$@"
}
icli() { # PORT ARGS...
  local port=$1
  shift
  redis-cli --tls --insecure -h 127.0.0.1 -p "$port" "$@"
}

is "$(tcli PING 2>&1)" PONG "redis-cli reaches the TLS server with the test CA"

# cli NAME URL ARGS...: runs the CLI against URL; stdout in $T_TMP/NAME.out,
# stderr in $T_TMP/NAME.err, exit status in $CLI_RC.
cli() {
  local name=$1 url=$2
  shift 2
  CLI_RC=0
  CLIPSWEEP_REDIS_URL=$url timeout 30 "$CLI" "$@" >"$T_TMP/$name.out" \
    2>"$T_TMP/$name.err" || CLI_RC=$?
}
err_of() { cat "$T_TMP/$1.err"; }

# --- The good server: verification against the test CA succeeds.
cli good "$GOOD_URL" job 7 --json
is "$CLI_RC" 0 "clipsweep job over TLS with ssl_ca_certs exits 0"
out=$(cat "$T_TMP/good.out")
is "$(tcli LLEN "$Q")" 1 "one message in the jobs queue (read over TLS)"
is "$(tcli LRANGE "$Q" 0 -1)" "$out" "the queued message is the printed one"
is "$(echo "$out" | json job_id)" 7 "for job 7"
tcli DEL "$Q" >/dev/null

# The same with ssl_cert_reqs=required spelled out.
cli required "$GOOD_URL&ssl_cert_reqs=required" job 70
is "$CLI_RC" 0 "ssl_cert_reqs=required with the test CA is accepted"
is "$(tcli LINDEX "$Q" 0 | json job_id)" 70 "and enqueues"
tcli DEL "$Q" >/dev/null

# localhost: a DNS name, so SNI is sent and the name is checked against the
# certificate's DNS:localhost.
cli localhost "${REDIS_TLS_URL/127.0.0.1/localhost}?$CAQ" job 8
is "$CLI_RC" 0 "the host name localhost verifies against the good server"
is "$(tcli LINDEX "$Q" 0 | json job_id)" 8 "and enqueues job 8"
tcli DEL "$Q" >/dev/null

# Without ssl_ca_certs the system CAs are used; they do not know the test CA.
CLI_RC=0
env -u SSL_CERT_FILE -u SSL_CERT_DIR CLIPSWEEP_REDIS_URL="$REDIS_TLS_URL" \
  timeout 30 "$CLI" job 9 >"$T_TMP/sysca.out" 2>"$T_TMP/sysca.err" || CLI_RC=$?
is "$CLI_RC" 69 "with the system CAs the test server is refused (EX_UNAVAILABLE)"
like "$(err_of sysca)" "certificate verify failed" "the error says why"
is "$(tcli LLEN "$Q")" 0 "nothing was enqueued"

# --- Refusals: the CLI must not talk to these servers at all.
cli otherca "$REDIS_OTHERCA_URL?$CAQ" job 10
is "$CLI_RC" 69 "a server with another CA's certificate is refused (EX_UNAVAILABLE)"
like "$(err_of otherca)" "certificate verify failed" "the error says the certificate did not verify"
like "$(err_of otherca)" "127.0.0.1:$REDIS_OTHERCA_PORT" "and names the server"
is "$(icli "$REDIS_OTHERCA_PORT" LLEN "$Q" 2>&1)" 0 "nothing was enqueued on the other-CA server"

cli required_other "$REDIS_OTHERCA_URL?$CAQ&ssl_cert_reqs=required" job 10
is "$CLI_RC" 69 "ssl_cert_reqs=required refuses the other-CA server too"

cli wronghost "$REDIS_WRONGHOST_URL?$CAQ" job 11
is "$CLI_RC" 69 "a test-CA certificate for another host is refused by IP (EX_UNAVAILABLE)"
like "$(err_of wronghost)" "certificate verify failed" "the error says the certificate did not verify"
like "$(err_of wronghost)" "IP address mismatch" "because the address is not in it"
is "$(icli "$REDIS_WRONGHOST_PORT" LLEN "$Q" 2>&1)" 0 "nothing was enqueued on the wrong-host server"

cli wronghost_name "${REDIS_WRONGHOST_URL/127.0.0.1/localhost}?$CAQ" job 12
is "$CLI_RC" 69 "a test-CA certificate for another host is refused by name"
like "$(err_of wronghost_name)" "hostname mismatch" "because the host name is not in it"
is "$(icli "$REDIS_WRONGHOST_PORT" LLEN "$Q" 2>&1)" 0 "still nothing on the wrong-host server"

# watch refuses too, and says so.
cli watch_other "$REDIS_OTHERCA_URL?$CAQ" watch
is "$CLI_RC" 69 "clipsweep watch refuses the other-CA server"
like "$(err_of watch_other)" "certificate verify failed" "with the reason"

# --- ssl_cert_reqs=none: accepted without verification (the same checks
# as above now see the message, so they can tell).
cli none_other "$REDIS_OTHERCA_URL?ssl_cert_reqs=none" job 13
is "$CLI_RC" 0 "ssl_cert_reqs=none accepts the other-CA server"
is "$(icli "$REDIS_OTHERCA_PORT" LINDEX "$Q" 0 | json job_id)" 13 "and the message is there"
icli "$REDIS_OTHERCA_PORT" DEL "$Q" >/dev/null

cli none_wrong "$REDIS_WRONGHOST_URL?ssl_cert_reqs=NONE&$CAQ" job 14
is "$CLI_RC" 0 "ssl_cert_reqs=NONE (any case) accepts the wrong-host server"
is "$(icli "$REDIS_WRONGHOST_PORT" LINDEX "$Q" 0 | json job_id)" 14 "and the message is there"
icli "$REDIS_WRONGHOST_PORT" DEL "$Q" >/dev/null

# --- Configuration mistakes.
cli misspelt "$REDIS_OTHERCA_URL?ssl_certs_reqs=none" job 15
is "$CLI_RC" 78 "a misspelt TLS option is a configuration error (EX_CONFIG)"
like "$(err_of misspelt)" "ssl_certs_reqs" "naming the option"
cli badreqs "$REDIS_OTHERCA_URL?ssl_cert_reqs=optional" job 15
is "$CLI_RC" 78 "ssl_cert_reqs other than none/required is a configuration error"
is "$(icli "$REDIS_OTHERCA_PORT" LLEN "$Q" 2>&1)" 0 "neither enqueued anything"

cli noca "$REDIS_TLS_URL?ssl_ca_certs=%2Fnonexistent%2Fca.pem" job 16
is "$CLI_RC" 69 "a CA file that does not exist fails to connect (EX_UNAVAILABLE)"
like "$(err_of noca)" "cannot load CA certificates from /nonexistent/ca.pem" \
  "the error names the decoded CA path"
is "$(tcli LLEN "$Q")" 0 "nothing was enqueued"

cli plain "redis://127.0.0.1:$REDIS_TLS_PORT/0" job 17
is "$CLI_RC" 69 "redis:// (no TLS) to the TLS port fails (EX_UNAVAILABLE)"

# --- SNI: an openssl s_server that presents the other CA's certificate by
# default and the test CA's one only to clients that send SNI "localhost".
# With the name, verification passes and only the (non-Redis) protocol
# fails; with the IP literal no SNI is sent and verification fails.
sni_port=$(/usr/bin/python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
TLSD=$(dirname "$CLIPSWEEP_TEST_CA")
openssl s_server -accept "127.0.0.1:$sni_port" -rev \
  -cert "$TLSD/other.crt" -key "$TLSD/other.key" \
  -servername localhost -cert2 "$TLSD/server.crt" -key2 "$TLSD/server.key" \
  </dev/null >"$T_TMP/s_server.log" 2>&1 &
SSRV=$!
T_PIDS+=("$SSRV")
wait_for grep -q ACCEPT "$T_TMP/s_server.log"
cli sni "rediss://localhost:$sni_port/0?$CAQ" job 18
is "$CLI_RC" 69 "the SNI probe server is not Redis"
if [[ "$(err_of sni)" != *"certificate verify failed"* ]] &&
  [[ "$(err_of sni)" == *"protocol error"* ]]; then
  ok 0 "with host localhost, SNI selects the test-CA certificate and it verifies"
else
  ok 1 "with host localhost, SNI selects the test-CA certificate and it verifies"
  diag "$(err_of sni)"
fi
cli nosni "rediss://127.0.0.1:$sni_port/0?$CAQ" job 18
like "$(err_of nosni)" "certificate verify failed" \
  "with an IP address no SNI is sent: the default certificate is refused"
kill "$SSRV" 2>/dev/null

# --- The worker over TLS claims and answers; watch over TLS sees it.
CLIPSWEEP_REDIS_URL=$GOOD_URL "$CLI" watch --json >"$T_TMP/watch.out" \
  2>"$T_TMP/watch.err" &
WATCH=$!
T_PIDS+=("$WATCH")
# watch --json prints nothing once subscribed: ask the server.
subscribed() { [ "$(tcli PUBSUB NUMSUB "$NS:results" | tail -n 1)" -ge 1 ]; }
wait_for subscribed
ok $? "clipsweep watch subscribed over TLS"

tcli LPUSH "$S" '{"type":"retention_sweep","id":"tls-sweep-1","dry_run":true}' >/dev/null
CLIPSWEEP_REDIS_URL=$GOOD_URL start_worker --drain
ok $? "the worker starts with a rediss:// URL"
rc=0
wait "$WORKER_PID" || rc=$?
is "$rc" 0 "the worker drains the TLS queues and exits 0"
like "$(head -n 1 "$T_TMP/worker.log")" "\"redis\":\"rediss://" "it logs the rediss:// server"
r=$(tcli GET "$NS:result:tls-sweep-1")
one_of "$(echo "$r" | json status)" "ok failed" "the sweep was answered over TLS with a final status"
is "$(echo "$r" | json dry_run)" true "as a dry run"
is "$(tcli LLEN "$S")" 0 "the sweeps queue is empty"
is "$(tcli LLEN "$P")" 0 "the processing list is empty"
wait_for grep -q tls-sweep-1 "$T_TMP/watch.out"
like "$(cat "$T_TMP/watch.out")" '"id":"tls-sweep-1"' "clipsweep watch over TLS printed the result"
kill -INT "$WATCH" 2>/dev/null
rc=0
wait "$WATCH" || rc=$?
is "$rc" 0 "watch exits 0 on SIGINT"

# --- A worker never claims from a server it cannot verify.
# bad_worker NAME URL PORT: a message waits on the server at PORT; the
# worker must log a verification failure and leave it there.
bad_worker() {
  local name=$1 url=$2 port=$3 pid rc
  icli "$port" LPUSH "$S" "{\"type\":\"retention_sweep\",\"id\":\"$name-1\"}" >/dev/null
  CLIPSWEEP_REDIS_URL=$url "$WORKER" --drain >"$T_TMP/worker-$name.log" 2>&1 &
  pid=$!
  T_PIDS+=("$pid")
  wait_for grep -q 'certificate verify failed' "$T_TMP/worker-$name.log"
  ok $? "$name: the worker logs that the certificate did not verify"
  sleep 0.3
  is "$(icli "$port" LLEN "$S" 2>&1)" 1 "$name: the message is still queued"
  is "$(icli "$port" EXISTS "$NS:result:$name-1" 2>&1)" 0 "$name: and not answered"
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    ok 1 "$name: the worker exits on SIGTERM while it cannot connect"
    kill -KILL "$pid" 2>/dev/null
  else
    rc=0
    wait "$pid" || rc=$?
    is "$rc" 0 "$name: the worker exits 0 on SIGTERM while it cannot connect"
  fi
  icli "$port" DEL "$S" >/dev/null
}
bad_worker otherca "$REDIS_OTHERCA_URL?$CAQ" "$REDIS_OTHERCA_PORT"
bad_worker wronghost "$REDIS_WRONGHOST_URL?$CAQ" "$REDIS_WRONGHOST_PORT"

done_testing
