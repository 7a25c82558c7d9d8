#!/usr/bin/env python3
"""bench.py: rvffs against the reference (@ruvector/rvf-node), one run.

Started by bench/run.sh (see bench/README.md for what every figure means):

    bash bench/run.sh [--size small|100k|1m] [--json] [--reps N]
                      [--workloads query,ingest,mount,reads,compact]
                      [--skip-ref-query | --ref-query] [--no-cold]
                      [--queries Q] [--seed S] [--tmpdir DIR] [--keep]
                      [--save-json FILE]

Python standard library only. Progress goes to stderr; stdout gets the
table, or with --json one JSON document.
"""

import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
REF_JS = BENCH / "ref_bench.js"

SIZES = {
    # n, queries, repetitions (query; mount, reads, compact; ingest; `ls -l
    # vectors/`: 0.1-0.3 ms a file, three FUSE round trips each, not at 1M)
    "small": dict(n=10_000, queries=200, reps_query=3, reps=3, reps_ingest=3, reps_ls=1),
    "100k": dict(n=100_000, queries=200, reps_query=5, reps=5, reps_ingest=5, reps_ls=2),
    "1m": dict(n=1_000_000, queries=200, reps_query=3, reps=3, reps_ingest=3, reps_ls=0),
    # opt-in, issue 13: only the mount of 10M x 128 with random ids (time,
    # memory, first query) against the reference's openReadonly
    "10m": dict(n=10_000_000, queries=10, reps_query=1, reps=2, reps_ingest=1, reps_ls=0),
}
BIG = ("10m",)  # sizes that run only the tools workload's mount rows
WORKLOADS = ("ingest", "stream", "query", "search", "mount", "reads", "compact", "writes",
             "tools", "bigsearch")  # in running order
# bigsearch (issue 15: 10M x 128 L2, 1M x 768 cosine; ~9 GB of data and
# stores, 10-20 minutes) runs only when asked for: --workloads bigsearch
# stream (issue 12 item 6: 5 runs of cp .fvecs against the reference and
# plain cp) is judged at 1M: --size 1m --workloads stream
DEFAULT_WORKLOADS = tuple(w for w in WORKLOADS if w not in ("bigsearch", "stream"))
BIG_SEARCH = (("l2", 10_000_000, 128), ("cosine", 1_000_000, 768))
BIG_QUERIES = 20
STREAM_REPS = 5  # issue 12: `cp .fvecs` "steadily across 5 runs"
SHELL_WRITES = 10_000  # issue 12: `echo > vectors/$i` then `rm vectors/*`, dim 8
# issue 12: 10,000 single-vector `rvfctl ingest` runs against the
# reference's ingestBatch of one vector 10,000 times (file growth side by
# side), at every size; --single-ingests N for fewer (the CI's check)
SINGLE_INGESTS = 10_000
DIM = 128
SEARCH_DIM = 384  # the search workload: a real embedding size, every metric
K = 10
DELETE_EVERY = 10  # compaction: ids 0, 10, 20, ... (10%) are deleted first

# Targets from issue 5: (workload, row key) -> (op, value, kind, nominal size)
# kind "ratio": on rvffs / reference; "abs": on the rvffs figure.
TARGETS = {
    ("query", "qps_per_open"): (">=", 1.5, "ratio", "100k"),
    ("query", "recall_per_open"): (">=", 0.99, "abs", "100k"),
    ("query", "qps_batch"): (">=", 10.0, "ratio", "100k"),
    ("ingest", "fvecs_vps"): (">=", 1.2, "ratio", "1m"),  # issue 12 (issue 5: 1.0 at 100k)
    ("ingest", "fvecs_vs_cp"): ("<=", 1.25, "ratio", None),  # issue 12: >= 0.8x cp's rate
    ("ingest", "csv_mbps"): (">=", 150.0, "abs", None),
    # issue 12 item 6: the .fvecs stream, the worst of 5 paired runs
    ("stream", "fvecs_vps"): (">=", 1.2, "ratio", "1m"),
    ("stream", "fvecs_vps_worst"): (">=", 1.2, "ratio", "1m"),
    ("stream", "fvecs_vs_cp"): (">=", 0.8, "ratio", None),
    ("stream", "fvecs_vs_cp_worst"): (">=", 0.8, "ratio", None),
    ("mount", "open_seconds"): ("<=", 0.25, "ratio", "1m"),
    ("mount", "memory"): ("<=", 0.1, "ratio", "1m"),
    ("mount", "first_query"): ("<", 100.0, "abs", "1m"),  # ms
    ("reads", "cat_warm"): (">=", 0.8, "ratio", None),
    # issue 13: standard tools (the tools workload)
    ("tools", "ls_first"): ("<=", 1000.0, "abs", "100k"),  # ms
    ("tools", "ls_warm"): ("<=", 3.0, "ratio", "100k"),
    ("tools", "find_cat"): ("<=", 3.0, "ratio", "100k"),
    ("tools", "export_mount"): ("<=", 1.5, "ratio", None),
    ("tools", "mount_random"): ("<=", 0.25, "ratio", "1m"),
    ("tools", "random_vs_sequential"): ("<=", 1.2, "ratio", "1m"),
    ("tools", "cat_segments_warm"): (">=", 0.8, "ratio", None),
    ("reads", "tar_warm"): (">=", 0.8, "ratio", None),
    ("compact", "compact_seconds"): ("<=", 1.0, "ratio", "1m"),
    # issue 15: cosine and IP codes at 384 dims
    ("search", "qps_cosine"): (">=", 1.5, "ratio", "100k"),
    ("search", "qps_ip"): (">=", 1.5, "ratio", "100k"),
    ("search", "recall_cosine"): (">=", 1.0, "abs", "100k"),
    ("search", "recall_ip"): (">=", 1.0, "abs", "100k"),
    ("search", "cosine_vs_l2"): (">=", 0.8, "ratio", "100k"),
    ("search", "ip_vs_l2"): (">=", 0.8, "ratio", "100k"),
    ("bigsearch", "p50_l2"): ("<=", 100.0, "abs", None),  # ms, 10M x 128
    ("bigsearch", "p50_cosine"): ("<=", 100.0, "abs", None),  # ms, 1M x 768
    ("bigsearch", "exact_l2"): (">=", 1.0, "abs", None),
    ("bigsearch", "exact_cosine"): (">=", 1.0, "abs", None),
    # issue 12 (the plain-file baseline is shown, the targets are absolute)
    ("writes", "echo_per_s"): (">=", 5000.0, "abs", None),
    ("writes", "echo_store_mb"): ("<=", 2.0, "abs", None),
    ("writes", "rm_seconds"): ("<=", 2.0, "abs", None),
    ("writes", "rm_growth_mb"): ("<=", 1.0, "abs", None),
}


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def random_id(row):
    """ref_bench.js's randomId: row -> id, a bijection on [0, 2^48)."""
    return (row * (0x9E3779B97F4A7C15 & (2 ** 48 - 1))) & (2 ** 48 - 1)


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- statistics

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def percentile(xs, p):
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return None
    pos = (len(xs) - 1) * p / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def recall(results, truth, k=K):
    """Mean over queries of |returned top-k ∩ exact top-k| / k."""
    if len(results) != len(truth):
        raise BenchError(f"{len(results)} answers for {len(truth)} queries")
    hits = 0
    for got, want in zip(results, truth):
        hits += len(set(got[:k]) & set(want[:k]))
    return hits / (k * len(truth))


# ---------------------------------------------------------------- processes

def run(cmd, check=True, **kw):
    cp = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if check and cp.returncode != 0:
        raise BenchError(f"$ {' '.join(map(str, cmd))}\nexit {cp.returncode}\n"
                         f"{cp.stdout[-2000:]}{cp.stderr[-2000:]}")
    return cp


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def timed_sh(script):
    """Wall seconds of `sh -c script` (fork/exec included, ~1-2 ms)."""
    t = time.perf_counter()
    cp = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
    dt = time.perf_counter() - t
    if cp.returncode != 0:
        raise BenchError(f"$ {script}\nexit {cp.returncode}\n{cp.stderr[-2000:]}")
    return dt


def node_ref(*args):
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        raise BenchError("node is not installed (the reference runs in node)")
    cp = subprocess.run([node, "--expose-gc", str(REF_JS)] + [str(a) for a in args],
                        capture_output=True, text=True)
    try:
        out = json.loads(cp.stdout)
    except ValueError:
        raise BenchError(f"ref_bench.js printed no JSON (exit {cp.returncode})\n"
                         f"{cp.stdout[-2000:]}{cp.stderr[-2000:]}")
    if cp.returncode != 0 or "error" in out:
        raise BenchError(f"ref_bench.js {args[0]}: {out.get('error')}")
    return out


def proc_cpu(pid):
    """user+system CPU seconds of process pid so far, or None."""
    try:
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, TypeError):
        return None


