"""One typed metadata value model through every door (issue 11 items 5, 11,
12, 13): ingest (JSON/JSONL, top-level fields), the user.rvf.meta.* xattrs
(read and written back: getfattr -d / setfattr --restore), rvfctl export
(the store file and the tree), filters, rvfctl query --meta; string ids,
rows without ids, float64 .npy, standard input, several files, npy/fvecs
export with an ids file; and the files still open in the reference."""

import json
import os
import struct
import subprocess

import pytest

from mountlib import mount, rvffs, world_dir  # noqa: F401  (fixtures)
from mountlib import f32, need_root, parse_results, run_as_nobody, write_npy

DIM = 4

# The example: strings that look like other types stay strings;
# real numbers and booleans stay numbers and booleans.
TYPED = {"zip": "02134", "flag": "true", "num": "17", "n": 17, "w": 2.5,
         "whole": 3.0, "ok": True, "big": 18446744073709551615 // 2, "label": "x y"}
# What getfattr shows for each (the xattr text form, rvffs(1)).
XATTR_TEXT = {"zip": "02134", "flag": '"true"', "num": '"17"', "n": "17", "w": "2.5",
              "whole": "3.0", "ok": "true", "big": "9223372036854775807", "label": "x y"}


def typed_jsonl(path):
    rows = [
        {"id": 1, "vector": [1, 0, 0, 0], "metadata": TYPED},
        {"id": 2, "vector": [0, 1, 0, 0], "metadata": {"zip": "10001", "flag": "false",
                                                         "num": "3", "n": 9, "w": 0.5,
                                                         "whole": 1.0, "ok": False,
                                                         "big": 1, "label": "z"}},
        {"id": 3, "vector": [0, 0, 1, 0]},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def typed_store_at(made_once, run_ctl):
    """typed_store_at(PATH) -> PATH holding a store (dim DIM) with the rows
    of typed_jsonl ingested by `rvfctl ingest`: made once per module, then
    copied (made_once)."""
    def make(path):
        run_ctl("create", path, "--dim", DIM)
        run_ctl("ingest", path, typed_jsonl(path.with_suffix(".jsonl")))
    return lambda dest: made_once("typed", make, dest)


@pytest.fixture
def typed_store(typed_store_at, store):
    """typed_store() -> a fresh path in tmp_path holding a copy of the
    typed store (typed_store_at)."""
    return lambda: typed_store_at(store())


@pytest.fixture
def empty_store(made_once, run_ctl, store):
    """empty_store() -> a fresh path in tmp_path holding an empty store of
    dimension DIM (a copy: no rvfctl create each)."""
    return lambda: made_once("empty", lambda p: run_ctl("create", p, "--dim", DIM), store())


def exported(run_ctl, target, *extra, cwd=None):
    out = run_ctl("export", target, *extra, cwd=cwd).stdout
    return {o["id"]: o.get("metadata", {}) for o in map(json.loads, out.splitlines())}


def same_typed(a, b):
    """Equal values of equal JSON types (True != 1, 3.0 != 3)."""
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k], type(a[k])) == (b[k], type(b[k])), k


def ids_matching(m, flt):
    req = json.dumps({"vector": [0, 0, 0, 0], "k": 10, "filter": flt})
    groups = parse_results(m.query(req))
    return sorted(i for i, _, _ in groups[0]) if groups else []


