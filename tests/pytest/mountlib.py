"""Helpers and fixtures for the black-box tests of the rvffs mount
(tests/pytest/test_mount_*.py).

Import what a test module needs:

    from mountlib import mount, rvffs  # noqa: F401  (fixtures)
    from mountlib import write_csv, parse_results, ...

`mount` is a factory fixture: mount(STORE, "ro", "k=3", ...) runs the built
`rvffs -o OPTIONS STORE MNT` on a fresh directory under tmp_path, waits for
it to return, finds the daemon it left behind and returns a Mount. Every
mount made through it is unmounted at teardown (fusermount3 -u, retried,
then fusermount3 -uz), and the daemon's pid must then exit; a daemon that
does not is ours, so it is terminated, and the test fails. Only processes
this module started are ever signalled.
"""

import hashlib
import json
import os
import shutil
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FUSERMOUNT = shutil.which("fusermount3") or "fusermount3"

from rvfformat import HDR as SEG_HEADER, LOCK_SIZE, content_hash, locate_manifest  # noqa: E402,F401
# What a sanitizer report starts with, for every check of the suite (rvfctl
# output, daemon logs, sanitizer log files): ASan, LSan, UBSan whether it
# halts ("ERROR: UndefinedBehaviorSanitizer") or goes on ("runtime error:").
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "WARNING: AddressSanitizer",
                     "ERROR: LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer",
                     "runtime error:")


def build_dir_path():
    b = Path(os.environ.get("RVF_BUILD_DIR", "build"))
    if not b.is_absolute():
        b = REPO / b
    return b


def leak_check_wanted():
    """LeakSanitizer for daemons: when the caller's ASAN_OPTIONS asks for
    it (tests/run-all.sh does) and RVF_NO_LEAK_CHECK is not set."""
    return ("detect_leaks=1" in os.environ.get("ASAN_OPTIONS", "")
            and os.environ.get("RVF_NO_LEAK_CHECK", "0") in ("", "0"))


def sanitizer_env(logdir, leaks=True, base=None):
    """Environment for a program of the build: sanitizer reports go to
    files LOGDIR/sanitizer.PID (checked by sanitizer_reports); with
    leaks=True LeakSanitizer runs at exit (ASan builds only)."""
    e = dict(os.environ if base is None else base)
    logp = f"log_path={Path(logdir) / 'sanitizer'}"
    opts = [o for o in e.get("ASAN_OPTIONS", "").split(":")
            if o and not o.startswith(("detect_leaks=", "log_path="))]
    want_leaks = leaks and os.environ.get("RVF_NO_LEAK_CHECK", "0") in ("", "0")
    opts += [f"detect_leaks={1 if want_leaks else 0}", logp]
    e["ASAN_OPTIONS"] = ":".join(opts)
    uopts = [o for o in e.get("UBSAN_OPTIONS", "print_stacktrace=1").split(":")
             if o and not o.startswith("log_path=")]
    e["UBSAN_OPTIONS"] = ":".join(uopts + [logp])
    e.pop("RVF_FAULT", None)
    e["LC_ALL"] = "C"
    return e


def sanitizer_reports(logdir):
    """The sanitizer log files under logdir that hold a report."""
    out = []
    for f in sorted(Path(logdir).glob("sanitizer*")):
        text = f.read_text(errors="replace")
        if any(k in text for k in SANITIZER_MARKERS):
            out.append(f"{f.name}:\n{text[-5000:]}")
    return out


# ------------------------------------------------------------------ numbers

def f32(x):
    """x rounded to float32 (as a Python float)."""
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def f32bits(x):
    return struct.pack("<f", float(x))


def vec_f32(v):
    """[f32(x) for x in v], in one pack/unpack (the same rounding)."""
    fmt = f"<{len(v)}f"
    return list(struct.unpack(fmt, struct.pack(fmt, *v)))


def fmt_num(x):
    """Text that parses back to the same float32."""
    return _fmt_f32(f32(x))


def _fmt_f32(x):  # fmt_num of a number already rounded to float32
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return repr(x)


def fmt_vec(v, sep=" "):
    return sep.join(fmt_num(x) for x in v)


def sqdist(a, b):
    """Squared L2 of two float32 vectors, rounded to float32. Exact for
    small integer data (every partial sum is an integer < 2^24)."""
    return _sqdist_f32(vec_f32(a), vec_f32(b))


