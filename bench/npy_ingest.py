#!/usr/bin/env python3
"""`cp x.npy MNT/ingest/` streamed (issue 12 item 6) against the staged
path, on the same file and mount build, runs interleaved so a change of
load hits both sides.

  streamed  cp base.npy MNT/ingest/                      (rows go into the
            store as written; one commit at close)
  staged    cp base.npy MNT/ingest/.base.npy; mv to base.npy   (rsync's
            pattern: a hidden name is staged, the rename imports it: the
            path every .npy took before it streamed)
  fvecs     cp base.fvecs MNT/ingest/ (the same rows; .fvecs streamed
            before .npy did: the two should cost the same)

Each side is made durable by fsync of MNT/ingest, as the bench's ingest
rows are.  Printed per side: wall seconds (median, all runs), the daemon's
user+sys CPU and cp's (+mv's) user+sys CPU, and the load average, since
the machine may be shared.  --build DIR (repeatable, `label=DIR`) also runs
"streamed" with other builds, e.g. one of a commit before .npy streamed.

  python3 bench/npy_ingest.py [--n 1000000] [--dim 128] [--reps 3]
      [--build before=/path/to/old/build] [--tmp DIR]
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import fsync_path, proc_cpu as cpu_of  # noqa: E402  (bench.py's helpers)


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def load():
    return os.getloadavg()[0]


def mount(build, store, mnt):
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run([str(build / "fs" / "rvffs"), str(store), str(mnt)], check=True)
    t = time.monotonic()
    while True:
        try:
            status = (mnt / "status").read_text()
            break
        except OSError:
            if time.monotonic() - t > 60:
                raise SystemExit(f"{mnt}/status does not answer")
            time.sleep(0.01)
    return int(next(ln.split()[1] for ln in status.splitlines() if ln.startswith("pid:")))


def unmount(mnt, pid):
    for _ in range(100):
        if subprocess.run(["fusermount3", "-u", str(mnt)], capture_output=True).returncode == 0:
            break
        time.sleep(0.1)
    else:
        subprocess.run(["fusermount3", "-uz", str(mnt)])
    for _ in range(300):  # the daemon exits after the unmount
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)


def one(build, side, src, tmp, dim, n):
    store, mnt = tmp / f"{side}.rvf", tmp / f"mnt-{side}"
    for p in (store, Path(str(store) + ".lock")):
        p.unlink(missing_ok=True)
    subprocess.run([str(build / "ctl" / "rvfctl"), "create", str(store), "--dim", str(dim),
                    "--metric", "l2"], check=True, capture_output=True)
    pid = mount(build, store, mnt)
    try:
        load0, cpu0, kids0 = load(), cpu_of(pid), children_cpu()
        t = time.perf_counter()
        if side == "fvecs":
            subprocess.run(["cp", str(src.with_suffix(".fvecs")),
                            str(mnt / "ingest" / "base.fvecs")], check=True)
        elif side == "staged":
            subprocess.run(["cp", str(src), str(mnt / "ingest" / ".base.npy")], check=True)
            subprocess.run(["mv", str(mnt / "ingest" / ".base.npy"),
                            str(mnt / "ingest" / "base.npy")], check=True)
        else:
            subprocess.run(["cp", str(src), str(mnt / "ingest" / "base.npy")], check=True)
        fsync_path(mnt / "ingest")
        wall = time.perf_counter() - t
        daemon, kids = cpu_of(pid) - cpu0, children_cpu() - kids0
        vectors = next(ln.split()[1] for ln in (mnt / "status").read_text().splitlines()
                       if ln.startswith("vectors:"))
    finally:
        unmount(mnt, pid)
        store.unlink(missing_ok=True)
    if int(vectors) != n:
        raise SystemExit(f"{side}: {vectors} vectors, expected {n}")
    return dict(wall=wall, daemon=daemon, cp=kids, load=(load0 + load()) / 2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--build", action="append", default=[],
                    help="label=DIR: a build whose plain cp is also timed")
    ap.add_argument("--tmp", default=None)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    own = Path(os.environ.get("RVF_BUILD_DIR", HERE.parent / "build")).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="npy-bench-", dir=a.tmp))
    try:
        subprocess.run([str(own / "bench" / "bench_data"), "--n", str(a.n), "--dim", str(a.dim),
                        "--queries", "1", "--k", "1", "--seed", str(a.seed), "--out",
                        str(tmp / "data"), "--formats", "npy,fvecs"], check=True,
                       capture_output=True)
        src = tmp / "data" / "base.npy"
        sides = [("streamed", own, "streamed"), ("staged", own, "staged"),
                 ("fvecs", own, "fvecs")]
        for spec in a.build:
            label, _, d = spec.partition("=")
            sides.append((label, Path(d).resolve(), "streamed"))
        res = {label: [] for label, _, _ in sides}
        for r in range(a.reps):
            for label, build, how in sides:
                x = one(build, how, src, tmp, a.dim, a.n)
                res[label].append(x)
                print(f"rep {r + 1} {label:>9}: {x['wall']:.2f} s wall, daemon cpu "
                      f"{x['daemon']:.2f} s, cp cpu {x['cp']:.2f} s, load {x['load']:.1f}",
                      file=sys.stderr, flush=True)
        mb = src.stat().st_size / 1e6
        print(f"cp of a {a.n} x {a.dim} <f4 .npy ({mb:.0f} MB) into ingest/, "
              f"median of {a.reps} (all runs), fsync'd")
        print(f"{'side':>9} {'wall s':>8} {'MB/s':>7} {'daemon cpu s':>13} {'cp cpu s':>9} "
              f"{'load':>5}  runs (wall)")
        for label, _, _ in sides:
            xs = res[label]
            med = {k: statistics.median(x[k] for x in xs) for k in ("wall", "daemon", "cp", "load")}
            print(f"{label:>9} {med['wall']:8.2f} {mb / med['wall']:7.0f} {med['daemon']:13.2f} "
                  f"{med['cp']:9.2f} {med['load']:5.1f}  "
                  + " ".join(f"{x['wall']:.2f}" for x in xs))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
