"""Branch children survive commits to their parent (issue 11 item 8).

The reference refuses a branch child as soon as its parent file changes by
one byte (ParentHashMismatch).  The parent is append-only, so rvfctl and
rvffs read it as it was when the child was made (the prefix whose tail hash
is the child's parent_hash).  Only a rewritten parent is a loss: then the
error says so.  `rvfctl detach CHILD` makes a child independent, and the
reference opens the detached child with the same vectors.  Writing to a
parent with children beside it warns; compacting it is refused without
--force.
"""

import json
import shutil

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import int_rows, parse_results, write_csv, write_jsonl

DIM = 4


def export(run_ctl, path):
    """{id: vector} of what rvfctl export shows."""
    out = run_ctl("export", path).stdout
    rows = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    return {r["id"]: r["vector"] for r in rows}


def ingest(run_ctl, path, rows, tmp, name="in.csv", check=True):
    src = write_csv(tmp / name, rows)
    cp = run_ctl("ingest", path, src, check=check)
    src.unlink()
    return cp


def make_family(d, run_ctl):
    """p.rvf with ids 1..5, its branch child c.rvf with its own id 100 and
    inherited id 2 deleted, in directory d; returns what the child shows."""
    p, c = d / "p.rvf", d / "c.rvf"
    run_ctl("create", p, "--dim", DIM)
    base = int_rows(5, DIM, seed=3)
    ingest(run_ctl, p, base, d)
    run_ctl("branch", p, c)
    own = [(100, [9.0, 9.0, 9.0, 9.0])]
    ingest(run_ctl, c, own, d)
    run_ctl("delete", c, "--ids", "2")
    want = {i: v for i, v in base if i != 2}
    want.update(own)
    assert export(run_ctl, c) == want
    return want


@pytest.fixture(scope="module")
def family_files(tmp_path_factory, run_ctl):
    """The family made once per module (6 rvfctl): the tests start from
    copies of its two files (the child names its parent by file name, so
    a copy in another directory is the same family)."""
    d = tmp_path_factory.mktemp("family")
    return d, make_family(d, run_ctl)


@pytest.fixture
def family(family_files, tmp_path):
    """p.rvf and its branch child c.rvf in tmp_path (see make_family);
    returns (parent, child, what the child shows)."""
    d, want = family_files
    for name in ("p.rvf", "c.rvf"):
        shutil.copyfile(d / name, tmp_path / name)
    return tmp_path / "p.rvf", tmp_path / "c.rvf", dict(want)


def change_parent(run_ctl, p, tmp_path):
    """Several kinds of commit to the parent: an ingest, a deletion, then
    one ingest command of 11 files, each its own commit (rvfctl(1): "the
    vectors of each file as one atomic commit"): a replaced id 4, then ten
    one-row commits."""
    ingest(run_ctl, p, int_rows(3, DIM, start=6, seed=4), tmp_path)
    run_ctl("delete", p, "--ids", "1,3")
    files = [write_csv(tmp_path / "r4.csv", [(4, [0.5, 0.5, 0.5, 0.5])])]  # replaces id 4
    files += [write_csv(tmp_path / f"r{20 + i}.csv", [(20 + i, [float(i)] * DIM)])
              for i in range(10)]
    out = json.loads(run_ctl("--json", "ingest", p, *files).stdout)
    assert len({f["epoch"] for f in out["files"]}) == len(files) == 11, out
    for f in files:
        f.unlink()


def test_child_reads_parent_as_branched_after_parent_commits(family, run_ctl, tmp_path, ref):
    p, c, want = family
    change_parent(run_ctl, p, tmp_path)
    assert export(run_ctl, c) == want
    st = run_ctl("status", c).stdout
    assert "parent changed since the branch" in st
    # the reference has the trap we avoid: it refuses the child now
    rd = ref.dump(c)
    assert rd["openError"] and "ParentHashMismatch" in rd["openError"]
    # the child keeps working: a write to it, read back
    ingest(run_ctl, c, [(101, [1.0, 2.0, 3.0, 4.0])], tmp_path)
    want[101] = [1.0, 2.0, 3.0, 4.0]
    assert export(run_ctl, c) == want
    q = run_ctl("query", c, "--vector", "1,2,3,4", "--k", "1").stdout
    assert q.split()[0] == "101"


