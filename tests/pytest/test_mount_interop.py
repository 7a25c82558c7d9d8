"""rvffs mount and the reference implementation (@ruvector/rvf-node, via
tests/interop/ref.js): after an unmount the reference reads what the mount
showed (vector ids and data, kernel / eBPF bytes, lineage, segments), and a
store written by the reference mounts with the same content."""

import hashlib
import os

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import (f32, fmt_vec, int_rows, knn, parse_kv, parse_results, rand_rows,
                      write_csv, write_f32, write_jsonl, write_npy)

DIM = 4


def sha(b):
    return hashlib.sha256(b).hexdigest()


def seg_table(m):
    out = []
    for name in m.ls("segments"):
        x = m.xattrs(f"segments/{name}")
        out.append((int(x["user.rvf.offset"]), int(x["user.rvf.payload_length"]),
                    x["user.rvf.type"]))
    return sorted(out)


def test_vectors_after_unmount(mount, tmp_path, ref):
    p = tmp_path / "s.rvf"
    m = mount(p, "create", f"dim={DIM}")
    rows = rand_rows(20, DIM, start=1, seed=21)
    write_csv(tmp_path / "a.csv", rows[:10])
    write_jsonl(tmp_path / "b.jsonl", rows[10:])
    m.sh('cp a.csv "$M/ingest/" && cp b.jsonl "$M/ingest/"')
    write_npy(tmp_path / "c.npy", [[1, 2, 3, 4], [4, 3, 2, 1]], DIM)  # ids 21, 22
    m.sh('cp c.npy "$M/ingest/"')
    m.sh('rm "$M/vectors/3" "$M/vectors/15"')
    m.sh('echo "0.5 0.25 -8 1e-3" > "$M/vectors/7" && echo "9 9 9 9" > "$M/vectors/1000"')
    m.sh('sync "$M/vectors"')  # durable now: status shows the file the reference opens
    ids = m.vector_ids()
    data = {i: m.read_vector(i) for i in ids}
    st = m.status()
    lineage = parse_kv(m.cat("lineage"))
    segs = seg_table(m)
    newest = int(parse_kv(m.cat("manifest"))["offset"])
    qs = [[0, 0, 0, 0], [1, 2, 3, 4], [0.5, 0.25, -8, 1e-3]]
    mres = [parse_results(m.query("k=5 " + fmt_vec(q)))[0] for q in qs]
    m.unmount()

    d = ref.dump(p, queries=[{"vector": [f32(x) for x in q], "k": 5} for q in qs])
    assert d["openError"] is None
    assert d["all_ids"] == ids and d["liveCount"] == len(ids) == int(st["vectors"])
    assert d["dimension"] == DIM and d["metric"] == "l2"
    assert d["fileId"] == st["file_id"] == lineage["file_id"]
    assert d["parentId"] == st["parent_id"] and d["lineageDepth"] == int(st["lineage_depth"])
    assert d["status"]["currentEpoch"] == int(st["epoch"])
    assert d["fileSize"] == int(st["file_size"]) == os.path.getsize(p)
    # the reference's segment list is the manifest directory: the mount's
    # segments/ without the newest manifest
    refsegs = sorted((s["offset"], s["payloadLength"], s["segType"]) for s in d["segments"])
    assert refsegs == [s for s in segs if s[0] != newest]
    # the identical vectors: each is found by the reference at distance 0
    sc = ref.selfcheck(p, [(i, v) for i, v in data.items()])
    assert sc["ok"], [r for r in sc["results"] if not r["ok"]][:5]
    assert [f32(x) for x in data[7]] == [f32(x) for x in (0.5, 0.25, -8, 1e-3)]
    # the same answers (ids exact, distances to float32 rounding)
    for q, got, want in zip(qs, mres, d["exact"]):
        assert [i for i, _, _ in got] == [i for i, _ in want], q
        for (_, dm, _), (_, dr) in zip(got, want):
            assert abs(dm - dr) <= 1e-5 * max(1.0, dr)


