"""Upstream layouts the reference runtime opens but never writes:
dimension-0 stores like upstream's ruvbot.rvf (KERNEL, WASM, JSON META /
PROFILE / WITNESS, no vectors) and every content-hash algorithm of the
segment header.  Test files come from our own writer (upstream_writer.py);
the reference (tests/interop/ref.js) must see what the mount shows."""

import json
import struct

import pytest

import upstream_writer as uw
from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import os_error

NAMES = ["0001-kernel", "0002-wasm", "0003-meta", "0004-profile", "0005-witness",
         "0006-manifest"]


def xattr(path, name):
    import os
    return os.getxattr(str(path), name).decode()


@pytest.mark.parametrize("algo", ["sha256-128", "crc32-rotated", "xxh3-128", "shake256-128",
                                  "crc32c", "none"])
def test_dimension0_store_mounts_and_names_the_hash(mount, tmp_path, algo, ref):
    s = uw.ruvbot_like(tmp_path / "bot.rvf", algo=algo)
    m = mount(s, "ro")
    st = m.status()
    assert st["dimension"] == "0" and st["vectors"] == "0" and st["segments"] == "6"
    assert sorted(m.ls("segments")) == NAMES
    want = "none" if algo == "none" else algo
    for n in NAMES:
        assert xattr(m / "segments" / n, "user.rvf.content_hash_algo") == want, n
        assert xattr(m / "segments" / n, "user.rvf.hash_ok") == "true", n
    fmt = {n: xattr(m / "segments" / n, "user.rvf.payload_format") for n in NAMES}
    assert fmt == {"0001-kernel": "binary", "0002-wasm": "binary", "0003-meta": "json",
                   "0004-profile": "json", "0005-witness": "json",
                   "0006-manifest": "binary"}
    assert m.ls("vectors") == []
    # the JSON witness is shown whole, on one line
    lines = [ln for ln in m.cat("witness").splitlines() if not ln.startswith("#")]
    assert len(lines) == 1 and lines[0].startswith("document ")
    doc = json.loads(lines[0].split(" json ", 1)[1].rsplit(" ", 1)[0])
    assert doc["witness_type"] == "build_provenance"
    # the reference opens the same file and lists the same segments
    r = ref.dump(s)
    assert r["openError"] is None and r["dimension"] == 0
    assert r["status"]["totalVectors"] == 0 and r["liveCount"] == 0
    assert [x["offset"] for x in r["segments"]] == [
        int(xattr(m / "segments" / n, "user.rvf.offset")) for n in NAMES[:-1]]


def test_keyed_hash_is_named_not_verified(mount, tmp_path):
    s = uw.ruvbot_like(tmp_path / "bot.rvf", algo="hmac-shake256")
    m = mount(s, "ro")
    for n in NAMES:
        assert xattr(m / "segments" / n, "user.rvf.content_hash_algo") == \
            "hmac-shake256 (keyed, not verified)"


def test_damaged_payload_is_a_mismatch(mount, tmp_path):
    s = uw.ruvbot_like(tmp_path / "bot.rvf", algo="xxh3-128")
    data = bytearray(s.read_bytes())
    # flip a byte inside the PROFILE document (segment 4)
    off = data.find(b'"ai-assistant"')
    data[off + 2] ^= 0x20
    s.write_bytes(bytes(data))
    m = mount(s, "ro")
    p = m / "segments" / "0004-profile"
    assert xattr(p, "user.rvf.hash_ok") == "false"
    assert xattr(p, "user.rvf.content_hash_algo") == "mismatch"
    assert xattr(m / "segments" / "0003-meta", "user.rvf.hash_ok") == "true"


def test_vectors_and_queries_refused_clearly(mount, tmp_path):
    s = uw.ruvbot_like(tmp_path / "bot.rvf")
    m = mount(s)
    assert m.sh('echo "1 2" > "$M/query"', check=False).returncode != 0
    assert "dimension 0" in m.cat("query") or "dimension 0" in m.errors()
    assert m.sh('echo 5 > "$M/vectors/1"', check=False).returncode != 0
    m.sh('printf "1,2\\n" > "$M/ingest/a.csv"', check=False)
    errs = m.errors()
    assert "the store has dimension 0" in errs
    assert m.ls("vectors") == [] and m.status()["epoch"] == "1"


