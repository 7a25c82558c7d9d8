#!/usr/bin/python3
"""compare-upstream.py: mount every .rvf under a directory with rvffs and
compare what the mount shows with what the reference (@ruvector/rvf-node,
through tests/interop/ref.js) reports for the same file.

    tests/tools/compare-upstream.py DIR [--build build] [--json OUT] [-v]

DIR is typically the .rvf files of upstream's ruvnet/RuVector (never
committed here). Every file is copied to a private directory and mounted
read-only; nothing under DIR is changed. Checked per file:

  open       the reference opens it / rvffs mounts it
  header     dimension, metric, file id, parent id, lineage depth, epoch,
             file size, live vector count, directory size (ours lists the
             newest manifest too: one more)
  ids        the visible ids (ls vectors/) = the reference's exact scan
  vectors    every vector read from vectors/ID, used as a query against
             both: the exact top-10 (ids and float32 distances) equal; on
             l2 stores the reference finds the id itself at distance 0,
             which proves the reference holds the identical vector
  top-10     10 seeded random queries: exact top-10 equal on both sides
  segments   every segment the reference lists is a segments/ file at the
             same offset, id, length and type, byte-exact with the file;
             nothing else is listed but the newest manifest
  kernel     MNT/kernel, its cmdline and binding as upstream's layouts say
             (plain: header|image|cmdline; KernelBinding: header|binding|
             cmdline|image; gzip'd build-rvf.js kernels decompressed), and
             the reference's extractKernel bytes = the payload after the
             128-byte header
  ebpf       MNT/ebpf = the reference's program bytes; BTF likewise
  wasm, dashboard
             what the mount shows = an independent decode of the segment
             (the reference has no API for them)
  errors     the mount's errors file stays empty

Distances: the reference sums in another order, so they agree within
float32 rounding (relative 1e-5, as tests/pytest/test_interop.py), not bit
for bit; ids must agree in every run of equal distances but the last (a
tie cut at the 10th may keep different ids). Exit 0 when every file matches, 1 otherwise.
"""

import argparse
import gzip
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REF_JS = ROOT / "tests" / "interop" / "ref.js"
HDR = 64
K = 10
BATCH = 200  # queries per request written to a query slot

NAMES = {0x00: "invalid", 0x01: "vec", 0x02: "index", 0x03: "overlay", 0x04: "journal",
         0x05: "manifest", 0x06: "quant", 0x07: "meta", 0x08: "hot", 0x09: "sketch",
         0x0A: "witness", 0x0B: "profile", 0x0C: "crypto", 0x0D: "meta_idx",
         0x0E: "kernel", 0x0F: "ebpf", 0x10: "wasm", 0x11: "dashboard", 0x20: "cow_map",
         0x21: "refcount", 0x22: "membership", 0x23: "delta", 0x30: "transfer_prior",
         0x31: "policy_kernel", 0x32: "cost_curve", 0x33: "federated_manifest",
         0x34: "diff_privacy_proof", 0x35: "redaction_log", 0x36: "aggregate_weights",
         0x53: "signature"}


def f32(x):
    return struct.unpack("<f", struct.pack("<f", float(x)))[0]


def f32bits(x):
    return struct.pack("<f", float(x))


def sha(b):
    return hashlib.sha256(b).hexdigest()


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def ref(*args, timeout=1800):
    cp = run(["node", str(REF_JS), *map(str, args)], timeout=timeout)
    try:
        return json.loads(cp.stdout)
    except ValueError:
        return {"error": f"ref.js exit {cp.returncode}: {cp.stderr.strip()[:300]}"}


def kv(text):
    out = {}
    for ln in text.splitlines():
        if ":" in ln and not ln.startswith("#"):
            k, v = ln.split(":", 1)
            out.setdefault(k.strip(), v.strip())
    return out


def xattrs(p):
    return {n: os.getxattr(p, n) for n in os.listxattr(p)}


# ------------------------------------------------------------ upstream layouts

