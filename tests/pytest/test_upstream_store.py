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
