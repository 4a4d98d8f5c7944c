#!/usr/bin/env bash
# tests/s3mem against independent S3 clients: Debian's aws (botocore) and
# rclone (aws-sdk-go), plus curl's own SigV4 signer for what neither can
# send (the seed path, x-s3mem-last-modified, hostile bodies).  Their
# requests passing s3mem's verifier checks both it and common/sigv4.c.
. "$(dirname "$0")/lib.sh"

S3MEM=$BIN/tests/s3mem/s3mem
[ -x "$S3MEM" ] || skip_all "$S3MEM is not built"
[ -x "$AWS" ] || skip_all "$AWS is not installed"
command -v rclone >/dev/null || skip_all "rclone is not installed (scripts/lib/deps.sh)"

AK=AKIDS3MEMTEST
SK='s3mem/Secret+Key=42'
EMPTY_SHA=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
B=conf

"$S3MEM" --listen 127.0.0.1:0 --ready-file "$T_TMP/s3mem.port" \
  --access-key "$AK" --secret-key "$SK" --bucket seeded --verbose \
  2>"$T_TMP/s3mem.log" &
S3MEM_PID=$!
T_PIDS+=("$S3MEM_PID")
wait_for test -s "$T_TMP/s3mem.port"
ok $? "s3mem writes its port to the ready file"
EP=http://127.0.0.1:$(cat "$T_TMP/s3mem.port")

m3() { # aws against s3mem, with its key pair
  env -u AWS_CA_BUNDLE -u AWS_PROFILE AWS_ACCESS_KEY_ID="$AK" \
    AWS_SECRET_ACCESS_KEY="$SK" AWS_DEFAULT_REGION=us-east-1 \
    "$AWS" --endpoint-url "$EP" --output json "$@"
}
touch "$T_TMP/rclone.conf"
rc3() { # rclone against s3mem, configured from the environment only
  env -u AWS_CA_BUNDLE RCLONE_CONFIG="$T_TMP/rclone.conf" \
    RCLONE_CONFIG_S3MEM_TYPE=s3 RCLONE_CONFIG_S3MEM_PROVIDER=Other \
    RCLONE_CONFIG_S3MEM_ENDPOINT="$EP" RCLONE_CONFIG_S3MEM_ACCESS_KEY_ID="$AK" \
    RCLONE_CONFIG_S3MEM_SECRET_ACCESS_KEY="${RC_SECRET:-$SK}" \
    RCLONE_CONFIG_S3MEM_FORCE_PATH_STYLE=true rclone "$@"
}
# scurl METHOD PATH-AND-QUERY [BODY-FILE] [CURL-ARGS...]: curl's SigV4.
# Prints the status; the body is left in $T_TMP/scurl.out.  curl 7.88
# signs the query as given, so callers give it sorted, each name with '='.
scurl() {
  local method=$1 target=$2 body=${3:-} sha=$EMPTY_SHA
  shift 3 2>/dev/null || shift $#
  local -a data=()
  if [ -n "$body" ]; then
    sha=$(sha256sum <"$body" | cut -c1-64)
    data=(--data-binary "@$body")
  fi
  curl -s -o "$T_TMP/scurl.out" -w '%{http_code}' -X "$method" \
    --aws-sigv4 aws:amz:us-east-1:s3 --user "$AK:$SK" \
    -H "x-amz-content-sha256: $sha" ${data[@]+"${data[@]}"} "$@" "$EP$target"
}
# lines: a JSON array of strings (stdin) as one string per line.
lines() {
  /usr/bin/python3 -c '
import json, sys
v = json.load(sys.stdin)
for s in v or []:
    print(s)'
}
md5b64() { openssl dgst -md5 -binary "$1" | base64; }

# ---- buckets and objects through aws s3api
m3 s3api create-bucket --bucket "$B" >/dev/null
ok $? "aws s3api create-bucket"
is "$(m3 s3api list-buckets --query 'Buckets[].Name' | lines | sort | tr '\n' ' ')" \
  "conf seeded " "list-buckets shows --bucket and the created one"

KEYS=('a' 'a-b' 'a/b' 'a0' 'é' 'sp ace' 'plus+sign' 'per%cent' 'amp&ersand'
  'q?mark=1' 'dir/x' 'dir/y' 'dir/sub/z' '日本/語.txt' 'tilde~')
