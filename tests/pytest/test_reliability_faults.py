"""Fault injection through the tools: RVF_FAULT="op:n:errno" (engine/io.c)
on the rvfctl process and on the daemon.

rvfctl: every writing command, with the n-th write / fsync / rename failing
(n = 1, 2, ... until the command no longer reaches the fault): the command
exits 4 with one line naming the file and the OS error, the store is
unchanged (same vectors, hashes verify, no lock left), and the same command
succeeds once the fault is gone.  (When the store's bytes are the base
store's and no file was added, "unchanged" is that byte comparison: the
base store's vectors and hashes were checked once.)

rvffs: the daemon started with RVF_FAULT in its environment: exactly the
operation that hits the fault fails with the injected errno (cp into
ingest/ -> EIO / ENOSPC, rm vectors/ID, compaction through `control`), the
`errors` file says why, the mount keeps working, and after the unmount the
store holds exactly what succeeded (ours and the reference's view).

The C side of the same (every operation, every call) is
tests/unit/test_faults.c.
"""

import concurrent.futures
import errno
import json
import os
import shutil
from pathlib import Path

import pytest

from reliability_lib import (csv_rows, ctl, ctl_json, ref_dump, ref_ids,  # noqa: F401
                             report, write_all)

# Once, in the pass against build-asan: what a fault reaches is the same
# code in both builds, and there the error paths are also checked for
# memory errors and leaks (as tests/unit/test_faults.c, meson suite slow).
pytestmark = pytest.mark.sanitizer_pass

DIM = 8


def digest(store):
    rc, js = ctl_json("inspect", store)
    assert rc == 0, f"{store} does not open after a fault: {js}"
    return js["vectorsDigest"], {int(i) for i, _ in js["live"]}, js.get("kernel"), js["deleted"]


def digests(stores):
    """[digest(s) for s in stores] from one `rvfctl --json inspect STORE...`."""
    if not stores:
        return []
    cp = ctl("--json", "inspect", *stores, check=False)
    docs = [json.loads(ln) for ln in cp.stdout.decode().splitlines() if ln.strip()]
    assert cp.returncode == 0 and len(docs) == len(stores), \
        (cp.stdout + cp.stderr).decode(errors="replace")
    out = []
    for st, js in zip(stores, docs):
        assert js.get("store") == str(st) and js.get("openError") is None, \
            f"{st} does not open after a fault: {js}"
        out.append((js["vectorsDigest"], {int(i) for i, _ in js["live"]}, js.get("kernel"),
                    js["deleted"]))
    return out


def verify_ok(*stores):
    """`rvfctl verify STORE...`: every hash and chain of each checks out."""
    cp = ctl("verify", *stores, check=False)
    assert cp.returncode == 0, (cp.stdout + cp.stderr).decode(errors="replace")


def live_ids_of(stores):
    """{store: live ids} from one `rvfctl --json inspect STORE...` (one
    document a line, in order); each store must open."""
    cp = ctl("--json", "inspect", *stores, check=False)
    docs = [json.loads(ln) for ln in cp.stdout.decode().splitlines() if ln.strip()]
    assert len(docs) == len(stores), (cp.stdout + cp.stderr).decode(errors="replace")
    out = {}
    for st, js in zip(stores, docs):
        assert js.get("store") == str(st), (st, js.get("store"))
        assert js.get("openError") is None, f"{st} does not open after a fault: {js}"
        out[st] = {int(i) for i, _ in js["live"]}
    return out


def make_base(tmp, name="base.rvf"):
    p = Path(tmp) / name
    ctl("create", p, "--dim", DIM)
    src = Path(tmp) / "rows.csv"
    src.write_text(csv_rows(range(1, 301), DIM, tag=1))
    ctl("ingest", p, src)
    ctl("delete", p, "--ids", "5,6,7")
    img = Path(tmp) / "kernel.img"
    img.write_bytes(bytes(range(256)) * 40)
    ctl("embed-kernel", p, img)
    return p


