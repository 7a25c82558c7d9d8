"""Interoperability with the reference implementation (@ruvector/rvf-node 0.2.3).

(a) the reference writes a file (`ref.js run`), rvfctl reads it;
(b) rvfctl writes a file, the reference reads it, then appends to it, and
    rvfctl reads the result.

Every file is checked by `check_store`: `rvfctl inspect --json` against
`ref.js dump` (identity, status, segment directory, kernel/eBPF bytes,
visible ids), both against a Python model of the operations (visible ids and
the exact vector bytes), the reference's selfcheck (`ref.js dump
--selfcheck`: it finds every model vector at distance 0, l2 stores), and
`rvfctl query --json` against the reference's exact answers for a few
queries and k values (one rvfctl for them all: each --vector is its own
search at its own k).

Vectors are built from f32-exact values, so text round trips (CSV, JSON) are
lossless; for l2 stores the components are multiples of 1/16 in [-2, 2],
which makes every squared distance exact in f32 whatever the summation order.
"""

import hashlib
import json
import random
import struct
from pathlib import Path

import pytest

METRIC_NAMES = {"l2": "l2", "cosine": "cosine", "ip": "inner_product",
                "inner_product": "inner_product"}
TOL_REL = 1e-5
TOL_ABS = 1e-6


# ---------------------------------------------------------------- data

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def vec_bytes(v):
    return struct.pack(f"<{len(v)}f", *v)


def vec_sha(v):
    return hashlib.sha256(vec_bytes(v)).hexdigest()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def dyadic(rng, dim):
    return [rng.randint(-32, 32) / 16 for _ in range(dim)]


def floats(rng, dim):
    return [f32(rng.uniform(-1.0, 1.0)) for _ in range(dim)]


def make_vecs(rng, n, dim, metric="l2"):
    gen = dyadic if metric == "l2" else floats
    return [gen(rng, dim) for _ in range(n)]


def vec_arg(v):
    return ",".join(repr(float(x)) for x in v)


# ---------------------------------------------------------------- model

class Model:
    """What a store must show, following the reference's semantics
    (rvf-format.md section 6): later rows overwrite, deletions are permanent
    until compaction, a branch child sees its parent's own live rows whose
    membership bit is set and that the child has no row for."""

    def __init__(self, dim, metric="l2", parent=None, branch=False):
        self.dim = dim
        self.metric = METRIC_NAMES[metric]
        self.rows = {}
        self.deleted = set()
        self.parent = parent if branch else None
        self.membership = set(parent.own_live()) if branch else None

    def own_live(self):
        return {i: v for i, v in self.rows.items() if i not in self.deleted}

    def visible(self):
        vis = self.own_live()
        if self.parent is not None:
            plive = self.parent.own_live()
            for i in self.membership:
                if i not in self.rows and i in plive:
                    vis[i] = plive[i]
        return dict(sorted(vis.items()))

    def ingest(self, ids, vecs):
        assert len(ids) == len(vecs)
        for i, v in zip(ids, vecs):
            assert len(v) == self.dim
            self.rows[i] = [f32(x) for x in v]

    def delete(self, ids):
        for i in ids:
            if i in self.rows and i not in self.deleted:
                self.deleted.add(i)
            if self.membership is not None:
                self.membership.discard(i)

    def compact(self):
        self.rows = self.own_live()
        self.deleted = set()

    def max_id(self):
        return max(self.rows) if self.rows else None


# ---------------------------------------------------------------- answers

def close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= max(TOL_ABS, TOL_REL * abs(b))


def ctl_results(out):
    return [(int(r["id"]), r["distance"]) for r in out["results"]]


def assert_same_answer(got, ref_all, k, what):
    """got: rvfctl's answer for k; ref_all: the reference's exact answer over
    every visible vector, sorted by (distance, id). rvfctl must return the
    first k, in the same order; entries whose distances are equal within the
    tolerance (but not bit-identical on both sides) may come in any order."""
    want = ref_all[:k]
    ctx = f"{what}, k={k}:\n  rvfctl:    {got[:12]}\n  reference: {want[:12]}"
    assert len(got) == len(want), f"{len(got)} results, expected {len(want)}; {ctx}"
    assert len({i for i, _ in got}) == len(got), f"duplicate ids; {ctx}"
    for pos, ((gi, gd), (wi, wd)) in enumerate(zip(got, want)):
        assert close(gd, wd), f"distance at #{pos} (id {gi}): {gd} vs {wd}; {ctx}"
    i = 0
    while i < len(want):
        j = i
        while j + 1 < len(ref_all) and close(ref_all[j + 1][1], ref_all[i][1]):
            j += 1
        group = ref_all[i:j + 1]
        end = min(j + 1, len(want))
        got_part = got[i:end]
        exact_tie = (len({d for _, d in group}) == 1
                     and len({d for _, d in got_part}) <= 1)
        if exact_tie:
            expect_ids = sorted(x for x, _ in group)[:end - i]
            assert [x for x, _ in got_part] == expect_ids, (
                f"ids at #{i}..#{end - 1} (equal distances: ascending ids); {ctx}")
        else:
            allowed = {x for x, _ in group}
            bad = [x for x, _ in got_part if x not in allowed]
            assert not bad, f"ids {bad} at #{i}..#{end - 1} not in the reference's answer; {ctx}"
        i = j + 1


