"""Our own writer of the upstream RVF layouts the reference runtime never
writes (the corpus has none): stores made the way upstream's
npm/packages/ruvbot/scripts/build-rvf.js makes them (dimension 0; KERNEL,
WASM, META/PROFILE/WITNESS as JSON), with any of the content-hash
algorithms a segment header may name.  Written from the documented layout,
not copied from upstream."""

import ctypes
import gzip
import ctypes.util
import hashlib
import json
import struct
import zlib

MAGIC = 0x52564653
T_VEC, T_MANIFEST, T_META, T_WITNESS, T_PROFILE = 0x01, 0x05, 0x07, 0x0A, 0x0B
T_KERNEL, T_WASM, T_DASHBOARD, T_REFCOUNT = 0x0E, 0x10, 0x11, 0x21

# ------------------------------------------------------------ hashes

def _rotl(v, r):
    return ((v << r) | (v >> (32 - r))) & 0xFFFFFFFF


def crc_rotated(payload):
    c = zlib.crc32(payload) & 0xFFFFFFFF
    return b"".join(struct.pack("<I", _rotl(c, r) if r else c) for r in (0, 8, 16, 24))


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_C32C = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _C32C[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


class _XXH128(ctypes.Structure):
    _fields_ = [("low64", ctypes.c_uint64), ("high64", ctypes.c_uint64)]


def xxh3_128(data):
    lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
    lib.XXH3_128bits.restype = _XXH128
    lib.XXH3_128bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    h = lib.XXH3_128bits(bytes(data), len(data))
    return struct.pack("<QQ", h.low64, h.high64)


# name -> (checksum_algo byte, hash function)
ALGOS = {
    "crc32-rotated": (0, crc_rotated),
    "crc32c": (0, lambda p: struct.pack("<I", crc32c(p)) + bytes(12)),
    "xxh3-128": (1, xxh3_128),
    "shake256-128": (2, lambda p: hashlib.shake_256(p).digest(16)),
    "sha256-128": (0, lambda p: hashlib.sha256(p).digest()[:16]),
    "hmac-shake256": (3, lambda p: hashlib.shake_256(b"secret-key" + p).digest(16)),
    "none": (0, lambda p: bytes(16)),
}

# ------------------------------------------------------------ segments

def header(seg_type, seg_id, payload, algo="crc32-rotated", ts=0):
    byte, fn = ALGOS[algo]
    h = struct.pack("<IBBHQQQBBHI", MAGIC, 1, seg_type, 0, seg_id, len(payload),
                    ts, byte, 0, 0, 0)
    return h + fn(payload) + struct.pack("<II", 0, 0)


def manifest_payload(entries, dim=0, epoch=1, total=0, profile=0x42, metric=0):
    """entries: [(seg_id, offset, payload_len, type)]; no FileIdentity,
    as build-rvf.js writes it."""
    p = [struct.pack("<IHQIBB2x", epoch, dim, total, len(entries), profile, metric)]
    p += [struct.pack("<QQQB", sid, off, plen, typ) for sid, off, plen, typ in entries]
    return b"".join(p) + struct.pack("<I", 0)


def kernel_payload(image, cmdline=b"console=ttyS0", api_port=8080):
    """A 128-byte KERNEL header as rvf-node lays it out, then image and
    cmdline (see shared/reference/rvf-format.md 3.5)."""
    h = bytearray(128)
    struct.pack_into("<IHBBIIQQQBB", h, 0, 0x52564B4E, 1, 0, 1, 0, 64, 0x1000000,
                     len(image), len(image), 0, 0)
    struct.pack_into(">H", h, 0x2A, api_port)
    struct.pack_into("<I", h, 0x2C, 1)
    h[0x30:0x50] = hashlib.sha256(image).digest()
    struct.pack_into("<QI", h, 0x70, 128, len(cmdline))
    return bytes(h) + image + cmdline


def wasm_payload(module, role=0x02, target=0x01):
    """A 64-byte WASM header (magic RVWM, version 1, role, target,
    bytecode_size at 0x0C, SHA-256 of the bytecode at 0x1C) + bytecode."""
    h = bytearray(64)
    struct.pack_into("<IHBBHHI", h, 0, 0x5256574D, 1, role, target, 0, 0, len(module))
    h[0x1C:0x3C] = hashlib.sha256(module).digest()
    return bytes(h) + module


def bundle_payload(files):
    """The file bundle build-rvf.js writes: count, then per file
    (u16 path length, u64 offset, u64 size, path), then the data."""
    table = b""
    off = 4 + sum(2 + 8 + 8 + len(n.encode()) for n, _ in files)
    for n, data in files:
        nb = n.encode()
        table += struct.pack("<HQQ", len(nb), off, len(data)) + nb
        off += len(data)
    return struct.pack("<I", len(files)) + table + b"".join(d for _, d in files)


def build_store(path, segments, algo="sha256-128", dim=0, epoch=1, profile=0x42):
    """segments: [(type, payload)] written in order, then a manifest that
    lists them all; every header hashed with `algo` (a per-segment algo
    may be given as a third tuple element)."""
    out = b""
    entries = []
    for i, seg in enumerate(segments, start=1):
        typ, payload = seg[0], seg[1]
        a = seg[2] if len(seg) > 2 else algo
        entries.append((i, len(out), len(payload), typ))
        out += header(typ, i, payload, a, ts=1_700_000_000_000_000_000) + payload
    man = manifest_payload(entries, dim=dim, epoch=epoch, profile=profile)
    out += header(T_MANIFEST, len(segments) + 1, man, algo) + man
    with open(path, "wb") as f:
        f.write(out)
    return path


def ruvbot_like(path, algo="sha256-128", kernel=b"K" * 3000, wasm=None):
    meta = json.dumps({"name": "bot", "version": "1.0.0", "format": "rvf-self-contained",
                       "api_port": 3000}).encode()
    profile = json.dumps({"profile_id": 66, "domain": "ai-assistant",
                          "boot_config": {"vcpus": 1, "memory_mb": 64}}).encode()
    witness = json.dumps({"witness_type": "build_provenance",
                          "artifacts": {"kernel": {"hash_sha256": hashlib.sha256(kernel).hexdigest()}},
                          "chain": []}).encode()
    if wasm is None:
        wasm = wasm_payload(bundle_payload([("package.json", b'{"name":"bot"}'),
                                            ("bin/bot.js", b"console.log(1)\n")]))
    return build_store(path, [(T_KERNEL, kernel_payload(kernel)), (T_WASM, wasm),
                              (T_META, meta), (T_PROFILE, profile),
                              (T_WITNESS, witness)], algo=algo)


def dashboard_payload(files=None, html=None, entry=b"index.html", framework=2):
    """A DASHBOARD payload: the 64-byte RVDB header, then either one HTML
    document (as upstream's embed_dashboard writes it: file_count 0) or the
    documented bundle: entry path, file table (u16 path length, u64 offset
    from the bundle start, u64 size, path) and the files."""
    if files is None:
        bundle = html if html is not None else b"<html><body>dash</body></html>"
        count = 0
    else:
        table = b""
        start = len(entry) + sum(18 + len(n.encode()) for n, _ in files)
        off = start
        for n, data in files:
            nb = n.encode()
            table += struct.pack("<HQQ", len(nb), off, len(data)) + nb
            off += len(data)
        bundle = entry + table + b"".join(d for _, d in files)
        count = len(files)
    h = bytearray(64)
    struct.pack_into("<IHBBQIHHQ", h, 0, 0x52564442, 1, framework, 0, len(bundle), count,
                     len(entry), 0, 1_700_000_000)
    h[0x20:0x40] = hashlib.shake_256(bundle).digest(32)
    return bytes(h) + bundle


# ------------------------------------------------------------ VEC blocks

DTYPES = {"f32": 0, "f16": 1, "bf16": 2, "i8": 3, "u8": 4, "i4": 5, "binary": 6, "pq": 7,
          "custom": 8}


def _pack_elem(dtype, x):
    if dtype == "f32":
        return struct.pack("<f", x)
    if dtype == "f16":
        return struct.pack("<e", x)
    if dtype == "bf16":
        return struct.pack("<f", x)[2:]  # values chosen exact in bf16
    if dtype == "i8":
        return struct.pack("<b", int(x))
    return struct.pack("<B", int(x) & 0xFF)  # u8 and the unreadable ones


def _varint(v):
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def vec_block_payload(blocks, raw_ids=False, restart=128):
    """upstream's block-layout VEC payload (rvf-wire vec_seg_codec.rs):
    blocks = [(dtype, dim, [(id, vector)])], vectors stored column by column,
    ids delta-varint (sorted, with restarts) or raw u64, CRC32C per block."""
    n = len(blocks)
    dir_size = (4 + 12 * n + 63) & ~63
    bodies, entries, off = [], [], dir_size
    for dtype, dim, rows in blocks:
        data = b"".join(_pack_elem(dtype, rows[i][1][d]) for d in range(dim)
                        for i in range(len(rows)))
        ids = [r[0] for r in rows]
        if raw_ids:
            idmap = bytes([0]) + struct.pack("<HI", restart, len(ids)) + \
                b"".join(struct.pack("<Q", i) for i in ids)
        else:
            enc = b""
            prev = 0
            for k, i in enumerate(ids):
                enc += _varint(i if k % restart == 0 else i - prev)
                prev = i
            idmap = bytes([1]) + struct.pack("<HI", restart, len(ids)) + enc
        body = data + idmap
        body += struct.pack("<I", crc32c(body))
        body += bytes((-len(body)) % 64)
        entries.append(struct.pack("<IIHBB", off, len(rows), dim, DTYPES[dtype], 0))
        bodies.append(body)
        off += len(body)
    d = struct.pack("<I", n) + b"".join(entries)
    return d + bytes(dir_size - len(d)) + b"".join(bodies)


def flat_vec_payload(dim, rows):
    return struct.pack("<HI", dim, len(rows)) + b"".join(
        struct.pack("<Q", i) + struct.pack(f"<{dim}f", *v) for i, v in rows)


# ------------------------------------------------------------ attestation

def binding_kernel_payload(image, cmdline=b"console=ttyS0", version=1, reserved=b"",
                           image_hash=None):
    """upstream's embed_kernel_with_binding layout: KERNEL header
    (cmdline_offset 256), 128-byte KernelBinding, cmdline, image; the image
    hash SHAKE-256-256 as upstream's verify-attestation checks it."""
    h = bytearray(kernel_payload(image, cmdline)[:128])
    struct.pack_into("<QI", h, 0x70, 256, len(cmdline))
    h[0x30:0x50] = image_hash if image_hash is not None else hashlib.shake_256(image).digest(32)
    b = bytearray(128)
    b[0:32] = hashlib.shake_256(b"manifest").digest(32)
    b[32:64] = hashlib.shake_256(b"policy").digest(32)
    struct.pack_into("<HHIQ", b, 0x40, version, 1, 0, 0xFFFF)
    b[0x50:0x50 + len(reserved)] = reserved
    return bytes(h) + bytes(b) + cmdline + image


def attestation_witness_payload(records, tamper=None):
    """count, u64 offsets into the records, a chain of 73-byte entries
    (prev_hash = SHAKE-256-256 of the previous entry, action_hash =
    SHAKE-256-256 of the record, timestamp, type), then the records."""
    offs, off = [], 0
    for r in records:
        offs.append(off)
        off += len(r)
    chain, prev = b"", bytes(32)
    for i, r in enumerate(records):
        e = prev + hashlib.shake_256(r).digest(32) + struct.pack("<QB", 1000 + i, 5)
        chain += e
        prev = hashlib.shake_256(e).digest(32)
    recs = b"".join(records)
    if tamper is not None:
        recs = recs[:tamper] + bytes([recs[tamper] ^ 1]) + recs[tamper + 1:]
    return struct.pack("<I", len(records)) + b"".join(struct.pack("<Q", o) for o in offs) + \
        chain + recs


# ------------------------------------------------------------ build-rvf.js kernels, compression

def build_rvf_kernel_payload(image, cmdline=b"console=ttyS0 ruvbot.mode=rvf quiet",
                             api_port=3000, packed=None):
    """The KERNEL payload of upstream's npm/packages/ruvbot/scripts/
    build-rvf.js: its own header (compression 1 = gzip, api_port
    little-endian at 0x2A, u16 api_version, vcpu_count u8 at 0x68,
    cmdline_offset u32 at 0x6C = 128, cmdline_length u32 at 0x70, SHA-256
    image hash), the gzip'd image, then the cmdline."""
    packed = gzip.compress(image, 9) if packed is None else packed
    h = bytearray(128)
    flags = (1 << 3) | (1 << 4) | (1 << 6) | (1 << 11) | (1 << 12) | (1 << 13) | (1 << 10)
    struct.pack_into("<IHBBIIQQQBBHH", h, 0, 0x52564B4E, 1, 0, 1, flags, 64, 0x1000000,
                     len(image), len(packed), 1, 0, api_port, 1)
    h[0x30:0x50] = hashlib.sha256(image).digest()
    h[0x50:0x60] = hashlib.sha256(image).digest()[:16]
    struct.pack_into("<QB", h, 0x60, 1_700_000_000, 1)
    struct.pack_into("<II", h, 0x6C, 128, len(cmdline))
    return bytes(h) + packed + cmdline


def brotli_compress(data):
    """Brotli through Debian's libbrotlienc (libbrotli1), quality 11."""
    lib = ctypes.CDLL("libbrotlienc.so.1")
    lib.BrotliEncoderMaxCompressedSize.restype = ctypes.c_size_t
    cap = lib.BrotliEncoderMaxCompressedSize(ctypes.c_size_t(len(data))) or len(data) + 1024
    out = ctypes.create_string_buffer(cap)
    n = ctypes.c_size_t(cap)
    ok = lib.BrotliEncoderCompress(11, 22, 0, ctypes.c_size_t(len(data)), data,
                                   ctypes.byref(n), out)
    assert ok == 1, "BrotliEncoderCompress failed"
    return out.raw[:n.value]


def compressed_wasm_payload(module, compression, role=0x02, packed=None):
    """A WASM payload whose module is stored compressed: compressed_size at
    0x10, compression at 0x14 (1 gzip, 2 brotli or zstd by its magic)."""
    if packed is None:
        packed = gzip.compress(module) if compression == 1 else brotli_compress(module)
    p = bytearray(wasm_payload(module, role=role)[:64])
    struct.pack_into("<IB", p, 0x10, len(packed), compression)
    return bytes(p) + packed


def compressed_dashboard_payload(compression, files=None, html=None, packed=None):
    """dashboard_payload with its bundle compressed (1 gzip, 2 brotli);
    bundle_size stays the unpacked size."""
    p = dashboard_payload(files=files, html=html)
    bundle = p[64:]
    if packed is None:
        packed = gzip.compress(bundle) if compression == 1 else brotli_compress(bundle)
    h = bytearray(p[:64])
    h[7] = compression
    return bytes(h) + packed
