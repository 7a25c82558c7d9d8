"""Shared fixtures for the rvffs pytest suites.

Layout assumptions (never absolute paths):
  <repo>/tests/pytest/      this folder
  <repo>/tests/interop/     ref.js + package.json (the reference, via node)
  <repo>/../shared/corpus/  the conformance corpus (optional)

Environment:
  RVF_BUILD_DIR  build directory holding ctl/rvfctl (default <repo>/build;
                 a relative path is taken relative to the repository root)
"""

import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus"
INTEROP = REPO / "tests" / "interop"
REF_JS = INTEROP / "ref.js"

# The exact versions tests/interop/package.json pins.
REF_PACKAGES = {
    "@ruvector/rvf-node": "0.2.3",
    "@ruvector/rvf-node-linux-x64-gnu": "0.2.2",
}

TIMEOUT = float(os.environ.get("RVF_TEST_TIMEOUT", "300"))

# ref.js commands that only read (read-only opens, no lock): RefServer.
READ_ONLY_REF_COMMANDS = ("dump", "selfcheck", "query")

# Sanitizer reports on stderr mean a memory/UB bug even when the exit code
# looks right (UBSan keeps running unless halt_on_error is set): one set of
# markers for the whole suite, in mountlib.
from mountlib import SANITIZER_MARKERS  # noqa: E402


from mountlib import build_dir_path  # noqa: E402,F401  (one reading of RVF_BUILD_DIR)
# The one daemon harness (mountlib.Mounter), for every test module.
from mountlib import made_once, mount, rvffs, store_copies  # noqa: E402,F401  (fixtures)


def shared_missing_reason():
    return None if CORPUS.is_dir() else "../shared is absent"


# ---------------------------------------------------------------- markers

MARKERS = {
    "normal_pass": "runs in tests/run-all.sh's pass against `build` only: the "
                   "result does not depend on the build under test (installs, "
                   "man pages), or the sanitizers see nothing there that "
                   "another test does not show them (the SIGKILL tests)",
    "background_pass": "runs in tests/run-all.sh's third pass, against `build`, "
                       "in the background beside the other two: the heavy checks "
                       "whose result does not depend on the build under test "
                       "(the benchmark, the Debian package, the fuzz programs "
                       "with their own sanitizers, the QEMU boot, the page "
                       "in Chromium)",
    "sanitizer_pass": "runs in tests/run-all.sh's pass against `build-asan` only "
                      "(the soak and the fault injection: long, and where ASan "
                      "sees most)",
    "xdist_group": "pytest-xdist runs tests of one group in one worker, one "
                   "after another: `system` for tests that change the machine "
                   "(/usr/local, dpkg)",
}


def pytest_configure(config):
    for name, text in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


# The tests that take longest (pytest --durations in tests/run-all.sh's
# log), longest first: collected first and in this order, so that
# pytest-xdist (--dist loadgroup hands out the tests in collection order)
# starts them at once, and the last minutes are short tests that keep
# every worker busy, instead of one worker running a long test alone at the
# end.  Only the order changes; a name missing here costs time, not
# coverage.
LONG_TESTS = (
    "test_bench_small.py::test_bench_small",
    "test_debian_package.py::",
    "test_upstream_launch.py::test_launch_boots_the_embedded_kernel",
    "test_upstream_serve.py::test_page_in_headless_chromium",
    "test_reliability_crash.py::test_rvfctl_compact_sigkill",
    "test_reliability_soak.py::test_soak",
    "test_reliability_faults.py::test_rvfctl_under_faults[ingest]",
    "test_reliability_damaged.py::test_damaged_files_open_or_refuse_like_the_reference",
    "test_reliability_crash.py::",
    "test_reliability_faults.py::test_rvfctl_under_faults",
    "test_reliability_damaged.py::test_mount_damaged_sample",
    "test_mount_commit.py::test_unmount_then_ingest_at_once",
    "test_mount_ingest.py::test_files_streamed_at_once_both_commit",
    "test_rvfctl.py::test_mount_point_changes_show_at_once",
    "test_rvfctl.py::test_single_ingests_follow_the_compact_policy",
    "test_reliability_soak.py::",
)


def pytest_collection_modifyitems(config, items):
    def rank(item):  # the first LONG_TESTS entry that names it, or after them all
        return next((i for i, n in enumerate(LONG_TESTS) if n in item.nodeid), len(LONG_TESTS))
    items.sort(key=rank)  # stable: the rest keep their order


# ---------------------------------------------------------------- basics

@pytest.fixture(scope="session")
def repo():
    return REPO


@pytest.fixture(scope="session")
def build_dir():
    return build_dir_path()


