"""Soak: parallel query loops (the `query` file and queries/ slots), an ingest
loop (files copied into ingest/), a delete loop (rm vectors/ID) and
compactions (`control`) against one mount, until each kind of operation
has been done a fixed number of times (WORK).

Every answer is checked against a timeline of the store (when each id's
ingest started / returned, when its delete started / returned):
  * every returned id could be visible during the query (ingested before
    the query ended, not deleted before it began), with its exact distance;
  * hits are ordered by (distance, id) and there are exactly k of them
    (the store always holds more than k vectors);
  * no vector that was visible during the whole query and ranks before the
    k-th hit is missing (so answers are exact even under writes);
  * no operation fails and `errors` stays empty;
  * the daemon's memory stays flat: its heap in use (status: heap_bytes)
    and, in the plain build, RssAnon from /proc/PID/status grow by less
    than 20% after a warm-up.

CI: WORK; RVF_LONG=1: ten times as much; RVF_SOAK_SCALE=F: F times as much.
The soak is an amount of work, not a time: a loaded machine (the ASan pass
beside the other pass) does the same operations as an idle one, only
slower.  The CI amounts are at least what the 30 s soak (before) reached
in the ASan pass alone on an idle machine (3560 + 2059 queries, 133
ingests, 148 rm, 170 delete commands, 4 compactions).
"""

import math
import os
import random
import statistics
import struct
import threading
import time
from pathlib import Path

import pytest

from mountlib import wait_for
from reliability_lib import (LONG, ctl, is_asan, report, rvffs_exe,  # noqa: F401
                             write_all)

DIM = 8
K = 10
# Every loop runs until every count reached its amount (so all kinds
# overlap for the whole soak).
WORK = {"queries": 3600, "slot_queries": 2100, "ingests": 140, "rm": 150,
        "delete_commands": 170, "compactions": 4}


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def vec(i):
    """The vector of id i: small integers, so distances are exact."""
    r = random.Random(i * 7919 + 1)
    return tuple(float(r.randint(-8, 8)) for _ in range(DIM))


def sqdist(a, b):
    return sum((x - y) ** 2 for x, y in zip(a, b))


def csv_text(ids):
    return "".join(f"{i}," + ",".join(str(int(x)) for x in vec(i)) + "\n" for i in ids)


class Timeline:
    """When each id's ingest and delete started and returned.  Callers hold
    `lock` and record through ingest_started / delete_started (they keep
    the indexes below, so a check looks at the ~2000 ids in the store, not
    at every id ever ingested)."""
    INF = float("inf")

    def __init__(self):
        self.lock = threading.Lock()
        self.ing_start, self.ing_end = {}, {}
        self.del_start, self.del_end = {}, {}
        self.vectors = {}
        self.undeleted = {}  # ids whose delete has not started, in ingest order
        self.deletions = []  # (del_start, id), in time order

    def ingest_started(self, i, t):
        self.vectors[i] = vec(i)
        self.ing_start[i] = t
        self.undeleted[i] = None

    def delete_started(self, i, t):
        self.del_start[i] = t
        self.deletions.append((t, i))
        del self.undeleted[i]

    def possible(self, i, qs, qe):
        """Could id i be in the store at some time of [qs, qe]: its ingest
        started before qe, its delete (if any) returned after qs."""
        return self.ing_start.get(i, self.INF) <= qe and self.del_end.get(i, self.INF) >= qs

    def stable(self, qs, qe):
        """The ids in the store during all of [qs, qe]: ingest returned
        before qs, delete (if any) started after qe."""
        out = [i for i in self.undeleted if self.ing_end.get(i, self.INF) < qs]
        for t, i in reversed(self.deletions):
            if t <= qe:
                break
            if self.ing_end.get(i, self.INF) < qs:
                out.append(i)
        return out


def parse(text):
    out = []
    for ln in text.splitlines():
        if ln.strip():
            a, b = ln.split()
            out.append((int(a), float(b)))
    return out


