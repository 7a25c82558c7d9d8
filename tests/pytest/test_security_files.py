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

import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest

from mountlib import (mount, need_root, run, run_as_nobody, rvffs, world_dir,  # noqa: F401
                      write_csv)

DIM = 4
ROWS = [(i, [float(i), 1.0, 2.0, 3.0]) for i in range(1, 21)]
NOBODY = 65534


def make_store(run_ctl, path, rows=ROWS):
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
