"""rvffs mount: the kernel and ebpf files (present only with a kernel /
eBPF program; content = the image bytes; cp embeds, rm removes; header
fields as xattrs, the settable ones re-embed without touching the image)."""

import os
import random
import re
from pathlib import Path

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import int_rows, make_store
from rvfformat import T_EBPF, T_KERNEL, locate_manifest

KERNEL_ATTRS = {"user.rvf.kernel.arch", "user.rvf.kernel.type", "user.rvf.kernel.flags",
                "user.rvf.kernel.api_port", "user.rvf.kernel.cmdline",
                "user.rvf.kernel.image_hash", "user.rvf.kernel.compression"}
EBPF_ATTRS = {"user.rvf.ebpf.program_type", "user.rvf.ebpf.attach_type",
              "user.rvf.ebpf.max_dimension", "user.rvf.ebpf.insn_count",
              "user.rvf.ebpf.program_hash", "user.rvf.ebpf.btf"}


def blob(n, seed):
    return random.Random(seed).randbytes(n)


@pytest.fixture
def plain(store, run_ctl):
    return make_store(run_ctl, store, dim=4, rows=int_rows(5, 4))


def listed_segments(m, kind):
    """Segments of type KIND that the store's newest manifest lists.
    segments/ shows every segment in the file (superseded ones too: the
    listing covers the file byte for byte), so what is live is read from
    the directory, after an fsync has made the mount's changes durable."""
    fd = os.open(m / "status", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    seg, man = locate_manifest(Path(m.store).read_bytes())
    t = {"kernel": T_KERNEL, "ebpf": T_EBPF}[kind]
    return [e for e in man.dir if e[3] == t]


def kernel_segments(m):
    return listed_segments(m, "kernel")


def test_kernel_absent_then_cp_embeds(mount, plain, tmp_path):
    m = mount(plain)
    assert "kernel" not in m.ls() and "ebpf" not in m.ls()
    img = blob(5000, 1)
    (tmp_path / "img").write_bytes(img)
    m.sh('cp img "$M/kernel"')
    assert "kernel" in m.ls()
    assert m.cat_bytes("kernel") == img
    m.sh('cmp img "$M/kernel"')
    st = os.stat(m / "kernel")
    assert st.st_size == len(img) and st.st_blocks > 0
    x = m.xattrs("kernel")
    assert set(x) >= KERNEL_ATTRS, x
    assert re.fullmatch(r"[0-9a-f]{64}", x["user.rvf.kernel.image_hash"])
    assert x["user.rvf.kernel.compression"] == "none"
    assert len(kernel_segments(m)) == 1
    # vectors are untouched
    assert m.status()["vectors"] == "5"
    # durable
    m.unmount()
    m2 = mount(plain)
    assert m2.cat_bytes("kernel") == img


def test_kernel_from_rvfctl(mount, plain, run_ctl, tmp_path):
    img = b"hello kernel\n" * 1500
    (tmp_path / "img").write_bytes(img)
    run_ctl("embed-kernel", plain, tmp_path / "img", "--arch", 1, "--type", 2, "--flags", 5,
            "--api-port", 8080, "--cmdline", "console=ttyS0 quiet", "--compress")
    m = mount(plain)
    assert m.cat_bytes("kernel") == img, "kernel content is not the (decompressed) image"
    assert os.stat(m / "kernel").st_size == len(img)
    x = m.xattrs("kernel")
    assert x["user.rvf.kernel.arch"] == "1"
    assert x["user.rvf.kernel.type"] == "2"
    assert x["user.rvf.kernel.flags"] == "5"
    assert x["user.rvf.kernel.api_port"] == "8080"
    assert x["user.rvf.kernel.cmdline"] == "console=ttyS0 quiet"
    assert x["user.rvf.kernel.compression"] == "zstd"


def test_kernel_setfattr_reembeds(mount, plain, tmp_path):
    m = mount(plain)
    img = blob(3000, 2)
    (tmp_path / "img").write_bytes(img)
    m.sh('cp img "$M/kernel"')
    h0 = m.getfattr("kernel", "user.rvf.kernel.image_hash")
    size0 = os.path.getsize(plain)
    m.sh('setfattr -n user.rvf.kernel.arch -v 2 "$M/kernel"')
    m.sh('setfattr -n user.rvf.kernel.api_port -v 9090 "$M/kernel"')
    m.sh('setfattr -n user.rvf.kernel.cmdline -v "root=/dev/vda console=hvc0" "$M/kernel"')
    x = m.xattrs("kernel")
    assert x["user.rvf.kernel.arch"] == "2"
    assert x["user.rvf.kernel.api_port"] == "9090"
    assert x["user.rvf.kernel.cmdline"] == "root=/dev/vda console=hvc0"
    assert x["user.rvf.kernel.image_hash"] == h0, "the image hash changed"
    assert m.cat_bytes("kernel") == img, "the image changed"
    assert os.path.getsize(plain) > size0, "nothing was written"
    assert len(kernel_segments(m)) == 1, "the old kernel segment is still listed"
    # bad values are refused and change nothing
    assert m.sh('setfattr -n user.rvf.kernel.api_port -v 70000 "$M/kernel"',
                check=False).returncode != 0
    assert m.sh('setfattr -n user.rvf.kernel.arch -v x "$M/kernel"', check=False).returncode != 0
    assert m.sh('setfattr -n user.rvf.kernel.nosuch -v 1 "$M/kernel"', check=False).returncode != 0
    assert m.xattrs("kernel") == x
    # persisted
    m.unmount()
    m2 = mount(plain)
    assert m2.xattrs("kernel") == x and m2.cat_bytes("kernel") == img


def test_kernel_replace_keeps_fields(mount, plain, run_ctl, tmp_path):
    (tmp_path / "a").write_bytes(blob(2000, 3))
    run_ctl("embed-kernel", plain, tmp_path / "a", "--arch", 3, "--api-port", 1234,
            "--cmdline", "x=1")
    m = mount(plain)
    h0 = m.getfattr("kernel", "user.rvf.kernel.image_hash")
    new = blob(4096, 4)
    (tmp_path / "b").write_bytes(new)
    m.sh('cp b "$M/kernel"')
    assert m.cat_bytes("kernel") == new
    x = m.xattrs("kernel")
    assert (x["user.rvf.kernel.arch"], x["user.rvf.kernel.api_port"],
            x["user.rvf.kernel.cmdline"]) == ("3", "1234", "x=1")
    assert x["user.rvf.kernel.image_hash"] != h0


def test_rm_kernel(mount, plain, tmp_path):
    m = mount(plain)
    (tmp_path / "img").write_bytes(blob(1000, 5))
    m.sh('cp img "$M/kernel"')
    m.sh('rm "$M/kernel"')
    assert "kernel" not in m.ls()
    with pytest.raises(FileNotFoundError):
        open(m / "kernel", "rb")
    assert kernel_segments(m) == []
    assert m.sh('rm "$M/kernel"', check=False).returncode != 0
    m.unmount()
    m2 = mount(plain)
    assert "kernel" not in m2.ls()


def test_ebpf_embed_xattrs_remove(mount, plain, tmp_path):
    m = mount(plain)
    prog = blob(8 * 25, 6)
    (tmp_path / "prog").write_bytes(prog)
    m.sh('cp prog "$M/ebpf"')
    assert "ebpf" in m.ls()
    assert m.cat_bytes("ebpf") == prog
    assert os.stat(m / "ebpf").st_size == len(prog)
    x = m.xattrs("ebpf")
    assert set(x) >= EBPF_ATTRS, x
    assert x["user.rvf.ebpf.insn_count"] == "25"
    assert re.fullmatch(r"[0-9a-f]{64}", x["user.rvf.ebpf.program_hash"])
    assert m.getfattr_bytes("ebpf", "user.rvf.ebpf.btf") == b""
    h0 = x["user.rvf.ebpf.program_hash"]
    # settable fields re-embed, bytecode unchanged
    m.sh('setfattr -n user.rvf.ebpf.program_type -v 6 "$M/ebpf"')
    m.sh('setfattr -n user.rvf.ebpf.attach_type -v 3 "$M/ebpf"')
    m.sh('setfattr -n user.rvf.ebpf.max_dimension -v 4 "$M/ebpf"')
    btf = blob(48, 7)
    m.sh(f'setfattr -n user.rvf.ebpf.btf -v 0x{btf.hex()} "$M/ebpf"')
    x = m.xattrs("ebpf")
    assert (x["user.rvf.ebpf.program_type"], x["user.rvf.ebpf.attach_type"],
            x["user.rvf.ebpf.max_dimension"]) == ("6", "3", "4")
    assert x["user.rvf.ebpf.program_hash"] == h0
    assert m.getfattr_bytes("ebpf", "user.rvf.ebpf.btf") == btf
    assert m.cat_bytes("ebpf") == prog
    assert len(listed_segments(m, "ebpf")) == 1
    m.unmount()
    m = mount(plain)
    assert m.cat_bytes("ebpf") == prog
    assert m.getfattr_bytes("ebpf", "user.rvf.ebpf.btf") == btf
    m.sh('rm "$M/ebpf"')
    assert "ebpf" not in m.ls()
    with pytest.raises(FileNotFoundError):
        os.stat(m / "ebpf")


def test_ebpf_from_rvfctl(mount, plain, run_ctl, tmp_path):
    prog, btf = blob(8 * 12, 8), blob(33, 9)
    (tmp_path / "p").write_bytes(prog)
    (tmp_path / "b").write_bytes(btf)
    run_ctl("embed-ebpf", plain, tmp_path / "p", "--btf", tmp_path / "b", "--prog-type", 2,
            "--attach-type", 5, "--max-dim", 4)
    m = mount(plain)
    assert m.cat_bytes("ebpf") == prog
    x = m.xattrs("ebpf")
    assert (x["user.rvf.ebpf.program_type"], x["user.rvf.ebpf.attach_type"],
            x["user.rvf.ebpf.max_dimension"], x["user.rvf.ebpf.insn_count"]) == ("2", "5", "4", "12")
    assert m.getfattr_bytes("ebpf", "user.rvf.ebpf.btf") == btf


def test_kernel_and_ebpf_together(mount, plain, tmp_path):
    m = mount(plain)
    img, prog = blob(700, 10), blob(64, 11)
    (tmp_path / "img").write_bytes(img)
    (tmp_path / "prog").write_bytes(prog)
    m.sh('cp img "$M/kernel" && cp prog "$M/ebpf"')
    assert m.cat_bytes("kernel") == img and m.cat_bytes("ebpf") == prog
    m.sh('rm "$M/kernel"')
    assert "kernel" not in m.ls() and m.cat_bytes("ebpf") == prog