def expected_kernel(payload):
    """What MNT/kernel should show for a KERNEL payload, by upstream's
    layouts: (image, cmdline bytes, binding bytes or None, how)."""
    h, rest = payload[:128], payload[128:]
    image_size, comp_size = struct.unpack_from("<QQ", h, 0x18)
    compression = h[0x28]
    cmd_off, cmd_len = struct.unpack_from("<QI", h, 0x70)
    # build-rvf.js (ruvbot): cmdline_offset u32 at 0x6C = 128, cmdline_length
    # u32 at 0x70, gzip'd image, then the cmdline.
    off6c, len70 = struct.unpack_from("<II", h, 0x6C)
    if compression == 1 and rest[:2] == b"\x1f\x8b" and off6c == 128 and \
            comp_size + len70 == len(rest):
        return (gzip.decompress(rest[:comp_size]), rest[comp_size:comp_size + len70],
                None, "gzip build-rvf.js")
    if cmd_off == 256 and len(rest) >= 128 and struct.unpack_from("<H", rest, 0)[0] > 0 and \
            128 + cmd_len + image_size == len(rest):
        return (rest[128 + cmd_len:], rest[128:128 + cmd_len], rest[:128], "binding")
    stored = len(rest) - cmd_len if cmd_len <= len(rest) else len(rest)
    return rest[:stored], rest[stored:stored + cmd_len] if cmd_len <= len(rest) else b"", \
        None, "plain"


