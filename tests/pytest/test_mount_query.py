"""rvffs mount: the query file (plain text and JSON requests, results
`ID DISTANCE` ordered by distance then id, groups separated by one empty
line, errors) and queries/NAME slots."""

import errno
import json
import os

import pytest

from mountlib import mount, rvffs, store_copies  # noqa: F401  (fixtures)
from mountlib import (assert_sorted_group, f32, fmt_vec, int_rows, knn, make_store,
                      parse_results, rand_rows, sqdist, write_csv, write_jsonl)

DIM = 4


@pytest.fixture
def ints(store, store_copies):
    """25 small-integer vectors (ids 1..25): distances are exact.  A copy
    of one store rvfctl makes once per module (a test may change it)."""
    rows = int_rows(25, DIM, start=1, seed=5)
    return store_copies(store, "ints", dim=DIM, rows=rows), dict(rows)


def exact(group):
    return [(i, d) for i, d, _ in group]


def fd_request(path, text):
    """One O_RDWR descriptor: write the request, then read to EOF.
    Returns (errno of the write or 0, text read)."""
    fd = os.open(str(path), os.O_RDWR)
    try:
        werr = 0
        try:
            os.write(fd, text.encode())
        except OSError as e:
            werr = e.errno
        out = b""
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            out += b
        return werr, out.decode()
    finally:
        os.close(fd)


def test_echo_then_cat(mount, ints):
    p, vecs = ints
    m = mount(p)
    q = [1, 2, 3, 4]
    groups = parse_results(m.query("1 2 3 4"))
    assert len(groups) == 1
    assert exact(groups[0]) == knn(vecs, q, 10), "default k is 10, exact distances"
    assert_sorted_group(groups[0])
    # a later cat (another open) still shows the mount's last results
    again = m.cat("query")
    assert exact(parse_results(again)[0]) == knn(vecs, q, 10)


def test_same_descriptor_exec(mount, ints):
    p, vecs = ints
    m = mount(p)
    out = m.sh('exec 3<>"$M/query"; echo "k=3 1 1 1 1" >&3; cat <&3; '
               'echo "k=2 -5 0 5 0" >&3; echo ---; cat <&3; exec 3>&-').stdout
    first, second = out.split("---\n")
    assert exact(parse_results(first)[0]) == knn(vecs, [1, 1, 1, 1], 3)
    assert exact(parse_results(second)[0]) == knn(vecs, [-5, 0, 5, 0], 2), \
        "a second request on the same descriptor does not replace the results"


def test_python_descriptor(mount, ints):
    p, vecs = ints
    m = mount(p)
    werr, out = fd_request(m / "query", "k=4 0 0 0 0\n")
    assert werr == 0
    assert exact(parse_results(out)[0]) == knn(vecs, [0, 0, 0, 0], 4)


def test_several_requests_groups(mount, ints):
    p, vecs = ints
    m = mount(p)
    qs = [[1, 2, 3, 4], [0, 0, 0, 0], [-3, 7, 1, 9]]
    req = "\n".join(["k=2 " + fmt_vec(qs[0]), "k=5 " + fmt_vec(qs[1]), "k=1 " + fmt_vec(qs[2])])
    text = m.query(req)
    assert "\n\n\n" not in text
    groups = parse_results(text)
    assert [exact(g) for g in groups] == [knn(vecs, qs[0], 2), knn(vecs, qs[1], 5),
                                          knn(vecs, qs[2], 1)]
    assert text.count("\n\n") == 2


@pytest.mark.parametrize("req", ["1 2 3 4", "1,2,3,4", "[1, 2, 3, 4]", "1\t2\t3\t4",
                                 "  1 ,2, 3 ,4  ", "[1,2,3,4]", "1.0 2e0 3.000 4",
                                 "ef=64 1 2 3 4", "k=10 ef=5 1 2 3 4"])
def test_plain_forms(mount, ints, req):
    p, vecs = ints
    m = mount(p)
    assert exact(parse_results(m.query(req))[0]) == knn(vecs, [1, 2, 3, 4], 10)


def test_k_bounds(mount, ints):
    p, vecs = ints
    m = mount(p)
    assert len(parse_results(m.query("k=1 1 2 3 4"))[0]) == 1
    allr = parse_results(m.query("k=1000 1 2 3 4"))[0]
    assert exact(allr) == knn(vecs, [1, 2, 3, 4], 1000) and len(allr) == 25


