#!/usr/bin/env bash
# s3mem's fault injection (tests/s3mem/faults.c, the rules in s3mem.c)
# seen from outside by curl and Debian's aws: options and the
# /?s3mem-faults endpoint, each fault as curl sees it, per-key errors in
# DeleteObjects, seeds, and --fail-lists as before.  test_s3_faults checks
# the same faults through our own S3 client.
. "$(dirname "$0")/lib.sh"

S3MEM=$BIN/tests/s3mem/s3mem
[ -x "$S3MEM" ] || skip_all "$S3MEM is not built"
[ -x "$AWS" ] || skip_all "$AWS is not installed"

AK=AKIDFAULTSTEST
SK='faults/Secret+Key=7'
B=faulty
S3MEM_PIDS=()

# s3mem_start NAME [ARGS]: a server logging to $T_TMP/NAME.log; sets EP.
s3mem_start() {
  local name=$1
  shift
  rm -f "$T_TMP/$name.port"
  "$S3MEM" --listen 127.0.0.1:0 --ready-file "$T_TMP/$name.port" \
    --bucket "$B" --verbose "$@" 2>>"$T_TMP/$name.log" &
  T_PIDS+=("$!")
  S3MEM_PIDS+=("$!")
  wait_for test -s "$T_TMP/$name.port" || return 1
  EP=http://127.0.0.1:$(cat "$T_TMP/$name.port")
}

# code CURL-ARGS...: curl's exit status and the HTTP status, "RC STATUS".
code() {
  local st rc=0
  st=$(curl -s -o "$T_TMP/body" -w '%{http_code}' "$@") || rc=$?
  echo "$rc $st"
}
# faults RULES: replaces the rules (unsigned server); prints the status.
faults() {
  printf '%s' "$1" >"$T_TMP/rules"
  curl -s -o "$T_TMP/report" -w '%{http_code}' --data-binary @"$T_TMP/rules" \
    "$EP/?s3mem-faults"
}
# report ELEMENT [RULE]: one value of the report, the RULE-th rule's.
report() {
  curl -s "$EP/?s3mem-faults" | /usr/bin/python3 -c '
import sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.read())
rules = [root] + root.findall("Rule")
i = int(sys.argv[2])
print(rules[i].findtext(sys.argv[1]) if i < len(rules) else None)' "$1" "${2:-0}"
}
# pattern N CURL-ARGS...: N requests in turn, one status digit each
# (2, 4, 5) or x for no answer.
pattern() {
  local n=$1 i st out=
  shift
  for ((i = 0; i < n; i++)); do
    st=$(curl -s -o /dev/null -w '%{http_code}' "$@") || st=x
    out+=${st:0:1}
  done
  echo "$out"
}

# ---- bad options are refused at start, naming what is wrong
bad() { # WHAT ARGS...
  local what=$1 rc=0
  shift
  "$S3MEM" --listen 127.0.0.1:0 "$@" >/dev/null 2>"$T_TMP/bad.err" || rc=$?
  is "$rc" 64 "$what: exit 64"
}
bad "an unknown setting" --fault 'op=head bogus=1'
like "$(cat "$T_TMP/bad.err")" 'bogus=1' "the message names the setting"
bad "a rule without an action" --fault 'op=head rate=0.5'
like "$(cat "$T_TMP/bad.err")" 'needs an action' "and says it needs an action"
bad "a rate above 1" --fault 'rate=1.5 error=503'
bad "error=404" --fault 'error=404'
bad "reset and stall together" --fault 'reset stall'
bad "key-error on HEAD" --fault 'op=head key-error=x'
bad "applied without an outcome" --fault 'delay=5 applied'
bad "a bad --fault-seed" --fault-seed x
bad "--fail-lists 2:" --fail-lists 2:

# ---- rules from the command line
s3mem_start cli --fault-seed 9 --fault 'op=get nth=2 error=503' \
  --fault op=put,delay=100 || { echo "Bail out! s3mem did not start"; exit 1; }
