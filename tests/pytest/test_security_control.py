"""Security of the `control` file (issue 10, item 1), as a hostile local
user (uid 65534, no groups) against a root daemon mounted with allow_other.

  * uid 65534 cannot open `control` for writing (EACCES at open), with and
    without default_permissions;
  * a descriptor is judged as whoever OPENED it: uid 65534 opens `control`,
    hands the descriptor (SCM_RIGHTS, as to a setuid program's stderr) to
    a root process, which writes `embed-kernel ROOT_ONLY_FILE` or
    `derive ROOT_ONLY_DIR/x`: nothing is embedded or created;
  * a command naming a FIFO (or a device) fails at once instead of
    blocking a daemon thread on it;
  * the opener's descriptor keeps working for its owner (root here).
"""

import array
import errno
import os
import socket
import stat
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from mountlib import (mount, need_root, run, run_as_nobody, rvffs, world_dir,  # noqa: F401
                      write_csv)

DIM = 4
ROWS = [(i, [float(i), 1.0, 2.0, 3.0]) for i in range(1, 6)]
OPTS = {"allow_other": ("allow_other",),
        "default_permissions": ("allow_other", "default_permissions")}


@pytest.fixture
def shared(world_dir, run_ctl, mount):  # noqa: F811
    """shared(*opts) -> Mount of a 5-row store in world_dir (0644, every
    user can reach it), by a root daemon."""
    need_root()
    n = [0]

    def make(*opts):
        n[0] += 1
        st = world_dir / f"s{n[0]}.rvf"
        run_ctl("create", st, "--dim", DIM)
        src = write_csv(world_dir / f"s{n[0]}.csv", ROWS)
        run_ctl("ingest", st, src)
        src.unlink()
        mnt = world_dir / f"mnt{n[0]}"
        mnt.mkdir()
        os.chmod(mnt, 0o755)
        return mount(st, *opts, mnt=mnt)
    return make


@pytest.fixture
def root_only(world_dir):  # noqa: F811
    """A 0700 root directory holding a 0600 root file (a 'secret')."""
    d = world_dir / "rootonly"
    d.mkdir(mode=0o700)
    secret = d / "secret"
    secret.write_bytes(b"ROOT-ONLY-SECRET " * 64)
    os.chmod(secret, 0o600)
    return d, secret


OPEN_AS_USER = textwrap.dedent("""
    import errno, os, socket, sys
    try:
        fd = os.open(sys.argv[1], os.O_WRONLY)
    except OSError as e:
        print(errno.errorcode[e.errno]); sys.exit(0)
    print("opened")
    if len(sys.argv) > 2:
        s = socket.socket(fileno=int(sys.argv[2]))
        socket.send_fds(s, [b"fd"], [fd])
        s.recv(1)   # wait until the receiver has it
""")


def open_as_nobody_and_pass(path):
    """uid 65534 opens path O_WRONLY and sends the descriptor to us.
    Returns (what the user saw, descriptor or None)."""
    ours, theirs = socket.socketpair()
    try:
        env = dict(os.environ, LC_ALL="C")
        p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "--", sys.executable, "-c", OPEN_AS_USER, str(path),
                              str(theirs.fileno())],
                             pass_fds=[theirs.fileno()], stdout=subprocess.PIPE, text=True,
                             env=env, cwd="/")
        theirs.close()
        ours.settimeout(30)
        fd = None
        try:
            _, fds, _, _ = socket.recv_fds(ours, 16, 1)
            fd = fds[0] if fds else None
            ours.send(b"k")
        except (OSError, socket.timeout):
            pass
        out, _ = p.communicate(timeout=30)
        return out.strip(), fd
    finally:
        ours.close()