def fsync_path(path):
    """fsync(2) of a file or directory (in an rvffs mount: a durable commit)."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def drop_caches():
    """sync + echo 3 > /proc/sys/vm/drop_caches (root only)."""
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def can_drop_caches():
    return os.geteuid() == 0 and os.access("/proc/sys/vm/drop_caches", os.W_OK)


def loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def proc_kb(pid, field, fname="smaps_rollup"):
    try:
        for line in open(f"/proc/{pid}/{fname}"):
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def proc_cpu_total(pid):
    """CPU seconds (user+sys) of a process so far: the larger of its
    threads' schedstat run times (nanoseconds, live threads only) and
    /proc/PID/stat's user+sys (whole process, in 10 ms ticks)."""
    ticks = run_ns = 0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        for t in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{t}/schedstat") as f:
                run_ns += int(f.read().split()[0])
    except (OSError, IndexError, ValueError):
        pass
    return max(ticks, run_ns / 1e9) or None


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, a):
        self.a = a
        self.codes_state = None
        cfg = SIZES[a.size]
        self.n = cfg["n"]
        self.search_n = a.search_n or self.n
        self.nq = a.queries or cfg["queries"]
        self.reps_query = a.reps or cfg["reps_query"]
        self.reps = a.reps or cfg["reps"]
        self.reps_ingest = a.reps or cfg["reps_ingest"]
        self.reps_ls = min(a.reps, cfg["reps_ls"]) if a.reps else cfg["reps_ls"]
        build = Path(os.environ.get("RVF_BUILD_DIR", "build"))
        self.build = build if build.is_absolute() else REPO / build
        self.rvffs = self.build / "fs" / "rvffs"
        self.rvfctl = self.build / "ctl" / "rvfctl"
        self.bench_data = self.build / "bench" / "bench_data"
        self.fvecs_store = self.build / "bench" / "fvecs_store"
        self.big = a.size in BIG
        self.mounts = {}  # mount point -> daemon pid (only ours)
        self.query_errors = {}  # mode -> failed query-file requests
        self.tmp = None
        self.rows = {w: [] for w in WORKLOADS}
        self.notes = []
        self.info = {}
        self.cold = not a.no_cold and can_drop_caches()
        if a.ref_query is None:
            self.ref_query = a.size != "1m"
        else:
            self.ref_query = a.ref_query

    # ------------------------------------------------------------ rows
    def row(self, workload, key, label, unit, rvffs, reference, better,
            base="reference", compare=True, note=None):
        ratio = None
        if compare and rvffs is not None and reference not in (None, 0):
            ratio = rvffs / reference
        r = dict(key=key, label=label, unit=unit, rvffs=rvffs, reference=reference,
                 ratio=ratio, better=better, base=base, compare=compare, note=note)
        t = TARGETS.get((workload, key))
        if t:
            op, value, kind, size = t
            if kind == "ratio":
                r["target"] = f"ratio {op} {value:g}"
            else:
                r["target"] = f"rvffs {op} {value:g}" + (f" {unit}" if unit else "")
            r["target"] += f" at {size}" if size else ""
            x = ratio if kind == "ratio" else rvffs
            if size and size != self.a.size:
                r["met"] = None  # the target is set for another size
            elif x is None:
                r["met"] = None
            else:
                r["met"] = {"<": x < value, "<=": x <= value,
                            ">=": x >= value}[op]
        self.rows[workload].append(r)
        return r

    # ------------------------------------------------------------ mounts
    def mount(self, store, mnt, *opts):
        """Mounts; returns (seconds until status answers, daemon pid)."""
        mnt.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        cp = subprocess.run([str(self.rvffs), *opts, str(store), str(mnt)],
                            capture_output=True, text=True)
        if cp.returncode != 0:
            raise BenchError(f"rvffs {store} {mnt}: exit {cp.returncode}: {cp.stderr.strip()}")
        self.mounts[mnt] = None  # unmounted by cleanup() whatever happens next
        while True:
            try:
                status = (mnt / "status").read_text()
                break
            except OSError:
                if time.perf_counter() - t > 60:
                    raise BenchError(f"{mnt}/status does not answer")
                time.sleep(0.0005)
        dt = time.perf_counter() - t
        pid = None
        for line in status.splitlines():
            if line.startswith("pid:"):
                pid = int(line.split()[1])
        self.mounts[mnt] = pid
        return dt, pid, status

    def unmount(self, mnt):
        pid = self.mounts.pop(mnt, None)
        ok = False
        for _ in range(50):
            if subprocess.run(["fusermount3", "-u", str(mnt)],
                              capture_output=True).returncode == 0:
                ok = True
                break
            time.sleep(0.1)
        if not ok:
            log(f"fusermount3 -u {mnt} keeps failing: lazy unmount (-uz)")
            subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
        # the writer lock goes with the daemon: wait for it
        if pid:
            t = time.monotonic()
            while pid_alive(pid) and time.monotonic() - t < 60:
                time.sleep(0.01)
            if pid_alive(pid):
                # ours (it served the mount we made): end it, by its pid
                log(f"rvffs daemon {pid} still running after unmount: SIGTERM")
                try:
                    os.kill(pid, signal.SIGTERM)
                except OSError:
                    pass

    def cleanup(self):
        for mnt in list(self.mounts):
            try:
                self.unmount(mnt)
            except Exception as e:  # keep cleaning up
                log(f"unmount {mnt}: {e}")
        if self.tmp and not self.a.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp:
            log(f"kept {self.tmp}")

    def status(self, mnt):
        out = {}
        for line in (mnt / "status").read_text().splitlines():
            k, _, v = line.partition(":")
            out[k.strip()] = v.strip()
        return out

    # ------------------------------------------------------------ data
    def generate(self):
        for exe in (self.rvffs, self.rvfctl, self.bench_data):
            if not os.access(exe, os.X_OK):
                raise BenchError(f"{exe} is missing: build with `ninja -C {self.build}`")
        self.data = self.tmp / "data"
        if self.a.data:
            self.use_data(Path(self.a.data))
        else:
            log(f"generating {self.n} x {DIM} + {self.nq} queries (seed {self.a.seed})")
            formats = ("fvecs" if self.big else
                       "fvecs,npy,csv" if "ingest" in self.a.workloads else "fvecs,npy")
            cp = run([self.bench_data, "--n", self.n, "--dim", DIM, "--queries", self.nq,
                      "--k", K, "--seed", self.a.seed, "--out", self.data, "--formats", formats])
            self.info["data"] = json.loads(cp.stdout)
        self.queries = (self.data / "queries.txt").read_text().splitlines()
        self.truth = [[int(x) for x in line.split()]
                      for line in (self.data / "truth.txt").read_text().splitlines()]
        self.rvffs_store = self.tmp / "rvffs.rvf"
        self.ref_store = self.tmp / "ref.rvf"

    def use_data(self, d):
        """--data DIR: bench_data's output made before (10M rows take minutes
        to draw), checked against the size.  The tools workload at 10m reads
        only base.fvecs, queries.f32/.txt and truth.txt; the others need
        base.npy (and base.csv for ingest) too."""
        fvecs = d / "base.fvecs"
        want = self.n * (4 + 4 * DIM)
        if not fvecs.is_file() or fvecs.stat().st_size != want:
            raise BenchError(f"--data {d}: base.fvecs must hold {self.n} x {DIM} rows "
                             f"({want} bytes)")
        if not all((d / f).is_file() for f in ("queries.txt", "queries.f32", "truth.txt")):
            raise BenchError(f"--data {d}: queries.txt, queries.f32 and truth.txt are needed")
        nq = len((d / "queries.txt").read_text().splitlines())
        self.data = d
        self.nq = min(self.nq, nq)
        self.info["data"] = dict(reused=str(d), n=self.n, dim=DIM, queries=nq)
        log(f"data from {d} ({self.n} x {DIM}, {nq} queries)")

    # ------------------------------------------------------------ 2 ingest
    def ingest(self, timed=True):
        """Repetitions interleave the sides (fvecs, npy, csv, reference,
        fvecs, ...), so a change of load hits both."""
        reps = self.reps_ingest if timed else 1
        mnt = self.tmp / "mnt-ingest"
        fmts = ("fvecs", "npy", "csv") if timed else ("fvecs",)
        times = {fmt: [] for fmt in fmts}
        plain_times = []
        plain = self.tmp / "plain-ingest"
        ref_runs = []
        for r in range(reps):
            if timed:
                # the physical limit: cp of the same file to a plain
                # directory on the same disk, made durable the same way
                shutil.rmtree(plain, ignore_errors=True)
                plain.mkdir()
                t = time.perf_counter()
                run(["cp", self.data / "base.fvecs", plain / "base.fvecs"])
                fsync_path(plain / "base.fvecs")
                plain_times.append(time.perf_counter() - t)
                shutil.rmtree(plain, ignore_errors=True)
            for fmt in fmts:
                src = self.data / f"base.{fmt}"
                store = self.tmp / f"ingest-{fmt}.rvf"
                for p in (store, Path(str(store) + ".lock")):
                    p.unlink(missing_ok=True)
                run([self.rvfctl, "create", store, "--dim", DIM, "--metric", "l2"])
                self.mount(store, mnt)
                t = time.perf_counter()
                run(["cp", src, mnt / "ingest" / f"base.{fmt}"])
                # durable, as the reference's close is: fsync of the mount
                fsync_path(mnt / "ingest")
                times[fmt].append(time.perf_counter() - t)
                st = self.status(mnt)
                self.unmount(mnt)
                if int(st["vectors"]) != self.n:
                    raise BenchError(f"cp base.{fmt}: {st['vectors']} vectors, expected {self.n}")
                if fmt == "fvecs" and r == reps - 1:
                    store.rename(self.rvffs_store)  # the store the other workloads use
                else:
                    store.unlink()
            ref = node_ref("ingest", "--npy", self.data / "base.npy", "--out", self.ref_store,
                           "--batch", 10000, "--reps", 1)
            ref_runs += ref["runs"]
            log(f"ingest rep {r + 1}/{reps}: " + ", ".join(
                f"{fmt} {times[fmt][-1]:.3f} s" for fmt in fmts) +
                f", reference {ref_runs[-1]['seconds']:.3f} s")
        res = {fmt: dict(seconds=median(times[fmt]),
                         bytes=(self.data / f"base.{fmt}").stat().st_size, runs=times[fmt])
               for fmt in fmts}
        ref["runs"] = ref_runs
        ref_s = median([x["seconds"] for x in ref_runs])
        if not timed:
            return
        ref_vps = self.n / ref_s
        for fmt, label in (("fvecs", "cp .fvecs"), ("npy", "cp .npy"), ("csv", "cp .csv")):
            self.row("ingest", f"{fmt}_vps", f"{label} into ingest/ vs ingestBatch (10k batches)",
                     "vectors/s", self.n / res[fmt]["seconds"], ref_vps, "higher")
        self.row("ingest", "fvecs_vs_cp", "cp .fvecs into ingest/ vs cp to a plain directory",
                 "s", res["fvecs"]["seconds"], median(plain_times), "lower",
                 base="plain files",
                 note="both made durable by fsync; ratio = rvffs time / plain time")
        self.row("ingest", "csv_mbps", "CSV parse+commit throughput", "MB/s",
                 res["csv"]["bytes"] / res["csv"]["seconds"] / 1e6, None, "higher",
                 compare=False, note="the reference has no CSV import")
        self.row("ingest", "fvecs_mbps", ".fvecs throughput", "MB/s",
                 res["fvecs"]["bytes"] / res["fvecs"]["seconds"] / 1e6,
                 self.n * DIM * 4 / ref_s / 1e6, "higher",
                 note="reference: float32 bytes handed to ingestBatch")
        self.info["ingest"] = dict(rvffs=res, reference=ref)

    def stream(self):
        """Issue 12 item 6: `cp base.fvecs MNT/ingest/` (streamed into the
        store as written) + fsync, against the reference's ingestBatch (10k
        batches) of the same rows and against cp + fsync to a plain
        directory on the same disk; STREAM_REPS runs, each side once per
        run, in turn, so a change of load hits all three.  Rows: the median
        rate and the worst run's ratio (the target says "steadily")."""
        reps = self.a.reps or STREAM_REPS
        mnt = self.tmp / "mnt-stream"
        plain = self.tmp / "plain-stream"
        store = self.tmp / "stream.rvf"
        ref_store = self.tmp / "stream-ref.rvf"
        src = self.data / "base.fvecs"
        ours, cps, refs = [], [], []
        for r in range(reps):
            shutil.rmtree(plain, ignore_errors=True)
            plain.mkdir()
            t = time.perf_counter()
            run(["cp", src, plain / "base.fvecs"])
            fsync_path(plain / "base.fvecs")
            cps.append(time.perf_counter() - t)
            shutil.rmtree(plain, ignore_errors=True)
            for p in (store, Path(str(store) + ".lock")):
                p.unlink(missing_ok=True)
            run([self.rvfctl, "create", store, "--dim", DIM, "--metric", "l2"])
            _, pid, _ = self.mount(store, mnt)
            cpu0 = proc_cpu(pid)
            t = time.perf_counter()
            run(["cp", src, mnt / "ingest" / "base.fvecs"])
            fsync_path(mnt / "ingest")
            ours.append(time.perf_counter() - t)
            cpu = proc_cpu(pid) - cpu0 if cpu0 is not None else None
            st = self.status(mnt)
            self.unmount(mnt)
            store.unlink()
            if int(st["vectors"]) != self.n:
                raise BenchError(f"stream: {st['vectors']} vectors, expected {self.n}")
            ref = node_ref("ingest", "--npy", self.data / "base.npy", "--out", ref_store,
                           "--batch", 10000, "--reps", 1)
            refs.append(ref["runs"][0]["seconds"])
            log(f"stream rep {r + 1}/{reps}: rvffs {ours[-1]:.3f} s (daemon cpu "
                f"{cpu if cpu is None else round(cpu, 2)} s), cp {cps[-1]:.3f} s, "
                f"reference {refs[-1]:.3f} s")
        vps = [self.n / s for s in ours]
        ref_ratio = [rs / s for s, rs in zip(ours, refs)]   # rate ratio, paired by run
        cp_ratio = [cs / s for s, cs in zip(ours, cps)]
        runs = "; ".join(f"{s:.2f}/{rs:.2f}/{cs:.2f}" for s, rs, cs in zip(ours, refs, cps))
        self.row("stream", "fvecs_vps", f"cp .fvecs into ingest/ vs ingestBatch, median of {reps}",
                 "vectors/s", median(vps), self.n / median(refs), "higher")
        self.row("stream", "fvecs_vps_worst", f"the same, worst of the {reps} paired runs",
                 "vectors/s", self.n / ours[ref_ratio.index(min(ref_ratio))],
                 self.n / refs[ref_ratio.index(min(ref_ratio))], "higher",
                 note=f"seconds per run rvffs/reference/plain cp: {runs}")
        self.row("stream", "fvecs_vs_cp", f"cp .fvecs into ingest/ vs cp to a plain directory, "
                 f"median of {reps}", "MB/s", src.stat().st_size / median(ours) / 1e6,
                 src.stat().st_size / median(cps) / 1e6, "higher", base="plain files",
                 note="both made durable by fsync")
        self.row("stream", "fvecs_vs_cp_worst", f"the same, worst of the {reps} paired runs", "MB/s",
                 src.stat().st_size / ours[cp_ratio.index(min(cp_ratio))] / 1e6,
                 src.stat().st_size / cps[cp_ratio.index(min(cp_ratio))] / 1e6, "higher",
                 base="plain files")
        self.info["stream"] = dict(rvffs=ours, reference=refs, plain=cps)

    # ------------------------------------------------------------ 1 query
    def read_all(self, fd):
        chunks = []
        while True:
            b = os.read(fd, 1 << 17)  # cat's buffer size
            if not b:
                return b"".join(chunks)
            chunks.append(b)

    def write_all(self, fd, data):
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def parse_groups(self, text, nq):
        """ID lists of nq answers of min(k, n) hits each; None if the text
        is not exactly that (a damaged answer, see query_error)."""
        want = min(K, self.n)
        groups = []
        try:
            body = text.decode()
        except UnicodeDecodeError:
            return None
        if body.startswith("error"):
            raise BenchError(f"query failed: {body[:300]}")
        for g in body.rstrip("\n").split("\n\n"):
            lines = g.split("\n")
            if len(lines) != want:
                return None
            try:
                # distances: any number (inner products are negative)
                groups.append([int(line.split(" ")[0]) for line in lines
                               if math.isfinite(float(line.split(" ")[1]))])
            except (ValueError, IndexError):
                return None
        return groups if len(groups) == nq and all(len(g) == want for g in groups) else None

    def query_error(self, mode, what):
        """A request whose answer was an I/O error or damaged: counted,
        reported, and asked again (its time is not counted)."""
        self.query_errors[mode] = self.query_errors.get(mode, 0) + 1
        if self.query_errors[mode] > 50:
            raise BenchError(f"query file ({mode}): too many failed requests ({what})")

    def request(self, path, blob, nq, mode):
        """open, write, read to EOF, close; returns (seconds, id lists)."""
        while True:
            t = time.perf_counter()
            try:
                fd = os.open(path, os.O_RDWR)
                try:
                    self.write_all(fd, blob)
                    out = self.read_all(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                self.query_error(mode, str(e))
                continue
            dt = time.perf_counter() - t
            ids = self.parse_groups(out, nq)
            if ids is not None:
                return dt, ids
            self.query_error(mode, "damaged answer")

    def q_per_open(self, mnt, lines):
        lat, ids = [], []
        path = str(mnt / "query")
        for line in lines:
            dt, got = self.request(path, line, 1, "per_open")
            lat.append(dt)
            ids.extend(got)
        return lat, ids

    def q_batch(self, mnt, blob):
        return self.request(str(mnt / "query"), blob, self.nq, "batch")

    def q_slots(self, mnt, lines):
        slot = mnt / "queries" / "bench"
        if not slot.is_dir():
            slot.mkdir()
        req, res = str(slot / "request"), str(slot / "result")
        lat, ids = [], []
        for line in lines:
            t = time.perf_counter()
            fd = os.open(req, os.O_WRONLY | os.O_TRUNC)
            try:
                self.write_all(fd, line)
            finally:
                os.close(fd)  # the query runs at close
            fd = os.open(res, os.O_RDONLY)
            try:
                out = self.read_all(fd)
            finally:
                os.close(fd)
            lat.append(time.perf_counter() - t)
            got = self.parse_groups(out, 1)
            if got is None:
                raise BenchError(f"queries/bench/result: damaged answer {out[:200]!r}")
            ids.extend(got)
        return lat, ids

    def wait_codes(self, mnt, timeout=600):
        """Seconds until the daemon's search codes are ready (None when it
        builds none: `off` or `unavailable: ...`)."""
        t = time.perf_counter()
        while True:
            st = os.getxattr(str(mnt / "query"), "user.rvf.search_codes").decode()
            if st.startswith("ready"):
                return time.perf_counter() - t
            if st.startswith(("off", "unavailable")) or time.perf_counter() - t > timeout:
                self.codes_state = st
                if f"search codes: {st}" not in self.notes:
                    self.notes.append(f"search codes: {st}")
                return None
            time.sleep(0.002)

    def query(self):
        mnt = self.tmp / "mnt-query"
        lines = [f"k={K} {q}\n".encode() for q in self.queries]
        blob = b"".join(lines)
        self.mount(self.rvffs_store, mnt)
        try:
            # warm: the first query pays page faults and starts the build of
            # the search codes; the timed runs start once they are ready
            self.q_per_open(mnt, lines[:5])
            self.codes_build = self.wait_codes(mnt)
            per_open, batch, slots = [], [], []
            for r in range(self.reps_query):
                lat, ids = self.q_per_open(mnt, lines)
                per_open.append(dict(qps=len(lat) / sum(lat), p50=percentile(lat, 50),
                                     p99=percentile(lat, 99), recall=recall(ids, self.truth)))
                dt, ids = self.q_batch(mnt, blob)
                batch.append(dict(seconds=dt, qps=len(lines) / dt, recall=recall(ids, self.truth)))
                lat, ids = self.q_slots(mnt, lines)
                slots.append(dict(qps=len(lat) / sum(lat), p50=percentile(lat, 50),
                                  p99=percentile(lat, 99), recall=recall(ids, self.truth)))
                log(f"query rep {r + 1}/{self.reps_query}: per open {per_open[-1]['qps']:.0f} q/s, "
                    f"batch {batch[-1]['qps']:.0f} q/s, slots {slots[-1]['qps']:.0f} q/s")
        finally:
            self.unmount(mnt)
        # the same without codes: the float32 scan alone
        self.mount(self.rvffs_store, mnt, "-o", "codes=off")
        try:
            self.q_per_open(mnt, lines[:5])
            per_open_off, batch_off = [], []
            for r in range(self.reps_query):
                lat, ids = self.q_per_open(mnt, lines)
                per_open_off.append(dict(qps=len(lat) / sum(lat), p50=percentile(lat, 50),
                                         recall=recall(ids, self.truth)))
                dt, ids = self.q_batch(mnt, blob)
                batch_off.append(dict(qps=len(lines) / dt, recall=recall(ids, self.truth)))
            log(f"codes off: per open {per_open_off[-1]['qps']:.0f} q/s, "
                f"batch {batch_off[-1]['qps']:.0f} q/s")
        finally:
            self.unmount(mnt)

        if self.ref_query:
            log("reference queries (its first query builds the HNSW index"
                + (": minutes at 100k" if self.n >= 100_000 else "") + ")")
        ref = node_ref("query", "--store", self.ref_store, "--queries", self.data / "queries.f32",
                       "--dim", DIM, "--k", K, "--reps", self.reps_query,
                       "--hnsw", 1 if self.ref_query else 0,
                       "--exact-reps", min(self.reps_query, 3))

        def ref_stats(runs):
            return dict(qps=median([len(r["latencies"]) / r["seconds"] for r in runs]),
                        p50=median([percentile(r["latencies"], 50) for r in runs]),
                        p99=median([percentile(r["latencies"], 99) for r in runs]),
                        seconds=median([r["seconds"] for r in runs]),
                        recall=recall(runs[-1]["ids"], self.truth))
        rx = ref_stats(ref["exact"])
        rh = ref_stats(ref["hnsw"]) if self.ref_query else None
        m = lambda runs, key: median([x[key] for x in runs])  # noqa: E731
        skipped = None if self.ref_query else "reference HNSW queries skipped (--skip-ref-query)"
        if skipped:
            self.notes.append(skipped + ": query rows compare with the reference's exact scan only")
        h = lambda key: rh[key] if rh else None  # noqa: E731

        self.row("query", "qps_per_open", "queries/s, query file, one query per open vs HNSW",
                 "q/s", m(per_open, "qps"), h("qps"), "higher", note=skipped)
        self.row("query", "p50_per_open", "p50 latency, one query per open vs HNSW", "ms",
                 m(per_open, "p50") * 1e3, h("p50") and h("p50") * 1e3, "lower", note=skipped)
        self.row("query", "p99_per_open", "p99 latency, one query per open vs HNSW", "ms",
                 m(per_open, "p99") * 1e3, h("p99") and h("p99") * 1e3, "lower", note=skipped)
        self.row("query", "recall_per_open", "recall@10, one query per open vs HNSW (default ef)",
                 "", m(per_open, "recall"), h("recall"), "higher", note=skipped)
        self.row("query", "qps_batch", f"queries/s, all {self.nq} in one write vs HNSW",
                 "q/s", m(batch, "qps"), h("qps"), "higher", note=skipped)
        self.row("query", "batch_latency", f"latency of the {self.nq}-query batch vs "
                 f"{self.nq} HNSW queries", "ms", m(batch, "seconds") * 1e3,
                 h("seconds") and h("seconds") * 1e3, "lower", note=skipped)
        self.row("query", "recall_batch", "recall@10, one write vs HNSW", "",
                 m(batch, "recall"), h("recall"), "higher", note=skipped)
        self.row("query", "qps_slots", "queries/s, queries/NAME slot vs HNSW", "q/s",
                 m(slots, "qps"), h("qps"), "higher", note=skipped)
        self.row("query", "p50_slots", "p50 latency, slot vs HNSW", "ms",
                 m(slots, "p50") * 1e3, h("p50") and h("p50") * 1e3, "lower", note=skipped)
        self.row("query", "p99_slots", "p99 latency, slot vs HNSW", "ms",
                 m(slots, "p99") * 1e3, h("p99") and h("p99") * 1e3, "lower", note=skipped)
        self.row("query", "recall_slots", "recall@10, slot vs HNSW", "",
                 m(slots, "recall"), h("recall"), "higher", note=skipped)
        self.row("query", "qps_per_open_nocodes", "queries/s, one query per open, -o codes=off "
                 "(float32 scan only) vs HNSW", "q/s", m(per_open_off, "qps"), h("qps"), "higher",
                 note=skipped)
        self.row("query", "qps_batch_nocodes", f"queries/s, all {self.nq} in one write, "
                 "-o codes=off vs HNSW", "q/s", m(batch_off, "qps"), h("qps"), "higher",
                 note=skipped)
        self.row("query", "recall_nocodes", "recall@10, -o codes=off, one query per open", "",
                 m(per_open_off, "recall"), None, "higher", compare=False)
        self.row("query", "codes_build", "building the search codes (background, after the "
                 "first query)", "s", self.codes_build, None, "lower", compare=False,
                 note="the reference's HNSW build is index_build" if self.codes_build is not None
                 else f"no codes: {self.codes_state}")
        self.row("query", "index_build", "reference's first query (builds HNSW)", "s",
                 None, ref.get("first_query_seconds"), "lower", compare=False,
                 note="rvffs has no index to build" + ("; skipped" if skipped else ""))
        self.row("query", "qps_vs_exact", "queries/s, one query per open vs the reference's "
                 "exact scan (match-all filter)", "q/s", m(per_open, "qps"), rx["qps"], "higher")
        self.row("query", "p50_vs_exact", "p50 latency, one query per open vs exact scan", "ms",
                 m(per_open, "p50") * 1e3, rx["p50"] * 1e3, "lower")
        self.row("query", "qps_batch_vs_exact", "queries/s, one write vs exact scan", "q/s",
                 m(batch, "qps"), rx["qps"], "higher")
        self.row("query", "recall_vs_exact", "recall@10, one query per open vs exact scan", "",
                 m(per_open, "recall"), rx["recall"], "higher")
        nerr = sum(self.query_errors.values())
        self.row("query", "failed_requests", "query-file requests answered with EIO or a "
                 "damaged answer (asked again, time not counted)", "count", nerr, None, "lower",
                 compare=False, note="a daemon fault, not a speed")
        if nerr:
            self.notes.append(f"query file: {nerr} request(s) failed and were asked again "
                              f"({self.query_errors}); see bench/README.md, 'Known faults'")
        self.info["query"] = dict(
            rvffs=dict(per_open=per_open, batch=batch, slots=slots, errors=self.query_errors,
                       per_open_codes_off=per_open_off, batch_codes_off=batch_off,
                       codes_build_seconds=self.codes_build),
            reference=dict(exact=rx, hnsw=rh, first_query_seconds=ref.get("first_query_seconds"),
                           index=ref.get("index"), skipped=bool(skipped)))

    # ------------------------------------------------------------ search
    def search_wl(self):
        """Issue 15: N x 384 stores under each metric, one query per open
        with the search codes vs the reference's HNSW on the same data.
        Recall is against the float32 scan of the same store (-o
        codes=off), exact for every metric."""
        data = self.tmp / "data384"
        run([self.bench_data, "--n", self.search_n, "--dim", SEARCH_DIM, "--queries", self.nq,
             "--k", K, "--seed", self.a.seed, "--out", data, "--formats", "fvecs,npy"])
        lines = [f"k={K} {q}\n".encode()
                 for q in (data / "queries.txt").read_text().splitlines()]
        mnt = self.tmp / "mnt-search"
        res = {}
        for metric in ("l2", "cosine", "ip"):
            store = self.tmp / f"search-{metric}.rvf"
            run([self.rvfctl, "create", store, "--dim", SEARCH_DIM, "--metric", metric])
            self.mount(store, mnt)
            try:
                run(["cp", data / "base.fvecs", mnt / "ingest" / "base.fvecs"])
                # the commit of a large ingest ends after cp returns
                t = time.perf_counter()
                while int(self.status(mnt)["vectors"]) != self.search_n:
                    if time.perf_counter() - t > 600:
                        raise BenchError(f"search {metric}: ingest did not finish")
                    time.sleep(0.05)
                self.q_per_open(mnt, lines[:5])  # starts the codes' build
                build = self.wait_codes(mnt)
                runs = []
                for r in range(self.reps_query):
                    lat, ids = self.q_per_open(mnt, lines)
                    runs.append(dict(qps=len(lat) / sum(lat), p50=percentile(lat, 50), ids=ids))
            finally:
                self.unmount(mnt)
            self.mount(store, mnt, "-o", "codes=off")
            try:
                _, exact = self.q_per_open(mnt, lines)
            finally:
                self.unmount(mnt)
            ref = None
            if self.ref_query:
                ref_store = self.tmp / f"search-ref-{metric}.rvf"
                node_ref("ingest", "--npy", data / "base.npy", "--out", ref_store,
                         "--batch", 10000, "--reps", 1,
                         "--metric", "inner_product" if metric == "ip" else metric)
                ref = node_ref("query", "--store", ref_store, "--queries", data / "queries.f32",
                               "--dim", SEARCH_DIM, "--k", K, "--reps", self.reps_query,
                               "--hnsw", 1, "--exact-reps", 0)
                ref_store.unlink(missing_ok=True)
            store.unlink(missing_ok=True)
            qps = median([x["qps"] for x in runs])
            res[metric] = dict(
                qps=qps, p50=median([x["p50"] for x in runs]), codes_build=build,
                recall=min(recall(x["ids"], exact) for x in runs),
                ref_qps=ref and median([len(x["latencies"]) / x["seconds"] for x in ref["hnsw"]]),
                ref_recall=ref and recall(ref["hnsw"][-1]["ids"], exact))
            log(f"search {metric}: {qps:.0f} q/s per open, recall {res[metric]['recall']:.3f}"
                + (f"; HNSW {res[metric]['ref_qps']:.0f} q/s, recall "
                   f"{res[metric]['ref_recall']:.3f}" if ref else ""))
        skipped = None if self.ref_query else "reference HNSW queries skipped"
        size = f"{self.search_n // 1000}k x {SEARCH_DIM}"
        for metric in ("l2", "cosine", "ip"):
            r = res[metric]
            self.row("search", f"qps_{metric}", f"{metric} {size}: queries/s, one query per "
                     "open vs HNSW", "q/s", r["qps"], r["ref_qps"], "higher", note=skipped)
            self.row("search", f"p50_{metric}", f"{metric} {size}: p50 latency, one query per "
                     "open", "ms", r["p50"] * 1e3, None, "lower", compare=False)
            self.row("search", f"recall_{metric}", f"{metric} {size}: recall@10 vs the float "
                     "scan (-o codes=off) vs HNSW", "", r["recall"], r["ref_recall"], "higher",
                     note=skipped)
            self.row("search", f"codes_build_{metric}", f"{metric} {size}: building the search "
                     "codes", "s", r["codes_build"], None, "lower", compare=False,
                     note=None if r["codes_build"] is not None else f"no codes: {self.codes_state}")
        for metric in ("cosine", "ip"):
            self.row("search", f"{metric}_vs_l2", f"{metric} {size}: queries/s vs l2 on the same "
                     "data", "q/s", res[metric]["qps"], res["l2"]["qps"], "higher", base="l2")
        self.info["search"] = res

    # ------------------------------------------------------------ bigsearch
    def big_store(self, metric, n, dim):
        """The store of one bigsearch case, made once (bench_data + rvfctl
        ingest) in --big-dir and reused; (store, query lines)."""
        base = Path(self.a.big_dir) if self.a.big_dir else self.tmp
        data = base / f"uniform-{n}-{dim}"
        store = base / f"big-{metric}-{n}-{dim}.rvf"
        if not (data / "queries.txt").exists():
            log(f"bigsearch: generating {n} x {dim} in {data}")
            run([self.bench_data, "--n", n, "--dim", dim, "--queries", BIG_QUERIES, "--k", K,
                 "--seed", self.a.seed, "--out", data, "--formats", "fvecs"])
        if not store.exists():
            log(f"bigsearch: rvfctl ingest {store}")
            tmp = store.with_suffix(".partial")
            tmp.unlink(missing_ok=True)
            run([self.rvfctl, "create", tmp, "--dim", dim, "--metric", metric])
            run([self.rvfctl, "ingest", tmp, data / "base.fvecs"])
            tmp.rename(store)
        lines = [f"k={K} {q}\n".encode() for q in (data / "queries.txt").read_text().splitlines()]
        return store, lines

    def daemon_cpu(self, pid):
        """CPU seconds (user + system, every thread) of a daemon so far."""
        f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

    def bigsearch(self):
        """Issue 15: one query per open through `query` on 10M x 128 (L2)
        and 1M x 768 (cosine), uniform data, with the search codes, against
        the float scan of the same mount (-o codes=off): its p50 and its
        answers (ids in order; the unit tests compare distance bits).  The
        reference's HNSW is not run here: its index build at 100k x 384 did
        not finish in 25 minutes on this VM (issue 15 notes)."""
        mnt = self.tmp / "mnt-big"
        res = {}
        for metric, n, dim in BIG_SEARCH:
            n = max(1000, int(n * self.a.big_scale))
            store, lines = self.big_store(metric, n, dim)
            _, pid, _ = self.mount(store, mnt)
            try:
                self.q_per_open(mnt, lines[:2])  # starts the codes' build
                build = self.wait_codes(mnt, timeout=3600)
                codes = os.getxattr(str(mnt / "query"), "user.rvf.search_codes").decode()
                anon = proc_kb(pid, "Anonymous")
                load = loadavg()
                runs = []
                for r in range(max(1, min(self.reps_query, 3))):
                    c0 = self.daemon_cpu(pid)
                    lat, ids = self.q_per_open(mnt, lines)
                    runs.append(dict(p50=percentile(lat, 50), ids=ids,
                                     cpu=(self.daemon_cpu(pid) - c0) / len(lat)))
                t = time.perf_counter()
                _, batch_ids = self.q_batch_n(mnt, lines)
                batch_qps = len(lines) / (time.perf_counter() - t)
            finally:
                self.unmount(mnt)
            self.mount(store, mnt, "-o", "codes=off")
            try:
                nchk = 5
                lat_off, exact = self.q_per_open(mnt, lines[:nchk])
            finally:
                self.unmount(mnt)
            same = all(x["ids"][:nchk] == exact for x in runs) and batch_ids[:nchk] == exact
            res[metric] = dict(n=n, dim=dim, p50=median([x["p50"] for x in runs]),
                               cpu=median([x["cpu"] for x in runs]), batch_qps=batch_qps,
                               float_p50=percentile(lat_off, 50), exact=1.0 if same else 0.0,
                               codes=codes, codes_build=build, anon=anon, load=load)
            log(f"bigsearch {metric} {n} x {dim}: p50 {res[metric]['p50'] * 1e3:.1f} ms "
                f"(float scan {res[metric]['float_p50'] * 1e3:.0f} ms), codes {codes}, "
                f"identical {same}, load {load}")
            if not self.a.big_dir:
                store.unlink(missing_ok=True)
        for metric, r in res.items():
            size = (f"{r['n'] // 1_000_000}M" if r["n"] >= 1_000_000 else f"{r['n']}") + \
                f" x {r['dim']}"
            note = (f"reference HNSW not run at this size; baseline: the float scan "
                    f"(-o codes=off); load {r['load']}")
            self.row("bigsearch", f"p50_{metric}", f"{metric} {size}: p50, one query per open "
                     "vs the float scan", "ms", r["p50"] * 1e3, r["float_p50"] * 1e3, "lower",
                     base="float scan", note=note)
            self.row("bigsearch", f"cpu_{metric}", f"{metric} {size}: daemon CPU (user+sys) "
                     "per query, one per open", "ms", r["cpu"] * 1e3, None, "lower",
                     compare=False)
            self.row("bigsearch", f"batch_{metric}", f"{metric} {size}: queries/s, all "
                     f"{BIG_QUERIES} in one write", "q/s", r["batch_qps"], None, "higher",
                     compare=False)
            self.row("bigsearch", f"exact_{metric}", f"{metric} {size}: answers identical to "
                     "the float scan's (1 = yes)", "", r["exact"], None, "higher",
                     compare=False)
            self.row("bigsearch", f"memory_{metric}", f"{metric} {size}: daemon anon. memory, "
                     "codes built", "MB", r["anon"] / 1e6 if r["anon"] else None,
                     None, "lower", compare=False, note=f"codes: {r['codes']}")
            self.row("bigsearch", f"codes_build_{metric}", f"{metric} {size}: building the "
                     "codes", "s", r["codes_build"], None, "lower", compare=False)
        self.info["bigsearch"] = res

    def q_batch_n(self, mnt, lines):
        return self.request(str(mnt / "query"), b"".join(lines), len(lines), "batch")

    # ------------------------------------------------------------ 3 mount
    def mount_wl(self):
        mnt = self.tmp / "mnt-mount"
        line = f"k={K} {self.queries[0]}\n".encode()
        runs = []
        for r in range(self.reps):
            dt, pid, _ = self.mount(self.rvffs_store, mnt)
            try:
                anon = proc_kb(pid, "Anonymous")
                if anon is None:
                    anon = proc_kb(pid, "RssAnon", "status")
                rss = proc_kb(pid, "Rss")
                lat, ids = self.q_per_open(mnt, [line])
                anon_q = proc_kb(pid, "Anonymous")
                rss_q = proc_kb(pid, "Rss")
                build = self.wait_codes(mnt)
                anon_c = proc_kb(pid, "Anonymous")
            finally:
                self.unmount(mnt)
            runs.append(dict(seconds=dt, anon=anon, rss=rss, first_query=lat[0],
                             anon_after_query=anon_q, rss_after_query=rss_q,
                             anon_with_codes=anon_c, codes_build=build,
                             first_ids=ids[0]))
        if runs[-1]["first_ids"][:K] != self.truth[0][:K]:
            self.notes.append("mount: the first query's answer differs from the exact one")
        ref = [node_ref("open", "--store", self.ref_store, "--queries", self.data / "queries.f32",
                        "--dim", DIM, "--k", K) for _ in range(self.reps)]
        m = lambda key: median([x[key] for x in runs])  # noqa: E731
        rm = lambda key: median([x[key] for x in ref])  # noqa: E731
        size = f"{self.n // 1000}k x {DIM}" if self.n < 1_000_000 else f"{self.n // 1_000_000}M x {DIM}"
        self.row("mount", "open_seconds", f"mount until `status` answers vs openReadonly ({size})",
                 "ms", m("seconds") * 1e3, rm("open_seconds") * 1e3, "lower")
        self.row("mount", "memory", "daemon anonymous memory after mount vs openReadonly RSS delta",
                 "MB", m("anon") / 1e6, rm("rss_delta") / 1e6, "lower")
        self.row("mount", "memory_after_query", "daemon anonymous memory after the first query "
                 "vs RSS delta after the first exact query", "MB", m("anon_after_query") / 1e6,
                 rm("rss_delta_after_query") / 1e6, "lower")
        builds = [x["codes_build"] for x in runs if x["codes_build"] is not None]
        codes_note = (f"codes built in {median(builds):.2f} s in the background" if builds
                      else "no search codes were built")
        self.row("mount", "memory_with_codes", "daemon anonymous memory once the search codes "
                 "are built vs RSS delta after the first exact query", "MB",
                 m("anon_with_codes") / 1e6, rm("rss_delta_after_query") / 1e6, "lower",
                 note=codes_note)
        self.row("mount", "rss_after_query", "daemon RSS after the first query (incl. mapped "
                 "store pages) vs RSS delta", "MB", m("rss_after_query") / 1e6,
                 rm("rss_delta_after_query") / 1e6, "lower", compare=False,
                 note="RSS counts the page-cache pages of the mmap'd store")
        self.row("mount", "first_query", "first query after mount (query file) vs first "
                 "exact-scan query after open", "ms", m("first_query") * 1e3,
                 rm("first_exact_query_seconds") * 1e3, "lower",
                 note="the reference's first HNSW query builds the index (query workload)")
        self.info["mount"] = dict(rvffs=runs, reference=ref)

    # ------------------------------------------------------------ 4 reads
    def reads(self):
        mnt = self.tmp / "mnt-reads"
        store = self.rvffs_store
        size = store.stat().st_size
        seg = f"{mnt}/segments"
        cat_seg = f"cat {seg}/* > /dev/null"
        cat_file = f"cat {store} > /dev/null"
        # GNU tar skips reading when the archive is /dev/null: pipe it
        tar_seg = f"tar cf - -C {mnt} segments | cat > /dev/null"
        tar_file = f"tar cf - -C {store.parent} {store.name} | cat > /dev/null"
        res = {k: [] for k in ("cat_seg", "cat_file", "tar_seg", "tar_file", "cat_seg_first",
                               "cat_seg_cold", "cat_file_cold", "tar_seg_cold", "tar_file_cold",
                               "ls_first", "ls")}
        # through the daemon: fresh mount (empty FUSE page cache), store file cached
        timed_sh(cat_file)
        for r in range(self.reps):
            self.mount(store, mnt)
            try:
                seg_bytes = sum(p.stat().st_size for p in (mnt / "segments").iterdir())
                res["cat_seg_first"].append(timed_sh(cat_seg))
                if r < self.reps_ls:
                    res["ls_first"].append(timed_sh(f"ls -l {mnt}/vectors > /dev/null"))
            finally:
                self.unmount(mnt)
        # warm: everything in the page cache (FUSE's included)
        self.mount(store, mnt)
        try:
            timed_sh(cat_seg)
            timed_sh(tar_seg)
            for r in range(self.reps):
                res["cat_seg"].append(timed_sh(cat_seg))
                res["cat_file"].append(timed_sh(cat_file))
                res["tar_seg"].append(timed_sh(tar_seg))
                res["tar_file"].append(timed_sh(tar_file))
                if r < self.reps_ls:
                    res["ls"].append(timed_sh(f"ls -l {mnt}/vectors > /dev/null"))
        finally:
            self.unmount(mnt)
        # cold: unmount, drop caches, mount (not timed), read
        if self.cold:
            for r in range(self.reps):
                for key, script, mounted in (("cat_seg_cold", cat_seg, True),
                                             ("tar_seg_cold", tar_seg, True),
                                             ("cat_file_cold", cat_file, False),
                                             ("tar_file_cold", tar_file, False)):
                    drop_caches()
                    if mounted:
                        self.mount(store, mnt)
                    try:
                        res[key].append(timed_sh(script))
                    finally:
                        if mounted:
                            self.unmount(mnt)
        else:
            why = ("--no-cold" if self.a.no_cold else
                   "not root: cannot write /proc/sys/vm/drop_caches")
            self.notes.append(f"cold reads skipped ({why})")
        mbps = lambda key, nbytes: nbytes / median(res[key]) / 1e6 if res[key] else None  # noqa
        self.row("reads", "cat_warm", "`cat segments/*` vs `cat STORE`, warm", "MB/s",
                 mbps("cat_seg", seg_bytes), mbps("cat_file", size), "higher", base="store file")
        self.row("reads", "tar_warm", "`tar` of segments/ vs `tar` of STORE, warm", "MB/s",
                 mbps("tar_seg", seg_bytes), mbps("tar_file", size), "higher", base="store file")
        self.row("reads", "cat_daemon", "`cat segments/*` after a fresh mount (store cached, "
                 "FUSE cache empty) vs `cat STORE` warm", "MB/s",
                 mbps("cat_seg_first", seg_bytes), mbps("cat_file", size), "higher",
                 base="store file")
        cold_note = None if self.cold else "skipped"
        self.row("reads", "cat_cold", "`cat segments/*` vs `cat STORE`, cold (caches dropped)",
                 "MB/s", mbps("cat_seg_cold", seg_bytes), mbps("cat_file_cold", size), "higher",
                 base="store file", compare=self.cold, note=cold_note)
        self.row("reads", "tar_cold", "`tar` of segments/ vs `tar` of STORE, cold", "MB/s",
                 mbps("tar_seg_cold", seg_bytes), mbps("tar_file_cold", size), "higher",
                 base="store file", compare=self.cold, note=cold_note)
        ls_note = "no reference counterpart" if res["ls"] else \
            "not run at this size (minutes)"
        self.row("reads", "ls_first", f"`ls -l vectors/` ({self.n} files), first after mount",
                 "ms", median(res["ls_first"]) and median(res["ls_first"]) * 1e3, None, "lower",
                 compare=False, note=ls_note)
        self.row("reads", "ls_warm", f"`ls -l vectors/` ({self.n} files), again", "ms",
                 median(res["ls"]) and median(res["ls"]) * 1e3, None, "lower", compare=False,
                 note=ls_note)
        self.info["reads"] = dict(seconds=res, store_bytes=size, segment_bytes=seg_bytes,
                                  cold=self.cold)

    # ------------------------------------------------------------ 5 compact
    def writes(self):
        """The shell's write pattern (issue 12): SHELL_WRITES single-vector
        `echo ... > vectors/$i` in one bash loop on a fresh dim-8 store,
        then `rm vectors/*`; the same loop into a plain directory on the
        same disk is the baseline. Store sizes are after the unmount (the
        daemon commits and, when due, compacts then)."""
        n = SHELL_WRITES
        store = self.tmp / "writes.rvf"
        mnt = self.tmp / "mnt-writes"
        plain = self.tmp / "plain-writes"
        for p in (store, Path(str(store) + ".lock")):
            p.unlink(missing_ok=True)
        run([self.rvfctl, "create", store, "--dim", 8])
        loop = f'for i in $(seq 1 {n}); do echo "1 2 3 4 5 6 7 $i" > "$D/$i"; done'
        shutil.rmtree(plain, ignore_errors=True)
        plain.mkdir()
        t = time.perf_counter()
        run(["bash", "-c", loop], env=dict(os.environ, D=str(plain)))
        plain_s = time.perf_counter() - t
        t = time.perf_counter()
        run(["bash", "-c", 'rm "$D"/*'], env=dict(os.environ, D=str(plain)))
        plain_rm = time.perf_counter() - t
        self.mount(store, mnt)
        try:
            t = time.perf_counter()
            run(["bash", "-c", loop], env=dict(os.environ, D=str(mnt / "vectors")))
            echo_s = time.perf_counter() - t
            got = int(self.status(mnt)["vectors"])
        finally:
            self.unmount(mnt)
        if got != n:
            raise BenchError(f"writes: {got} vectors after {n} writes")
        after_echo = store.stat().st_size
        self.mount(store, mnt)
        try:
            t = time.perf_counter()
            run(["bash", "-c", 'rm "$D"/*'], env=dict(os.environ, D=str(mnt / "vectors")))
            rm_s = time.perf_counter() - t
            grown_live = store.stat().st_size - after_echo
        finally:
            self.unmount(mnt)
        after_rm = store.stat().st_size
        mb = 1024 * 1024
        self.row("writes", "echo_per_s", f"{n} x echo > vectors/$i (dim 8)", "writes/s",
                 n / echo_s, n / plain_s, "higher", base="plain files")
        self.row("writes", "echo_store_mb", "store after those writes and unmount", "MB",
                 after_echo / mb, None, "lower", compare=False)
        self.row("writes", "rm_seconds", f"rm vectors/* of {n}", "s", rm_s, plain_rm, "lower",
                 base="plain files")
        self.row("writes", "rm_growth_mb", "store growth by the rm (before unmount)", "MB",
                 grown_live / mb, None, "lower", compare=False,
                 note=f"after unmount: {after_rm / mb:.2f} MB (compacted when due)")
        self.single_ingests()

    def single_ingests(self):
        """N processes of `rvfctl ingest STORE one-row.csv` on an unmounted
        store (each a durable commit, the reference's own pattern) against
        N ingestBatch calls of one vector in the reference: file sizes."""
        n = self.a.single_ingests or SINGLE_INGESTS
        dim = 8
        store = self.tmp / "singles.rvf"
        ref = self.tmp / "singles-ref.rvf"
        for p in (store, Path(str(store) + ".lock")):
            p.unlink(missing_ok=True)
        run([self.rvfctl, "create", store, "--dim", dim])
        loop = (f'for i in $(seq 0 {n - 1}); do echo "$i,1,2,3,4,5,6,7,$i" > "$T"; '
                f'"$C" ingest "$S" "$T" >/dev/null || exit 1; done')
        t = time.perf_counter()
        run(["bash", "-c", loop], env=dict(os.environ, T=str(self.tmp / "one.csv"),
                                             C=str(self.rvfctl), S=str(store)))
        ours_s = time.perf_counter() - t
        # the same rows as .npy for the reference
        npy = self.tmp / "singles.npy"
        hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (n, dim)
        hdr += " " * (64 - (10 + len(hdr) + 1) % 64) + "\n"
        rows = bytearray()
        for i in range(n):
            rows += struct.pack("<8f", 1, 2, 3, 4, 5, 6, 7, i)
        npy.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() +
                        bytes(rows))
        out = node_ref("ingest", "--npy", npy, "--out", ref, "--batch", 1, "--reps", 1)
        mb = 1024 * 1024
        self.row("writes", "single_ingest_mb",
                 f"store after {n} single-vector ingests (rvfctl runs / ingestBatch)", "MB",
                 store.stat().st_size / mb, out["bytes"] / mb, "lower",
                 note=f"rvfctl: {ours_s:.1f} s for {n} processes; reference in one process: "
                      f"{out['runs'][0]['seconds']:.1f} s")

    def compact(self):
        work = self.tmp / "compact.rvf"
        mnt = self.tmp / "mnt-compact"
        ids = list(range(0, self.n, DELETE_EVERY))
        want = self.n - len(ids)

        def fresh_copy():
            for p in (work, Path(str(work) + ".lock")):
                p.unlink(missing_ok=True)
            shutil.copyfile(self.rvffs_store, work)
            for i in range(0, len(ids), 10_000):  # stays under the kernel's argument limit
                run([self.rvfctl, "delete", work, "--ids",
                     ",".join(map(str, ids[i:i + 10_000]))])
            return work.stat().st_size

        # through the mount's control file, when the daemon has one
        via_control = []
        for r in range(self.reps):
            before = fresh_copy()
            self.mount(work, mnt)
            try:
                if not (mnt / "control").exists():
                    break
                t = time.perf_counter()
                fd = os.open(str(mnt / "control"), os.O_WRONLY)
                try:
                    os.write(fd, b"compact\n")  # runs and commits before write returns
                finally:
                    os.close(fd)
                dt = time.perf_counter() - t
                st = self.status(mnt)
            finally:
                self.unmount(mnt)
            if int(st["vectors"]) != want:
                raise BenchError(f"after compaction: {st['vectors']} vectors, expected {want}")
            via_control.append(dict(seconds=dt, bytes_before=before,
                                    bytes_after=work.stat().st_size))
        if not via_control:
            self.notes.append("compact: the mount has no control file: `rvfctl compact` only")
        # rvfctl on the unmounted store
        runs = []
        for r in range(self.reps):
            before = fresh_copy()
            t = time.perf_counter()
            run([self.rvfctl, "compact", work, "--json"])
            dt = time.perf_counter() - t
            st = json.loads(run([self.rvfctl, "status", work, "--json"]).stdout)
            if st["vectors"] != want:
                raise BenchError(f"after rvfctl compact: {st['vectors']} vectors, expected {want}")
            runs.append(dict(seconds=dt, bytes_before=before, bytes_after=work.stat().st_size))
        work.unlink(missing_ok=True)
        ref = node_ref("compact", "--store", self.ref_store, "--work", self.tmp / "ref-compact.rvf",
                       "--every", DELETE_EVERY, "--reps", self.reps)
        for x in ref["runs"]:
            if x["vectors_after"] != want:
                raise BenchError(f"reference compaction left {x['vectors_after']} vectors")
        ref_c = median([x["compact_seconds"] for x in ref["runs"]]) * 1e3
        ref_occ = median([x["open_compact_close_seconds"] for x in ref["runs"]]) * 1e3
        what = f"{len(ids)} of {self.n} deleted"
        ctl_ms = median([x["seconds"] for x in runs]) * 1e3
        if via_control:
            c_ms = median([x["seconds"] for x in via_control]) * 1e3
            self.row("compact", "compact_seconds", f"`compact` written to the mount's control "
                     f"file vs compact(), {what}", "ms", c_ms, ref_c, "lower")
            self.row("compact", "compact_rvfctl", "`rvfctl compact` on the unmounted store "
                     "(whole process) vs compact()", "ms", ctl_ms, ref_c, "lower")
        else:
            self.row("compact", "compact_seconds", f"`rvfctl compact` (whole process) vs "
                     f"compact(), {what}", "ms", ctl_ms, ref_c, "lower")
        self.row("compact", "compact_vs_open_close", "`rvfctl compact` vs open + compact() + close",
                 "ms", ctl_ms, ref_occ, "lower")
        self.row("compact", "size_after", "file size after compaction", "MB",
                 median([x["bytes_after"] for x in runs]) / 1e6,
                 median([x["bytes_after"] for x in ref["runs"]]) / 1e6, "lower")
        self.info["compact"] = dict(control=via_control, rvfctl=runs, reference=ref)

    # ------------------------------------------------------------ all
    # ------------------------------------------------------------ 8 tools
    def tools(self):
        """Issue 13: standard tools on the mount against their plain
        counterparts, in one run. `ls -l vectors/` and `find | xargs cat`
        against a plain directory holding the same files (made with
        `cp -a` from the mount, which is timed too); `rvfctl export` of the
        mount point against the file; mounting a store whose ids arrive in
        random order (written by the reference, `ingest --ids random`)
        against the reference's openReadonly of that file and against the
        mount of its sequential-id twin.  At 10m only the mount rows run,
        on stores bench/fvecs_store writes (see tools_mount)."""
        if not self.big:
            self.tools_tree()
        self.tools_mount()

    def tools_tree(self):
        """ls, find|xargs cat, cp -a, export and cat segments/ (tools)."""
        mnt = self.tmp / "mnt-tools"
        store = self.rvffs_store
        plain = self.tmp / "plain-vectors"
        res = {k: [] for k in ("ls_first", "ls", "ls_plain", "find_cat", "find_cat_plain",
                               "find_cat_again", "export_mount", "export_file", "cp_a",
                               "cat_seg", "cat_file")}
        ls = "ls -l {} > /dev/null"
        find_cat = "cd {} && find . -type f | xargs cat > /dev/null"
        for r in range(self.reps_ls):
            self.mount(store, mnt)
            try:
                res["ls_first"].append(timed_sh(ls.format(mnt / "vectors")))
                res["ls"].append(timed_sh(ls.format(mnt / "vectors")))
                if r == 0:
                    shutil.rmtree(plain, ignore_errors=True)
                    res["cp_a"].append(timed_sh(f"cp -a {mnt}/vectors {plain}"))
                res["ls_plain"].append(timed_sh(ls.format(plain)))
                res["find_cat"].append(timed_sh(find_cat.format(mnt / "vectors")))
                res["find_cat_plain"].append(timed_sh(find_cat.format(plain)))
                res["find_cat_again"].append(timed_sh(find_cat.format(mnt / "vectors")))
            finally:
                self.unmount(mnt)
        shutil.rmtree(plain, ignore_errors=True)
        out = self.tmp / "export.jsonl"
        cat_seg, cat_file = f"cat {mnt}/segments/* > /dev/null", f"cat {store} > /dev/null"
        self.mount(store, mnt)
        try:
            # the same bytes through both doors (checked once, untimed);
            # the timed runs write to /dev/null: each export writes 1.4 GB
            # at 1M, and waiting for the disk to take the previous run's
            # (shared with everyone on the machine) swamped the difference
            run([self.rvfctl, "export", mnt, "-o", out])
            mount_sum = file_sha256(out)
            run([self.rvfctl, "export", store, "-o", out])
            if file_sha256(out) != mount_sum:
                self.notes.append("tools: export of the mount differs from export of the file")
            out.unlink(missing_ok=True)
            for r in range(self.reps):
                res["export_mount"].append(timed_sh(f"{self.rvfctl} export {mnt} > /dev/null"))
                res["export_file"].append(timed_sh(f"{self.rvfctl} export {store} > /dev/null"))
            # warm reads: the segments in FUSE's page cache, the store in
            # the disk's, one after the other so a change of load hits both
            seg_bytes = sum(p.stat().st_size for p in (mnt / "segments").iterdir())
            timed_sh(cat_seg)
            timed_sh(cat_file)
            for r in range(self.reps):
                res["cat_seg"].append(timed_sh(cat_seg))
                res["cat_file"].append(timed_sh(cat_file))
        finally:
            self.unmount(mnt)
        out.unlink(missing_ok=True)
        ms = lambda key: median(res[key]) * 1e3 if res[key] else None  # noqa: E731
        ls_note = None if res["ls"] else "not run at this size (minutes)"
        self.row("tools", "ls_first", f"`ls -l vectors/` ({self.n} files), first after mount",
                 "ms", ms("ls_first"), None, "lower", compare=False, note=ls_note)
        self.row("tools", "ls_warm", "`ls -l vectors/` again vs `ls -l` of a plain directory "
                 "of the same files", "ms", ms("ls"), ms("ls_plain"), "lower",
                 base="plain directory", note=ls_note)
        self.row("tools", "find_cat", "`find vectors -type f | xargs cat` vs the plain "
                 "directory", "ms", ms("find_cat"), ms("find_cat_plain"), "lower",
                 base="plain directory", note=ls_note)
        self.row("tools", "find_cat_again", "`find vectors -type f | xargs cat` again (kernel "
                 "caches) vs the plain directory", "ms", ms("find_cat_again"),
                 ms("find_cat_plain"), "lower", base="plain directory", note=ls_note)
        self.row("tools", "cp_a", "`cp -a MNT/vectors DIR`", "ms", ms("cp_a"), None, "lower",
                 compare=False, note=ls_note)
        self.row("tools", "export_mount", "`rvfctl export MNT` vs `rvfctl export STORE` "
                 "(to /dev/null)", "ms",
                 ms("export_mount"), ms("export_file"), "lower", base="store file")
        mbps = lambda key, n: n / median(res[key]) / 1e6  # noqa: E731
        self.row("tools", "cat_segments_warm", "`cat segments/*` vs `cat STORE`, warm", "MB/s",
                 mbps("cat_seg", seg_bytes), mbps("cat_file", store.stat().st_size), "higher",
                 base="store file")

        self.info["tools"] = dict(seconds=res)

    def tools_mount(self):
        """Mount with ids in random order.  Both stores are written by the
        reference at 1M and below; at 10m the reference's ingest cannot read
        the 5 GB .npy (node reads a file of at most 2 GiB at once), so
        bench/fvecs_store writes both through librvf (the same random ids,
        commits of 100,000 rows), and the reference only opens the random
        one."""
        mnt = self.tmp / "mnt-tools"
        rand = self.tmp / "random-ids.rvf"
        seq = self.ref_store
        writer = "the reference"
        if self.big:
            writer = "librvf (bench/fvecs_store)"
            seq = self.tmp / "sequential-ids.rvf"
            for path, ids in ((rand, "random"), (seq, "sequential")):
                log(f"fvecs_store with {ids} ids")
                # commits of 100,000 rows (100 VEC segments, as the
                # reference's 1M store has): each commit merges the id
                # index of the whole store, so 1,000 commits of 10,000
                # take tens of minutes at 10M
                run([self.fvecs_store, self.data / "base.fvecs", path, "--ids", ids,
                     "--batch", 100000])
        else:
            log("reference ingest with random ids")
            node_ref("ingest", "--npy", self.data / "base.npy", "--out", rand, "--batch", 10000,
                     "--reps", 1, "--ids", "random")
        seq_s, rand_s, rand_anon, rand_q = [], [], [], []
        seq_cpu, rand_cpu, rand_rss = [], [], []
        line = f"k={K} {self.queries[0]}\n".encode()
        for r in range(self.reps):
            for which, path in (("seq", seq), ("rand", rand)):
                dt, pid, _ = self.mount(path, mnt, "-o", "ro")
                (seq_cpu if which == "seq" else rand_cpu).append(proc_cpu_total(pid))
                try:
                    if which == "rand":
                        rand_anon.append(proc_kb(pid, "Anonymous"))
                        rand_rss.append(proc_kb(pid, "Rss"))
                        lat, ids = self.q_per_open(mnt, [line])
                        rand_q.append(lat[0])
                        want = [random_id(i) for i in self.truth[0][:K]]
                        if ids[0][:K] != want:
                            self.notes.append("tools: the first query on the random-id "
                                              "store differs from the exact answer")
                finally:
                    self.unmount(mnt)
                (seq_s if which == "seq" else rand_s).append(dt)
        ref = [node_ref("open", "--store", rand, "--queries", self.data / "queries.f32",
                        "--dim", DIM, "--k", K) for _ in range(self.reps)]
        rand.unlink(missing_ok=True)
        if self.big:
            seq.unlink(missing_ok=True)
        size = f"{self.n // 1000}k" if self.n < 1_000_000 else f"{self.n // 1_000_000}M"
        self.row("tools", "mount_random", f"mount {size} x {DIM} with ids in random order "
                 f"vs openReadonly of the same file (written by {writer})", "ms",
                 median(rand_s) * 1e3, median([x["open_seconds"] for x in ref]) * 1e3, "lower")
        self.row("tools", "random_vs_sequential", "mount with random ids vs mount with "
                 f"sequential ids (both written by {writer})", "ms", median(rand_s) * 1e3,
                 median(seq_s) * 1e3, "lower", base="sequential ids")
        self.row("tools", "random_vs_sequential_cpu", "the daemon's CPU time (user+sys) at "
                 "mount, random ids vs sequential ids", "ms", median(rand_cpu) * 1e3,
                 median(seq_cpu) * 1e3, "lower", base="sequential ids")
        self.row("tools", "random_memory", "daemon anonymous memory after mount (random ids) "
                 "vs openReadonly RSS delta", "MB", median(rand_anon) / 1e6,
                 median([x["rss_delta"] for x in ref]) / 1e6, "lower")
        self.row("tools", "random_rss", "daemon RSS after mount (random ids; the store's "
                 "pages it touched count) vs openReadonly RSS delta", "MB",
                 median(rand_rss) / 1e6 if median(rand_rss) else None,
                 median([x["rss_delta"] for x in ref]) / 1e6, "lower")
        self.row("tools", "random_first_query", "first query after mount (random ids) vs "
                 "first exact query after open", "ms", median(rand_q) * 1e3,
                 median([x["first_exact_query_seconds"] for x in ref]) * 1e3, "lower")
        self.info.setdefault("tools", {}).update(
            mount_random=rand_s, mount_sequential=seq_s, cpu_random=rand_cpu,
            cpu_sequential=seq_cpu, reference_random=ref, stores_written_by=writer)

    def run(self):
        wl = self.a.workloads
        t0 = time.perf_counter()
        self.load_before = loadavg()
        base = self.a.tmpdir or os.environ.get("TMPDIR") or "/tmp"
        self.tmp = Path(tempfile.mkdtemp(prefix="rvffs-bench-", dir=base))
        log(f"size {self.a.size}: {self.n} x {DIM}, {self.nq} queries, k={K}, "
            f"reps {self.reps_query}/{self.reps_ingest}/{self.reps}, in {self.tmp}; "
            f"load {self.load_before}")
        self.generate()
        self.load = {}
        steps = dict(ingest=lambda: self.ingest(timed=True), query=self.query,
                     search=self.search_wl, mount=self.mount_wl, reads=self.reads,
                     compact=self.compact, writes=self.writes, tools=self.tools,
                     stream=self.stream,
                     bigsearch=self.bigsearch)
        if "ingest" not in wl and not self.big:
            self.ingest(timed=False)  # the stores the other workloads use
        for name in WORKLOADS:  # ingest first: it makes the stores
            if name not in wl:
                continue
            load = loadavg()
            log(f"workload {name} (1-min load {load[0] if load else '?'})")
            steps[name]()
            after = loadavg()
            self.load[name] = [load and load[0], after and after[0]]
        self.seconds = time.perf_counter() - t0
        self.load_after = loadavg()

    def document(self):
        return dict(
            size=self.a.size, n=self.n, search_n=self.search_n, dim=DIM, queries=self.nq,
            k=K, seed=self.a.seed,
            reps=dict(query=self.reps_query, ingest=self.reps_ingest, other=self.reps,
                      ls=self.reps_ls),
            reference="@ruvector/rvf-node 0.2.3 (tests/interop/node_modules), in-process in node",
            machine=dict(cpus=os.cpu_count(), cpu=cpu_model(), kernel=platform.release(),
                         load_before=self.load_before, load_after=self.load_after),
            cold_reads=self.cold, reference_queries=self.ref_query,
            seconds=round(self.seconds, 1), notes=self.notes,
            workloads={w: dict(rows=self.rows[w], load=self.load.get(w))
                       for w in WORKLOADS if w in self.a.workloads},
            details=self.info,
        )


