"""Security: the daemon enforces the owners and modes it shows.

A root daemon mounted with `allow_other` (with and without
`default_permissions`: without it the kernel checks nothing and every
request reaches the daemon). The hostile user is uid 65534 (setpriv, no
groups). It may read what the modes let everyone read and use the query
file; every change is refused with EACCES/EPERM and changes nothing (the
store file keeps every byte); query slots and staged files belong to the
user who made them: others can neither read nor rewrite them.
"""

import hashlib
import os
from pathlib import Path

import pytest

from mountlib import mount, rvffs, world_dir  # noqa: F401  (fixtures)
from mountlib import need_root, nobody_ops, parse_results, run, run_as_nobody

DIM = 4
REFUSED = ("EACCES", "EPERM")
OPTIONS = [pytest.param(["allow_other"], id="allow_other"),
           pytest.param(["allow_other", "default_permissions"], id="default_permissions")]


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


@pytest.fixture
def shared(world_dir, run_ctl, mount):  # noqa: F811
    """mount(opts) -> Mount of a 10-vector store with a kernel and a
    metadata field, store and mount point traversable by uid 65534."""
    need_root()

    def make(opts):
        store = world_dir / "s.rvf"
        run_ctl("create", store, "--dim", DIM)
        rows = "".join(f'{{"id": {i}, "vector": [{i}, 0, 0, 0], "metadata": {{"color": "c{i}"}}}}\n'
                       for i in range(1, 11))
        (world_dir / "rows.jsonl").write_text(rows)
        run_ctl("ingest", store, world_dir / "rows.jsonl")
        (world_dir / "k.img").write_bytes(b"K" * 3000)
        run_ctl("embed-kernel", store, world_dir / "k.img")
        mnt = world_dir / "mnt"
        mnt.mkdir()
        return mount(store, *opts, mnt=mnt)

    return make


def changes(m):
    """Every kind of change a hostile user might try, as (label, op)."""
    return [
        ("rm vectors/2", ["unlink", f"{m}/vectors/2"]),
        ("write vectors/1", ["write", f"{m}/vectors/1", "9 9 9 9\n"]),
        ("truncate vectors/1", ["truncate", f"{m}/vectors/1", 0]),
        ("create vectors/77", ["create", f"{m}/vectors/77", "7 7 7 7\n"]),
        ("overwrite kernel", ["trunc", f"{m}/kernel", "evil kernel"]),
        ("rm kernel", ["unlink", f"{m}/kernel"]),
        ("setfattr kernel cmdline", ["setxattr", f"{m}/kernel", "user.rvf.kernel.cmdline", "init=/bin/sh"]),
        ("setfattr metadata", ["setxattr", f"{m}/vectors/3", "user.rvf.meta.color", "red"]),
        ("setfattr new field", ["setxattr", f"{m}/vectors/3", "user.rvf.meta.owner", "me"]),
        ("removexattr metadata", ["removexattr", f"{m}/vectors/4", "user.rvf.meta.color"]),
        ("chmod vectors/1", ["chmod", f"{m}/vectors/1", 0o666]),
        ("utimes vectors/1", ["utime", f"{m}/vectors/1", 1000]),
        ("create in ingest/", ["create", f"{m}/ingest/u.csv", "50,1,1,1,1\n"]),
        ("create hidden in ingest/", ["create", f"{m}/ingest/.u.csv", "51,1,1,1,1\n"]),
        ("mkdir in queries/", ["mkdir", f"{m}/queries/u"]),
        ("access W_OK vectors/1", ["access_w", f"{m}/vectors/1"]),
    ]


