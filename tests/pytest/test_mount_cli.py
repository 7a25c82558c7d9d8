"""rvffs command line: mounting and daemonizing, -f, -o ro / create / dim /
metric / config / threads / k, the writer lock, and one clear line for
every failure to mount."""

import os
import threading

import pytest

from mountlib import mount, rvffs, store_copies  # noqa: F401  (fixtures)
from mountlib import (LOCK_SIZE, daemon_pids, int_rows, is_mounted, knn, parse_results,
                      pid_gone, wait_for)

DIM = 4


@pytest.fixture
def s20(store, store_copies):
    # rvfctl makes it once per module; each test gets a copy of its own
    rows = int_rows(20, DIM, start=1, seed=4)
    return store_copies(store, "s20", dim=DIM, rows=rows), dict(rows)


def one_line(stderr):
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    return lines[0]


def assert_refused(mount, cp, m, mnt=None):
    assert cp.returncode != 0, f"rvffs exited 0:\n{cp.stderr}"
    assert m is None, "it mounted anyway"
    line = one_line(cp.stderr)
    assert line.startswith("rvffs"), line
    if mnt is not None:
        assert not is_mounted(mnt)
        assert daemon_pids(mount.exe, mnt) == [], "a daemon stayed behind"
    return line


# ------------------------------------------------------------------ mounting