is "$(report Seed)" 9 "--fault-seed sets the seed"
is "$(report Spec 2)" "op=put delay=100" "--fault with commas: the rule, space-separated"
printf 'hello' >"$T_TMP/obj"
t=$(curl -s -o /dev/null -w '%{time_total}' -T "$T_TMP/obj" "$EP/$B/k")
ok "$(awk -v t="$t" 'BEGIN { exit !(t >= 0.1) }'; echo $?)" "op=put delay=100: the PUT took ${t}s (at least 0.1)"
is "$(pattern 3 "$EP/$B/k")" 252 "op=get nth=2 error=503: only the second GET fails"
curl -s "$EP/$B/k" >/dev/null
is "$(report Matched 1) $(report Fired 1)" "4 1" "the report counts 4 matched, 1 fired"

faults 'op=get error=503' >/dev/null
is "$(code "$EP/$B/k")" "0 503" "error=503: 503"
like "$(cat "$T_TMP/body")" "<Code>SlowDown</Code>" "with the SlowDown document"
faults 'op=get error=500' >/dev/null
is "$(code "$EP/$B/k")" "0 500" "error=500: 500"
like "$(cat "$T_TMP/body")" "<Code>InternalError</Code>" "with the InternalError document"
is "$(code -I "$EP/$B/k")" "0 200" "op=get leaves HEAD alone"

# ---- the control endpoint
is "$(faults $'op=head error=503\nop=head bogus')" 400 "a bad line is 400"
like "$(cat "$T_TMP/report")" "line 2" "naming its line"
is "$(report Spec 1)" "op=get error=500" "and nothing was changed"
is "$(faults $'# a comment\n\nop=list count=1 error=503\nseed=77\n')" 200 \
  "comments, blank lines and a seed line"
is "$(report Seed) $(report Spec 1) $(report Matched 1)" "77 op=list count=1 error=503 0" \
  "the new rule with fresh counters and the seed"
is "$(pattern 3 "$EP/$B?list-type=2")" 522 "count=1: one failure, then none"
is "$(faults '')" 200 "an empty body"
is "$(report Spec 1)" None "clears every rule"
is "$(code -X PUT "$EP/?s3mem-faults")" "0 405" "PUT on the endpoint is 405"

# ---- seeds: the same one fails the same requests
faults $'seed=3\nop=head rate=0.5 error=503' >/dev/null
p1=$(pattern 40 -I "$EP/$B/k")
faults $'seed=3\nop=head rate=0.5 error=503' >/dev/null
p2=$(pattern 40 -I "$EP/$B/k")
faults $'seed=4\nop=head rate=0.5 error=503' >/dev/null
p3=$(pattern 40 -I "$EP/$B/k")
is "$p2" "$p1" "rate=0.5, seed 3 twice: the same HEADs fail ($p1)"
ok "$([ "$p3" != "$p1" ]; echo $?)" "seed 4 fails others ($p3)"
n=$(tr -cd 5 <<<"$p1" | wc -c)
ok "$([ "$n" -ge 8 ] && [ "$n" -le 32 ]; echo $?)" "about half fail ($n of 40)"

# ---- no answer: reset, close, stall; late answers
faults 'op=get reset' >/dev/null
is "$(code "$EP/$B/k")" "56 000" "reset: curl reads 'connection reset' (56)"
faults 'op=get close' >/dev/null
is "$(code "$EP/$B/k")" "52 000" "close: curl reads an empty reply (52)"
faults 'op=get stall' >/dev/null
t0=$(date +%s%N)
is "$(code -m 1 "$EP/$B/k")" "28 000" "stall: curl times out (28)"
ok "$(( ($(date +%s%N) - t0) >= 1000000000 ? 0 : 1 ))" "after its 1 s"
wait_for test "$(report Held)" = 0
ok $? "s3mem lets the stalled request go once curl hangs up"
faults 'op=get delay=300 jitter=100' >/dev/null
t=$(curl -s -o /dev/null -w '%{time_total}' "$EP/$B/k")
ok "$(awk -v t="$t" 'BEGIN { exit !(t >= 0.3) }'; echo $?)" "delay=300 jitter=100: ${t}s (at least 0.3)"
faults 'op=delete reset applied' >/dev/null
is "$(code -X DELETE "$EP/$B/k")" "56 000" "reset applied: no answer to the DELETE"
is "$(code -I "$EP/$B/k")" "0 404" "yet the object is gone"
faults 'op=put reset' >/dev/null
is "$(code -H 'Expect:' -T "$T_TMP/obj" "$EP/$B/k2")" "56 000" "reset (not applied): no answer to the PUT"
is "$(code -I "$EP/$B/k2")" "0 404" "and nothing was stored"