def test_ties_ordered_by_id(mount, tmp_path):
    m = mount(tmp_path / "t.rvf", "create", f"dim={DIM}")
    # all at squared distance 1 from the origin, written in scrambled order
    m.sh('echo "0 0 0 1" > "$M/vectors/9"; echo "0 1 0 0" > "$M/vectors/3"; '
         'echo "-1 0 0 0" > "$M/vectors/7"; echo "1 0 0 0" > "$M/vectors/5"; '
         'echo "0 0 2 0" > "$M/vectors/1"; echo "0 0 0 0" > "$M/vectors/100"')
    g = parse_results(m.query("0 0 0 0"))[0]
    assert [(i, d) for i, d, _ in g] == [(100, 0.0), (3, 1.0), (5, 1.0), (7, 1.0), (9, 1.0),
                                         (1, 4.0)]


def test_json_requests(mount, ints):
    p, vecs = ints
    m = mount(p)
    g = parse_results(m.query(json.dumps({"vector": [1, 2, 3, 4], "k": 3})))[0]
    assert exact(g) == knn(vecs, [1, 2, 3, 4], 3)
    g = parse_results(m.query(json.dumps({"vector": [0.0, -1.0, 2.0, 0.5]})))[0]
    assert exact(g) == knn(vecs, [0, -1, 2, 0.5], 10)
    # mixed plain and JSON lines in one request
    text = m.query('k=1 1 1 1 1\n{"vector": [2, 2, 2, 2], "k": 2}')
    gs = parse_results(text)
    assert [exact(x) for x in gs] == [knn(vecs, [1, 1, 1, 1], 1), knn(vecs, [2, 2, 2, 2], 2)]


def test_json_filters(mount, tmp_path):
    m = mount(tmp_path / "f.rvf", "create", f"dim={DIM}")
    rows = [(i, [float(i), 0, 0, 0]) for i in range(1, 9)]
    meta = [{"color": "red" if i % 2 else "blue"} for i in range(1, 9)]
    write_jsonl(tmp_path / "m.jsonl", rows, meta)
    m.sh('cp m.jsonl "$M/ingest/"')
    red = {i: v for i, v in rows if i % 2}
    blue = {i: v for i, v in rows if not i % 2}
    q = [4, 0, 0, 0]
    named = {"vector": q, "k": 10, "filter": {"op": "eq", "field": "color", "value": "red"}}
    g = parse_results(m.query(json.dumps(named)))[0]
    assert exact(g) == knn(red, q, 10)
    ref_form = {"vector": q, "k": 2,
                "filter": {"op": "eq", "fieldId": 0, "valueType": "string", "value": "blue"}}
    g = parse_results(m.query(json.dumps(ref_form)))[0]
    assert exact(g) == knn(blue, q, 2)
    # a filter that matches nothing: an empty group, not an error
    none = {"vector": q, "filter": {"op": "eq", "field": "color", "value": "green"}}
    assert m.query(json.dumps(none)) == ""


def test_random_data_distances(mount, store, run_ctl):
    rows = rand_rows(40, 6, start=1, seed=9)
    p = make_store(run_ctl, store, dim=6, rows=rows)
    vecs = dict(rows)
    m = mount(p)
    q = [f32(x) for x in (0.5, -1.25, 3.0, 0.1, -0.3, 2.2)]
    g = parse_results(m.query("k=40 " + fmt_vec(q)))[0]
    assert sorted(i for i, _, _ in g) == sorted(vecs)
    assert_sorted_group(g)
    for i, d, raw in g:
        want = sqdist(vecs[i], q)
        assert abs(d - want) <= 1e-5 * max(1.0, want), (i, d, want)


def test_fractional_distances_print_exactly(mount, tmp_path):
    """Dyadic data (multiples of 1/16): every float32 operation is exact, so
    the distances are known exactly and are not integers; the printed text
    must parse back to exactly that float32."""
    import random
    rng = random.Random(17)
    dim = 6
    rows = [(i, [rng.randint(-64, 64) / 16 for _ in range(dim)]) for i in range(1, 31)]
    vecs = dict(rows)
    m = mount(tmp_path / "d.rvf", "create", f"dim={dim}")
    write_csv(tmp_path / "d.csv", rows)
    m.sh('cp d.csv "$M/ingest/"')
    fractional = 0
    for q in ([0.0625 * k for k in range(dim)], [1.5, -2.25, 0.125, 3.0, -0.5, 0.75]):
        g = parse_results(m.query("k=30 " + fmt_vec(q)))[0]
        want = knn(vecs, q, 30)
        assert [i for i, _, _ in g] == [i for i, _ in want]
        for (i, _, raw), (_, wd) in zip(g, want):
            assert f32(float(raw)) == wd, f"id {i}: printed {raw!r}, distance is {wd!r}"
            fractional += wd != int(wd)
    assert fractional > 20


