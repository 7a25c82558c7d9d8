"""rvffs mount: ingest/ (each file copied in is parsed at close and
committed as one batch before close returns; formats by extension; the
usual tools; bad input commits nothing and is explained in `errors`)."""

import errno
import functools
import itertools
import json
import operator
import os
import random
import re
import struct
import sys
import time
from array import array

import pytest

from mountlib import mount, rvffs, store_copies  # noqa: F401  (fixtures)
from mountlib import (f32, fmt_num, make_store, npy_bytes, os_error, parse_results,
                      sqdist, write_csv, write_f32, write_fvecs, write_json, write_jsonl,
                      wait_for, write_npy)

DIM = 4


def rows_for(seed, n=5, start=1):
    rng = random.Random(seed)
    return [(start + i, [f32(rng.choice([rng.randint(-9, 9), rng.uniform(-5, 5)]))
                         for _ in range(DIM)]) for i in range(n)]


def text_file(path, rows, sep):
    """With a comment, blank lines and CRLF-free text."""
    lines = ["# a comment line", ""]
    for i, v in rows:
        lines.append(sep.join([str(i)] + [fmt_num(x) for x in v]))
        lines.append("")
    path.write_text("\n".join(lines) + "\n")


def check_vectors(m, rows):
    for i, v in rows:
        got = m.read_vector(i)
        assert [struct.pack("<f", x) for x in got] == [struct.pack("<f", x) for x in v], \
            f"vectors/{i}: {got} != {v}"


def epoch(m):
    return int(m.status()["epoch"])


# ------------------------------------------------------------------ formats

@pytest.mark.parametrize("ext", ["csv", "tsv", "txt", "jsonl", "ndjson", "json"])
def test_text_formats(mount, tmp_path, ext):
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    rows = rows_for(1, start=10)
    src = tmp_path / f"in.{ext}"
    if ext in ("csv", "tsv", "txt"):
        text_file(src, rows, {"csv": ",", "tsv": "\t", "txt": " "}[ext])
    elif ext == "json":
        write_json(src, rows)
    else:
        write_jsonl(src, rows)
    e0 = epoch(m)
    m.sh(f'cp in.{ext} "$M/ingest/"')
    # committed before cp returned: visible at once, one commit
    assert m.vector_ids() == [i for i, _ in rows]
    assert epoch(m) == e0 + 1
    assert m.ls("ingest") == [], "the file stayed in ingest/"
    check_vectors(m, rows)


@pytest.mark.parametrize("ext", ["fvecs", "npy", "f32"])
def test_binary_formats_ids_follow_max(mount, tmp_path, ext):
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    vecs = [v for _, v in rows_for(2, n=4)]
    writer = {"fvecs": write_fvecs, "f32": write_f32,
              "npy": lambda p, vs: write_npy(p, vs, DIM)}[ext]
    writer(tmp_path / f"a.{ext}", vecs)
    m.sh(f'cp a.{ext} "$M/ingest/"')
    # an empty store: ids from 0
    assert m.vector_ids() == [0, 1, 2, 3]
    check_vectors(m, list(enumerate(vecs)))
    # then after the current maximum id
    m.sh('echo "1 1 1 1" > "$M/vectors/20"')
    writer(tmp_path / f"b.{ext}", vecs[:2])
    m.sh(f'cp b.{ext} "$M/ingest/"')
    assert m.vector_ids() == [0, 1, 2, 3, 20, 21, 22]
    check_vectors(m, [(21, vecs[0]), (22, vecs[1])])


def test_same_id_replaces(mount, store, run_ctl, tmp_path):
    p = make_store(run_ctl, store, dim=DIM, rows=[(1, [1, 1, 1, 1]), (2, [2, 2, 2, 2])])
    m = mount(p)
    write_csv(tmp_path / "r.csv", [(1, [5, 5, 5, 5])])
    m.sh('cp r.csv "$M/ingest/"')
    assert m.vector_ids() == [1, 2]
    assert m.read_vector(1) == [5, 5, 5, 5]
    assert m.status()["vectors"] == "2"


# ------------------------------------------------------------------ tools

TOOLS = {
    "cp": 'cp in.csv "$M/ingest/in.csv"',
    "cp-p": 'cp -p in.csv "$M/ingest/in.csv"',
    "cat": 'cat in.csv > "$M/ingest/in.csv"',
    "tee": 'cat in.csv | tee "$M/ingest/in.csv" > /dev/null',
    "dd": 'dd if=in.csv of="$M/ingest/in.csv" bs=7 status=none',
    "rsync": 'rsync in.csv "$M/ingest/"',
    "rsync-a": 'rsync -a in.csv "$M/ingest/"',
    "mv": 'cp in.csv "$M/ingest/.in.csv.part" && mv "$M/ingest/.in.csv.part" "$M/ingest/in.csv"',
}


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_tools(mount, tmp_path, tool):
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    rows = rows_for(3, n=7)
    write_csv(tmp_path / "in.csv", rows)
    e0 = epoch(m)
    m.sh(TOOLS[tool])
    assert m.vector_ids() == [i for i, _ in rows], tool
    assert epoch(m) == e0 + 1, f"{tool}: not one commit"
    assert m.ls("ingest") == []
    check_vectors(m, rows)
    assert m.errors() == ""


def test_shell_children_sharing_the_descriptor(mount, tmp_path):
    """Children that inherit the open file and exit (closing their copy)
    do not commit a part of it: the file commits once, whole, when the
    shell that opened it closes it."""
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    write_csv(tmp_path / "p1.csv", [(1, [1, 2, 3, 4])])
    write_csv(tmp_path / "p2.csv", [(2, [4, 3, 2, 1]), (3, [0, 0, 0, 1])])
    e0 = epoch(m)
    m.sh('{ cat p1.csv; /bin/true; cat p2.csv; } > "$M/ingest/g.csv"')
    assert m.vector_ids() == [1, 2, 3]
    assert epoch(m) == e0 + 1, "committed in parts"
    m.sh('exec 3> "$M/ingest/h.csv"; cat p1.csv >&3; ls "$M" > /dev/null; '
         'sed "s/^2,/12,/; s/^3,/13,/" p2.csv >&3; exec 3>&-')
    assert m.vector_ids() == [1, 2, 3, 12, 13]
    assert epoch(m) == e0 + 2
    assert m.errors() == ""


