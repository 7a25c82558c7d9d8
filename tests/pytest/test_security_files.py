"""Security of the files the engine creates and opens next to a store
(issue 10, items 2, 3 and 7), with a hostile local user (uid 65534).

  * a symlink planted by uid 65534 at the compaction's old, predictable
    temporary name (`s.rvf.compact.tmp`, in a directory it may write) is
    neither followed nor renamed over the store, by `rvfctl compact` as
    root or by `compact` through a root daemon's `control`;
  * a compacted store keeps its mode, owner and group (a 0600 store of
    uid 65534 compacted by root, with rvfctl, through the mount with
    rvfctl, and through `control`);
  * nothing hangs on a FIFO: the store path, STORE.lock or a branch
    child's parent being a FIFO makes rvfctl and rvffs fail at once with
    a message saying so.
"""

import errno
import os
import stat
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from mountlib import (build_dir_path, mount, need_root, run, run_as_nobody, rvffs, world_dir,  # noqa: F401
                      write_csv)

DIM = 4
ROWS = [(i, [float(i), 1.0, 2.0, 3.0]) for i in range(1, 21)]
NOBODY = 65534


_MADE = {}


@pytest.fixture(scope="module", autouse=True)
def made_once_for_make_store(made_once):
    """make_store is called as a function, not a fixture: its made_once."""
    _MADE["once"] = made_once
    yield
    _MADE.clear()


def make_store(run_ctl, path, rows=ROWS):
    """A store of rows (create, ingest, delete 1..3) at path.  The store of
    ROWS is made once per module and copied (made_once: a new root-owned
    file, mode 0644 as rvfctl create makes it): the tests start from it,
    they do not test its making."""
    if rows is ROWS:
        return _MADE["once"]("rows", lambda p: build_store(run_ctl, p, rows), path)
    return build_store(run_ctl, path, rows)


def build_store(run_ctl, path, rows):
    run_ctl("create", path, "--dim", DIM)
    src = write_csv(Path(str(path) + ".csv"), rows)
    run_ctl("ingest", path, src)
    src.unlink()
    run_ctl("delete", path, "--ids", "1,2,3")   # something to reclaim
    return path


def live_ids(run_ctl, path):
    cp = run_ctl("--json", "inspect", path)
    import json
    return sorted(int(i) for i, _ in json.loads(cp.stdout)["live"])


@pytest.fixture
def shared_dir(world_dir):  # noqa: F811
    """A directory uid 65534 may create files in (0777, not sticky: sticky
    world-writable dirs stop some symlink tricks by kernel policy)."""
    need_root()
    d = world_dir / "shared"
    d.mkdir()
    os.chmod(d, 0o777)
    return d


# ------------------------------------------------------------ item 2

def plant(shared_dir, store):
    """uid 65534 plants a symlink at the old temp name, aimed at a root
    file (0644, 'VICTIM')."""
    victim = shared_dir.parent / "victim"
    victim.write_text("VICTIM\n")
    os.chmod(victim, 0o644)
    link = Path(str(store)[:-len(".rvf")] + ".rvf.compact.tmp")
    run_as_nobody(["ln", "-s", str(victim), str(link)], check=True)
    return victim, link


def check_not_followed(run_ctl, store, victim, link, want):
    assert victim.read_text() == "VICTIM\n", "the compaction wrote through the planted symlink"
    st = os.lstat(store)
    assert stat.S_ISREG(st.st_mode), "the store path is no longer a regular file"
    assert os.path.islink(link) and os.readlink(link) == str(victim), \
        "the planted symlink was replaced or removed"
    assert live_ids(run_ctl, store) == want


def test_rvfctl_compact_ignores_planted_symlink(run_ctl, shared_dir):
    store = make_store(run_ctl, shared_dir / "s.rvf")
    want = live_ids(run_ctl, store)
    victim, link = plant(shared_dir, store)
    run_ctl("compact", store, check=False)
    check_not_followed(run_ctl, store, victim, link, want)


def test_control_compact_ignores_planted_symlink(run_ctl, shared_dir, mount):  # noqa: F811
    store = make_store(run_ctl, shared_dir / "s.rvf")
    want = live_ids(run_ctl, store)
    victim, link = plant(shared_dir, store)
    mnt = shared_dir.parent / "mnt"
    mnt.mkdir()
    m = mount(store, "allow_other", mnt=mnt)
    m.sh('echo compact > "$M/control"', check=False)
    assert m.vector_ids() == want
    m.unmount()
    check_not_followed(run_ctl, store, victim, link, want)