def test_dimension0_store_rvfctl_and_compact_keep_documents(tmp_path, run_ctl, ctl_json, ref):
    s = uw.ruvbot_like(tmp_path / "bot.rvf")
    before = s.read_bytes()
    st = ctl_json("status", s, "--json")
    assert st["dimension"] == 0 and st["vectors"] == 0
    cp = run_ctl("query", s, "--vector", "1,2", check=False)
    assert cp.returncode != 0 and "dimension" in cp.stderr
    assert s.read_bytes() == before
    run_ctl("compact", s)
    r = ref.dump(s)
    assert r["openError"] is None
    types = [x["segType"] for x in r["segments"]]
    assert types.count("meta") == 1 and "profile" in types and "witness" in types
    # the JSON documents survive compaction byte for byte
    data = s.read_bytes()
    assert b'"rvf-self-contained"' in data and b'"ai-assistant"' in data


def test_real_ruvbot_when_available(mount, tmp_path):
    """The real upstream file, when a copy sits in /tmp (never committed)."""
    import os
    src = "/tmp/ruvbot.rvf"
    if not os.path.exists(src):
        pytest.skip("no copy of upstream's ruvbot.rvf in /tmp")
    m = mount(src, "ro")
    assert m.status()["dimension"] == "0"
    assert "0002-wasm" in m.ls("segments")
    assert xattr(m / "segments" / "0001-kernel", "user.rvf.content_hash_algo") == "sha256-128"
    _ = struct  # noqa


# ---------------------------------------------------------------- wasm, dashboard

def _bundle_store(path, nwasm=2, dash=None):
    mods = [uw.wasm_payload(b"\0asm\1\0\0\0" + bytes([65 + i]) * (100 + i), role=r)
            for i, r in enumerate([0, 1, 0][:nwasm])]
    segs = [(uw.T_WASM, m) for m in mods]
    if dash is not None:
        segs.append((uw.T_DASHBOARD, dash))
    return uw.build_store(path, segs, algo="crc32-rotated", dim=4), mods


DASH_FILES = [("index.html", b"<html><body>hi</body></html>"),
              ("assets/app.js", b"console.log(1)\n"), ("100%.txt", b"x")]


def test_wasm_and_dashboard_in_the_tree(mount, tmp_path, ref):
    s, mods = _bundle_store(tmp_path / "b.rvf", nwasm=3,
                            dash=uw.dashboard_payload(files=DASH_FILES))
    m = mount(s, "ro")
    assert "wasm" in m.ls() and "dashboard" in m.ls()
    assert sorted(m.ls("wasm")) == ["interpreter", "microkernel", "microkernel-2"]
    assert m.cat_bytes("wasm/microkernel") == mods[0][64:]
    assert m.cat_bytes("wasm/interpreter") == mods[1][64:]
    assert m.cat_bytes("wasm/microkernel-2") == mods[2][64:]
    assert sorted(m.ls("dashboard")) == ["100%25.txt", "assets%2Fapp.js", "index.html"]
    assert m.cat_bytes("dashboard/assets%2Fapp.js") == b"console.log(1)\n"
    # segment names follow upstream's segment_type.rs
    assert [n.split("-", 1)[1] for n in m.ls("segments")] == [
        "wasm", "wasm", "wasm", "dashboard", "manifest"]
    # read-only, whatever the mount
    assert m.sh('echo x > "$M/wasm/interpreter"', check=False).returncode != 0
    # the reference opens the file we wrote
    r = ref.dump(s)
    assert r["openError"] is None and r["dimension"] == 4
    assert [x["segType"] for x in r["segments"]] == ["unknown(0x10)"] * 3 + ["unknown(0x11)"]


