"""Issue 11 item 12: queries as people write them -- unknown keys and bad
values refused; rvfctl query takes a file of queries (the query language of
the query file) and --ef, on a store file and on a mount alike."""

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import make_store, parse_results

DIM = 4
ROWS = [(1, [0.0] * DIM), (2, [10.0] * DIM), (3, [20.0] * DIM)]


def test_query_file_on_store_and_mount(mount, store, run_ctl, tmp_path):
    p = make_store(run_ctl, store, dim=DIM, rows=ROWS)
    qf = tmp_path / "q.txt"
    qf.write_text("# two queries\nk=1 0 0 0 0\n\nk=2 ef=64 [19, 19, 19, 19]\n")
    out = run_ctl("query", p, "--file", qf).stdout
    groups = parse_results(out)
    assert [[i for i, _, _ in g] for g in groups] == [[1], [3, 2]]
    js = __import__("json").loads(run_ctl("query", p, "--file", qf, "--json").stdout)
    assert [[h["id"] for h in g] for g in js["groups"]] == [[1], [3, 2]]
    stdin = run_ctl("query", p, "--file", "-", input=qf.read_text()).stdout
    assert stdin == out
    m = mount(p)
    assert run_ctl("query", m.path, "--file", qf).stdout == out


def test_unknown_keys_and_bad_values_are_refused(mount, store, run_ctl, tmp_path):
    p = make_store(run_ctl, store, dim=DIM, rows=ROWS)
    for text in ["ef=abc 0 0 0 0", "kk=3 0 0 0 0", "k=0 0 0 0 0",
                 '{"vector":[0,0,0,0],"topk":3}', '{"vector":[0,0,0,0],"ef":"x"}']:
        qf = tmp_path / "bad.txt"
        qf.write_text(text + "\n")
        cp = run_ctl("query", p, "--file", qf, check=False)
        assert cp.returncode == 3, (text, cp.stdout, cp.stderr)
        assert "line 1" in cp.stderr, cp.stderr
    cp = run_ctl("query", p, "--vector", "0,0,0,0", "--ef", "abc", check=False)
    assert cp.returncode == 2
    assert parse_results(run_ctl("query", p, "--vector", "0,0,0,0", "--ef", "8",
                                 "--k", "1").stdout)[0][0][0] == 1
    m = mount(p)
    cp = m.sh('echo "ef=abc 0 0 0 0" > "$M/query"; echo "rc=$?"; cat "$M/query"')
    assert "rc=1" in cp.stdout and "ef must be a positive integer" in cp.stdout
