"""Man pages render, `meson install` installs everything, and mounting
through mount.fuse3 (`mount -t fuse.rvffs`, and the `prog#source` form)
works."""
import os
import re
import subprocess
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
@pytest.mark.xdist_group("system")  # /usr/local/bin/rvffs
@pytest.mark.skipif(os.geteuid() != 0, reason="mount(8) needs root")
def test_mount_fuse_helper(build_dir, run_ctl, tmp_path):
    store = tmp_path / "m.rvf"
    run_ctl("create", store, "--dim", "3")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    rvffs = Path(build_dir).resolve() / "fs" / "rvffs"
    # mount.fuse3's "program#source" form, with no install needed
    _mount_via(["mount", "-t", "fuse", f"{rvffs}#{store}", str(mnt)], mnt)
    # the fstab form `mount -t fuse.rvffs`: mount.fuse3 runs `rvffs` from
    # the default PATH, so put the built one where an install would
    link = Path("/usr/local/bin/rvffs")
    made = False
    if not link.exists():
        link.symlink_to(rvffs)
        made = True
    try:
        if link.resolve() != rvffs:
            pytest.skip("/usr/local/bin/rvffs is another install")
        status = _mount_via(["mount", "-t", "fuse.rvffs", "-o", "ro", str(store), str(mnt)], mnt)
        assert "read_only: true" in status
    finally:
        if made:
            link.unlink()
