"""Upstream's other kernel layouts and compressed bundles, through a real
mount and rvfctl, with the reference where it reads the file:

* KernelBinding kernels (upstream's embed_kernel_with_binding: header |
  binding | cmdline | image, cmdline_offset 256), as in upstream's
  examples/rvf/security_hardened.rvf (issue 11 item 14);
* ruvbot's build-rvf.js kernels (gzip'd image, shifted header fields);
* WASM modules and dashboard bundles stored gzip- or brotli-compressed.

Test files come from our own writer (upstream_writer.py). With
RVF_UPSTREAM_DIR set to a directory of upstream's .rvf files,
tests/tools/compare-upstream.py runs over it too."""

import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import upstream_writer as uw
from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import build_dir_path, os_error

IMAGE = bytes((i * 7 + i // 251) % 256 for i in range(40000)) + b"END-OF-IMAGE"
CMDLINE = b"rvf.security=paranoid rvf.lockdown=integrity console=ttyS0"


def xattr(path, name):
    return os.getxattr(str(path), name)


def sha(b):
    return hashlib.sha256(b).hexdigest()


def _binding_store(path):
    payload = uw.binding_kernel_payload(IMAGE, CMDLINE)
    uw.build_store(path, [(uw.T_KERNEL, payload)], algo="crc32-rotated", dim=4)
    return payload


def test_binding_kernel_shows_image_cmdline_and_binding(mount, tmp_path, ref, ctl_json):
    s = tmp_path / "bound.rvf"
    payload = _binding_store(s)
    binding = payload[128:256]
    m = mount(s, "ro")
    k = m / "kernel"
    # the image only: not the binding and cmdline in front, not cut short
    assert os.path.getsize(k) == len(IMAGE)
    assert m.cat_bytes("kernel") == IMAGE
    assert xattr(k, "user.rvf.kernel.cmdline") == CMDLINE
    assert xattr(k, "user.rvf.kernel.binding") == binding
    assert xattr(k, "user.rvf.kernel.layout") == b"binding"
    assert "user.rvf.kernel.binding" in os.listxattr(k)
    # rvfctl through the mount and on the file
    out = ctl_json("extract-kernel", m.path, tmp_path / "k.m", "--json")
    assert (tmp_path / "k.m").read_bytes() == IMAGE
    assert out["cmdline"] == CMDLINE.decode() and out["layout"] == "binding"
    m.unmount()
    out = ctl_json("extract-kernel", s, tmp_path / "k.f", "--json")
    assert (tmp_path / "k.f").read_bytes() == IMAGE
    assert out == {"output": str(tmp_path / "k.f"), "bytes": len(IMAGE),
                   "cmdline": CMDLINE.decode(), "layout": "binding", "compression": "none"}
    # the reference: extractKernel gives everything after the header
    # (binding | cmdline | image); ours are its parts, where the header says
    r = ref.dump(s)["kernel"]
    assert r["headerHex"] == payload[:128].hex()
    assert r["extractedSha256"] == sha(binding + CMDLINE + IMAGE)
    assert r["cmdlineLength"] == len(CMDLINE) and r["imageSize"] == len(IMAGE)


def test_binding_kernel_header_change_is_refused_not_dropped(mount, tmp_path):
    s = tmp_path / "bound.rvf"
    _binding_store(s)
    before = s.read_bytes()
    m = mount(s)
    err = os_error(lambda: os.setxattr(m / "kernel", "user.rvf.kernel.api_port", b"9000"))
    assert err == 1  # EPERM
    assert "KernelBinding" in m.errors()
    assert m.cat_bytes("kernel") == IMAGE
    m.unmount()
    assert s.read_bytes() == before


def _build_rvf_store(path, packed=None):
    payload = uw.build_rvf_kernel_payload(IMAGE, packed=packed)
    meta = json.dumps({"name": "bot", "format": "rvf-self-contained"}).encode()
    uw.build_store(path, [(uw.T_KERNEL, payload), (uw.T_META, meta)], algo="crc32-rotated")
    return payload


def test_build_rvf_kernel_is_decompressed_with_its_fields(mount, tmp_path, ref, ctl_json,
                                                          run_ctl):
    s = tmp_path / "bot.rvf"
    payload = _build_rvf_store(s)
    m = mount(s, "ro")
    k = m / "kernel"
    assert os.path.getsize(k) == len(IMAGE)
    assert m.cat_bytes("kernel") == IMAGE
    want = {"compression": b"gzip", "layout": b"build-rvf.js", "api_port": b"3000",
            "api_version": b"1", "vcpu_count": b"1", "min_memory_mb": b"64",
            "cmdline": b"console=ttyS0 ruvbot.mode=rvf quiet", "type": b"1",
            "entry_point": str(0x1000000).encode(),
            "image_hash": hashlib.sha256(IMAGE).hexdigest().encode()}
    for name, value in want.items():
        assert xattr(k, "user.rvf.kernel." + name) == value, name
    assert "user.rvf.kernel.binding" not in os.listxattr(k)
    # the raw segment stays in segments/
    raw = m.cat_bytes("segments/0001-kernel")
    assert raw[64:] == payload
    out = ctl_json("extract-kernel", m.path, tmp_path / "k.m", "--json")
    assert (tmp_path / "k.m").read_bytes() == IMAGE and out["compression"] == "gzip"
    m.unmount()
    ctl_json("extract-kernel", s, tmp_path / "k.f", "--json")
    assert (tmp_path / "k.f").read_bytes() == IMAGE
    # the reference returns the stored bytes after the header: the gzip
    # stream it holds unpacks to what we show
    r = ref.dump(s)
    assert r["openError"] is None
    assert r["kernel"]["extractedSha256"] == sha(payload[128:])
    csize = len(payload) - 128 - len(want["cmdline"])
    assert gzip.decompress(payload[128:128 + csize]) == IMAGE
    # attestation: the SHA-256 of the unpacked image
    att = ctl_json("verify-attestation", s, "--json")
    assert att["image_hash_algo"] == "sha256", att


def test_build_rvf_kernel_that_does_not_unpack_reads_eio(mount, tmp_path, run_ctl):
    packed = bytearray(gzip.compress(IMAGE, 9))
    packed[len(packed) // 2] ^= 0xFF  # the stream is damaged, its hash fits
    s = tmp_path / "bad.rvf"
    _build_rvf_store(s, packed=bytes(packed))
    m = mount(s, "ro")
    assert os_error(lambda: open(m / "kernel", "rb").read()) == 5  # EIO
    assert "does not decompress (gzip)" in m.errors()
    m.unmount()
    cp = run_ctl("extract-kernel", s, tmp_path / "k", check=False)
    assert cp.returncode == 3 and "does not decompress" in cp.stderr


# ---------------------------------------------------------------- compressed bundles

MODULE = b"\0asm\1\0\0\0" + bytes(range(200)) * 30
DASH_FILES = [("index.html", b"<html><body>" + b"hi " * 300 + b"</body></html>"),
              ("assets/app.js", b"console.log(1)\n" * 40)]


@pytest.mark.parametrize("compression,name", [(1, "gzip"), (2, "brotli")])
def test_compressed_wasm_and_dashboard_are_shown_unpacked(mount, tmp_path, ctl_json, ref,
                                                          compression, name):
    wasm = uw.compressed_wasm_payload(MODULE, compression)
    dash = uw.compressed_dashboard_payload(compression, files=DASH_FILES)
    s = tmp_path / "c.rvf"
    uw.build_store(s, [(uw.T_WASM, wasm), (uw.T_DASHBOARD, dash)], algo="crc32-rotated", dim=4)
    m = mount(s, "ro")
    assert os.path.getsize(m / "wasm") == len(MODULE)
    assert m.cat_bytes("wasm") == MODULE
    assert sorted(m.ls("dashboard")) == ["assets%2Fapp.js", "index.html"]
    for path, data in DASH_FILES:
        assert m.cat_bytes("dashboard/" + path.replace("/", "%2F")) == data
    # the stored (compressed) bytes stay reachable
    assert m.cat_bytes("segments/0001-wasm")[64:] == wasm
    assert m.cat_bytes("segments/0002-dashboard")[64:] == dash
    ctl_json("extract-wasm", m.path, tmp_path / "w.m", "--json")
    assert (tmp_path / "w.m").read_bytes() == MODULE
    ctl_json("extract-dashboard", m.path, tmp_path / "dm", "--json")
    m.unmount()
    out = ctl_json("extract-wasm", s, tmp_path / "w.f", "--json")
    assert (tmp_path / "w.f").read_bytes() == MODULE and out["files"][0]["bytes"] == len(MODULE)
    ctl_json("extract-dashboard", s, tmp_path / "df", "--json")
    for d in ("dm", "df"):
        for path, data in DASH_FILES:
            assert (tmp_path / d / path).read_bytes() == data
    r = ref.dump(s)
    assert r["openError"] is None
    assert [x["payloadLength"] for x in r["segments"]] == [len(wasm), len(dash)]


def test_compressed_wasm_that_does_not_unpack_reads_eio(mount, tmp_path, run_ctl):
    wasm = uw.compressed_wasm_payload(MODULE, 2, packed=b"\x1b\xff\xff not brotli at all")
    s = tmp_path / "c.rvf"
    uw.build_store(s, [(uw.T_WASM, wasm)], algo="crc32-rotated", dim=4)
    m = mount(s, "ro")
    assert os_error(lambda: open(m / "wasm", "rb").read()) == 5  # EIO
    assert "does not decompress (brotli)" in m.errors()
    m.unmount()
    cp = run_ctl("extract-wasm", s, tmp_path / "w", check=False)
    assert cp.returncode == 3 and "does not decompress" in cp.stderr
    assert not (tmp_path / "w").exists()


# ---------------------------------------------------------------- upstream's own files

def test_upstream_files_when_available():
    """Every .rvf of upstream's repository (never committed here), when
    RVF_UPSTREAM_DIR names a directory of them: the full comparison."""
    d = os.environ.get("RVF_UPSTREAM_DIR")
    if not d or not any(Path(d).rglob("*.rvf")):
        pytest.skip("RVF_UPSTREAM_DIR does not name a directory of upstream .rvf files")
    tool = Path(__file__).resolve().parents[1] / "tools" / "compare-upstream.py"
    build = os.path.relpath(build_dir_path(), tool.parents[2])
    cp = subprocess.run([sys.executable, str(tool), d, "--build", build],
                        capture_output=True, text=True, timeout=3000)
    assert cp.returncode == 0, cp.stdout[-4000:] + cp.stderr[-2000:]