put_ok=0
for k in "${KEYS[@]}"; do
  printf 'body of %s' "$k" >"$T_TMP/body"
  m3 s3api put-object --bucket "$B" --key "$k" --body "$T_TMP/body" >/dev/null ||
    { put_ok=1; diag "put-object failed for '$k'"; }
done
ok "$put_ok" "aws s3api put-object of ${#KEYS[@]} keys with spaces, unicode, + % & ? ~"

printf 'body of %s' 'sp ace' >"$T_TMP/body"
head=$(m3 s3api head-object --bucket "$B" --key 'sp ace')
is "$(echo "$head" | json ContentLength)" "$(wc -c <"$T_TMP/body")" "head-object: Content-Length"
is "$(echo "$head" | json ETag)" "\"$(md5sum <"$T_TMP/body" | cut -c1-32)\"" \
  "head-object: the ETag is the quoted hex MD5"
like "$(echo "$head" | json LastModified)" "+00:00" "head-object: Last-Modified parses"
m3 s3api get-object --bucket "$B" --key 'per%cent' "$T_TMP/got" >/dev/null
is "$(cat "$T_TMP/got")" "body of per%cent" "get-object returns the body"
m3 s3api head-object --bucket "$B" --key nope >/dev/null 2>"$T_TMP/err"
like "$(cat "$T_TMP/err")" "404" "head-object of a missing key is 404"
m3 s3api get-object --bucket "$B" --key nope "$T_TMP/got" >/dev/null 2>"$T_TMP/err"
like "$(cat "$T_TMP/err")" "NoSuchKey" "get-object of a missing key is NoSuchKey"
m3 s3api list-objects-v2 --bucket no-such-bucket >/dev/null 2>"$T_TMP/err"
like "$(cat "$T_TMP/err")" "NoSuchBucket" "listing a missing bucket is NoSuchBucket"
echo "wrong" >"$T_TMP/body"
m3 s3api put-object --bucket "$B" --key md5 --body "$T_TMP/body" \
  --content-md5 "$(printf x | openssl dgst -md5 -binary | base64)" >/dev/null 2>"$T_TMP/err"
like "$(cat "$T_TMP/err")" "BadDigest" "a wrong Content-MD5 is BadDigest"
m3 s3api put-object --bucket "$B" --key md5 --body "$T_TMP/body" \
  --content-md5 "$(md5b64 "$T_TMP/body")" >/dev/null
ok $? "the right Content-MD5 is accepted"
m3 s3api delete-object --bucket "$B" --key md5 >/dev/null

# ---- listing order and parameters (aws adds encoding-type=url itself)
want=$(printf '%s\n' "${KEYS[@]}" | LC_ALL=C sort)
got=$(m3 s3api list-objects-v2 --bucket "$B" --query 'Contents[].Key' | lines)
is "$got" "$want" "list-objects-v2 returns every key in UTF-8 byte order"
is "$(echo "$got" | grep -xE 'a|a-b|a/b|a0|é' | tr '\n' ' ')" "a a-b a/b a0 é " \
  "a < a-b < a/b < a0 < é"
got=$(m3 s3api list-objects-v2 --bucket "$B" --page-size 2 --query 'Contents[].Key' | lines)
is "$got" "$want" "the same through continuation tokens, 2 keys a page"
got=$(m3 s3api list-objects --bucket "$B" --page-size 3 --query 'Contents[].Key' | lines)
is "$got" "$want" "list-objects (v1) with markers, 3 keys a page"

# (--no-paginate: aws drops KeyCount when it merges pages)
out=$(m3 s3api list-objects-v2 --bucket "$B" --prefix dir/ --delimiter / --no-paginate)
is "$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(" ".join(c["Key"] for c in json.load(sys.stdin)["Contents"]))')" \
  "dir/x dir/y" "prefix dir/ with delimiter /: the keys"
is "$(echo "$out" | json CommonPrefixes.0.Prefix)" "dir/sub/" "and the common prefix"
is "$(echo "$out" | json KeyCount)" 3 "KeyCount counts keys and prefixes"

out=$(m3 s3api list-objects-v2 --bucket "$B" --delimiter / --page-size 2 \
  --query 'CommonPrefixes[].Prefix' | lines | tr '\n' ' ')
