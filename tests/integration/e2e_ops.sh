#!/usr/bin/env bash
# The operator commands against real Redis, a real worker and its results:
# clipsweep stats, result, dead list/show/retry/retry --all/purge.  Effects
# are checked with redis-cli.
# shellcheck disable=SC2317 # (helpers called through wait_for)
. "$(dirname "$0")/lib.sh"
make_schema || exit 1
sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key) VALUES
  (1, 'completed', 'public/uploads/1/original.mp4', NULL)" || exit 1
put_object "$CUBE/public/uploads/1/original.mp4"

# Before any worker: queues and dead letters, the oldest task's age.
rcli LPUSH "$NS:queue:jobs" "{\"type\":\"job_cleanup\",\"id\":\"old-1\",\"job_id\":\"1\",\"dry_run\":true,\"enqueued_at\":\"$(date -u -d '-90 seconds' +%Y-%m-%dT%H:%M:%S.000Z)\"}" >/dev/null
rcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"new-1","job_id":"1","dry_run":true}' >/dev/null
"$CLI" stats --json >"$T_TMP/stats0.json" 2>"$T_TMP/stats0.err"
is "$?" 0 "clipsweep stats --json exits 0"
s0=$(cat "$T_TMP/stats0.json")
is "$(echo "$s0" | json queues.jobs)" 2 "two tasks waiting in jobs"
age=$(echo "$s0" | json oldest_task_age_seconds)
[ "$age" -ge 89 ] && [ "$age" -le 120 ]
ok $? "the oldest task is about 90 s old ($age)"
is "$(echo "$s0" | json dead_letters) $(echo "$s0" | json in_flight) $(echo "$s0" | json scheduled_retries)" \
  "0 0 0" "no dead letters, nothing in flight, no retries"
is "$(echo "$s0" | json workers | tr -d '[] \n')" "" "no workers alive"

# A worker runs them; plus three bad messages and a job that fails.
rcli LPUSH "$NS:queue:jobs" 'not json' >/dev/null
rcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"typo-1","job_id":"1","dryrun":true}' >/dev/null
rcli LPUSH "$NS:queue:jobs" '{"type":"job_cleanup","id":"retry-me","job_id":"1","dry_run":true,"attempt":5,"first_attempt_at":1,"history":[]}' >/dev/null
rcli LPUSH "$NS:dead" "{\"reason\":{\"code\":\"retries_exhausted\",\"message\":\"gave up\"},\"raw\":\"{\\\"type\\\":\\\"job_cleanup\\\",\\\"id\\\":\\\"retry-me\\\",\\\"job_id\\\":\\\"1\\\",\\\"dry_run\\\":true,\\\"attempt\\\":5,\\\"first_attempt_at\\\":1,\\\"history\\\":[]}\",\"id\":\"retry-me\",\"worker\":\"w\",\"dead_at\":\"2026-01-01T00:00:00.000Z\"}" >/dev/null
start_worker --concurrency 2
ok $? "a worker starts"
drained() { [ "$(rcli LLEN "$NS:queue:jobs")" = 0 ] && [ "$(rcli LLEN "$NS:dead")" -ge 3 ]; }
wait_for drained
ok $? "the worker took every message"

"$CLI" stats >"$T_TMP/stats1.txt" 2>&1
is "$?" 0 "clipsweep stats (text) exits 0"
like "$(cat "$T_TMP/stats1.txt")" "dead letters      3" "it counts three dead letters"
like "$(cat "$T_TMP/stats1.txt")" "workers alive     1 (w-$T_ID)" "and one worker alive, by name"
like "$(cat "$T_TMP/stats1.txt")" "last job_cleanup" "and shows the last job_cleanup result"
s1=$("$CLI" stats --json)
is "$(echo "$s1" | json workers.0)" "w-$T_ID" "--json: the worker's id"
one_of "$(echo "$s1" | json last_results.job_cleanup.status)" "ok failed" "--json: the last job_cleanup result's status"

