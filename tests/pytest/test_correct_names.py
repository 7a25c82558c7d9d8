"""Issue 11 item 1: names the kernel cached stay true after the store
changes under them.

Segment inode numbers follow librvf's file generation (it moves when the
file is compacted or replaced); the daemon tells the kernel to forget every
segment name after such a rewrite and every vector name that disappears,
before the `control` write that changed them returns."""

import errno
import os
import time

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import int_rows, make_store, parse_kv

DIM = 4


@pytest.fixture
def ints(store, run_ctl):
    rows = int_rows(20, DIM, start=1, seed=9)
    p = make_store(run_ctl, store, dim=DIM, rows=rows)
    for i in (3, 4):
        run_ctl("delete", p, "--ids", str(i))
    return p


def touch_all(m, d):
    """Looks every name up and reads it (the kernel caches the entries)."""
    names = sorted(os.listdir(m.path / d))
    for n in names:
        with open(m.path / d / n, "rb") as f:
            f.read()
    return names


def test_segment_names_after_compaction(mount, ints):
    m = mount(ints)
    before = touch_all(m, "segments")
    gen0 = int(m.status()["generation"])
    m.sh('echo compact > "$M/control"')
    assert int(m.status()["generation"]) == gen0 + 1
    after = sorted(os.listdir(m.path / "segments"))
    for n in after:
        with open(m.path / "segments" / n, "rb") as f:
            assert f.read(4) == b"SFVR", n  # the segment magic, little-endian "RVFS"
    for n in set(before) - set(after):
        assert not os.path.exists(m.path / "segments" / n), \
            f"segments/{n} is gone after compaction but still looked up"
    # a name that exists before and after is now the new segment
    for n in set(before) & set(after):
        st = os.stat(m.path / "segments" / n)
        with open(m.path / "segments" / n, "rb") as f:
            assert len(f.read()) == st.st_size


def test_deleted_vector_names_are_forgotten(mount, ints):
    m = mount(ints)
    touch_all(m, "vectors")
    assert os.path.exists(m.path / "vectors/5")
    m.sh('echo "delete 5 6" > "$M/control"')
    for i in (5, 6):
        with pytest.raises(OSError) as e:
            os.stat(m.path / f"vectors/{i}")
        assert e.value.errno == errno.ENOENT
    assert 5 not in m.vector_ids()


def test_read_only_mount_follows_a_compaction(mount, ints, run_ctl):
    m = mount(ints, "ro")
    before = touch_all(m, "segments")
    run_ctl("compact", ints)
    # a read-only mount checks the file at most once a second
    deadline = time.monotonic() + 20
    while int(parse_kv(m.cat("status"))["generation"]) == 0:
        assert time.monotonic() < deadline, "the read-only mount never saw the new file"
        time.sleep(0.2)
    after = sorted(os.listdir(m.path / "segments"))
    # the notices follow the refresh from the invalidation thread
    gone = set(before) - set(after)
    deadline = time.monotonic() + 10
    while any(os.path.exists(m.path / "segments" / n) for n in gone):
        assert time.monotonic() < deadline, f"stale segment names stay: {sorted(gone)}"
        time.sleep(0.05)
    for n in after:
        with open(m.path / "segments" / n, "rb") as f:
            assert f.read(4) == b"SFVR", n
