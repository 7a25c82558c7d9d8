"""Permissions and paths.

  * `-o allow_other,default_permissions` (daemon run by root): the file modes
    the mount shows are enforced for another user (`rvfftest`, created with
    useradd when missing): reading status, vectors and segments and asking
    queries works; writing vectors, removing them, copying into ingest/,
    replacing the kernel, setting metadata xattrs, making query slots and
    writing `control` are refused with EACCES, and the store is unchanged.
    Without default_permissions, `control` still refuses other users.
  * `-o ro`: every change is refused with EROFS (queries still work).
  * a store file without write permission (chmod 0444) mounted without ro:
    the daemon mounts it read-only (status says read_only: true), every
    change gets EROFS, the file is untouched and no lock is taken.
  * paths: a symlinked store path is resolved once (the lock and a
    compaction's rename act on the real file; the symlink stays); a branch
    child whose stored parent path climbs out with ../ or is absolute has
    that parent opened read-only only: mapped without write permission, no
    lock file, not a byte changed; names with '/' or '..' cannot reach
    ingest/ (the kernel resolves them; nothing is created outside).
"""

import hashlib
import json
import os
import pwd
import secrets
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from reliability_lib import (HDR, T_COW, content_hash, csv_rows, ctl,  # noqa: F401
                             ref_dump, ref_ids, report, walk, write_all)

USER = "rvfftest"
DIM = 4


@pytest.fixture(scope="module")
def user():
    if os.geteuid() != 0:
        pytest.skip("the permission tests need root (to mount with allow_other and "
                    "switch users)")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        if not shutil.which("useradd"):
            pytest.skip("no user rvfftest and no useradd")
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", USER], check=True, capture_output=True)
        pw = pwd.getpwnam(USER)
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is missing")
    return pw.pw_uid, pw.pw_gid