class Soak:
    def __init__(self, mnt, tl, work, limit, has_control):
        self.mnt = Path(mnt)
        self.tl = tl
        self.work = work
        self.limit = limit
        self.deadline = time.monotonic() + limit
        self.done = False
        self.errors = []
        self.counts = {"queries": 0, "slot_queries": 0, "ingests": 0, "ingested_rows": 0,
                       "deletes": 0, "rm": 0, "delete_commands": 0, "compactions": 0,
                       "checked_exact": 0}
        self.clock = threading.Lock()
        self.has_control = has_control
        self.next_id = 0

    def count(self, k, n=1):
        with self.clock:
            self.counts[k] += n
            if not self.done:
                self.done = all(self.counts[w] >= m for w, m in self.work.items())

    def running(self):
        if not self.done and not self.errors and time.monotonic() > self.deadline:
            self.fail(f"the work was not done in {self.limit} s: {self.counts}")
        return not self.done and not self.errors

    def fail(self, what):
        self.errors.append(what)

    def check(self, q, res, qs, qe, where):
        if len(res) != K:
            return self.fail(f"{where}: {len(res)} hits, want {K}: {res}")
        keys = [(d, i) for i, d in res]
        if keys != sorted(keys):
            return self.fail(f"{where}: not ordered by (distance, id): {res}")
        tl = self.tl
        with tl.lock:
            for i, d in res:
                if not tl.possible(i, qs, qe):
                    return self.fail(f"{where}: id {i} was not in the store during the query")
                want = f32(sqdist(tl.vectors[i], q))
                if d != want:
                    return self.fail(f"{where}: id {i} at distance {d}, want {want}")
            kth = keys[-1]
            got = {i for i, _ in res}
            # math.dist (C) picks the few ids near enough (its rounding is
            # far below the margin); the exact integer distance decides.
            near = math.sqrt(kth[0]) + 1e-6
            vectors = tl.vectors
            for i in [i for i in tl.stable(qs, qe) if math.dist(vectors[i], q) <= near]:
                key = (f32(sqdist(vectors[i], q)), i)
                if key < kth and i not in got:
                    return self.fail(f"{where}: id {i} {key} is missing before the k-th hit {kth}")
        self.count("checked_exact")

    def query_loop(self, seed):
        rng = random.Random(seed)
        path = self.mnt / "query"
        while self.running():
            q = [float(rng.randint(-8, 8)) for _ in range(DIM)]
            req = f"k={K} " + " ".join(str(int(x)) for x in q) + "\n"
            qs = time.monotonic()
            try:
                fd = os.open(path, os.O_RDWR)
                try:
                    os.write(fd, req.encode())
                    out = b""
                    while True:
                        b = os.read(fd, 65536)
                        if not b:
                            break
                        out += b
                finally:
                    os.close(fd)
            except OSError as e:
                return self.fail(f"query: {e}")
            qe = time.monotonic()
            self.count("queries")
            self.check(q, parse(out.decode()), qs, qe, "query")

    def slot_loop(self, seed, name):
        rng = random.Random(seed)
        slot = self.mnt / "queries" / name
        try:
            os.mkdir(slot)
        except OSError as e:
            return self.fail(f"mkdir queries/{name}: {e}")
        while self.running():
            q = [float(rng.randint(-8, 8)) for _ in range(DIM)]
            req = f"k={K} " + " ".join(str(int(x)) for x in q) + "\n"
            qs = time.monotonic()
            try:
                write_all(slot / "request", req.encode(), os.O_WRONLY | os.O_TRUNC)
                out = (slot / "result").read_bytes()
            except OSError as e:
                return self.fail(f"slot {name}: {e}")
            qe = time.monotonic()
            self.count("slot_queries")
            self.check(q, parse(out.decode()), qs, qe, f"queries/{name}")
        try:
            os.rmdir(slot)
        except OSError as e:
            self.fail(f"rmdir queries/{name}: {e}")

    def ingest_loop(self, seed):
        rng = random.Random(seed)
        n = 0
        while self.running():
            rows = rng.randint(20, 120)
            with self.tl.lock:
                ids = list(range(self.next_id, self.next_id + rows))
                self.next_id += rows
                t = time.monotonic()
                for i in ids:
                    self.tl.ingest_started(i, t)
            text = csv_text(ids).encode()
            n += 1
            try:
                write_all(self.mnt / "ingest" / f"soak{n}.csv", text)
            except OSError as e:
                return self.fail(f"ingest soak{n}.csv: {e}")
            t = time.monotonic()
            with self.tl.lock:
                for i in ids:
                    self.tl.ing_end[i] = t
            self.count("ingested_rows", rows)
            self.count("ingests")
            time.sleep(rng.uniform(0.01, 0.05))  # the other loops' turn between commits

    def delete_loop(self, seed, low=1500):
        rng = random.Random(seed)
        while self.running():
            with self.tl.lock:
                live = [i for i in self.tl.undeleted if i in self.tl.ing_end]
            if len(live) <= low:
                time.sleep(0.02)
                continue
            time.sleep(rng.uniform(0.005, 0.02))
            excess = len(live) - low
            if self.has_control and excess > 40 and rng.random() < 0.6:
                # Many at once, as one commit through `control`.
                ids = rng.sample(live[:len(live) // 2 + 1], min(60, excess))
                with self.tl.lock:
                    t = time.monotonic()
                    for i in ids:
                        self.tl.delete_started(i, t)
                try:
                    write_all(self.mnt / "control",
                              ("delete " + " ".join(map(str, ids)) + "\n").encode(), os.O_WRONLY)
                except OSError as e:
                    return self.fail(f"control delete: {e}")
                with self.tl.lock:
                    t = time.monotonic()
                    for i in ids:
                        self.tl.del_end[i] = t
                self.count("deletes", len(ids))
                self.count("delete_commands")
                continue
            i = rng.choice(live[:len(live) // 2 + 1])
            with self.tl.lock:
                self.tl.delete_started(i, time.monotonic())
            try:
                os.unlink(self.mnt / "vectors" / str(i))
            except OSError as e:
                return self.fail(f"rm vectors/{i}: {e}")
            with self.tl.lock:
                self.tl.del_end[i] = time.monotonic()
            self.count("deletes")
            self.count("rm")

    def compact_loop(self):
        """One compaction per fifth of the ingests (the timed soak: one
        every 6 s, 4 in 30 s)."""
        every = max(1, self.work["ingests"] // (self.work["compactions"] + 1))
        next_at = every
        while self.running():
            time.sleep(0.05)
            if self.counts["ingests"] < next_at or not self.has_control:
                continue
            next_at += every
            try:
                write_all(self.mnt / "control", b"compact\n", os.O_WRONLY)
            except OSError as e:
                return self.fail(f"compact: {e}")
            self.count("compactions")


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith(("VmRSS:", "RssAnon:", "RssFile:")):
                k, v = ln.split(":")
                out[k] = int(v.split()[0])
    return out


def status_numbers(mnt):
    """The directory's length and the daemon's heap in use (KiB), from
    the status file."""
    kv = dict(ln.split(": ", 1) for ln in (Path(mnt) / "status").read_text().splitlines()
              if ": " in ln)
    return int(kv["segments"]), int(kv["heap_bytes"]) // 1024


@pytest.mark.sanitizer_pass  # one soak per run: where ASan sees most
def test_soak(tmp_path, mount):
    scale = float(os.environ.get("RVF_SOAK_SCALE", "10" if LONG else "1"))
    work = {k: max(1, round(n * scale)) for k, n in WORK.items()}
    limit = 600 * scale  # a hang, not slowness (the CI soak takes ~15 s)
    store = tmp_path / "soak.rvf"
    ctl("create", store, "--dim", DIM)
    tl = Timeline()
    # 2000 vectors to start with.
    first = list(range(2000))
    (tmp_path / "first.csv").write_text(csv_text(first))
    ctl("ingest", store, tmp_path / "first.csv")
    t = time.monotonic() - 1
    for i in first:
        tl.ingest_started(i, t)
        tl.ing_end[i] = t
    # glibc keeps freed memory in per-thread arenas and, after the first
    # large free, serves large blocks (the 4 MiB ingest buffer) from them:
    # RSS then drifts up although the live heap is flat (heaptrack shows
    # it).  Fixed thresholds make RSS follow the live heap.
    env = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "262144",
           "MALLOC_TRIM_THRESHOLD_": "1048576"}
    if is_asan(rvffs_exe()):
        # ASan's quarantine would look like growth: keep it small.
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                               ":quarantine_size_mb=4:detect_leaks=1:log_path=" +
                               str(mount.logdir / "sanitizer"))
    d = mount.daemon(store, tmp_path / "mnt", env_extra=env)
    d.start()
    has_control = (d.mnt / "control").exists()
    if not has_control:
        work.pop("delete_commands")
        work.pop("compactions")
    soak = Soak(d.mnt, tl, work, limit, has_control)
    soak.next_id = 10_000
    threads = [threading.Thread(target=soak.query_loop, args=(1,)),
               threading.Thread(target=soak.query_loop, args=(2,)),
               threading.Thread(target=soak.slot_loop, args=(3, "s1")),
               threading.Thread(target=soak.slot_loop, args=(4, "s2")),
               threading.Thread(target=soak.ingest_loop, args=(5,)),
               threading.Thread(target=soak.delete_loop, args=(6,)),
               threading.Thread(target=soak.compact_loop)]
    samples = []
    t0 = time.monotonic()
    for th in threads:
        th.daemon = True
        th.start()
    while any(th.is_alive() for th in threads):
        m = mem(d.pid)
        m["segments"], m["heap"] = status_numbers(d.mnt)
        m["file_kib"] = store.stat().st_size // 1024
        samples.append((time.monotonic() - t0, m))
        time.sleep(0.25)
        if time.monotonic() - t0 > limit + 120:
            break
    seconds = time.monotonic() - t0
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads), "a soak loop hangs"
    assert not soak.errors, soak.errors[:5]
    errs = d.errors()
    assert errs == "", f"the errors file is not empty:\n{errs[-2000:]}"
    # The final state is what the timeline says.
    with tl.lock:
        live = {i for i in tl.ing_end if i not in tl.del_start}
    assert set(d.vector_ids()) == live
    counts = dict(soak.counts, final_vectors=len(live))
    # Memory.  Every commit adds to the store's history (a witness and
    # often a journal the directory lists: the format is append-only and
    # compaction keeps witnesses), and each snapshot indexes its directory,
    # so the heap may grow with the directory - by at most 2 KiB an entry -
    # and by less than 20% besides, after a warm-up (the first quarter).
    # The heap is the daemon's own count of bytes allocated and not freed
    # (status: heap_bytes; under ASan the sanitizer allocator's count).
    # In the plain build RssAnon must follow it too (anonymous memory
    # outside malloc); under ASan RssAnon also holds the quarantine, the
    # allocator's per-thread caches and the shadow, which fill for a minute
    # or more without any leak, so there the heap count alone is judged.
    # The mapped store is file memory: at most the file's size on top of
    # the libraries mapped at the start (a mapping kept after compaction
    # or a view never released would show here).
    warm = [s for t, s in samples if seconds * 0.25 <= t <= seconds * 0.4]
    tail = [s for t, s in samples if t >= seconds * 0.8]
    assert warm and tail, samples
    med = statistics.median
    seg0, seg1 = med(s["segments"] for s in warm), med(s["segments"] for s in tail)
    allowance = 2 * max(0, seg1 - seg0)
    trace = [(round(t), s["heap"], s["RssAnon"], s["RssFile"], s["segments"], s["file_kib"])
             for t, s in samples]
    kinds = ["heap"] if is_asan(rvffs_exe()) else ["heap", "RssAnon"]
    for kind in kinds:
        a0, a1 = med(s[kind] for s in warm), med(s[kind] for s in tail)
        assert a1 <= a0 * 1.2 + allowance + 512, \
            (f"{kind} grew from {a0} to {a1} KiB while the directory grew from {seg0} to {seg1} "
             f"entries (t, heap, anon, file, entries, file KiB: {trace}; operations {counts})")
    heap0, heap1 = med(s["heap"] for s in warm), med(s["heap"] for s in tail)
    anon0, anon1 = med(s["RssAnon"] for s in warm), med(s["RssAnon"] for s in tail)
    file0 = samples[0][1]["RssFile"]
    for k, (t, s) in enumerate(samples):
        # A compaction replaces the file; the old mapping goes with the
        # last request that uses it: compare with the last 3 s of sizes.
        recent = max(x["file_kib"] for u, x in samples[:k + 1] if u >= t - 3)
        assert s["RssFile"] <= file0 + recent + 2048, \
            f"file memory {s['RssFile']} KiB at {t:.0f} s exceeds the store's size: {trace}"
    vm0, vm1 = med(s["VmRSS"] for s in warm), med(s["VmRSS"] for s in tail)
    assert d.unmount() == 0
    c = soak.counts
    report("soak", seconds=round(time.monotonic() - t0, 1), **c,
           vmrss_kib=f"{vm0}->{vm1}", heap_kib=f"{heap0}->{heap1}", anon_kib=f"{anon0}->{anon1}",
           directory=f"{seg0}->{seg1}", final_vectors=len(live))
    assert all(c[k] >= n for k, n in work.items()), (c, work)
    assert c["deletes"] > 10


def test_views_survive_a_remap(tmp_path, mount):
    """Regression (found by the soak's delete storm): when a commit makes
    the file outgrow the daemon's mapping, the new snapshot used to keep
    pointers to the rows of the old mapping, unmapped once the old snapshot
    was released: reading a vector then crashed the daemon (SEGV). Same for
    a read-only mount following another writer (refresh)."""
    from reliability_lib import fvecs_rows
    dim = 128
    store = tmp_path / "r.rvf"
    ctl("create", store, "--dim", dim)
    (tmp_path / "a.fvecs").write_bytes(fvecs_rows(1, 0, 1000, dim))
    ctl("ingest", store, tmp_path / "a.fvecs")
    big = fvecs_rows(2, 0, 140000, dim)  # 72 MB: more than the mapping's room
    # Read-write mount: the commit itself remaps.
    d = mount.daemon(store, tmp_path / "m1")
    d.start()
    assert d.read("vectors/5").split()[:2] == [b"1", b"5"]
    write_all(d.mnt / "ingest" / "big.fvecs", big)
    for i in (0, 5, 999):
        assert d.read(f"vectors/{i}").split()[:2] == [b"1", str(i).encode()]
    fd = os.open(d.mnt / "query", os.O_RDWR)
    os.write(fd, ("k=3 1 7 " + " ".join(["0"] * (dim - 2)) + "\n").encode())
    out = os.read(fd, 65536).decode()
    os.close(fd)
    assert out.split()[0] == "7", out
    assert d.alive()
    assert d.unmount() == 0
    # Read-only mount following rvfctl's commit (refresh remaps).
    d = mount.daemon(store, tmp_path / "m2", opts=["ro"])
    d.start()
    n0 = int(d.status()["vectors"])
    (tmp_path / "b.fvecs").write_bytes(big)
    ctl("ingest", store, tmp_path / "b.fvecs")
    # the read-only mount looks again after 1 s
    assert wait_for(lambda: int(d.status()["vectors"]) == n0 + 140000, 30), d.status()
    for i in (0, 5, 999):
        assert d.read(f"vectors/{i}").split()[:2] == [b"1", str(i).encode()]
    assert d.alive()
    assert d.unmount() == 0