def test_returns_once_mounted_and_daemonizes(mount, s20):
    p, vecs = s20
    cp, m = mount.run(p)
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == "" and cp.stderr == ""
    assert m is not None, "rvffs returned before the mount was ready"
    # usable at once, no waiting
    assert m.status()["vectors"] == "20"
    # a daemon of its own: not the process that returned, in its own session
    assert m.pid is not None and int(m.status()["pid"]) == m.pid
    assert os.getsid(m.pid) == m.pid
    with open(f"/proc/{m.pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    assert ppid != os.getpid()


def test_foreground(mount, s20):
    p, vecs = s20
    m = mount.foreground(p)
    assert m.popen.poll() is None, "rvffs -f exited"
    assert m.vector_ids() == sorted(vecs)
    assert int(m.status()["pid"]) == m.popen.pid
    m.unmount()
    assert m.popen.returncode == 0
    assert not m.lock.exists()


def test_unmount_ends_daemon_and_removes_lock(mount, s20):
    p, vecs = s20
    m = mount(p)
    lock = m.lock.read_bytes()
    assert len(lock) == LOCK_SIZE and lock.startswith(b"FLVR"), lock[:8]
    pid = m.pid
    m.unmount()  # also waits for the daemon to exit
    assert not is_mounted(m.path)
    assert wait_for(lambda: pid_gone(pid), 10)
    assert not m.lock.exists(), "the lock is still there after the unmount"
    assert os.listdir(m.path) == []


# ------------------------------------------------------------------ lock

def test_second_writer_refused(mount, s20):
    p, vecs = s20
    m = mount(p)
    lock = m.lock.read_bytes()
    mnt2 = mount.mountpoint()
    # waits 0.5 s for the lock (-o wait=; 5 s by default), then refuses
    cp, m2 = mount.run(p, "wait=0.5", mnt=mnt2)
    line = assert_refused(mount, cp, m2, mnt2)
    assert "lock" in line.lower(), line
    # the first mount is unharmed
    assert m.lock.read_bytes() == lock
    assert m.vector_ids() == sorted(vecs)
    m.sh('echo "1 1 1 1" > "$M/vectors/99"')
    assert 99 in m.vector_ids()


def test_wait_for_a_writer_that_leaves(mount, s20):
    """-o wait=SECONDS: a second mount waits for the first writer's lock;
    when the first unmounts meanwhile, the second mounts.  A bad value is
    refused with a message naming it."""
    p, vecs = s20
    m = mount(p)
    mnt2 = mount.mountpoint()
    cp, m2 = mount.run(p, "wait=abc", mnt=mnt2)
    line = assert_refused(mount, cp, m2, mnt2)
    assert "wait=abc" in line, line
    got = {}
    t = threading.Thread(target=lambda: got.update(r=mount.run(p, "wait=60", mnt=mnt2)))
    t.start()
    try:
        # the second rvffs is waiting (it holds no mount yet); the first leaves
        assert wait_for(lambda: daemon_pids(mount.exe, mnt2) != [], 30)
        assert not is_mounted(mnt2)
    finally:
        m.unmount()
        t.join(90)  # its mount, if any, is the fixture's to clean up
    cp, m2 = got["r"]
    assert cp.returncode == 0 and m2 is not None, cp.stderr
    assert m2.vector_ids() == sorted(vecs)


def test_stale_lock_of_dead_pid_is_broken(mount, s20):
    p, vecs = s20
    m = mount(p)
    stale = m.lock.read_bytes()
    pid = m.pid
    m.unmount()
    assert wait_for(lambda: pid_gone(pid), 10)
    # the lock of a process that is gone, on this host
    m.lock.write_bytes(stale)
    # a live holder's lock would make this mount wait and then fail, so a
    # mount that succeeds broke the stale one: no timing needed
    m2 = mount(p)
    assert m2.lock.read_bytes() != stale, "the stale lock was not replaced"
    m2.sh('echo "1 1 1 1" > "$M/vectors/98"')
    assert 98 in m2.vector_ids()


def test_read_only_takes_no_lock(mount, s20):
    p, vecs = s20
    m = mount(p, "ro")
    assert not m.lock.exists()
    assert m.status()["read_only"] == "true"
    # a writer can come and go meanwhile
    w = mount(p)
    assert w.lock.exists()
    w.unmount()
    assert not m.lock.exists()
    assert m.vector_ids() == sorted(vecs)


# ------------------------------------------------------------------ failures

def test_missing_store(mount, tmp_path):
    mnt = mount.mountpoint()
    cp, m = mount.run(tmp_path / "nope.rvf", mnt=mnt)
    line = assert_refused(mount, cp, m, mnt)
    assert "nope.rvf" in line
    assert not (tmp_path / "nope.rvf").exists()


@pytest.mark.parametrize("content", [b"", b"not an rvf file\n" * 50, bytes(range(256)) * 8])
def test_junk_store(mount, tmp_path, content):
    p = tmp_path / "junk.rvf"
    p.write_bytes(content)
    mnt = mount.mountpoint()
    cp, m = mount.run(p, mnt=mnt)
    line = assert_refused(mount, cp, m, mnt)
    assert "junk.rvf" in line
    assert p.read_bytes() == content, "a refused mount changed the file"
    assert not os.path.exists(str(p) + ".lock")


@pytest.mark.parametrize("opts,words", [
    (["bogus"], ["bogus"]),
    (["threads=abc"], ["threads"]),
    (["k=x"], ["k=x"]),
    (["create"], ["dim"]),
    (["create", "dim=4", "metric=hamming"], ["hamming"]),
    (["config=/nonexistent/rvffs.conf"], ["/nonexistent/rvffs.conf"]),
])
def test_bad_options(mount, s20, tmp_path, opts, words):
    p, vecs = s20
    data = p.read_bytes()
    target = p if "create" not in opts else tmp_path / "new.rvf"
    mnt = mount.mountpoint()
    cp, m = mount.run(target, *opts, mnt=mnt)
    line = assert_refused(mount, cp, m, mnt)
    for w in words:
        assert w in line, line
    assert p.read_bytes() == data
    assert not os.path.exists(str(p) + ".lock")
    assert not (tmp_path / "new.rvf").exists()


def test_bad_mountpoint(mount, s20, tmp_path):
    p, vecs = s20
    cp, m = mount.run(p, mnt=tmp_path / "no" / "such" / "dir")
    assert_refused(mount, cp, m)
    assert not os.path.exists(str(p) + ".lock")


# ------------------------------------------------------------------ create

@pytest.mark.parametrize("metric,name", [(None, "l2"), ("l2", "l2"), ("cosine", "cosine"),
                                         ("ip", "inner_product")])
def test_create(mount, tmp_path, metric, name):
    p = tmp_path / "new.rvf"
    opts = ["create", "dim=5"] + ([f"metric={metric}"] if metric else [])
    m = mount(p, *opts)
    assert p.exists()
    st = m.status()
    assert (st["dimension"], st["metric"], st["vectors"]) == ("5", name, "0")
    assert m.lock.exists()
    m.sh('echo "1 2 3 4 5" > "$M/vectors/1"')
    m.unmount()
    m2 = mount(p)
    assert m2.status()["dimension"] == "5" and m2.vector_ids() == [1]


def test_create_existing_store_opens_it(mount, s20):
    p, vecs = s20
    m = mount(p, "create", "dim=4")
    assert m.vector_ids() == sorted(vecs)


# ------------------------------------------------------------------ config, threads, k

def test_option_k_sets_default(mount, s20):
    p, vecs = s20
    m = mount(p, "k=3")
    g = parse_results(m.query("1 2 3 4"))[0]
    assert [(i, d) for i, d, _ in g] == knn(vecs, [1, 2, 3, 4], 3)
    # k= in the request still wins
    assert len(parse_results(m.query("k=7 1 2 3 4"))[0]) == 7


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_option_threads(mount, s20, threads):
    p, vecs = s20
    m = mount(p, f"threads={threads}")
    req = "\n".join(f"k=5 {i} {-i} {i % 3} 1" for i in range(6))
    gs = parse_results(m.query(req))
    assert [[(i, d) for i, d, _ in g] for g in gs] == \
        [knn(vecs, [i, -i, i % 3, 1], 5) for i in range(6)]


def test_config_file(mount, s20, tmp_path):
    p, vecs = s20
    conf = tmp_path / "rvffs.conf"
    conf.write_text("# rvffs configuration\n\n[mount]\nthreads = 2\n\n[query]\nk = 4\n")
    m = mount(p, f"config={conf}")
    g = parse_results(m.query("0 0 0 0"))[0]
    assert [(i, d) for i, d, _ in g] == knn(vecs, [0, 0, 0, 0], 4)
    m.unmount()
    # -o k wins over the file
    m = mount(p, f"config={conf}", "k=2")
    assert len(parse_results(m.query("0 0 0 0"))[0]) == 2


@pytest.mark.parametrize("text,lineno", [
    ("[mount]\nthreads = 2\nspeed = 9\n", 3),
    ("# c\n\n[query]\nk = 3\n\n[query]\nkk = 1\n", 7),
    ("[nosuchsection]\nx = 1\n", 2),
    ("[query]\nk = 0\n", 2),
    ("[mount]\nthreads = many\n", 2),
])
def test_config_errors_name_file_and_line(mount, s20, tmp_path, text, lineno):
    p, vecs = s20
    conf = tmp_path / "bad.conf"
    conf.write_text(text)
    mnt = mount.mountpoint()
    cp, m = mount.run(p, f"config={conf}", mnt=mnt)
    line = assert_refused(mount, cp, m, mnt)
    assert f"{conf}:{lineno}" in line, line
    assert not os.path.exists(str(p) + ".lock")
