"""The RVF file layout in Python, the one copy the tests share: segment
headers, the content hash, the segment walk, the manifest and the backward
scan for it (docs/format.md; shared/reference/rvf-format.md).

Used by mountlib.py, reliability_lib.py, test_rvfctl.py and
tests/damaged/make_damaged.py to check and to damage files."""

import struct
import zlib
from pathlib import Path

LOCK_SIZE = 104  # the writer lock file STORE.lock
SEG_MAGIC = b"SFVR"
HDR = 64
MAX_PAYLOAD = 256 * 1024 * 1024
TYPES = {0x01: "vec", 0x02: "index", 0x04: "journal", 0x05: "manifest", 0x07: "meta",
         0x0A: "witness", 0x0E: "kernel", 0x0F: "ebpf", 0x20: "cow_map",
         0x22: "membership", 0x53: "signature"}
T_VEC, T_MANIFEST, T_META, T_WITNESS = 0x01, 0x05, 0x07, 0x0A
T_KERNEL, T_EBPF, T_COW, T_MEMBERSHIP, T_JOURNAL = 0x0E, 0x0F, 0x20, 0x22, 0x04


def content_hash(payload):
    """CRC-32/IEEE replicated with rotations 0/8/16/24 (16 bytes)."""
    c = zlib.crc32(payload) & 0xFFFFFFFF

    def rot(x, r):
        return ((x << r) | (x >> (32 - r))) & 0xFFFFFFFF if r else x
    return b"".join(struct.pack("<I", rot(c, r)) for r in (0, 8, 16, 24))


class Segment:
    __slots__ = ("offset", "type", "id", "plen", "version", "flags", "hash")

    def __init__(self, buf, off):
        (magic, self.version, self.type, self.flags, self.id,
         self.plen) = struct.unpack_from("<4sBBHQQ", buf, off)
        self.offset = off
        self.hash = bytes(buf[off + 0x28: off + 0x38])

    @property
    def name(self):
        return TYPES.get(self.type, f"type-{self.type:02x}")

    @property
    def end(self):
        return self.offset + HDR + self.plen

    def payload(self, buf):
        return bytes(buf[self.offset + HDR: self.end])

    def __repr__(self):
        return f"<{self.name} id={self.id} @{self.offset} len={self.plen}>"


def walk(buf):
    """The segments packed from offset 0 (stops at the first bad header)."""
    out, off = [], 0
    while off + HDR <= len(buf) and buf[off:off + 4] == SEG_MAGIC:
        s = Segment(buf, off)
        if s.plen > len(buf) - off - HDR:
            break
        out.append(s)
        off = s.end
    return out


class Manifest:
    def __init__(self, payload):
        p = payload
        if len(p) < 22:
            raise ValueError("short manifest")
        self.epoch, self.dim, self.total = struct.unpack_from("<IHQ", p, 0)
        n = struct.unpack_from("<I", p, 14)[0]
        if n > (len(p) - 22) // 25:
            raise ValueError("directory runs past the payload")
        self.profile, self.metric = p[18], p[19]
        self.dir = []
        for i in range(n):
            sid, off, plen, t = struct.unpack_from("<QQQB", p, 22 + 25 * i)
            self.dir.append((sid, off, plen, t))
        pos = 22 + 25 * n
        self.deleted = []
        self.fidi = None
        if len(p) - pos >= 4:
            d = struct.unpack_from("<I", p, pos)[0]
            pos += 4
            d = min(d, (len(p) - pos) // 8)
            self.deleted = list(struct.unpack_from(f"<{d}Q", p, pos))
            pos += 8 * d
            if len(p) - pos >= 72 and p[pos:pos + 4] == b"IDIF":
                f = p[pos + 4:pos + 72]
                self.fidi = {"file_id": f[:16], "parent_id": f[16:32],
                             "parent_hash": f[32:64],
                             "depth": struct.unpack_from("<I", f, 64)[0],
                             "offset_in_payload": pos}


def locate_manifest(buf):
    """(Segment, Manifest) of the newest parseable manifest, found as the
    engine and the reference do (backward scan), or (None, None)."""
    if len(buf) < HDR:
        return None, None
    i = buf.rfind(SEG_MAGIC, 0, len(buf) - HDR + 4)  # headers start <= size-64
    while i >= 0:
        if buf[i + 5] == T_MANIFEST:
            plen = struct.unpack_from("<Q", buf, i + 16)[0]
            if plen <= MAX_PAYLOAD and plen <= len(buf) - i - HDR:
                try:
                    return Segment(buf, i), Manifest(bytes(buf[i + HDR:i + HDR + plen]))
                except ValueError:
                    pass
        i = buf.rfind(SEG_MAGIC, 0, i + 3) if i > 0 else -1
    return None, None




def segments(path):
    """[(offset, type, payload_length)] of the segments packed from offset
    0 of the file at path."""
    return [(s.offset, s.type, s.plen) for s in walk(Path(path).read_bytes())]


def rehash(buf, off):
    """Rewrites the content hash of the segment at off (in a bytearray) to
    match its payload: damage that passes the hash check."""
    plen = struct.unpack_from("<Q", buf, off + 16)[0]
    buf[off + 0x28:off + 0x38] = content_hash(bytes(buf[off + HDR:off + HDR + plen]))