# ---- --fail-lists N[:M] as before
s3mem_start fl --fail-lists 1:2 || { echo "Bail out! s3mem did not start"; exit 1; }
is "$(pattern 5 "$EP/$B?list-type=2")" 25522 "--fail-lists 1:2: the 2nd and 3rd listings fail"
s3mem_start fl2 --fail-lists 2 || { echo "Bail out! s3mem did not start"; exit 1; }
is "$(pattern 4 "$EP/$B?list-type=2")" 2255 "--fail-lists 2: every listing after the 2nd"

# ---- signed: the endpoint is authenticated like every request; aws
s3mem_start signed --access-key "$AK" --secret-key "$SK" ||
  { echo "Bail out! s3mem did not start"; exit 1; }
# spost TARGET BODY: a signed POST with curl's SigV4 (query with '=').
spost() {
  printf '%s' "$2" >"$T_TMP/post"
  curl -s -o "$T_TMP/report" -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 \
    --user "$AK:$SK" -H "x-amz-content-sha256: $(sha256sum <"$T_TMP/post" | cut -c1-64)" \
    --data-binary @"$T_TMP/post" "$EP$1"
}
sfaults() { spost "/?s3mem-faults=" "$1"; }
m3() {
  env -u AWS_CA_BUNDLE -u AWS_PROFILE AWS_ACCESS_KEY_ID="$AK" \
    AWS_SECRET_ACCESS_KEY="$SK" AWS_DEFAULT_REGION=us-east-1 AWS_PAGER= \
    AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null \
    "$AWS" --endpoint-url "$EP" --output json "$@"
}
is "$(faults 'op=head error=503')" 403 "an unsigned POST /?s3mem-faults is 403"
is "$(sfaults 'op=head count=1 error=503')" 200 "a signed one is taken"

is "$(spost "/$B?s3mem-seed=" "$(printf 'd/%s\t1\t1700000000\n' ok1 bad1 ok2 bad2 ok3)")" \
  200 "seeding is not faulted"
m3 s3api head-object --bucket "$B" --key d/ok1 >/dev/null 2>"$T_TMP/err"
ok $? "aws head-object succeeds: it retries the one 503"
is "$(grep -o 'HEAD /faulty/d/ok1 [0-9]*' "$T_TMP/signed.log" | tr '\n' ' ')" \
  "HEAD /faulty/d/ok1 503 HEAD /faulty/d/ok1 200 " "s3mem's log: a 503, then the retry's 200"

sfaults 'key-error=bad key-code=SlowDown' >/dev/null
out=$(m3 s3api delete-objects --bucket "$B" \
  --delete '{"Objects":[{"Key":"d/ok1"},{"Key":"d/bad1"},{"Key":"d/ok2"},{"Key":"d/bad2"},{"Key":"d/ok3"}]}')
is "$(echo "$out" | /usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print(" ".join(sorted(e["Key"] + ":" + e["Code"] for e in d.get("Errors", []))), "/", " ".join(sorted(e["Key"] for e in d.get("Deleted", []))))')" \
  "d/bad1:SlowDown d/bad2:SlowDown / d/ok1 d/ok2 d/ok3" \
  "key-error=bad: aws reports exactly those keys as errors, the rest deleted"
is "$(m3 s3api list-objects-v2 --bucket "$B" --prefix d/ --query 'Contents[].Key' --output text)" \
  "d/bad1	d/bad2" "and only they remain"

rc=0
for p in "${S3MEM_PIDS[@]}"; do
  kill -TERM "$p"
  wait "$p" || rc=$?
done
is "$rc" 0 "each s3mem exits 0 on SIGTERM"

done_testing
