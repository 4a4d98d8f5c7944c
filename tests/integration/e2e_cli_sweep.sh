#!/usr/bin/env bash
# clipsweep sweep, the producer side: the message it pushes, its usage
# errors, the typed confirmation for --force, and --wait with progress and
# the printed report.  The worker side is played by redis-cli, so that the
# CLI is tested on its own: it reads the task from the queue and publishes
# progress and a result for its id.
. "$(dirname "$0")/lib.sh"

S=$NS:queue:sweeps
CLIERR=$T_TMP/cli.err

# keys < JSON: the object's field names, sorted, on one line.
keys() {
  /usr/bin/python3 -c 'import json, sys; print(" ".join(sorted(json.load(sys.stdin))))'
}
# same_json A B: true when the two texts are the same JSON value.
same_json() {
  /usr/bin/python3 -c 'import json, sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$1" "$2"
}
queued() { rcli LLEN "$S"; }
sweep() { # ARGS...: stdout in OUT, exit status in RC, stderr in $CLIERR
  RC=0
  OUT=$("$CLI" sweep "$@" 2>"$CLIERR") || RC=$?
}

# The message, exactly.
sweep --retention-days 7 --min-age-hours 12 --prefix public/uploads/ --dry-run --json
is "$RC" 0 "sweep exits 0 without --wait"
is "$(echo "$OUT" | wc -l)" 1 "--json prints exactly one line"
is "$(queued)" 1 "one message in the sweeps queue"
msg=$(rcli LINDEX "$S" 0)
is "$msg" "$OUT" "the queued message is the printed one"
is "$(echo "$msg" | keys)" "dry_run enqueued_at id min_age_hours prefix retention_days type" \
  "the message has the fields given, and no others"
