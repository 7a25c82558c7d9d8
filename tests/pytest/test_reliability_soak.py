"""Soak: parallel query loops (the `query` file and queries/ slots), an ingest
loop (files copied into ingest/), a delete loop (rm vectors/ID) and
compactions (`control`) against one mount for a bounded time.

Every answer is checked against a timeline of the store (when each id's
ingest started / returned, when its delete started / returned):
  * every returned id could be visible during the query (ingested before
    the query ended, not deleted before it began), with its exact distance;
  * hits are ordered by (distance, id) and there are exactly k of them
    (the store always holds more than k vectors);
  * no vector that was visible during the whole query and ranks before the
    k-th hit is missing (so answers are exact even under writes);
  * no operation fails and `errors` stays empty;
  * the daemon's memory stays flat: VmRSS and RssAnon sampled from
    /proc/PID/status after a warm-up grow by less than 20%.

CI: 30 s (RVF_SOAK_SECONDS to change it); RVF_LONG=1: 300 s.
"""

import os
import random
import statistics
import struct
import threading
import time
from pathlib import Path

from reliability_lib import LONG, ctl, daemons, is_asan, report, write_all  # noqa: F401

DIM = 8
K = 10


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def vec(i):
    """The vector of id i: small integers, so distances are exact."""
    r = random.Random(i * 7919 + 1)
    return [float(r.randint(-8, 8)) for _ in range(DIM)]


def sqdist(a, b):
    return sum((x - y) ** 2 for x, y in zip(a, b))


def csv_text(ids):
    return "".join(f"{i}," + ",".join(str(int(x)) for x in vec(i)) + "\n" for i in ids)


class Timeline:
    INF = float("inf")

    def __init__(self):
        self.lock = threading.Lock()
        self.ing_start, self.ing_end = {}, {}
        self.del_start, self.del_end = {}, {}
        self.vectors = {}

    def stable_and_possible(self, qs, qe):
        with self.lock:
            stable, possible = [], set()
            for i, s in self.ing_start.items():
                if s > qe:
                    continue
                ds = self.del_start.get(i, self.INF)
                de = self.del_end.get(i, self.INF)
                if de < qs:
                    continue
                possible.add(i)
                if self.ing_end.get(i, self.INF) < qs and ds > qe:
                    stable.append(i)
            return stable, possible


def parse(text):
    out = []
    for ln in text.splitlines():
        if ln.strip():
            a, b = ln.split()
            out.append((int(a), float(b)))
    return out