@pytest.mark.parametrize("bad", ["1 2 3", "1 2 3 4 5", "1 2 x 4", "hello", "k=0 1 2 3 4",
                                 "k=-2 1 2 3 4", "k=abc 1 2 3 4", '{"vector": [1, 2, 3, 4]',
                                 '{"vector": [1, 2, 3]}', '{"vector": [1, 2, 3, 4], "k": 0}',
                                 '{"vector": [1, 2, "a", 4]}', '{"k": 3}', "1 2 3 4 k=2",
                                 '{"vector": [1, 2, 3, 4], "filter": {"op": "bogus"}}'])
def test_bad_request(mount, ints, bad):
    p, vecs = ints
    m = mount(p)
    # the write fails with EINVAL; the same descriptor then reads "error: ..."
    werr, out = fd_request(m / "query", bad + "\n")
    assert werr == errno.EINVAL, f"write of {bad!r}: errno {werr}"
    assert out.startswith("error:") and out.endswith("\n") and out.count("\n") == 1, out
    # through the shell: echo fails, a later cat shows the error line
    r = m.sh(f"echo '{bad}' > \"$M/query\"", check=False)
    assert r.returncode != 0 and "Invalid argument" in r.stderr
    assert m.cat("query").startswith("error:")
    assert "query" in m.errors()
    # the daemon keeps serving
    assert exact(parse_results(m.query("1 2 3 4"))[0]) == knn(vecs, [1, 2, 3, 4], 10)


def test_query_empty_store(mount, tmp_path):
    m = mount(tmp_path / "e.rvf", "create", f"dim={DIM}")
    assert m.cat("query") == "", "results before any query"
    werr, out = fd_request(m / "query", "1 2 3 4\n")
    assert werr == 0 and out == ""


def test_query_sees_commits(mount, ints, tmp_path):
    p, vecs = ints
    m = mount(p)
    m.sh('echo "100 100 100 100" > "$M/vectors/500"')
    g = parse_results(m.query("k=1 100 100 100 100"))[0]
    assert exact(g) == [(500, 0.0)]
    m.sh('rm "$M/vectors/500"')
    g = parse_results(m.query("k=1 100 100 100 100"))[0]
    assert g[0][0] != 500


# ------------------------------------------------------------------ queries/

def test_query_slots(mount, ints):
    p, vecs = ints
    m = mount(p)
    m.sh('mkdir "$M/queries/a" "$M/queries/b"')
    assert sorted(m.ls("queries")) == ["a", "b"]
    assert sorted(m.ls("queries/a")) == ["request", "result"]
    m.sh('echo "k=3 1 2 3 4" > "$M/queries/a/request"; echo "k=2 0 0 0 0" > "$M/queries/b/request"')
    ra, rb = m.cat("queries/a/result"), m.cat("queries/b/result")
    assert exact(parse_results(ra)[0]) == knn(vecs, [1, 2, 3, 4], 3)
    assert exact(parse_results(rb)[0]) == knn(vecs, [0, 0, 0, 0], 2)
    # the true sizes in stat
    assert os.stat(m / "queries/a/result").st_size == len(ra.encode())
    assert os.stat(m / "queries/b/result").st_size == len(rb.encode())
    assert m.cat("queries/a/request") == "k=3 1 2 3 4\n"
    # a new request replaces the result
    m.sh('echo "k=1 2 2 2 2" > "$M/queries/a/request"')
    ra2 = m.cat("queries/a/result")
    assert exact(parse_results(ra2)[0]) == knn(vecs, [2, 2, 2, 2], 1)
    assert os.stat(m / "queries/a/result").st_size == len(ra2.encode())
    # a bad request: the result is an error line
    m.sh('echo "1 2" > "$M/queries/b/request"', check=False)
    assert m.cat("queries/b/result").startswith("error:")
    # the result file is read-only; a duplicate name is refused; rmdir removes
    with pytest.raises(OSError) as e:
        open(m / "queries/a/result", "w")
    assert e.value.errno == errno.EACCES
    assert m.sh('mkdir "$M/queries/a"', check=False).returncode != 0
    m.sh('rmdir "$M/queries/a"')
    assert m.ls("queries") == ["b"]