is "$(echo "$msg" | json type)" retention_sweep "type retention_sweep"
is "$(echo "$msg" | json retention_days)" 7 "retention_days is the number given"
is "$(echo "$msg" | json min_age_hours)" 12 "min_age_hours is the number given"
is "$(echo "$msg" | json prefix)" public/uploads/ "prefix as given"
is "$(echo "$msg" | json dry_run)" true "dry_run true"
[[ "$(echo "$msg" | json id)" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]
ok $? "the id is a UUID v4"
[[ "$(echo "$msg" | json enqueued_at)" =~ ^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z$ ]]
ok $? "enqueued_at is an RFC 3339 UTC time"
rcli DEL "$S" >/dev/null

sweep --shards 8 --dry-run --json
is "$(rcli LINDEX "$S" 0 | json shards)" 8 "--shards 8: shards 8 in the message"
rcli DEL "$S" >/dev/null

sweep --json
msg=$(rcli LINDEX "$S" 0)
is "$(echo "$msg" | keys)" "dry_run enqueued_at id type" \
  "with no options: only type, id, dry_run and enqueued_at (the worker's defaults apply)"
is "$(echo "$msg" | json dry_run)" false "and dry_run false"
rcli DEL "$S" >/dev/null

# Usage errors: exit 64, the option named, nothing enqueued.
bad_number() { # OPTION VALUE
  sweep "$1" "$2"
  is "$RC" 64 "$1 '$2' is a usage error"
  like "$(cat "$CLIERR")" "$1" "and the message names $1"
}
bad_number --retention-days abc
bad_number --retention-days 7d
bad_number --shards 0
bad_number --shards 257
bad_number --retention-days -1
bad_number --retention-days 3651
bad_number --retention-days ''
bad_number --min-age-hours 1.5
bad_number --min-age-hours ' 3'
bad_number --min-age-hours 87601
bad_number --min-age-hours 99999999999999999999
sweep --retention-days 3650 --min-age-hours 87600 --dry-run
is "$RC" 0 "the upper bounds are accepted"
is "$(rcli LINDEX "$S" 0 | json retention_days)" 3650 "retention_days 3650 is enqueued"
rcli DEL "$S" >/dev/null
sweep --retention-days 0 --min-age-hours 0 --dry-run --json
is "$(echo "$OUT" | json retention_days)/$(echo "$OUT" | json min_age_hours)" 0/0 \
  "zero is a number, not an absent option"
rcli DEL "$S" >/dev/null

sweep --yes
is "$RC" 64 "--yes without --force is a usage error"
like "$(cat "$CLIERR")" "--yes only confirms --force" "and says why"
sweep --force </dev/null
is "$RC" 64 "--force without a terminal and without --yes is refused"
like "$(cat "$CLIERR")" "add --yes" "and says to add --yes"
sweep --wait=0
is "$RC" 64 "--wait=0 is a usage error"
sweep --wait=soon
is "$RC" 64 "--wait=soon is a usage error"
sweep stray
is "$RC" 64 "a stray argument is a usage error"
sweep --prefix ../etc/
is "$RC" 65 "an unsafe prefix is refused before enqueuing (EX_DATAERR)"
like "$(cat "$CLIERR")" "prefix" "and the message says which field"
is "$(queued)" 0 "none of these enqueued anything"

CLIPSWEEP_REDIS_URL=redis://127.0.0.1:1/0 "$CLI" sweep --dry-run >/dev/null 2>"$CLIERR"
is "$?" 69 "an unreachable Redis is EX_UNAVAILABLE"

# --force with --yes, or for a dry run, needs no terminal.
sweep --force --yes --json </dev/null
is "$RC" 0 "--force --yes enqueues without a terminal"
msg=$(rcli LINDEX "$S" 0)
is "$(echo "$msg" | json force)/$(echo "$msg" | json dry_run)" true/false \
  "with force true and dry_run false"
rcli DEL "$S" >/dev/null
sweep --dry-run --force </dev/null
is "$RC" 0 "--dry-run --force needs no confirmation (nothing is deleted)"
msg=$(rcli LINDEX "$S" 0)
is "$(echo "$msg" | json force)/$(echo "$msg" | json dry_run)" true/true \
  "with force true and dry_run true"
rcli DEL "$S" >/dev/null

# --wait with no worker: EX_TEMPFAIL, and the task stays queued.
sweep --dry-run --wait=1
is "$RC" 75 "no result within --wait is EX_TEMPFAIL"
like "$(cat "$CLIERR")" "still queued or running" "and says so"
is "$(queued)" 1 "the task is still queued"
rcli DEL "$S" >/dev/null

# The worker, played by redis-cli: waits for the task, then publishes two
# progress messages (one for another task) and a final result.
result_for() { # ID STATUS
  local refused=""
  [ "$2" = refused ] && refused=',"refused_reason":"the plan would delete 98.0% of the objects scanned, more than max_delete_ratio 0.5"'
  printf '%s' '{"id":"'"$1"'","type":"retention_sweep","status":"'"$2"'","dry_run":true,'\
'"message":"Would delete 245 files (1.50 MB) under '"$CUBE"'/, retained 5 of 250 scanned",'\
'"scan_prefix":"'"$CUBE"'/","retention_days":5,"min_age_hours":24,"force":false,'\
'"deleted_count":245,"deleted_size_bytes":1572864,"deleted_size_mb":1.5,"retained_count":5,'\
'"total_files_scanned":250,"total_objects_scanned":250,"objects_in_database":7,'\
'"delete_ratio":0.98,"candidates_by_reason":{"expired_clip":1,"temporary":4,"orphan":240},'\
'"candidates_by_prefix":{"public/":5,"lambda/":240},"kept_by_reason":{"retained_clip":3,"active":1,"recent":1,"unsafe_key":0},'\
'"sample_candidate_keys":["'"$CUBE"'/lambda/a.zip","'"$CUBE"'/lambda/b.zip"],"deleted_files_sample":[],'\
'"warnings":["orphans are 98% of the scan: check the key format"]'"$refused"',"errors":[]}'
}
fake_worker() { # STATUS: publishes for the task at the queue's head
  local i id res
  for i in $(seq 1 200); do
    [ "$(queued)" -gt 0 ] && break
    sleep 0.05
  done
  id=$(rcli LINDEX "$S" 0 | json id)
  rcli PUBLISH "$NS:progress" '{"id":"someone-else","type":"retention_sweep","phase":"plan","scanned":999,"candidates":998,"deleted":0,"deleted_bytes":0}' >/dev/null
  rcli PUBLISH "$NS:progress" '{"id":"'"$id"'","type":"retention_sweep","phase":"plan","scanned":12345,"candidates":240,"deleted":0,"deleted_bytes":0}' >/dev/null
  sleep 0.2
  rcli PUBLISH "$NS:progress" '{"id":"'"$id"'","type":"retention_sweep","phase":"execute","scanned":250,"candidates":245,"deleted":100,"deleted_bytes":1048576}' >/dev/null
  sleep 0.2
  res=$(result_for "$id" "$1")
  printf '%s' "$res" >"$T_TMP/published.json"
  rcli SET "$NS:result:$id" "$res" >/dev/null
  rcli PUBLISH "$NS:results" "$res" >/dev/null
}
start_fake() { # STATUS
  rcli DEL "$S" >/dev/null
  rm -f "$T_TMP/published.json"
  fake_worker "$1" &
  FAKE=$!
  T_PIDS+=("$FAKE")
}

start_fake ok
sweep --dry-run --wait=20 --json
wait "$FAKE"
is "$RC" 0 "--wait: status ok exits 0"
is "$(echo "$OUT" | wc -l)" 1 "--wait --json prints exactly one line"
same_json "$OUT" "$(cat "$T_TMP/published.json")"
ok $? "and it is the published result"
! grep -q planning "$CLIERR"
ok $? "no progress line when stderr is not a terminal"

start_fake refused
sweep --dry-run --wait=20
wait "$FAKE"
is "$RC" 1 "--wait: status refused exits 1"
like "$OUT" "retention_sweep task " "the summary has a headline"
like "$OUT" "refused (dry run): Would delete 245 files" "with the status and the message"
like "$OUT" "REFUSED:     the plan would delete 98.0%" "the refusal reason is prominent"
like "$OUT" "prefix       $CUBE/" "the prefix"
like "$OUT" "250 objects; the database refers to 7 keys" "the counts"
like "$OUT" "98.0% of the objects scanned" "the ratio as a percentage"
like "$OUT" "by reason    expired_clip 1, temporary 4, orphan 240" "candidates by reason"
like "$OUT" "by prefix    public/ 5, lambda/ 240" "candidates by prefix"
like "$OUT" "kept         retained_clip 3, active 1, recent 1" "kept by reason"
like "$OUT" "$CUBE/lambda/b.zip" "sample keys"
like "$OUT" "WARNING:     orphans are 98% of the scan" "warnings"

# On a terminal (script(1) gives a pty): a progress line, for our id only.
if command -v script >/dev/null; then
  start_fake ok
  RC=0
  script -qec "$CLI sweep --dry-run --wait=20" "$T_TMP/tty.log" </dev/null >/dev/null 2>&1 || RC=$?
  wait "$FAKE"
  is "$RC" 0 "on a terminal: exit 0"
  tty=$(cat "$T_TMP/tty.log")
  like "$tty" $'\rplanning: 12,345 objects scanned, 240 candidates\e[K' "a progress line for the plan"
  like "$tty" $'\rdeleting: 250 objects scanned, 245 candidates, 100 deleted (1.00 MB)\e[K' \
    "rewritten in place for the execution"
  [[ "$tty" != *"998 candidates"* ]]
  ok $? "another task's progress is not shown"
  like "$tty" $'\r\e[Kretention_sweep task ' "the line is cleared before the result"

  # The typed confirmation.
  confirm() { # WORD: types WORD at the prompt of a forced sweep
    RC=0
    (sleep 0.5; printf '%s\n' "$1") |
      script -qec "$CLI sweep --force --prefix public/ --retention-days 3" "$T_TMP/confirm.log" >/dev/null 2>&1 || RC=$?
  }
  rcli DEL "$S" >/dev/null
  confirm yes
  is "$RC" 1 "typing another word aborts with exit 1"
  is "$(queued)" 0 "and enqueues nothing"
  like "$(cat "$T_TMP/confirm.log")" "not confirmed; nothing was enqueued" "and says so"
  prompt=$(cat "$T_TMP/confirm.log")
  like "$prompt" "delete-ratio guard OFF" "the prompt says the ratio guard is off"
  like "$prompt" "namespace  $NS" "names the namespace"
  like "$prompt" "queue      $S" "names the queue"
  like "$prompt" "prefix     public/" "names the prefix"
  like "$prompt" "retention  3 days" "names the retention"
  like "$prompt" "Type 'force'" "and asks for the word"
  confirm force
  is "$RC" 0 "typing 'force' enqueues"
  msg=$(rcli LINDEX "$S" 0)
  is "$(echo "$msg" | json force)/$(echo "$msg" | json dry_run)/$(echo "$msg" | json prefix)" \
    true/false/public/ "with force true, dry_run false and the prefix"
else
  diag "script(1) is missing: terminal tests not run"
fi

done_testing
