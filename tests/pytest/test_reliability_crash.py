"""Crash tests: SIGKILL the daemon (and `rvfctl compact`) at random moments.

A workload thread drives one mount with large ingests (fvecs copied into
ingest/), deletes (rm vectors/ID), kernel copies and compactions (written to
the mount's `control` file); after a seeded random delay the daemon gets
SIGKILL. Then the dead mount is cleared with `fusermount3 -uz` and the
store is mounted again at once (the dead daemon's lock must not block), and
the store must show a state the durability contract allows (rvffs(1),
DURABILITY):

  * every change made before a successful fsync (the workload fsyncs the
    mount's `vectors` directory after a random half of its operations) or
    a compaction is there, whole;
  * the changes after it may be lost (the daemon commits them every 5 s,
    at fsync and at unmount), but only as a tail: the store is the state
    after some prefix of the operations that returned, maybe plus the
    one in flight, never part of a file (a batch: all its rows or none);
  * `node tests/interop/ref.js dump STORE` (the reference) sees the same ids.

CI variant: 20 kills, 30-50 MB committed (plus what the kills interrupted).
RVF_LONG=1: 200 kills in epochs of 20 on fresh stores, batches of 10-50 MB,
hundreds of MB per store (see docs/testing.md). RVF_SEED=N changes the
schedule (each kill's plan and timing draw from RVF_SEED and its number).
"""

import os
import random
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from mountlib import abort_fuse_connection
from reliability_lib import (LONG, T_WITNESS, ctl, ctl_json,  # noqa: F401
                             fvecs_rows, locate_manifest, max_id_ever, ref_dump, ref_ids,
                             report, rvfctl_exe, sha256, walk, write_all)

# Once, in the pass against build: what it checks is the durability
# contract, the same code in both builds.  The sanitizers would add little:
# the killed daemons never reach LeakSanitizer, the remount after a SIGKILL
# with the stale lock left is test_mount_behaviour.py's (both passes), and
# opening torn tails - at every segment boundary and inside segments - is
# test_reliability_damaged.py's (under ASan too).  The plain build also
# runs at users' speed, so the kills land inside commits as they would
# there.
pytestmark = pytest.mark.normal_pass

DIM = 128
ROW_BYTES = 4 + 4 * DIM


def torn_bytes(path):
    """Bytes after the newest manifest that are not a complete compaction
    witness (which legitimately follows a compacted file's manifest)."""
    buf = Path(path).read_bytes()
    seg, _ = locate_manifest(buf)
    assert seg is not None, f"{path}: no manifest at all"
    tail = buf[seg.end:]
    segs = walk(tail)
    if segs and all(s.type == T_WITNESS for s in segs) and segs[-1].end == len(tail):
        return 0
    return len(tail)


class Model:
    """What the store must contain."""

    def __init__(self):
        self.live = set()          # ids certainly visible
        self.batches = {}          # tag -> (first id, rows)
        self.max_ever = None       # for the ids the store assigns to fvecs rows
        self.kernel = None         # sha256 of the committed kernel image
        self.kernel_len = None
        self.next_tag = 1
        self.committed_bytes = 0

    def first_id(self):
        return 0 if self.max_ever is None else self.max_ever + 1

    def snap(self):
        return (frozenset(self.live), dict(self.batches), self.max_ever, self.kernel,
                self.kernel_len, self.committed_bytes)

    def restore(self, snap):
        live, batches, self.max_ever, self.kernel, self.kernel_len, \
            self.committed_bytes = snap
        self.live, self.batches = set(live), dict(batches)


class Durability:
    """The states a crash may leave: the last durable one (fsync,
    compaction, clean unmount) and the state after each later operation."""

    def __init__(self, model):
        self.durable = model.snap()
        self.after = []

    def changed(self, model):
        self.after.append(model.snap())

    def synced(self, model):
        self.durable = model.snap()
        self.after = []