@pytest.fixture
def world(tmp_path):
    """A directory every user can traverse (tmp_path is root's 0700)."""
    d = Path(tempfile.mkdtemp(prefix="rvf-perm-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    for p in sorted(d.rglob("*"), reverse=True):
        if p.is_dir() and not p.is_symlink() and os.path.ismount(p):
            subprocess.run(["fusermount3", "-uz", str(p)], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


USER_SCRIPT = r'''
import errno, json, os, sys
ops = json.loads(sys.argv[1])
out = []
def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))
for op in ops:
    kind, path = op[0], op[1]
    try:
        if kind == "read":
            with open(path, "rb") as f:
                f.read()
        elif kind == "list":
            os.listdir(path)
        elif kind in ("write", "create"):
            flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if kind == "create" else 0)
            fd = os.open(path, flags, 0o644)
            try:
                os.write(fd, op[2].encode())
            finally:
                os.close(fd)
        elif kind == "unlink":
            os.unlink(path)
        elif kind == "mkdir":
            os.mkdir(path)
        elif kind == "setxattr":
            os.setxattr(path, op[2], op[3].encode())
        elif kind == "query":
            fd = os.open(path, os.O_RDWR)
            try:
                os.write(fd, op[2].encode())
                if not os.read(fd, 4096):
                    raise OSError(errno.ENODATA, "no result")
            finally:
                os.close(fd)
        out.append("ok")
    except OSError as e:
        out.append(name(e))
print(json.dumps(out))
'''


def as_user(uid_gid, ops):
    uid, gid = uid_gid
    cp = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups",
                         "/usr/bin/python3", "-c", USER_SCRIPT, json.dumps(ops)],
                        capture_output=True, text=True, timeout=60, cwd="/")
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def as_root(ops):
    cp = subprocess.run(["/usr/bin/python3", "-c", USER_SCRIPT, json.dumps(ops)],
                        capture_output=True, text=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    return json.loads(cp.stdout)


def make_store(d, name="s.rvf", kernel=True):
    p = Path(d) / name
    ctl("create", p, "--dim", DIM)
    (Path(d) / "rows.csv").write_text(csv_rows(range(1, 11), DIM))
    ctl("ingest", p, Path(d) / "rows.csv")
    (Path(d) / "rows.csv").unlink()
    if kernel:
        (Path(d) / "k.img").write_bytes(b"K" * 2000)
        ctl("embed-kernel", p, Path(d) / "k.img")
        (Path(d) / "k.img").unlink()
    return p


def sha(p):
    return hashlib.sha256(Path(p).read_bytes()).hexdigest()


def writes(m):
    """Every kind of change, as (label, op)."""
    q = " ".join(["0"] * DIM)
    return [
        ("write vectors/1", ["write", f"{m}/vectors/1", "9 9 9 9\n"]),
        ("create vectors/77", ["create", f"{m}/vectors/77", "1 1 1 1\n"]),
        ("rm vectors/2", ["unlink", f"{m}/vectors/2"]),
        ("cp into ingest/", ["create", f"{m}/ingest/u.csv", f"50,{q.replace(' ', ',')}\n"]),
        ("replace kernel", ["create", f"{m}/kernel", "new kernel"]),
        ("metadata xattr", ["setxattr", f"{m}/vectors/3", "user.rvf.meta.color", "red"]),
        ("control", ["write", f"{m}/control", "compact\n"]),
    ]


def reads(m):
    q = " ".join(["0"] * DIM)
    return [
        ("read status", ["read", f"{m}/status"]),
        ("read vectors/1", ["read", f"{m}/vectors/1"]),
        ("list vectors", ["list", f"{m}/vectors"]),
        ("read a segment", ["read", f"{m}/segments/" + sorted(os.listdir(f"{m}/segments"))[0]]),
        ("read manifest", ["read", f"{m}/manifest"]),
        ("query", ["query", f"{m}/query", f"k=2 {q}\n"]),
    ]


def test_other_user_with_default_permissions(world, user, mount):
    store = make_store(world)
    m = world / "mnt"
    d = mount.daemon(store, m, opts=["allow_other", "default_permissions"])
    d.start()
    before = set(d.vector_ids())
    rd = reads(m)
    got = as_user(user, [op for _, op in rd])
    assert got == ["ok"] * len(rd), list(zip([n for n, _ in rd], got))
    wr = writes(m) + [("mkdir queries/u", ["mkdir", f"{m}/queries/u"])]
    got = as_user(user, [op for _, op in wr])
    bad = [(n, g) for (n, _), g in zip(wr, got) if g != "EACCES"]
    assert not bad, f"another user's changes were not refused with EACCES: {bad}"
    assert set(d.vector_ids()) == before
    assert "color" not in "".join(os.listxattr(m / "vectors" / "3"))
    # The owner may (the refusals were about permissions).
    got = as_root([["unlink", f"{m}/vectors/2"]])
    assert got == ["ok"]
    assert set(d.vector_ids()) == before - {2}
    assert d.unmount() == 0
    report("permissions-other-user", refused=len(wr), allowed_reads=len(rd))


def test_control_refuses_other_users_without_default_permissions(world, user, mount):
    store = make_store(world)
    m = world / "mnt"
    d = mount.daemon(store, m, opts=["allow_other"])
    d.start()
    if not (m / "control").exists():
        pytest.skip("no control file in this build")
    os.chmod(store, 0o644)
    got = as_user(user, [["write", f"{m}/control", "compact\n"]])
    # The kernel lets the open through (no default_permissions) or not; the
    # daemon refuses the command.
    assert got[0] in ("EACCES", "EPERM"), got
    assert "may not send commands" in d.errors() or got[0] == "EACCES"
    assert d.unmount() == 0


def test_read_only_mount_refuses_changes(world, mount):
    store = make_store(world)
    h = sha(store)
    m = world / "mnt"
    d = mount.daemon(store, m, opts=["ro"])
    d.start()
    wr = writes(m)
    got = as_root([op for _, op in wr])
    bad = [(n, g) for (n, _), g in zip(wr, got) if g not in ("EROFS", "EACCES")]
    assert not bad, f"changes on a read-only mount were not refused: {bad}"
    assert as_root([op for _, op in reads(m)]) == ["ok"] * len(reads(m))
    assert d.status()["read_only"] == "true"
    assert not Path(str(store) + ".lock").exists(), "a read-only mount took the writer lock"
    assert d.unmount() == 0
    assert sha(store) == h


def test_read_only_store_file_mounts_read_only(world, user, mount):
    store = make_store(world)
    os.chmod(store, 0o444)
    h = sha(store)
    m = world / "mnt"
    d = mount.daemon(store, m)  # no -o ro
    d.start()
    assert d.status()["read_only"] == "true", \
        "a store file without write permission was mounted read-write"
    assert "not writable: mounted read-only" in d.log_text()
    wr = writes(m)
    got = as_root([op for _, op in wr])
    bad = [(n, g) for (n, _), g in zip(wr, got) if g not in ("EROFS", "EACCES")]
    assert not bad, f"changes to a read-only store file were not refused: {bad}"
    assert as_root([op for _, op in reads(m)]) == ["ok"] * len(reads(m))
    assert not Path(str(store) + ".lock").exists()
    assert d.unmount() == 0
    assert sha(store) == h
    # The same for a daemon run by a user who may read but not write it.
    os.chmod(store, 0o644)
    uid, gid = user
    um = world / "umnt"
    um.mkdir()
    os.chown(um, uid, gid)
    fuse_ok = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid}", "--init-groups",
                              "test", "-r", "/dev/fuse", "-a", "-w", "/dev/fuse"]).returncode == 0
    if not fuse_ok:
        print("SKIPPED PART: /dev/fuse is not accessible to other users here (mode "
              f"{oct(os.stat('/dev/fuse').st_mode & 0o777)}): no non-root daemon")
        return
    d = mount.daemon(store, um, user_cmd=["setpriv", f"--reuid={uid}", f"--regid={gid}",
                                     "--init-groups"])
    d.start()
    assert d.status()["read_only"] == "true"
    got = as_user(user, [op for _, op in writes(um)])
    assert all(g in ("EROFS", "EACCES") for g in got), got
    assert d.unmount() == 0
    assert sha(store) == h