def test_types_are_the_same_through_every_door(mount, typed_store, run_ctl, tmp_path):
    p = typed_store()
    from_file = exported(run_ctl, p)
    same_typed(from_file[1], TYPED)
    m = mount(p)
    # the xattrs: the text form says the type
    for k, text in XATTR_TEXT.items():
        assert m.getfattr("vectors/1", "user.rvf.meta." + k) == text, k
    # filters see numbers as numbers and strings as strings
    assert ids_matching(m, {"op": "gt", "field": "n", "value": 15}) == [1]
    assert ids_matching(m, {"op": "eq", "field": "num", "value": "17"}) == [1]
    assert ids_matching(m, {"op": "eq", "field": "num", "value": 17}) == []
    assert ids_matching(m, {"op": "eq", "field": "flag", "value": True}) == []
    assert ids_matching(m, {"op": "eq", "field": "ok", "value": True}) == [1]

    # Round trip through the xattrs (getfattr -d / setfattr --restore):
    # dump, remove every field, restore.
    dump = m.sh('cd "$M" && getfattr -d -m "^user.rvf.meta." vectors/1 vectors/2').stdout
    (tmp_path / "meta.dump").write_text(dump)
    for i in (1, 2):
        for k in TYPED:
            m.sh(f'setfattr -x user.rvf.meta.{k} "$M/vectors/{i}"')
    assert not any(k.startswith("user.rvf.meta.") for k in m.xattrs("vectors/1"))
    m.sh(f'cd "$M" && setfattr --restore={tmp_path / "meta.dump"}')
    for k, text in XATTR_TEXT.items():
        assert m.getfattr("vectors/1", "user.rvf.meta." + k) == text, k
    # ... and the filter still matches (it stopped matching on the old main)
    assert ids_matching(m, {"op": "gt", "field": "n", "value": 15}) == [1]
    assert ids_matching(m, {"op": "eq", "field": "flag", "value": "true"}) == [1]
    m.sh('sync "$M/vectors"')
    same_typed(exported(run_ctl, m.path)[1], TYPED)
    m.unmount()
    after = exported(run_ctl, p)
    same_typed(after[1], TYPED)
    same_typed(after[2], from_file[2])


def test_restore_into_a_fresh_store_keeps_types(mount, typed_store, empty_store, run_ctl,
                                                tmp_path):
    """A fresh store has no schema: the text alone says the type."""
    src = typed_store()
    m1 = mount(src, "ro")
    dump = m1.sh('cd "$M" && getfattr -d -m "^user.rvf.meta." vectors/1').stdout
    m1.unmount()
    (tmp_path / "d").write_text(dump)
    dst = empty_store()
    (tmp_path / "v.csv").write_text("1,1,0,0,0\n")
    run_ctl("ingest", dst, tmp_path / "v.csv")
    m2 = mount(dst)
    m2.sh(f'cd "$M" && setfattr --restore={tmp_path / "d"}')
    assert ids_matching(m2, {"op": "gt", "field": "n", "value": 15}) == [1]
    m2.unmount()
    same_typed(exported(run_ctl, dst)[1], TYPED)


def test_rsync_X_between_mounts_keeps_types(mount, typed_store, empty_store, run_ctl, tmp_path):
    """rsync -rX sets the xattrs on its ".ID.XXXXXX" temporary; they are
    committed with the vector at the rename, typed as in the source."""
    src = typed_store()
    dst = empty_store()
    (tmp_path / "old.jsonl").write_text('{"id":2,"vector":[5,5,5,5],"metadata":{"stale":1}}\n')
    run_ctl("ingest", dst, tmp_path / "old.jsonl")
    m1 = mount(src, "ro")
    m2 = mount(dst)
    r = subprocess.run(["rsync", "-rX", f"{m1.path}/vectors/", f"{m2.path}/vectors/"],
                       capture_output=True, text=True, timeout=120)
    # Vector files refuse chmod (EPERM); rsync sometimes tries one on a
    # replaced vector and then exits 23 for that alone (not metadata).
    errs = [ln for ln in r.stderr.splitlines()
            if ln.startswith("rsync:") and "failed to set permissions" not in ln]
    assert r.returncode in (0, 23) and not errs, r.stderr
    assert ids_matching(m2, {"op": "gt", "field": "n", "value": 15}) == [1]
    assert m2.getfattr("vectors/1", "user.rvf.meta.num") == '"17"'
    m2.unmount()
    m1.unmount()
    a, b = exported(run_ctl, src), exported(run_ctl, dst)
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for i in a:  # vector 2's old fields are replaced by the copied ones
        same_typed(a[i], b[i])


