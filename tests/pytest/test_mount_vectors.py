"""rvffs mount: vectors/ID files (text of the components, exact float32
round trip, rm deletes, writes insert/replace, wrong input changes nothing)
and metadata as user.rvf.meta.NAME xattrs."""

import errno
import json
import os
import random
import struct

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import (fmt_vec, int_rows, make_store, parse_results, write_close,
                      write_f32, write_jsonl)

SPECIAL = [0.0, -0.0, 1.0, -1.5, 0.1, 1 / 3, 3.4028234663852886e38, -3.4028234663852886e38,
           1.401298464324817e-45, 1.1754943508222875e-38, 123456.7890625, 1e-7,
           16777217.0, 2.5e-30, -7.0e20, 0.3]


def bits(v):
    return [struct.pack("<f", x) for x in v]


@pytest.fixture
def exact_store(store, run_ctl, tmp_path):
    """dim 8, vectors with awkward float32 values written bit-exactly (.f32:
    ids 0..n-1 in an empty store)."""
    rng = random.Random(7)
    vecs = [SPECIAL[:8], SPECIAL[8:16]]
    for _ in range(10):
        v = []
        while len(v) < 8:
            x = struct.unpack("<f", struct.pack("<I", rng.getrandbits(32)))[0]
            if x == x and abs(x) != float("inf"):  # text cannot carry NaN / inf
                v.append(x)
        vecs.append(v)
    p = store(dim=8)
    write_f32(tmp_path / "exact.f32", vecs)
    run_ctl("ingest", p, tmp_path / "exact.f32")
    return p, {i: v for i, v in enumerate(vecs)}


def test_one_file_per_visible_vector(mount, store, run_ctl, tmp_path):
    rows = int_rows(12, 4, start=3)
    p = make_store(run_ctl, store, dim=4, rows=rows)
    run_ctl("delete", p, "--ids", "5,9")
    m = mount(p)
    want = sorted(i for i, _ in rows if i not in (5, 9))
    assert m.vector_ids() == want
    assert m.status()["vectors"] == str(len(want))
    for i in (5, 9, 1000):
        with pytest.raises(FileNotFoundError):
            os.stat(m / "vectors" / str(i))
    # names are plain decimal ids
    for bad in ("03", "+3", "3.0", "x"):
        with pytest.raises(FileNotFoundError):
            os.stat(m / "vectors" / bad)


def test_vector_text_round_trips_float32(mount, exact_store):
    p, vecs = exact_store
    m = mount(p)
    assert m.vector_ids() == sorted(vecs)
    for i, v in vecs.items():
        txt = m.cat(f"vectors/{i}")
        assert txt.endswith("\n") and "\n" not in txt[:-1], f"vectors/{i}: not one line {txt!r}"
        toks = txt[:-1].split(" ")
        assert len(toks) == 8, f"vectors/{i}: {txt!r}"
        assert "" not in toks, f"vectors/{i}: components not separated by single spaces"
        assert bits([float(t) for t in toks]) == bits(v), f"vectors/{i}: {txt!r} != {v}"
        st = os.stat(m / "vectors" / str(i))
        assert st.st_size == len(txt.encode()), f"vectors/{i}: st_size {st.st_size}"
        assert st.st_blocks > 0 and st.st_blksize >= 65536


def test_rm_vector_deletes(mount, store, run_ctl, tmp_path):
    rows = int_rows(6, 4, start=1)
    p = make_store(run_ctl, store, dim=4, rows=rows)
    m = mount(p)
    st0 = m.status()
    m.sh('rm "$M/vectors/3"')
    assert 3 not in m.vector_ids()
    with pytest.raises(FileNotFoundError):
        open(m / "vectors" / "3")
    st1 = m.status()
    assert int(st1["deleted"]) == int(st0["deleted"]) + 1
    assert int(st1["vectors"]) == int(st0["vectors"]) - 1
    assert int(st1["file_size"]) > int(st0["file_size"])
    # the deleted vector is no longer found by queries, even at distance 0
    v3 = dict(rows)[3]
    ids = [i for i, _, _ in parse_results(m.query(fmt_vec(v3) + " "))[0]]
    assert 3 not in ids
    # rm of a missing vector: ENOENT, nothing committed
    r = m.sh('rm "$M/vectors/3"', check=False)
    assert r.returncode != 0 and "No such file" in r.stderr
    st2 = m.status()
    assert {**st2, "heap_bytes": None} == {**st1, "heap_bytes": None}  # the heap moves
    # persists: a remount still lacks it
    m.unmount()
    m2 = mount(p)
    assert 3 not in m2.vector_ids() and m2.status()["deleted"] == st1["deleted"]