def test_one_module_is_a_file_and_html_dashboard(mount, tmp_path, run_ctl, ctl_json):
    html = b"<!doctype html><title>d</title><p>dash</p>"
    s, mods = _bundle_store(tmp_path / "b.rvf", nwasm=1, dash=uw.dashboard_payload(html=html))
    m = mount(s, "ro")
    assert m.cat_bytes("wasm") == mods[0][64:]
    assert m.ls("dashboard") == ["index.html"]
    assert m.cat_bytes("dashboard/index.html") == html
    # rvfctl through the mount and on the file give the same bytes
    out = ctl_json("extract-wasm", m.path, tmp_path / "w.m", "--json")
    assert out["files"][0]["bytes"] == len(mods[0]) - 64
    assert (tmp_path / "w.m").read_bytes() == mods[0][64:]
    m.unmount()
    ctl_json("extract-wasm", s, tmp_path / "w.f", "--json")
    assert (tmp_path / "w.f").read_bytes() == mods[0][64:]
    ctl_json("extract-dashboard", s, tmp_path / "d", "--json")
    assert (tmp_path / "d" / "index.html").read_bytes() == html


def test_extract_several_and_dashboard_tree(mount, tmp_path, ctl_json):
    s, mods = _bundle_store(tmp_path / "b.rvf", nwasm=2,
                            dash=uw.dashboard_payload(files=DASH_FILES))
    out = ctl_json("extract-wasm", s, tmp_path / "mods", "--json")
    assert sorted(f["name"] for f in out["files"]) == ["interpreter", "microkernel"]
    assert (tmp_path / "mods" / "interpreter").read_bytes() == mods[1][64:]
    ctl_json("extract-wasm", s, tmp_path / "one", "--name", "interpreter", "--json")
    assert (tmp_path / "one").read_bytes() == mods[1][64:]
    ctl_json("extract-dashboard", s, tmp_path / "d", "--json")
    for name, data in DASH_FILES:
        assert (tmp_path / "d" / name).read_bytes() == data
    # through a mount: the same tree
    m = mount(s, "ro")
    ctl_json("extract-dashboard", m.path, tmp_path / "dm", "--json")
    for name, data in DASH_FILES:
        assert (tmp_path / "dm" / name).read_bytes() == data


def test_hostile_dashboard_paths_are_not_split(tmp_path, run_ctl, ctl_json):
    """A file table naming ../x or /etc/x is not a bundle we split: the
    payload is one file, and nothing is written outside OUTDIR."""
    evil = uw.dashboard_payload(files=[("../escape", b"bad"), ("ok.html", b"ok")])
    s, _ = _bundle_store(tmp_path / "b.rvf", nwasm=1, dash=evil)
    out = ctl_json("extract-dashboard", s, tmp_path / "d", "--json")
    assert [f["name"] for f in out["files"]] == ["index.html"]
    assert not (tmp_path / "escape").exists()
    # a symlink planted in OUTDIR is not followed
    good = uw.dashboard_payload(files=[("sub/a.txt", b"A")])
    s2, _ = _bundle_store(tmp_path / "b2.rvf", nwasm=1, dash=good)
    (tmp_path / "d2").mkdir()
    (tmp_path / "target").mkdir()
    (tmp_path / "d2" / "sub").symlink_to(tmp_path / "target")
    cp = run_ctl("extract-dashboard", s2, tmp_path / "d2", check=False)
    assert cp.returncode != 0
    assert not (tmp_path / "target" / "a.txt").exists()


def test_damaged_wasm_reads_eio(mount, tmp_path):
    s, mods = _bundle_store(tmp_path / "b.rvf", nwasm=1)
    data = bytearray(s.read_bytes())
    data[64 + 64 + 10] ^= 1  # inside the module
    s.write_bytes(bytes(data))
    m = mount(s, "ro")
    assert os_error(lambda: open(m / "wasm", "rb").read()) == 5  # EIO
    assert "content hash mismatch" in m.errors()


# ---------------------------------------------------------------- VEC data types