is "$out" "a/ dir/ 日本/ " "common prefixes across pages, each once"
out=$(m3 s3api list-objects --bucket "$B" --delimiter / --page-size 2 \
  --query 'CommonPrefixes[].Prefix' | lines | tr '\n' ' ')
is "$out" "a/ dir/ 日本/ " "the same with v1 and NextMarker"

out=$(m3 s3api list-objects-v2 --bucket "$B" --max-keys 2 --no-paginate)
is "$(echo "$out" | json IsTruncated)" true "max-keys 2: truncated"
is "$(echo "$out" | json KeyCount)" 2 "max-keys 2: two keys"
tok=$(echo "$out" | json NextContinuationToken)
out=$(m3 s3api list-objects-v2 --bucket "$B" --max-keys 2 --no-paginate \
  --continuation-token "$tok" --query 'Contents[].Key' | lines | tr '\n' ' ')
is "$out" "$(echo "$want" | sed -n 3,4p | tr '\n' ' ')" "the token resumes after the second key"
out=$(m3 s3api list-objects-v2 --bucket "$B" --start-after a0 --prefix a \
  --query 'Contents[].Key' | lines | tr '\n' ' ')
is "$out" "amp&ersand " "start-after a0 within prefix a"
out=$(m3 s3api list-objects --bucket "$B" --marker 'q?mark=1' --query 'Contents[].Key' | lines | tr '\n' ' ')
is "$out" "sp ace tilde~ é 日本/語.txt " "v1 marker"

# ---- deletes
out=$(m3 s3api delete-objects --bucket "$B" \
  --delete '{"Objects":[{"Key":"a"},{"Key":"plus+sign"},{"Key":"never-was"}]}')
is "$(echo "$out" | /usr/bin/python3 -c 'import json,sys; print(" ".join(sorted(d["Key"] for d in json.load(sys.stdin)["Deleted"])))')" \
  "a never-was plus+sign" "delete-objects reports each key deleted, absent ones too"
out=$(m3 s3api delete-objects --bucket "$B" \
  --delete '{"Objects":[{"Key":"a-b"}],"Quiet":true}')
is "$out" "" "Quiet mode lists nothing"
m3 s3api delete-object --bucket "$B" --key 'amp&ersand' >/dev/null
ok $? "delete-object"
m3 s3api delete-object --bucket "$B" --key 'amp&ersand' >/dev/null
ok $? "delete-object of an absent key succeeds (204)"
got=$(m3 s3api list-objects-v2 --bucket "$B" --query 'Contents[].Key' | lines)
is "$got" "$(echo "$want" | grep -vxE 'a|a-b|plus\+sign|amp&ersand')" "the deleted keys are gone"

# ---- aws s3 (high level)
mkdir -p "$T_TMP/up/sub"
echo one >"$T_TMP/up/one file.txt"
echo two >"$T_TMP/up/sub/twö+.txt"
m3 s3 cp --recursive --quiet "$T_TMP/up" "s3://$B/s3cp/"
ok $? "aws s3 cp --recursive uploads"
m3 s3 cp --quiet "s3://$B/s3cp/sub/twö+.txt" "$T_TMP/down.txt"
is "$(cat "$T_TMP/down.txt")" two "aws s3 cp downloads"
out=$(m3 s3 ls "s3://$B/s3cp/")
like "$out" "PRE sub/" "aws s3 ls shows the prefix"
like "$out" "one file.txt" "and the object"
is "$(m3 s3 ls --recursive "s3://$B/s3cp/" | wc -l)" 2 "aws s3 ls --recursive"
m3 s3 rm --recursive --quiet "s3://$B/s3cp/"
ok $? "aws s3 rm --recursive"
is "$(m3 s3api list-objects-v2 --bucket "$B" --prefix s3cp/ --no-paginate --query KeyCount)" 0 \
  "the prefix is empty"

# ---- rclone
mkdir -p "$T_TMP/rc/d"
echo alpha >"$T_TMP/rc/sp ace.txt"
echo beta >"$T_TMP/rc/d/ü+%&.txt"
rc3 copy "$T_TMP/rc" "s3mem:$B/rc" 2>"$T_TMP/rclone.log"
ok $? "rclone copy"
got=$(m3 s3api list-objects-v2 --bucket "$B" --prefix rc/ --query 'Contents[].Key' | lines)
is "$got" "$(printf 'rc/d/ü+%%&.txt\nrc/sp ace.txt')" "aws sees what rclone copied"
is "$(rc3 ls "s3mem:$B/rc" 2>>"$T_TMP/rclone.log" | sed 's/^ *//' | LC_ALL=C sort)" \
  "$(printf '5 d/ü+%%&.txt\n6 sp ace.txt')" "rclone ls"
