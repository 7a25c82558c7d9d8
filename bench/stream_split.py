#!/usr/bin/python3
"""bench/stream_split.py: where a streamed ingest's time goes.

    /usr/bin/python3 bench/stream_split.py [--build DIR]... [--reps N] [--n ROWS]

For each build given (default: build), in turn, REPS times: `cp` of a
.fvecs file (ROWS x 128, made once by bench_data) to a plain directory,
then fsync; and `cp` of it into a fresh mount's ingest/, then fsync of
ingest/.  Prints each side split into the copy and the fsync, the daemon's
CPU, and the dirty page cache left when the copy ended (a low figure with
a long fsync is the device's cache flush, not writeback).  The ratio is
plain time / rvffs time, as bench/run.sh's fvecs_vs_cp row.  Needs root
(FUSE), an idle machine for meaningful times.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path


def fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def dirty_mb():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Dirty:"):
            return int(line.split()[1]) // 1024
    return -1


def one_pair(build, tmp, src):
    plain = tmp / "plain"
    shutil.rmtree(plain, ignore_errors=True)
    plain.mkdir()
    t0 = time.perf_counter()
    subprocess.run(["cp", src, plain / "b.fvecs"], check=True)
    t1 = time.perf_counter()
    fsync(plain / "b.fvecs")
    t2 = time.perf_counter()
    shutil.rmtree(plain)
    store, mnt = tmp / "s.rvf", tmp / "mnt"
    for p in (store, Path(str(store) + ".lock")):
        p.unlink(missing_ok=True)
    mnt.mkdir(exist_ok=True)
    subprocess.run([build / "ctl/rvfctl", "create", store, "--dim", "128", "--metric", "l2"],
                   check=True, stdout=subprocess.DEVNULL)
    subprocess.run([build / "fs/rvffs", store, mnt], check=True)
    try:
        pid = int(subprocess.run(["pgrep", "-n", "-f", f"rvffs {store}"], check=True,
                                 capture_output=True, text=True).stdout)
        c0 = cpu_seconds(pid)
        t3 = time.perf_counter()
        subprocess.run(["cp", src, mnt / "ingest/b.fvecs"], check=True)
        t4 = time.perf_counter()
        dirty = dirty_mb()
        fsync(mnt / "ingest")
        t5 = time.perf_counter()
        cpu = cpu_seconds(pid) - c0
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=True)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.01)
    store.unlink()
    return dict(plain=t2 - t0, plain_cp=t1 - t0, plain_fsync=t2 - t1, rvffs=t5 - t3,
                rvffs_cp=t4 - t3, rvffs_fsync=t5 - t4, cpu=cpu, dirty=dirty)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", action="append", type=Path)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--n", type=int, default=1_000_000)
    a = ap.parse_args()
    builds = [b.resolve() for b in (a.build or [Path("build")])]
    tmp = Path(tempfile.mkdtemp(prefix="rvffs-split-", dir=os.environ.get("TMPDIR", "/tmp")))
    try:
        subprocess.run([builds[0] / "bench/bench_data", "--n", str(a.n), "--dim", "128",
                        "--queries", "1", "--k", "1", "--seed", "1", "--out", tmp / "data",
                        "--formats", "fvecs"], check=True, stdout=subprocess.DEVNULL)
        src = tmp / "data/base.fvecs"
        runs = {b: [] for b in builds}
        for _ in range(a.reps):
            for b in builds:
                r = one_pair(b, tmp, src)
                runs[b].append(r)
                print(f"{b}: plain {r['plain']:.3f} s (cp {r['plain_cp']:.3f} + fsync "
                      f"{r['plain_fsync']:.3f}); rvffs {r['rvffs']:.3f} s (cp {r['rvffs_cp']:.3f} "
                      f"+ fsync {r['rvffs_fsync']:.3f}), daemon cpu {r['cpu']:.2f} s, dirty at "
                      f"the copy's end {r['dirty']} MB; ratio {r['plain'] / r['rvffs']:.2f}",
                      flush=True)
        for b, rs in runs.items():
            med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
            ratios = [r["plain"] / r["rvffs"] for r in rs]
            print(f"{b} medians: plain {med['plain']:.3f}, rvffs {med['rvffs']:.3f} (cp "
                  f"{med['rvffs_cp']:.3f} + fsync {med['rvffs_fsync']:.3f}); ratio median "
                  f"{statistics.median(ratios):.2f}, worst {min(ratios):.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
