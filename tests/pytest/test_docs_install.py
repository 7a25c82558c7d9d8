"""Man pages render, `meson install` installs everything, and mounting
through mount.fuse3 (`mount -t fuse.rvffs`, and the `prog#source` form)
works, through a real install into /usr/local too."""
import fcntl
import json
import os
import re
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from mountlib import is_mounted, wait_for

REPO = Path(__file__).resolve().parents[2]
MAN = REPO / "docs" / "man"


@pytest.mark.normal_pass
@pytest.mark.parametrize("page,sections", [
    ("rvffs.1", ["SYNOPSIS", "OPTIONS", "THE TREE", "INGEST FORMATS", "QUERIES",
                 "EXIT STATUS", "EXAMPLES"]),
    ("rvfctl.1", ["SYNOPSIS", "COMMANDS", "EXIT STATUS", "EXAMPLES"]),
    ("rvffs.conf.5", ["SECTIONS", "EXAMPLE"]),
])
def test_man_page_renders(page, sections):
    r = subprocess.run(["man", "--warnings", "-l", str(MAN / page)],
                       capture_output=True, text=True,
                       env=dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="0"))
    assert r.returncode == 0, r.stderr
    assert not r.stderr.strip(), f"groff warnings: {r.stderr}"
    text = re.sub(".\x08", "", r.stdout)  # drop bold/underline overstrikes
    for s in sections:
        assert s in text, f"{page}: no {s} section"


@pytest.mark.normal_pass
def test_meson_install(build_dir, tmp_path):
    dest = tmp_path / "dest"
    subprocess.run(["meson", "install", "-C", str(build_dir), "--destdir", str(dest),
                    "--no-rebuild"], check=True, capture_output=True)
    files = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file() or p.is_symlink()}
    for want in ("bin/rvffs", "bin/rvfctl", "include/rvf.h", "man1/rvffs.1",
                 "man1/rvfctl.1", "man5/rvffs.conf.5", "pkgconfig/librvf.pc"):
        assert any(f.endswith(want) for f in files), f"{want} not installed: {sorted(files)}"


def _mount_via(cmd, mnt):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    try:
        assert wait_for(lambda: is_mounted(mnt))
        status = (mnt / "status").read_text()
        assert "dimension: 3" in status
        return status
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True)


@pytest.mark.normal_pass
@pytest.mark.skipif(os.geteuid() != 0, reason="mount(8) needs root")
def test_mount_fuse_helper(build_dir, run_ctl, tmp_path):
    """mount.fuse3's "program#source" form, with no install needed."""
    store = tmp_path / "m.rvf"
    run_ctl("create", store, "--dim", "3")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rvffs = Path(build_dir).resolve() / "fs" / "rvffs"
    _mount_via(["mount", "-t", "fuse", f"{rvffs}#{store}", str(mnt)], mnt)


@contextmanager
def system_lock():
    """One test at a time changes /usr/local or dpkg's database on this
    machine, across pytest workers and concurrent runs."""
    with open("/tmp/rvffs-test-system.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


# A program of someone else's, built against the installed librvf.
LIBRVF_USER = r"""
#include <stdio.h>
#include <rvf.h>
int main(void)
{
    printf("%s\n", rvf_metric_name(RVF_METRIC_L2));
    return 0;
}
"""


@pytest.mark.normal_pass
@pytest.mark.xdist_group("system")
@pytest.mark.skipif(os.geteuid() != 0, reason="installs into /usr/local and mounts: needs root")
def test_real_install(build_dir, run_ctl, tmp_path):
    """`meson install` into the default prefix: rvffs and rvfctl start right
    away (no LD_LIBRARY_PATH, no manual ldconfig), a program built with
    `pkg-config librvf` runs, `mount -t fuse.rvffs` finds the installed
    daemon; `ninja uninstall` leaves nothing behind."""
    build = Path(build_dir).resolve()
    opts = json.loads(subprocess.run(["meson", "introspect", "--buildoptions", str(build)],
                                     capture_output=True, text=True, check=True).stdout)
    prefix = next(o["value"] for o in opts if o["name"] == "prefix")
    if prefix != "/usr/local":
        pytest.skip(f"{build} installs into {prefix}, not the default /usr/local")
    with system_lock():
        for exe in ("/usr/local/bin/rvffs", "/usr/local/bin/rvfctl"):
            if os.path.lexists(exe):
                pytest.skip(f"{exe} exists: another install, left alone")
        r = subprocess.run(["meson", "install", "-C", str(build), "--no-rebuild"],
                           capture_output=True, text=True)
        try:
            assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
            env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"}
            for exe in ("rvffs", "rvfctl"):
                v = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env)
                assert v.returncode == 0 and v.stdout.startswith(exe + " "), v.stderr

            src = tmp_path / "user.c"
            src.write_text(LIBRVF_USER)
            flags = subprocess.run(["pkg-config", "--cflags", "--libs", "librvf"],
                                   capture_output=True, text=True, check=True).stdout.split()
            subprocess.run(["cc", "-o", str(tmp_path / "user"), str(src)] + flags, check=True)
            out = subprocess.run([str(tmp_path / "user")], capture_output=True, text=True, env=env)
            assert (out.returncode, out.stdout) == (0, "l2\n"), out.stderr

            store = tmp_path / "m.rvf"
            run_ctl("create", store, "--dim", "3")
            mnt = tmp_path / "mnt"
            mnt.mkdir()
            # the fstab form: mount.fuse3 runs `rvffs` from its default PATH
            status = _mount_via(["mount", "-t", "fuse.rvffs", "-o", "ro", str(store), str(mnt)], mnt)
            assert "read_only: true" in status
        finally:
            u = subprocess.run(["ninja", "-C", str(build), "uninstall"], capture_output=True, text=True)
            subprocess.run(["ldconfig"], capture_output=True)
        assert u.returncode == 0, u.stdout[-3000:]
        installed = [line.strip() for line in
                     (build / "meson-logs" / "install-log.txt").read_text().splitlines()
                     if line.startswith("/")]
        assert installed, "install-log.txt lists nothing"
        left = [p for p in installed if os.path.lexists(p)]
        assert not left, f"left behind by ninja uninstall: {left}"
