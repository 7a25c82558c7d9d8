"""rvffs mount: search codes.  On large enough stores (every metric) the
daemon builds 8-bit codes of the rows after the first query and uses them to
choose which rows an exact scan measures; commits carry them over.  Answers
must not change: every test compares against a mount with -o codes=off and,
where the arithmetic is exact, against a Python brute force."""

import functools
import os
import random

import pytest

from mountlib import mount, rvffs, store_copies  # noqa: F401  (fixtures)
from mountlib import (fmt_vec, int_rows, knn, make_store, parse_results, run,
                      wait_for, write_csv)

DIM = 64
N = 9000          # 576k floats: above the size codes are built for
ATTR = "user.rvf.search_codes"


def codes_state(m):
    return os.getxattr(str(m / "query"), ATTR).decode()


def wait_ready(m):
    assert wait_for(lambda: codes_state(m).startswith("ready"), timeout=60), \
        f"codes not ready: {codes_state(m)}"


@functools.lru_cache(maxsize=None)
def cached_int_rows(n, dim, seed):
    """int_rows(n, dim, start=1, seed), made once per module (seconds of
    Python for the large ones): callers get copies.  The same numbers
    (test_codes_change_no_answer's brute-force check of a far query
    depends on them: its distance is not exact in float32)."""
    return tuple((i, tuple(v)) for i, v in int_rows(n, dim, start=1, seed=seed))


def rows_of(n, dim, seed):
    return [(i, list(v)) for i, v in cached_int_rows(n, dim, seed)]


@pytest.fixture
def big(store, store_copies):
    """N integer vectors in [-20, 20]: many exact ties, exact distances.
    A copy of one store the module makes once (each test may change it)."""
    p = store_copies(store, "big", dim=DIM, rows=lambda: rows_of(N, DIM, 11))
    return p, dict(rows_of(N, DIM, 11))


def requests(vecs, n, seed):
    """Queries on stored rows, next to them, far outside the data, and
    random: text lines with k."""
    rng = random.Random(seed)
    ids = sorted(vecs)
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            q = vecs[rng.choice(ids)]
        elif kind == 1:
            q = [x + 0.5 for x in vecs[rng.choice(ids)]]
        elif kind == 2:
            q = [rng.choice((-1000.0, 1000.0)) for _ in range(DIM)]
        else:
            q = [float(rng.randint(-25, 25)) for _ in range(DIM)]
        out.append((rng.choice((1, 10, 37)), q))
    return out


def batch_text(reqs):
    return "".join(f"k={k} {fmt_vec(q)}\n" for k, q in reqs)


def ask(m, reqs):
    """All requests in one write; the results text."""
    path = m.mounter.tmp / f"req-{m.path.name}.txt"
    path.write_text(batch_text(reqs))
    return m.sh(f'cat "{path}" > "$M/query" && cat "$M/query"').stdout


def query_here(m, request):
    """m.query(request) from this process: the request written in one open
    of query, the results read in another (two process starts fewer per
    request than the shell's echo and cat)."""
    with open(m / "query", "w") as f:
        f.write(request + "\n")
    with open(m / "query") as f:
        return f.read()


def test_codes_change_no_answer(mount, big):
    p, vecs = big
    m = mount(p)
    assert codes_state(m) == "none", "no codes before the first query"
    assert ATTR in os.listxattr(str(m / "query"))
    reqs = requests(vecs, 40, seed=3)
    before = ask(m, reqs)             # exact scan; starts the build
    wait_ready(m)
    st = codes_state(m)
    assert st.startswith("ready (") and int(st.split("(")[1].split()[0]) >= N * DIM
    with_codes = ask(m, reqs)
    one_by_one = "\n".join(query_here(m, batch_text([r]).strip()) for r in reqs)
    m.unmount()

    plain = mount(p, "codes=off")
    assert codes_state(plain) == "off"
    without = ask(plain, reqs)
    assert with_codes == without == before, "codes changed an answer"
    assert one_by_one == without
    groups = parse_results(with_codes)
    assert len(groups) == len(reqs)
    for (k, q), g in list(zip(reqs, groups))[:6]:
        assert [(i, d) for i, d, _ in g] == knn(vecs, q, k)


def test_commits_keep_codes(mount, big, tmp_path):
    """Commits (an ingest, echo > vectors/N for a new and an existing id,
    rm) hand the codes to the new view: they are ready at once, never
    rebuilt, and every answer stays the exact scan's."""
    p, vecs = big
    m = mount(p)
    m.query(fmt_vec([0.0] * DIM))
    wait_ready(m)
    new = [(N + 1 + i, [float(30 + i)] * DIM) for i in range(3)]
    src = write_csv(tmp_path / "more.csv", new)
    m.sh(f'cp "{src}" "$M/ingest/more.csv"')
    assert codes_state(m).startswith("ready"), codes_state(m)
    q = [30.0] * DIM
    got = parse_results(m.query(f"k=2 {fmt_vec(q)}"))[0]
    assert [(i, d) for i, d, _ in got] == [(N + 1, 0.0), (N + 2, float(DIM))]
    vecs.update(dict(new))
    # a new id, an existing id rewritten, a deletion: bash idioms
    v_new, v_old = [float(i % 5) for i in range(DIM)], [7.0] * DIM
    m.sh(f'echo "{fmt_vec(v_new)}" > "$M/vectors/{N + 10}"')
    m.sh(f'echo "{fmt_vec(v_old)}" > "$M/vectors/5"')
    m.sh('rm "$M/vectors/6"')
    vecs[N + 10], vecs[5] = v_new, v_old
    del vecs[6]
    assert codes_state(m).startswith("ready"), codes_state(m)
    reqs = requests(vecs, 24, seed=9)
    reqs.append((3, v_old))
    reqs.append((3, v_new))
    out = ask(m, reqs)
    m.unmount()
    assert out == ask(mount(p, "codes=off"), reqs)
    for (k, q), g in list(zip(reqs, parse_results(out)))[-2:]:
        assert [(i, d) for i, d, _ in g] == knn(vecs, q, k)