# The writing commands of rvfctl: name -> (its argv for store s in the test
# directory t, whether it makes child.rvf).  One test per command, so that
# pytest-xdist spreads them over its workers.
COMMANDS = {
    "ingest": (lambda s, t: ["ingest", s, t / "more.csv"], False),
    "delete": (lambda s, t: ["delete", s, "--ids", "10,11,12"], False),
    "compact": (lambda s, t: ["compact", s], False),
    "embed-kernel": (lambda s, t: ["embed-kernel", s, t / "k2.img"], False),
    "embed-ebpf": (lambda s, t: ["embed-ebpf", s, t / "prog.bin"], False),
    "remove-kernel": (lambda s, t: ["remove-kernel", s], False),
    "derive": (lambda s, t: ["derive", s, t / "child.rvf"], True),
    "branch": (lambda s, t: ["branch", s, t / "child.rvf"], True),
    "create": (lambda s, t: ["create", t / "child.rvf", "--dim", 4], True),
}


def command_inputs(tmp):
    t = Path(tmp)
    (t / "more.csv").write_text(csv_rows(range(1000, 1600), DIM, tag=2))
    (t / "k2.img").write_bytes(os.urandom(20000))
    (t / "prog.bin").write_bytes(bytes(range(64)))


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    """The base store's bytes, digest and verify, made once per pytest
    process: the commands only ever run on copies of its bytes (each test
    writes them to its own work.rvf), so every test starts from the same
    store as when each made its own (4 rvfctl, an inspect and a verify)."""
    base = make_base(tmp_path_factory.mktemp("faults-base"))
    before = digest(base)
    verify_ok(base)
    return base.read_bytes(), before


