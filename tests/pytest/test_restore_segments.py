"""Restore from a copy of segments/ (issue 11 item 10).

segments/ covers the store file byte for byte (listed segments, older
sessions' manifests, the witness after a compaction, gaps), so a tar or
rsync of it rebuilds the file: `cat DIR/* > OUT` (fewer than 10000 pieces)
or `rvfctl restore DIR OUT`.  Checked for stores made by every tool: the
copy is the same bytes, and rvffs and the reference open it with the same
vectors.
"""

import json
import shutil
import subprocess

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import int_rows, write_csv

DIM = 4


def rvffs_create(tmp_path, run_ctl, ref, mount):
    p = tmp_path / "made.rvf"
    m = mount(p, "create", f"dim={DIM}")
    m.sh('for i in 1 2 3; do echo "$i $i $i $i" > "$M/vectors/$i"; done; sync')
    m.sh('rm "$M/vectors/2"; echo 9 9 9 9 > "$M/vectors/9"')
    m.unmount()
    return p


def rvfctl_sessions(tmp_path, run_ctl, ref, mount):
    """Several rvfctl sessions: each leaves a manifest no later one lists."""
    p = tmp_path / "made.rvf"
    run_ctl("create", p, "--dim", DIM)
    run_ctl("ingest", p, write_csv(tmp_path / "a.csv", int_rows(5, DIM, seed=1)))
    run_ctl("delete", p, "--ids", "2,3")
    run_ctl("ingest", p, write_csv(tmp_path / "b.csv", int_rows(2, DIM, start=10, seed=2)))
    return p


def rvfctl_compacted(tmp_path, run_ctl, ref, mount):
    """Compaction leaves a witness after its manifest, listed by no one."""
    p = rvfctl_sessions(tmp_path, run_ctl, ref, mount)
    run_ctl("compact", p)
    return p


def reference_sessions(tmp_path, run_ctl, ref, mount):
    p = tmp_path / "made.rvf"
    ref.run([
        {"op": "create", "path": str(p), "dimension": DIM},
        {"op": "ingest", "ids": [1, 2, 3], "vectors": [[1] * DIM, [2] * DIM, [3] * DIM]},
        {"op": "close"},
        {"op": "open", "path": str(p)},
        {"op": "ingest", "ids": [4], "vectors": [[4] * DIM]},
        {"op": "delete", "ids": [1]},
        {"op": "close"},
        {"op": "open", "path": str(p)},
        {"op": "ingest", "ids": [5], "vectors": [[5] * DIM]},
        {"op": "close"},
    ])
    return p


MAKERS = [rvffs_create, rvfctl_sessions, rvfctl_compacted, reference_sessions]


@pytest.fixture
def made(made_once):
    """made(MAKER, tmp_path, run_ctl, ref, mount) -> tmp_path/made.rvf: what
    MAKER(...) makes, MAKER running once per module (made_once), later
    calls getting a copy of its file (the same bytes: the tests compare
    bytes, the restore and not the making is their subject)."""
    def get(make, tmp_path, run_ctl, ref, mount):
        return made_once(("restore", make.__name__),
                         lambda src: shutil.copy(make(tmp_path, run_ctl, ref, mount), src),
                         tmp_path / "made.rvf")
    return get


def copy_segments(m, how, dest):
    if how == "tar":
        m.sh(f'tar -C "$M" -cf "{dest}.tar" segments && mkdir -p "{dest}" && '
             f'tar -C "{dest}" -xf "{dest}.tar" --strip-components=1')
    else:
        m.sh(f'rsync -a "$M/segments/" "{dest}/"')


@pytest.mark.parametrize("make", MAKERS, ids=[f.__name__ for f in MAKERS])
@pytest.mark.parametrize("how", ["tar", "rsync"])
def test_restore_rebuilds_the_store(make, how, tmp_path, run_ctl, ref, mount, made):
    p = made(make, tmp_path, run_ctl, ref, mount)
    original = p.read_bytes()
    want = ref.dump(p)
    assert want["openError"] is None
    m = mount(p, "ro")
    dest = tmp_path / "backup"
    copy_segments(m, how, dest)
    m.unmount()

    # plain cat of the copy, in the shell's order
    cat = tmp_path / "cat.rvf"
    subprocess.run(["bash", "-c", f'cat "{dest}"/* > "{cat}"'], check=True)
    assert cat.read_bytes() == original

    # rvfctl restore
    out = tmp_path / "restored.rvf"
    cp = run_ctl("restore", dest, out)
    assert "restored" in cp.stdout
    assert out.read_bytes() == original

    # the reference and rvffs open the restored store with the same vectors
    got = ref.dump(out)
    assert got["openError"] is None and got["all_ids"] == want["all_ids"]
    exp = json.loads(run_ctl("export", p).stdout.replace("\n", ",").rstrip(",").join("[]"))
    sc = ref.selfcheck(out, [(r["id"], r["vector"]) for r in exp])
    assert sc["ok"], sc
    m = mount(out, "ro")
    assert m.vector_ids() == sorted(r["id"] for r in exp)
    for r in exp:
        assert m.read_vector(r["id"]) == r["vector"]