def test_write_replaces_and_inserts(mount, store, run_ctl, tmp_path):
    p = make_store(run_ctl, store, dim=4, rows=int_rows(4, 4, start=1))
    m = mount(p)
    # replace an existing vector
    m.sh('echo "9 8 7 6" > "$M/vectors/2"')
    assert m.read_vector(2) == [9, 8, 7, 6]
    assert m.status()["vectors"] == "4"
    # insert a new id, with awkward values
    v = [0.1, -2.5e-3, 1e20, 3.0]
    m.sh(f'echo "{fmt_vec(v)}" > "$M/vectors/40"')
    assert 40 in m.vector_ids()
    assert bits(m.read_vector(40)) == bits(v)
    assert m.status()["vectors"] == "5"
    # it is searchable at distance 0
    g = parse_results(m.query(fmt_vec(v)))[0]
    assert (g[0][0], g[0][1]) == (40, 0.0)
    # tee and cp work too; cat of one vector into another copies it
    m.sh('echo "1 1 1 1" | tee "$M/vectors/41" >/dev/null')
    m.sh('cat "$M/vectors/41" > v.txt && cp v.txt "$M/vectors/42"')
    assert m.read_vector(41) == m.read_vector(42) == [1, 1, 1, 1]
    # durable: seen after a remount
    m.unmount()
    m2 = mount(p)
    assert m2.read_vector(2) == [9, 8, 7, 6] and bits(m2.read_vector(40)) == bits(v)