# result
"$CLI" result old-1 >"$T_TMP/r.txt" 2>&1
is "$?" 0 "clipsweep result old-1 exits 0"
like "$(cat "$T_TMP/r.txt")" "Would delete" "and prints the summary"
is "$("$CLI" result old-1 --json | json id)" old-1 "--json prints the stored result"
"$CLI" result no-such-id >"$T_TMP/r2.txt" 2>&1
is "$?" 1 "an unknown id exits 1"
like "$(cat "$T_TMP/r2.txt")" "no result stored for 'no-such-id'" "saying so"

# dead list / show
"$CLI" dead list >"$T_TMP/list.txt" 2>&1
is "$?" 0 "clipsweep dead list exits 0"
is "$(wc -l <"$T_TMP/list.txt")" 3 "three lines"
like "$(cat "$T_TMP/list.txt")" "typo-1" "typo-1 is listed"
like "$(cat "$T_TMP/list.txt")" "(no id)" "the message without an id too"
is "$("$CLI" dead list --json | wc -l)" 3 "--json: one object per line"
like "$("$CLI" dead show '#1')" '"id":	"retry-me"' "dead show '#1' is the oldest letter (retry-me, planted first)"
"$CLI" dead show typo-1 >"$T_TMP/show.txt" 2>&1
is "$?" 0 "dead show typo-1 exits 0"
like "$(cat "$T_TMP/show.txt")" '"code":	"unknown_field"' "and shows its reason"
is "$("$CLI" dead show nope 2>&1; echo "rc=$?")" "clipsweep: no dead letter 'nope'
rc=1" "an unknown letter: exit 1"

# retry: the valid one goes back without its retry fields, runs, and
# leaves the dead letters; the invalid one stays.
stop_worker
"$CLI" dead retry retry-me >"$T_TMP/retry.txt" 2>&1
is "$?" 0 "dead retry retry-me exits 0"
msg=$(rcli LINDEX "$NS:queue:jobs" 0)
is "$(echo "$msg" | json id) $(echo "$msg" | json attempt) $(echo "$msg" | json history)" \
  "retry-me null null" "it is queued again, without attempt and history"
is "$(rcli LLEN "$NS:dead")" 2 "and gone from the dead letters"
"$CLI" dead retry typo-1 >"$T_TMP/retry2.txt" 2>&1
is "$?" 1 "dead retry of an invalid message exits 1"
like "$(cat "$T_TMP/retry2.txt")" "not a valid task (unknown_field" "saying why"
is "$(rcli LLEN "$NS:dead")" 2 "and leaves it"
"$CLI" dead retry --all >"$T_TMP/retryall.txt" 2>&1
is "$?" 1 "retry --all with letters that cannot run exits 1"
like "$(cat "$T_TMP/retryall.txt")" "retried 0, left 2" "and counts them"
start_worker --concurrency 2
ran() { [ "$(rcli GET "$NS:result:retry-me" | json status)" = ok ]; }
wait_for ran
ok $? "the retried task ran: its result is ok"

# purge
"$CLI" dead purge </dev/null >"$T_TMP/purge.txt" 2>&1
is "$?" 64 "dead purge without a terminal or --yes: usage error"
is "$(rcli LLEN "$NS:dead")" 2 "nothing deleted"
is "$("$CLI" dead purge --yes)" "deleted 2 dead letters" "dead purge --yes deletes them"
is "$(rcli EXISTS "$NS:dead")" 0 "the list is gone"
is "$("$CLI" dead list 2>&1)" "clipsweep: no dead letters in $NS:dead" "and dead list says so"

# Usage errors.
"$CLI" dead >/dev/null 2>&1
is "$?" 64 "dead without a subcommand: 64"
"$CLI" dead frob >/dev/null 2>&1
is "$?" 64 "an unknown dead subcommand: 64"
"$CLI" stats --yes >/dev/null 2>&1
is "$?" 64 "stats --yes: 64"
"$CLI" result >/dev/null 2>&1
is "$?" 64 "result without an id: 64"
CLIPSWEEP_REDIS_URL=redis://127.0.0.1:1/0 "$CLI" stats >/dev/null 2>&1
is "$?" 69 "Redis unreachable: 69"
stop_worker
is "$STOP_RC" 0 "the worker stops"
done_testing