# values exact in every type they are stored as
ROWS = {
    "f16": [(1, [0.5, -2.0, 65504.0, 2 ** -24]), (2, [1.5, 0.0, -0.25, 3.0])],
    "bf16": [(3, [1.0, -3.0, 256.0, 0.0078125]), (4, [2.0, 2.0, -2.0, 0.5])],
    "i8": [(5, [-128, 127, 0, -1]), (6, [3, 4, 5, 6])],
    "u8": [(7, [0, 255, 128, 1]), (8, [9, 8, 7, 6])],
    "f32": [(9, [0.1, 0.2, 0.3, 0.4])],
}


def _typed_store(path, raw_ids=False):
    blocks = [(t, 4, rows) for t, rows in ROWS.items()]
    flat = uw.flat_vec_payload(4, [(100, [1.0, 2.0, 3.0, 4.0])])
    return uw.build_store(path, [(uw.T_VEC, uw.vec_block_payload(blocks, raw_ids=raw_ids)),
                                 (uw.T_VEC, flat)], algo="crc32-rotated", dim=4)


def _want():
    import mountlib
    out = {i: [mountlib.f32(x) for x in v] for rows in ROWS.values() for i, v in rows}
    out[100] = [1.0, 2.0, 3.0, 4.0]
    return out


@pytest.mark.parametrize("raw_ids", [False, True])
def test_typed_vectors_show_stored_values(mount, tmp_path, raw_ids):
    import mountlib
    s = _typed_store(tmp_path / "t.rvf", raw_ids=raw_ids)
    m = mount(s, "ro")
    want = _want()
    assert sorted(int(x) for x in m.ls("vectors")) == sorted(want)
    for i, v in want.items():
        got = [mountlib.f32(float(x)) for x in m.cat(f"vectors/{i}").split()]
        assert got == v, (i, got, v)
    # queries: exact distances over the converted rows
    q = [1.0, 0.5, -1.0, 2.0]
    m.sh(f'echo "k=20 {" ".join(map(str, q))}" > "$M/query"')
    hits = mountlib.parse_results(m.cat("query"))[0]
    exp = mountlib.knn(want, q, 20)
    assert [h[0] for h in hits] == [e[0] for e in exp]
    for (hid, hd, _), (eid, ed) in zip(hits, exp):
        assert hd == pytest.approx(ed, rel=1e-6), hid


def test_typed_store_compacts_to_f32_the_reference_reads(tmp_path, run_ctl, ref):
    s = _typed_store(tmp_path / "t.rvf")
    run_ctl("compact", s)
    r = ref.dump(s)
    assert r["openError"] is None
    assert sorted(r["all_ids"]) == sorted(_want())
    # every stored vector is found by itself at distance 0: same values
    chk = ref.selfcheck(s, list(_want().items()))
    assert chk["ok"], chk


@pytest.mark.parametrize("dtype", ["i4", "binary", "pq", "custom"])
def test_unreadable_types_are_refused_by_name(tmp_path, run_ctl, dtype):
    blocks = [("f32", 4, [(1, [1.0, 2.0, 3.0, 4.0])]), (dtype, 4, [(2, [1, 1, 0, 1])])]
    s = uw.build_store(tmp_path / "t.rvf", [(uw.T_VEC, uw.vec_block_payload(blocks))],
                       algo="crc32-rotated", dim=4)
    cp = run_ctl("status", s, check=False)
    assert cp.returncode == 3, cp.stderr
    assert f"holds {dtype} vectors" in cp.stderr


def test_block_crc32c_mismatch_is_refused(tmp_path, run_ctl):
    blocks = [("f16", 4, ROWS["f16"])]
    payload = bytearray(uw.vec_block_payload(blocks))
    payload[64] ^= 0x01  # first stored component
    s = uw.build_store(tmp_path / "t.rvf", [(uw.T_VEC, bytes(payload))],
                       algo="crc32-rotated", dim=4)
    cp = run_ctl("status", s, check=False)
    assert cp.returncode == 3 and "CRC32C" in cp.stderr
