"""Issue 11, items 2, 3, 6, 7: what shells see when they write vectors and
queries the way people type them.

* one id rule everywhere (canonical decimal) and one float-list rule;
* `echo ... > vectors/N` (bash's dup2: a first, empty close) commits once
  and reports nothing;
* a bad line fails the write() itself, so bash reports it;
* `echo ... > query; cat query` in two shells, and under two users, never
  shows the other's answers."""

import errno
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from mountlib import mount, rvffs, store_copies  # noqa: F401  (fixtures)
from mountlib import int_rows, parse_results, run, write_csv

DIM = 4


@pytest.fixture
def ints(store, store_copies):
    """A copy of one store rvfctl makes once per module (a test may change it)."""
    rows = int_rows(10, DIM, start=1, seed=3)
    return store_copies(store, "ints", dim=DIM, rows=rows), dict(rows)


def bash(m, script, check=False):
    return m.sh(script, check=check)


# -- item 2: bash's first, empty close commits nothing and says nothing --

def test_echo_into_new_vector_has_no_false_error(mount, ints):
    p, _ = ints
    m = mount(p)
    cp = bash(m, 'echo 1 2 3 4 > "$M/vectors/50"; echo "rc=$?"')
    assert "rc=0" in cp.stdout
    assert m.read_vector(50) == [1, 2, 3, 4]
    assert m.errors() == "", "an empty first close must report nothing"
    # replacing an existing vector the same way
    cp = bash(m, 'echo 5 6 7 8 > "$M/vectors/50"; echo "rc=$?"')
    assert "rc=0" in cp.stdout
    assert m.read_vector(50) == [5, 6, 7, 8]
    assert m.errors() == ""
    # opening for writing and closing without a byte changes nothing
    cp = bash(m, ': > "$M/vectors/50"; echo "rc=$?"')
    assert "rc=0" in cp.stdout
    assert m.read_vector(50) == [5, 6, 7, 8]
    assert m.errors() == ""
    # the same for ingest/: bash's first close of the file commits nothing
    cp = bash(m, 'echo "60 1 1 1 1" > "$M/ingest/a.txt"; echo "rc=$?"')
    assert "rc=0" in cp.stdout
    assert m.read_vector(60) == [1, 1, 1, 1]
    assert m.errors() == ""


# -- item 7: a bad line fails the write, so the shell says so --

def test_wrong_dimension_fails_the_write(mount, ints):
    p, _ = ints
    m = mount(p)
    cp = bash(m, 'echo "1 2 3" > "$M/vectors/5000"; echo "rc=$?"')
    assert "rc=1" in cp.stdout, "bash must report the failed write"
    assert "Invalid argument" in cp.stderr
    assert not (m.path / "vectors/5000").exists()
    errs = m.errors()
    assert "vectors/5000" in errs and "expected 4 numbers, found 3" in errs
    assert errs.count("\n") == 1, f"one error line, not one per close: {errs!r}"
    cp = bash(m, 'echo "1 2 x 4" > "$M/vectors/5001"; echo "rc=$?"')
    assert "rc=1" in cp.stdout
    assert not (m.path / "vectors/5001").exists()
    cp = bash(m, 'printf "1 2 3 4\\n5\\n" > "$M/vectors/5002"; echo "rc=$?"')
    assert "rc=1" in cp.stdout, "a vector file is one line"
    assert not (m.path / "vectors/5002").exists()


def test_bad_ingest_line_fails_the_write(mount, ints):
    p, _ = ints
    m = mount(p)
    cp = bash(m, 'printf "70 1 2 3 4\\n71 1 2 3\\n" > "$M/ingest/b.txt"; echo "rc=$?"')
    assert "rc=1" in cp.stdout, "printf into ingest/ must fail at the bad line"
    assert "line 2" in m.errors()
    assert 70 not in m.vector_ids(), "a refused file commits nothing"
    cp = bash(m, 'printf \'{"id":72,"vector":[1,2,3,4]}\\n{"id":73,"vector":[1]}\\n\' '
                 '> "$M/ingest/c.jsonl"; echo "rc=$?"')
    assert "rc=1" in cp.stdout
    assert 72 not in m.vector_ids()


# -- item 3: one id rule, one float-list rule --

@pytest.mark.parametrize("name", ["007", " 7", "-1", " -1", "+7", "7 ", "18446744073709551616"])
def test_non_canonical_ids_are_refused(mount, ints, name):
    p, _ = ints
    m = mount(p)
    path = m.path / "vectors" / name
    with pytest.raises(OSError) as e:
        with open(path, "w") as f:
            f.write("1 2 3 4\n")
    assert e.value.errno == 22
    ids = m.vector_ids()
    assert 7 in ids and 18446744073709551615 not in ids
    assert m.read_vector(7) != [1, 2, 3, 4]
    assert not os.path.exists(path)
    with pytest.raises(OSError) as e:
        os.unlink(path)
    assert e.value.errno == errno.ENOENT, e.value  # the lookup finds no such file
    assert 7 in m.vector_ids()


def test_ids_the_same_through_every_door(mount, ints, run_ctl, tmp_path):
    p, _ = ints
    cp = run_ctl("delete", p, "--ids", "007", check=False)
    assert cp.returncode != 0, "rvfctl delete --ids 007 must be refused"
    bad = write_csv(tmp_path / "bad.csv", [])
    bad.write_text("007,1,2,3,4\n")
    cp = run_ctl("ingest", p, bad, check=False)
    assert cp.returncode == 3 and "007" in cp.stderr
    m = mount(p)
    cp = bash(m, 'echo "delete 007" > "$M/control"; echo "rc=$?"')
    assert "rc=1" in cp.stdout
    assert 7 in m.vector_ids(), "no door deleted id 7 for 007"