# ---------------------------------------------------------------- output

def fmt(x, unit=""):
    if x is None:
        return "-"
    if unit == "count":
        return f"{x:d}"
    if unit == "":
        return f"{x:.3f}"
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def table(doc):
    out = []
    m = doc["machine"]
    out.append(f"rvffs vs {doc['reference']}")
    out.append(f"size {doc['size']}: {doc['n']} x {doc['dim']} float32 uniform[-1,1) seed "
               f"{doc['seed']}, {doc['queries']} queries, k={doc['k']}, medians of "
               f"{doc['reps']['query']} (query), {doc['reps']['ingest']} (ingest), "
               f"{doc['reps']['other']} (others) repetitions")
    out.append(f"machine: {m['cpus']} CPUs ({m['cpu']}), load average before "
               f"{' '.join(f'{x:.2f}' for x in m['load_before'] or [])}, after "
               f"{' '.join(f'{x:.2f}' for x in m['load_after'] or [])}; run took {doc['seconds']} s")
    for note in doc["notes"]:
        out.append(f"note: {note}")
    for w, body in doc["workloads"].items():
        rows = body["rows"]
        if not rows:
            continue
        out.append("")
        load = body.get("load")
        out.append(f"== {w}" + (f"   (1-min load average {load[0]:.2f} at start, {load[1]:.2f} at end)"
                                 if load and None not in load else ""))
        hdr = ("figure", "unit", "rvffs", "base", "ratio", "target", "met")
        cells = []
        for r in rows:
            base = r["reference"]
            ratio = r["ratio"]
            met = {True: "yes", False: "NO", None: "-"}[r.get("met")]
            if "target" not in r:
                met = ""
            label = r["label"] + (f" [{r['base']}]" if r["base"] != "reference" else "")
            if r.get("note") and not r["compare"]:
                label += f" ({r['note']})"
            elif r["compare"] and r["reference"] is None:
                label += " (skipped)"
            cells.append((label, r["unit"], fmt(r["rvffs"], r["unit"]), fmt(base, r["unit"]),
                          "-" if ratio is None else f"{ratio:.2f}x", r.get("target", ""), met))
        widths = [max(len(c[i]) for c in cells + [hdr]) for i in range(len(hdr))]
        widths[0] = min(widths[0], 90)
        line = lambda c: "  ".join(  # noqa: E731
            (c[i][:widths[i]].ljust(widths[i]) if i in (0, 1, 5, 6) else c[i].rjust(widths[i]))
            for i in range(len(c)))
        out.append(line(hdr))
        for c in cells:
            out.append(line(c))
    out.append("")
    out.append("ratio = rvffs / base (base = the reference, or the store file read directly); "
               "\"better\" is higher for rates and recall, lower for times and memory.")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="small")
    ap.add_argument("--json", action="store_true", help="one JSON document on stdout")
    ap.add_argument("--reps", type=int, help="repetitions of every measurement")
    ap.add_argument("--queries", type=int, help="number of queries (default 200)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--search-n", type=int, metavar="N",
                    help="rows of the search workload (default: the size's; the test suite "
                         "checks its figures at a few thousand)")
    ap.add_argument("--single-ingests", type=int, metavar="N",
                    help="single-vector rvfctl ingests of the writes workload (default "
                         f"{SINGLE_INGESTS:,}; the test suite checks the row with a few hundred)")
    ap.add_argument("--big-dir", metavar="DIR",
                    help="bigsearch: where its data and stores are made, and kept for the "
                         "next run (default: the temporary directory, removed)")
    ap.add_argument("--big-scale", type=float, default=1.0, metavar="F",
                    help="bigsearch: rows times F (a quick trial: 0.01)")
    ap.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                    help="comma-separated subset of " + ",".join(WORKLOADS))
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--skip-ref-query", dest="ref_query", action="store_false", default=None,
                   help="skip the reference's HNSW queries (its index build takes minutes "
                        "at 100k); the default at 1m")
    g.add_argument("--ref-query", dest="ref_query", action="store_true",
                   help="run the reference's HNSW queries also at 1m")
    ap.add_argument("--no-cold", action="store_true", help="skip the cold-cache reads")
    ap.add_argument("--tmpdir", help="where the data and stores go (default $TMPDIR or /tmp); "
                    "must be a disk, not tmpfs, for cold reads")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--save-json", metavar="FILE", help="also write the JSON document to FILE")
    ap.add_argument("--data", metavar="DIR",
                    help="use bench_data's output in DIR (made before with the same --n, "
                         "--dim 128 and --seed) instead of drawing the data again")
    a = ap.parse_args()
    if a.size in BIG and a.workloads == ",".join(DEFAULT_WORKLOADS):
        a.workloads = "tools"
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    if a.size in BIG and a.workloads != ["tools"]:
        ap.error(f"--size {a.size} runs only the tools workload (its mount rows)")
    for w in a.workloads:
        if w not in WORKLOADS:
            ap.error(f"unknown workload {w} (choose from {', '.join(WORKLOADS)})")

    b = Bench(a)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        b.run()
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        b.cleanup()
    doc = b.document()
    if a.save_json:
        Path(a.save_json).write_text(json.dumps(doc, indent=1) + "\n")
    if a.json:
        print(json.dumps(doc))
    else:
        print(table(doc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