def norm_segments(segs):
    return [(int(s["id"]), int(s["offset"]), int(s["payloadLength"]), s["segType"])
            for s in segs]


# ---------------------------------------------------------------- checker

class Interop:
    def __init__(self, ref, run_ctl, ctl_json, tmp_path):
        self.ref = ref
        self.run_ctl = run_ctl
        self.ctl_json = ctl_json
        self.tmp = tmp_path
        self.n = 0

    def tmpfile(self, suffix):
        self.n += 1
        return self.tmp / f"in{self.n}{suffix}"

    # ---- rvfctl writers

    def ctl_ingest(self, path, model, ids, vecs, fmt="csv", metadata=None):
        f = self.tmpfile("." + fmt)
        if fmt in ("csv", "tsv"):
            sep = "," if fmt == "csv" else "\t"
            f.write_text("".join(f"{i}{sep}" + sep.join(repr(float(x)) for x in v) + "\n"
                                 for i, v in zip(ids, vecs)))
        elif fmt == "jsonl":
            lines = []
            for n, (i, v) in enumerate(zip(ids, vecs)):
                rec = {"id": i, "vector": v}
                if metadata is not None:
                    rec["metadata"] = metadata[n]
                lines.append(json.dumps(rec))
            f.write_text("\n".join(lines) + "\n")
        elif fmt == "fvecs":
            assert ids is None
            f.write_bytes(b"".join(struct.pack("<i", len(v)) + vec_bytes(v) for v in vecs))
            base = model.max_id()
            start = 0 if base is None else base + 1
            ids = list(range(start, start + len(vecs)))
        else:
            raise ValueError(fmt)
        self.run_ctl("ingest", path, f)
        model.ingest(ids, vecs)
        return ids

    def ctl_delete(self, path, model, ids):
        self.run_ctl("delete", path, "--ids", ",".join(str(i) for i in ids))
        model.delete(ids)

    # ---- reference writers

    def ref_append(self, path, model, ids, vecs):
        """The reference opens PATH read-write, ingests, closes."""
        out = self.ref.run([
            {"op": "open", "path": str(path)},
            {"op": "ingest", "ids": ids, "vectors": vecs},
            {"op": "close"},
        ], serve=True)
        assert out["results"][1]["result"]["accepted"] == len(ids), out
        model.ingest(ids, vecs)

    # ---- the check

    def default_queries(self, model, seed):
        rng = random.Random(seed)
        vis = model.visible()
        qs = []
        if vis:
            ids = sorted(vis)
            qs.append(vis[ids[len(ids) // 2]])
        qs.append(make_vecs(rng, 1, model.dim, model.metric)[0])
        qs.append(make_vecs(rng, 1, model.dim, model.metric)[0])
        return qs

    def check(self, path, model, queries=None, ks=(1, 3, None), selfcheck=True):
        path = Path(path)
        assert not Path(str(path) + ".lock").exists(), f"{path}.lock left behind"
        if queries is None:
            queries = self.default_queries(model, path.name)
        vis = model.visible()
        # the reference holds the identical vectors (checked below): its
        # selfcheck comes from the dump's own read-only open
        self_entries = (list(vis.items()) if selfcheck and model.metric == "l2" and vis
                        else None)
        rd = self.ref.dump(path, queries=queries, selfcheck=self_entries)
        assert rd["openError"] is None, f"the reference cannot open {path.name}: {rd['openError']}"
        ins = self.ctl_json("inspect", "--json", path)
        name = path.name
        assert ins.get("openError") is None, f"rvfctl: {ins.get('openError')}"

        # identity, status, directory: rvfctl == reference
        for k in ("dimension", "metric", "fileId", "parentId", "lineageDepth", "fileSize"):
            assert ins.get(k) == rd[k], f"{name}: {k}: rvfctl {ins.get(k)!r}, reference {rd[k]!r}"
        assert rd["fileSize"] == path.stat().st_size
        for k in ("totalVectors", "totalSegments", "currentEpoch"):
            assert ins["status"][k] == rd["status"][k], (
                f"{name}: status.{k}: rvfctl {ins['status'][k]!r}, reference {rd['status'][k]!r}")
        assert norm_segments(ins["segments"]) == norm_segments(rd["segments"]), (
            f"{name}: segment directory differs:\n  rvfctl:    {norm_segments(ins['segments'])}"
            f"\n  reference: {norm_segments(rd['segments'])}")
        for blob in ("kernel", "ebpf"):
            r, c = rd[blob], ins.get(blob)
            assert r is None or "error" not in r, f"{name}: reference extract failed: {r}"
            assert (r is None) == (c is None), f"{name}: {blob}: rvfctl {c}, reference {r}"
            if r is not None:
                for k in ("headerHex", "extractedLen", "extractedSha256"):
                    assert c.get(k) == r[k], f"{name}: {blob}.{k}: rvfctl {c.get(k)!r}, reference {r[k]!r}"

        # the model
        assert rd["dimension"] == model.dim and rd["metric"] == model.metric
        ref_ids = [int(i) for i in rd["all_ids"]]
        assert ref_ids == sorted(vis), (
            f"{name}: the reference sees ids {ref_ids[:20]}..., the model {sorted(vis)[:20]}...")
        live = [(int(i), h) for i, h in ins["live"]]
        assert [i for i, _ in live] == ref_ids, (
            f"{name}: rvfctl live ids {[i for i, _ in live][:20]}, reference {ref_ids[:20]}")
        assert ins["liveCount"] == len(vis)
        wrong = [i for i, h in live if h != vec_sha(vis[i])]
        assert not wrong, f"{name}: rvfctl shows wrong vector bytes for ids {wrong[:10]}"
        digest = hashlib.sha256(b"".join(struct.pack("<Q", i) + vec_bytes(v)
                                         for i, v in vis.items())).hexdigest()
        assert ins["vectorsDigest"] == digest, f"{name}: vectorsDigest"

        # the reference holds the identical vectors
        if self_entries is not None:
            sc = rd["selfcheck"]
            assert len(sc["results"]) == len(self_entries)
            bad = [r for r in sc["results"] if not r["ok"]]
            assert not bad, f"{name}: reference self-queries failed: {bad[:5]}"

        # exact answers, every (query, k) pair in one rvfctl: each --vector is
        # searched on its own at its own --k (rvfctl(1)), so the top-k
        # selection at k=1 and k=3 is tested as with one rvfctl per pair
        pairs = [(qi, len(vis) + 3 if k is None else k)
                 for qi in range(len(queries)) for k in ks]
        args = [a for qi, kk in pairs for a in ("--vector", vec_arg(queries[qi]), "--k", kk)]
        cp = self.run_ctl("query", path, *args, "--json")
        lines = cp.stdout.splitlines()
        assert len(lines) == len(pairs), f"{name}: {len(lines)} answers for {len(pairs)} queries"
        for (qi, kk), line in zip(pairs, lines):
            ref_all = [(int(i), d) for i, d in rd["exact"][qi]]
            assert len(ref_all) == len(vis)
            got = ctl_results(json.loads(line))
            assert_same_answer(got, ref_all, kk, f"{name} query #{qi}")
        return ins, rd


@pytest.fixture
def io(ref, run_ctl, ctl_json, tmp_path):
    return Interop(ref, run_ctl, ctl_json, tmp_path)


# ================================================================ (a)
# The reference writes, rvfctl reads.

class RefScript:
    """Builds a `ref.js run` script and the models of the files it writes.
    Every op names its handle by path."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.ops = []
        self.models = {}

    def p(self, name):
        return str(self.tmp / name)

    def create(self, name, dim, metric="l2", **kw):
        op = {"op": "create", "path": self.p(name), "dimension": dim,
              "metric": METRIC_NAMES[metric]}
        op.update(kw)
        self.ops.append(op)
        self.models[name] = Model(dim, metric)
        return self.models[name]

    def open(self, name):
        self.ops.append({"op": "open", "path": self.p(name)})

    def close(self, name):
        self.ops.append({"op": "close", "path": self.p(name)})

    def ingest(self, name, ids, vecs, metadata=None):
        op = {"op": "ingest", "path": self.p(name), "ids": ids, "vectors": vecs}
        if metadata is not None:
            op["metadata"] = metadata
        self.ops.append(op)
        self.models[name].ingest(ids, vecs)

    def delete(self, name, ids):
        self.ops.append({"op": "delete", "path": self.p(name), "ids": ids})
        self.models[name].delete(ids)

    def delete_by_filter(self, name, flt, matching_ids):
        self.ops.append({"op": "deleteByFilter", "path": self.p(name), "filter": flt})
        self.models[name].delete(matching_ids)

    def compact(self, name):
        self.ops.append({"op": "compact", "path": self.p(name)})
        self.models[name].compact()

    def derive(self, name, child, dim=None, metric=None):
        op = {"op": "derive", "path": self.p(name), "child": self.p(child)}
        parent = self.models[name]
        if dim is not None:
            op["dimension"] = dim
        if metric is not None:
            op["metric"] = METRIC_NAMES[metric]
        self.ops.append(op)
        self.models[child] = Model(dim or parent.dim, metric or parent.metric)
        return self.models[child]

    def branch(self, name, child):
        self.ops.append({"op": "branch", "path": self.p(name), "child": self.p(child)})
        self.models[child] = Model(self.models[name].dim, self.models[name].metric,
                                   parent=self.models[name], branch=True)
        return self.models[child]

    def add(self, **op):
        if "path" in op:
            op["path"] = self.p(op["path"])
        self.ops.append(op)

    def run(self, ref):
        out = ref.run(self.ops, serve=True)   # a failed script fails the test
        assert not out.get("failed"), out
        return out


def ids_rand(rng, n, lo=0, hi=10**6):
    return rng.sample(range(lo, hi), n)


def test_ref_create_ingest(io, tmp_path):
    rng = random.Random(1)
    s = RefScript(tmp_path)
    s.create("a.rvf", 8)
    ids = ids_rand(rng, 20)
    s.ingest("a.rvf", ids, make_vecs(rng, 20, 8))
    s.create("empty.rvf", 16)
    s.run(io.ref)
    io.check(tmp_path / "a.rvf", s.models["a.rvf"])
    io.check(tmp_path / "empty.rvf", s.models["empty.rvf"])


def test_ref_multibatch_overwrite_sessions(io, tmp_path):
    rng = random.Random(2)
    s = RefScript(tmp_path)
    s.create("m.rvf", 5)
    s.ingest("m.rvf", list(range(10)), make_vecs(rng, 10, 5))
    s.ingest("m.rvf", list(range(5, 15)), make_vecs(rng, 10, 5))      # overwrites 5..9
    s.close("m.rvf")
    s.open("m.rvf")
    # overwrite again in a new session, with a duplicate id in one batch
    s.ingest("m.rvf", [0, 1, 20, 20, 2], make_vecs(rng, 5, 5))
    s.close("m.rvf")
    s.open("m.rvf")
    s.ingest("m.rvf", [30], make_vecs(rng, 1, 5))
    s.run(io.ref)
    io.check(tmp_path / "m.rvf", s.models["m.rvf"])


def test_ref_delete(io, tmp_path):
    rng = random.Random(3)
    s = RefScript(tmp_path)
    s.create("d.rvf", 6)
    ids = ids_rand(rng, 30)
    s.ingest("d.rvf", ids, make_vecs(rng, 30, 6))
    s.delete("d.rvf", ids[:8] + [10**7 + 1])          # plus an unknown id
    s.delete("d.rvf", [ids[0]])                       # again: no-op
    s.delete("d.rvf", [])
    s.run(io.ref)
    io.check(tmp_path / "d.rvf", s.models["d.rvf"])


def test_ref_delete_reingest(io, tmp_path):
    rng = random.Random(4)
    s = RefScript(tmp_path)
    s.create("r.rvf", 4)
    s.ingest("r.rvf", list(range(1, 11)), make_vecs(rng, 10, 4))
    s.delete("r.rvf", [2, 5, 7])
    # re-ingested deleted ids stay invisible until compaction
    s.ingest("r.rvf", [2, 5, 11], make_vecs(rng, 3, 4))
    s.close("r.rvf")
    s.open("r.rvf")
    s.ingest("r.rvf", [7, 12], make_vecs(rng, 2, 4))
    s.run(io.ref)
    m = s.models["r.rvf"]
    assert not {2, 5, 7} & set(m.visible())
    io.check(tmp_path / "r.rvf", m)


def test_ref_delete_by_filter(io, tmp_path):
    rng = random.Random(5)
    s = RefScript(tmp_path)
    s.create("f.rvf", 4)
    ids = list(range(100, 130))
    meta = [[{"fieldId": 0, "valueType": "u64", "value": str(i % 3)},
             {"fieldId": 1, "valueType": "string", "value": "x" if i % 2 else "y"}] for i in ids]
    s.ingest("f.rvf", ids, make_vecs(rng, 30, 4), metadata=meta)
    flt = {"op": "and", "children": [
        {"op": "eq", "fieldId": 0, "valueType": "u64", "value": "1"},
        {"op": "eq", "fieldId": 1, "valueType": "string", "value": "x"}]}
    s.delete_by_filter("f.rvf", flt, [i for i in ids if i % 3 == 1 and i % 2])
    s.run(io.ref)
    assert len(s.models["f.rvf"].visible()) == 25
    io.check(tmp_path / "f.rvf", s.models["f.rvf"])


def test_ref_compact(io, tmp_path):
    rng = random.Random(6)
    s = RefScript(tmp_path)
    s.create("c.rvf", 8)
    ids = list(range(40))
    s.ingest("c.rvf", ids, make_vecs(rng, 40, 8))
    s.ingest("c.rvf", [3, 4], make_vecs(rng, 2, 8))
    s.delete("c.rvf", [1, 3, 10, 11, 12])
    s.add(op="embedKernel", path="c.rvf", arch=1, type=0, flags=0,
          imageHex="7f454c46" + "00" * 60, apiPort=0)
    s.compact("c.rvf")
    # after compaction a deleted id can be reused
    s.ingest("c.rvf", [10, 50], make_vecs(rng, 2, 8))
    s.run(io.ref)
    m = s.models["c.rvf"]
    assert 10 in m.visible() and 11 not in m.visible()
    ins, rd = io.check(tmp_path / "c.rvf", m)
    assert rd["kernel"] is not None


def test_ref_derive(io, tmp_path):
    rng = random.Random(7)
    s = RefScript(tmp_path)
    s.create("p.rvf", 6)
    s.ingest("p.rvf", list(range(20)), make_vecs(rng, 20, 6))
    s.derive("p.rvf", "c.rvf")
    s.ingest("c.rvf", [5, 100, 101], make_vecs(rng, 3, 6))
    s.delete("c.rvf", [7, 101])          # 7 is the parent's: no effect in the child
    s.derive("c.rvf", "g.rvf", dim=3, metric="cosine")
    s.ingest("g.rvf", [1, 2], make_vecs(rng, 2, 3, "cosine"))
    s.run(io.ref)
    p, c, g = (io.check(tmp_path / n, s.models[n])[0] for n in ("p.rvf", "c.rvf", "g.rvf"))
    assert (p["lineageDepth"], c["lineageDepth"], g["lineageDepth"]) == (0, 1, 2)
    assert c["parentId"] == p["fileId"] and g["parentId"] == c["fileId"]


def test_ref_branch(io, tmp_path):
    rng = random.Random(8)
    s = RefScript(tmp_path)
    s.create("bp.rvf", 6)
    s.ingest("bp.rvf", list(range(30)), make_vecs(rng, 30, 6))
    s.delete("bp.rvf", [29])
    s.branch("bp.rvf", "bc.rvf")
    s.ingest("bc.rvf", [3, 100, 101], make_vecs(rng, 3, 6))   # 3 overrides the parent's
    s.delete("bc.rvf", [5, 6, 101, 3])                          # inherited, own, override
    s.close("bc.rvf")
    s.open("bc.rvf")
    s.ingest("bc.rvf", [200], make_vecs(rng, 1, 6))
    s.run(io.ref)
    m = s.models["bc.rvf"]
    vis = m.visible()
    assert 0 in vis and 5 not in vis and 3 not in vis and 100 in vis and 29 not in vis
    p = io.check(tmp_path / "bp.rvf", s.models["bp.rvf"])[0]
    c = io.check(tmp_path / "bc.rvf", m)[0]
    assert c["parentId"] == p["fileId"] and c["lineageDepth"] == 1


def test_ref_freeze(io, tmp_path):
    rng = random.Random(9)
    s = RefScript(tmp_path)
    s.create("fz.rvf", 4)
    s.ingest("fz.rvf", list(range(8)), make_vecs(rng, 8, 4))
    s.add(op="freeze", path="fz.rvf")
    s.add(op="ingest", path="fz.rvf", ids=[99], vectors=[[0, 0, 0, 0]], expectError=True)
    s.branch("fz.rvf", "fzc.rvf")
    s.ingest("fzc.rvf", [50], make_vecs(rng, 1, 4))
    s.add(op="freeze", path="fzc.rvf")
    s.run(io.ref)
    io.check(tmp_path / "fz.rvf", s.models["fz.rvf"])
    ins, rd = io.check(tmp_path / "fzc.rvf", s.models["fzc.rvf"])
    assert "cow_map" in [x["segType"] for x in rd["segments"]]


def test_ref_kernel_with_cmdline(io, tmp_path):
    rng = random.Random(10)
    image = bytes(rng.randrange(256) for _ in range(333))
    cmdline = "console=ttyS0 root=/dev/vda quiet"
    s = RefScript(tmp_path)
    s.create("k.rvf", 4)
    s.ingest("k.rvf", [1, 2, 3], make_vecs(rng, 3, 4))
    s.add(op="embedKernel", path="k.rvf", arch=1, type=2, flags=0x11,
          imageHex=image.hex(), apiPort=8080, cmdline=cmdline)
    s.run(io.ref)
    ins, rd = io.check(tmp_path / "k.rvf", s.models["k.rvf"])
    k = rd["kernel"]
    assert k["extractedSha256"] == sha(image + cmdline.encode())
    assert (k["arch"], k["kernelType"], k["flags"], k["apiPort"]) == (1, 2, 0x11, 8080)
    assert ins["kernel"]["imageLen"] == len(image)
    assert ins["kernel"]["cmdline"] == cmdline
    out = tmp_path / "kernel.out"
    io.run_ctl("extract-kernel", tmp_path / "k.rvf", out)
    assert out.read_bytes() == image


def test_ref_ebpf_with_btf(io, tmp_path):
    rng = random.Random(11)
    code = bytes(rng.randrange(256) for _ in range(8 * 7))
    btf = bytes(rng.randrange(256) for _ in range(24))
    s = RefScript(tmp_path)
    s.create("e.rvf", 4)
    s.ingest("e.rvf", [1, 2], make_vecs(rng, 2, 4))
    s.add(op="embedEbpf", path="e.rvf", progType=2, attachType=1, maxDim=4,
          bytecodeHex=code.hex(), btfHex=btf.hex())
    s.run(io.ref)
    ins, rd = io.check(tmp_path / "e.rvf", s.models["e.rvf"])
    e = rd["ebpf"]
    assert e["extractedSha256"] == sha(code + btf)
    assert (e["programType"], e["attachType"], e["maxDimension"], e["insnCount"]) == (2, 1, 4, 7)
    out, bout = tmp_path / "prog.out", tmp_path / "btf.out"
    io.run_ctl("extract-ebpf", tmp_path / "e.rvf", out, "--btf", bout)
    assert out.read_bytes() == code
    assert bout.read_bytes() == btf


@pytest.mark.parametrize("metric", ["cosine", "inner_product"])
def test_ref_metric(io, tmp_path, metric):
    rng = random.Random(12)
    s = RefScript(tmp_path)
    s.create("x.rvf", 8, metric=metric)
    vecs = make_vecs(rng, 30, 8, metric)
    vecs[3] = [0.0] * 8                              # cosine: distance 1.0 to everything
    vecs[4] = [2 * x for x in vecs[5]]               # same direction as 5
    s.ingest("x.rvf", list(range(30)), vecs)
    s.run(io.ref)
    m = s.models["x.rvf"]
    queries = [vecs[5], make_vecs(rng, 1, 8, metric)[0], [0.0] * 8]
    ins, rd = io.check(tmp_path / "x.rvf", m, queries=queries)
    assert rd["metric"] == metric


def test_ref_big_with_persisted_index(io, tmp_path):
    rng = random.Random(13)
    n, dim = 1100, 8
    s = RefScript(tmp_path)
    s.create("big.rvf", dim)
    ids = ids_rand(rng, n, 0, 10**7)
    vecs = make_vecs(rng, n, dim)
    s.ingest("big.rvf", ids, vecs)
    # an unfiltered query builds the HNSW graph; close() persists it
    s.add(op="query", path="big.rvf", vector=vecs[0], k=10)
    s.close("big.rvf")
    s.run(io.ref)
    ins, rd = io.check(tmp_path / "big.rvf", s.models["big.rvf"],
                       queries=[vecs[7], make_vecs(rng, 1, dim)[0]], ks=(1, 10, None))
    assert "index" in [x["segType"] for x in rd["segments"]]


# ================================================================ (b)
# rvfctl writes, the reference reads and appends, rvfctl reads again.

def append_and_recheck(io, path, model, seed, n=3, start=None):
    rng = random.Random(seed)
    base = (model.max_id() or 0) + 1000 if start is None else start
    ids = list(range(base, base + n))
    io.ref_append(path, model, ids, make_vecs(rng, n, model.dim, model.metric))
    ins, rd = io.check(path, model)
    assert set(ids) <= {int(i) for i, _ in ins["live"]}
    return ins, rd


def test_ctl_create_empty_and_profile(io, store):
    p = store(dim=16, profile=1)
    m = Model(16)
    ins, rd = io.check(p, m)
    assert rd["status"]["profileId"] == 1
    assert rd["lineageDepth"] == 0 and rd["parentId"] == "0" * 32
    append_and_recheck(io, p, m, 20)


def test_ctl_ingest_formats(io, store):
    rng = random.Random(21)
    p = store(dim=4)
    m = Model(4)
    io.ctl_ingest(p, m, [1, 2, 3, 4, 5], make_vecs(rng, 5, 4), fmt="csv")
    io.ctl_ingest(p, m, [3, 10, 11], make_vecs(rng, 3, 4), fmt="jsonl")   # overwrites 3
    io.ctl_ingest(p, m, [12, 1], make_vecs(rng, 2, 4), fmt="tsv")         # overwrites 1
    new = io.ctl_ingest(p, m, None, make_vecs(rng, 3, 4), fmt="fvecs")
    assert new == [13, 14, 15]
    io.check(p, m)
    append_and_recheck(io, p, m, 22)


def test_ctl_delete(io, store):
    rng = random.Random(23)
    p = store(dim=6)
    m = Model(6)
    ids = ids_rand(rng, 30)
    io.ctl_ingest(p, m, ids, make_vecs(rng, 30, 6))
    io.ctl_delete(p, m, ids[:7])
    io.check(p, m)
    # the reference re-ingests a deleted id: it must stay invisible
    io.ref_append(p, m, [ids[0], 10**7 + 9], make_vecs(rng, 2, 6))
    assert ids[0] not in m.visible()
    io.check(p, m)


def test_ctl_compact(io, store):
    rng = random.Random(24)
    p = store(dim=8)
    m = Model(8)
    io.ctl_ingest(p, m, list(range(50)), make_vecs(rng, 50, 8))
    io.ctl_ingest(p, m, [7, 8], make_vecs(rng, 2, 8))
    io.ctl_delete(p, m, [1, 2, 3, 8, 40])
    io.check(p, m)
    io.run_ctl("compact", p)
    m.compact()
    io.ctl_ingest(p, m, [1, 60], make_vecs(rng, 2, 8))     # a deleted id comes back
    assert 1 in m.visible()
    io.check(p, m)
    append_and_recheck(io, p, m, 25, start=2)              # so does one the reference adds


def test_ctl_derive(io, store):
    rng = random.Random(26)
    p = store("p.rvf", dim=6)
    mp = Model(6)
    io.ctl_ingest(p, mp, list(range(20)), make_vecs(rng, 20, 6))
    c = store("c.rvf")
    io.run_ctl("derive", p, c)
    mc = Model(6)
    io.ctl_ingest(c, mc, [5, 100], make_vecs(rng, 2, 6))
    io.ctl_delete(c, mc, [100, 7])
    pi = io.check(p, mp)[0]
    ci = io.check(c, mc)[0]
    assert ci["parentId"] == pi["fileId"] and ci["lineageDepth"] == 1
    g = store("g.rvf")
    io.run_ctl("derive", c, g, "--dim", 3, "--metric", "cosine")
    mg = Model(3, "cosine")
    gi = io.check(g, mg)[0]
    assert gi["parentId"] == ci["fileId"] and gi["lineageDepth"] == 2
    append_and_recheck(io, c, mc, 27)
    append_and_recheck(io, g, mg, 28)


def test_ctl_branch(io, store):
    rng = random.Random(29)
    p = store("bp.rvf", dim=5)
    mp = Model(5)
    io.ctl_ingest(p, mp, list(range(40)), make_vecs(rng, 40, 5))
    io.ctl_delete(p, mp, [39])
    c = store("bc.rvf")
    io.run_ctl("branch", p, c)
    mc = Model(5, parent=mp, branch=True)
    io.check(c, mc)                                      # an untouched branch
    io.ctl_ingest(c, mc, [2, 100, 101], make_vecs(rng, 3, 5))   # 2 overrides the parent's
    io.ctl_delete(c, mc, [4, 5, 101, 2])
    vis = mc.visible()
    assert 0 in vis and 4 not in vis and 2 not in vis and 100 in vis and 39 not in vis
    pi = io.check(p, mp)[0]
    ci = io.check(c, mc)[0]
    assert ci["parentId"] == pi["fileId"] and ci["lineageDepth"] == 1
    assert {"cow_map", "membership"} <= {s["segType"] for s in ci["segments"]}
    # the reference appends to the rvfctl branch; rvfctl reads the result
    append_and_recheck(io, c, mc, 30)
    # and rvfctl keeps working on it
    io.ctl_delete(c, mc, [0])
    io.check(c, mc)


def test_ctl_freeze(io, store):
    rng = random.Random(31)
    p = store("fp.rvf", dim=4)
    mp = Model(4)
    io.ctl_ingest(p, mp, list(range(10)), make_vecs(rng, 10, 4))
    # a root store cannot record a freeze: refused, nothing written
    cp = io.run_ctl("freeze", p, check=False)
    assert cp.returncode == 3 and "not a branch child" in cp.stderr
    io.check(p, mp)
    c = store("fc.rvf")
    io.run_ctl("branch", p, c)
    mc = Model(4, parent=mp, branch=True)
    io.ctl_ingest(c, mc, [50], make_vecs(rng, 1, 4))
    io.run_ctl("freeze", c)
    io.check(c, mc)
    # freeze is not durable in the reference: it can still append
    append_and_recheck(io, c, mc, 32)


def test_ctl_kernel_embed_replace_remove(io, store, tmp_path):
    rng = random.Random(33)
    p = store(dim=4)
    m = Model(4)
    io.ctl_ingest(p, m, [1, 2, 3], make_vecs(rng, 3, 4))
    img1 = bytes(rng.randrange(256) for _ in range(500))
    img2 = bytes(rng.randrange(256) for _ in range(321))
    f1, f2 = tmp_path / "k1.img", tmp_path / "k2.img"
    f1.write_bytes(img1)
    f2.write_bytes(img2)
    out = tmp_path / "k.out"

    io.run_ctl("embed-kernel", p, f1, "--arch", 1, "--type", 2, "--flags", 5,
               "--api-port", 8080, "--cmdline", "console=ttyS0 quiet")
    ins, rd = io.check(p, m)
    k = rd["kernel"]
    assert k["imageSha256"] == sha(img1) and k["cmdline"] == "console=ttyS0 quiet"
    assert k["extractedSha256"] == sha(img1 + b"console=ttyS0 quiet")
    assert (k["arch"], k["kernelType"], k["flags"], k["apiPort"]) == (1, 2, 5, 8080)
    assert ins["kernel"]["imageLen"] == len(img1)
    io.run_ctl("extract-kernel", p, out)
    assert out.read_bytes() == img1

    # a replacement: the reference reads the FIRST kernel in the directory,
    # so it must see the new one only if the old entry is gone
    io.run_ctl("embed-kernel", p, f2, "--arch", 2, "--type", 0, "--api-port", 9090)
    ins, rd = io.check(p, m)
    k = rd["kernel"]
    assert k["imageSha256"] == sha(img2) and k["extractedSha256"] == sha(img2)
    assert k["cmdlineLength"] == 0 and (k["arch"], k["apiPort"]) == (2, 9090)
    assert [s["segType"] for s in rd["segments"]].count("kernel") == 1
    out.unlink()
    io.run_ctl("extract-kernel", p, out)
    assert out.read_bytes() == img2

    io.run_ctl("remove-kernel", p)
    ins, rd = io.check(p, m)
    assert rd["kernel"] is None and ins["kernel"] is None
    append_and_recheck(io, p, m, 34)

    # compressed: whatever rvfctl stores, the reference returns the same
    # payload bytes rvfctl reports, and rvfctl extracts the original image
    io.run_ctl("embed-kernel", p, f1, "--compress")
    ins, rd = io.check(p, m)
    assert rd["kernel"] is not None
    out.unlink()
    io.run_ctl("extract-kernel", p, out)
    assert out.read_bytes() == img1


def test_ctl_ebpf_with_btf(io, store, tmp_path):
    rng = random.Random(35)
    p = store(dim=4)
    m = Model(4)
    io.ctl_ingest(p, m, [1, 2], make_vecs(rng, 2, 4))
    code = bytes(rng.randrange(256) for _ in range(8 * 9))
    btf = bytes(rng.randrange(256) for _ in range(40))
    fc, fb = tmp_path / "prog.o", tmp_path / "prog.btf"
    fc.write_bytes(code)
    fb.write_bytes(btf)
    io.run_ctl("embed-ebpf", p, fc, "--btf", fb, "--prog-type", 2, "--attach-type", 1,
               "--max-dim", 4)
    ins, rd = io.check(p, m)
    e = rd["ebpf"]
    assert e["programSha256"] == sha(code) and e["btfSha256"] == sha(btf)
    assert e["extractedSha256"] == sha(code + btf)
    assert (e["programType"], e["attachType"], e["maxDimension"], e["insnCount"]) == (2, 1, 4, 9)
    oc, ob = tmp_path / "prog.out", tmp_path / "btf.out"
    io.run_ctl("extract-ebpf", p, oc, "--btf", ob)
    assert oc.read_bytes() == code and ob.read_bytes() == btf
    append_and_recheck(io, p, m, 36)
    io.run_ctl("remove-ebpf", p)
    ins, rd = io.check(p, m)
    assert rd["ebpf"] is None and ins["ebpf"] is None


def test_ctl_metadata_then_compact(io, store):
    rng = random.Random(37)
    p = store(dim=4)
    m = Model(4)
    ids = list(range(1, 21))
    meta = [{"color": "red" if i % 2 else "blue", "n": i, "score": i / 4} for i in ids]
    io.ctl_ingest(p, m, ids, make_vecs(rng, 20, 4), fmt="jsonl", metadata=meta)
    io.ctl_delete(p, m, [2, 3])
    io.check(p, m)
    io.run_ctl("compact", p)
    m.compact()
    io.check(p, m)
    append_and_recheck(io, p, m, 38)


@pytest.mark.parametrize("metric", ["cosine", "ip"])
def test_ctl_metric(io, store, metric):
    rng = random.Random(39)
    p = store(dim=8, metric=metric)
    m = Model(8, metric)
    vecs = make_vecs(rng, 25, 8, metric)
    vecs[0] = [0.0] * 8
    io.ctl_ingest(p, m, list(range(25)), vecs)
    ins, rd = io.check(p, m, queries=[vecs[3], [0.0] * 8, make_vecs(rng, 1, 8, metric)[0]])
    assert rd["metric"] == METRIC_NAMES[metric]
    append_and_recheck(io, p, m, 40)


def test_ctl_big(io, store):
    rng = random.Random(41)
    n, dim = 1200, 8
    p = store(dim=dim)
    m = Model(dim)
    ids = ids_rand(rng, n, 0, 10**7)
    vecs = make_vecs(rng, n, dim)
    io.ctl_ingest(p, m, ids, vecs)
    io.ctl_delete(p, m, ids[:50])
    io.check(p, m, queries=[vecs[60], make_vecs(rng, 1, dim)[0]], ks=(1, 10, None))
    append_and_recheck(io, p, m, 42)
