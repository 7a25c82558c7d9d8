"""Helpers for the reliability tests (tests/pytest/test_reliability_*.py):
crash, fault-injection, damaged-file, soak and permission tests.

A foreground daemon we start and can SIGKILL (Daemon, the `daemons`
fixture), rvfctl/reference wrappers, data generators.  Shared with the
mount tests: the file layout (rvfformat.py), the sanitizer markers and
process helpers (mountlib.py).

Environment:
  RVF_BUILD_DIR   build directory (default build; build-asan for sanitizers)
  RVF_LONG=1      the long variants (hundreds of MB, 200 kills, minutes of soak)
  RVF_SEED=N      seed of the randomised tests (default: fixed per test)
  RVF_SOAK_SECONDS=N  length of the soak
  RVF_NO_LEAK_CHECK=1  do not turn LeakSanitizer on for daemons (ASan build)
"""

import hashlib
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

from mountlib import (SANITIZER_MARKERS, abort_fuse_connection, build_dir_path, is_mounted, mount_entry,  # noqa: F401  (used by the tests too)
                      sanitizer_env, sanitizer_reports, wait_for)

REPO = Path(__file__).resolve().parents[2]
INTEROP = REPO / "tests" / "interop"
REF_JS = INTEROP / "ref.js"
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


class Daemon:
    """rvffs -f STORE MNT in a child process of ours, stderr to a log file.

    Foreground, so that its pid is ours to SIGKILL and its stderr (where
    the sanitizers report, at exit, leaks included) lands in a file."""

    def __init__(self, store, mnt, logdir, opts=(), env_extra=None, leaks=True,
                 exe_path=None, user_cmd=()):
        self.exe = exe_path or rvffs_exe()
        self.store = Path(store)
        self.mnt = Path(mnt)
        self.logdir = Path(logdir)
        self.opts = list(opts)
        self.env_extra = dict(env_extra or {})
        self.leaks = leaks
        self.user_cmd = list(user_cmd)
        self.proc = None
        self.log = None
        self.n = 0

    def command(self):
        cmd = self.user_cmd + [str(self.exe), "-f"]
        if self.opts:
            cmd += ["-o", ",".join(self.opts)]
        return cmd + [str(self.store), str(self.mnt)]

    def start(self, timeout=30, expect_fail=False):
        """Mounts; returns None, or (expect_fail) the exit status and the
        log when the daemon exits without mounting."""
        assert self.proc is None or self.proc.poll() is not None
        self.mnt.mkdir(parents=True, exist_ok=True)
        self.n += 1
        self.log = self.logdir / f"rvffs-{self.mnt.name}-{self.n}.log"
        env = sanitizer_env(self.logdir, self.leaks)
        env.update(self.env_extra)
        with open(self.log, "wb") as lf:
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=lf, stderr=lf, env=env,
                                         cwd=str(self.logdir))
        ok = wait_for(lambda: is_mounted(self.mnt) or self.proc.poll() is not None,
                      timeout)
        if self.proc.poll() is not None:
            if expect_fail:
                return self.proc.returncode, self.log_text()
            pytest.fail(f"rvffs exited {self.proc.returncode} without mounting "
                        f"{self.store}:\n{self.log_text()}", pytrace=False)
        if not ok:
            self.kill9()
            pytest.fail(f"rvffs did not mount within {timeout}s", pytrace=False)
        # Ready when the root answers.
        # (as the daemon's user: without allow_other nobody else, root
        # included, may look into the mount)
        if not wait_for(lambda: self._exists("status"), 10):
            pytest.fail("the mount does not answer", pytrace=False)
        if expect_fail:
            return None
        return None

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def kill9(self):
        """SIGKILL (ours), reap, and clear the dead mount with -uz."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            # pending requests fail at once, as after any crash; a daemon
            # stuck dying (see mountlib.abort_fuse_connection) finishes.
            # Again until it is gone: a notification can block anew.
            end = time.monotonic() + 30
            while True:
                abort_fuse_connection(self.mnt)
                try:
                    self.proc.wait(1)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() > end:
                        raise
        run([FUSERMOUNT, "-uz", self.mnt], check=False)
        assert wait_for(lambda: not is_mounted(self.mnt), 10), \
            f"fusermount3 -uz left {self.mnt} mounted"

    def unmount(self, timeout=60):
        """fusermount3 -u (retried while busy); waits for a clean exit and
        returns the exit status."""
        end = time.monotonic() + 15
        while is_mounted(self.mnt):
            cp = run([FUSERMOUNT, "-u", self.mnt], check=False)
            if cp.returncode == 0 or not is_mounted(self.mnt):
                break
            if time.monotonic() > end:
                run([FUSERMOUNT, "-uz", self.mnt], check=False)
                break
            time.sleep(0.1)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            pytest.fail(f"daemon did not exit {timeout}s after the unmount", pytrace=False)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.unmount(timeout=20)
            except BaseException:
                self.kill9()
        elif is_mounted(self.mnt):
            run([FUSERMOUNT, "-uz", self.mnt], check=False)

    # --- convenience
    def path(self, rel):
        return self.mnt / rel

    def _exists(self, rel):
        if self.user_cmd:
            return subprocess.run(self.user_cmd + ["test", "-e", str(self.mnt / rel)]).returncode == 0
        return os.path.exists(self.mnt / rel)

    def read(self, rel):
        """Bytes of a file of the mount, read as the daemon's user."""
        if self.user_cmd:
            return subprocess.run(self.user_cmd + ["cat", str(self.mnt / rel)],
                                  check=True, stdout=subprocess.PIPE).stdout
        with open(self.mnt / rel, "rb") as f:
            return f.read()

    def status(self):
        out = {}
        for ln in self.read("status").decode().splitlines():
            if ":" in ln:
                k, v = ln.split(":", 1)
                out.setdefault(k.strip(), v.strip())
        return out

    def errors(self):
        return self.read("errors").decode(errors="replace")

    def vector_ids(self):
        return {int(x) for x in os.listdir(self.mnt / "vectors")}