def test_symlinked_store_path(world, mount):
    real_dir, link_dir = world / "real", world / "links"
    real_dir.mkdir()
    link_dir.mkdir()
    store = make_store(real_dir, "real.rvf", kernel=False)
    link = link_dir / "link.rvf"
    link.symlink_to(store)
    d = mount.daemon(link, world / "mnt")
    d.start()
    assert (real_dir / "real.rvf.lock").exists(), "the lock is not beside the real store"
    assert sorted(os.listdir(link_dir)) == ["link.rvf"]
    write_all(d.mnt / "ingest" / "more.csv", csv_rows(range(100, 105), DIM).encode())
    os.unlink(d.mnt / "vectors" / "1")
    if (d.mnt / "control").exists():
        write_all(d.mnt / "control", b"compact\n", os.O_WRONLY)
    assert d.unmount() == 0
    assert link.is_symlink() and os.readlink(link) == str(store), "the symlink was replaced"
    assert sorted(os.listdir(link_dir)) == ["link.rvf"]
    assert sorted(os.listdir(real_dir)) == ["real.rvf"]
    want = set(range(2, 11)) | set(range(100, 105))
    assert ref_ids(ref_dump(store)) == want


def patch_parent(child, new):
    b = bytearray(Path(child).read_bytes())
    n = 0
    for s in walk(b):
        if s.type == T_COW:
            p = s.offset + HDR
            ln = struct.unpack_from("<I", b, p + 0x49)[0]
            assert ln == len(new), (ln, new)
            b[p + 81:p + 81 + ln] = new.encode()
            b[s.offset + 0x28:s.offset + 0x38] = content_hash(bytes(b[p:s.end]))
            n += 1
    assert n
    Path(child).write_bytes(b)


def parent_mappings(pid, parent):
    real = os.path.realpath(parent)
    out = []
    with open(f"/proc/{pid}/maps") as f:
        for ln in f:
            parts = ln.split()
            if len(parts) >= 6 and parts[5] == real:
                out.append(parts[1])
    return out


@pytest.mark.parametrize("how", ["dotdot", "absolute"])
def test_branch_parent_outside_is_only_read(world, mount, how):
    a, b = world / "A", world / "B"
    a.mkdir()
    b.mkdir()
    parent = make_store(a, "pa.rvf", kernel=False)
    child = b / "ch.rvf"
    ctl("branch", parent, child)
    link = None
    if how == "absolute":
        # An absolute path of the same length as "../A/pa.rvf", through a
        # symlink in /tmp.
        rel_len = len("../A/pa.rvf")
        name = "r" + secrets.token_hex(8)[:rel_len - len("/tmp/") - 1]
        link = Path("/tmp") / name
        assert len(str(link)) == rel_len
        link.symlink_to(parent)
        patch_parent(child, str(link))
    try:
        h = sha(parent)
        d = mount.daemon(child, world / "mnt")
        d.start()
        lineage = d.read("lineage").decode()
        assert ("../A/pa.rvf" if how == "dotdot" else str(link)) in lineage, lineage
        assert set(d.vector_ids()) == set(range(1, 11))
        write_all(d.mnt / "ingest" / "c.csv", csv_rows(range(20, 25), DIM).encode())
        os.unlink(d.mnt / "vectors" / "3")
        maps = parent_mappings(d.pid, parent)
        assert maps, "the parent is not mapped"
        assert all("w" not in perm for perm in maps), f"the parent is mapped writable: {maps}"
        assert not Path(str(parent) + ".lock").exists(), "a lock was taken on the parent"
        if link:
            assert not Path(str(link) + ".lock").exists()
        assert d.unmount() == 0
        assert sha(parent) == h, "the parent changed"
        assert sorted(os.listdir(a)) == ["pa.rvf"]
        js = json.loads(ctl("--json", "inspect", child).stdout)
        assert {int(i) for i, _ in js["live"]} == (set(range(1, 11)) - {3}) | set(range(20, 25))
    finally:
        if link:
            link.unlink()


def test_ingest_names_cannot_escape(world, mount):
    store = make_store(world, kernel=False)
    m = world / "mnt"
    d = mount.daemon(store, m)
    d.start()
    before = sorted(os.listdir(world))
    got = as_root([["create", f"{m}/ingest/../escape.csv", "1,1,1,1,1\n"],
                   ["create", f"{m}/ingest/../../escape.csv", "1,1,1,1,1\n"],
                   ["create", f"{m}/ingest/sub/x.csv", "1,1,1,1,1\n"]])
    # ../escape.csv is the mount's root (refused); ../../ leaves the mount
    # (an ordinary file in world/, not the daemon's doing); sub/ does not exist.
    assert got[0] in ("EPERM", "EACCES", "EINVAL"), got
    assert got[2] == "ENOENT", got
    assert not (m / "escape.csv").exists()
    after = sorted(os.listdir(world))
    assert set(after) - set(before) <= {"escape.csv"}
    assert set(d.vector_ids()) == set(range(1, 11))
    assert d.unmount() == 0
    assert sorted(p for p in os.listdir(world) if p.startswith("s.rvf")) == ["s.rvf"]