def _sqdist_f32(a, b):  # sqdist of vectors already rounded to float32
    return f32(sum((x - y) ** 2 for x, y in zip(a, b)))


def knn(vectors, q, k):
    """Expected (id, distance) list: ordered by distance, then id."""
    q = vec_f32(q)  # once, not once per stored vector
    scored = sorted((_sqdist_f32(vec_f32(v), q), i) for i, v in vectors.items())
    return [(i, d) for d, i in scored[:k]]


def parse_results(text):
    """Query results -> list of groups, each a list of (id, float, raw).
    Groups are separated by exactly one empty line."""
    assert text.endswith("\n") or text == "", f"results do not end with a newline: {text!r}"
    groups = [[]]
    lines = text.split("\n")[:-1] if text else []
    for ln in lines:
        if ln == "":
            assert groups[-1], f"two empty lines in a row or a leading empty line: {text!r}"
            groups.append([])
            continue
        parts = ln.split(" ")
        assert len(parts) == 2, f"result line is not 'ID DISTANCE': {ln!r}"
        groups[-1].append((int(parts[0]), float(parts[1]), parts[1]))
    if groups == [[]]:
        return []
    assert groups[-1], f"trailing empty line: {text!r}"
    return groups


def assert_sorted_group(group, what=""):
    keys = [(f32(d), i) for i, d, _ in group]
    assert keys == sorted(keys), f"{what}: not ordered by (distance, id): {group}"


# ------------------------------------------------------------------ files

def write_csv(path, rows, sep=","):
    """rows: [(id, vector)]"""
    # fmt_num of each number, each row rounded to float32 in one
    # pack/unpack (vec_f32) instead of one per number: the same text
    Path(path).write_text("".join(
        sep.join([str(i)] + [_fmt_f32(x) for x in vec_f32(list(v))]) + "\n" for i, v in rows))
    return Path(path)


def write_jsonl(path, rows, metadata=None):
    out = []
    for n, (i, v) in enumerate(rows):
        o = {"id": i, "vector": [f32(x) for x in v]}
        if metadata is not None and metadata[n] is not None:
            o["metadata"] = metadata[n]
        out.append(json.dumps(o) + "\n")
    Path(path).write_text("".join(out))
    return Path(path)


def write_json(path, rows):
    Path(path).write_text(json.dumps([{"id": i, "vector": [f32(x) for x in v]}
                                      for i, v in rows]))
    return Path(path)


def write_fvecs(path, vecs):
    with open(path, "wb") as f:
        for v in vecs:
            f.write(struct.pack("<i", len(v)) + struct.pack(f"<{len(v)}f", *v))
    return Path(path)


def write_f32(path, vecs):
    with open(path, "wb") as f:
        for v in vecs:
            f.write(struct.pack(f"<{len(v)}f", *v))
    return Path(path)


def npy_bytes(vecs, dim, rows=None):
    """NPY v1.0, float32 little endian, C order, shape (rows, dim)."""
    rows = len(vecs) if rows is None else rows
    header = ("{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }"
              % (rows, dim)).encode()
    total = 10 + len(header) + 1
    header += b" " * ((64 - total % 64) % 64) + b"\n"
    data = b"".join(struct.pack(f"<{dim}f", *v) for v in vecs)
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def write_npy(path, vecs, dim, rows=None):
    Path(path).write_bytes(npy_bytes(vecs, dim, rows))
    return Path(path)


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def crc_content_hash(payload):
    """The 16-byte content hash the format stores, in hex (user.rvf.content_hash)."""
    return content_hash(payload).hex()


def assert_segments_match(mnt, store):
    """segments/ of the mount is the store file as it is now (rvffs(1)): ranks
    0001..N in file-offset order that together are the file byte for byte,
    and every segment of the newest manifest's directory, and that manifest,
    among them at its offset with its length.  After a compaction: the new
    file, no stale names."""
    buf = Path(store).read_bytes()
    seg, man = locate_manifest(buf)
    assert man is not None, f"{store}: no manifest"
    names = sorted(os.listdir(Path(mnt) / "segments"))
    assert [n.split("-", 1)[0] for n in names] == \
        [f"{i:04d}" for i in range(1, len(names) + 1)], names
    shown = {}
    joined = bytearray()
    for n in names:
        p = Path(mnt) / "segments" / n
        data = p.read_bytes()
        shown[int(os.getxattr(p, "user.rvf.offset"))] = (n, len(data))
        joined += data
    assert bytes(joined) == buf, (names, len(joined), len(buf))
    for off, plen in {(off, plen) for _, off, plen, _ in man.dir} | {(seg.offset, seg.plen)}:
        assert off in shown and shown[off][1] == SEG_HEADER + plen, (off, plen, shown.get(off))