def test_restore_of_a_branch_child_beside_its_parent(tmp_path, run_ctl, ref, mount):
    p, c = tmp_path / "p.rvf", tmp_path / "c.rvf"
    run_ctl("create", p, "--dim", DIM)
    run_ctl("ingest", p, write_csv(tmp_path / "a.csv", int_rows(4, DIM, seed=3)))
    run_ctl("branch", p, c)
    run_ctl("ingest", c, write_csv(tmp_path / "b.csv", [(50, [5.0] * DIM)]))
    m = mount(c, "ro")
    copy_segments(m, "tar", tmp_path / "cb")
    m.unmount()
    out = tmp_path / "c2.rvf"   # beside the parent: its stored path resolves
    run_ctl("restore", tmp_path / "cb", out)
    assert out.read_bytes() == c.read_bytes()
    assert run_ctl("export", out).stdout == run_ctl("export", c).stdout
    assert ref.dump(out)["all_ids"] == [1, 2, 3, 4, 50]


def test_segments_cover_the_file(tmp_path, run_ctl, mount, made):
    """The listing adds up to the file, and status counts it."""
    p = made(rvfctl_sessions, tmp_path, run_ctl, None, mount)
    m = mount(p, "ro")
    names = m.ls("segments")
    assert sum((m / "segments" / n).stat().st_size for n in names) == p.stat().st_size
    assert int(m.status()["segments"]) == len(names)
    assert sum(1 for n in names if n.endswith("-manifest")) == 4  # one per session


def test_restore_refuses_an_incomplete_copy(tmp_path, run_ctl, mount, made):
    p = made(rvfctl_sessions, tmp_path, run_ctl, None, mount)
    m = mount(p, "ro")
    dest = tmp_path / "bk"
    copy_segments(m, "rsync", dest)
    m.unmount()
    names = sorted(x.name for x in dest.iterdir())
    (dest / names[2]).unlink()
    out = tmp_path / "r.rvf"
    cp = run_ctl("restore", dest, out, check=False)
    assert cp.returncode == 3 and "piece 3 is missing" in cp.stderr
    assert not out.exists()
    # a piece cut short
    copy_segments(mount(p, "ro"), "rsync", dest)
    v = dest / next(n for n in names if n.endswith("-vec"))
    v.write_bytes(v.read_bytes()[:-3])
    cp = run_ctl("restore", dest, out, check=False)
    assert cp.returncode == 3 and "cut short" in cp.stderr
    assert not out.exists()
    # OUT is never overwritten
    out.write_bytes(b"keep")
    cp = run_ctl("restore", dest, out, check=False)
    assert cp.returncode == 1 and out.read_bytes() == b"keep"


def test_torn_tail_is_a_gap_piece(tmp_path, run_ctl, ref, mount, made):
    """Bytes that are no segment (a torn write after the last commit) are a
    NNNN-gap piece with those bytes, so the copy is still the whole file."""
    p = made(rvfctl_sessions, tmp_path, run_ctl, None, mount)
    with open(p, "ab") as f:
        f.write(b"SFVR" + bytes(range(60)) + b"torn")
    m = mount(p, "ro")
    names = m.ls("segments")
    assert names[-1].endswith("-gap") and m.getfattr(f"segments/{names[-1]}", "user.rvf.type") == "gap"
    assert (m / "segments" / names[-1]).read_bytes().endswith(b"torn")
    copy_segments(m, "tar", tmp_path / "bk")
    m.unmount()
    out = tmp_path / "r.rvf"
    run_ctl("restore", tmp_path / "bk", out)
    assert out.read_bytes() == p.read_bytes()
    assert ref.dump(out)["all_ids"] == ref.dump(p)["all_ids"]