@pytest.fixture(scope="session")
def rvfctl(build_dir):
    exe = build_dir / "ctl" / "rvfctl"
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        pytest.skip(f"rvfctl is not built ({exe} is missing; build with meson/ninja "
                    f"or run tests/run-all.sh)")
    return exe


@pytest.fixture(scope="session")
def corpus_dir():
    reason = shared_missing_reason()
    if reason:
        pytest.skip(reason)
    return CORPUS


# ---------------------------------------------------------------- rvfctl

def check_sanitizers(cp, what):
    err = cp.stderr or ""
    for m in SANITIZER_MARKERS:
        if m in err:
            pytest.fail(f"sanitizer report from {what}:\n{err[-6000:]}", pytrace=False)


def fmt_cp(cp):
    out = (cp.stdout or "")
    err = (cp.stderr or "")
    if len(out) > 3000:
        out = out[:3000] + "...[truncated]"
    return (f"$ {' '.join(map(str, cp.args))}\nexit {cp.returncode}\n"
            f"--- stdout\n{out}\n--- stderr\n{err[-3000:]}")


@pytest.fixture(scope="session")
def run_ctl(rvfctl):
    """run_ctl(*args, check=True, input=None, cwd=None) -> CompletedProcess.

    Arguments are converted with str(). With check=True a non-zero exit is a
    test failure showing the command, exit code, stdout and stderr. A
    sanitizer report on stderr is always a failure."""

    def run(*args, check=True, input=None, cwd=None, timeout=TIMEOUT):
        cmd = [str(rvfctl)] + [str(a) for a in args]
        try:
            cp = subprocess.run(cmd, input=input, cwd=cwd, capture_output=True,
                                text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"timeout after {timeout}s: {' '.join(cmd)}", pytrace=False)
        check_sanitizers(cp, " ".join(cmd))
        if cp.returncode < 0:
            pytest.fail(f"rvfctl killed by signal {-cp.returncode}\n{fmt_cp(cp)}",
                        pytrace=False)
        if check and cp.returncode != 0:
            pytest.fail(f"rvfctl failed\n{fmt_cp(cp)}", pytrace=False)
        return cp

    return run


@pytest.fixture(scope="session")
def ctl_json(run_ctl):
    """ctl_json(*args, check=True) -> parsed JSON stdout of rvfctl."""

    def run(*args, check=True, **kw):
        cp = run_ctl(*args, check=check, **kw)
        try:
            return json.loads(cp.stdout)
        except ValueError as e:
            pytest.fail(f"rvfctl printed no valid JSON ({e})\n{fmt_cp(cp)}", pytrace=False)

    return run


# ---------------------------------------------------------------- reference

class RefError(AssertionError):
    pass


class RefServer:
    """One `node ref.js serve` for the session's read-only reference
    commands (dump, selfcheck, query) and the scripts run with
    Ref.run(serve=True): a node start costs more CPU than most of them.
    Each answer is the one `node ref.js ARGS` prints (see
    ref.js serve).  A server that dies or hangs fails that call, like the
    process of its own did, and the next call starts a new one."""

    def __init__(self, node, tmpdir):
        self.node = node
        self.tmpdir = Path(tmpdir)
        self.p = None
        self.err = None

    def _start(self):
        self.err = open(self.tmpdir / "ref-serve.stderr", "ab+")
        self.p = subprocess.Popen([self.node, str(REF_JS), "serve"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self.err, bufsize=0)

    def stop(self):
        if self.p is not None:
            self.p.stdin.close()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
            self.p.stdout.close()
            self.err.close()
            self.p = None

    def _stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-3000:]

    def call(self, args, timeout):
        """(exit code, document) of `node ref.js ARGS`."""
        if self.p is None or self.p.poll() is not None:
            self._start()
        line = (json.dumps([str(a) for a in args]) + "\n").encode()
        buf = b""
        try:
            self.p.stdin.write(line)
            end = time.monotonic() + timeout
            while not buf.endswith(b"\n"):
                left = end - time.monotonic()
                if left <= 0 or not select.select([self.p.stdout], [], [], left)[0]:
                    self.p.kill()
                    pytest.fail(f"timeout: ref.js {' '.join(map(str, args))}", pytrace=False)
                chunk = os.read(self.p.stdout.fileno(), 1 << 20)
                if not chunk:
                    break
                buf += chunk
        except BrokenPipeError:
            pass
        if not buf.endswith(b"\n"):
            rc = self.p.wait()
            err = self._stderr()
            self.stop()
            pytest.fail(f"ref.js serve died (exit {rc}) on {' '.join(map(str, args))}:\n{err}",
                        pytrace=False)
        answer = json.loads(buf)
        return answer["exit"], answer["out"]