def parse_kv(text):
    """'key: value' lines -> dict (first occurrence wins)."""
    out = {}
    for ln in text.splitlines():
        if ":" in ln and not ln.startswith("#"):
            k, v = ln.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


# ------------------------------------------------------------------ processes

def run(cmd, check=True, input=None, cwd=None, env=None, timeout=60):
    if isinstance(cmd, str):
        cmd = ["bash", "-c", cmd]
    cmd = [str(c) for c in cmd]
    try:
        cp = subprocess.run(cmd, input=input, cwd=cwd, env=env, capture_output=True,
                            timeout=timeout,
                            text=not isinstance(input, bytes))
    except subprocess.TimeoutExpired:
        pytest.fail(f"timeout after {timeout}s: {cmd}", pytrace=False)
    if check and cp.returncode != 0:
        pytest.fail(f"command failed (exit {cp.returncode}): {cmd}\n"
                    f"--- stdout\n{str(cp.stdout)[-2000:]}\n--- stderr\n{str(cp.stderr)[-2000:]}",
                    pytrace=False)
    return cp


def _unescape_mountinfo(s):
    out, i = "", 0
    while i < len(s):
        if s[i] == "\\" and i + 3 < len(s) and s[i + 1:i + 4].isdigit():
            out += chr(int(s[i + 1:i + 4], 8))
            i += 4
        else:
            out += s[i]
            i += 1
    return out


def mount_entry(path):
    """The /proc/self/mountinfo fields for a mount on path (or None)."""
    path = os.path.realpath(str(path))
    found = None
    with open("/proc/self/mountinfo") as f:
        for ln in f:
            fields = ln.split()
            if _unescape_mountinfo(fields[4]) == path:
                found = fields  # the last one is the top of the stack
    return found


FUSECTL = Path("/sys/fs/fuse/connections")