def test_kernel_ebpf_after_unmount(mount, tmp_path, ref):
    p = tmp_path / "k.rvf"
    m = mount(p, "create", f"dim={DIM}")
    img = bytes(range(256)) * 20 + b"end"
    prog = bytes((i * 7) % 256 for i in range(8 * 30))
    btf = b"BTF\x00" + bytes(range(40))
    (tmp_path / "img").write_bytes(img)
    (tmp_path / "prog").write_bytes(prog)
    m.sh('cp img "$M/kernel" && cp prog "$M/ebpf"')
    m.sh('setfattr -n user.rvf.kernel.cmdline -v "console=ttyS0 rvf=1" "$M/kernel" && '
         'setfattr -n user.rvf.kernel.api_port -v 8080 "$M/kernel" && '
         'setfattr -n user.rvf.kernel.arch -v 1 "$M/kernel"')
    m.sh(f'setfattr -n user.rvf.ebpf.btf -v 0x{btf.hex()} "$M/ebpf" && '
         'setfattr -n user.rvf.ebpf.program_type -v 2 "$M/ebpf" && '
         'setfattr -n user.rvf.ebpf.attach_type -v 3 "$M/ebpf" && '
         'setfattr -n user.rvf.ebpf.max_dimension -v 4 "$M/ebpf"')
    kx, ex = m.xattrs("kernel"), m.xattrs("ebpf")
    assert m.cat_bytes("kernel") == img and m.cat_bytes("ebpf") == prog
    m.unmount()

    d = ref.dump(p)
    k = d["kernel"]
    assert k and "error" not in k, k
    cmd = b"console=ttyS0 rvf=1"
    assert k["extractedSha256"] == sha(img + cmd), "reference extract != image + cmdline"
    assert k["imageSha256"] == sha(img) and k["imageSize"] == len(img)
    assert k["cmdline"] == cmd.decode() == kx["user.rvf.kernel.cmdline"]
    assert k["apiPort"] == 8080 == int(kx["user.rvf.kernel.api_port"])
    assert k["arch"] == 1 == int(kx["user.rvf.kernel.arch"])
    assert kx["user.rvf.kernel.image_hash"] in k["headerHex"]
    e = d["ebpf"]
    assert e and "error" not in e, e
    assert e["programSha256"] == sha(prog) and e["btfSha256"] == sha(btf)
    assert e["extractedSha256"] == sha(prog + btf)
    assert (e["programType"], e["attachType"], e["maxDimension"], e["insnCount"]) == \
        (2, 3, 4, 30) == tuple(int(ex[f"user.rvf.ebpf.{n}"]) for n in
                               ("program_type", "attach_type", "max_dimension", "insn_count"))
    assert ex["user.rvf.ebpf.program_hash"] in e["headerHex"]

    # removal through the mount: the reference sees no kernel afterwards
    m2 = mount(p)
    m2.sh('rm "$M/kernel" "$M/ebpf"')
    m2.unmount()
    d = ref.dump(p)
    assert d["kernel"] is None and d["ebpf"] is None


def test_lineage_of_derived_store(mount, tmp_path, run_ctl, ctl_json, ref):
    parent = tmp_path / "parent.rvf"
    child = tmp_path / "child.rvf"
    run_ctl("create", parent, "--dim", DIM)
    write_csv(tmp_path / "p.csv", int_rows(5, DIM))
    run_ctl("ingest", parent, tmp_path / "p.csv")
    run_ctl("derive", parent, child)
    pst = ctl_json("status", parent, "--json")
    m = mount(child)
    lin = parse_kv(m.cat("lineage"))
    st = m.status()
    assert lin["parent_id"] == pst["fileId"] == st["parent_id"]
    assert lin["lineage_depth"] == st["lineage_depth"] == "1"
    assert lin["file_id"] == st["file_id"] != pst["fileId"]
    man = parse_kv(m.cat("manifest"))
    assert man["parent_id"] == pst["fileId"] and man["lineage_depth"] == "1"
    m.sh('echo "1 2 3 4" > "$M/vectors/42"')
    ids = m.vector_ids()
    m.unmount()
    d = ref.dump(child)
    assert d["fileId"] == lin["file_id"]
    assert d["parentId"] == lin["parent_id"]
    assert d["lineageDepth"] == 1
    assert d["all_ids"] == ids


@pytest.mark.parametrize("metric,name", [("l2", "l2"), ("cosine", "cosine"),
                                         ("ip", "inner_product")])
def test_created_metric_seen_by_reference(mount, tmp_path, ref, metric, name):
    p = tmp_path / f"{metric}.rvf"
    m = mount(p, "create", "dim=3", f"metric={metric}")
    assert m.status()["metric"] == name
    assert m.status()["dimension"] == "3"
    m.sh('echo "1 0 0" > "$M/vectors/1" && echo "0 1 0" > "$M/vectors/2"')
    m.unmount()
    d = ref.dump(p)
    assert (d["metric"], d["dimension"], d["all_ids"]) == (name, 3, [1, 2])


def test_reference_store_mounts(mount, tmp_path, ref):
    p = tmp_path / "r.rvf"
    rows = int_rows(15, DIM, start=10, seed=8)
    out = ref.run([
        {"op": "create", "path": str(p), "dimension": DIM, "metric": "l2"},
        {"op": "ingest", "ids": [i for i, _ in rows], "vectors": [v for _, v in rows]},
        {"op": "delete", "ids": [12]},
        {"op": "close"},
    ])
    assert not out.get("failed"), out
    d = ref.dump(p, queries=[{"vector": [1, 2, 3, 4], "k": 6}])
    m = mount(p)
    assert m.vector_ids() == d["all_ids"] == sorted(i for i, _ in rows if i != 12)
    for i, v in rows:
        if i != 12:
            assert m.read_vector(i) == v
    got = parse_results(m.query("k=6 1 2 3 4"))[0]
    assert [(i, dd) for i, dd, _ in got] == [tuple(x) for x in d["exact"][0]]
    vecs = {i: v for i, v in rows if i != 12}
    assert [(i, dd) for i, dd, _ in got] == knn(vecs, [1, 2, 3, 4], 6)
    assert m.status()["file_id"] == d["fileId"]
    # appending through the mount keeps it readable by the reference
    write_f32(tmp_path / "x.f32", [[5, 5, 5, 5]])
    m.sh('cp x.f32 "$M/ingest/"')
    assert max(m.vector_ids()) == 25  # after the max id 24
    m.unmount()
    d2 = ref.dump(p)
    assert d2["all_ids"] == sorted(vecs) + [25]