def test_reference_written_family(ref, run_ctl, tmp_path):
    """Parent and child written by rvf-node, the parent then appended to by
    rvf-node: rvfctl shows the child as branched."""
    p, c = tmp_path / "rp.rvf", tmp_path / "rc.rvf"
    ref.run([
        {"op": "create", "path": str(p), "dimension": 2},
        {"op": "ingest", "ids": [1, 2, 3], "vectors": [[1, 1], [2, 2], [3, 3]]},
        {"op": "branch", "path": str(p), "child": str(c)},
        {"op": "ingest", "path": str(c), "ids": [7], "vectors": [[7, 7]]},
        {"op": "close", "path": str(c)},
        {"op": "ingest", "path": str(p), "ids": [4], "vectors": [[4, 4]]},
        {"op": "delete", "path": str(p), "ids": [1]},
        {"op": "close", "path": str(p)},
    ], serve=True)
    assert "ParentHashMismatch" in ref.dump(c)["openError"]
    assert export(run_ctl, c) == {1: [1, 1], 2: [2, 2], 3: [3, 3], 7: [7, 7]}


def test_compacted_parent_is_a_clear_loss(family, run_ctl, tmp_path):
    p, c, _ = family
    ingest(run_ctl, p, [(9, [1.0] * DIM)], tmp_path)
    run_ctl("compact", p, "--force")
    cp = run_ctl("export", c, check=False)
    assert cp.returncode == 3
    assert str(p.name) in cp.stderr and "compacted" in cp.stderr
    assert "own vectors are intact" in cp.stderr


def test_replaced_parent_is_a_clear_loss(family, run_ctl, tmp_path):
    p, c, _ = family
    other = tmp_path / "other.rvf"
    run_ctl("create", other, "--dim", DIM)
    shutil.copyfile(other, p)
    cp = run_ctl("export", c, check=False)
    assert cp.returncode == 3
    assert p.name in cp.stderr and "another store now" in cp.stderr and "replaced" in cp.stderr


def test_writes_to_a_parent_warn_about_children(family, run_ctl, tmp_path):
    p, c, _ = family
    cp = ingest(run_ctl, p, [(7, [1.0] * DIM)], tmp_path)
    assert "warning" in cp.stderr and c.name in cp.stderr and "branch child" in cp.stderr
    cp = run_ctl("--json", "delete", p, "--ids", "7")
    json.loads(cp.stdout)  # stdout stays one JSON document
    assert c.name in cp.stderr
    # a store without children says nothing
    cp = ingest(run_ctl, c, [(102, [1.0] * DIM)], tmp_path)
    assert "warning" not in cp.stderr


def test_compaction_of_a_parent_needs_force(family, run_ctl, tmp_path):
    p, c, want = family
    run_ctl("delete", p, "--ids", "5")
    before = p.read_bytes()
    cp = run_ctl("compact", p, check=False)
    assert cp.returncode == 1
    assert c.name in cp.stderr and "detach" in cp.stderr and "--force" in cp.stderr
    assert p.read_bytes() == before
    assert export(run_ctl, c) == want
    run_ctl("compact", p, "--force")
    assert len(p.read_bytes()) < len(before)