def test_no_temporary_file_left_after_compaction(run_ctl, shared_dir):
    store = make_store(run_ctl, shared_dir / "s.rvf")
    run_ctl("compact", store)
    left = [p.name for p in shared_dir.iterdir() if p.name.endswith(".tmp")]
    assert left == []


# ------------------------------------------------------------ item 3

def nobody_store(run_ctl, shared_dir, mode=0o600):
    store = make_store(run_ctl, shared_dir / "own.rvf")
    os.chown(store, NOBODY, NOBODY)
    os.chmod(store, mode)
    return store


def check_kept(store, mode=0o600):
    st = os.stat(store)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (mode, NOBODY, NOBODY), \
        f"compaction changed the store to mode {stat.S_IMODE(st.st_mode):o} " \
        f"owner {st.st_uid}:{st.st_gid}"


def test_rvfctl_compact_keeps_mode_owner_group(run_ctl, rvfctl, shared_dir):
    store = nobody_store(run_ctl, shared_dir)
    want = live_ids(run_ctl, store)
    run_ctl("compact", store)
    check_kept(store)
    assert live_ids(run_ctl, store) == want
    # The owner itself can still compact its 0600 store.
    cp = run_as_nobody([rvfctl, "compact", store])
    assert cp.returncode == 0, cp.stderr
    check_kept(store)


@pytest.mark.parametrize("how", ["control", "rvfctl-through-mount"])
def test_mounted_compact_keeps_mode_owner_group(run_ctl, rvfctl, shared_dir, mount, how):  # noqa: F811
    store = nobody_store(run_ctl, shared_dir, 0o640)
    want = live_ids(run_ctl, store)
    mnt = shared_dir.parent / "mnt"
    mnt.mkdir()
    m = mount(store, "allow_other", mnt=mnt)
    if how == "control":
        m.sh('echo compact > "$M/control"')
    else:
        run([rvfctl, "compact", m.path])
    assert m.vector_ids() == want
    m.unmount()
    check_kept(store, 0o640)


# ------------------------------------------------------------ item 7

def ctl_quick(rvfctl, *args, timeout=20):
    """rvfctl ARGS; fails the test when it blocks (a FIFO open would)."""
    try:
        return subprocess.run([str(rvfctl)] + [str(a) for a in args], capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"rvfctl {' '.join(map(str, args))} blocked (FIFO?)", pytrace=False)


def unblock(fifo):
    def poke():
        for _ in range(100):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
            threading.Event().wait(0.3)
    threading.Thread(target=poke, daemon=True).start()


@pytest.mark.parametrize("cmd", [("status",), ("inspect",), ("compact",), ("verify",)])
def test_rvfctl_on_a_fifo_store(rvfctl, world_dir, cmd):  # noqa: F811
    need_root()
    fifo = world_dir / "f.rvf"
    os.mkfifo(fifo)
    cp = ctl_quick(rvfctl, cmd[0], fifo)
    assert cp.returncode != 0
    assert "not a regular file" in cp.stderr, cp.stderr


def test_rvfctl_with_a_fifo_lock(rvfctl, run_ctl, world_dir):  # noqa: F811
    need_root()
    store = make_store(run_ctl, world_dir / "s.rvf")
    before = store.read_bytes()
    lock = Path(str(store) + ".lock")
    os.mkfifo(lock)
    cp = ctl_quick(rvfctl, "delete", store, "--ids", "5")
    assert cp.returncode != 0
    assert "not a regular file" in cp.stderr, cp.stderr
    assert store.read_bytes() == before
    assert stat.S_ISFIFO(os.lstat(lock).st_mode), "the FIFO lock was removed"


def test_rvfctl_branch_child_with_a_fifo_parent(rvfctl, run_ctl, world_dir):  # noqa: F811
    need_root()
    parent = make_store(run_ctl, world_dir / "p.rvf")
    child = world_dir / "c.rvf"
    run_ctl("branch", parent, child)
    parent.unlink()
    os.mkfifo(parent)
    cp = ctl_quick(rvfctl, "status", child)
    # The child still answers (without the parent's vectors) or refuses;
    # either way at once, and saying why.
    assert "not a regular file" in cp.stderr + cp.stdout, (cp.stdout, cp.stderr)


