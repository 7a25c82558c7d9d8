"""The commands of upstream's `rvf` CLI that rvfctl adds: filter,
rebuild-refcounts, verify-attestation.  Every store they write must open in
the reference (tests/interop/ref.js) showing what we show."""

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import int_rows, make_store
from rvfformat import locate_manifest


@pytest.fixture
def five(store, run_ctl):
    return make_store(run_ctl, store, dim=3, rows=int_rows(5, 3))


@pytest.mark.parametrize("mode,ids,want", [("--include-ids", "2,4,99", [2, 4]),
                                           ("--exclude-ids", "1,5", [2, 3, 4])])
def test_filter_to_out_is_a_branch_the_reference_sees(five, tmp_path, ctl_json, ref, mode,
                                                      ids, want):
    out = tmp_path / "out.rvf"
    r = ctl_json("filter", five, mode, ids, "-o", out, "--json")
    assert r["status"] == "filtered" and r["visible"] == len(want)
    assert ctl_json("status", out, "--json")["vectors"] == len(want)
    d = ref.dump(out)
    assert d["openError"] is None and d["all_ids"] == want
    # the parent is unchanged
    assert ref.dump(five)["all_ids"] == [1, 2, 3, 4, 5]


def test_filter_in_place_on_a_branch_and_refused_on_a_plain_store(five, tmp_path, run_ctl,
                                                                  ctl_json, ref):
    before = five.read_bytes()
    cp = run_ctl("filter", five, "--exclude-ids", "1", check=False)
    assert cp.returncode == 3 and "not a branch child" in cp.stderr
    assert five.read_bytes() == before
    child = tmp_path / "child.rvf"
    run_ctl("branch", five, child)
    ctl_json("filter", child, "--include-ids", "1,2,3", "--json")
    ctl_json("filter", child, "--exclude-ids", "2", "--json")
    assert ref.dump(child)["all_ids"] == [1, 3]


def test_filter_through_a_mount(five, tmp_path, run_ctl, ctl_json, mount, ref):
    child = tmp_path / "child.rvf"
    run_ctl("branch", five, child)
    m = mount(child)
    r = ctl_json("filter", m.path, "--exclude-ids", "3,4", "--json")
    assert r["visible"] == 3
    assert sorted(int(x) for x in m.ls("vectors")) == [1, 2, 5]
    m.unmount()
    # the daemon made it durable (a deferred commit once dropped it)
    assert ref.dump(child)["all_ids"] == [1, 2, 5]
    # -o from a mounted store: a new filtered branch of it
    m = mount(five)
    out = tmp_path / "o.rvf"
    ctl_json("filter", m.path, "--include-ids", "1,5", "-o", out, "--json")
    m.unmount()
    assert ref.dump(out)["all_ids"] == [1, 5]


def test_branch_delete_through_mount_is_kept(five, tmp_path, run_ctl, mount, ref):
    """A delete that hides inherited ids of a branch child through the
    daemon's deferred commits must show at once and survive unmount."""
    child = tmp_path / "child.rvf"
    run_ctl("branch", five, child)
    m = mount(child)
    m.sh('rm "$M/vectors/2"')
    assert sorted(int(x) for x in m.ls("vectors")) == [1, 3, 4, 5]
    m.unmount()
    assert ref.dump(child)["all_ids"] == [1, 3, 4, 5]


def test_filter_usage_errors(five, run_ctl):
    assert run_ctl("filter", five, check=False).returncode == 2
    assert run_ctl("filter", five, "--include-ids", "1", "--exclude-ids", "2",
                   check=False).returncode == 2
    assert run_ctl("filter", five, "--include-ids", "x", check=False).returncode == 2


# ---------------------------------------------------------------- verify-attestation

import upstream_writer as uw  # noqa: E402

IMG = bytes(range(256)) * 40


def _kernel_store(path, kernel, witnesses=()):
    segs = [(uw.T_KERNEL, kernel)] + [(uw.T_WITNESS, w) for w in witnesses]
    return uw.build_store(path, segs, algo="crc32-rotated", dim=4)


def test_attestation_binding_and_witnesses_verify(tmp_path, ctl_json, ref, mount):
    w = uw.attestation_witness_payload([b"measure kernel", b"quote: tdx", b"ok"])
    s = _kernel_store(tmp_path / "k.rvf", uw.binding_kernel_payload(IMG), [w])
    r = ctl_json("verify-attestation", s, "--json")
    assert r["status"] == "valid" and r["image_hash_valid"]
    assert r["image_hash_algo"] == "shake256-256"
    import hashlib
    assert r["computed_image_hash"] == hashlib.shake_256(IMG).hexdigest(32)
    assert r["has_kernel_binding"] and r["binding_valid"] and r["binding_version"] == 1
    assert r["policy_hash"] == hashlib.shake_256(b"policy").hexdigest(32)
    assert (r["attestation_witnesses"], r["attestation_verified"], r["attestation_entries"]) \
        == (1, 1, 3)
    assert ref.dump(s)["openError"] is None
    m = mount(s, "ro")
    assert ctl_json("verify-attestation", m.path, "--json")["status"] == "valid"