def test_four_bit_codes(mount, big, tmp_path, monkeypatch):
    """RVF_CODES_BITS=4 (what large L2 stores get): half the bytes, the
    same answers, before and after commits."""
    p, vecs = big
    monkeypatch.setenv("RVF_CODES_BITS", "4")
    m = mount(p)
    reqs = requests(vecs, 40, seed=5)
    before = ask(m, reqs)
    wait_ready(m)
    size = int(codes_state(m).split("(")[1].split()[0])
    assert size < N * DIM, f"4-bit codes take {size} bytes for {N} x {DIM}"
    assert ask(m, reqs) == before
    new = [(N + 1 + i, [float(30 + i)] * DIM) for i in range(3)]
    m.sh(f'cp "{write_csv(tmp_path / "more4.csv", new)}" "$M/ingest/more.csv"')
    m.sh(f'echo "{fmt_vec([7.0] * DIM)}" > "$M/vectors/5"')
    m.sh('rm "$M/vectors/6"')
    assert codes_state(m).startswith("ready"), codes_state(m)
    vecs.update(dict(new))
    vecs[5] = [7.0] * DIM
    del vecs[6]
    reqs = requests(vecs, 24, seed=8) + [(3, [7.0] * DIM), (2, [30.0] * DIM)]
    out = ask(m, reqs)
    m.unmount()
    monkeypatch.delenv("RVF_CODES_BITS")
    assert out == ask(mount(p, "codes=off"), reqs), "4-bit codes changed an answer"
    for (k, q), g in list(zip(reqs, parse_results(out)))[-2:]:
        assert [(i, d) for i, d, _ in g] == knn(vecs, q, k)


def test_codes_off_by_config(mount, big, tmp_path):
    p, _ = big
    conf = tmp_path / "codes.conf"
    conf.write_text("[query]\ncodes = off\n")
    m = mount(p, f"config={conf}")
    m.query(fmt_vec([1.0] * DIM))
    assert codes_state(m) == "off"
    bad = tmp_path / "bad.conf"
    bad.write_text("[query]\ncodes = sometimes\n")
    cp, mm = m.mounter.run(p, f"config={bad}")
    assert cp.returncode == 2 and mm is None
    assert "bad.conf:2" in cp.stderr and "codes must be auto or off" in cp.stderr


def test_codes_memory_cap(mount, store, run_ctl, tmp_path):
    """[query] codes_max_mb below the codes' size: none are built, and the
    state says why; a cap above it: they are."""
    rows = int_rows(4500, 256, start=1, seed=6)   # codes: ~1.2 MB
    p = make_store(run_ctl, store, dim=256, rows=rows)
    conf = tmp_path / "cap.conf"
    conf.write_text("[query]\ncodes_max_mb = 1\n")
    m = mount(p, f"config={conf}")
    q = fmt_vec([1.0] * 256)
    before = m.query(q)
    assert codes_state(m) == "unavailable: larger than the memory cap"
    m.unmount()
    conf.write_text("[query]\ncodes_max_mb = 2\n")
    m = mount(p, f"config={conf}")
    m.query(q)
    wait_ready(m)
    assert m.query(q) == before


def test_bad_codes_option(mount, big):
    p, _ = big
    cp, m = mount.run(p, "codes=maybe")
    assert cp.returncode == 2 and m is None
    assert "codes must be auto or off" in cp.stderr


def test_small_store_scans(mount, store, run_ctl):
    """Below the size where a scan is already fast, no codes are built."""
    rows = int_rows(50, 4, start=1, seed=2)
    m = mount(make_store(run_ctl, store, dim=4, rows=rows))
    m.query("1 2 3 4")
    assert codes_state(m) == "none"


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_cosine_and_ip_codes(mount, store, run_ctl, metric):
    """Cosine and inner-product stores get codes too, with the exact
    scan's answers: ties, zero rows, queries on rows."""
    rows = rows_of(N, DIM, 4)
    rows[10] = (rows[10][0], [0.0] * DIM)                 # a zero vector
    rows[11] = (rows[11][0], [x * 2 for x in rows[12][1]])  # parallel rows
    p = make_store(run_ctl, store, dim=DIM, rows=rows, metric=metric)
    vecs = dict(rows)
    m = mount(p)
    reqs = requests(vecs, 30, seed=5)
    reqs.append((5, rows[12][1]))
    before = ask(m, reqs)
    wait_ready(m)
    with_codes = ask(m, reqs)
    m.unmount()
    assert with_codes == before == ask(mount(p, "codes=off"), reqs)
    if metric == "ip":  # small integers: the dot products are exact
        for (k, q), g in list(zip(reqs, parse_results(with_codes)))[:8]:
            want = sorted((-sum(a * b for a, b in zip(v, q)), i)
                          for i, v in vecs.items())[:k]
            assert [(i, d) for i, d, _ in g] == [(i, d) for d, i in want]