is "$(rc3 lsf --recursive "s3mem:$B" 2>>"$T_TMP/rclone.log" | LC_ALL=C sort | tr '\n' '|')" \
  "$(printf '%s\n' "${KEYS[@]}" 'rc/' 'rc/sp ace.txt' 'rc/d/' 'rc/d/ü+%&.txt' 'dir/' 'dir/sub/' \
    'a/' '日本/' | grep -vxE 'a|a-b|plus\+sign|amp&ersand' | LC_ALL=C sort | tr '\n' '|')" \
  "rclone lsf --recursive"
size=$(rc3 size --json "s3mem:$B/rc" 2>>"$T_TMP/rclone.log")
is "$(echo "$size" | json count) $(echo "$size" | json bytes)" "2 11" "rclone size"

printf old >"$T_TMP/old"
is "$(scurl PUT /$B/age/old.txt "$T_TMP/old" -H 'x-s3mem-last-modified: 1500000000')" 200 \
  "PUT with x-s3mem-last-modified (curl's signer)"
is "$(m3 s3api head-object --bucket "$B" --key age/old.txt | json LastModified)" \
  "2017-07-14T02:40:00+00:00" "it sets Last-Modified"
put_object_new() { printf new >"$T_TMP/new" && m3 s3api put-object --bucket "$B" --key age/new.txt --body "$T_TMP/new" >/dev/null; }
put_object_new
rc3 delete --min-age 30d "s3mem:$B/age" 2>>"$T_TMP/rclone.log"
ok $? "rclone delete --min-age 30d"
is "$(m3 s3api list-objects-v2 --bucket "$B" --prefix age/ --query 'Contents[].Key' | lines)" \
  "age/new.txt" "only the old object went"

# ---- authentication
env -u AWS_CA_BUNDLE AWS_ACCESS_KEY_ID="$AK" AWS_SECRET_ACCESS_KEY=not-the-secret \
  AWS_DEFAULT_REGION=us-east-1 "$AWS" --endpoint-url "$EP" s3api list-objects-v2 \
  --bucket "$B" >/dev/null 2>"$T_TMP/err"
like "$(cat "$T_TMP/err")" "SignatureDoesNotMatch" "aws with a wrong secret: SignatureDoesNotMatch"
env -u AWS_CA_BUNDLE AWS_ACCESS_KEY_ID=AKIDNOBODY AWS_SECRET_ACCESS_KEY="$SK" \
  AWS_DEFAULT_REGION=us-east-1 "$AWS" --endpoint-url "$EP" s3api list-objects-v2 \
  --bucket "$B" >/dev/null 2>"$T_TMP/err"
like "$(cat "$T_TMP/err")" "InvalidAccessKeyId" "an unknown key id: InvalidAccessKeyId"
RC_SECRET=wrong rc3 ls "s3mem:$B" >/dev/null 2>"$T_TMP/err"
rc=$?
ok $((rc == 0)) "rclone with a wrong secret fails"
like "$(cat "$T_TMP/err")" "403" "with 403"
is "$(curl -s -o "$T_TMP/anon" -w '%{http_code}' "$EP/$B?list-type=2")" 403 "an unsigned request is 403"
like "$(cat "$T_TMP/anon")" "<Code>AccessDenied</Code>" "AccessDenied"
is "$(scurl GET "/$B?list-type=2" '' -H 'X-Amz-Date: 20200101T000000Z')" 403 "an x-amz-date from 2020 is 403"
like "$(cat "$T_TMP/scurl.out")" "RequestTimeTooSkewed" "RequestTimeTooSkewed"
printf 'x' >"$T_TMP/x"
is "$(curl -s -o "$T_TMP/scurl.out" -w '%{http_code}' -X PUT --aws-sigv4 aws:amz:us-east-1:s3 \
  --user "$AK:$SK" -H "x-amz-content-sha256: $EMPTY_SHA" --data-binary @"$T_TMP/x" "$EP/$B/x")" \
  400 "a body that does not match x-amz-content-sha256 is 400"