def test_setfattr_follows_the_field_type(mount, typed_store, run_ctl, tmp_path):
    p = typed_store()
    m = mount(p)
    # bare text into a string field is that string
    m.sh('setfattr -n user.rvf.meta.num -v 20 "$M/vectors/2"')
    assert m.getfattr("vectors/2", "user.rvf.meta.num") == '"20"'
    # a number into a number field
    m.sh('setfattr -n user.rvf.meta.n -v 20 "$M/vectors/2"')
    assert ids_matching(m, {"op": "gt", "field": "n", "value": 15}) == [1, 2]
    # an f64 field takes an integer text exactly
    m.sh('setfattr -n user.rvf.meta.w -v 4 "$M/vectors/2"')
    assert m.getfattr("vectors/2", "user.rvf.meta.w") == "4.0"
    # a value that is not of the field's type is refused, nothing changes
    before = len(m.errors())
    r = m.sh('setfattr -n user.rvf.meta.n -v 1.5 "$M/vectors/2"', check=False)
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert "holds i64 values" in m.errors()[before:]
    assert m.getfattr("vectors/2", "user.rvf.meta.n") == "20"
    r = m.sh('setfattr -n user.rvf.meta.ok -v maybe "$M/vectors/2"', check=False)
    assert r.returncode != 0
    # a new field: the text says the type
    m.sh('setfattr -n user.rvf.meta.fresh -v \'"007"\' "$M/vectors/3"')
    m.sh('setfattr -n user.rvf.meta.count -v 5 "$M/vectors/3"')
    assert m.getfattr("vectors/3", "user.rvf.meta.fresh") == "007"
    assert ids_matching(m, {"op": "ge", "field": "count", "value": 5}) == [3]
    m.sh('sync "$M/vectors"')
    e = exported(run_ctl, m.path)[3]
    assert e == {"fresh": "007", "count": 5}


def test_export_through_the_tree_keeps_types(mount, run_ctl, rvfctl, world_dir,  # noqa: F811
                                             typed_store_at):
    """The tree's door (a caller who may not read the store file) gives the
    file's types: {"num":"17"} stays a string (it came out as 17)."""
    need_root()
    target = world_dir / "s.rvf"
    typed_store_at(target)
    os.chmod(target, 0o600)
    mnt = world_dir / "mnt"
    mnt.mkdir()
    m = mount(target, "allow_other", mnt=mnt)
    want = run_ctl("export", target).stdout
    r = run_as_nobody([rvfctl, "export", m.path])
    assert r.returncode == 0, r.stderr
    assert r.stdout == want
    got = {o["id"]: o.get("metadata", {}) for o in map(json.loads, r.stdout.splitlines())}
    same_typed(got[1], TYPED)
    # query --meta reads the same fields through the tree
    r = run_as_nobody([rvfctl, "query", m.path, "--vector", "1,0,0,0", "--k", "1",
                       "--meta", "--json"])
    assert r.returncode == 0, r.stderr
    same_typed(json.loads(r.stdout)["results"][0]["metadata"], TYPED)


# ---------------------------------------------------------------- ingest

def test_jsonl_as_people_write_it(mount, empty_store, run_ctl, tmp_path):
    """Top-level fields are metadata, "42" is id 42, rows without ids take
    the next ids (store and mount alike)."""
    text = ('{"id":"42","vector":[1,2,3,4],"color":"green","n":17}\n'
            '{"vector":[5,6,7,8],"metadata":{"zip":"02134"},"flag":"true"}\n'
            '{"vector":[9,9,9,9]}\n')
    (tmp_path / "p.jsonl").write_text(text)
    p = empty_store()
    run_ctl("ingest", p, tmp_path / "p.jsonl")
    e = exported(run_ctl, p)
    assert e == {42: {"color": "green", "n": 17}, 43: {"zip": "02134", "flag": "true"}, 44: {}}
    m = mount(tmp_path / "m.rvf", "create", f"dim={DIM}")
    m.sh('echo "1 1 1 1" > "$M/vectors/100"')
    m.sh(f'cp {tmp_path / "p.jsonl"} "$M/ingest/"')
    assert m.vector_ids() == [42, 100, 101, 102]
    assert m.getfattr("vectors/42", "user.rvf.meta.color") == "green"
    assert m.getfattr("vectors/101", "user.rvf.meta.flag") == '"true"'
    assert m.read_vector(102) == [9, 9, 9, 9]


def test_jsonl_refusals_name_the_line(empty_store, run_ctl, tmp_path):
    p = empty_store()
    for text, msg in [
        ('{"id":1,"vector":[1,2,3,4],"tags":["a"]}\n', 'line 1: metadata "tags" is an array'),
        ('{"id":1,"vector":[1,2,3,4]}\n{"id":"07","vector":[1,2,3,4]}\n',
         'line 2: id "07" is not a non-negative integer'),
        ('{"id":1,"vector":[1,2,3,4],"a":1,"metadata":{"a":2}}\n',
         '"a" is both a top-level field and in "metadata"'),
    ]:
        (tmp_path / "x.jsonl").write_text(text)
        r = run_ctl("ingest", p, tmp_path / "x.jsonl", check=False)
        assert r.returncode == 3 and msg in r.stderr, r.stderr
    assert run_ctl("export", p).stdout == ""


