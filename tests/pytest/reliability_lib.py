"""Helpers for the reliability tests (tests/pytest/test_reliability_*.py):
crash, fault-injection, damaged-file, soak and permission tests.

rvfctl/reference wrappers, data generators.  The daemons are mountlib's
(the `mount` fixture: mount.daemon(STORE, MNT) is a foreground daemon we
start, SIGKILL and start again); the file layout is rvfformat.py.

Environment:
  RVF_BUILD_DIR   build directory (default build; build-asan for sanitizers)
  RVF_LONG=1      the long variants (hundreds of MB, 200 kills, minutes of soak)
  RVF_SEED=N      seed of the randomised tests (default: fixed per test)
  RVF_SOAK_SCALE=F  the soak's amount of work, times F
  RVF_NO_LEAK_CHECK=1  do not turn LeakSanitizer on for daemons (ASan build)
"""

import hashlib
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from mountlib import SANITIZER_MARKERS, build_dir_path, sanitizer_env  # noqa: F401  (used by the tests too)

REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO / "tests" / "interop"
FUSERMOUNT = shutil.which("fusermount3") or "fusermount3"

LONG = os.environ.get("RVF_LONG", "0") not in ("", "0")


def build_dir():
    return build_dir_path()


def exe(rel):
    p = build_dir() / rel
    if not (p.is_file() and os.access(p, os.X_OK)):
        pytest.skip(f"{p} is not built")
    return p


def rvffs_exe():
    p = exe("fs/rvffs")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing")
    return p


def rvfctl_exe():
    return exe("ctl/rvfctl")


_asan_cache = {}


def is_asan(path):
    """True when the binary was built with AddressSanitizer."""
    path = str(path)
    if path not in _asan_cache:
        with open(path, "rb") as f:
            data = f.read()
            _asan_cache[path] = b"__asan_init" in data or b"AddressSanitizer" in data
    return _asan_cache[path]


def node_exe():
    node = shutil.which("node") or shutil.which("nodejs")
    if not node or not (INTEROP / "node_modules" / "@ruvector" / "rvf-node").is_dir():
        pytest.fail("the reference implementation is not installed: run tests/run-all.sh "
                    "(or npm install in tests/interop)", pytrace=False)
    return node


# ------------------------------------------------------------------ processes

def run(cmd, check=True, timeout=120, **kw):
    cmd = [str(c) for c in cmd]
    try:
        cp = subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"timeout after {timeout}s (a hang): {' '.join(cmd)}", pytrace=False)
    if check and cp.returncode != 0:
        pytest.fail(f"command failed (exit {cp.returncode}): {' '.join(cmd)}\n"
                    f"--- stdout\n{cp.stdout[-2000:]!r}\n--- stderr\n{cp.stderr[-3000:]!r}",
                    pytrace=False)
    return cp


# ------------------------------------------------------------------ rvfctl / ref

def ctl(*args, check=True, env_extra=None, timeout=300, logdir=None, leaks=False):
    """Runs rvfctl; fails on a sanitizer report or a signal."""
    env = sanitizer_env(logdir, leaks) if logdir else dict(os.environ)
    env.pop("RVF_FAULT", None)
    if env_extra:
        env.update(env_extra)
    cp = run([rvfctl_exe()] + [str(a) for a in args], check=False, timeout=timeout,
             env=env)
    err = cp.stderr.decode(errors="replace")
    for m in SANITIZER_MARKERS:
        if m in err:
            pytest.fail(f"sanitizer report from rvfctl {' '.join(map(str, args))}:\n{err[-5000:]}",
                        pytrace=False)
    if cp.returncode < 0:
        pytest.fail(f"rvfctl {' '.join(map(str, args))} killed by signal {-cp.returncode}",
                    pytrace=False)
    if check and cp.returncode != 0:
        pytest.fail(f"rvfctl {' '.join(map(str, args))} failed (exit {cp.returncode}):\n"
                    f"{err[-3000:]}", pytrace=False)
    return cp


def ctl_json(*args, **kw):
    import json
    cp = ctl("--json", *args, **kw)
    try:
        return cp.returncode, json.loads(cp.stdout)
    except ValueError:
        pytest.fail(f"rvfctl --json {' '.join(map(str, args))} printed no JSON:\n"
                    f"{cp.stdout[-2000:]!r}\n{cp.stderr[-2000:]!r}", pytrace=False)


_ref_server = None


def ref_dump(path, timeout=300):
    """`node ref.js dump PATH`'s document, whatever its exit code, from
    this process's one `ref.js serve` (conftest.RefServer: the same answer
    without a node start each)."""
    global _ref_server
    if _ref_server is None:
        import atexit
        import tempfile
        from conftest import RefServer
        tmp = tempfile.mkdtemp(prefix="rvf-ref-serve-")
        _ref_server = RefServer(node_exe(), tmp)

        def stop():
            _ref_server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
        atexit.register(stop)
    return _ref_server.call(["dump", path], timeout)[1]


def ref_ids(dump):
    return {int(x) for x in dump.get("all_ids", [])}


# ------------------------------------------------------------------ the format
# (rvfformat.py; re-exported here for the reliability tests)

from rvfformat import (HDR, MAX_PAYLOAD, SEG_MAGIC, T_COW, T_EBPF, T_JOURNAL,  # noqa: E402,F401
                       T_KERNEL, T_MANIFEST, T_MEMBERSHIP, T_META, T_VEC, T_WITNESS,
                       TYPES, Manifest, Segment, content_hash, locate_manifest, walk)


def max_id_ever(path, visible):
    """Largest id the store ever used, as the engine assigns ids: own rows
    (visible ones suffice for our stores) and the deletion list."""
    buf = Path(path).read_bytes()
    _, m = locate_manifest(buf)
    cands = list(visible) + (m.deleted if m else [])
    return max(cands) if cands else None


# ------------------------------------------------------------------ data

def fvecs_rows(tag, first_row, n, dim):
    """n rows: components (tag, row index, then a fixed pattern)."""
    pat = struct.pack(f"<{dim - 2}f", *[(j % 17) * 0.25 for j in range(dim - 2)])
    head = struct.pack("<i", dim)
    return b"".join(head + struct.pack("<2f", tag, first_row + i) + pat for i in range(n))


def csv_rows(ids, dim, tag=0.0):
    return "".join(f"{i}," + ",".join([str(tag), str(k)] +
                                      [str((i * 7 + j) % 11) for j in range(dim - 2)]) + "\n"
                   for k, i in enumerate(ids))


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def report(name, **figures):
    """Prints one line of figures (visible with pytest -s)."""
    line = f"[{name}] " + ", ".join(f"{k}={v}" for k, v in figures.items())
    print(line)
    FIGURES.append(line)
    return line


FIGURES = []


def write_all(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """open/write/close; the first OSError (at write or close) is raised."""
    fd = os.open(str(path), flags, 0o644)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view[:1 << 20])
            view = view[n:]
    except BaseException:
        try:
            os.close(fd)
        except OSError:
            pass
        raise
    os.close(fd)