def test_rvffs_with_a_fifo_store_lock_or_parent(rvffs, run_ctl, world_dir, mount):  # noqa: F811
    need_root()
    fifo = world_dir / "f.rvf"
    os.mkfifo(fifo)
    unblock_later = []
    try:
        (world_dir / "m1").mkdir()
        cp, m = mount.run(fifo, mnt=world_dir / "m1", timeout=20)
        assert m is None and cp.returncode != 0, "rvffs mounted a FIFO"
        assert "not a regular file" in cp.stderr, cp.stderr

        store = make_store(run_ctl, world_dir / "s.rvf")
        os.mkfifo(Path(str(store) + ".lock"))
        (world_dir / "m2").mkdir()
        cp, m = mount.run(store, mnt=world_dir / "m2", timeout=20)
        assert m is None and cp.returncode != 0, "rvffs mounted a store whose lock is a FIFO"
        assert "not a regular file" in cp.stderr, cp.stderr

        parent = make_store(run_ctl, world_dir / "p.rvf")
        child = world_dir / "c.rvf"
        run_ctl("branch", parent, child)
        parent.unlink()
        os.mkfifo(parent)
        unblock_later.append(parent)
        (world_dir / "m3").mkdir()
        cp, m = mount.run(child, "ro", mnt=world_dir / "m3", timeout=20)
        if m is not None:
            # Mounted without the parent: it must say why, and answer.
            assert "not a regular file" in m.errors() + cp.stderr
            m.ls("vectors")
        else:
            assert "not a regular file" in cp.stderr, cp.stderr
    finally:
        for f in unblock_later:
            unblock(f)


# ------------------------------------------------------------ item 6

# Measures the command from a small Python of its own: a child started from
# the big pytest worker inherits the worker's peak RSS in ru_maxrss (Linux
# records the old memory's high-water mark at exec), which made a 9 MB
# rvfctl look like 209 MB in CI.
MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
if os.WIFSIGNALED(status):
    os.kill(os.getpid(), os.WTERMSIG(status))