@pytest.mark.parametrize("opts", OPTIONS)
def test_other_user_changes_nothing(shared, opts):
    m = shared(opts)
    before_store = sha(m.store)
    before_ids = m.vector_ids()
    before_v1 = m.cat("vectors/1")
    before_kernel = m.cat_bytes("kernel")
    before_attrs = (m.xattrs("vectors/3"), m.xattrs("vectors/4"), m.xattrs("kernel"))

    ops = changes(m.path)
    got = nobody_ops([op for _, op in ops])
    bad = [(label, g) for (label, _), g in zip(ops, got) if g not in REFUSED]
    assert not bad, f"uid 65534 was not refused: {bad}"

    assert sha(m.store) == before_store, "the store file changed"
    assert m.vector_ids() == before_ids
    assert m.cat("vectors/1") == before_v1
    assert m.cat_bytes("kernel") == before_kernel
    assert (m.xattrs("vectors/3"), m.xattrs("vectors/4"), m.xattrs("kernel")) == before_attrs
    assert m.ls("ingest") == [] and m.ls("queries") == []

    # What the modes let everyone do still works for uid 65534 ...
    reads = [["read", f"{m.path}/status"], ["read", f"{m.path}/vectors/1"],
             ["read", f"{m.path}/kernel"], ["read", f"{m.path}/manifest"]]
    assert nobody_ops(reads) == ["ok"] * len(reads)
    cp = run_as_nobody(["bash", "-c", 'printf "k=2 1 0 0 0\\n" > "$0/query" && cat "$0/query"',
                        str(m.path)], check=True)
    assert [i for i, _, _ in parse_results(cp.stdout)[0]] == [1, 2]
    # ... and the mounting user (root) may change what uid 65534 may not.
    os.unlink(m / "vectors" / "2")
    os.setxattr(m / "vectors" / "3", "user.rvf.meta.color", b"red")
    assert 2 not in m.vector_ids()
    assert m.getfattr("vectors/3", "user.rvf.meta.color") == "red"


@pytest.mark.parametrize("opts", OPTIONS)
def test_slots_and_staged_files_belong_to_their_maker(shared, opts):
    m = shared(opts)
    # root makes a slot and runs a query in it; a hidden staged file
    # stays in ingest/ until it is renamed.
    os.mkdir(m / "queries" / "r")
    (m / "queries" / "r" / "request").write_text("k=1 3 0 0 0\n")
    assert (m / "queries" / "r" / "result").read_text() == "3 0\n"
    (m / "ingest" / ".part.csv").write_text("60,6,0,0,0\n")
    st = os.stat(m / "queries" / "r" / "request")
    assert st.st_uid == 0 and st.st_mode & 0o077 == 0, oct(st.st_mode)
    assert os.stat(m / "queries" / "r" / "result").st_mode & 0o077 == 0

    p = m.path
    ops = [
        ("rewrite another's request", ["trunc", f"{p}/queries/r/request", "k=1 9 0 0 0\n"]),
        ("write another's request", ["pwrite", f"{p}/queries/r/request", "9", 4]),
        ("read another's request", ["read", f"{p}/queries/r/request"]),
        ("read another's result", ["read", f"{p}/queries/r/result"]),
        ("rmdir another's slot", ["rmdir", f"{p}/queries/r"]),
        ("write a staged file", ["write", f"{p}/ingest/.part.csv", "61,6,6,6,6\n"]),
        ("rename a staged file", ["rename", f"{p}/ingest/.part.csv", f"{p}/ingest/part.csv"]),
        ("rm a staged file", ["unlink", f"{p}/ingest/.part.csv"]),
        ("chmod a staged file", ["chmod", f"{p}/ingest/.part.csv", 0o666]),
    ]
    got = nobody_ops([op for _, op in ops])
    bad = [(label, g) for (label, _), g in zip(ops, got) if g not in REFUSED]
    assert not bad, f"uid 65534 was not refused: {bad}"
    assert (m / "queries" / "r" / "request").read_text() == "k=1 3 0 0 0\n"
    assert (m / "queries" / "r" / "result").read_text() == "3 0\n"
    assert m.ls("ingest") == [".part.csv"]
    assert (m / "ingest" / ".part.csv").read_text() == "60,6,0,0,0\n"
    # The owner finishes what it started.
    os.rename(m / "ingest" / ".part.csv", m / "ingest" / "part.csv")
    assert 60 in m.vector_ids()
    os.rmdir(m / "queries" / "r")


def test_staged_files_are_never_writable_by_others(shared):
    m = shared(["allow_other"])
    old = os.umask(0)
    try:
        fd = os.open(m / "ingest" / ".open.csv", os.O_WRONLY | os.O_CREAT, 0o666)
    finally:
        os.umask(old)
    try:
        os.write(fd, b"70,7,0,0,0\n")
        mode = os.stat(m / "ingest" / ".open.csv").st_mode & 0o777
        assert mode & 0o022 == 0, oct(mode)
        got = nobody_ops([["write", f"{m.path}/ingest/.open.csv", "71,7,7,7,7\n"]])
        assert got[0] in REFUSED, got
    finally:
        os.close(fd)
    run(["rm", "-f", str(m / "ingest" / ".open.csv")])