def test_no_silent_loss_with_dup_closes(mount, tmp_path):
    """Shell builtins writing through `exec 3>` close a duplicate of the
    descriptor after each line (each close is a flush): every line must be
    committed, or the writes that cannot be must fail visibly."""
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    r = m.sh('exec 3> "$M/ingest/s.csv"; echo "1,1,2,3,4" >&3; echo "2,4,3,2,1" >&3; '
             'echo "3,0,0,0,1" >&3; exec 3>&-', check=False)
    ids = m.vector_ids()
    if ids != [1, 2, 3]:
        assert r.stderr.count("write error") == 3 - len(ids), (ids, r.stderr)
        assert "s.csv" in m.errors()
    assert m.ls("ingest") == []


def test_staged_file_listed_until_close(mount, tmp_path):
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    p = m / "ingest" / "slow.csv"
    with open(p, "w") as f:
        f.write("1,1,2,3,4\n")
        f.flush()
        assert "slow.csv" in m.ls("ingest")
        assert m.vector_ids() == [], "committed before close"
        f.write("2,4,3,2,1\n")
    assert m.vector_ids() == [1, 2]
    assert m.ls("ingest") == []


def test_chmod_touch_on_staged_file(mount, tmp_path):
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    write_csv(tmp_path / "in.csv", [(1, [1, 2, 3, 4])])
    # a hidden name is staged, not committed, until renamed
    m.sh('cp in.csv "$M/ingest/.stage.csv"')
    assert m.ls("ingest") == [".stage.csv"] and m.vector_ids() == []
    m.sh('chmod 600 "$M/ingest/.stage.csv" && touch -d "2001-01-01 00:00:00 UTC" "$M/ingest/.stage.csv"')
    st = os.stat(m / "ingest" / ".stage.csv")
    assert oct(st.st_mode & 0o777) == oct(0o600)
    assert st.st_mtime == 978307200
    assert st.st_size == (tmp_path / "in.csv").stat().st_size
    assert m.cat_bytes("ingest/.stage.csv") == (tmp_path / "in.csv").read_bytes()
    m.sh('mv "$M/ingest/.stage.csv" "$M/ingest/stage.csv"')
    assert m.vector_ids() == [1] and m.ls("ingest") == []
    # rm of a staged file drops it, nothing committed
    m.sh('cp in.csv "$M/ingest/.other.csv" && rm "$M/ingest/.other.csv"')
    assert m.ls("ingest") == [] and m.status()["vectors"] == "1"


# ------------------------------------------------------------------ bad input

def _fvecs_truncated(p):
    write_fvecs(p, [[1, 2, 3, 4], [5, 6, 7, 8]])
    p.write_bytes(p.read_bytes()[:-3])


def _fvecs_wrong_dim(p):
    p.write_bytes(struct.pack("<i4f", 4, 1, 2, 3, 4) + struct.pack("<i3f", 3, 1, 2, 3) +
                  struct.pack("<i4f", 4, 1, 2, 3, 4))


def _npy_truncated(p):
    p.write_bytes(npy_bytes([[1, 2, 3, 4], [5, 6, 7, 8]], DIM, rows=3))


def _npy_wrong_dim(p):
    p.write_bytes(npy_bytes([[1, 2, 3], [5, 6, 7]], 3))


def _npy_variant(**kw):
    def make(p):
        rows = kw.pop("rows", 2)
        extra = kw.pop("extra", b"")
        cut = kw.pop("cut", None)
        data = npy_bytes([[1, 2, 3, 4], [5, 6, 7, 8]], DIM, rows=rows) + extra
        for k, v in kw.items():
            data = data.replace(k.encode(), v.encode())
        p.write_bytes(data[:cut])
    return make


def _npy_f64_overflow(p):
    head = npy_bytes([], DIM, rows=2).replace(b"'<f4'", b"'<f8'")
    p.write_bytes(head + struct.pack("<8d", 1, 2, 3, 4, 1, 2, 1e39, 4))


def _f32_truncated(p):
    write_f32(p, [[1, 2, 3, 4], [5, 6, 7]])