class Workload(threading.Thread):
    """Runs a plan of operations on the mount until done or the daemon
    dies; records successes in the model and the operation in flight."""

    def __init__(self, mnt, model, plan, tmp, rng, has_control, dur):
        super().__init__(daemon=True)
        self.mnt = Path(mnt)
        self.model = model
        self.dur = dur
        self.plan = plan
        self.tmp = Path(tmp)
        self.rng = rng
        self.has_control = has_control
        self.killing = False
        self.in_flight = None      # the operation the kill interrupted
        self.genuine_error = None  # a failure while the daemon was alive
        self.done_ops = []
        self.finished = None       # seconds the whole plan took, if it did

    def fail(self, op, what):
        if self.killing:
            self.in_flight = op
        else:
            self.genuine_error = f"{op[0]} failed while the daemon was alive: {what}"

    def run(self):
        t0 = time.monotonic()
        self._run()
        if len(self.done_ops) == len(self.plan) and self.in_flight is None:
            self.finished = time.monotonic() - t0

    def _run(self):
        m = self.model
        for kind, arg in self.plan:
            if self.killing:
                return
            if kind == "ingest":
                tag, rows, src = arg
                first = m.first_id()
                op = ("ingest", tag, first, rows)
                cp = subprocess.run(["cp", str(src), str(self.mnt / "ingest" / src.name)],
                                    capture_output=True)
                src.unlink()
                if cp.returncode != 0:
                    return self.fail(op, cp.stderr.decode(errors="replace"))
                m.batches[tag] = (first, rows)
                m.live.update(range(first, first + rows))
                m.max_ever = first + rows - 1
                m.committed_bytes += rows * ROW_BYTES
            elif kind == "delete":
                if not m.live:
                    self.done_ops.append(kind)
                    continue
                ids = self.rng.sample(sorted(m.live), min(arg, len(m.live)))
                for i in ids:
                    op = ("delete", i)
                    try:
                        os.unlink(self.mnt / "vectors" / str(i))
                    except OSError as e:
                        return self.fail(op, str(e))
                    m.live.discard(i)
            elif kind == "kernel":
                img = self.rng.randbytes(arg)
                op = ("kernel", sha256(img), len(img))
                try:
                    write_all(self.mnt / "kernel", img)
                except OSError as e:
                    return self.fail(op, str(e))
                m.kernel, m.kernel_len = op[1], op[2]
            elif kind == "compact":
                if not self.has_control:
                    self.done_ops.append(kind)
                    continue
                op = ("compact",)
                try:
                    write_all(self.mnt / "control", b"compact\n", os.O_WRONLY)
                except OSError as e:
                    return self.fail(op, str(e))
                # Deleted ids leave the deletion list: ids continue after
                # the largest live one.
                m.max_ever = max(m.live) if m.live else None
            self.done_ops.append(kind)
            if kind == "compact" and self.has_control:
                self.dur.synced(m)  # a compaction writes everything
            else:
                self.dur.changed(m)
            if self.rng.random() < 0.5:
                # fsync of a directory of the mount: every change so far
                # is durable once it returns
                try:
                    fd = os.open(self.mnt / "vectors", os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                except OSError as e:
                    if not self.killing:
                        self.genuine_error = f"fsync failed while the daemon was alive: {e}"
                    return
                self.dur.synced(m)


def read_vec(mnt, i):
    return [float(x) for x in (Path(mnt) / "vectors" / str(i)).read_text().split()]


def with_in_flight(model, snap, op):
    """The state snap with the interrupted operation op applied."""
    model.restore(snap)
    kind = op[0]
    if kind == "ingest":
        _, tag, first, rows = op
        model.batches[tag] = (first, rows)
        model.live.update(range(first, first + rows))
        model.max_ever = first + rows - 1
        model.committed_bytes += rows * ROW_BYTES
    elif kind == "delete":
        model.live.discard(op[1])
    elif kind == "kernel":
        model.kernel, model.kernel_len = op[1], op[2]
    return model.snap()


def verify(d, store, model, in_flight, stats, rng, dur=None):
    """The remounted store against the states the contract allows (the
    last durable one, then one per later operation, then the one in
    flight applied); the model becomes the state found. Fails the test
    when the store is none of them."""
    seen = set(d.vector_ids())
    try:
        kernel_now = sha256(d.read("kernel"))
    except FileNotFoundError:
        kernel_now = None
    if dur is None:
        dur = Durability(model)
    states = [("durable", dur.durable)] + \
        [(f"after operation {k + 1} since", sn) for k, sn in enumerate(dur.after)]
    if in_flight is not None:
        kind = in_flight[0]
        stats[f"in_flight_{kind}"] = stats.get(f"in_flight_{kind}", 0) + 1
        if kind == "ingest":
            _, tag, first, rows = in_flight
            have = len(seen.intersection(range(first, first + rows)))
            assert have in (0, rows), \
                f"PARTIAL BATCH: batch {tag} ({rows} rows from id {first}) is visible with {have} rows"
        states.append(("in flight", with_in_flight(model, states[-1][1], in_flight)))
    found = [(name, sn) for name, sn in states if sn[0] == seen and sn[3] == kernel_now]
    if not found:
        name, sn = states[0]
        missing, extra = sn[0] - seen, seen - sn[0]
        raise AssertionError(
            f"the store is in no state the contract allows: against the durable state "
            f"{len(missing)} ids missing (e.g. {sorted(missing)[:5]}), {len(extra)} "
            f"unexpected (e.g. {sorted(extra)[:5]}); {len(states)} states tried")
    name, sn = found[-1]
    model.restore(sn)
    if name == "in flight":
        stats["in_flight_committed"] = stats.get("in_flight_committed", 0) + 1
    elif name != "durable":
        stats["unsynced_kept"] = stats.get("unsynced_kept", 0) + 1
    lost = len(states) - 1 - [n for n, _ in states].index(name)
    stats["unsynced_lost"] = stats.get("unsynced_lost", 0) + lost
    # Ids the store assigns next continue after the largest it ever used
    # (an interrupted compaction may have dropped the deletion list).
    model.max_ever = max_id_ever(store, model.live)
    missing = model.live - seen
    extra = seen - model.live
    assert not missing and not extra, \
        (f"the store is not the last committed state: {len(missing)} committed ids missing "
         f"(e.g. {sorted(missing)[:5]}), {len(extra)} unexpected ids (e.g. {sorted(extra)[:5]})")
    st = d.status()
    assert int(st["vectors"]) == len(model.live), st
    # Content: first and last rows of a sample of batches.
    tags = sorted(model.batches)
    for tag in rng.sample(tags, min(6, len(tags))):
        first, rows = model.batches[tag]
        for k in (0, rows - 1):
            if first + k in model.live:
                v = read_vec(d.mnt, first + k)
                assert v[0] == tag and v[1] == k and len(v) == DIM, \
                    f"vectors/{first + k} is not row {k} of batch {tag}: {v[:4]}"
    # Kernel.
    try:
        kimg = d.read("kernel")
    except FileNotFoundError:
        kimg = None
    assert (sha256(kimg) if kimg is not None else None) == model.kernel
    # The reference sees the same.
    dump = ref_dump(store)
    assert dump.get("openError") is None, f"the reference cannot open the store: {dump}"
    rids = ref_ids(dump)
    assert rids == model.live, \
        (f"the reference sees other ids: {len(model.live - rids)} missing, "
         f"{len(rids - model.live)} extra")
    if model.kernel is not None:
        assert dump.get("kernel") and dump["kernel"].get("extractedLen") == model.kernel_len, \
            dump.get("kernel")
    dur.synced(model)  # what the store holds now is durable


def make_plan(rng, long, model, tmp):
    """A few operations, mostly ingests (their files made beforehand, so
    that the workload spends its time in the operations)."""
    plan = []
    lo, hi = (20000, 100000) if long else (1000, 8000)
    for _ in range(rng.randint(2, 5)):
        r = rng.random()
        if r < 0.55:
            rows = rng.randint(lo, hi)
            tag = model.next_tag
            model.next_tag += 1
            src = Path(tmp) / f"batch{tag}.fvecs"
            src.write_bytes(fvecs_rows(tag, 0, rows, DIM))
            plan.append(("ingest", (tag, rows, src)))
        elif r < 0.75:
            plan.append(("delete", rng.randint(1, 12)))
        elif r < 0.88:
            plan.append(("kernel", rng.randint(4096, 600000)))
        else:
            plan.append(("compact", None))
    return plan


def finish_epoch(d, store, model, stats, rng, dur):
    """Mount once more, check, unmount cleanly; our read-only open and the
    reference agree, and the file compacts to the same vectors."""
    d.start()
    verify(d, store, model, stats.pop("_in_flight", None), stats, rng, dur)
    assert d.unmount() == 0, d.log_text()
    rc, js = ctl_json("inspect", store)
    assert rc == 0 and {int(i) for i, _ in js["live"]} == model.live
    ctl("compact", store)
    rc, js2 = ctl_json("inspect", store)
    assert js2["vectorsDigest"] == js["vectorsDigest"]
    assert ref_ids(ref_dump(store)) == model.live
    if LONG:
        store.unlink()  # hundreds of MB each


def test_daemon_sigkill_keeps_last_committed_state(tmp_path, mount):
    seed = int(os.environ.get("RVF_SEED", "20240611"))
    kills = 200 if LONG else 20
    # The long run starts a fresh store every 20 kills, so that a store
    # stays a few hundred MB (checking one means listing every id).
    epoch_len = 20
    stats = {"kills": 0, "torn_tails": 0, "compact_tmp_left": 0, "rvfctl_compactions": 0,
             "committed_MB": 0.0, "batches": 0}
    has_control = None
    t0 = time.monotonic()
    # Estimated cost of a plan (scaled by what plans really took), to aim
    # the kills inside the operations.
    speed, scale = 60e6, 1.0
    d = store = model = mnt = None
    for it in range(kills):
        rng = random.Random(f"{seed}-{it}")  # reproducible whatever the timing
        if it % epoch_len == 0:
            if it:
                finish_epoch(d, store, model, stats, rng, dur)
                stats["committed_MB"] += model.committed_bytes / 1e6
                stats["batches"] += len(model.batches)
            store = tmp_path / f"crash{it // epoch_len}.rvf"
            ctl("create", store, "--dim", DIM)
            mnt = tmp_path / f"mnt{it // epoch_len}"
            d = mount.daemon(store, mnt)
            model = Model()
            dur = Durability(model)
        d.start()
        if has_control is None:
            has_control = (mnt / "control").exists()
            if not has_control:
                print("SKIPPED PART: the mount has no `control` file yet: "
                      "compactions only through rvfctl on the unmounted store")
        in_flight = stats.pop("_in_flight", None)
        verify(d, store, model, in_flight, stats, rng, dur)
        plan = make_plan(rng, LONG, model, tmp_path)
        est = 0.05 + sum(a[1] * ROW_BYTES / speed if k == "ingest" else
                         0.02 if k == "delete" else 0.05 if k == "kernel" else
                         0.1 + len(model.live) * ROW_BYTES / 400e6
                         for k, a in plan)
        est0, est = est, est * scale
        # Odd kills aim at a commit: they wait for the store file to grow
        # (an ingest streams its rows there) and strike a few ms later,
        # inside the data write, the fsyncs or the manifest.
        aimed = it % 2 == 1 and any(k == "ingest" for k, _ in plan)
        delay = rng.uniform(0.0, est)
        size0 = store.stat().st_size
        w = Workload(mnt, model, plan, tmp_path, rng, has_control, dur)
        w.start()
        if aimed:
            end = time.monotonic() + est * 3 + 5
            while (store.stat().st_size == size0 and w.is_alive()
                   and time.monotonic() < end):
                time.sleep(0.0005)
            time.sleep(rng.uniform(0, 0.008))
        else:
            w.join(delay)
        w.killing = True
        d.kill9()
        stats["kills"] += 1
        w.join(120)
        if w.is_alive():
            print("workload still blocked after the kill: aborting the connection again")
            abort_fuse_connection(mnt)
            w.join(30)
        assert not w.is_alive(), "the workload hangs after the daemon died"
        assert w.genuine_error is None, w.genuine_error
        if w.finished is not None:
            # The kill came after the plan: aim the next ones better.
            scale = 0.7 * scale + 0.3 * max(0.2, min(5.0, w.finished / est0))
        for k, a in plan:
            if k == "ingest":
                a[2].unlink(missing_ok=True)
        stats["_in_flight"] = w.in_flight
        assert Path(str(store) + ".lock").exists(), \
            "no lock file after SIGKILL (the stale-lock path is not tested)"
        if torn_bytes(store):
            stats["torn_tails"] += 1
        if list(tmp_path.glob("*.compact.tmp")):
            stats["compact_tmp_left"] += 1
        # Now and then compact the unmounted store with rvfctl (it breaks
        # the dead daemon's lock too) - only when nothing is uncertain.
        if it % 5 == 4 and w.in_flight is None and not dur.after:
            ctl("compact", store)
            stats["rvfctl_compactions"] += 1
            # only the durable state is left to compact
            model.restore(dur.durable)
            model.max_ever = max(model.live) if model.live else None
            dur.synced(model)
    finish_epoch(d, store, model, stats, rng, dur)
    stats["committed_MB"] = round(stats["committed_MB"] + model.committed_bytes / 1e6, 1)
    stats["batches"] += len(model.batches)
    report("crash-daemon", seconds=round(time.monotonic() - t0, 1),
           live_vectors_last_store=len(model.live), **stats)
    assert stats["kills"] == kills


def test_rvfctl_compact_sigkill(tmp_path):
    """`rvfctl compact` killed at random moments on an unmounted store: the
    store opens with the same content every time (a leftover .compact.tmp
    and the dead process's lock change nothing), and a final compaction
    completes."""
    rng = random.Random(int(os.environ.get("RVF_SEED", "777")))
    kills = 60 if LONG else 12
    rows = 200000 if LONG else 40000   # dim 128: ~100 MB / ~20 MB
    store = tmp_path / "c.rvf"
    ctl("create", store, "--dim", DIM)
    for b in range(4):
        src = tmp_path / f"b{b}.fvecs"
        src.write_bytes(fvecs_rows(b + 1, 0, rows // 4, DIM))
        ctl("ingest", store, src)
        src.unlink()
    dead = list(range(0, rows, 7))
    for k in range(0, len(dead), 5000):  # an argument is at most 128 KiB
        ctl("delete", store, "--ids", ",".join(str(i) for i in dead[k:k + 5000]))
    rc, base = ctl_json("inspect", store)
    want_ids = {int(i) for i, _ in base["live"]}
    assert rc == 0 and len(want_ids) == rows - len(range(0, rows, 7))
    # How long a compaction takes here (it is not kept: a copy is compacted).
    probe = tmp_path / "probe.rvf"
    probe.write_bytes(store.read_bytes())
    t = time.monotonic()
    ctl("compact", probe)
    full = time.monotonic() - t
    probe.unlink()
    exe = str(rvfctl_exe())
    tmps = 0
    for k in range(kills):
        p = subprocess.Popen([exe, "compact", str(store)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        time.sleep(rng.uniform(0, full * 1.1))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(60)
        p.stderr.close()
        if list(tmp_path.glob("*.compact.tmp")):
            tmps += 1
        rc, now = ctl_json("inspect", store)
        assert rc == 0, now
        assert now["vectorsDigest"] == base["vectorsDigest"], \
            f"kill {k}: the store shows other vectors after a killed compaction"
        assert {int(i) for i, _ in now["live"]} == want_ids
    dump = ref_dump(store)
    assert dump.get("openError") is None and ref_ids(dump) == want_ids
    ctl("compact", store)
    rc, now = ctl_json("inspect", store)
    assert now["vectorsDigest"] == base["vectorsDigest"] and now["deleted"] == 0
    assert not Path(str(store) + ".lock").exists()
    assert ref_ids(ref_dump(store)) == want_ids
    report("crash-rvfctl-compact", kills=kills, leftover_tmp_seen=tmps,
           compaction_seconds=round(full, 2), rows=rows)