class DaemonSet:
    """Fixture object: creates Daemons and cleans them all up, failing the
    test on sanitizer reports (leaks of cleanly unmounted daemons too)."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.logdir = self.tmp / "logs"
        self.logdir.mkdir(exist_ok=True)
        self.daemons = []

    def __call__(self, store, mnt=None, opts=(), **kw):
        mnt = Path(mnt) if mnt else self.tmp / f"mnt{len(self.daemons) + 1}"
        d = Daemon(store, mnt, self.logdir, opts=opts, **kw)
        self.daemons.append(d)
        return d

    def finish(self):
        for d in self.daemons:
            d.cleanup()
        problems = sanitizer_reports(self.logdir)
        for d in self.daemons:
            for f in sorted(self.logdir.glob(f"rvffs-{d.mnt.name}-*.log")):
                t = f.read_text(errors="replace")
                if any(k in t for k in SANITIZER_MARKERS):
                    problems.append(f"{f.name}:\n{t[-5000:]}")
        return problems


@pytest.fixture
def daemons(tmp_path):
    ds = DaemonSet(tmp_path)
    yield ds
    problems = ds.finish()
    if problems:
        pytest.fail("sanitizer reports from the daemon(s):\n" + "\n".join(problems),
                    pytrace=False)


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


def ref_dump(path, timeout=300):
    import json
    cp = run([node_exe(), REF_JS, "dump", path], check=False, timeout=timeout)
    try:
        return json.loads(cp.stdout)
    except ValueError:
        pytest.fail(f"ref.js dump {path} printed no JSON (exit {cp.returncode}):\n"
                    f"{cp.stdout[-1000:]!r}\n{cp.stderr[-2000:]!r}", pytrace=False)


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