def abort_fuse_connection(path):
    """Aborts the FUSE connection of the mount on path (fusectl), as a
    crash does.  A daemon killed while its invalidation thread waits in
    the kernel (fuse_reverse_inval_entry needs the directory lock that a
    client holds while it waits for the dead daemon's answer) never
    finishes dying: nothing else breaks that cycle.  Root only."""
    # realpath of the parent only: the mount's root may not answer
    p = Path(path)
    path = os.path.join(os.path.realpath(str(p.parent)), p.name)
    dev = None
    with open("/proc/self/mountinfo") as f:
        for ln in f:
            fields = ln.split()
            if _unescape_mountinfo(fields[4]) == path:
                dev = fields[2]
    if dev is None or os.geteuid() != 0:
        return False
    minor = dev.split(":")[1]
    if not (FUSECTL / minor).exists():
        subprocess.run(["mount", "-t", "fusectl", "none", str(FUSECTL)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (FUSECTL / minor / "abort").write_text("1")
        return True
    except OSError:
        return False


def is_mounted(path):
    e = mount_entry(path)
    return e is not None and e[e.index("-") + 1].startswith("fuse")


def pid_running(pid):
    """True when pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] not in "ZX"


def pid_gone(pid):
    return not os.path.exists(f"/proc/{pid}")


def wait_for(pred, timeout=10.0, step=0.02):
    end = time.monotonic() + timeout
    while True:
        if pred():
            return True
        if time.monotonic() > end:
            return False
        time.sleep(step)


def daemon_pids(exe, mnt):
    """Running rvffs processes whose command line names mountpoint mnt."""
    mnt = str(mnt)
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        argv = [a.decode(errors="replace") for a in argv if a]
        if argv and os.path.basename(argv[0]) == "rvffs" and mnt in argv and \
                pid_running(int(d)):
            pids.append(int(d))
    return pids


# ------------------------------------------------------------------ mounts

class Mount:
    """One rvffs daemon of this test, serving one store on one mount point.

    It runs one of two ways, as users run it:
      background (the default): `rvffs [-o OPTS] STORE MNT` forks and
        returns once mounted; the daemon it leaves is found by its command
        line (Mounter.__call__, Mounter.run);
      foreground: `rvffs -f` as our child, its stderr (where the sanitizers
        report, leaks at exit included) in a log file; start() again after
        unmount() or kill9() mounts the same store anew (Mounter.daemon,
        Mounter.foreground).
    user_cmd (e.g. setpriv ...) runs the daemon, and every look into the
    mount, as another user.  Only processes this module started are ever
    signalled."""

    def __init__(self, mounter, store, path, opts=(), foreground=False,
                 env_extra=None, leaks=None, user_cmd=(), exe=None):
        self.mounter = mounter
        self.store = Path(store)
        self.path = Path(path)
        self.opts = list(opts)
        self.foreground = foreground
        self.env_extra = dict(env_extra or {})
        # LeakSanitizer at exit: a foreground daemon's report lands in its
        # log; a background one's only when the caller asks (run-all does)
        self.leaks = (foreground or leak_check_wanted()) if leaks is None else leaks
        self.user_cmd = list(user_cmd)
        self.exe = Path(exe) if exe else mounter.exe
        self.pid = None
        self.popen = None
        self.log = None     # the foreground daemon's stderr, newest start
        self.logs = []      # ... of every start
        self.active = False  # mounted by us, not yet unmounted or killed
        self.killed = False

    @property
    def mnt(self):
        return self.path

    @property
    def lock(self):
        return Path(str(self.store) + ".lock")

    def __truediv__(self, rel):
        return self.path / rel

    def __str__(self):
        return str(self.path)

    def __fspath__(self):
        return str(self.path)

    # --- the daemon's life

    def command(self, extra=()):
        cmd = self.user_cmd + [str(self.exe)]
        if self.foreground:
            cmd.append("-f")
        if self.opts:
            cmd += ["-o", ",".join(self.opts)]
        return cmd + list(extra) + [str(self.store), str(self.path)]

    def daemon_env(self):
        """The daemon's environment: sanitizer reports go to files in the
        mounter's log directory, checked at teardown (a background daemon's
        stderr is /dev/null)."""
        e = sanitizer_env(self.mounter.logdir, self.leaks)
        e.update(self.env_extra)
        return e

    def run_background(self, extra=(), timeout=30):
        """Runs rvffs (it returns once mounted, or with an error); adopts
        the daemon when the mount is there.  Returns the CompletedProcess."""
        assert not self.foreground
        cmd = self.command(extra)
        try:
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, cwd=self.mounter.tmp,
                                env=self.daemon_env())
        except subprocess.TimeoutExpired:
            self._adopt()
            pytest.fail(f"rvffs did not return within {timeout}s: {cmd}", pytrace=False)
        if is_mounted(self.path):
            self._adopt()
        return cp

    def _adopt(self):
        pids = daemon_pids(self.exe, self.path)
        self.pid = pids[0] if pids else None
        self.active = True

    def start(self, timeout=30, expect_fail=False):
        """Mounts (again): rvffs -f.  Returns None once the mount answers,
        or, with expect_fail, (exit status, log) when the daemon exits
        without mounting.  Fails the test otherwise."""
        assert self.foreground and not self.alive()
        n = len(self.logs) + 1
        self.log = self.mounter.logdir / f"rvffs-{self.path.name}-{n}.log"
        self.logs.append(self.log)
        self.killed = False
        with open(self.log, "wb") as lf:
            self.popen = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                          stdout=lf, stderr=lf, env=self.daemon_env(),
                                          cwd=str(self.mounter.tmp))
        self.pid = self.popen.pid
        ok = wait_for(lambda: is_mounted(self.path) or self.popen.poll() is not None,
                      timeout)
        if self.popen.poll() is not None:
            if expect_fail:
                return self.popen.returncode, self.log_text()
            pytest.fail(f"rvffs -f exited {self.popen.returncode} without mounting "
                        f"{self.store}:\n{self.log_text()}", pytrace=False)
        self.active = True
        if not ok:
            self.kill9()
            pytest.fail(f"rvffs -f did not mount within {timeout}s", pytrace=False)
        # Ready when the root answers (as the daemon's user: without
        # allow_other nobody else, root included, may look into the mount)
        if not wait_for(lambda: self.exists("status"), 10):
            pytest.fail("the mount does not answer", pytrace=False)
        return None

    def alive(self):
        if self.popen is not None:
            return self.popen.poll() is None
        return self.pid is not None and pid_running(self.pid)

    def _wait_exit(self, timeout):
        if self.popen is not None:
            try:
                self.popen.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        return self.pid is None or wait_for(lambda: not pid_running(self.pid), timeout)

    def log_text(self):
        try:
            return self.log.read_text(errors="replace") if self.log else ""
        except OSError:
            return ""

    def kill9(self):
        """SIGKILL the daemon (ours), wait until it is gone, and clear the
        dead mount with fusermount3 -uz."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            # Pending requests fail at once, as after any crash, and a
            # daemon stuck dying (see abort_fuse_connection) finishes.
            # Again until it is gone: a notification can block anew.
            end = time.monotonic() + 30
            while True:
                abort_fuse_connection(self.path)
                if self._wait_exit(1):
                    break
                if time.monotonic() > end:
                    pytest.fail(f"daemon {self.pid} survived SIGKILL for 30 s", pytrace=False)
            # A background daemon's zombie is reaped by init; until then its
            # pid exists and its lock looks live.
            if self.popen is None and not wait_for(lambda: pid_gone(self.pid), 20):
                pytest.skip(f"init does not reap the killed daemon {self.pid} here")
        run([FUSERMOUNT, "-uz", str(self.path)], check=False)
        assert wait_for(lambda: not is_mounted(self.path), 10), \
            f"fusermount3 -uz left {self.path} mounted"
        self.active = False
        self.killed = True

    def unmount(self, timeout=60):
        """fusermount3 -u (retried while busy, then -uz); waits for the
        daemon to exit and returns its exit status (None for a background
        daemon: not our child).  Fails the test when the mount stays or the
        daemon does not exit (it is then terminated)."""
        if not self.active:
            return self.popen.returncode if self.popen else None
        self.active = False
        last = None
        end = time.monotonic() + 15
        while is_mounted(self.path):
            cp = run([FUSERMOUNT, "-u", str(self.path)], check=False)
            if cp.returncode == 0 or not is_mounted(self.path):
                break
            last = cp.stderr
            if time.monotonic() > end:
                run([FUSERMOUNT, "-uz", str(self.path)], check=False)
                break
            time.sleep(0.1)
        problems = []
        if is_mounted(self.path):
            problems.append(f"{self.path} is still mounted ({last})")
        if not self._wait_exit(timeout):
            problems.append(f"daemon {self.pid} still runs {timeout}s after the unmount; terminated")
            try:
                os.kill(self.pid, signal.SIGTERM)
                if not self._wait_exit(3):
                    os.kill(self.pid, signal.SIGKILL)
                    self._wait_exit(10)
            except ProcessLookupError:
                pass
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)
        return self.popen.returncode if self.popen else None

    def cleanup(self):
        """Teardown: unmounts if still mounted; returns the problems seen
        (sanitizer reports in the daemon's logs included)."""
        problems = []
        if self.active:
            try:
                self.unmount(timeout=20)
            except BaseException as e:  # keep cleaning
                problems.append(str(e))
                if self.alive():
                    try:
                        self.kill9()
                    except BaseException as e2:
                        problems.append(str(e2))
        elif is_mounted(self.path):
            run([FUSERMOUNT, "-uz", str(self.path)], check=False)
        for log in self.logs:
            text = log.read_text(errors="replace") if log.exists() else ""
            if any(k in text for k in SANITIZER_MARKERS):
                problems.append(f"sanitizer report from rvffs -f ({log.name}):\n{text[-5000:]}")
        return problems

    # --- looking into the mount (as the daemon's user)

    def env(self):
        e = dict(os.environ)
        e.update(M=str(self.path), S=str(self.store), LC_ALL="C")
        return e

    def sh(self, script, check=True, input=None, timeout=60):
        """bash -c SCRIPT in the test's tmp dir with $M = mount point and
        $S = store file."""
        return run(self.user_cmd + ["bash", "-c", script], check=check, input=input,
                   cwd=self.cwd(), env=self.env(), timeout=timeout)

    def cwd(self):
        """The test's tmp dir; "/" for another user (tmp_path is root's 0700)."""
        return "/" if self.user_cmd else self.mounter.tmp

    def exists(self, rel):
        if self.user_cmd:
            return subprocess.run(self.user_cmd + ["test", "-e", str(self.path / rel)]
                                  ).returncode == 0
        return os.path.exists(self.path / rel)

    def read(self, rel):
        """The bytes of a file of the mount."""
        if self.user_cmd:
            return run(self.user_cmd + ["cat", str(self.path / rel)], input=b"").stdout
        with open(self.path / rel, "rb") as f:
            return f.read()

    def cat(self, rel):
        return self.sh(f'cat "$M/{rel}"').stdout

    def cat_bytes(self, rel):
        return run(self.user_cmd + ["cat", str(self.path / rel)], input=b"").stdout

    def status(self):
        return parse_kv(self.read("status").decode())

    def errors(self):
        return self.read("errors").decode(errors="replace")

    def ls(self, rel=""):
        """The names in a directory of the mount, sorted (as `ls -1a` with
        LC_ALL=C, without . and ..); read in this process unless the
        mount is looked into as another user (a bash and an ls less)."""
        if not self.user_cmd:
            return sorted(os.listdir(self.path / rel))
        out = self.sh(f'ls -1a "$M/{rel}"').stdout.split("\n")
        return [x for x in out if x and x not in (".", "..")]

    def vector_ids(self):
        """The ids under vectors/, ascending."""
        return sorted(int(x) for x in self.ls("vectors"))

    def read_vector(self, i):
        txt = self.read(f"vectors/{i}").decode()  # as cat: read to the end
        assert txt.endswith("\n") and txt.count("\n") == 1, \
            f"vectors/{i} is not one line: {txt!r}"
        return [float(x) for x in txt.split()]

    def query(self, request):
        """printf '%s\\n' REQUEST > query; cat query (one shell, two opens)."""
        cp = run(self.user_cmd + ["bash", "-c",
                                  'printf "%s\\n" "$1" > "$M/query" && cat "$M/query"',
                                  "query", request], env=self.env(), cwd=self.cwd())
        return cp.stdout

    def getfattr_bytes(self, rel, name):
        """getfattr --only-values -n NAME: the raw value."""
        cp = run(["getfattr", "--only-values", "-n", name, str(self.path / rel)],
                 input=b"")
        return cp.stdout

    def getfattr(self, rel, name):
        return self.getfattr_bytes(rel, name).decode()

    def xattrs(self, rel):
        """getfattr -d -m - : {name: value as text (undecodable bytes
        replaced)}; binary values: getfattr_bytes."""
        cp = run(["getfattr", "-d", "-m", "-", "-e", "hex", "--absolute-names",
                  str(self.path / rel)])
        out = {}
        for ln in cp.stdout.splitlines():
            if not ln or ln.startswith("#"):
                continue
            k, _, v = ln.partition("=")
            raw = bytes.fromhex(v[2:]) if v.startswith("0x") else v.encode()
            out[k] = raw.decode("utf-8", "replace")
        return out


