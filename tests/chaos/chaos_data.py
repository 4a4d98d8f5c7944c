#!/usr/bin/python3
"""Data and bookkeeping for tests/chaos/chaos.sh (Debian's python3, stdlib only).

  chaos_data.py gen DIR JOBS CUBE SEED NOW
      writes DIR/jobs.tsv and DIR/clips.tsv (COPY text format), DIR/seed.tsv
      (s3mem's bulk seed: KEY TAB SIZE TAB MTIME), DIR/tasks.txt and
      DIR/sweeps.txt (one message a line, enqueue order), DIR/task_ids.txt,
      DIR/expect.tsv (task id TAB what it must end as), DIR/extra_keep.txt
      (must-keep keys the database does not protect: fresh uploads and
      objects outside the cube) and DIR/seed_late_K.tsv (old orphans to
      seed just before sweep K).

  chaos_data.py analyze DIR
      reads what chaos.sh collected in DIR (see analyze() for the files) and
      prints "KEY VALUE" facts, "DIAG text" lines and one "JSON {...}" line of
      figures.  It decides nothing: chaos.sh turns the facts into checks.

The data follow docs/PROTOCOL.md's contract.  Per unit i = 1..JOBS:
  job i: completed, 4 completed clips from yesterday (kept: retained, and
    referenced); its original and audio are what job_cleanup deletes (an
    hour old, so sweeps leave them, but for i % 10 == 5: old).
    i % 50 == 0: the original is shared with an active job (kept).
    i % 100 == 25: the audio key is one of its clips (kept).
    i % 200 == 7: no audio.  i % 25 == 3: clip 4 failed (a sweep may delete).
  i % 10 == 3: an active job (and its rendering clip): kept.
  i % 20 == 0: a job and clips from 30 days ago: a sweep may delete them.
  i % 4 == 0: an old orphan (may go); i % 20 == 1: a fresh upload no row
    knows yet (kept: younger than min_age_hours).
  i % 100 == 0: two objects outside the cube prefix (kept: never listed).
Tasks: one job_cleanup per job i, a second one for i % 50 == 1 (a
duplicate enqueue), and one for the active job of i % 100 == 3 (must end
failed with clips_not_finished and delete nothing).
"""
import collections
import datetime
import json
import os
import random
import sys

DAY = 86400


def iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S+00")