def test_detach_keeps_what_the_child_shows(tmp_path, run_ctl, ref):
    p, c = tmp_path / "p.rvf", tmp_path / "c.rvf"
    run_ctl("create", p, "--dim", DIM)
    base = int_rows(6, DIM, seed=5)
    src = write_jsonl(tmp_path / "m.jsonl", base,
                      [{"color": "red" if i % 2 else "blue"} for i, _ in base])
    run_ctl("ingest", p, src)
    run_ctl("branch", p, c)
    ingest(run_ctl, c, [(3, [7.0, 7.0, 7.0, 7.0]), (50, [5.0] * DIM)], tmp_path)
    run_ctl("delete", c, "--ids", "1")
    change_parent(run_ctl, p, tmp_path)       # the child reads the old state
    want = export(run_ctl, c)
    assert sorted(want) == [2, 3, 4, 5, 6, 50] and want[3] == [7.0] * 4

    cp = run_ctl("detach", c)
    assert "4 inherited vectors copied" in cp.stdout
    assert export(run_ctl, c) == want
    ins = json.loads(run_ctl("inspect", "--json", c).stdout)
    assert "parentAsOf" not in ins and ins["lineageDepth"] == 1
    # metadata of inherited rows came along: a filter on it still matches
    q = run_ctl("query", c, "--vector", "0,0,0,0", "--k", "10",
                "--filter", '{"op":"eq","field":"color","value":"blue"}').stdout
    assert sorted(int(ln.split()[0]) for ln in q.splitlines() if ln.strip()) == [2, 4, 6]
    # the reference opens it (it was refused before) with the same vectors
    rd = ref.dump(c)
    assert rd["openError"] is None
    assert rd["all_ids"] == sorted(want)
    sc = ref.selfcheck(c, list(want.items()))
    assert sc["ok"], sc
    # and the parent can be compacted without --force: no child left
    cp = run_ctl("compact", p)
    assert "branch child" not in cp.stderr
    assert export(run_ctl, c) == want


def test_detach_refuses_a_store_that_is_no_branch(tmp_path, run_ctl):
    p = tmp_path / "p.rvf"
    run_ctl("create", p, "--dim", DIM)
    before = p.read_bytes()
    cp = run_ctl("detach", p, check=False)
    assert cp.returncode == 3 and "not a branch child" in cp.stderr
    assert p.read_bytes() == before


def test_mounted_child_reads_parent_as_branched(family, run_ctl, tmp_path, mount):
    p, c, want = family
    change_parent(run_ctl, p, tmp_path)
    m = mount(c)
    assert m.vector_ids() == sorted(want)
    for i, v in want.items():
        assert m.read_vector(i) == v
    # the parent changes while the child is mounted: nothing moves
    ingest(run_ctl, p, [(2, [3.0] * DIM)], tmp_path)
    m.sh('echo 1 1 1 1 > "$M/vectors/103"')
    want[103] = [1.0] * DIM
    assert m.vector_ids() == sorted(want)
    assert "parent" in m.cat("status")
    m.unmount()
    assert export(run_ctl, c) == want


def test_mounted_parent_with_children(family, run_ctl, tmp_path, mount):
    """Through a mount of the parent: the first write warns (errors), status
    counts the children, `compact` is refused without `force`, automatic
    compaction holds off; the child reads the branched state throughout."""
    p, c, want = family
    conf = tmp_path / "c.conf"
    conf.write_text("[compact]\nauto = on\nratio = 0.01\nmin_dead_mb = 0\n")
    m = mount(p, f"config={conf}")
    assert m.status()["branch_children"] == "1"
    assert "warning" not in m.errors()
    m.sh('echo 1 2 3 4 > "$M/vectors/60"; rm "$M/vectors/1" "$M/vectors/3"')
    err = m.errors()
    assert "warning" in err and c.name in err and "branch child" in err
    cp = m.sh('echo compact > "$M/control"', check=False)
    assert cp.returncode != 0
    assert "compact force" in m.errors() and "detach" in m.errors()
    cp = run_ctl("compact", m.path, check=False)
    assert cp.returncode != 0
    m.sh("sync")
    m.unmount()     # automatic compaction is due, but held off
    st = json.loads(run_ctl("--json", "status", p).stdout)
    assert st["deleted"] == 2 and st["totalVectors"] == 4   # not compacted
    assert export(run_ctl, c) == want
    m = mount(p)
    m.sh('echo compact force > "$M/control"')
    assert m.status()["deleted"] == "0"
    m.unmount()
    assert run_ctl("export", c, check=False).returncode == 3