class Mounter:
    """The `mount` fixture, the one daemon harness of the suite:
      mount(STORE, *OPTS, mnt=None) -> Mount       rvffs in the background, mounted
      mount.run(STORE, *OPTS, mnt=None, extra=())  -> (CompletedProcess, Mount or None)
      mount.foreground(STORE, *OPTS, mnt=None)     -> Mount: rvffs -f, mounted
      mount.daemon(STORE, mnt=None, opts=(), env_extra=None, leaks=None,
                   user_cmd=(), exe=None)          -> Mount: rvffs -f, not started
                   (start(), kill9(), start() ..., unmount())
    At teardown every mount still there is unmounted and its daemon must
    exit; sanitizer reports (files under tmp/logs, -f logs) fail the test."""

    def __init__(self, exe, tmp):
        self.exe = Path(exe)
        self.tmp = Path(tmp)
        self.logdir = self.tmp / "logs"
        self.logdir.mkdir(exist_ok=True)
        self.mounts = []
        self.n = 0

    def mountpoint(self):
        while True:
            self.n += 1
            p = self.tmp / f"mnt{self.n}"
            if not p.exists():
                p.mkdir()
                return p

    def sanitizer_reports(self):
        return sanitizer_reports(self.logdir)

    def _new(self, store, mnt, opts, **kw):
        m = Mount(self, store, mnt if mnt is not None else self.mountpoint(), opts, **kw)
        self.mounts.append(m)
        return m

    def run(self, store, *opts, mnt=None, extra=(), timeout=30):
        """Runs rvffs; returns (CompletedProcess, Mount or None). A mount
        that came up is cleaned up at teardown even when not expected."""
        m = self._new(store, mnt, opts)
        cp = m.run_background(extra, timeout)
        return cp, (m if m.active else None)

    def __call__(self, store, *opts, mnt=None):
        cp, m = self.run(store, *opts, mnt=mnt)
        if cp.returncode != 0 or m is None:
            pytest.fail(f"rvffs {' '.join(opts)} {store} failed (exit {cp.returncode}, "
                        f"mounted: {m is not None})\n{cp.stderr}", pytrace=False)
        assert m.pid is not None, "rvffs returned but no daemon process serves the mount"
        return m

    def daemon(self, store, mnt=None, opts=(), **kw):
        """A foreground daemon, not started yet (its mount point is made)."""
        if mnt is not None:
            Path(mnt).mkdir(parents=True, exist_ok=True)
        return self._new(store, mnt, opts, foreground=True, **kw)

    def foreground(self, store, *opts, mnt=None, timeout=15):
        """rvffs -f in a child process; returns the Mount once mounted."""
        m = self.daemon(store, mnt, opts)
        m.start(timeout)
        return m

    def unmount(self, m, timeout=60):
        return m.unmount(timeout)

    def cleanup(self):
        problems = []
        for m in self.mounts:
            problems += m.cleanup()
        return problems + self.sanitizer_reports()


