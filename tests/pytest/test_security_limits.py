"""Security: no user makes the daemon grow without bound or forge its log.

A root daemon mounted with `allow_other` (and, where it matters, with
`default_permissions` too); the hostile steps run as uid 65534. Each limit
of rvffs.conf [limits] refuses with a clear errno and a line in `errors`,
and the daemon's memory stays bounded: its VmHWM (peak resident set, from
/proc) is read before and after. Steps only the mounting user may take
(ingest/, queries/ slots: see test_security_perms.py) run as root.
"""

import errno
import hashlib
import json
import os
import select
import subprocess
import zlib
from pathlib import Path

import pytest

from mountlib import mount, rvffs, world_dir  # noqa: F401  (fixtures)
from mountlib import NOBODY, need_root, nobody_ops, parse_results, run_as_nobody

DIM = 4
MiB = 1 << 20


def vm(pid, field="VmHWM"):
    """A memory figure of process pid, in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith(field + ":"):
                return int(ln.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def shared(world_dir, run_ctl, mount, made_once):  # noqa: F811
    """shared(rows=10, opts=(), limits=None, kernel=None) -> Mount of a
    store in a directory uid 65534 can traverse; limits: rvffs.conf
    [limits] lines.  Each store is made by rvfctl once per module, then
    copied (made_once)."""
    need_root()

    def make_store_file(path, rows, kernel):
        run_ctl("create", path, "--dim", DIM)
        if rows:
            src = path.with_suffix(".csv")
            src.write_text("".join(f"{i},{i % 97},{i % 89},{i % 83},{i % 79}\n"
                                   for i in range(1, rows + 1)))
            run_ctl("ingest", path, src)
        if kernel is not None:
            img = path.with_suffix(".img")
            img.write_bytes(kernel)
            run_ctl("embed-kernel", path, img, "--compress")
            img.unlink()

    def make(rows=10, opts=("allow_other",), limits=None, kernel=None):
        key = (rows, None if kernel is None else hashlib.sha256(kernel).hexdigest())
        store = made_once(("shared", key), lambda p: make_store_file(p, rows, kernel),
                          world_dir / "s.rvf")
        o = list(opts)
        if limits:
            conf = world_dir / "rvffs.conf"
            conf.write_text("[limits]\n" + "".join(f"{k} = {v}\n" for k, v in limits.items()))
            o.append(f"config={conf}")
        mnt = world_dir / "mnt"
        mnt.mkdir()
        return mount(store, *o, mnt=mnt)

    return make


# ------------------------------------------------------------- query file

HOSTILE_QUERY = r'''
import errno, os, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
chunk = b"1" * int(sys.argv[2])
n, err = 0, "none"
for i in range(int(sys.argv[3])):
    try:
        os.write(fd, chunk)
        n += 1
    except OSError as e:
        err = errno.errorcode[e.errno]
        break
try:
    os.close(fd)
except OSError:
    pass
print(n, err)
'''


@pytest.mark.parametrize("opts", [("allow_other",), ("allow_other", "default_permissions")])
def test_query_line_without_newline_is_bounded(shared, opts):
    """32 MiB without a newline in 4 KiB writes: refused with EFBIG at the
    default request_max (16 MiB), memory bounded, and no rescan of the
    unfinished line at each write (that was quadratic: minutes of CPU)."""
    m = shared(opts=opts)
    hwm, cpu = vm(m.pid), cpu_seconds(m.pid)
    cp = run_as_nobody(["/usr/bin/python3", "-c", HOSTILE_QUERY, f"{m.path}/query",
                        4096, 8192], check=True, timeout=300)
    n, err = cp.stdout.split()
    assert err == "EFBIG", cp.stdout
    assert int(n) * 4096 == 16 * MiB, f"refused after {n} writes of 4 KiB"
    assert "query: a request is at most 16777216 bytes (request_max" in m.errors()
    grew = vm(m.pid) - hwm
    assert grew < 64 * MiB, f"the daemon grew by {grew >> 20} MiB"  # 16 MiB held; ASan adds its share
    # CPU time of the daemon, not wall time: load does not inflate it. A
    # rescan per write costs 4096 writes x 8 MiB on average (tens of s).
    used = cpu_seconds(m.pid) - cpu
    assert used < 10, f"the daemon used {used:.1f} s of CPU for 16 MiB of writes"
    # The query file still works for the next writer.
    out = run_as_nobody(["bash", "-c", 'printf "k=1 1 1 1 1\\n" > "$0/query"; cat "$0/query"',
                         str(m.path)], check=True).stdout
    assert [i for i, _, _ in parse_results(out)[0]] == [1]


def test_request_max_is_configurable(shared):
    m = shared(limits={"request_max": "64K"})
    cp = run_as_nobody(["/usr/bin/python3", "-c", HOSTILE_QUERY, f"{m.path}/query",
                        4096, 100], check=True)
    assert cp.stdout.split() == ["16", "EFBIG"]
    assert "at most 65536 bytes (request_max" in m.errors()


MANY_FDS = r'''
import errno, os, sys
fds = [os.open(sys.argv[1], os.O_WRONLY) for _ in range(8)]
out = []
for fd in fds:
    try:
        os.write(fd, b"1" * 60000)
        out.append("ok")
    except OSError as e:
        out.append(errno.errorcode[e.errno])
for fd in fds:
    try:
        os.close(fd)
    except OSError:
        pass
fd = os.open(sys.argv[1], os.O_WRONLY)  # all closed: the budget is back
os.write(fd, b"1" * 60000)
print(" ".join(out))
'''


def test_query_memory_per_user_over_descriptors(shared):
    """request_max is per descriptor: many descriptors would multiply it.
    query_user_max bounds what one user holds over all of them."""
    m = shared(limits={"request_max": "64K", "query_user_max": "256K"})
    cp = run_as_nobody(["/usr/bin/python3", "-c", MANY_FDS, f"{m.path}/query"], check=True)
    assert cp.stdout.split() == ["ok"] * 4 + ["ENOMEM"] * 4, cp.stdout
    assert "query: uid 65534 would hold" in m.errors() and "query_user_max (262144)" in m.errors()


# ------------------------------------------------------------- results

def test_results_of_a_batch_are_bounded(shared):
    """1000 queries at k=1048576 against 20000 vectors asked for 20M hits
    (847 MB before): E2BIG naming results_max, memory bounded; an ordinary
    batch still runs."""
    m = shared(rows=20000)
    hwm = vm(m.pid)
    batch = "".join(f"k=1048576 {i} 1 2 3\n" for i in range(1000))
    script = ('import errno, os, sys\n'
              'fd = os.open(sys.argv[1], os.O_RDWR)\n'
              'try:\n    os.write(fd, sys.argv[2].encode()); print("ok")\n'
              'except OSError as e:\n    print(errno.errorcode[e.errno])\n'
              'print(os.read(fd, 4096).decode().splitlines()[0])\n')
    cp = run_as_nobody(["/usr/bin/python3", "-c", script, f"{m.path}/query", batch],
                       check=True, timeout=120)
    verdict, first = cp.stdout.splitlines()[:2]
    assert verdict == "E2BIG", cp.stdout
    assert first.startswith("error: the results would take") and "results_max" in first, first
    assert "results_max" in m.errors()
    grew = vm(m.pid) - hwm
    assert grew < 64 * MiB, f"the daemon grew by {grew >> 20} MiB"
    # k is capped by the vectors there are: k=1048576 alone is 20000 hits.
    out = run_as_nobody(["bash", "-c", 'printf "k=1048576 1 1 2 3\\n" > "$0/query"; cat "$0/query"',
                         str(m.path)], check=True).stdout
    assert len(parse_results(out)[0]) == 20000


def test_results_max_is_configurable(shared):
    m = shared(rows=100, limits={"results_max": "64K"})
    ok = run_as_nobody(["bash", "-c", 'printf "k=10 1 1 2 3\\n" > "$0/query"; cat "$0/query"',
                        str(m.path)], check=True).stdout
    assert len(parse_results(ok)[0]) == 10
    batch = "".join(f"k=100 {i} 1 2 3\n" for i in range(20))  # 2000 hits
    got = nobody_ops([["write", f"{m.path}/query", batch]])
    assert got == ["E2BIG"], got
    assert "more than results_max (65536)" in m.errors()


UNREAD = r'''
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
n, err = 0, "none"
for i in range(int(sys.argv[2])):
    try:
        os.write(fd, b"k=100 1 2 3 4\n")
        n += 1
    except OSError as e:
        err = errno.errorcode[e.errno]
        break
held = os.read(fd, 1 << 20).decode().split("\n\n")
os.write(fd, b"k=1 1 2 3 4\n")  # once read, writing works again
print(n, err, len(held), os.read(fd, 1 << 20).decode().strip())
'''


def test_unread_results_are_bounded(shared):
    """Batches written on one descriptor and never read piled up their
    results without bound; now at most results_max are held (E2BIG)."""
    m = shared(rows=100, limits={"results_max": "64K"})
    cp = run_as_nobody(["/usr/bin/python3", "-c", UNREAD, f"{m.path}/query", 1000], check=True)
    n, err, groups, again = cp.stdout.split(" ", 3)
    assert err == "E2BIG" and 10 < int(n) < 1000, cp.stdout
    assert int(groups) == int(n), "the results held are those of the batches accepted"
    assert again.split() == ["2", "6"], cp.stdout  # (2,2,2,2) is nearest
    assert "results not read yet would take" in m.errors()


# ------------------------------------------------------------- slots (mounting user)

def test_slot_request_sparse_write_is_refused(shared):
    """A 1-byte write at offset 2 GiB into queries/NAME/request grew the
    daemon by 2 GB; now EFBIG and nothing allocated; a hole within the
    limit is refused too (EINVAL); request_max applies to slots."""
    m = shared(limits={"request_max": "1M"})
    os.mkdir(m / "queries" / "s")
    req = m / "queries" / "s" / "request"
    req.write_text("k=1 1 1 1 1\n")
    rss = vm(m.pid, "VmRSS")
    fd = os.open(req, os.O_WRONLY)
    try:
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"x", 2 << 30)
        assert e.value.errno == errno.EFBIG
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"x", 100)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            os.pwrite(fd, b"x" * 4096, MiB - 100)
        assert e.value.errno == errno.EFBIG
    finally:
        os.close(fd)
    assert vm(m.pid, "VmRSS") - rss < 32 * MiB
    assert req.read_text() == "k=1 1 1 1 1\n"
    assert (m / "queries" / "s" / "result").read_text() == "1 0\n"
    errs = m.errors()
    assert "queries/s/request: a request is at most 1048576 bytes" in errs
    assert "queries/s/request: a write at offset 100 would leave a hole" in errs


def test_slots_per_user(shared):
    m = shared(limits={"slots_max": 3})
    for n in "abc":
        os.mkdir(m / "queries" / n)
    with pytest.raises(OSError) as e:
        os.mkdir(m / "queries" / "d")
    assert e.value.errno == errno.EDQUOT
    assert "queries/d: uid 0 has 3 query slots already (slots_max" in m.errors()
    os.rmdir(m / "queries" / "a")
    os.mkdir(m / "queries" / "d")
    assert sorted(m.ls("queries")) == ["b", "c", "d"]


def test_default_slots_max(shared):
    m = shared()
    made = 0
    for i in range(70):
        try:
            os.mkdir(m / "queries" / f"q{i}")
            made += 1
        except OSError as e:
            assert e.errno == errno.EDQUOT
            break
    assert made == 64


# ------------------------------------------------------------- ingest/ (mounting user)

def test_staged_bytes_per_user(shared):
    """Hidden files in ingest/ never commit at close: they are listed
    (ls -a) and count against staged_max like the others."""
    m = shared(limits={"staged_max": "1M"})
    hidden = m / "ingest" / ".hidden.csv"
    fd = os.open(hidden, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"1" * (768 << 10))
        with pytest.raises(OSError) as e:
            os.write(fd, b"1" * (512 << 10))
        assert e.value.errno == errno.EFBIG
    finally:
        os.close(fd)
    assert m.ls("ingest") == [".hidden.csv"]
    assert os.stat(hidden).st_size == 768 << 10
    # Another file of the same user shares the budget; a sparse size too.
    other = m / "ingest" / ".other.csv"
    other.write_bytes(b"2" * (200 << 10))
    with pytest.raises(OSError) as e:
        os.truncate(other, 10 << 30)
    assert e.value.errno == errno.EFBIG
    with pytest.raises(OSError) as e:
        with open(other, "r+b") as f:
            f.seek(1 << 40)
            f.write(b"x")
    assert e.value.errno == errno.EFBIG
    assert "ingest/.other.csv: uid 0 may stage at most 1048576 bytes" in m.errors()
    # Removing one gives its bytes back.
    os.unlink(hidden)
    (m / "ingest" / "more.csv").write_text("500,1,2,3,4\n")
    assert 500 in m.vector_ids()


# ------------------------------------------------------------- kernel

HOLD_KERNEL = r'''
import os, sys
fds = [os.open(sys.argv[1], os.O_RDONLY) for _ in range(int(sys.argv[2]))]
for fd in fds:
    assert os.read(fd, 4) == b"KKKK"
print("open", flush=True)
sys.stdin.readline()
'''


def test_concurrent_kernel_readers_share_one_copy(shared):
    """40 opens of a 32 MiB kernel stored as zstd (a few KB): one
    decompressed copy, not one per descriptor (40 x 32 MiB before)."""
    img = b"KKKK" + bytes(32 * MiB - 4)
    m = shared(kernel=img)
    assert os.stat(m.store).st_size < MiB, "the kernel is not stored compressed"
    rss = vm(m.pid, "VmRSS")
    p = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                          "--", "/usr/bin/python3", "-c", HOLD_KERNEL, f"{m.path}/kernel", "40"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        ready, _, _ = select.select([p.stdout], [], [], 120)
        assert ready and p.stdout.readline().strip() == "open"
        held = vm(m.pid, "VmRSS") - rss
        assert held < 80 * MiB, f"40 readers of the kernel hold {held >> 20} MiB"
        # The content is right, and getfattr of the cmdline shares it too.
        assert zlib.crc32(m.read("kernel")) == zlib.crc32(img)  # read here: no cat
        assert m.getfattr_bytes("kernel", "user.rvf.kernel.cmdline") == b""
    finally:
        p.stdin.close()
        p.wait(60)
    assert p.returncode == 0


# ------------------------------------------------------------- the log

def test_log_lines_cannot_be_forged(shared):
    """A filter value with a newline shows as an escaped \\n in `errors`:
    one request, one line."""
    m = shared()
    forged = "2026-01-01T00:00:00Z FORGED: the store was compacted"
    q = json.dumps({"vector": [1, 1, 1, 1], "filter": {
        "op": "eq", "fieldId": 0, "valueType": "u64", "value": "1\n" + forged}})
    got = nobody_ops([["write", f"{m.path}/query", q + "\n"]])
    assert got == ["EINVAL"], got
    errs = m.errors()
    lines = errs.splitlines()
    assert not any(ln.startswith("2026-01-01T00:00:00Z FORGED") for ln in lines), errs
    assert any("1\\n" + forged in ln for ln in lines), errs
    # Other control bytes too (a tab, an escape byte).
    q = json.dumps({"vector": [1, 1, 1, 1], "filter": {
        "op": "eq\t\x1b[2J", "fieldId": 0, "valueType": "u64", "value": "1"}})
    nobody_ops([["write", f"{m.path}/query", q + "\n"]])
    assert "eq\\t\\x1b[2J" in m.errors()