def test_float_lists_the_same_through_every_door(mount, ints, run_ctl):
    p, _ = ints
    m = mount(p)
    for text in ["1,,2,3,4", "1 2 3 4]", "[1 2 3 4", "1 2 3 0x4", "1 2 3 nan"]:
        cp = bash(m, f'echo "{text}" > "$M/vectors/80"; echo "rc=$?"')
        assert "rc=1" in cp.stdout, text
        cp = bash(m, f'echo "{text}" > "$M/query"; echo "rc=$?"; cat "$M/query"')
        assert "rc=1" in cp.stdout and "\nerror: " in cp.stdout, (text, cp.stdout)
        cp = run_ctl("query", m.path, "--vector", text, check=False)
        assert cp.returncode != 0, text
    assert 80 not in m.vector_ids()
    for text in ["[1, 2, 3, 4]", "1,2,3,4", "1 2 3 4", "1 , 2 ,3, 4"]:
        cp = bash(m, f'echo "{text}" > "$M/vectors/81"; echo "rc=$?"')
        assert "rc=0" in cp.stdout, text
        assert m.read_vector(81) == [1, 2, 3, 4]
        assert not m.query(text).startswith("error"), text


# -- item 6: results belong to the reader --

LOOP = r'''
for i in $(seq 1 40); do
  echo "k=1 $V $V $V $V" > "$M/query"
  got=$(cat "$M/query")
  case "$got" in "$WANT "*) ;; *) echo "MIXED: wanted $WANT got [$got]"; exit 1;; esac
done
echo done
'''


TWO = [(1, [0.0] * DIM), (2, [100.0] * DIM)]


@pytest.mark.parametrize("sessions", ["same", "separate"])
def test_two_shells_never_see_each_others_answers(mount, store, store_copies, sessions):
    p = store_copies(store, "two", dim=DIM, rows=TWO)
    m = mount(p)
    procs = []
    for v, want in (("0", "1"), ("100", "2")):
        env = m.env()
        env.update(V=v, WANT=want)
        procs.append(subprocess.Popen(["bash", "-c", LOOP], env=env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      start_new_session=sessions == "separate"))
    for pr in procs:
        out, err = pr.communicate(timeout=120)
        assert pr.returncode == 0 and "done" in out, out + err


NOBODY = 65534


@pytest.fixture
def world():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run a second user")
    d = Path(tempfile.mkdtemp(prefix="rvf-correct-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def as_nobody(script, env):
    return subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", "bash", "-c", script],
                          env=env, capture_output=True, text=True, timeout=60, cwd="/")


def test_another_user_never_reads_my_results(mount, store_copies, world):
    p = store_copies(lambda: world / "s.rvf", "two", dim=DIM, rows=TWO)
    mnt = world / "mnt"
    mnt.mkdir()
    m = mount(p, "allow_other", mnt=mnt)
    out = m.query("k=1 0 0 0 0")
    assert parse_results(out)[0][0][0] == 1
    # nobody reading from a fresh descriptor: nothing of root's
    cp = as_nobody('cat "$M/query"', m.env())
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "", f"uid {NOBODY} read root's results: {cp.stdout!r}"
    # nobody's own query, then root's cat: each sees its own
    cp = as_nobody('echo "k=1 100 100 100 100" > "$M/query"; cat "$M/query"', m.env())
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout.startswith("2 "), cp.stdout
    again = m.cat("query")
    assert again.startswith("1 "), f"root must still see its own results: {again!r}"
    cp = as_nobody('cat "$M/query"', m.env())
    assert "1 0" not in cp.stdout


# Found by CI: a runner that starts the suite in its own pid namespace
# without a session of its own shows session 0 for every process in /proc,
# and a daemon whose /proc is another namespace's cannot read its callers at
# all.  `echo > query; cat query` must work in both.
PIDNS_SCRIPT = r'''
set -u
"$RVFFS" -f "$STORE" "$MNT" 2>"$LOG" &
daemon=$!
for i in $(seq 1 200); do mountpoint -q "$MNT" && break; sleep 0.05; done
out=""
for i in 1 2 3; do
  echo "k=1 0 0 0 0" > "$MNT/query"
  out="$out$(cat "$MNT/query" | head -1 | cut -d' ' -f1)/"
done
# a shell of its own session still sees its own answers
setsid bash -c 'echo "k=1 100 100 100 100" > "$MNT/query"; cat "$MNT/query"' | cut -d' ' -f1
echo "got=$out"
fusermount3 -u "$MNT"
wait $daemon
'''


@pytest.mark.parametrize("proc", ["own-proc", "host-proc"])
def test_query_idiom_inside_a_pid_namespace(rvffs, store, store_copies, tmp_path, proc):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a pid namespace")
    p = store_copies(store, "two", dim=DIM, rows=TWO)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cmd = ["unshare", "--pid", "--fork"] + (["--mount-proc"] if proc == "own-proc" else [])
    env = dict(os.environ, RVFFS=str(rvffs), STORE=str(p), MNT=str(mnt),
               LOG=str(tmp_path / "daemon.log"))
    try:
        cp = subprocess.run(cmd + ["bash", "-c", PIDNS_SCRIPT], env=env, text=True,
                            capture_output=True, timeout=120)
    finally:
        if proc == "host-proc" and os.path.ismount(mnt):
            run(["fusermount3", "-uz", str(mnt)], check=False)
    log = (tmp_path / "daemon.log").read_text(errors="replace")
    assert "got=1/1/1/" in cp.stdout, cp.stdout + cp.stderr + log
    assert cp.stdout.splitlines()[0] == "2", cp.stdout + cp.stderr + log