def decompress(data, comp, size):
    """gzip (magic 1f 8b), zstd (magic 28 b5 2f fd), else brotli (libbrotlidec
    through ctypes: Debian has no python3-brotli in our package lists)."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        return subprocess.run(["zstd", "-dc"], input=data, capture_output=True,
                              check=True).stdout
    import ctypes
    lib = ctypes.CDLL("libbrotlidec.so.1")
    out = ctypes.create_string_buffer(max(size, 1))
    n = ctypes.c_size_t(size)
    if lib.BrotliDecoderDecompress(ctypes.c_size_t(len(data)), data, ctypes.byref(n), out) != 1:
        raise ValueError("brotli: does not decompress")
    return out.raw[:n.value]


def expected_wasm(payload):
    """(bytes shown, name role) of one WASM payload."""
    if len(payload) < 64 or payload[:4] != b"MWVR":
        return payload, "module"
    roles = ["microkernel", "interpreter", "combined", "extension", "control_plane"]
    role = roles[payload[6]] if payload[6] < 5 else "module"
    size, csize, comp = struct.unpack_from("<IIB", payload, 0x0C)
    body = payload[64:]
    if comp and csize and csize <= len(body):
        data = body[:csize]
        return decompress(data, comp, size), role
    if size and size <= len(body):
        body = body[:size]
    return body, role


def expected_dashboard(payload):
    """{path: bytes} of a DASHBOARD payload."""
    if len(payload) < 64 or payload[:4] != b"BDVR":
        return None
    comp = payload[7]
    count, entry_len = struct.unpack_from("<IH", payload, 0x10)
    b = payload[64:]
    if comp:
        b = decompress(b, comp, struct.unpack_from("<Q", payload, 8)[0])
    if count == 0:
        return {"index.html": b}
    files, pos = {}, entry_len
    for _ in range(count):
        pl, off, size = struct.unpack_from("<HQQ", b, pos)
        pos += 18
        files[b[pos:pos + pl].decode()] = b[off:off + size]
        pos += pl
    return files


# ------------------------------------------------------------ result lists

def parse_groups(text):
    groups, cur = [], []
    for ln in text.split("\n"):
        if ln.strip() == "":
            if cur:
                groups.append(cur)
                cur = []
            continue
        i, d = ln.split()
        cur.append((int(i), f32(d)))
    if cur:
        groups.append(cur)
    return groups


TOL_REL, TOL_ABS = 1e-5, 1e-6  # as tests/pytest/test_interop.py


def close(a, b):
    return abs(a - b) <= max(TOL_ABS, TOL_REL * abs(b))


def same_topk(a, b):
    """a (rvffs), b (reference): [(id, dist)] in distance order. The
    reference sums in another order, so distances agree within float32
    rounding (TOL_*), not bit for bit. Same length, close distances at every
    rank, and the same ids in every run of close distances, except the last
    run (a tie cut by k may keep different ids)."""
    if len(a) != len(b) or not all(close(x[1], y[1]) for x, y in zip(a, b)):
        return False
    i = 0
    while i < len(b):
        j = i
        while j + 1 < len(b) and close(b[j + 1][1], b[i][1]):
            j += 1
        if j + 1 < len(b) and {x for x, _ in a[i:j + 1]} != {x for x, _ in b[i:j + 1]}:
            return False
        i = j + 1
    return True


def mount_queries(mnt, vecs, name):
    """Exact top-K for every vector in vecs through a query slot."""
    slot = mnt / "queries" / name
    slot.mkdir()
    out = []
    for s in range(0, len(vecs), BATCH):
        req = "".join(f"k={K} " + " ".join(repr(f32(x)) for x in v) + "\n"
                      for v in vecs[s:s + BATCH])
        (slot / "request").write_text(req)
        text = (slot / "result").read_text()
        if text.startswith("error"):
            raise RuntimeError(f"query slot: {text.strip()}")
        g = parse_groups(text)
        # a query with no hit prints an empty group: pad
        out += g + [[]] * (min(BATCH, len(vecs) - s) - len(g))
    slot.rmdir()
    return out


# ------------------------------------------------------------ one file

class Check:
    def __init__(self):
        self.fails = []
        self.counts = {}

    def fail(self, what, why):
        self.fails.append(f"{what}: {why}")

    def eq(self, what, ours, theirs):
        if ours != theirs:
            self.fail(what, f"rvffs {ours!r} != expected {theirs!r}")
            return False
        return True


def compare(path, rvffs, work, verbose=False):
    c = Check()
    store = work / "store.rvf"
    shutil.copyfile(path, store)
    raw = store.read_bytes()
    r = ref("dump", store)
    if r.get("error"):
        c.fail("reference", r["error"])
        return c
    if r.get("openError"):
        c.counts["ref_open"] = False
    mnt = work / "mnt"
    mnt.mkdir()
    cp = run([str(rvffs), "-o", "ro", str(store), str(mnt)], timeout=120)
    if cp.returncode != 0:
        if r.get("openError"):
            c.counts["both_refuse"] = True  # same answer: neither opens it
            return c
        c.fail("mount", cp.stderr.strip()[:300])
        mnt.rmdir()
        return c
    try:
        if r.get("openError"):
            c.fail("open", f"rvffs mounts it, the reference refuses: {r['openError']}")
            return c
        compare_mounted(c, r, raw, mnt, store, verbose)
    finally:
        u = run(["fusermount3", "-u", str(mnt)])
        if u.returncode != 0:
            time.sleep(0.5)
            run(["fusermount3", "-uz", str(mnt)])
        mnt.rmdir()
    return c


def compare_mounted(c, r, raw, mnt, store, verbose):
    st = kv((mnt / "status").read_text())
    lin = kv((mnt / "lineage").read_text())
    rs = r["status"]
    c.eq("dimension", int(st["dimension"]), r["dimension"])
    c.eq("metric", st["metric"], r["metric"])
    c.eq("file_id", st["file_id"], r["fileId"])
    c.eq("parent_id", st["parent_id"], r["parentId"])
    c.eq("lineage_depth", int(lin["lineage_depth"]), r["lineageDepth"])
    c.eq("epoch", int(st["epoch"]), rs["currentEpoch"])
    c.eq("file_size", int(st["file_size"]), rs["fileSize"])

    # ids
    ids = sorted(int(n) for n in os.listdir(mnt / "vectors"))
    c.eq("vector count", int(st["vectors"]), len(r["all_ids"]))
    if c.eq("ids", ids, sorted(int(i) for i in r["all_ids"])):
        c.counts["vectors"] = len(ids)

    # segments
    segdir = mnt / "segments"
    ours = {}
    for n in sorted(os.listdir(segdir)):
        a = xattrs(segdir / n)
        ours[int(a["user.rvf.offset"])] = (n, a)
    seen = set()
    nseg = 0
    for s in r["segments"]:
        off = s["offset"]
        what = f"segment id {s['id']} @{off}"
        if off not in ours:
            c.fail(what, "not in segments/")
            continue
        seen.add(off)
        n, a = ours[off]
        code = raw[off + 5]
        ok = c.eq(what + " id", int(a["user.rvf.id"]), s["id"])
        ok &= c.eq(what + " length", int(a["user.rvf.payload_length"]), s["payloadLength"])
        rname = s["segType"]
        if rname.startswith("unknown(0x"):
            ok &= c.eq(what + " type", code, int(rname[10:-1], 16))
        else:
            ok &= c.eq(what + " type", NAMES.get(code), rname)
        ok &= c.eq(what + " name", n.split("-", 1)[1], NAMES.get(code, f"type-{code:02x}"))
        data = (segdir / n).read_bytes()
        if data != raw[off:off + HDR + s["payloadLength"]]:
            c.fail(what, "bytes differ from the file")
            ok = False
        nseg += ok
    extra = [ours[o][0] for o in ours if o not in seen]
    if any(not n.endswith("-manifest") for n in extra) or len(extra) > 1:
        c.fail("segments", f"listed by rvffs only: {extra}")
    c.eq("segment count", int(st["segments"]), len(r["segments"]) + len(extra))
    c.counts["segments"] = nseg

    # vectors and queries
    dim = r["dimension"]
    vecs = {}
    for i in ids:
        vecs[i] = [f32(x) for x in (mnt / "vectors" / str(i)).read_text().split()]
    if ids and dim:
        rnd = random.Random(20261205)
        sample = [vecs[i] for i in ids]
        lo = min(min(v) for v in sample)
        hi = max(max(v) for v in sample)
        randq = [[f32(rnd.uniform(lo, hi)) for _ in range(dim)] for _ in range(10)]
        queries = [vecs[i] for i in ids] + randq
        qfile = store.parent / "q.json"
        qfile.write_text(json.dumps([{"vector": q, "k": K} for q in queries]))
        rq = ref("dump", store, "--queries", qfile)
        if rq.get("error"):
            c.fail("reference queries", rq["error"])
            return
        theirs = [[(int(i), f32(d)) for i, d in res] for res in rq["exact"]]
        mine = mount_queries(mnt, queries, "cmp")
        bad = [q for q in range(len(queries)) if not same_topk(mine[q], theirs[q])]
        nv = len(ids)
        if [q for q in bad if q < nv]:
            q = bad[0]
            c.fail("vectors", f"{len([q for q in bad if q < nv])} of {nv} self-queries differ, "
                   f"first id {ids[q] if q < nv else q}: rvffs {mine[q][:3]} ref {theirs[q][:3]}")
        else:
            c.counts["self_queries"] = nv
        if r["metric"] == "l2":
            notzero = [ids[q] for q in range(nv)
                       if not any(i == ids[q] and d == 0 for i, d in theirs[q])]
            if notzero:
                c.fail("vectors", f"the reference does not hold {len(notzero)} vectors bit for "
                       f"bit (no distance 0 to itself), first id {notzero[0]}")
            else:
                c.counts["bit_exact"] = nv
        rbad = [q for q in bad if q >= nv]
        if rbad:
            q = rbad[0]
            c.fail("top-10", f"{len(rbad)} of 10 random queries differ: rvffs {mine[q][:3]} "
                   f"ref {theirs[q][:3]}")
        else:
            c.counts["top10"] = 10

    # kernel
    kern = r.get("kernel")
    have = (mnt / "kernel").exists()
    if kern is None:
        c.eq("kernel present", have, False)
    else:
        kseg = [s for s in r["segments"] if s["segType"] == "kernel"]
        payload = raw[kseg[0]["offset"] + HDR: kseg[0]["offset"] + HDR + kseg[0]["payloadLength"]]
        if "error" in kern:
            c.counts["ref_kernel_error"] = kern["error"]
        else:
            c.eq("kernel header (reference)", kern["headerHex"], payload[:128].hex())
            c.eq("kernel rest (reference)", kern["extractedSha256"], sha(payload[128:]))
        image, cmdline, binding, how = expected_kernel(payload)
        c.counts["kernel_layout"] = how
        if c.eq("kernel present", have, True):
            got = (mnt / "kernel").read_bytes()
            if got != image:
                c.fail("kernel", f"{how}: MNT/kernel {len(got)} bytes sha {sha(got)[:12]} != "
                       f"image {len(image)} bytes sha {sha(image)[:12]}")
            a = xattrs(mnt / "kernel")
            c.eq("kernel cmdline", a.get("user.rvf.kernel.cmdline", b""), cmdline)
            if binding is not None:
                c.eq("kernel binding", a.get("user.rvf.kernel.binding"), binding)
            if not [f for f in c.fails if f.startswith("kernel")]:
                c.counts["kernel"] = True

    ebpf = r.get("ebpf")
    have = (mnt / "ebpf").exists()
    if ebpf is None:
        c.eq("ebpf present", have, False)
    elif "error" in ebpf:
        c.counts["ref_ebpf_error"] = ebpf["error"]
    elif c.eq("ebpf present", have, True):
        got = (mnt / "ebpf").read_bytes()
        c.eq("ebpf program", sha(got), ebpf.get("programSha256"))
        btf = os.getxattr(mnt / "ebpf", "user.rvf.ebpf.btf") if ebpf.get("btfSize") else b""
        c.eq("ebpf btf", sha(btf), ebpf.get("btfSha256", sha(b"")))
        c.counts["ebpf"] = not [f for f in c.fails if f.startswith("ebpf")]

    # wasm and dashboard (the reference has no API for them: decode here)
    segs = sorted(r["segments"], key=lambda s: s["offset"])
    wsegs = [s for s in segs if s["segType"] == "unknown(0x10)"]
    if wsegs:
        mods = [expected_wasm(raw[s["offset"] + HDR: s["offset"] + HDR + s["payloadLength"]])
                for s in wsegs]
        if len(mods) == 1:
            shown = [(mnt / "wasm").read_bytes()] if (mnt / "wasm").is_file() else None
        else:
            names = sorted(os.listdir(mnt / "wasm")) if (mnt / "wasm").is_dir() else []
            shown = sorted((mnt / "wasm" / n).read_bytes() for n in names)
            mods = sorted(mods, key=lambda m: m[0])
        if shown is None or sorted(shown) != sorted(m[0] for m in mods):
            c.fail("wasm", f"MNT/wasm is not the {len(mods)} decoded module(s)")
        else:
            c.counts["wasm"] = len(mods)
    dsegs = [s for s in segs if s["segType"] == "unknown(0x11)"]
    if dsegs:
        s = dsegs[0]  # upstream's extract_dashboard takes the first
        files = expected_dashboard(raw[s["offset"] + HDR: s["offset"] + HDR + s["payloadLength"]])
        d = mnt / "dashboard"
        shown = {n.replace("%2F", "/").replace("%25", "%"): (d / n).read_bytes()
                 for n in os.listdir(d)} if d.is_dir() else None
        if c.eq("dashboard", shown, files):
            c.counts["dashboard"] = len(files)

    errs = (mnt / "errors").read_text().strip()
    if errs:
        c.fail("errors", errs.splitlines()[-1][:200])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--build", default=os.environ.get("RVF_BUILD_DIR", "build"))
    ap.add_argument("--json", help="write the per-file results here")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    rvffs = (ROOT / a.build / "fs" / "rvffs").resolve()
    files = sorted(p for p in Path(a.dir).rglob("*.rvf") if p.is_file())
    results, tot = [], {"files": 0, "match": 0, "vectors": 0, "segments": 0,
                        "top10": 0, "self_queries": 0}
    with tempfile.TemporaryDirectory(prefix="rvf-compare-") as tmp:
        for n, p in enumerate(files):
            work = Path(tmp) / str(n)
            work.mkdir()
            rel = str(p.relative_to(a.dir))
            try:
                c = compare(p, rvffs, work, a.verbose)
            except Exception as e:  # a crash in the comparison is a mismatch too
                c = Check()
                c.fail("compare", f"{type(e).__name__}: {e}")
            shutil.rmtree(work, ignore_errors=True)
            tot["files"] += 1
            tot["match"] += not c.fails
            for k in ("vectors", "segments", "top10", "self_queries"):
                tot[k] += c.counts.get(k, 0) if not isinstance(c.counts.get(k), bool) else 0
            results.append({"file": rel, "size": p.stat().st_size, "ok": not c.fails,
                            "fails": c.fails, **c.counts})
            extra = " ".join(f"{k}={v}" for k, v in c.counts.items())
            print(f"{'MATCH   ' if not c.fails else 'MISMATCH'} {rel}  {extra}", flush=True)
            for f in c.fails:
                print(f"         - {f}", flush=True)
    print(f"\n{tot['match']} of {tot['files']} files match; {tot['vectors']} vectors "
          f"({tot['self_queries']} self-queries equal), {tot['segments']} segments "
          f"byte-exact, {tot['top10']} random top-10 queries equal")
    if a.json:
        Path(a.json).write_text(json.dumps({"totals": tot, "files": results}, indent=1))
    return 0 if tot["match"] == tot["files"] else 1


if __name__ == "__main__":
    sys.exit(main())