like "$(cat "$T_TMP/scurl.out")" "XAmzContentSHA256Mismatch" "XAmzContentSHA256Mismatch"

# ---- hostile DeleteObjects bodies (curl, signed)
del() { # BODY-FILE [CURL-ARGS...]
  local f=$1
  shift
  scurl POST "/$B?delete=" "$f" -H "Content-MD5: $(md5b64 "$f")" "$@"
}
printf '<Delete><Object><Key>x</Key></Object>' >"$T_TMP/d1"
is "$(del "$T_TMP/d1")" 400 "unterminated XML is 400"
like "$(cat "$T_TMP/scurl.out")" "MalformedXML" "MalformedXML"
printf '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa">]><Delete><Object><Key>&a;</Key></Object></Delete>' >"$T_TMP/d2"
is "$(del "$T_TMP/d2")" 400 "a DOCTYPE is refused"
{
  printf '<Delete>'
  for i in $(seq 1 1001); do printf '<Object><Key>k%d</Key></Object>' "$i"; done
  printf '</Delete>'
} >"$T_TMP/d3"
is "$(del "$T_TMP/d3")" 400 "1001 keys is MalformedXML"
printf '<Delete><Object><Key>x</Key></Object></Delete>' >"$T_TMP/d4"
is "$(scurl POST "/$B?delete=" "$T_TMP/d4")" 400 "DeleteObjects without Content-MD5 is 400"
like "$(cat "$T_TMP/scurl.out")" "Content-MD5" "naming Content-MD5"
is "$(scurl GET "/$B?list-type=2&max-keys=%zz" '')" 403 "a malformed escape in the query cannot be verified"
is "$(scurl GET "/$B?list-type=2&max-keys=abc" '')" 400 "a bad max-keys is 400"
is "$(scurl GET "/$B?continuation-token=%21%21&list-type=2" '')" 400 "a bad continuation token is 400"

# ---- bulk seeding and a long listing
seq -f 'bulk/%06g' 0 99999 | awk '{ printf "%s\t%d\t%d\n", $0, NR, 1600000000 }' >"$T_TMP/seed"
is "$(scurl POST "/seeded?s3mem-seed=" "$T_TMP/seed")" 200 "seeding 100000 objects"
like "$(cat "$T_TMP/scurl.out")" "<Seeded>100000</Seeded>" "all of them"
printf 'bad line\n' >"$T_TMP/badseed"
is "$(scurl POST "/seeded?s3mem-seed=" "$T_TMP/badseed")" 400 "a malformed seed line is 400"
t0=$(date +%s%N)
n=$(m3 s3api list-objects-v2 --bucket seeded --query 'length(Contents)')
t1=$(date +%s%N)
is "$n" 100000 "aws lists all 100000 seeded objects"
diag "aws listed 100000 objects in $(((t1 - t0) / 1000000)) ms"
out=$(m3 s3api list-objects-v2 --bucket seeded --prefix bulk/09999 --query 'Contents[].[Key,Size,LastModified]' --output text)
is "$out" "$(printf 'bulk/099990\t99991\t2020-09-13T12:26:40+00:00\nbulk/099991\t99992\t2020-09-13T12:26:40+00:00\nbulk/099992\t99993\t2020-09-13T12:26:40+00:00\nbulk/099993\t99994\t2020-09-13T12:26:40+00:00\nbulk/099994\t99995\t2020-09-13T12:26:40+00:00\nbulk/099995\t99996\t2020-09-13T12:26:40+00:00\nbulk/099996\t99997\t2020-09-13T12:26:40+00:00\nbulk/099997\t99998\t2020-09-13T12:26:40+00:00\nbulk/099998\t99999\t2020-09-13T12:26:40+00:00\nbulk/099999\t100000\t2020-09-13T12:26:40+00:00')" \
  "seeded sizes and times come back"

# ---- shutdown
kill -TERM "$S3MEM_PID"
rc=0
wait "$S3MEM_PID" || rc=$?
is "$rc" 0 "SIGTERM stops s3mem with status 0"
like "$(cat "$T_TMP/s3mem.log")" "GET /$B?list-type=2" "--verbose logs one line per request"

done_testing