def fault_points(argv, work, base_bytes, made):
    """(op -> calls) of the command run once without a fault, on a fresh
    copy of the base store, with RVF_FAULT=count (engine/io.c: it counts
    the calls a spec's n counts, fails none, and prints the counts at
    exit); the store (or the made file) is left as the command made it."""
    work.write_bytes(base_bytes)
    if made:
        made.unlink(missing_ok=True)
    cp = ctl(*argv(work), env_extra={"RVF_FAULT": "count"})
    line = [ln for ln in cp.stderr.decode().splitlines() if ln.startswith("rvf-fault-calls:")]
    assert len(line) == 1, f"RVF_FAULT=count: no count line: {cp.stderr!r}"
    return {k: int(v) for k, v in (w.split("=") for w in line[0].split()[1:])}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_rvfctl_under_faults(tmp_path, name, base_store):
    base_bytes, before = base_store
    command_inputs(tmp_path)
    work = tmp_path / "work.rvf"
    make, makes_file = COMMANDS[name]
    argv = lambda s: make(s, tmp_path)  # noqa: E731
    made = tmp_path / "child.rvf" if makes_file else None
    n_faults = 0
    n_runs = 0
    n_untouched = 0
    ref_checked = False
    kinds_hit = set()
    kinds = [("write", "5", errno.EIO), ("write", "short", errno.ENOSPC),
             ("write", "28", errno.ENOSPC), ("fsync", "5", errno.EIO),
             ("rename", "5", errno.EIO)]
    # The result without a fault, and how many calls of each op the command
    # makes.  n = 1 .. calls[op] is every call a fault can hit: the count is
    # the counter RVF_FAULT's n is compared with, so n = calls[op] + 1 is
    # this fault-free run again (before: runs until two in a row succeeded,
    # each with an inspect; now none of those, and no guess).
    calls = fault_points(argv, work, base_bytes, made)
    after = digest(made or work)
    inputs = sorted(os.listdir(tmp_path))

    def faulted_run(k, op, what, n):
        """The command with one fault, in a directory of its own (a copy of
        the test directory before the command); what it left is checked
        below, in order.  Two at a time: an rvfctl run waits on fsync about
        as long as it computes."""
        d = tmp_path / f"run{k}"
        d.mkdir()
        for f in inputs:
            if f not in ("work.rvf", "child.rvf"):
                shutil.copyfile(tmp_path / f, d / f)
        w = d / "work.rvf"
        w.write_bytes(base_bytes)
        size0 = w.stat().st_size
        names0 = sorted(os.listdir(d))
        cp = ctl("--json", *make(w, d), check=False, env_extra={"RVF_FAULT": f"{op}:{n}:{what}"})
        return d, size0, names0, cp

    runs = [(op, what, want, n) for op, what, want in kinds for n in range(1, calls[op] + 1)]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        done = [pool.submit(faulted_run, k, op, what, n) for k, (op, what, want, n) in enumerate(runs)]
        results = [f.result() for f in done]
    retried = False
    succeeded = []  # (where, the file the command made or changed)
    for (op, what, want, n), (d, size0, names0, cp) in zip(runs, results):
        work = d / "work.rvf"
        made = d / "child.rvf" if makes_file else None
        spec = f"{op}:{n}:{what}"
        n_runs += 1
        where = f"rvfctl {name} with RVF_FAULT={spec}"
        assert not Path(str(work) + ".lock").exists(), f"{where}: lock left behind"
        assert not list(d.glob("*.compact.tmp")), f"{where}: temp file left"
        if cp.returncode == 0:
            # The failed call was one the command may do without: the
            # result is checked below, with the others (one inspect).
            succeeded.append((where, made or work))
            continue
        n_faults += 1
        kinds_hit.add(f"{op}:{what}")
        err = cp.stderr.decode(errors="replace")
        assert cp.returncode == 4, f"{where}: exit {cp.returncode} (want 4, I/O error): {err}"
        assert os.strerror(want) in err, f"{where}: the message does not say why: {err}"
        assert ("work.rvf" in err or "child.rvf" in err), f"{where}: no file named: {err}"
        assert len(err.strip().splitlines()) == 1, f"{where}: not one line: {err}"
        # The store is unchanged and still good; a made file is gone.
        if made:
            assert not made.exists(), f"{where}: a half-made {made.name} is left"
            assert not Path(str(made) + ".lock").exists()
        else:
            assert work.stat().st_size == size0, f"{where}: bytes left appended"
        # The same bytes as the base store and no new file in the
        # directory: then the store is the base store, whose digest
        # and verify were checked above (both read nothing but the
        # file), and the retry below starts from what the run without
        # a fault started from, whatever the fault was: once per
        # command is enough.  (ASan processes were most of this
        # test's time.)
        untouched = work.read_bytes() == base_bytes and sorted(os.listdir(d)) == names0
        if untouched:
            n_untouched += 1
        else:
            assert digest(work) == before, f"{where}: the store changed"
            verify_ok(work)
        if not ref_checked:
            # The reference reads the failed-on store the same.
            ref_checked = True
            assert ref_ids(ref_dump(work)) == before[1], where
        if untouched and retried:
            continue
        retried = True
        # Once the fault is gone, the same command works.
        ctl(*make(work, d))
        assert digest(made or work) == after, f"{where}: the retry differs"
    # The runs that succeeded despite their fault (nothing touched their
    # directories since) made the same result as the run without one.
    for (where, _), got in zip(succeeded, digests([f for _, f in succeeded])):
        assert got == after, f"{where}: succeeded with another result"
    report("faults-rvfctl", command=name, runs=n_runs, faults_injected=n_faults,
           store_untouched=n_untouched, **{f"calls_{k}": v for k, v in calls.items()})
    # Every writing command writes and syncs (renaming is for those that
    # make a file), so every write and fsync fault reached it.
    assert ref_checked
    assert {"write:5", "write:short", "write:28", "fsync:5"} <= kinds_hit, kinds_hit


def ingest_file(mnt, name, ids, tag):
    """Copies a CSV into ingest/ (Python I/O, to see the errno)."""
    write_all(Path(mnt) / "ingest" / name, csv_rows(ids, DIM, tag=tag).encode())


