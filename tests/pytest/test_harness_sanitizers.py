"""The harness itself: a sanitizer report fails a test even when it does not
halt the program (UBSan without halt_on_error, LeakSanitizer at exit).

Small C programs built here with the sanitizers stand in for rvfctl and the
daemon: their reports must be found where the suite looks, in the log files
of sanitizer_env (the daemons, the damaged-file inspects), in a foreground
daemon's log (Mount.cleanup) and on stderr (conftest.check_sanitizers)."""

import shutil
import subprocess
from types import SimpleNamespace

import pytest

from conftest import check_sanitizers
from mountlib import Mount, Mounter, sanitizer_env, sanitizer_reports

# Whatever the build under test: one pass.
pytestmark = pytest.mark.normal_pass

PROGRAMS = {
    # signed overflow: UBSan reports "runtime error:" and carries on
    "ubsan": ("undefined", "#include <limits.h>\n"
              "int main(int argc, char **argv) { volatile int x = INT_MAX; x += argc;"
              " (void)argv; return 0; }\n"),
    # a leak: LeakSanitizer reports at exit
    "lsan": ("address", "#include <stdlib.h>\n#include <string.h>\n"
             "int main(void) { char *p = malloc(64); memset(p, 1, 64); p = 0; return 0; }\n"),
}


@pytest.fixture(scope="module")
def programs(tmp_path_factory):
    cc = shutil.which("gcc") or shutil.which("cc")
    if not cc:
        pytest.skip("no C compiler")
    d = tmp_path_factory.mktemp("san")
    out = {}
    for name, (san, src) in PROGRAMS.items():
        (d / f"{name}.c").write_text(src)
        r = subprocess.run([cc, "-O0", "-g", f"-fsanitize={san}", "-o", str(d / name),
                            str(d / f"{name}.c")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        out[name] = d / name
    return out


@pytest.mark.parametrize("name,marker", [("ubsan", "runtime error:"),
                                         ("lsan", "ERROR: LeakSanitizer")])
def test_reports_in_log_files_are_found(programs, tmp_path, name, marker):
    env = sanitizer_env(tmp_path, leaks=True)
    env["UBSAN_OPTIONS"] += ":halt_on_error=0"
    r = subprocess.run([str(programs[name]), "1"], env=env, capture_output=True, text=True)
    assert marker not in r.stderr  # it went to the log file
    if name == "ubsan":
        assert r.returncode == 0  # did not halt: only the log tells
    reports = sanitizer_reports(tmp_path)
    assert len(reports) == 1 and marker in reports[0], reports


def test_a_foreground_daemon_log_with_a_report_fails_cleanup(programs, tmp_path):
    log = tmp_path / "rvffs-mnt-1.log"
    r = subprocess.run([str(programs["ubsan"]), "1"], capture_output=True, text=True,
                       env={"UBSAN_OPTIONS": "halt_on_error=0:print_stacktrace=1"})
    assert r.returncode == 0 and "runtime error:" in r.stderr
    log.write_text(r.stderr)
    mounter = Mounter(programs["ubsan"], tmp_path)
    m = Mount(mounter, tmp_path / "s.rvf", tmp_path / "mnt", foreground=True)
    m.logs.append(log)
    problems = m.cleanup()
    assert len(problems) == 1 and "runtime error:" in problems[0], problems
    # and a background daemon's log file (log_path) in the mounter's logdir
    (mounter.logdir / "sanitizer.4242").write_text(r.stderr)
    assert len(mounter.sanitizer_reports()) == 1


def test_a_report_on_stderr_fails_the_test(programs):
    r = subprocess.run([str(programs["ubsan"]), "1"], capture_output=True, text=True,
                       env={"UBSAN_OPTIONS": "halt_on_error=0"})
    assert r.returncode == 0 and "runtime error:" in r.stderr
    with pytest.raises(pytest.fail.Exception, match="sanitizer report"):
        check_sanitizers(SimpleNamespace(stderr=r.stderr), "a program")