@pytest.mark.parametrize("opts", sorted(OPTS))
def test_other_user_cannot_open_control_for_writing(shared, opts):
    m = shared(*OPTS[opts])
    cp = run_as_nobody([sys.executable, "-c", OPEN_AS_USER, str(m / "control")], check=True)
    assert cp.stdout.strip() == "EACCES", \
        f"uid 65534 opened control for writing ({opts}): {cp.stdout!r}"
    # The shell way too: nothing runs, the store is unchanged.
    cp = run_as_nobody(f'echo compact > "{m / "control"}"')
    assert cp.returncode != 0 and "Permission denied" in cp.stderr, cp
    assert m.vector_ids() == [i for i, _ in ROWS]


def test_descriptor_passed_to_root_cannot_embed_a_root_only_file(shared, root_only):
    """The hole: uid 65534 opens control, a root process writes to that
    descriptor (a setuid program's stderr); the root-only file must not
    become readable as MNT/kernel."""
    m = shared("allow_other")
    _, secret = root_only
    seen, fd = open_as_nobody_and_pass(m / "control")
    wrote = None
    if fd is not None:
        try:
            os.write(fd, f"embed-kernel {secret} cmdline=\n".encode())
            wrote = "ok"
        except OSError as e:
            wrote = errno.errorcode[e.errno]
        finally:
            os.close(fd)
    assert seen == "EACCES", f"uid 65534 opened control ({seen}); root's write: {wrote}"
    assert not (m / "kernel").exists(), "a root-only file was embedded as the kernel"
    cp = run_as_nobody(["cat", str(m / "kernel")])
    assert b"ROOT-ONLY" not in cp.stdout.encode()


def test_descriptor_passed_to_root_cannot_derive_into_a_root_only_dir(shared, root_only):
    m = shared("allow_other")
    d, _ = root_only
    child = d / "child.rvf"
    seen, fd = open_as_nobody_and_pass(m / "control")
    if fd is not None:
        try:
            os.write(fd, f"derive {child}\n".encode())
        except OSError:
            pass
        finally:
            os.close(fd)
    assert seen == "EACCES"
    assert not child.exists(), "derive created a file in a root-only directory"
    assert not Path(str(child) + ".lock").exists()


def test_owner_descriptor_keeps_working(shared, root_only, world_dir):  # noqa: F811
    """The mounting user (root) opens control: commands naming its own
    files work, and the derived child is created."""
    m = shared("allow_other")
    d, _ = root_only
    img = world_dir / "img"
    img.write_bytes(b"\x7fELF" + b"k" * 100)
    fd = os.open(m / "control", os.O_WRONLY)
    try:
        os.write(fd, f"embed-kernel {img}\n".encode())
        os.write(fd, f"derive {d / 'c.rvf'}\n".encode())
    finally:
        os.close(fd)
    assert (m / "kernel").read_bytes() == img.read_bytes()
    assert (d / "c.rvf").is_file()


def _unblock_fifo(path):
    """Opens the FIFO's other end so a reader stuck in open() returns
    (only matters when the daemon blocked on it)."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


@pytest.mark.parametrize("cmd", ["embed-kernel {p}", "embed-ebpf {p}", "sign {p}",
                                 "embed-ebpf {img} btf={p}"])
def test_control_path_that_is_a_fifo_fails_at_once(shared, world_dir, cmd):  # noqa: F811
    m = shared("allow_other")
    fifo = world_dir / "fifo"
    os.mkfifo(fifo)
    img = world_dir / "prog"
    img.write_bytes(b"\x95" * 64)
    line = cmd.format(p=fifo, img=img)
    result = {}

    def send():
        try:
            fd = os.open(m / "control", os.O_WRONLY)
            try:
                os.write(fd, (line + "\n").encode())
                result["rc"] = "ok"
            finally:
                os.close(fd)
        except OSError as e:
            result["rc"] = errno.errorcode[e.errno]

    t = threading.Thread(target=send, daemon=True)
    t.start()
    t.join(20)
    hung = t.is_alive()
    if hung:
        _unblock_fifo(fifo)
        t.join(20)
    assert not hung, f"`{line}` blocked the daemon on a FIFO"
    assert result.get("rc") in ("EINVAL", "EACCES"), result
    assert "not a regular file" in m.errors(), m.errors()
    assert m.vector_ids() == [i for i, _ in ROWS]