@pytest.mark.parametrize("what", ["image", "binding", "witness", "chain"])
def test_attestation_mismatch_exits_3(tmp_path, run_ctl, what):
    kernel = uw.binding_kernel_payload(IMG, reserved=b"\x01" if what == "binding" else b"")
    w = uw.attestation_witness_payload([b"a", b"bb"], tamper=1 if what == "witness" else None)
    if what == "image":
        kernel = kernel[:-1] + bytes([kernel[-1] ^ 1])
    if what == "chain":
        w = bytearray(w)
        w[4 + 16] ^= 1  # first entry's prev_hash is no longer zero
        w = bytes(w)
    s = _kernel_store(tmp_path / "k.rvf", kernel, [w])
    cp = run_ctl("verify-attestation", s, check=False)
    assert cp.returncode == 3, cp.stdout + cp.stderr
    assert "FAILED" in cp.stdout


def test_attestation_of_kernels_we_and_the_reference_embed(store, run_ctl, ctl_json, tmp_path):
    """rvf-node (and rvfctl embed-kernel) write simple_hash256 as the image
    hash; it is recognised, and a store without a kernel says so."""
    s = store(dim=2)
    assert ctl_json("verify-attestation", s, "--json")["status"] == "no_kernel"
    (tmp_path / "img").write_bytes(IMG)
    run_ctl("embed-kernel", s, tmp_path / "img", "--cmdline", "console=ttyS0")
    r = ctl_json("verify-attestation", s, "--json")
    assert r["status"] == "valid" and r["image_hash_algo"] == "simple_hash256"
    assert r["image_size"] == len(IMG)


# ---------------------------------------------------------------- rebuild-refcounts

def _refcount_segments(path):
    import struct
    data = path.read_bytes()
    out, off = [], 0
    while off + 64 <= len(data):
        typ, plen = data[off + 5], struct.unpack_from("<Q", data, off + 0x10)[0]
        if data[off:off + 4] != b"SFVR":
            break
        if typ == 0x21:
            p = data[off + 64: off + 64 + plen]
            magic, ver, width, _, n, mx, aoff = struct.unpack_from("<IHBBIIQ", p, 0)
            out.append((magic, ver, width, n, mx, aoff, p[aoff:aoff + n]))
        off += 64 + plen
    return out


def test_rebuild_refcounts_on_a_branch(store, run_ctl, ctl_json, tmp_path, ref, mount):
    parent = make_store(run_ctl, store, dim=4, rows=int_rows(3000, 4))
    child = tmp_path / "child.rvf"
    run_ctl("branch", parent, child)
    r = ctl_json("rebuild-refcounts", child, "--json")
    # rvf-node writes one parent-ref entry per 256 rows (4096 bytes / 16)
    assert r["status"] == "rebuilt" and r["cluster_count"] == 12
    assert r["max_refcount"] == 2 and r["local_clusters"] == 0
    segs = _refcount_segments(child)
    assert len(segs) == 1
    magic, ver, width, n, mx, aoff, arr = segs[0]
    assert (magic, ver, width, n, mx, aoff) == (0x52565243, 1, 1, 12, 2, 32)
    assert arr == bytes([2]) * 12
    d = ref.dump(child)
    assert d["openError"] is None and d["liveCount"] == 3000
    # again, through the mount: the new one replaces the old in the manifest
    m = mount(child)
    assert ctl_json("rebuild-refcounts", m.path, "--json")["cluster_count"] == 12
    # segments/ is the whole file: both are shown, the old one stays in it
    assert sum(1 for n in m.ls("segments") if n.endswith("-refcount")) == 2
    m.unmount()
    assert len(_refcount_segments(child)) == 2
    _, man = locate_manifest(child.read_bytes())
    assert sum(1 for e in man.dir if e[3] == 0x21) == 1  # the manifest lists the new one


def test_rebuild_refcounts_without_cow_map(five, ctl_json):
    before = five.read_bytes()
    assert ctl_json("rebuild-refcounts", five, "--json")["status"] == "no_cow_map"
    assert five.read_bytes() == before
