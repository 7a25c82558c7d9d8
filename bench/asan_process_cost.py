#!/usr/bin/python3
"""The CPU cost of one process of a build, per kind of process the tests
start, for comparing builds (e.g. an ASan build before and after a change
to its start-up or exit, see tests/sanitizer/lsan_prefault.c):

    /usr/bin/python3 bench/asan_process_cost.py [--reps N] BUILD [BUILD...]

Kinds: `rvfctl --json inspect` of a corpus file, `rvfctl create` + `ingest`
of 200 vectors, an `rvffs -f` mount answering once and unmounted, the same
mount with 20 small .fvecs files copied into ingest/ (20 streams, 20
commits: `mount+20cp`), `rvfctl compact` of a copy of a small store with a
deletion, and a unit test (test_dtype).  The builds take turns, run by run, so a change in
the machine's load falls on all of them.  Per build and kind: the mean and
median CPU time (user + sys of the process and its children, from wait4)
and the minor page faults.  ASAN_OPTIONS as in tests/run-all.sh (LeakSanitizer
on) unless set.  Standard library only; run on an idle machine for figures
to compare across runs, the load average is printed with them."""
import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS_FILE = Path("/work/shared/corpus/reference/g16_kernel.rvf")
FUSERMOUNT = shutil.which("fusermount3") or "fusermount3"


def env():
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    e["LC_ALL"] = "C"
    return e


def run(cmd, tmp):
    """Runs cmd; returns (CPU seconds, minor faults) of it and its children."""
    with open(tmp / "out", "wb") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=env())
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"{cmd} exited {p.returncode}:\n{(tmp / 'out').read_text(errors='replace')}")
    return ru.ru_utime + ru.ru_stime, ru.ru_minflt


def kind_inspect(build, tmp, src):
    return run([build / "ctl/rvfctl", "--json", "inspect", src], tmp)


def kind_create_ingest(build, tmp, fvecs):
    store = tmp / "s.rvf"
    store.unlink(missing_ok=True)
    c1, f1 = run([build / "ctl/rvfctl", "create", store, "--dim", "16"], tmp)
    c2, f2 = run([build / "ctl/rvfctl", "ingest", store, fvecs], tmp)
    return c1 + c2, f1 + f2


def kind_mount(build, tmp, store, work=None):
    """rvffs -f STORE MNT until MNT/status answers, then fusermount3 -u: the
    daemon's own CPU (its start, one lookup, its exit and leak check)."""
    mnt = tmp / "mnt"
    mnt.mkdir(exist_ok=True)
    with open(tmp / "log", "wb") as log:
        p = subprocess.Popen([build / "fs/rvffs", "-f", store, mnt], stdout=log,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env())
    try:
        end = time.monotonic() + 30
        while not (mnt / "status").exists():
            if p.poll() is not None or time.monotonic() > end:
                sys.exit(f"rvffs did not mount:\n{(tmp / 'log').read_text(errors='replace')}")
            time.sleep(0.005)
        if work:
            work(mnt)
    finally:
        subprocess.run([FUSERMOUNT, "-u", mnt], check=False)
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"rvffs exited {status}:\n{(tmp / 'log').read_text(errors='replace')}")
    return ru.ru_utime + ru.ru_stime, ru.ru_minflt


def kind_mount_cp(build, tmp, store):
    """kind_mount on a copy of STORE, with 20 small .fvecs files copied
    into ingest/ (each a stream and a commit) before the unmount."""
    work = tmp / "cp.rvf"
    shutil.copyfile(store, work)
    small = tmp / "small.fvecs"
    if not small.exists():
        with open(small, "wb") as f:
            for i in range(20):
                f.write(struct.pack("<i16f", 16, *[(i + j) % 7 / 7.0 for j in range(16)]))

    def copies(mnt):
        for i in range(20):
            shutil.copyfile(small, mnt / "ingest" / f"s{i}.fvecs")
    return kind_mount(build, tmp, work, copies)


def kind_compact(build, tmp, store):
    work = tmp / "c.rvf"
    shutil.copyfile(store, work)
    run([build / "ctl/rvfctl", "delete", work, "--ids", "3"], tmp)
    return run([build / "ctl/rvfctl", "compact", work], tmp)


def kind_unit(build, tmp, _):
    return run([build / "tests/unit/test_dtype"], tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--kinds", default="inspect,create+ingest,mount,mount+20cp,compact,unit")
    ap.add_argument("builds", nargs="+", type=Path)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="asan-cost-"))
    try:
        fvecs = tmp / "v.fvecs"
        with open(fvecs, "wb") as f:
            for i in range(200):
                f.write(struct.pack("<i16f", 16, *[(i * 16 + j) % 97 / 97.0 for j in range(16)]))
        store = tmp / "m.rvf"
        run([a.builds[0] / "ctl/rvfctl", "create", store, "--dim", "16"], tmp)
        run([a.builds[0] / "ctl/rvfctl", "ingest", store, fvecs], tmp)
        kinds = {"inspect": (kind_inspect, CORPUS_FILE if CORPUS_FILE.exists() else store),
                 "create+ingest": (kind_create_ingest, fvecs),
                 "mount": (kind_mount, store),
                 "mount+20cp": (kind_mount_cp, store),
                 "compact": (kind_compact, store),
                 "unit": (kind_unit, None)}
        chosen = a.kinds.split(",")
        res = {(b, k): [] for b in a.builds for k in chosen}
        for _ in range(a.reps):
            for k in chosen:
                fn, arg = kinds[k]
                for b in a.builds:
                    res[(b, k)].append(fn(b, tmp, arg))
        print(f"{a.reps} runs each; load average {os.getloadavg()[0]:.1f}")
        for k in chosen:
            for b in a.builds:
                r = res[(b, k)]
                ms = [c * 1000 for c, _ in r]
                print(f"{k:14s} {str(b):28s} CPU {statistics.mean(ms):6.1f} ms "
                      f"(median {statistics.median(ms):6.1f})  "
                      f"faults {statistics.mean(f for _, f in r):6.0f}")
    finally:
        mnt = tmp / "mnt"
        if os.path.ismount(mnt):
            subprocess.run([FUSERMOUNT, "-uz", mnt], check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
