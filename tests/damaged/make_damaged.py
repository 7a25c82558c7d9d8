#!/usr/bin/env python3
"""make_damaged.py - a corpus of damaged RVF stores.

    python3 tests/damaged/make_damaged.py OUTDIR [--rvfctl PATH] [--inside N]

Makes valid stores with rvfctl (OUTDIR/bases/: plain, with deletes, with a
kernel and an eBPF program, with metadata, a branch parent + child, a
derived child, a compacted store), then damaged copies of them in
OUTDIR/cases/ and a list of them in OUTDIR/cases.json:

  trunc      truncation at every segment boundary and at N points inside
             every segment (header and payload)
  flip       one flipped byte in the header (magic, type, length, hash) and
             in the payload of the first and last segment of every type
  length     lying payload lengths (+1, -1, past the end, 2^63), with and
             without a recomputed content hash
  manifest   the newest manifest pointing outside the file (entry offset
             or length past the end), absurd counts (directory length
             2^32-1, deletion count 2^32-1, total vectors 2^64-1), dimension
             0 and 65535, all with a valid content hash
  vec        a VEC row count of 2^32-1 / one more than fits (hash fixed),
             a VEC dimension of 0 / 65535
  payload    lying internals with valid hashes: kernel image size, eBPF
             program size, META field counts, COW_MAP path length,
             MEMBERSHIP bit count
  branch     the parent missing, changed, replaced by another store, the
             child's parent path pointing to itself, a cycle through a
             grandchild (child -> grandchild -> child)

Each case record: {"name", "file", "base", "kind", "detail"}.  The files
of branch children sit in directories with the parent they name (or
without it).  Deterministic: the same rvfctl gives the same cases (but for
the random file ids of the bases).
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

# the file layout: tests/pytest/rvfformat.py, shared with the tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pytest"))
from rvfformat import HDR, TYPES, content_hash, rehash, walk  # noqa: E402,F401

DIM = 8


def segments(buf):
    """[(offset, type, payload_length)] of the segments packed from 0."""
    return [(sg.offset, sg.type, sg.plen) for sg in walk(buf)]


def newest_manifest(buf):
    """Offset of the newest manifest segment (the last one in file order)."""
    ms = [sg for sg in segments(buf) if sg[1] == 0x05]
    return ms[-1] if ms else None


class Maker:
    def __init__(self, out, rvfctl):
        self.out = Path(out)
        self.rvfctl = str(rvfctl)
        self.bases = self.out / "bases"
        self.cases_dir = self.out / "cases"
        self.cases = []

    def ctl(self, *args, cwd=None):
        cp = subprocess.run([self.rvfctl] + [str(a) for a in args], capture_output=True,
                            cwd=cwd, text=True, timeout=120,
                            env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
        if cp.returncode != 0:
            sys.exit(f"make_damaged: rvfctl {' '.join(map(str, args))} failed: {cp.stderr}")
        return cp

    def csv(self, name, ids, tag):
        p = self.bases / name
        p.write_text("".join(f"{i}," + ",".join(str((i * 3 + j + tag) % 13 - 6)
                                                for j in range(DIM)) + "\n" for i in ids))
        return p

    # ------------------------------------------------------------ bases

    def make_bases(self):
        b = self.bases
        if b.exists():
            shutil.rmtree(b)
        b.mkdir(parents=True)
        c = self.ctl
        c("create", b / "plain.rvf", "--dim", DIM)
        for k in range(3):
            c("ingest", b / "plain.rvf", self.csv(f"p{k}.csv", range(k * 20, k * 20 + 20), k))
        shutil.copy(b / "plain.rvf", b / "deletes.rvf")
        c("delete", b / "deletes.rvf", "--ids", "3,4,5,41")
        c("ingest", b / "deletes.rvf", self.csv("d.csv", range(100, 110), 7))
        shutil.copy(b / "plain.rvf", b / "kernel.rvf")
        (b / "k.img").write_bytes(bytes((i * 7) & 0xFF for i in range(5000)))
        (b / "prog.o").write_bytes(bytes(range(80)))
        c("embed-kernel", b / "kernel.rvf", b / "k.img", "--cmdline", "console=ttyS0")
        c("embed-ebpf", b / "kernel.rvf", b / "prog.o")
        c("create", b / "meta.rvf", "--dim", DIM)
        (b / "m.jsonl").write_text("".join(
            json.dumps({"id": i, "vector": [float((i + j) % 5) for j in range(DIM)],
                        "metadata": {"color": ["red", "blue"][i % 2], "n": i}}) + "\n"
            for i in range(30)))
        c("ingest", b / "meta.rvf", b / "m.jsonl")
        c("delete", b / "meta.rvf", "--ids", "2,3")
        # Branch: names of equal length, so a path can be patched in place.
        c("create", b / "pa.rvf", "--dim", DIM)
        c("ingest", b / "pa.rvf", self.csv("pa.csv", range(0, 40), 3))
        c("branch", b / "pa.rvf", b / "ch.rvf")
        c("ingest", b / "ch.rvf", self.csv("ch.csv", range(35, 45), 4))
        c("delete", b / "ch.rvf", "--ids", "1,2,36")
        c("branch", b / "ch.rvf", b / "gc.rvf")
        c("derive", b / "plain.rvf", b / "derived.rvf")
        c("ingest", b / "derived.rvf", self.csv("dv.csv", range(500, 505), 5))
        shutil.copy(b / "deletes.rvf", b / "compacted.rvf")
        c("compact", b / "compacted.rvf")
        c("ingest", b / "compacted.rvf", self.csv("cp.csv", range(200, 204), 6))
        return ["plain", "deletes", "kernel", "meta", "pa", "ch", "derived", "compacted"]

    # ------------------------------------------------------------ cases

    def emit(self, base, kind, detail, data, subdir=None, name=None):
        d = self.cases_dir / subdir if subdir else self.cases_dir
        d.mkdir(parents=True, exist_ok=True)
        if name is None:
            name = f"{base}__{kind}__{detail}.rvf"
        p = d / name
        p.write_bytes(bytes(data))
        self.cases.append({"name": f"{subdir + '/' if subdir else ''}{name}", "file": str(p),
                           "base": base, "kind": kind, "detail": detail})

    def damage(self, base, inside):
        src = self.bases / f"{base}.rvf"
        buf = bytearray(src.read_bytes())
        segs = segments(buf)
        assert segs and segs[-1][0] + HDR + segs[-1][2] == len(buf), f"{base}: not packed"
        # For branch children the parent must sit beside the damaged copy.
        sub = None
        # --- truncation
        cuts = set()
        for off, t, plen in segs:
            cuts.add(off)
            # Most telling first: mid-payload, mid-header, header only.
            pts = [HDR + plen // 2, 32, HDR, 1, HDR - 1, HDR + plen - 1, 5]
            for p in pts[:inside]:
                if 0 < p < HDR + plen:
                    cuts.add(off + p)
        for cut in sorted(cuts):
            if 0 <= cut < len(buf):
                self.emit(base, "trunc", f"{cut:07d}", buf[:cut], sub)
        # --- flips: first and last segment of each type
        by_type = {}
        for s in segs:
            by_type.setdefault(s[1], []).append(s)
        for t, lst in sorted(by_type.items()):
            tn = TYPES.get(t, f"t{t:02x}")
            for which, (off, _, plen) in (("first", lst[0]), ("last", lst[-1])):
                if which == "last" and len(lst) == 1:
                    continue
                for field, at in (("magic", 0), ("type", 5), ("len", 0x10), ("len_hi", 0x17),
                                  ("hash", 0x28)):
                    b = bytearray(buf)
                    b[off + at] ^= 0x40 if field != "len_hi" else 0x01
                    self.emit(base, "flip", f"{tn}-{which}-hdr-{field}", b, sub)
                if plen:
                    for label, at in (("start", 0), ("mid", plen // 2), ("end", plen - 1)):
                        b = bytearray(buf)
                        b[off + HDR + at] ^= 0x5A
                        self.emit(base, "flip", f"{tn}-{which}-payload-{label}", b, sub)
        # --- lying lengths
        for t, lst in sorted(by_type.items()):
            tn = TYPES.get(t, f"t{t:02x}")
            off, _, plen = lst[-1]
            for label, val in (("plus1", plen + 1), ("minus1", plen - 1),
                               ("past_end", len(buf) - off), ("huge", 1 << 63),
                               ("zero", 0)):
                if val < 0:
                    continue
                for fix in (False, True):
                    b = bytearray(buf)
                    struct.pack_into("<Q", b, off + 16, val)
                    if fix and val <= len(b) - off - HDR:
                        rehash(b, off)
                    elif fix:
                        continue
                    self.emit(base, "length", f"{tn}-{label}{'-rehashed' if fix else ''}", b, sub)
        # --- the newest manifest
        moff, _, mplen = newest_manifest(buf)
        mp = moff + HDR
        n = struct.unpack_from("<I", buf, mp + 14)[0]

        def man(detail, fn):
            b = bytearray(buf)
            fn(b)
            rehash(b, moff)
            self.emit(base, "manifest", detail, b, sub)

        if n:
            e0 = mp + 22
            man("entry-offset-past-end", lambda b: struct.pack_into("<Q", b, e0 + 8, len(buf) + 4096))
            man("entry-offset-huge", lambda b: struct.pack_into("<Q", b, e0 + 8, (1 << 64) - 64))
            man("entry-offset-inside-header", lambda b: struct.pack_into("<Q", b, e0 + 8, 3))
            man("entry-length-past-end", lambda b: struct.pack_into("<Q", b, e0 + 16, len(buf) * 2))
            man("entry-length-huge", lambda b: struct.pack_into("<Q", b, e0 + 16, (1 << 64) - 1))
            man("entry-type-changed", lambda b: b.__setitem__(e0 + 24, 0x0E))
            last = mp + 22 + 25 * (n - 1)
            man("last-entry-offset-past-end", lambda b: struct.pack_into("<Q", b, last + 8, len(buf)))
            man("entry-points-at-manifest", lambda b: struct.pack_into("<Q", b, e0 + 8, moff))
        man("seg-count-huge", lambda b: struct.pack_into("<I", b, mp + 14, 0xFFFFFFFF))
        man("seg-count-plus1", lambda b: struct.pack_into("<I", b, mp + 14, n + 1))
        man("deleted-count-huge", lambda b: struct.pack_into("<I", b, mp + 22 + 25 * n, 0xFFFFFFFF))
        man("total-vectors-huge", lambda b: struct.pack_into("<Q", b, mp + 6, (1 << 64) - 1))
        man("epoch-max", lambda b: struct.pack_into("<I", b, mp, 0xFFFFFFFF))
        man("dim-0", lambda b: struct.pack_into("<H", b, mp + 4, 0))
        man("dim-65535", lambda b: struct.pack_into("<H", b, mp + 4, 65535))
        man("dim-1", lambda b: struct.pack_into("<H", b, mp + 4, 1))
        man("metric-255", lambda b: b.__setitem__(mp + 19, 255))
        man("fidi-depth-huge", lambda b: self._fidi(b, mp, mplen, n, "depth"))
        # --- VEC internals (hash fixed)
        for off, t, plen in by_type.get(0x01, [])[-1:]:
            p = off + HDR
            cnt = struct.unpack_from("<I", buf, p + 2)[0]
            for label, fn in (("count-huge", lambda b: struct.pack_into("<I", b, p + 2, 0xFFFFFFFF)),
                              ("count-plus1", lambda b: struct.pack_into("<I", b, p + 2, cnt + 1)),
                              ("count-zero", lambda b: struct.pack_into("<I", b, p + 2, 0)),
                              ("dim-0", lambda b: struct.pack_into("<H", b, p, 0)),
                              ("dim-65535", lambda b: struct.pack_into("<H", b, p, 65535)),
                              ("id-max", lambda b: struct.pack_into("<Q", b, p + 6, (1 << 64) - 1))):
                b = bytearray(buf)
                fn(b)
                rehash(b, off)
                self.emit(base, "vec", label, b, sub)
        # --- other payload internals (hash fixed)
        for off, t, plen in by_type.get(0x0E, [])[-1:]:
            p = off + HDR
            for label, at, fmt, val in (("image-size-huge", 0x10, "<Q", (1 << 63)),
                                        ("compressed-size-huge", 0x18, "<Q", (1 << 62)),
                                        ("cmdline-length-huge", 0x70, "<I", 0xFFFFFFFF),
                                        ("compression-zstd", None, None, None)):
                b = bytearray(buf)
                if at is None:
                    b[p + 0x7C if plen > 0x7C else p] ^= 0x01
                else:
                    struct.pack_into(fmt, b, p + at, val)
                rehash(b, off)
                self.emit(base, "payload", f"kernel-{label}", b, sub)
        for off, t, plen in by_type.get(0x0F, [])[-1:]:
            p = off + HDR
            for label, at, fmt, val in (("program-size-huge", 0x10, "<Q", (1 << 63)),
                                        ("btf-size-huge", 0x1C, "<I", 0xFFFFFFFF),
                                        ("insn-count-huge", 0x0C, "<H", 0xFFFF)):
                b = bytearray(buf)
                struct.pack_into(fmt, b, p + at, val)
                rehash(b, off)
                self.emit(base, "payload", f"ebpf-{label}", b, sub)
        for off, t, plen in by_type.get(0x07, [])[-1:]:
            p = off + HDR
            for label, at, fmt, val in (("schema-count-huge", 28, "<I", 0xFFFFFFFF),
                                        ("record-count-huge", 36, "<I", 0xFFFFFFFF),
                                        ("version-99", 8, "<H", 99)):
                b = bytearray(buf)
                struct.pack_into(fmt, b, p + at, val)
                rehash(b, off)
                self.emit(base, "payload", f"meta-{label}", b, sub)
        for off, t, plen in by_type.get(0x20, [])[-1:]:
            p = off + HDR
            for label, at, fmt, val in (("path-length-huge", 0x49, "<I", 0xFFFFFFFF),
                                        ("path-length-zero", 0x49, "<I", 0),
                                        ("map-length-huge", 0x4D, "<I", 0xFFFFFFFF),
                                        ("bytes-per-vector-0", 0x40, "<I", 0),
                                        ("frozen-7", 0x44, "<B", 7)):
                b = bytearray(buf)
                struct.pack_into(fmt, b, p + at, val)
                rehash(b, off)
                self.emit(base, "payload", f"cow_map-{label}", b, sub)
        for off, t, plen in by_type.get(0x22, [])[-1:]:
            p = off + HDR
            for label, at, fmt, val in (("bits-huge", 8, "<Q", (1 << 64) - 1),
                                        ("members-wrong", 0x10, "<Q", 12345),
                                        ("filter-offset-huge", 0x18, "<Q", (1 << 63)),
                                        ("filter-size-huge", 0x20, "<I", 0xFFFFFFFF)):
                b = bytearray(buf)
                struct.pack_into(fmt, b, p + at, val)
                rehash(b, off)
                self.emit(base, "payload", f"membership-{label}", b, sub)

    @staticmethod
    def _fidi(b, mp, mplen, n, what):
        d = struct.unpack_from("<I", b, mp + 22 + 25 * n)[0]
        pos = mp + 22 + 25 * n + 4 + 8 * d
        if b[pos:pos + 4] == b"IDIF":
            struct.pack_into("<I", b, pos + 4 + 64, 0xFFFFFFFF)

    def patch_parent_path(self, buf, new):
        """Every COW_MAP's parent path replaced in place (same length)."""
        b = bytearray(buf)
        for off, t, plen in segments(b):
            if t == 0x20:
                p = off + HDR
                ln = struct.unpack_from("<I", b, p + 0x49)[0]
                assert ln == len(new), (ln, new)
                b[p + 81:p + 81 + ln] = new.encode()
                rehash(b, off)
        return b

    def branch_cases(self):
        bd = self.bases
        ch = (bd / "ch.rvf").read_bytes()
        pa = (bd / "pa.rvf").read_bytes()
        gc = (bd / "gc.rvf").read_bytes()
        # The parent missing.
        self.emit("ch", "branch", "parent-missing", ch, "noparent", "ch.rvf")
        # The parent changed (one more commit).
        d = self.cases_dir / "changed"
        d.mkdir(parents=True, exist_ok=True)
        (d / "pa.rvf").write_bytes(pa)
        self.ctl("ingest", d / "pa.rvf", self.csv("more.csv", range(900, 903), 9))
        self.emit("ch", "branch", "parent-changed", ch, "changed", "ch.rvf")
        # The parent truncated to its previous state (older manifest).
        d = self.cases_dir / "older"
        d.mkdir(parents=True, exist_ok=True)
        segs = segments(pa)
        ms = [s for s in segs if s[1] == 0x05]
        (d / "pa.rvf").write_bytes(pa[:ms[-2][0] + HDR + ms[-2][2]] if len(ms) > 1 else pa[:100])
        self.emit("ch", "branch", "parent-rolled-back", ch, "older", "ch.rvf")
        # Another store where the parent should be.
        d = self.cases_dir / "other"
        d.mkdir(parents=True, exist_ok=True)
        (d / "pa.rvf").write_bytes((bd / "plain.rvf").read_bytes())
        self.emit("ch", "branch", "parent-replaced", ch, "other", "ch.rvf")
        # The parent is a directory / damaged.
        d = self.cases_dir / "pdir"
        (d / "pa.rvf").mkdir(parents=True, exist_ok=True)
        self.emit("ch", "branch", "parent-is-directory", ch, "pdir", "ch.rvf")
        d = self.cases_dir / "pbad"
        d.mkdir(parents=True, exist_ok=True)
        bad = bytearray(pa)
        vec = [s for s in segs if s[1] == 0x01][0]
        bad[vec[0] + HDR + 10] ^= 0xFF
        (d / "pa.rvf").write_bytes(bad)
        self.emit("ch", "branch", "parent-damaged", ch, "pbad", "ch.rvf")
        # Cycles: the child's parent is itself; child -> grandchild -> child.
        self.emit("ch", "branch", "cycle-self", self.patch_parent_path(ch, "ch.rvf"),
                  "cycle_self", "ch.rvf")
        d = self.cases_dir / "cycle2"
        d.mkdir(parents=True, exist_ok=True)
        (d / "pa.rvf").write_bytes(pa)
        (d / "gc.rvf").write_bytes(gc)
        self.emit("ch", "branch", "cycle-through-grandchild", self.patch_parent_path(ch, "gc.rvf"),
                  "cycle2", "ch.rvf")
        self.cases.append({"name": "cycle2/gc.rvf", "file": str(d / "gc.rvf"), "base": "gc",
                           "kind": "branch", "detail": "cycle-from-grandchild"})

    def run(self, inside):
        if self.cases_dir.exists():
            shutil.rmtree(self.cases_dir)
        self.cases_dir.mkdir(parents=True)
        bases = self.make_bases()
        # The undamaged parent beside the damaged children.
        shutil.copy(self.bases / "pa.rvf", self.cases_dir / "pa.rvf")
        for b in bases:
            self.damage(b, inside)
        self.branch_cases()
        for b in bases + ["gc"]:
            self.cases.append({"name": f"bases/{b}.rvf", "file": str(self.bases / f"{b}.rvf"),
                               "base": b, "kind": "intact", "detail": ""})
        (self.out / "cases.json").write_text(json.dumps(self.cases, indent=0))
        return self.cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    repo = Path(__file__).resolve().parents[2]
    bd = Path(os.environ.get("RVF_BUILD_DIR", "build"))
    ap.add_argument("--rvfctl", default=str((bd if bd.is_absolute() else repo / bd) / "ctl" / "rvfctl"))
    ap.add_argument("--inside", type=int, default=7,
                    help="points inside each segment where to truncate (1..7)")
    a = ap.parse_args()
    cases = Maker(a.out, a.rvfctl).run(a.inside)
    kinds = {}
    for c in cases:
        kinds[c["kind"]] = kinds.get(c["kind"], 0) + 1
    print(f"{len(cases)} files in {a.out}/cases ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")


if __name__ == "__main__":
    main()