@pytest.mark.parametrize("spec,want", [
    ("fsync:{n}:5", errno.EIO),
    ("write:{n}:short", errno.ENOSPC),
    ("write:{n}:28", errno.ENOSPC),
])
def test_daemon_ingest_fault(tmp_path, mount, spec, want):
    """The daemon with a fault armed for its n-th call: exactly one of a
    series of ingests fails, with the errno; the rest is committed."""
    injected = 0
    checked = {}  # store -> the ids it must hold
    empty = tmp_path / "empty.rvf"
    ctl("create", empty, "--dim", DIM)
    for n in range(1, 9):
        store = tmp_path / f"s{n}.rvf"
        # A copy of one new store, not a `create` each: the daemon under
        # the fault starts from the same bytes (8 ASan processes fewer).
        store.write_bytes(empty.read_bytes())
        s = spec.format(n=n)
        d = mount.daemon(store, tmp_path / f"m{n}", opts=("sync",), env_extra={"RVF_FAULT": s})
        res = d.start(expect_fail=True)
        if res is not None:
            # The fault hit the lock file of the mount: refused cleanly.
            rc, log = res
            assert rc != 0 and "lock" in log and os.strerror(want) in log, log
            assert len([ln for ln in log.splitlines() if "cannot mount" in ln]) == 1, log
            injected += 1
            continue
        ok, failed = set(), []
        for k in range(4):
            ids = range(100 * k + 1, 100 * k + 51)
            try:
                ingest_file(d.mnt, f"b{k}.csv", ids, k)
                ok.update(ids)
            except OSError as e:
                failed.append((k, e.errno))
        assert len(failed) == 1, f"RVF_FAULT={s}: failures {failed} (want exactly one)"
        assert failed[0][1] == want, f"RVF_FAULT={s}: errno {failed[0][1]}, want {want}"
        injected += 1
        k = failed[0][0]
        errs = d.errors()
        assert f"b{k}.csv" in errs and os.strerror(want) in errs, errs
        assert set(d.vector_ids()) == ok
        assert not os.listdir(d.mnt / "ingest"), "the failed file stays in ingest/"
        # Still working after the fault.
        ingest_file(d.mnt, "after.csv", range(900, 910), 9)
        ok.update(range(900, 910))
        assert set(d.vector_ids()) == ok
        assert d.unmount() == 0
        assert ref_ids(ref_dump(store)) == ok
        checked[store] = ok
    # Each store as the daemon left it (nothing touches them after their
    # unmount): it opens with exactly what succeeded, and verifies (one
    # inspect and one verify for them all).
    assert live_ids_of(list(checked)) == checked
    verify_ok(*checked)
    report("faults-daemon-ingest", spec=spec, faults_injected=injected)


def test_daemon_delete_compact_kernel_faults(tmp_path, mount, base_store):
    """rm vectors/ID, the kernel file and `compact` in control under a
    fault: the errno reaches the caller, nothing changes, it works after."""
    store = tmp_path / "base.rvf"
    base_bytes, after = base_store   # make_base's store, its digest checked
    store.write_bytes(base_bytes)
    has_control = True
    cases = [("rm", "fsync:2:5", errno.EIO), ("rm", "write:2:28", errno.ENOSPC),
             ("kernel", "write:3:5", errno.EIO), ("kernel", "fsync:2:5", errno.EIO),
             ("compact", "rename:1:5", errno.EIO), ("compact", "fsync:2:5", errno.EIO),
             ("compact", "write:2:short", errno.ENOSPC)]
    done = 0
    for i, (what, spec, want) in enumerate(cases):
        # what the last case left (read-only checks since), or the base's
        before = after if after is not None else digest(store)
        after = None
        d = mount.daemon(store, tmp_path / f"m{i}", opts=("sync",), env_extra={"RVF_FAULT": spec})
        d.start()
        if what == "compact" and not (d.mnt / "control").exists():
            has_control = False
            d.unmount()
            continue
        vid = 20 + i
        path = {"rm": d.mnt / "vectors" / str(vid), "kernel": d.mnt / "kernel",
                "compact": d.mnt / "control"}[what]
        with pytest.raises(OSError) as ei:
            if what == "rm":
                os.unlink(path)
            elif what == "kernel":
                write_all(path, os.urandom(5000))
            else:
                write_all(path, b"compact\n", os.O_WRONLY)
        assert ei.value.errno == want, f"{what} under {spec}: {ei.value}"
        assert os.strerror(want) in d.errors()
        done += 1
        # The fault fired once: now the same works.
        if what == "rm":
            assert vid in d.vector_ids()
            os.unlink(path)
        elif what == "kernel":
            write_all(path, b"k" * 3000)
        else:
            write_all(path, b"compact\n", os.O_WRONLY)
        assert d.unmount() == 0
        after = digest(store)
        if what == "rm":
            assert after[1] == before[1] - {vid}
        else:
            assert after[1] == before[1]
        assert not list(tmp_path.glob("*.compact.tmp"))
        assert ref_ids(ref_dump(store)) == after[1]
        verify_ok(store)
    if not has_control:
        print("SKIPPED PART: no `control` file in the mount: compaction faults not tested")
    report("faults-daemon-other", faults_injected=done)
