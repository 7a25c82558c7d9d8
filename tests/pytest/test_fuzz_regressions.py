"""Fuzz regressions: every input in tests/fuzz/regressions/<target>/ (a crash
the fuzzers once found) and every seed in tests/fuzz/seeds/<target>/ (plus
../shared/corpus for fuzz_open, when present) runs once through a plain,
non-libFuzzer build of its target under AddressSanitizer, UBSan and
LeakSanitizer.

The targets are built by `tests/fuzz/build.sh --standalone` (gcc, into
build-fuzz-standalone/) and, when clang is installed, also with CC=clang
(build-fuzz-standalone-clang/: clang's UBSan also catches pointer-arithmetic
overflow, which gcc's misses).  The build is incremental, so it is cheap when
nothing changed.  No meson involved; see docs/testing.md.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mountlib import SANITIZER_MARKERS

# The programs carry their own sanitizers, so one pass of run-all.sh runs
# them: the background one, after it has built them (build.sh, as below);
# one xdist worker, so two never run build.sh at once.
pytestmark = [pytest.mark.background_pass, pytest.mark.xdist_group("fuzz")]

REPO = Path(__file__).resolve().parents[2]
FUZZ = REPO / "tests" / "fuzz"
CORPUS = REPO.parent / "shared" / "corpus"
TARGETS = ["fuzz_open", "fuzz_import_csv", "fuzz_import_jsonl",
           "fuzz_import_json", "fuzz_import_fvecs", "fuzz_import_npy",
           "fuzz_query", "fuzz_filter", "fuzz_control"]
COMPILERS = ["gcc", "clang"]
MARKERS = SANITIZER_MARKERS + ("FUZZ_CHECK(",)
ENV = dict(os.environ,
           ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1",
           LSAN_OPTIONS="")
ENV.pop("FUZZ_VERBOSE", None)


def regression_inputs():
    out = []
    for t in TARGETS:
        d = FUZZ / "regressions" / t
        if d.is_dir():
            out += [(t, p) for p in sorted(d.iterdir()) if p.is_file()]
    return out


def out_dir(cc):
    return REPO / ("build-fuzz-standalone" if cc == "gcc"
                   else "build-fuzz-standalone-" + cc)


_built = {}


@pytest.fixture(scope="module", params=COMPILERS)
def standalone(request):
    """Directory of the standalone targets built with one compiler."""
    cc = request.param
    if cc not in _built:
        if not shutil.which(cc):
            _built[cc] = None
        else:
            r = subprocess.run(["bash", str(FUZZ / "build.sh"), "--standalone"],
                               cwd=REPO, env=dict(os.environ, CC=cc),
                               capture_output=True, text=True, timeout=900)
            assert r.returncode == 0, (
                f"build.sh --standalone (CC={cc}) failed:\n"
                f"{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
            _built[cc] = out_dir(cc)
    if _built[cc] is None:
        pytest.skip(f"{cc} is not installed")
    return _built[cc]


def run_target(bindir, target, inputs):
    binary = bindir / target
    assert binary.exists(), f"{binary} was not built"
    r = subprocess.run([str(binary)] + [str(p) for p in inputs], cwd=REPO,
                       env=ENV, capture_output=True, text=True, timeout=600)
    bad = [m for m in MARKERS if m in r.stderr]
    assert r.returncode == 0 and not bad, (
        f"{target} failed (exit {r.returncode}) on {len(inputs)} input(s):\n"
        + r.stderr[-6000:])
    return r


@pytest.mark.parametrize(
    "target,path", regression_inputs(),
    ids=[f"{t}/{p.name}" for t, p in regression_inputs()])
def test_regression(standalone, target, path):
    run_target(standalone, target, [path])


@pytest.mark.parametrize("target", TARGETS)
def test_seeds(standalone, target):
    inputs = []
    seeds = FUZZ / "seeds" / target
    if seeds.is_dir():
        inputs.append(seeds)
    if target == "fuzz_open" and CORPUS.is_dir():
        inputs += sorted(p for p in CORPUS.rglob("*")
                         if p.is_file() and p.suffix in (".rvf", ".rvdna"))
    if not inputs:
        pytest.skip(f"no seeds for {target}")
    r = run_target(standalone, target, inputs)
    assert " input(s) run" in r.stderr