@pytest.fixture(scope="session")
def rvffs():
    exe = build_dir_path() / "fs" / "rvffs"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.skip(f"rvffs is not built ({exe} is missing)")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing")
    return exe


@pytest.fixture
def mount(rvffs, tmp_path):
    m = Mounter(rvffs, tmp_path)
    yield m
    problems = m.cleanup()
    if problems:
        pytest.fail("mount cleanup: " + "; ".join(problems), pytrace=False)


# ------------------------------------------------------------------ shortcuts

def make_store(run_ctl, store, dim=4, rows=None, metric="l2", tmp=None, metadata=None):
    """A store created by rvfctl, optionally with rows [(id, vec)] ingested
    (as .jsonl when metadata is given, else .csv)."""
    p = store(dim=dim, metric=metric)
    if rows:
        if metadata is not None:
            src = write_jsonl(Path(str(p) + ".in.jsonl"), rows, metadata)
        else:
            src = write_csv(Path(str(p) + ".in.csv"), rows)
        run_ctl("ingest", p, src)
        src.unlink()
    return p


class MadeOnce:
    """made_once(KEY, make, dest) -> dest: a copy of the file make(path)
    writes at path.  make runs once per KEY per test module (per xdist
    worker); every call, the first too, copies that file (mode kept: root's
    0644, as rvfctl create makes it).  For the stores a test starts from,
    not for those whose making it tests: each rvfctl start costs ASan's
    start and exit scan.  Every copy is a file of its own (a test may
    change it)."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.made = {}

    def __call__(self, key, make, dest):
        src = self.made.get(key)
        if src is None:
            src = self.dir / f"{len(self.made)}.rvf"
            make(src)
            self.made[key] = src
        shutil.copy(src, dest)
        return Path(dest)


@pytest.fixture(scope="module")
def made_once(tmp_path_factory):
    return MadeOnce(tmp_path_factory.mktemp("made-once"))


class StoreCopies:
    """store_copies(store, KEY, dim=..., rows=..., metric=..., metadata=...)
    -> Path: at a fresh path of the `store` fixture, a copy (made_once) of
    the store make_store(run_ctl, store, ...) makes.  For the tests whose
    subject is the mount, not `rvfctl create/ingest` (test_rvfctl's).  rows
    may be a callable: called once, at the first call; finish(path), when
    given, then runs once on the store made (e.g. rvfctl embed-kernel)."""

    def __init__(self, run_ctl, made_once):
        self.run_ctl = run_ctl
        self.made_once = made_once
        self.recipes = {}

    def __call__(self, store, key, dim=4, rows=None, metric="l2", metadata=None, finish=None):
        # a KEY names one store: a call that would make another fails
        recipe = (dim, metric, None if callable(rows) else rows, metadata, finish is None)
        made_from = self.recipes.setdefault(key, recipe)
        assert made_from == recipe, f"store_copies: {key!r} was made from other arguments"

        def make(path):
            def create(dim=None, metric="l2"):  # make_store's store(): at path
                self.run_ctl("create", path, "--dim", dim, "--metric", metric)
                return path
            make_store(self.run_ctl, create, dim=dim, rows=rows() if callable(rows) else rows,
                       metric=metric, metadata=metadata)
            if finish is not None:
                finish(path)
        return self.made_once(("store_copies", key), make, store())


@pytest.fixture(scope="module")
def store_copies(run_ctl, made_once):
    return StoreCopies(run_ctl, made_once)


def int_rows(n, dim, start=1, seed=1):
    """n rows of small integer vectors with ids start, start+1, ..."""
    import random
    rng = random.Random(seed)
    return [(start + i, [float(rng.randint(-20, 20)) for _ in range(dim)]) for i in range(n)]


def rand_rows(n, dim, start=1, seed=1):
    import random
    rng = random.Random(seed)
    return [(start + i, [f32(rng.uniform(-10, 10)) for _ in range(dim)]) for i in range(n)]


def os_error(fn, *args):
    """errno of fn(*args), or 0 when it succeeds."""
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


def write_close(path, data, flags=os.O_WRONLY | os.O_TRUNC):
    """open/write/close; returns (errno of write, errno of close)."""
    fd = os.open(str(path), flags, 0o644)
    werr = 0
    try:
        os.write(fd, data if isinstance(data, bytes) else data.encode())
    except OSError as e:
        werr = e.errno
    cerr = 0
    try:
        os.close(fd)
    except OSError as e:
        cerr = e.errno
    return werr, cerr




# ------------------------------------------------------------------ other users

NOBODY = 65534  # uid and gid of nobody/nogroup: the hostile local user


def need_root():
    """Skips unless we are root (needed to mount with allow_other for
    another user and to switch to that user)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: a root daemon with allow_other and a second user")
    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is missing")


def run_as_nobody(cmd, check=False, input=None, cwd="/", env=None, timeout=60):
    """cmd (argv list, or a str for bash -c) run as uid/gid 65534 with no
    supplementary groups, via setpriv. Returns the CompletedProcess (text
    unless input is bytes); check=True fails the test on a non-zero exit."""
    if isinstance(cmd, str):
        cmd = ["bash", "-c", cmd]
    full = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    e = dict(os.environ if env is None else env)
    e.setdefault("LC_ALL", "C")
    e["HOME"] = "/"
    return run(full + [str(c) for c in cmd], check=check, input=input, cwd=cwd,
               env=e, timeout=timeout)


@pytest.fixture
def world_dir():
    """A fresh directory under /tmp that every user can traverse (0755;
    tmp_path is root's 0700, so uid 65534 could not reach a mount there).
    Anything still mounted under it is lazily unmounted at teardown."""
    import tempfile
    d = Path(tempfile.mkdtemp(prefix="rvf-world-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    for p in sorted(d.rglob("*"), reverse=True):
        try:
            if p.is_dir() and not p.is_symlink() and os.path.ismount(p):
                subprocess.run([FUSERMOUNT, "-uz", str(p)], capture_output=True)
        except OSError:
            pass
    shutil.rmtree(d, ignore_errors=True)


NOBODY_OPS = r'''
import errno, json, os, sys
out = []
for op in json.loads(sys.argv[1]):
    kind, path, args = op[0], op[1], op[2:]
    try:
        if kind == "read":
            with open(path, "rb") as f:
                f.read()
        elif kind in ("write", "create", "trunc"):
            flags = {"write": os.O_WRONLY, "trunc": os.O_WRONLY | os.O_TRUNC,
                     "create": os.O_WRONLY | os.O_CREAT | os.O_TRUNC}[kind]
            fd = os.open(path, flags, 0o644)
            try:
                os.write(fd, args[0].encode())
            finally:
                os.close(fd)
        elif kind == "pwrite":
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, args[0].encode(), args[1])
            finally:
                os.close(fd)
        elif kind == "truncate":
            os.truncate(path, args[0])
        elif kind == "unlink":
            os.unlink(path)
        elif kind == "mkdir":
            os.mkdir(path)
        elif kind == "rmdir":
            os.rmdir(path)
        elif kind == "rename":
            os.rename(path, args[0])
        elif kind == "chmod":
            os.chmod(path, args[0])
        elif kind == "utime":
            os.utime(path, (args[0], args[0]))
        elif kind == "setxattr":
            os.setxattr(path, args[0], args[1].encode())
        elif kind == "removexattr":
            os.removexattr(path, args[0])
        elif kind == "access_w":
            if not os.access(path, os.W_OK):
                raise OSError(errno.EACCES, "access")
        out.append("ok")
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
'''


def nobody_ops(ops):
    """Runs ops ([KIND, PATH, ARGS...], see NOBODY_OPS) as uid 65534, each
    in turn; returns the outcome of each: "ok" or the errno name."""
    cp = run_as_nobody(["/usr/bin/python3", "-c", NOBODY_OPS, json.dumps(ops)],
                       check=True)
    return json.loads(cp.stdout)