class Soak:
    def __init__(self, mnt, tl, seconds, has_control):
        self.mnt = Path(mnt)
        self.tl = tl
        self.end = time.monotonic() + seconds
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

    def running(self):
        return time.monotonic() < self.end and not self.errors

    def fail(self, what):
        self.errors.append(what)

    def check(self, q, res, qs, qe, where):
        if len(res) != K:
            return self.fail(f"{where}: {len(res)} hits, want {K}: {res}")
        keys = [(d, i) for i, d in res]
        if keys != sorted(keys):
            return self.fail(f"{where}: not ordered by (distance, id): {res}")
        stable, possible = self.tl.stable_and_possible(qs, qe)
        for i, d in res:
            if i not in possible:
                return self.fail(f"{where}: id {i} was not in the store during the query")
            want = f32(sqdist(self.tl.vectors[i], q))
            if d != want:
                return self.fail(f"{where}: id {i} at distance {d}, want {want}")
        kth = keys[-1]
        got = {i for i, _ in res}
        for i in stable:
            key = (f32(sqdist(self.tl.vectors[i], q)), i)
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
            rows = rng.randint(10, 80)
            with self.tl.lock:
                ids = list(range(self.next_id, self.next_id + rows))
                self.next_id += rows
                t = time.monotonic()
                for i in ids:
                    self.tl.vectors[i] = vec(i)
                    self.tl.ing_start[i] = t
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
            self.count("ingests")
            self.count("ingested_rows", rows)
            time.sleep(rng.uniform(0.02, 0.15))

    def delete_loop(self, seed, low=1500):
        rng = random.Random(seed)
        while self.running():
            with self.tl.lock:
                live = [i for i in self.tl.ing_end if i not in self.tl.del_start]
            if len(live) <= low:
                time.sleep(0.02)
                continue
            excess = len(live) - low
            if self.has_control and excess > 150 and rng.random() < 0.5:
                # Many at once, as one commit through `control`.
                ids = rng.sample(live[:len(live) // 2 + 1], min(60, excess))
                with self.tl.lock:
                    t = time.monotonic()
                    for i in ids:
                        self.tl.del_start[i] = t
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
                self.tl.del_start[i] = time.monotonic()
            try:
                os.unlink(self.mnt / "vectors" / str(i))
            except OSError as e:
                return self.fail(f"rm vectors/{i}: {e}")
            with self.tl.lock:
                self.tl.del_end[i] = time.monotonic()
            self.count("deletes")
            self.count("rm")

    def compact_loop(self):
        while self.running():
            time.sleep(6)
            if not self.running() or not self.has_control:
                continue
            try:
                write_all(self.mnt / "control", b"compact\n", os.O_WRONLY)
            except OSError as e:
                return self.fail(f"compact: {e}")
            self.count("compactions")


def mem(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith(("VmRSS:", "RssAnon:")):
                k, v = ln.split(":")
                out[k] = int(v.split()[0])
    return out


def test_soak(tmp_path, daemons):  # noqa: F811
    seconds = float(os.environ.get("RVF_SOAK_SECONDS", "300" if LONG else "30"))
    store = tmp_path / "soak.rvf"
    ctl("create", store, "--dim", DIM)
    tl = Timeline()
    # 2000 vectors to start with.
    first = list(range(2000))
    (tmp_path / "first.csv").write_text(csv_text(first))
    ctl("ingest", store, tmp_path / "first.csv")
    t = time.monotonic() - 1
    for i in first:
        tl.vectors[i] = vec(i)
        tl.ing_start[i] = tl.ing_end[i] = t
    env = {}
    if os.environ.get("SOAK_ARENA"):
        env["MALLOC_ARENA_MAX"] = os.environ["SOAK_ARENA"]
    asan = is_asan(daemons.tmp and __import__("reliability_lib").rvffs_exe())
    if asan:
        # ASan's quarantine would look like growth: keep it small.
        env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                               ":quarantine_size_mb=16:detect_leaks=1:log_path=" +
                               str(daemons.logdir / "sanitizer"))
    d = daemons(store, tmp_path / "mnt", env_extra=env)
    d.start()
    has_control = (d.mnt / "control").exists()
    soak = Soak(d.mnt, tl, seconds, has_control)
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
        samples.append((time.monotonic() - t0, mem(d.pid)))
        time.sleep(0.5)
        if time.monotonic() - t0 > seconds + 120:
            break
    for th in threads:
        th.join(30)
    assert not any(th.is_alive() for th in threads), "a soak loop hangs"
    assert not soak.errors, soak.errors[:5]
    errs = d.errors()
    assert errs == "", f"the errors file is not empty:\n{errs[-2000:]}"
    # The final state is what the timeline says.
    with tl.lock:
        live = {i for i in tl.ing_end if i not in tl.del_start}
    assert d.vector_ids() == live
    # Memory: after a warm-up (the first third), growth < 20%.
    warm = [s for t, s in samples if seconds * 0.25 <= t <= seconds * 0.4]
    tail = [s for t, s in samples if t >= seconds * 0.8]
    assert warm and tail, samples
    counts = dict(soak.counts, final_vectors=len(live))
    growth = {}
    print("RssAnon", [s["RssAnon"] for _, s in samples])
    print("VmRSS", [s["VmRSS"] for _, s in samples])
    for key in ("RssAnon", "VmRSS"):
        base = statistics.median(s[key] for s in warm)
        last = statistics.median(s[key] for s in tail)
        growth[key] = (base, last)
        assert last <= base * 1.2 + 1024, \
            (f"{key} grew from {base} KiB to {last} KiB (samples: "
             f"{[s[key] for _, s in samples]}; operations {counts})")
    assert d.unmount() == 0
    c = soak.counts
    report("soak", seconds=round(time.monotonic() - t0, 1), **c,
           rss_kib=f"{growth['VmRSS'][0]}->{growth['VmRSS'][1]}",
           anon_kib=f"{growth['RssAnon'][0]}->{growth['RssAnon'][1]}",
           final_vectors=len(live))
    assert c["queries"] > 50 and c["slot_queries"] > 50 and c["ingests"] > 10 and c["deletes"] > 10
    if has_control:
        assert c["compactions"] >= 2