def test_mounted_child_status_says_parent_as_of(family, run_ctl, tmp_path, mount):
    p, c, _ = family
    size = p.stat().st_size
    ingest(run_ctl, p, [(9, [1.0] * DIM)], tmp_path)
    m = mount(c)
    st = m.status()
    assert int(st["parent_as_of"]) == size < int(st["parent_size"]) == p.stat().st_size
    lin = m.cat("lineage")
    assert f"parent_as_of: {size}" in lin


def query_ids(run_ctl, target, flt):
    q = run_ctl("query", target, "--vector", "0,0,0,0", "--k", "20",
                "--filter", json.dumps(flt)).stdout
    return sorted(int(ln.split()[0]) for ln in q.splitlines() if ln.strip())


def test_inherited_rows_keep_the_parents_metadata(tmp_path, run_ctl, mount):
    """A branch child's inherited rows carry the metadata they had in the
    parent when the child was made: filters, export and xattrs see it (the
    filters saw only the child's own metadata before).  An own row of the
    child (a replaced id) has only the child's metadata; a field set on an
    inherited row through the child wins over the parent's record."""
    p, c = tmp_path / "p.rvf", tmp_path / "c.rvf"
    run_ctl("create", p, "--dim", DIM)
    base = int_rows(6, DIM, seed=7)
    run_ctl("ingest", p, write_jsonl(tmp_path / "m.jsonl", base,
                                     [{"color": "red" if i % 2 else "blue", "n": i}
                                      for i, _ in base]))
    run_ctl("branch", p, c)
    run_ctl("ingest", c, write_jsonl(tmp_path / "c.jsonl",
                                     [(4, [7.0] * DIM), (50, [5.0] * DIM)],
                                     [{"color": "green"}, {"color": "blue"}]))
    blue = {"op": "eq", "field": "color", "value": "blue"}
    want_blue = [2, 6, 50]            # 4 is the child's own row now: green
    assert query_ids(run_ctl, c, blue) == want_blue
    assert query_ids(run_ctl, c, {"op": "ge", "field": "n", "value": 3}) == [3, 5, 6]
    # the parent's later metadata is not the child's: it reads the parent as branched
    run_ctl("ingest", p, write_jsonl(tmp_path / "p2.jsonl", [(2, [1.0] * DIM)],
                                     [{"color": "red"}]))
    assert query_ids(run_ctl, c, blue) == want_blue
    out = run_ctl("export", c).stdout
    meta = {o["id"]: o.get("metadata", {}) for o in map(json.loads, out.splitlines())}
    assert meta[2] == {"color": "blue", "n": 2} and meta[4] == {"color": "green"}

    m = mount(c)
    assert m.getfattr("vectors/6", "user.rvf.meta.color") == "blue"
    req = json.dumps({"vector": [0, 0, 0, 0], "k": 20, "filter": blue})
    groups = parse_results(m.query(req))
    assert sorted(i for i, _, _ in groups[0]) == want_blue
    # a field set on an inherited row through the child is the child's record
    m.sh('setfattr -n user.rvf.meta.color -v red "$M/vectors/6"')
    assert m.getfattr("vectors/6", "user.rvf.meta.color") == "red"
    assert m.getfattr("vectors/6", "user.rvf.meta.n") == "6"
    m.unmount()
    assert query_ids(run_ctl, c, blue) == [2, 50]
    assert query_ids(run_ctl, p, blue) == [4, 6]   # the parent is unchanged