def npy_f64(path, rows, dim):
    hdr = "{'descr': '<f8', 'fortran_order': False, 'shape': (%d, %d), }" % (len(rows), dim)
    hdr += " " * (118 - len(hdr)) + "\n"
    body = b"".join(struct.pack("<%dd" % dim, *r) for r in rows)
    path.write_bytes(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(hdr)) + hdr.encode() + body)
    return path


def test_float64_npy(mount, empty_store, run_ctl, tmp_path):
    rows = [[0.1, -2.5, 1e-3, 7], [3e38, 1, 2, 3]]
    npy_f64(tmp_path / "d.npy", rows, DIM)
    p = empty_store()
    run_ctl("ingest", p, tmp_path / "d.npy")
    got = [json.loads(ln)["vector"] for ln in run_ctl("export", p).stdout.splitlines()]
    assert [[f32(x) for x in v] for v in got] == [[f32(x) for x in r] for r in rows]
    # a value that does not fit float32 is refused, nothing committed
    npy_f64(tmp_path / "big.npy", [[1, 2, 3, 4], [1, 2, 1e39, 4]], DIM)
    r = run_ctl("ingest", p, tmp_path / "big.npy", check=False)
    assert r.returncode == 3
    assert "big.npy: row 2: component 3 (1e+39) does not fit float32" in r.stderr
    assert len(run_ctl("export", p).stdout.splitlines()) == 2
    m = mount(p)
    before = len(m.errors())
    r = m.sh(f'cp {tmp_path / "big.npy"} "$M/ingest/"', check=False)
    assert r.returncode != 0 and "does not fit float32" in m.errors()[before:]
    m.sh(f'cp {tmp_path / "d.npy"} "$M/ingest/"')
    assert len(m.vector_ids()) == 4


