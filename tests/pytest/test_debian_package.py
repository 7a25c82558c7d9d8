"""The Debian package, built, checked and used the way a user would:
`dpkg-buildpackage -us -uc -b` on a copy of this tree, `lintian` with no
error, `apt-get install ./….deb`, a store mounted through the installed
files (`mount -t fuse.rvffs`, /usr/bin/rvffs), a program built against
librvf-dev, then `apt-get purge` leaves nothing behind.

A heavy test (a full package build): tests/run-all.sh runs it once, in its
background pass against `build` (background_pass)."""
import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO
from test_docs_install import LIBRVF_USER, system_lock

PACKAGES = ["rvffs", "librvf0", "librvf-dev"]
SYSTEM_PATH = "/usr/bin:/bin:/usr/sbin:/sbin"  # never /usr/local


def copy_tree(dst):
    """The working tree as a user would have it: tracked and new files,
    no build directories, no node_modules."""
    if (REPO / ".git").exists():
        names = subprocess.run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "-z"],
                               capture_output=True, check=True).stdout.split(b"\0")
        for n in names:
            n = n.decode()
            if not n or n.startswith("tests/interop/node_modules"):
                continue
            src = REPO / n
            if src.is_file():
                (dst / n).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst / n)
    else:
        shutil.copytree(REPO, dst, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("build*", "node_modules", "__pycache__"))


def dpkg_status(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else "not known"


def run(cmd, timeout=1200, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, (f"$ {' '.join(map(str, cmd))}: exit {r.returncode}\n"
                               f"{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


@pytest.mark.background_pass
@pytest.mark.xdist_group("system")
@pytest.mark.skipif(os.geteuid() != 0, reason="apt-get install needs root")
def test_debian_package(tmp_path, run_ctl):
    for tool in ("dpkg-buildpackage", "dh", "lintian"):
        assert shutil.which(tool), f"{tool} is missing: tests/run-all.sh installs it"
    src = tmp_path / "rvffs"
    src.mkdir()
    copy_tree(src)
    run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src)
    version = run(["dpkg-parsechangelog", "-S", "Version"], cwd=src).stdout.strip()
    arch = run(["dpkg-architecture", "-q", "DEB_HOST_ARCH"]).stdout.strip()
    debs = [tmp_path / f"{p}_{version}_{arch}.deb" for p in PACKAGES]
    for d in debs:
        assert d.is_file(), f"{d.name} was not built: {sorted(os.listdir(tmp_path))}"
    lint = subprocess.run(["lintian", "--fail-on", "error", str(tmp_path / f"rvffs_{version}_{arch}.changes")],
                          capture_output=True, text=True, timeout=1200)
    assert lint.returncode == 0 and "\nE: " not in "\n" + lint.stdout, lint.stdout + lint.stderr

    contents = run(["dpkg-deb", "-c", str(debs[0])]).stdout
    for f in ("./usr/bin/rvffs", "./usr/bin/rvfctl", "./usr/share/man/man1/rvffs.1.gz",
              "./usr/share/man/man1/rvfctl.1.gz", "./usr/share/man/man5/rvffs.conf.5.gz"):
        assert f in contents, f"{f} not in {debs[0].name}:\n{contents}"
    # rvfctl serve dlopen()s libmicrohttpd, which dpkg-shlibdeps cannot see
    depends = run(["dpkg-deb", "-f", str(debs[0]), "Depends"]).stdout
    assert "libmicrohttpd12" in depends, depends

    with system_lock():
        for p in PACKAGES:
            if "installed" in dpkg_status(p):
                pytest.skip(f"{p} is installed on this machine: left alone")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive", PATH=SYSTEM_PATH)
        try:
            run(["apt-get", "install", "-y", "--no-install-recommends"] + [str(d) for d in debs],
                env=env)
            for p in PACKAGES:
                assert dpkg_status(p) == "install ok installed", p
            v = run(["rvfctl", "--version"], env=env).stdout
            assert v.startswith("rvfctl "), v

            # someone else's program, against librvf-dev and librvf0
            prog = tmp_path / "user.c"
            prog.write_text(LIBRVF_USER)
            flags = run(["pkg-config", "--cflags", "--libs", "librvf"], env=env).stdout.split()
            run(["cc", "-o", str(tmp_path / "user"), str(prog)] + flags, env=env)
            out = run([str(tmp_path / "user")], env=env).stdout
            assert out == "l2\n"
            ldd = run(["ldd", str(tmp_path / "user")]).stdout
            assert re.search(r"librvf\.so\.0 => (/usr)?/lib/", ldd), ldd  # the package's, not /usr/local

            # the fstab form through the installed daemon
            store = tmp_path / "m.rvf"
            run_ctl("create", store, "--dim", "3")
            _installed_serve_answers(store, env)
            mnt = tmp_path / "mnt"
            mnt.mkdir()
            r = subprocess.run(["mount", "-t", "fuse.rvffs", str(store), str(mnt)],
                               capture_output=True, text=True, env=env, timeout=60)
            assert r.returncode == 0, r.stderr
            try:
                status = (mnt / "status").read_text()
                assert "dimension: 3" in status
                daemons = [p for p in Path("/proc").iterdir() if p.name.isdigit()
                           and _is_daemon_for(p, mnt)]
                assert daemons and all(os.readlink(p / "exe") == "/usr/bin/rvffs" for p in daemons)
            finally:
                subprocess.run(["umount", str(mnt)], capture_output=True)
                if str(mnt) in Path("/proc/self/mounts").read_text():
                    subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)
        finally:
            purge = subprocess.run(["apt-get", "purge", "-y"] + PACKAGES,
                                   capture_output=True, text=True, env=env, timeout=600)
        assert purge.returncode == 0, purge.stdout[-3000:] + purge.stderr[-3000:]
        for p in PACKAGES:
            assert "installed" not in dpkg_status(p), f"{p}: {dpkg_status(p)}"
        for f in ("/usr/bin/rvffs", "/usr/bin/rvfctl", "/usr/include/rvf.h"):
            assert not os.path.lexists(f), f"{f} left behind by apt-get purge"


def _is_daemon_for(proc, mnt):
    try:
        args = (proc / "cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(args) and args[0].endswith(b"rvffs") and str(mnt).encode() in args


def _installed_serve_answers(store, env):
    """The installed rvfctl serve finds the libmicrohttpd the package
    depends on (it loads it at serve's start)."""
    p = subprocess.Popen(["rvfctl", "--json", "serve", str(store), "--port", "0"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line, p.stderr.read() if p.poll() is not None else "serve printed nothing"
        url = json.loads(line)["url"]
        with urllib.request.urlopen(url + "v1/health", timeout=30) as r:
            assert json.loads(r.read()) == {"status": "ok"}
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
