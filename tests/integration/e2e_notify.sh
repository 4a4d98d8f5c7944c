#!/usr/bin/env bash
# The service manager's notification protocol, as systemd would receive it
# with Type=notify and WatchdogSec=: a datagram socket stands in for
# systemd (NOTIFY_SOCKET, WATCHDOG_USEC), and every message the worker
# sends is recorded with the time it arrived.  READY=1 only once Redis
# answers; STATUS= says what the worker does; WATCHDOG=1 at least twice
# per interval while the loop turns, and not while it is stopped;
# STOPPING=1 on SIGTERM.
# shellcheck disable=SC2317 # (helpers called through wait_for)
. "$(dirname "$0")/lib.sh"
make_schema || exit 1

# listen SOCKET OUT: records each datagram as "<ms> <text, \n as |>".
listen() {
  /usr/bin/python3 -u - "$1" "$2" <<'PY' &
import os, socket, sys, time
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
if path.startswith("@"):
    s.bind("\0" + path[1:])
else:
    s.bind(path)
with open(out, "a") as f:
    f.write("bound\n")
    f.flush()
    while True:
        m = s.recv(4096).decode("utf-8", "replace")
        f.write("%d %s\n" % (time.time() * 1000, m.replace("\n", "|")))
        f.flush()
PY
  LISTENER=$!
  T_PIDS+=("$LISTENER")
  wait_for grep -q '^bound$' "$2"
}
msgs() { grep -v '^bound$' "$1" | cut -d' ' -f2-; }
# ("bound" is the listener's own first line.)

SOCK=$T_TMP/notify.sock
OUT=$T_TMP/notify.log
listen "$SOCK" "$OUT"
ok $? "a notify socket is listening"

# Redis down first: the worker waits, says so, and is not ready.
NOTIFY_SOCKET=$SOCK CLIPSWEEP_REDIS_URL=redis://127.0.0.1:1/0 \
  "$WORKER" >"$T_TMP/worker-noredis.log" 2>&1 &
pid=$!
T_PIDS+=("$pid")
waiting() { msgs "$OUT" | grep -q 'STATUS=waiting for Redis (redis://127.0.0.1:1/0)'; }
wait_for waiting
ok $? "with Redis unreachable: STATUS=waiting for Redis (redis://127.0.0.1:1/0)"
sleep 1
! msgs "$OUT" | grep -q 'READY=1'
ok $? "and no READY=1"
kill -TERM "$pid"
wait "$pid"
: >"$OUT" # (the listener appends: truncating in place is safe)

# The real worker, with a 600 ms watchdog.
export NOTIFY_SOCKET=$SOCK WATCHDOG_USEC=600000
start_worker --concurrency 4
ok $? "the worker starts"
unset NOTIFY_SOCKET WATCHDOG_USEC
ready() { msgs "$OUT" | grep -q '^READY=1|STATUS=0 of 4 slots busy, 0 tasks done$'; }
wait_for ready
ok $? "READY=1 with STATUS=0 of 4 slots busy, 0 tasks done"

sleep 3
# Watchdog pings over the last 2.4 s (4 intervals): every 300 ms.
n=$(awk -v since="$(($(date +%s%3N) - 2400))" '$1 >= since && /WATCHDOG=1/' "$OUT" | wc -l)
[ "$n" -ge 5 ] && [ "$n" -le 12 ]
ok $? "WATCHDOG=1 about every 300 ms (half the interval): $n in 2.4 s"

sql "INSERT INTO $SCHEMA.jobs (id, status, original_key, audio_key) VALUES
  (1, 'completed', 'public/uploads/1/original.mp4', 'public/uploads/1/audio.mp3')" || exit 1
put_objects "$CUBE/public/uploads/1/original.mp4" "$CUBE/public/uploads/1/audio.mp3"
timeout 60 "$CLI" job 1 --wait=30 --json >"$T_TMP/job.out" 2>&1
is "$(json status <"$T_TMP/job.out")" ok "a job runs"
done1() { msgs "$OUT" | grep -q 'STATUS=0 of 4 slots busy, 1 task done'; }
wait_for done1
ok $? "STATUS follows the work: 0 of 4 slots busy, 1 task done"

# A stopped loop sends nothing: what makes the watchdog worth having.
kill -STOP "$WORKER_PID"
sleep 0.5
before=$(grep -c 'WATCHDOG=1' "$OUT")
sleep 1.5
after=$(grep -c 'WATCHDOG=1' "$OUT")
kill -CONT "$WORKER_PID"
is "$after" "$before" "no WATCHDOG=1 while the worker is stopped (SIGSTOP)"
resumed() { [ "$(grep -c 'WATCHDOG=1' "$OUT")" -gt "$after" ]; }
wait_for resumed
ok $? "and the pings resume with SIGCONT"

stop_worker
is "$STOP_RC" 0 "the worker stops on SIGTERM"
msgs "$OUT" | grep -q '^STOPPING=1|STATUS=stopping: 0 tasks in flight$'
ok $? "STOPPING=1 with STATUS=stopping: 0 tasks in flight"
grep -q '"msg":"cannot notify' "$T_TMP/worker.log"
ok $((!$?)) "no notification failed"

# An abstract socket name (@...), and WATCHDOG_PID naming another process.
kill "$LISTENER"
ABS="@clipsweep-test-$$"
: >"$OUT"
listen "$ABS" "$OUT"
NOTIFY_SOCKET=$ABS WATCHDOG_USEC=200000 WATCHDOG_PID=1 \
  "$WORKER" >>"$T_TMP/worker2.log" 2>&1 &
pid=$!
T_PIDS+=("$pid")
abs_ready() { msgs "$OUT" | grep -q '^READY=1|'; }
wait_for abs_ready
ok $? "READY=1 through an abstract socket ($ABS)"
sleep 1
! grep -q 'WATCHDOG=1' "$OUT"
ok $? "no WATCHDOG=1 when WATCHDOG_PID names another process"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
is "$rc" 0 "that worker stops too"

# Without NOTIFY_SOCKET nothing is sent (and nothing complains).
: >"$OUT"
echo bound >"$OUT"
"$WORKER" --drain >"$T_TMP/worker3.log" 2>&1
is "$?" 0 "without NOTIFY_SOCKET the worker runs as before (--drain)"
is "$(msgs "$OUT" | wc -l)" 0 "and sends nothing"
done_testing