sys.exit(os.WEXITSTATUS(status))
"""


def run_measured(cmd, timeout=120):
    """Runs cmd; returns (exit status, stdout+stderr, peak RSS in MB)."""
    with tempfile.NamedTemporaryFile("r") as rss:
        cp = subprocess.run(["/usr/bin/python3", "-c", MEASURE, rss.name] +
                            [str(c) for c in cmd], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            timeout=timeout)
        peak_kb = int(rss.read() or 0)
    return cp.returncode, cp.stdout.decode(errors="replace"), peak_kb / 1024


def hostile_duplicates(run_ctl, path, n=20000):
    """A store whose last manifest lists its one 1,000-row VEC segment n
    times (about 512 KB of directory)."""
    import json
    import random
    from upstream_writer import T_MANIFEST, T_VEC, header, manifest_payload
    rng = random.Random(6)
    rows = [(i, [rng.uniform(-1, 1) for _ in range(DIM)]) for i in range(1, 1001)]
    make_store(run_ctl, path, rows)
    segs = json.loads(run_ctl("--json", "inspect", path).stdout)["segments"]
    vec = [s for s in segs if s["segType"] == "vec"]
    assert len(vec) == 1
    off, plen = vec[0]["offset"], vec[0]["payloadLength"]
    entries = [(i + 1, off, plen, T_VEC) for i in range(n)]
    man = manifest_payload(entries, dim=DIM, epoch=9, total=1000, profile=0, metric=0)
    with open(path, "ab") as f:
        f.write(header(T_MANIFEST, n + 100, man) + man)
    return path


def test_store_listing_one_segment_many_times_is_refused(run_ctl, rvfctl, tmp_path, mount):  # noqa: F811
    store = hostile_duplicates(run_ctl, tmp_path / "dup.rvf")
    assert store.stat().st_size < 600_000
    code, out, rss = run_measured([rvfctl, "status", store])
    assert code != 0, f"rvfctl opened a store that lists one segment 20000 times:\n{out[-500:]}"
    assert "both point at offset" in out, out
    # (ASan's shadow and quarantine add their own; old main took 944 MB)
    limit = 400 if "asan" in str(build_dir_path()) else 200
    assert rss < limit, f"rvfctl status took {rss:.0f} MB to refuse a 512 KB store"
    cp, m = mount.run(store, "ro")
    assert m is None and cp.returncode != 0
    assert "both point at offset" in cp.stderr, cp.stderr


def test_store_of_nested_segments_is_refused(rvfctl, tmp_path):
    """Segments nested in each other (each starting inside the previous
    one's payload) so that reading every entry reads the file 100 times."""
    from upstream_writer import T_MANIFEST, T_PROFILE, header, manifest_payload
    k, tail = 100, b"\0" * (1 << 20)
    body = tail
    for _ in range(k):  # innermost first: each wraps the rest
        body = header(T_PROFILE, 1, body, "none") + body
    entries = [(i + 1, 64 * i, len(body) - 64 * (i + 1), T_PROFILE) for i in range(k)]
    man = manifest_payload(entries, dim=DIM, epoch=1, total=0, profile=0, metric=0)
    store = tmp_path / "nested.rvf"
    store.write_bytes(body + header(T_MANIFEST, k + 1, man) + man)
    code, out, rss = run_measured([rvfctl, "status", store])
    assert code != 0, f"rvfctl opened a store of 100 nested segments:\n{out[-500:]}"
    assert "segments overlap" in out, out


# ------------------------------------------------------------ item 8

@pytest.mark.parametrize("opts", [(), ("ro",)])
def test_store_truncated_under_the_mount(run_ctl, tmp_path, mount, opts):  # noqa: F811
    """`truncate -s 100 STORE` while mounted: reading a vector, a segment
    or asking a query answers EIO, the daemon lives on, says why in
    `errors`, and unmounts cleanly (its lock goes)."""
    import random
    rng = random.Random(8)
    rows = [(i, [rng.uniform(-1, 1) for _ in range(DIM)]) for i in range(1, 3001)]
    store = make_store(run_ctl, tmp_path / "t.rvf", rows)
    m = mount(store, *opts)
    seg = sorted(m.ls("segments"))[0]
    assert len(m.read_vector(2000)) == DIM
    if not opts:
        m.sh('mkdir "$M/queries/s"')
        req = os.open(m / "queries/s/request", os.O_WRONLY)  # opened before the shrink
    os.truncate(store, 100)
    if not opts:
        # A slot whose request was open before: its search must not answer
        # from the zeroed pages of the missing file.
        try:
            os.write(req, b"k=3 1 1 1 1\n")
            os.close(req)
        except OSError as e:
            assert e.errno == errno.EIO, e
        cp = m.sh('cat "$M/queries/s/result"', check=False)
        assert cp.returncode != 0 or cp.stdout.startswith("error:"), cp
    # A query first: the search reads the mapping past the file's new end
    # (SIGBUS) before any size check could refuse it.
    cp = m.sh('printf "1 1 1 1\\n" > "$M/query" && cat "$M/query"', check=False)
    assert cp.returncode != 0, cp
    assert os.path.exists(f"/proc/{m.pid}"), "the daemon died"
    cp = m.sh('cat "$M/vectors/2500"', check=False)
    assert cp.returncode != 0 and "Input/output error" in cp.stderr, cp
    cp = m.sh(f'cat "$M/segments/{seg}" > /dev/null', check=False)
    assert cp.returncode != 0 and "Input/output error" in cp.stderr, cp
    assert os.path.exists(f"/proc/{m.pid}"), "the daemon died"
    assert "shrank under the mount" in m.errors()
    m.unmount()
    if not opts:
        assert not Path(str(store) + ".lock").exists(), "the lock was left behind"


def test_sigbus_on_a_raced_truncation_is_absorbed(run_ctl, tmp_path, mount):  # noqa: F811
    """The shrink lands between the daemon's size check and its read:
    readers race a truncation loop; the daemon must survive whatever
    interleaving happens, and answer EIO afterwards."""
    import random
    rng = random.Random(9)
    rows = [(i, [rng.uniform(-1, 1) for _ in range(DIM)]) for i in range(1, 20001)]
    store = make_store(run_ctl, tmp_path / "r.rvf", rows)
    size = store.stat().st_size
    m = mount(store)
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            m.sh('for i in 1 5000 10000 15000 19999; do cat "$M/vectors/$i"; done; '
                 'printf "0 0 0 0\\n" > "$M/query"; cat "$M/query"', check=False)
    ts = [threading.Thread(target=reader) for _ in range(2)]
    for t in ts:
        t.start()
    try:
        for k in range(30):
            os.truncate(store, 100 + (k * 7919) % (size // 2))
            threading.Event().wait(0.05)
            os.truncate(store, size)  # a hole of zeros: no longer the store
    finally:
        stop.set()
        for t in ts:
            t.join(60)
    os.truncate(store, 100)
    assert os.path.exists(f"/proc/{m.pid}"), "the daemon died of SIGBUS"
    cp = m.sh('cat "$M/vectors/19999"', check=False)
    assert cp.returncode != 0 and "Input/output error" in cp.stderr, cp
    m.unmount()