class Ref:
    """Calls `node tests/interop/ref.js ...` and parses its JSON."""

    def __init__(self, node, tmpdir):
        self.node = node
        self.tmpdir = Path(tmpdir)
        self._n = 0
        self.server = RefServer(node, tmpdir)

    def _tmpjson(self, obj, stem):
        self._n += 1
        p = self.tmpdir / f"{stem}-{self._n}.json"
        p.write_text(json.dumps(obj))
        return p

    def call(self, *args, check=True, serve=False):
        if args and (args[0] in READ_ONLY_REF_COMMANDS or serve):
            rc, out = self.server.call(args, TIMEOUT)
            if check and rc != 0:
                pytest.fail(f"ref.js {' '.join(map(str, args))} failed (exit {rc}): "
                            f"{out.get('error')}", pytrace=False)
            return out
        cmd = [self.node, str(REF_JS)] + [str(a) for a in args]
        try:
            cp = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"timeout: {' '.join(cmd)}", pytrace=False)
        try:
            out = json.loads(cp.stdout)
        except ValueError:
            pytest.fail(f"ref.js printed no valid JSON\n{fmt_cp(cp)}", pytrace=False)
        if check and cp.returncode != 0:
            pytest.fail(f"ref.js failed: {out.get('error')}\n{fmt_cp(cp)}", pytrace=False)
        return out

    def dump(self, file, queries=None, selfcheck=None, k=8):
        """Reference view of FILE (read-only open). queries: list of vectors
        (or {"vector", "k"}): out["exact"][i] = [[id, distance], ...], the
        reference's exact answer, all visible vectors unless k is given.
        selfcheck: [(id, vector), ...]: out["selfcheck"] is what
        selfcheck(file, selfcheck, k) returns, from the same open."""
        args = ["dump", file]
        if queries is not None:
            args += ["--queries", self._tmpjson(queries, "queries")]
        if selfcheck is not None:
            entries = [[i, list(v)] for i, v in selfcheck]
            args += ["--selfcheck", self._tmpjson(entries, "vectors"), "--k", k]
        return self.call(*args)

    def run(self, ops, check=True, serve=False):
        """Executes reference operations (see ref.js cmdRun).  serve=True:
        in the session's `ref.js serve` instead of a node process of its
        own (the same answer; a script that fails to close a file leaves a
        lock whose holder, the server, lives on: for scripts whose failure
        fails the test)."""
        return self.call("run", self._tmpjson(ops, "script"), check=check, serve=serve)

    def selfcheck(self, file, entries, k=8):
        """entries: [(id, vector), ...]."""
        entries = [[i, list(v)] for i, v in entries]
        return self.call("selfcheck", file, self._tmpjson(entries, "vectors"), "--k", k)

    def query(self, file, vector, k=10, exact=False, filter=None):
        args = ["query", file, "--vector", json.dumps(list(vector)), "--k", k]
        if exact:
            args.append("--exact")
        if filter is not None:
            args += ["--filter", filter if isinstance(filter, str) else json.dumps(filter)]
        return self.call(*args)["results"]


def reference_install_problem():
    node = shutil.which("node") or shutil.which("nodejs")
    if not node:
        return None, "node is not installed"
    for name, version in REF_PACKAGES.items():
        pj = INTEROP / "node_modules" / name / "package.json"
        if not pj.is_file():
            return node, f"{pj.relative_to(REPO)} is missing"
        try:
            got = json.loads(pj.read_text()).get("version")
        except ValueError:
            got = None
        if got != version:
            return node, f"{name} is {got}, tests need {version}"
    return node, None


@pytest.fixture(scope="session")
def ref(tmp_path_factory):
    node, problem = reference_install_problem()
    if problem:
        pytest.fail(f"the reference implementation is not installed ({problem}): "
                    f"run tests/run-all.sh (or `npm install` in tests/interop)",
                    pytrace=False)
    r = Ref(node, tmp_path_factory.mktemp("ref"))
    yield r
    r.server.stop()


# ---------------------------------------------------------------- stores

@pytest.fixture
def store(tmp_path, run_ctl):
    """store(name=None, dim=None, metric="l2", profile=None) -> Path.

    Returns a fresh path in tmp_path; with dim, the store is created with
    `rvfctl create` first."""
    counter = [0]

    def make(name=None, dim=None, metric="l2", profile=None):
        counter[0] += 1
        p = tmp_path / (name or f"s{counter[0]}.rvf")
        assert not p.exists(), f"{p} exists"
        if dim is not None:
            args = ["create", p, "--dim", dim, "--metric", metric]
            if profile is not None:
                args += ["--profile", profile]
            run_ctl(*args)
        return p

    return make
