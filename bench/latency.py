#!/usr/bin/python3
"""Enqueue-to-result latency of job_cleanup tasks at a fixed rate.

    bench/latency.py REDIS_HOST REDIS_PORT RATE SECONDS FIRST_JOB

Pushes RATE tasks per second for SECONDS (jobs FIRST_JOB, FIRST_JOB+1,
...) to clipsweep:queue:jobs, each stamped when pushed, and listens on
clipsweep:results (through redis-cli) for their results: the latency is
the time from the push to the result's arrival, as a client sees it.
Prints one line: "sent N received N p50_ms X p99_ms Y max_ms Z".
"""
import csv
import json
import socket
import subprocess
import sys
import threading
import time


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def main():
    host, port, rate, seconds, first = sys.argv[1], int(sys.argv[2]), \
        int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    got = {}
    sub = subprocess.Popen(
        ["redis-cli", "-h", host, "-p", str(port), "--csv",
         "SUBSCRIBE", "clipsweep:results"],
        stdout=subprocess.PIPE, text=True, bufsize=1)
    ready = threading.Event()

    def listen():
        # redis-cli escapes quotes with a backslash, not by doubling them.
        for row in csv.reader(sub.stdout, escapechar="\\", doublequote=False):
            now = time.monotonic()
            if row[:1] == ["subscribe"]:
                ready.set()
            if len(row) == 3 and row[0] == "message":
                r = json.loads(row[2])
                if r.get("status") != "retrying":
                    got.setdefault(r.get("id"), now)

    threading.Thread(target=listen, daemon=True).start()
    ready.wait(5)
    s = socket.create_connection((host, port))
    drain = threading.Thread(
        target=lambda: [None for _ in iter(lambda: s.recv(65536), b"")],
        daemon=True)
    drain.start()
    sent = {}
    n = int(rate * seconds)
    start = time.monotonic()
    for i in range(n):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        tid = "lat-%d" % (first + i)
        msg = json.dumps({"type": "job_cleanup", "id": tid,
                          "job_id": str(first + i)})
        sent[tid] = time.monotonic()
        s.sendall(resp("LPUSH", "clipsweep:queue:jobs", msg))
    deadline = time.monotonic() + 10
    while len([t for t in sent if t in got]) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    lat = sorted((got[t] - sent[t]) * 1000 for t in sent if t in got)
    sub.kill()
    if not lat:
        print("sent %d received 0" % n)
        return 1
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]
    print("sent %d received %d p50_ms %.1f p99_ms %.1f max_ms %.1f" % (
        n, len(lat), pick(0.50), pick(0.99), lat[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