@pytest.mark.parametrize("text", ["1 2 3", "1 2 3 4 5", "1 2 x 4", ""])
def test_bad_vector_write_changes_nothing(mount, store, run_ctl, text):
    p = make_store(run_ctl, store, dim=4, rows=int_rows(3, 4, start=1))
    m = mount(p)
    before = (m.cat("vectors/1"), m.vector_ids(), os.path.getsize(p))
    # replacing an existing vector
    werr, cerr = write_close(m / "vectors" / "1", text + "\n")
    assert (werr or cerr) == errno.EINVAL, (werr, cerr)
    # creating a new one
    werr, cerr = write_close(m / "vectors" / "77", text + "\n",
                             os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    assert (werr or cerr) == errno.EINVAL, (werr, cerr)
    assert (m.cat("vectors/1"), m.vector_ids(), os.path.getsize(p)) == before
    # cp reports the failure too
    (m.mounter.tmp / "bad.txt").write_text(text + "\n")
    assert m.sh('cp bad.txt "$M/vectors/1"', check=False).returncode != 0
    assert (m.cat("vectors/1"), m.vector_ids(), os.path.getsize(p)) == before
    assert "vectors/1" in m.errors()


def test_bad_vector_names(mount, store, run_ctl):
    p = make_store(run_ctl, store, dim=4, rows=int_rows(2, 4, start=1))
    m = mount(p)
    size = os.path.getsize(p)
    for name in ("abc", "-1", "1.5"):
        r = m.sh(f'echo "1 2 3 4" > "$M/vectors/{name}"', check=False)
        assert r.returncode != 0, name
    assert m.vector_ids() == [1, 2] and os.path.getsize(p) == size
    # directories cannot be made there
    with pytest.raises(OSError) as e:
        os.mkdir(m / "vectors" / "9")
    assert e.value.errno == errno.EPERM


def test_metadata_xattrs(mount, tmp_path):
    m = mount(tmp_path / "meta.rvf", "create", "dim=4")
    rows = [(1, [1, 0, 0, 0]), (2, [0, 1, 0, 0]), (3, [0, 0, 1, 0])]
    meta = [{"color": "red", "n": 3, "label": "x y"}, {"color": "blue"}, None]
    write_jsonl(tmp_path / "m.jsonl", rows, meta)
    m.sh('cp m.jsonl "$M/ingest/"')
    assert m.vector_ids() == [1, 2, 3]
    assert m.getfattr("vectors/1", "user.rvf.meta.color") == "red"
    assert m.getfattr("vectors/1", "user.rvf.meta.n") == "3"
    assert m.getfattr("vectors/1", "user.rvf.meta.label") == "x y"
    assert m.getfattr("vectors/2", "user.rvf.meta.color") == "blue"
    x1 = m.xattrs("vectors/1")
    assert {k: v for k, v in x1.items() if k.startswith("user.rvf.meta.")} == \
        {"user.rvf.meta.color": "red", "user.rvf.meta.n": "3", "user.rvf.meta.label": "x y"}
    assert not any(k.startswith("user.rvf.meta.") for k in m.xattrs("vectors/3"))
    r = m.sh('getfattr -n user.rvf.meta.color "$M/vectors/3"', check=False)
    assert r.returncode != 0 and "No such attribute" in r.stderr
    # setfattr writes a field (a commit); the vector is unchanged
    m.sh('setfattr -n user.rvf.meta.color -v green "$M/vectors/3"')
    assert m.getfattr("vectors/3", "user.rvf.meta.color") == "green"
    assert m.read_vector(3) == [0, 0, 1, 0]
    m.unmount()
    m2 = mount(tmp_path / "meta.rvf")
    assert m2.getfattr("vectors/3", "user.rvf.meta.color") == "green"
    assert m2.getfattr("vectors/1", "user.rvf.meta.n") == "3"


def test_vectors_listing_readdir_inodes(mount, store, run_ctl):
    p = make_store(run_ctl, store, dim=4, rows=int_rows(30, 4, start=100))
    m = mount(p)
    out = m.sh('ls -1i "$M/vectors"').stdout.split("\n")
    pairs = [ln.split() for ln in out if ln]
    assert sorted(int(n) for _, n in pairs) == list(range(100, 130))
    for ino, name in pairs:
        assert os.stat(m / "vectors" / name).st_ino == int(ino)


def test_cp_a_carries_metadata_both_ways(mount, store, run_ctl, tmp_path):
    """A backup with `cp -a MNT/vectors/.` and a restore with `cp -a` into
    another mount keep every metadata field and its type: cp sets a new
    file's xattrs before the close that commits it, so they wait on the
    file being written (they were dropped with ENOENT, and cp exits 0).  A
    value that is no valid text fails setxattr and changes nothing."""
    meta = [{"color": "red", "n": 3, "zip": "02134"}, {"ok": True, "w": 2.5}, None]
    p = make_store(run_ctl, store, dim=4, rows=int_rows(3, 4, start=1), metadata=meta)
    src = mount(p)
    bk = tmp_path / "bk"
    bk.mkdir()
    src.sh(f'cp -a "$M/vectors/." "{bk}/"')
    src.unmount()
    q = make_store(run_ctl, store, dim=4)
    m = mount(q)
    r = m.sh(f'cp -a "{bk}/." "$M/vectors/"', check=False)
    assert r.returncode == 0, r.stderr
    assert m.vector_ids() == [1, 2, 3]
    assert m.xattrs("vectors/1") == {"user.rvf.meta.color": "red", "user.rvf.meta.n": "3",
                                     "user.rvf.meta.zip": "02134"}
    m.unmount()
    out = run_ctl("export", q).stdout
    got = {o["id"]: o.get("metadata") for o in map(json.loads, out.splitlines())}
    assert got == {1: meta[0], 2: meta[1], 3: None}
    assert type(got[1]["n"]) is int and type(got[2]["ok"]) is bool

    # a bad value on a file being written: setxattr fails, the rest commits
    m = mount(q)
    r = m.sh('exec 3> "$M/vectors/9"; echo 1 2 3 4 >&3; '
             'setfattr -n user.rvf.meta.s -v \'"unterminated\' "/proc/self/fd/3"; '
             'echo "setfattr=$?"; setfattr -n user.rvf.meta.t -v 7 "/proc/self/fd/3"; exec 3>&-',
             check=False)
    assert "setfattr=1" in r.stdout, (r.stdout, r.stderr)
    assert m.read_vector(9) == [1.0, 2.0, 3.0, 4.0]
    assert m.xattrs("vectors/9") == {"user.rvf.meta.t": "7"}


def test_cp_a_directory_into_vectors(mount, store, run_ctl, tmp_path):
    """`cp -a dir/. MNT/vectors/` (a restore) succeeds: the chmod, chown and
    times it applies after each copy are accepted from the owner (modes and
    owners are the mount's policy, so they stay what they were), the
    vectors arrive, and a second cp -a over them replaces nothing wrongly."""
    p = make_store(run_ctl, store, dim=4, rows=int_rows(2, 4, start=1))
    m = mount(p)
    src = tmp_path / "restore"
    src.mkdir()
    for i in range(10, 20):
        (src / str(i)).write_text(f"{i} 1 2 3\n")
    os.chmod(src / "11", 0o600)
    os.chmod(src, 0o700)
    if os.geteuid() == 0:
        os.chown(src / "12", 65534, 65534)  # root's cp -a gives it away
    for _ in range(2):
        r = m.sh(f'cp -a "{src}/." "$M/vectors/"', check=False)
        assert r.returncode == 0, r.stderr
    assert m.vector_ids() == [1, 2] + list(range(10, 20))
    assert m.read_vector(11) == [11.0, 1.0, 2.0, 3.0]
    st = os.stat(m / "vectors" / "11")
    assert st.st_mode & 0o777 == 0o644 and st.st_uid == os.getuid()
    assert os.stat(m / "vectors").st_mode & 0o777 == 0o755
    # a plain chmod by the owner is accepted and changes nothing either
    os.chmod(m / "vectors" / "10", 0o400)
    assert os.stat(m / "vectors" / "10").st_mode & 0o777 == 0o644