@pytest.mark.parametrize("where", ["store", "mount"])
def test_ingest_from_standard_input(mount, empty_store, run_ctl, rvfctl, tmp_path, where):
    p = empty_store()
    target = p if where == "store" else mount(p).path
    data = '{"vector":[1,2,3,4],"c":"x"}\n{"id":9,"vector":[4,3,2,1]}\n'
    r = subprocess.run([str(rvfctl), "ingest", str(target), "-", "--format", "jsonl"],
                       input=data, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "stdin.jsonl: 2 vectors committed" in r.stdout
    r = subprocess.run([str(rvfctl), "ingest", str(target), "-"], input=data,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "needs --format" in r.stderr
    e = exported(run_ctl, target)
    assert e == {0: {"c": "x"}, 9: {}}


@pytest.mark.parametrize("where", ["store", "mount"])
def test_several_files_stop_at_the_first_failure(mount, empty_store, run_ctl, tmp_path, where):
    (tmp_path / "a.jsonl").write_text('{"id":1,"vector":[1,1,1,1]}\n')
    (tmp_path / "b.csv").write_text("2,1,1,1,1\n3,1,1,1\n")
    (tmp_path / "c.jsonl").write_text('{"id":4,"vector":[1,1,1,1]}\n')
    p = empty_store()
    target = p if where == "store" else mount(p).path
    r = run_ctl("ingest", target, tmp_path / "a.jsonl", tmp_path / "b.csv",
                tmp_path / "c.jsonl", check=False, cwd=tmp_path)
    assert r.returncode == 3
    assert "a.jsonl: 1 vectors committed" in r.stdout
    assert "b.csv: line 2: expected 4 components, found 3" in r.stderr
    assert "committed: " + str(tmp_path / "a.jsonl") + " (1 vectors); not committed: " + \
        str(tmp_path / "b.csv") + " (failed), " + str(tmp_path / "c.jsonl") + " (not tried)" in r.stderr
    assert sorted(exported(run_ctl, target)) == [1]


# ---------------------------------------------------------------- export, query

def read_npy(path):
    b = path.read_bytes()
    assert b[:8] == b"\x93NUMPY\x01\x00"
    hl = struct.unpack("<H", b[8:10])[0]
    assert (10 + hl) % 64 == 0
    hdr = b[10:10 + hl].decode()
    assert "'descr': '<f4'" in hdr and "'fortran_order': False" in hdr
    shape = tuple(int(x) for x in hdr.split("'shape': (")[1].split(")")[0].split(",") if x.strip())
    data = struct.unpack("<%df" % (shape[0] * shape[1]), b[10 + hl:])
    assert len(b) == 10 + hl + 4 * shape[0] * shape[1]
    return shape, [list(data[i * shape[1]:(i + 1) * shape[1]]) for i in range(shape[0])]


@pytest.mark.parametrize("where", ["store", "mount"])
def test_export_npy_and_fvecs_with_ids(mount, empty_store, run_ctl, tmp_path, where):
    rows = [(5, [0.5, 1, 2, 3]), (70, [-1, 1e-7, 3e38, 4]), (900, [9, 8, 7, 6])]
    (tmp_path / "r.csv").write_text("".join(f"{i},{','.join(map(str, v))}\n" for i, v in rows))
    p = empty_store()
    run_ctl("ingest", p, tmp_path / "r.csv")
    target = p if where == "store" else mount(p).path
    run_ctl("export", target, "--format", "npy", "-o", tmp_path / "x.npy",
            "--ids", tmp_path / "x.ids")
    shape, data = read_npy(tmp_path / "x.npy")
    assert shape == (3, DIM) and data == [[f32(x) for x in v] for _, v in rows]
    assert (tmp_path / "x.ids").read_text() == "5\n70\n900\n"
    run_ctl("export", target, "--format", "fvecs", "-o", tmp_path / "x.fvecs",
            "--ids", tmp_path / "f.ids")
    b = (tmp_path / "x.fvecs").read_bytes()
    assert len(b) == 3 * (4 + 4 * DIM)
    for n, (_, v) in enumerate(rows):
        rec = struct.unpack("<i4f", b[n * 20:(n + 1) * 20])
        assert rec[0] == DIM and list(rec[1:]) == [f32(x) for x in v]
    assert (tmp_path / "f.ids").read_text() == "5\n70\n900\n"
    # npy goes back in: the same vectors (ids are the store's next ones)
    q = empty_store()
    run_ctl("ingest", q, tmp_path / "x.npy")
    assert [[f32(x) for x in json.loads(ln)["vector"]]
            for ln in run_ctl("export", q).stdout.splitlines()] == \
        [[f32(x) for x in v] for _, v in rows]


@pytest.mark.parametrize("where", ["store", "mount"])
def test_query_prints_metadata_with_meta(mount, typed_store, run_ctl, tmp_path, where):
    p = typed_store()
    target = p if where == "store" else mount(p).path
    out = run_ctl("query", target, "--vector", "1,0,0,0", "--k", "3", "--meta").stdout
    lines = out.splitlines()
    assert lines[0].startswith("1 0 {")
    same_typed(json.loads(lines[0].split(" ", 2)[2]), TYPED)
    assert lines[2].split(" ", 2)[2] == "{}"
    # without --meta the output is as before: "ID DISTANCE"
    plain = run_ctl("query", target, "--vector", "1,0,0,0", "--k", "3").stdout.splitlines()
    assert [ln.split(" ", 2)[:2] for ln in lines] == [ln.split(" ") for ln in plain]
    r = run_ctl("query", target, "--file", "-", "--meta", check=False, input="k=1 1 0 0 0\n")
    assert r.returncode == 2


def test_typed_metadata_file_opens_in_the_reference(mount, typed_store, run_ctl, tmp_path, ref):
    """Everything above writes META segments the reference ignores: the file
    still opens in rvf-node with the same vectors (it keeps no metadata)."""
    p = typed_store()
    (tmp_path / "p.jsonl").write_text('{"vector":[2,2,2,2],"color":"green"}\n')
    npy_f64(tmp_path / "d.npy", [[0.1, 0.2, 0.3, 0.4]], DIM)
    run_ctl("ingest", p, tmp_path / "p.jsonl", tmp_path / "d.npy")
    m = mount(p)
    m.sh('setfattr -n user.rvf.meta.n -v 99 "$M/vectors/2"')
    m.sh('setfattr -n user.rvf.meta.fresh -v \'"17"\' "$M/vectors/3"')
    m.sh('sync "$M/vectors"')
    data = {i: m.read_vector(i) for i in m.vector_ids()}
    m.unmount()
    d = ref.dump(p)
    assert d["openError"] is None
    assert d["all_ids"] == sorted(data) == [1, 2, 3, 4, 5]
    sc = ref.selfcheck(p, list(data.items()))
    assert sc["ok"], [r for r in sc["results"] if not r["ok"]][:5]
    assert [f32(x) for x in data[5]] == [f32(x) for x in (0.1, 0.2, 0.3, 0.4)]