BAD = {
    # name: (file name, content or writer, regexes the error line must match)
    "csv-wrong-dim": ("a.csv", "1,1,2,3,4\n2,1,2,3,4\n3,1,2,3\n", ["line 3"]),
    "csv-junk-number": ("b.csv", "1,1,2,3,4\n2,1,2,x,4\n", ["line 2", '"?x"?']),
    "csv-overflow": ("b2.csv", "1,1,2,3,4\n2,1,2,3e999,4\n", ["line 2", "3e999"]),
    "csv-negative-id": ("c.csv", "1,1,2,3,4\n-1,1,2,3,4\n", ["line 2", "-1"]),
    "csv-fraction-id": ("d.csv", "1.5,1,2,3,4\n", ["line 1", "1.5"]),
    "tsv-too-many": ("e.tsv", "1\t1\t2\t3\t4\t5\n", ["line 1"]),
    "txt-wrong-dim-late": ("f.txt", "".join(f"{i} 1 2 3 4\n" for i in range(1, 30)) +
                           "30 1 2 3\n", ["line 30"]),
    "jsonl-bad-json": ("g.jsonl", '{"id":1,"vector":[1,2,3,4]}\n{"id":2,"vector":[1,2,3,4]\n',
                       ["line 2"]),
    "jsonl-wrong-dim": ("h.jsonl", '{"id":1,"vector":[1,2,3,4]}\n{"id":2,"vector":[1,2]}\n',
                        ["line 2"]),
    "jsonl-negative-id": ("i.ndjson", '{"id":-4,"vector":[1,2,3,4]}\n', ["line 1"]),
    "jsonl-string-vector": ("j.jsonl", '{"id":1,"vector":[1,"a",3,4]}\n', ["line 1"]),
    "json-truncated": ("k.json", '[{"id":1,"vector":[1,2,3,4]},', []),
    "json-fraction-id": ("l.json", '[{"id":1.5,"vector":[1,2,3,4]}]', ["1.5"]),
    "fvecs-truncated": ("m.fvecs", _fvecs_truncated, [r"(row|record|vector) 2"]),
    "fvecs-wrong-dim": ("n.fvecs", _fvecs_wrong_dim, [r"(row|record|vector) 2", r"\b3\b"]),
    "npy-truncated": ("o.npy", _npy_truncated, ["truncated"]),
    "npy-wrong-dim": ("p.npy", _npy_wrong_dim, [r"\b3\b"]),
    "npy-bad-magic": ("o2.npy", _npy_variant(NUMPY="NUMPX"), ["bad magic"]),
    "npy-fortran": ("o3.npy", _npy_variant(**{"'fortran_order': False": "'fortran_order': True"}),
                    ["fortran_order"]),
    "npy-big-endian": ("o4.npy", _npy_variant(**{"<f4": ">f4"}), ["'>f4'"]),
    "npy-bad-dict": ("o5.npy", _npy_variant(**{"'shape'": "'shap'"}), ["unexpected key"]),
    "npy-extra-data": ("o6.npy", _npy_variant(rows=1), ["data after the 1 rows"]),
    "npy-header-truncated": ("o7.npy", _npy_variant(cut=40), [r"header truncated \(40 of"]),
    "npy-f64-overflow": ("o8.npy", _npy_f64_overflow, ["row 2", "does not fit float32"]),
    "f32-truncated": ("q.f32", _f32_truncated, ["truncated"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_commits_nothing(mount, store, store_copies, tmp_path, case):
    name, content, words = BAD[case]
    p = store_copies(store, "bad-input", dim=DIM, rows=[(1, [9, 9, 9, 9]), (100, [8, 8, 8, 8])])
    m = mount(p)
    src = tmp_path / name
    if callable(content):
        content(src)
    else:
        src.write_text(content)
    before = (m.vector_ids(), os.path.getsize(p), m.status()["epoch"], m.read_vector(1))
    r = m.sh(f'cp {name} "$M/ingest/"', check=False)
    assert r.returncode != 0, f"cp of a bad {name} succeeded"
    assert "Invalid argument" in r.stderr or "close" in r.stderr, r.stderr
    after = (m.vector_ids(), os.path.getsize(p), m.status()["epoch"], m.read_vector(1))
    assert after == before, "something from the bad file was committed"
    assert m.ls("ingest") == []
    err = [ln for ln in m.errors().splitlines() if name in ln]
    assert err, f"no line about {name} in errors:\n{m.errors()}"
    for w in words:
        assert re.search(w, err[-1]), f"error line lacks {w!r}: {err[-1]}"
    # the mount keeps working
    write_csv(tmp_path / "ok.csv", [(2, [1, 1, 1, 1])])
    m.sh('cp ok.csv "$M/ingest/"')
    assert 2 in m.vector_ids()


def test_unknown_extension_refused(mount, tmp_path):
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    (tmp_path / "x.bin").write_bytes(b"\0" * 32)
    r = m.sh('cp x.bin "$M/ingest/"', check=False)
    assert r.returncode != 0
    assert m.vector_ids() == [] and m.ls("ingest") == []
    assert "x.bin" in m.errors()


def test_empty_file_commits_nothing_harmful(mount, tmp_path):
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    (tmp_path / "e.csv").write_text("# only a comment\n\n")
    m.sh('cp e.csv "$M/ingest/"', check=False)
    assert m.vector_ids() == [] and m.ls("ingest") == []


def test_many_files_in_one_cp(mount, tmp_path):
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    names = []
    for k in range(5):
        write_csv(tmp_path / f"f{k}.csv", [(k * 10 + j, [k, j, 0, 1]) for j in range(3)])
        names.append(f"f{k}.csv")
    e0 = epoch(m)
    m.sh(f'cp {" ".join(names)} "$M/ingest/"')
    assert len(m.vector_ids()) == 15
    assert epoch(m) == e0 + 5, "not one commit per file"


def test_large_npy_50k(mount, tmp_path):
    """~50k vectors in one .npy through cp: all there, exact, queryable."""
    n, dim = 50000, 8
    rng = random.Random(11)
    flat = [float(rng.randint(-8, 8)) for _ in range(n * dim)]
    vecs = [flat[i * dim:(i + 1) * dim] for i in range(n)]
    write_npy(tmp_path / "big.npy", vecs, dim)
    m = mount(tmp_path / "big.rvf", "create", f"dim={dim}")
    t0 = time.monotonic()
    m.sh('cp big.npy "$M/ingest/"')
    st = m.status()
    assert st["vectors"] == str(n)
    count = int(m.sh('ls "$M/vectors" | wc -l').stdout)
    assert count == n
    for i in (0, 1, 4999, 31337, n - 1):
        assert m.read_vector(i) == vecs[i]
    q = [1, -2, 3, 0, 5, -1, 2, 2]
    got = parse_results(m.query("k=5 " + " ".join(map(str, q))))[0]
    scored = sorted((sqdist(v, q), i) for i, v in enumerate(vecs))[:5]
    assert [(i, d) for i, d, _ in got] == [(i, d) for d, i in scored]
    assert time.monotonic() - t0 < 60


def deleted_files_open(pid):
    """How many unlinked files the daemon holds open: the temporaries of
    the files staged in ingest/."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").endswith(" (deleted)")
        except OSError:
            pass
    return n


def test_refused_open_keeps_no_hold_on_a_staged_file(mount, tmp_path):
    """An open of a staged file that fails (here: the store shrank under the
    mount, EIO) takes no hold on it: removed afterwards, its temporary file
    goes (it stayed open in the daemon for the rest of the mount)."""
    store = tmp_path / "s.rvf"
    m = mount(store, "create", f"dim={DIM}")
    m.sh('printf "1,1,2,3,4\\n" > "$M/ingest/a.csv"')
    held = m / "ingest" / ".held.csv"  # hidden: stays staged at close
    held.write_text("2,1,2,3,4\n")
    before = deleted_files_open(m.pid)
    assert before >= 1
    data = store.read_bytes()
    os.truncate(store, len(data) - 64)
    try:
        assert os_error(lambda: open(held, "rb").close()) == errno.EIO
    finally:
        with open(store, "ab") as f:  # the store as it was
            f.write(data[-64:])
    os.unlink(held)
    assert deleted_files_open(m.pid) == before - 1


# ---------------------------------------------------------------- streaming

# Cached: several tests stream the same 450,000 rows, and making them was
# seconds of Python per test (bytes: no test can change them).
def _interleave(head, columns, width):
    """Rows of fixed-size records: `head` (bytes, the same in every row)
    then one value of each column (little-endian arrays of `width`-byte
    items, one per row), built with a slice assignment per byte of a
    column instead of a struct.pack per row (seconds of Python for the
    450,000-row files)."""
    n = len(columns[0])
    stride = len(head) + width * len(columns)
    out = bytearray(n * stride)
    for j, b in enumerate(head):
        out[j::stride] = bytes([b]) * n
    for c, col in enumerate(columns):
        if sys.byteorder != "little":
            col = array(col.typecode, col)
            col.byteswap()
        raw = col.tobytes()
        for j in range(width):
            out[len(head) + width * c + j::stride] = raw[j::width]
    return bytes(out)


@functools.lru_cache(maxsize=16)  # every size the module uses (~60 MB in all)
def _fvecs_rows(first, n, dim=DIM):
    """n records of dim, record k all (first + k): the bytes of
    struct.pack("<i{dim}f", dim, *[float(first + k)] * dim) for each k."""
    col = array("f", range(first, first + n))
    return _interleave(struct.pack("<i", dim), [col] * dim, 4)


# 450,000 records of dim 4 (9 MB): more than one 8 MiB segment of rows
BIG = 450_000


def test_fvecs_streams_into_the_store_as_written(mount, tmp_path, ref):
    """A .fvecs file goes into the store while it is written (the store
    grows before the close) and becomes visible only at the close, as one
    commit; the reference opens the result."""
    p = tmp_path / "s.rvf"
    m = mount(p, "create", f"dim={DIM}")
    m.sh('echo "5 5 5 5" > "$M/vectors/7"')
    e0, size0 = epoch(m), os.path.getsize(p)
    chunk = 1 << 20
    data = _fvecs_rows(0, BIG)
    with open(m / "ingest/big.fvecs", "wb", buffering=0) as f:
        for at in range(0, len(data), chunk):
            f.write(data[at:at + chunk])
        # rows went to the store file already (a full segment is written
        # by the stream's writer thread while the next rows come), nothing
        # is visible yet
        assert wait_for(lambda: os.path.getsize(p) - size0 > 8 << 20, timeout=60)
        assert m.status()["vectors"] == "1" and epoch(m) == e0
    assert int(m.status()["vectors"]) == BIG + 1 and epoch(m) == e0 + 1
    assert m.ls("ingest") == []
    # ids follow the largest id: 8 .. 8 + BIG - 1
    assert m.read_vector(8) == [0.0] * DIM
    assert m.read_vector(8 + BIG - 1) == [float(BIG - 1)] * DIM
    m.unmount()
    d = ref.dump(p)
    assert d["openError"] is None and d["liveCount"] == BIG + 1


def test_stream_emptied_or_removed_while_written(mount, tmp_path):
    """A hostile user's timing: one thread streams .fvecs files into
    ingest/ while another empties (open with O_TRUNC) and removes the same
    name.  The daemon never uses a stream another descriptor dropped (under
    ASan that was a heap-use-after-free report at unmount): every write
    either goes in or fails with an errno, the mount keeps working, and the
    store still verifies."""
    import threading
    p = tmp_path / "s.rvf"
    m = mount(p, "create", f"dim={DIM}")
    name = m / "ingest" / "race.fvecs"
    chunk = _fvecs_rows(0, 20_000)  # 400 KB: each write decodes for a while
    stop = time.monotonic() + 4
    seen = {"writes": 0, "drops": 0}
    bad = []

    def writer():
        while time.monotonic() < stop:
            try:
                with open(name, "wb", buffering=0) as f:
                    for _ in range(8):
                        f.write(chunk)
                        seen["writes"] += 1
            except OSError as e:
                if e.errno not in (errno.EINVAL, errno.ESTALE, errno.ENOENT):
                    bad.append(repr(e))

    def dropper():
        while time.monotonic() < stop:
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_TRUNC))
                seen["drops"] += 1
                os.unlink(name)
            except OSError as e:
                if e.errno not in (errno.ENOENT, errno.EINVAL):
                    bad.append(repr(e))

    threads = [threading.Thread(target=writer), threading.Thread(target=dropper)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a writer or dropper hangs"
    assert not bad, bad[:5]
    assert seen["writes"] > 10 and seen["drops"] > 10, seen
    # the mount still works, and only whole files went in
    m.sh('echo "1 2 3 4" > "$M/vectors/999999999"')
    n = int(m.status()["vectors"])
    assert n % 20_000 == 0 or (n - 1) % 20_000 == 0, n
    m.unmount()  # the harness then reads the daemon's sanitizer reports


def test_fvecs_bad_record_fails_its_write(mount, tmp_path):
    """The write() that brings a bad record fails (EINVAL), naming it; the
    close commits nothing, and the rows streamed before it leave no
    visible trace; the store is cut back when they ended it."""
    p = tmp_path / "s.rvf"
    m = mount(p, "create", f"dim={DIM}")
    m.sh('echo "5 5 5 5" > "$M/vectors/7" && sync "$M/vectors"')
    before = (m.vector_ids(), epoch(m))
    size0 = os.path.getsize(p)
    good = _fvecs_rows(0, BIG)
    bad = struct.pack("<i3f", 3, 1, 2, 3)
    f = open(m / "ingest/bad.fvecs", "wb", buffering=0)
    f.write(good)
    with pytest.raises(OSError) as e:
        f.write(bad)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        f.close()
    assert (m.vector_ids(), epoch(m)) == before and m.ls("ingest") == []
    assert re.search(rf"record {BIG + 1}\b.*dimension 3", m.errors().splitlines()[-1])
    assert os.path.getsize(p) == size0, "the streamed rows were left at the end"
    # and a file that ends inside a record
    f = open(m / "ingest/short.fvecs", "wb", buffering=0)
    f.write(good[:-3])
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.EINVAL
    assert (m.vector_ids(), epoch(m)) == before
    assert re.search(rf"record {BIG}\b.*truncated|truncated: record {BIG}\b",
                     m.errors().splitlines()[-1])


# A stream cuts a VEC segment every 8 MiB of rows (an id and the floats
# per row; engine/stream.c).
ROWS_PER_SEGMENT = (8 << 20) // (8 + 4 * DIM)


@pytest.mark.parametrize("ending", ["bad record", "short"])
def test_refused_after_a_segment_filled_cuts_the_store_back(mount, tmp_path, ending):
    """The write that fills a segment is answered by a worker thread, which
    then hands the segment to the writer and lets go of the stream.  When
    the file is refused right after it (a bad record fails the next write,
    or the file ends inside a record), the close returns with the store cut
    back to where it was, not when that worker's last reference goes (a
    race CI once caught under ASan: the segment was still being written
    when the test looked)."""
    p = tmp_path / "s.rvf"
    m = mount(p, "create", f"dim={DIM}")
    size0 = os.path.getsize(p)
    bad = struct.pack("<i3f", 3, 1, 2, 3)
    rows = _fvecs_rows(0, ROWS_PER_SEGMENT + 5)
    fill = len(rows) - 10 * (4 + 4 * DIM)  # all but the last 10 records
    for attempt in range(3):
        f = open(m / f"ingest/b{attempt}.fvecs", "wb", buffering=0)
        for at in range(0, fill, 1 << 20):
            f.write(rows[at:min(at + (1 << 20), fill)])
        if ending == "bad record":
            f.write(rows[fill:])  # fills the segment and begins the next
            with pytest.raises(OSError) as e:
                f.write(bad)
            assert e.value.errno == errno.EINVAL
        else:
            f.write(rows[fill:-3])  # the same, and ends inside a record
        with pytest.raises(OSError) as e:
            f.close()
        assert e.value.errno == errno.EINVAL
        assert os.path.getsize(p) == size0, f"attempt {attempt}: the streamed rows were left"
        assert m.vector_ids() == [] and m.ls("ingest") == []


@pytest.mark.parametrize("ext", ["fvecs", "f32", "npy"])
def test_non_finite_component_fails_its_write(mount, tmp_path, ext):
    """A NaN or an infinity anywhere in a streamed record (first, a middle
    and the last component of an odd dimension, so every lane of the
    vectorised check and its remainder) fails the write that brings it,
    naming record and component; nothing is committed.  The largest finite
    float and a subnormal go in."""
    dim = 37
    m = mount(tmp_path / "s.rvf", "create", f"dim={dim}")
    n_good = 1000

    def file_bytes(rows):
        if ext == "fvecs":
            return b"".join(struct.pack("<i", dim) + r for r in rows)
        if ext == "npy":
            return _npy_header((len(rows), dim)) + b"".join(rows)
        return b"".join(rows)

    good = [struct.pack(f"<{dim}f", *[float(k + c) for c in range(dim)])
            for k in range(n_good)]
    cases = [(float("nan"), 0), (float("inf"), 17), (float("-inf"), dim - 1),
             (float("nan"), dim - 2)]
    for i, (value, comp) in enumerate(cases):
        row = [1.0] * dim
        row[comp] = value
        data = file_bytes(good + [struct.pack(f"<{dim}f", *row)])
        f = open(m / f"ingest/bad{i}.{ext}", "wb", buffering=0)
        with pytest.raises(OSError) as e:
            f.write(data)
        assert e.value.errno == errno.EINVAL
        with pytest.raises(OSError) as e:
            f.close()
        assert e.value.errno == errno.EINVAL
        assert m.status()["vectors"] == "0" and m.ls("ingest") == []
        assert re.search(rf"bad{i}\.{ext}: (record|row) {n_good + 1}: component {comp + 1} is not finite",
                         m.errors().splitlines()[-1]), m.errors().splitlines()[-1]
    edge = [3.4028234663852886e38, -3.4028234663852886e38, 1e-45, -1e-45] + [0.5] * (dim - 4)
    (tmp_path / f"ok.{ext}").write_bytes(file_bytes(good + [struct.pack(f"<{dim}f", *edge)]))
    m.sh(f'cp ok.{ext} "$M/ingest/"')
    assert int(m.status()["vectors"]) == n_good + 1
    # the same float32 values, whatever the text's digits
    assert struct.pack("<4f", *m.read_vector(n_good)[:4]) == struct.pack("<4f", *edge[:4])


@pytest.mark.parametrize("where", ["straddling", "inside"])
def test_bad_record_after_answered_writes_fails_its_write(mount, tmp_path, where):
    """cp's 1 MiB writes are answered as soon as their records are checked
    (the rows are copied into the stream after the answer).  A bad record
    in the third MiB -- one that the second write began and the third
    completes, or one inside the third -- still fails exactly the third
    write, naming the record; the two before succeed; nothing is
    committed and the close fails too."""
    dim = 128
    m = mount(tmp_path / "s.rvf", "create", f"dim={dim}")
    rec = 4 + 4 * dim
    n = 3 * (1 << 20) // rec + 10
    rows = [struct.pack("<i", dim) + struct.pack(f"<{dim}f", *[float(k % 97 + c) for c in range(dim)])
            for k in range(n)]
    bad = 2 * (1 << 20) // rec if where == "straddling" else 2 * (1 << 20) // rec + 900
    if where == "straddling":
        assert bad * rec < 2 << 20 < (bad + 1) * rec  # begun in write 2, ended in write 3
    row = [0.25] * dim
    row[dim - 3] = float("nan")
    rows[bad] = struct.pack("<i", dim) + struct.pack(f"<{dim}f", *row)
    data = b"".join(rows)
    fd = os.open(m / "ingest/big.fvecs", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    mib = 1 << 20
    assert os.write(fd, data[:mib]) == mib
    assert os.write(fd, data[mib:2 * mib]) == mib
    with pytest.raises(OSError) as e:
        os.write(fd, data[2 * mib:3 * mib])
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError) as e:
        os.close(fd)
    assert e.value.errno == errno.EINVAL
    assert m.status()["vectors"] == "0" and m.ls("ingest") == []
    assert re.search(rf"big\.fvecs: record {bad + 1}: component {dim - 2} is not finite",
                     m.errors()), m.errors()


@pytest.mark.parametrize("nth", [2, 3])
def test_fvecs_segment_write_error_fails_the_file(mount, store, tmp_path, nth):
    """A streamed file's segments are written by a thread of the daemon
    while the next rows arrive: a write error of one (here ENOSPC, the
    daemon's n-th write: the first or the second segment) fails a later
    write() or the close, never silently; nothing is committed, the rows
    written before are cut off and the mount keeps working."""
    p = store(dim=DIM)
    size0 = os.path.getsize(p)
    d = mount.daemon(p, env_extra={"RVF_FAULT": f"write:{nth}:28"})
    d.start()
    data = _fvecs_rows(0, 2 * BIG)  # three segments of rows
    errs = []
    f = open(d.mnt / "ingest/big.fvecs", "wb", buffering=0)
    for at in range(0, len(data), 1 << 20):
        try:
            f.write(data[at:at + (1 << 20)])
        except OSError as e:
            errs.append(e.errno)
            break
    try:
        f.close()
    except OSError as e:
        errs.append(e.errno)
    assert errs and errs[0] == errno.ENOSPC, errs
    assert d.vector_ids() == [] and d.ls("ingest") == []
    assert "big.fvecs" in d.errors() and os.strerror(errno.ENOSPC) in d.errors()
    assert os.path.getsize(p) == size0, "the streamed rows were left at the end"
    # the fault is spent: the same file goes in now
    with open(d.mnt / "ingest/again.fvecs", "wb") as f:
        f.write(data)
    assert int(d.status()["vectors"]) == 2 * BIG
    assert d.unmount() == 0


def test_fvecs_out_of_order_commits_nothing(mount, tmp_path):
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    rows = _fvecs_rows(0, 10)
    fd = os.open(m / "ingest/o.fvecs", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, rows[:40])
    with pytest.raises(OSError) as e:
        os.pwrite(fd, rows[100:], 100)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        os.close(fd)
    assert m.vector_ids() == [] and "out of order" in m.errors()


# ----------------------------------------------------------- streaming .npy

def _npy_header(shape, descr="<f4", fortran=False, major=1):
    """The header numpy writes (dictionary padded with spaces to a multiple
    of 64 bytes, ending in '\\n'); shape is a tuple."""
    d = ("{'descr': '%s', 'fortran_order': %s, 'shape': %s, }"
         % (descr, fortran, repr(tuple(shape)))).encode()
    pre = 10 if major == 1 else 12
    n = len(d) + 1
    n += (64 - (pre + n) % 64) % 64
    d += b" " * (n - len(d) - 1) + b"\n"
    size = struct.pack("<H", n) if major == 1 else struct.pack("<I", n)
    return b"\x93NUMPY" + bytes([major, 0]) + size + d


@functools.lru_cache(maxsize=16)  # as _fvecs_rows
def _npy_rows(first, n, dim=DIM, width=4):
    """Rows first..first+n-1, row k = [k, k + 0.5, k + 1, k + 1.5 ...]:
    distinct, exact in float32."""
    steps = [0.5 * c for c in range(dim)]
    # array(...) of [k + h for k in range(first, first + n) for h in steps]
    cols = [array("f" if width == 4 else "d",
                  map(operator.add, range(first, first + n), itertools.repeat(h)))
            for h in steps]
    return _interleave(b"", cols, width)


def _row(k, dim=DIM):
    return [float(k) + 0.5 * c for c in range(dim)]


def staged_bytes(pid):
    """Bytes in the daemon's staging files (the unlinked temporaries of
    the files in ingest/): 0 while every file there streams."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").endswith(" (deleted)"):
                n += os.stat(f"/proc/{pid}/fd/{fd}").st_size
        except OSError:
            pass
    return n


@pytest.mark.parametrize("descr,major", [("<f4", 1), ("<f8", 3)])
def test_npy_streams_into_the_store_as_written(mount, tmp_path, ref, descr, major):
    """A .npy file goes into the store while it is written: the store grows
    before the close, nothing is staged, nothing is visible until the
    close commits it as one unit with the ids the staged import gave; the
    reference opens the result with the same vectors."""
    width = 4 if descr == "<f4" else 8
    p = tmp_path / "s.rvf"
    m = mount(p, "create", f"dim={DIM}")
    m.sh('echo "5 5 5 5" > "$M/vectors/7"')
    e0, size0 = epoch(m), os.path.getsize(p)
    data = _npy_header((BIG, DIM), descr, major=major) + _npy_rows(0, BIG, width=width)
    chunk = 1 << 20
    with open(m / "ingest/big.npy", "wb", buffering=0) as f:
        for at in range(0, len(data), chunk):
            f.write(data[at:at + chunk])
        # rows went to the store file already, nothing is visible yet,
        # and no copy of the bytes was kept
        assert wait_for(lambda: os.path.getsize(p) - size0 > 8 << 20, timeout=60)  # the writer thread
        assert m.status()["vectors"] == "1" and epoch(m) == e0
        assert staged_bytes(m.pid) == 0
    assert int(m.status()["vectors"]) == BIG + 1 and epoch(m) == e0 + 1
    assert m.ls("ingest") == []
    # ids follow the largest id: 8 .. 8 + BIG - 1
    sample = [0, 1, 12345, BIG - 1]
    for k in sample:
        assert m.read_vector(8 + k) == _row(k)
    m.unmount()
    d = ref.dump(p)
    assert d["openError"] is None and d["liveCount"] == BIG + 1
    sc = ref.selfcheck(p, [(8 + k, _row(k)) for k in sample])
    assert sc["ok"], sc


def test_npy_streamed_and_staged_give_the_same_store(mount, store, run_ctl, tmp_path):
    """cp (streamed), rsync (a hidden name then a rename: staged) and
    `rvfctl ingest` of the same .npy files give the same ids and vectors,
    for every header version and both dtypes."""
    files = []
    for k, (descr, major) in enumerate([("<f4", 1), ("<f8", 2), ("<f4", 3), ("<f8", 1)]):
        width = 4 if descr == "<f4" else 8
        src = tmp_path / f"f{k}.npy"
        src.write_bytes(_npy_header((50 + k, DIM), descr, major=major) +
                        _npy_rows(100 * k, 50 + k, width=width))
        files.append(src)
    results = []
    for how in ("cp", "rsync", "rvfctl"):
        p = store(name=f"{how}.rvf", dim=DIM)
        if how == "rvfctl":
            for src in files:
                run_ctl("ingest", p, src)
            results.append(run_ctl("export", p).stdout)
            continue
        m = mount(p)
        m.sh('echo "5 5 5 5" > "$M/vectors/3"')
        for src in files:
            m.sh(f'{how} {src.name} "$M/ingest/"')
        assert m.ls("ingest") == []
        m.sh('rm "$M/vectors/3"')
        m.unmount()
        results.append(run_ctl("export", p).stdout)
    assert results[0] and results[0] == results[1], "cp and rsync differ"
    # rvfctl ingest had no vector 3: its ids start at 0, the mounts' at 4
    ex = [json.loads(ln) for ln in results[0].splitlines()]
    ctl = [json.loads(ln) for ln in results[2].splitlines()]
    assert [r["id"] - 4 for r in ex] == [r["id"] for r in ctl] == list(range(len(ctl)))
    assert [r["vector"] for r in ex] == [r["vector"] for r in ctl]


def _bad_header_cases():
    good = _npy_header((3, DIM))
    return {
        "magic": (b"PK\3\4" + good[4:], "not an npy file"),
        "version": (good[:6] + b"\x04\x00" + good[8:], r"npy version 4\.0"),
        "dict": (good.replace(b"{'descr'", b"['descr'"), "not a dictionary"),
        "fortran": (_npy_header((3, DIM), fortran=True), "fortran_order"),
        "big-endian": (_npy_header((3, DIM), ">f4"), "'>f4'"),
        "wrong-dim": (_npy_header((3, DIM + 1)), r"has 5 columns, expected 4"),
        "one-d": (_npy_header((DIM,)), "shape has 1 dimensions"),
        "too-large": (b"\x93NUMPY\x02\x00" + struct.pack("<I", 2 << 20), "too large"),
    }


@pytest.mark.parametrize("case", sorted(_bad_header_cases()))
def test_npy_bad_header_fails_its_write(mount, tmp_path, case):
    """The write() that completes a bad header fails with EINVAL, naming
    what is wrong; the close commits nothing; the mount goes on."""
    head, words = _bad_header_cases()[case]
    p = tmp_path / "s.rvf"
    m = mount(p, "create", f"dim={DIM}")
    m.sh('echo "5 5 5 5" > "$M/vectors/7" && sync "$M/vectors"')
    before = (m.vector_ids(), epoch(m), os.path.getsize(p))
    f = open(m / "ingest/h.npy", "wb", buffering=0)
    with pytest.raises(OSError) as e:
        f.write(head + _npy_rows(0, 3))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        f.close()
    assert (m.vector_ids(), epoch(m), os.path.getsize(p)) == before
    assert m.ls("ingest") == []
    last = m.errors().splitlines()[-1]
    assert "ingest/h.npy: " in last and re.search(words, last), last
    m.sh('printf "1,1,2,3,4\\n" > "$M/ingest/ok.csv"')
    assert 1 in m.vector_ids()


def test_npy_header_split_across_writes(mount, tmp_path):
    """A header that arrives a byte at a time, and rows split oddly,
    still stream (and the store grows before the close)."""
    p = tmp_path / "s.rvf"
    m = mount(p, "create", f"dim={DIM}")
    head = _npy_header((BIG, DIM), major=2)
    rows = _npy_rows(0, BIG)
    size0 = os.path.getsize(p)
    fd = os.open(m / "ingest/s.npy", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        for b in range(len(head)):
            assert os.write(fd, head[b:b + 1]) == 1
        at = 0
        while at < len(rows):
            at += os.write(fd, rows[at:at + 777_777])
        assert wait_for(lambda: os.path.getsize(p) - size0 > 8 << 20, timeout=60)  # the writer thread
        assert staged_bytes(m.pid) == 0
    finally:
        os.close(fd)
    assert m.vector_ids()[:2] == [0, 1] and int(m.status()["vectors"]) == BIG
    assert m.read_vector(BIG - 1) == _row(BIG - 1)


def test_npy_short_or_long_data_commits_nothing(mount, tmp_path):
    """Fewer rows than the header declares: the close fails and the rows
    streamed leave no trace (cut off the store's end); more: the write
    that brings them fails; a file that ends in its header: the close."""
    p = tmp_path / "s.rvf"
    m = mount(p, "create", f"dim={DIM}")
    m.sh('echo "5 5 5 5" > "$M/vectors/7" && sync "$M/vectors"')
    before = (m.vector_ids(), epoch(m))
    size0 = os.path.getsize(p)
    f = open(m / "ingest/short.npy", "wb", buffering=0)
    f.write(_npy_header((BIG + 2, DIM)) + _npy_rows(0, BIG) + b"\0" * 5)
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.EINVAL
    assert (m.vector_ids(), epoch(m)) == before and m.ls("ingest") == []
    assert os.path.getsize(p) == size0, "the streamed rows were left at the end"
    assert re.search(rf"ingest/short.npy: truncated: the header declares {BIG + 2} rows, "
                     rf"the data holds {BIG} and 5 bytes", m.errors().splitlines()[-1])

    f = open(m / "ingest/long.npy", "wb", buffering=0)
    f.write(_npy_header((3, DIM)) + _npy_rows(0, 2))
    with pytest.raises(OSError) as e:
        f.write(_npy_rows(2, 2))
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        f.close()
    assert (m.vector_ids(), epoch(m)) == before
    # said once (the quick path looks without saying it, then take() says it)
    assert m.errors().count("ingest/long.npy: data after the 3 rows the header declares") == 1

    head = _npy_header((3, DIM))
    f = open(m / "ingest/cut.npy", "wb", buffering=0)
    f.write(head[:40])
    with pytest.raises(OSError) as e:
        f.close()
    assert e.value.errno == errno.EINVAL
    assert (m.vector_ids(), epoch(m)) == before
    assert f"npy header truncated (40 of {len(head)} bytes)" in m.errors().splitlines()[-1]


def test_npy_f64_out_of_range_fails_its_write(mount, tmp_path):
    """A float64 value outside float32's range fails the write that brings
    it (as the staged import refuses it), naming row and component."""
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    rows = array("d", [1, 2, 3, 4, 1, 2, 1e39, 4]).tobytes()
    f = open(m / "ingest/w.npy", "wb", buffering=0)
    f.write(_npy_header((2, DIM), "<f8") + rows[:32])
    with pytest.raises(OSError) as e:
        f.write(rows[32:])
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        f.close()
    assert m.vector_ids() == []
    assert "ingest/w.npy: row 2: component 3 (1e+39) does not fit float32" in m.errors()


def test_npy_out_of_order_and_empty(mount, tmp_path):
    """Written out of order after streaming began: refused; a header with
    no rows, like the staged import, commits nothing and is no error."""
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    data = _npy_header((10, DIM)) + _npy_rows(0, 10)
    fd = os.open(m / "ingest/o.npy", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    os.write(fd, data[:100])
    with pytest.raises(OSError) as e:
        os.pwrite(fd, data[200:], 200)
    assert e.value.errno == errno.EINVAL
    with pytest.raises(OSError):
        os.close(fd)
    assert m.vector_ids() == [] and "ingest/o.npy: written out of order" in m.errors()
    e0 = epoch(m)
    (tmp_path / "z.npy").write_bytes(_npy_header((0, DIM)))
    m.sh('cp z.npy "$M/ingest/"')
    assert m.vector_ids() == [] and epoch(m) == e0 and m.ls("ingest") == []


@pytest.mark.parametrize("ext", ["npy", "fvecs", "f32"])
def test_fixed_record_files_into_a_branch_child(mount, store, store_copies, run_ctl, tmp_path,
                                                ext):
    """librvf streams into root stores only: into a branch child's mount a
    .npy/.fvecs/.f32 file is staged and imported at close, as before files
    streamed (the stream refused it: the cp failed)."""
    parent = store_copies(store, "branch-parent", dim=DIM, rows=[(1, [9, 9, 9, 9])])
    child = tmp_path / "child.rvf"
    run_ctl("branch", parent, child)
    m = mount(child)
    vecs = [_row(k) for k in range(3)]
    src = tmp_path / f"b.{ext}"
    {"npy": lambda: write_npy(src, vecs, DIM), "fvecs": lambda: write_fvecs(src, vecs),
     "f32": lambda: write_f32(src, vecs)}[ext]()
    e0 = epoch(m)
    m.sh(f'cp b.{ext} "$M/ingest/"')
    assert m.vector_ids() == [1, 2, 3, 4] and epoch(m) == e0 + 1
    check_vectors(m, [(2 + k, v) for k, v in enumerate(vecs)])


@pytest.mark.parametrize("other", ["stream", "fvecs", "staged"])
def test_files_streamed_at_once_both_commit(mount, store, run_ctl, tmp_path, other):
    """While a large .npy streams (a segment of its rows already in the
    store), another file goes in -- streamed too, or staged (rsync's hidden
    name, then the rename) -- and commits; then the first one commits as
    well: each has ids of its own, its rows in its own order (before, the
    later close was refused: both took ids after the same largest id)."""
    p = store(dim=DIM)
    m = mount(p)
    na, nb = 400_000, 10  # a: more than one 8 MiB segment of rows
    a = _npy_header((na, DIM)) + _npy_rows(0, na)
    (tmp_path / ".b.npy.tmp").write_bytes(_npy_header((nb, DIM)) + _npy_rows(1_000_000, nb))
    fa = open(m / "ingest/a.npy", "wb", buffering=0)
    half = len(a) * 9 // 10
    fa.write(a[:half])
    if other == "stream":
        m.sh('cp .b.npy.tmp "$M/ingest/b.npy"')
    elif other == "fvecs":
        write_fvecs(tmp_path / "b.fvecs", [_row(1_000_000 + k) for k in range(nb)])
        m.sh('cp b.fvecs "$M/ingest/"')
    else:
        m.sh('cp .b.npy.tmp "$M/ingest/.b.npy.tmp" && mv "$M/ingest/.b.npy.tmp" "$M/ingest/b.npy"')
    assert int(m.status()["vectors"]) == nb
    fa.write(a[half:])
    fa.close()
    assert int(m.status()["vectors"]) == na + nb
    m.unmount()
    # The store's rows in id order as npy bytes, not 410,000 JSON lines
    # (seconds of Python and of ASan rvfctl): the same ids and vectors,
    # compared bit for bit.
    out, ids = tmp_path / "all.npy", tmp_path / "all.ids"
    run_ctl("export", p, "--format", "npy", "-o", out, "--ids", ids)
    ids = [int(i) for i in ids.read_text().split()]
    assert ids == sorted(set(ids)) and len(ids) == na + nb
    raw = out.read_bytes()
    assert raw.startswith(_npy_header((na + nb, DIM)))
    body, stride = memoryview(raw)[len(_npy_header((na + nb, DIM))):], 4 * DIM
    firsts = array("f")
    firsts.frombytes(body)
    firsts = firsts[::DIM]
    # b's rows (first component >= 1,000,000) and, between them, a's: a's
    # runs of rows sliced whole instead of 400,000 one-row slices
    at_b = [r for r, v in enumerate(firsts) if v >= 1_000_000]
    got_b = b"".join(body[r * stride:(r + 1) * stride] for r in at_b)
    cuts = [-1] + at_b + [len(firsts)]
    got_a = b"".join(body[(x + 1) * stride:y * stride] for x, y in zip(cuts, cuts[1:]))
    assert got_a == _npy_rows(0, na)
    assert got_b == _npy_rows(1_000_000, nb)

def test_streamed_file_is_not_read_back_as_zeros(mount, tmp_path):
    """Reading an ingest/ file while it streams into the store fails with
    EINVAL and a message (its bytes are in the store, not in the staging
    file, which held zeros); the write still commits at the close.  A
    staged (text) file reads back what was written."""
    m = mount(tmp_path / "s.rvf", "create", f"dim={DIM}")
    data = _fvecs_rows(0, 10)
    fd = os.open(m / "ingest" / "r.fvecs", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert os.write(fd, data) == len(data)
        with pytest.raises(OSError) as e:
            os.pread(fd, len(data), 0)
        assert e.value.errno == errno.EINVAL
    finally:
        os.close(fd)
    assert "ingest/r.fvecs: not readable while written" in m.errors()
    assert m.status()["vectors"] == "10"
    assert m.read_vector(9) == [9.0] * DIM
    text = b"100,0.5,0.5,0.5,0.5\n"
    fd = os.open(m / "ingest" / "t.csv", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        assert os.write(fd, text) == len(text)
        assert os.pread(fd, 100, 0) == text
    finally:
        os.close(fd)
    assert m.status()["vectors"] == "11"