def gen(d, n, cube, seed, now):
    n, seed, now = int(n), int(seed), int(now)
    rng = random.Random(seed)
    jobs, clips, objs = [], [], {}
    old = now - 30 * DAY

    def obj(rel, mtime=old, outside=False):
        key = rel if outside else cube + "/" + rel
        objs[key] = (1000 + rng.randrange(5_000_000), mtime)

    def job(jid, status, orig, audio, created, mtime=old):
        jobs.append((jid, status, orig, audio, iso(created)))
        for k in (orig, audio):
            if k is not None:
                obj(k, mtime)

    def clip(cid, jid, status, key, created):
        clips.append((cid, jid, status, key, iso(created)))
        obj(key)

    tasks, expect, extra = [], [], []
    for i in range(1, n + 1):
        orig = f"public/shared/{i}.mp4" if i % 50 == 0 else f"public/uploads/{i}/original.mp4"
        audio = f"public/uploads/{i}/audio.mp3"
        if i % 100 == 25:
            audio = f"clips/{i}/clip_1.mp4"
        elif i % 200 == 7:
            audio = None
        # Uploaded an hour ago: a sweep keeps them (younger than
        # min_age_hours), so job_cleanup is what deletes them; one in ten
        # is old, and then sweeps and job_cleanup race for it.
        job(i, "completed", orig, audio, now - 2 * DAY,
            old if i % 10 == 5 else now - 3600)
        for k in range(1, 5):
            st = "failed" if (k == 4 and i % 25 == 3) else "completed"
            clip(i * 10 + k, i, st, f"clips/{i}/clip_{k}.mp4", now - DAY)
        if i % 50 == 0:
            job(4_000_000 + i, "uploading", orig, None, now - DAY)
        if i % 10 == 3:
            a = 2_000_000 + i
            job(a, "rendering", f"public/uploads/a{a}/original.mp4",
                f"public/uploads/a{a}/audio.mp3", now - 10 * DAY)
            clip(50_000_000 + i, a, "rendering", f"clips/a{a}/clip_1.mp4", now - 10 * DAY)
        if i % 20 == 0:
            e = 3_000_000 + i
            job(e, "completed", f"public/uploads/e{e}/original.mp4",
                f"public/uploads/e{e}/audio.mp3", now - 30 * DAY)
            for k in (1, 2):
                clip(60_000_000 + i * 10 + k, e, "completed",
                     f"clips/e{e}/clip_{k}.mp4", now - 30 * DAY)
        if i % 4 == 0:
            obj(f"tmp/orphan-{i}.bin")
        if i % 20 == 1:
            obj(f"public/uploads/new-{i}/original.mp4", mtime=now - 60)
            extra.append(f"{cube}/public/uploads/new-{i}/original.mp4")
        if i % 100 == 0:
            for k in (f"{cube}-old/public/uploads/{i}/original.mp4", f"root-{i}.txt"):
                obj(k, outside=True)
                extra.append(k)

        def task(tid, jid, what):
            m = {"type": "job_cleanup", "id": tid,
                 # The protocol takes a string or an integer.
                 "job_id": jid if i % 7 == 0 else str(jid)}
            tasks.append(json.dumps(m, separators=(",", ":")))
            expect.append((tid, what))

        task(f"c{seed}-j{i}", i, "clean")
        if i % 50 == 1:
            task(f"c{seed}-j{i}-dup", i, "clean")
        if i % 100 == 3:
            task(f"c{seed}-a{i}", 2_000_000 + i, "not_finished")

    nsweeps = max(3, 4 * (n // 1000))
    sweeps = []
    for s in range(1, nsweeps + 1):
        # Old orphans that turn up just before each sweep (seeded then),
        # so that every sweep has something to delete.
        with open(os.path.join(d, f"seed_late_{s}.tsv"), "w") as f:
            for i in range(max(1, n // 4)):
                f.write(f"{cube}/tmp/late-{s}/orphan-{i:05d}.bin\t{1000 + i}\t{old}\n")
        tid = f"c{seed}-s{s}"
        sweep = {"type": "retention_sweep", "id": tid,
                 "retention_days": 5, "min_age_hours": 24}
        if s % 2 == 0:
            sweep["shards"] = 3  # every other sweep in key ranges
        sweeps.append(json.dumps(sweep, separators=(",", ":")))
        expect.append((tid, "sweep"))

    def tsv(v):
        return "\\N" if v is None else str(v)

    with open(os.path.join(d, "jobs.tsv"), "w") as f:
        for r in jobs:
            f.write("\t".join(tsv(v) for v in r) + "\n")
    with open(os.path.join(d, "clips.tsv"), "w") as f:
        for r in clips:
            f.write("\t".join(tsv(v) for v in r) + "\n")
    with open(os.path.join(d, "seed.tsv"), "w") as f:
        # Keys in byte order take s3mem's fast path.
        for k in sorted(objs, key=lambda s: s.encode()):
            f.write(f"{k}\t{objs[k][0]}\t{objs[k][1]}\n")
    with open(os.path.join(d, "tasks.txt"), "w") as f:
        f.write("\n".join(tasks) + "\n")
    with open(os.path.join(d, "sweeps.txt"), "w") as f:
        f.write("\n".join(sweeps) + "\n")
    with open(os.path.join(d, "task_ids.txt"), "w") as f:
        f.write("\n".join(t for t, _ in expect) + "\n")
    with open(os.path.join(d, "expect.tsv"), "w") as f:
        f.write("".join(f"{t}\t{w}\n" for t, w in expect))
    with open(os.path.join(d, "extra_keep.txt"), "w") as f:
        f.write("".join(k + "\n" for k in extra))


def lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [l.rstrip("\n") for l in f if l.strip()]
    except FileNotFoundError:
        return []


def listing(path):
    """aws s3api list-objects-v2 --output json: {key: LastModified (s)}."""
    keys = {}
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (FileNotFoundError, ValueError):
        return keys
    for c in doc.get("Contents") or []:
        t = datetime.datetime.fromisoformat(
            c["LastModified"].replace("Z", "+00:00"))
        keys[c["Key"]] = t.timestamp()
    return keys


def analyze(d):
    cube = lines(os.path.join(d, "cube.txt"))[0]
    expect = dict(l.split("\t") for l in lines(os.path.join(d, "expect.tsv")))
    must_keep = set(lines(os.path.join(d, "must_keep.txt")))
    before_t = listing(os.path.join(d, "list_before.json"))
    # The orphans seeded during the run, before each sweep, count as there
    # from the start.
    for name in sorted(os.listdir(d)):
        if name.startswith("seed_late_") and os.path.exists(
                os.path.join(d, name + ".done")):
            for l in lines(os.path.join(d, name)):
                k, _size, mtime = l.split("\t")
                before_t[k] = float(mtime)
    before = set(before_t)
    after = set(listing(os.path.join(d, "list_after.json")))
    # jobs.db.tsv / clips.db.tsv: what psql reads back, not what gen wrote.
    jobs = {}
    for l in lines(os.path.join(d, "jobs.db.tsv")):
        jid, status, orig, audio = (l.split("\t") + [""] * 4)[:4]
        jobs[jid] = (status, orig or None, audio or None)
    clips = [l.split("\t") for l in lines(os.path.join(d, "clips.db.tsv"))]

    # What a run may delete, from the data contract, derived apart from
    # the must-keep list: a key some row names, when no row protects it
    # (an active job or clip, a completed clip in the window), and an old
    # object under the cube no row names.
    referenced, protected = set(), set()
    for status, orig, audio in jobs.values():
        for k in (orig, audio):
            if k:
                referenced.add(f"{cube}/{k}")
                if status not in ("completed", "failed", "cancelled"):
                    protected.add(f"{cube}/{k}")
    for _cid, _jid, status, key, recent in clips:
        referenced.add(f"{cube}/{key}")
        if status not in ("completed", "failed") or (
                status == "completed" and recent == "t"):
            protected.add(f"{cube}/{key}")
    may = referenced - protected
    day_ago = datetime.datetime.now().timestamp() - DAY
    for k, t in before_t.items():
        if k.startswith(cube + "/") and k not in referenced and t < day_ago:
            may.add(k)
    conflict = may & must_keep
    may -= must_keep

    facts = collections.OrderedDict()
    diags = []

    def sample(what, items, n=5):
        items = sorted(items)
        for x in items[:n]:
            diags.append(f"{what}: {x}")
        if len(items) > n:
            diags.append(f"{what}: ... and {len(items) - n} more")

    facts["must_keep_total"] = len(must_keep)
    # Two derivations (the must-keep list from SQL, the deletable set from
    # the rows and the listing) must not overlap, or the test is wrong.
    facts["keep_and_deletable"] = len(conflict)
    sample("both must-keep and deletable", conflict)
    facts["must_keep_seeded"] = len(must_keep & before)
    missing = must_keep - after
    facts["must_keep_missing"] = len(missing)
    sample("LOST must-keep object", missing)
    deleted = before - after
    facts["deleted"] = len(deleted)
    wrong = deleted - may
    facts["deleted_not_allowed"] = len(wrong)
    sample("deleted but not deletable", wrong)
    appeared = after - before
    facts["objects_appeared"] = len(appeared)
    sample("object that appeared", appeared)
    facts["may_delete_total"] = len(may)

    # Final results (GET <ns>:result:<id>), one JSON value a line per id,
    # in task_ids.txt order.
    ids = lines(os.path.join(d, "task_ids.txt"))
    finals = {}
    for tid, l in zip(ids, lines(os.path.join(d, "finals.json"))):
        v = json.loads(l)
        finals[tid] = json.loads(v) if isinstance(v, str) else None
    dead = {}
    dead_reasons = collections.Counter()
    dead_noreason = 0
    dead_unknown = 0
    dl = lines(os.path.join(d, "dead.json"))
    for entry in (json.loads(dl[0]) if dl else []):
        dd = json.loads(entry)
        code = (dd.get("reason") or {}).get("code")
        if not code:
            dead_noreason += 1
        dead_reasons[code or "(none)"] += 1
        if dd.get("id") in expect:
            dead.setdefault(dd["id"], []).append(code)
        else:
            dead_unknown += 1
    facts["dead_letters"] = sum(dead_reasons.values())
    facts["dead_without_reason"] = dead_noreason
    facts["dead_unknown_id"] = dead_unknown

    lost, nonfinal, unexpected, noreason = [], [], [], []
    hist = collections.Counter()
    for tid, what in expect.items():
        r = finals.get(tid)
        if r is None:
            if tid in dead:
                hist["dead-only"] += 1
            else:
                lost.append(tid)
            continue
        st = r.get("status")
        if st == "retrying":
            nonfinal.append(tid)
            continue
        hist[st] += 1
        codes = [e.get("code") for e in r.get("errors") or []]
        if st in ("failed", "partial") and not (codes and all(codes)):
            noreason.append(tid)
        ok = False
        if what == "not_finished":
            ok = st == "failed" and codes[:1] == ["clips_not_finished"] \
                and not r.get("deleted_keys")
        elif st == "ok" or (what == "sweep" and st == "refused"):
            ok = True
        elif st in ("failed", "partial") and tid in dead:
            ok = True  # given up, with its reason in the dead letter
        if not ok:
            unexpected.append(f"{tid} ({what}): {json.dumps(r)[:400]}")
    facts["tasks"] = len(expect)
    facts["lost"] = len(lost)
    sample("LOST task", lost)
    facts["not_final"] = len(nonfinal)
    sample("not final", nonfinal)
    facts["failed_without_code"] = len(noreason)
    sample("failed without a code", noreason)
    facts["unexpected_outcome"] = len(unexpected)
    sample("unexpected outcome", unexpected, 10)

    # Every result ever published (the stream, collected as it grew).
    log = []
    for l in lines(os.path.join(d, "results_log.raw")):
        log.append(json.loads(l))
    per_id = collections.Counter()
    retrying = 0
    bad_job_deletes, bad_sweep_deletes, foreign = [], [], 0
    active_deleted = []
    for r in log:
        tid = r.get("id")
        if tid not in expect:
            foreign += 1
            continue
        if r.get("status") == "retrying":
            retrying += 1
        else:
            per_id[tid] += 1
        if r.get("type") == "job_cleanup":
            j = jobs.get(str(r.get("job_id")))
            allowed = set()
            if j and j[0] == "completed":
                allowed = {f"{cube}/{k}" for k in j[1:] if k} - must_keep
            for k in r.get("deleted_keys") or []:
                if k not in allowed:
                    bad_job_deletes.append(f"{tid}: {k}")
            if expect[tid] == "not_finished" and (r.get("deleted_keys") or []):
                active_deleted.append(tid)
        elif r.get("type") == "retention_sweep":
            for k in r.get("deleted_files_sample") or []:
                if k not in may:
                    bad_sweep_deletes.append(f"{tid}: {k}")
    facts["results_logged"] = len(log)
    facts["results_foreign"] = foreign
    facts["results_retrying"] = retrying
    facts["final_results"] = sum(per_id.values())
    facts["tasks_with_several_finals"] = sum(1 for c in per_id.values() if c > 1)
    facts["tasks_without_logged_final"] = sum(
        1 for t in expect if per_id[t] == 0 and t not in dead)
    facts["job_deletes_outside_job"] = len(bad_job_deletes)
    sample("job_cleanup deleted a key not its own", bad_job_deletes)
    facts["sweep_deletes_not_allowed"] = len(bad_sweep_deletes)
    sample("sweep deleted a protected key", bad_sweep_deletes)
    facts["active_job_deletes"] = len(active_deleted)

    # Effect: a job whose cleanup ended ok has no unprotected upload left.
    left = []
    for tid, what in expect.items():
        r = finals.get(tid)
        if what != "clean" or not r or r.get("status") != "ok":
            continue
        j = jobs.get(str(r.get("job_id")))
        for k in (j[1:] if j else ()):
            if k and f"{cube}/{k}" in after and f"{cube}/{k}" not in must_keep:
                left.append(f"{tid}: {cube}/{k}")
    facts["ok_jobs_with_uploads_left"] = len(left)
    sample("upload left after ok", left)

    # Runs that got to the end, from the workers' own logs: a task that
    # ran twice (a lease lapsed, a result lost with Redis) shows twice.
    runs = collections.Counter()
    for name in sorted(os.listdir(d)):
        if not (name.startswith("worker-") and name.endswith(".log")):
            continue
        with open(os.path.join(d, name), encoding="utf-8", errors="replace") as f:
            for l in f:
                if '"task finished"' not in l:
                    continue
                try:
                    o = json.loads(l)
                except ValueError:
                    continue
                if o.get("status") != "retrying":
                    runs[o.get("task_id")] += 1

    sweep_status = collections.Counter(
        (finals.get(t) or {}).get("status", "none")
        for t, w in expect.items() if w == "sweep")
    figures = {
        "statuses": dict(sorted(hist.items())),
        "sweep_statuses": dict(sorted(sweep_status.items())),
        "dead_letters_by_reason": dict(sorted(dead_reasons.items())),
        "retries": retrying,
        "results_logged": len(log),
        "final_results_logged": sum(per_id.values()),
        "duplicate_final_results": sum(per_id.values()) - len(per_id),
        "objects_before": len(before),
        "objects_after": len(after),
        "objects_deleted": len(deleted),
        "must_keep": len(must_keep),
        "must_keep_kept": len(must_keep & after),
        "sweep_deleted": sum((finals.get(t) or {}).get("deleted_count") or 0
                             for t, w in expect.items() if w == "sweep"),
        "runs": sum(runs.values()),
        "tasks_run_twice": sum(1 for c in runs.values() if c > 1),
    }
    for k, v in facts.items():
        print(f"{k} {v}")
    for l in diags:
        print(f"DIAG {l}")
    print("JSON " + json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "gen" and len(sys.argv) == 7:
        gen(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "analyze":
        analyze(sys.argv[2])
    else:
        sys.exit(__doc__)
