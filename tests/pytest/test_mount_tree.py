"""rvffs mount: the root files (status, manifest, lineage, witness, errors)
and segments/ (one file per segment, exact bytes, xattrs, tar/rsync
stability, append-only behaviour, stable inodes)."""

import errno
import os
import re
import stat
import struct
import tarfile

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import (SEG_HEADER, crc_content_hash, make_store, parse_kv, run,
                      write_csv)

ROOT_ALWAYS = {"status", "manifest", "lineage", "witness", "errors", "query",
               "segments", "vectors", "ingest", "queries"}
STATUS_KEYS = ["dimension", "metric", "vectors", "deleted", "epoch", "segments",
               "file_size", "file_id", "parent_id", "lineage_depth", "read_only", "pid", "heap_bytes"]
SEG_NAME = re.compile(r"^(\d{4,})-([a-z0-9_-]+)$")


@pytest.fixture
def small(store, run_ctl):
    """A dim-4 store with 3 vectors (ids 1 2 5) written by rvfctl."""
    return make_store(run_ctl, store, dim=4,
                      rows=[(1, [1, 2, 3, 4]), (2, [2, 2, 2, 2]), (5, [0, 0, 0, 1])])


def segment_table(m):
    """[(name, offset, payload_length, type)] from the listing + xattrs."""
    out = []
    for name in m.ls("segments"):
        x = m.xattrs(f"segments/{name}")
        out.append((name, int(x["user.rvf.offset"]), int(x["user.rvf.payload_length"]),
                    x["user.rvf.type"]))
    return out


def manifest_entries(text):
    ents = []
    for ln in text.splitlines():
        if ln.startswith("entry:"):
            f = ln.split()
            assert len(f) == 6, f"manifest entry is not 'entry: POS ID TYPE OFFSET LENGTH': {ln!r}"
            ents.append((int(f[1]), int(f[2]), f[3], int(f[4]), int(f[5])))
    return ents


def snapshot_segments(m):
    """{name: (inode, bytes)} read with cat."""
    snap = {}
    for name in m.ls("segments"):
        p = m / "segments" / name
        snap[name] = (os.stat(p).st_ino, m.cat_bytes(f"segments/{name}"))
    return snap


# ------------------------------------------------------------------ root

def test_root_listing(mount, small):
    m = mount(small)
    names = set(m.ls())
    assert names >= ROOT_ALWAYS, f"root listing {sorted(names)}"
    for d in ("segments", "vectors", "ingest", "queries"):
        assert stat.S_ISDIR(os.stat(m / d).st_mode), d
    for f in ROOT_ALWAYS - {"segments", "vectors", "ingest", "queries"}:
        assert stat.S_ISREG(os.stat(m / f).st_mode), f
    # no kernel / eBPF in this store: absent, also to a direct lookup
    for f in ("kernel", "ebpf"):
        with pytest.raises(FileNotFoundError):
            os.stat(m / f)
    assert m.ls("ingest") == [] and m.ls("queries") == []


def test_status_fields(mount, small, ctl_json):
    before = ctl_json("status", small, "--json")
    m = mount(small)
    text = m.cat("status")
    keys = [ln.split(":", 1)[0] for ln in text.splitlines()]
    for k in STATUS_KEYS:
        assert k in keys, f"status lacks {k}:\n{text}"
    for ln in text.splitlines():
        assert re.match(r"^[a-z_]+: \S", ln), f"status line is not 'key: value': {ln!r}"
    st = parse_kv(text)
    assert st["dimension"] == "4"
    assert st["metric"] == "l2"
    assert st["vectors"] == "3"
    assert st["deleted"] == "0"
    assert int(st["epoch"]) == before["epoch"]
    assert st["file_size"] == str(os.path.getsize(small)) == str(before["fileSize"])
    assert st["file_id"] == before["fileId"]
    assert re.fullmatch(r"[0-9a-f]{32}", st["file_id"])
    assert st["parent_id"] == "0" * 32
    assert st["lineage_depth"] == "0"
    assert st["read_only"] == "false"
    assert int(st["pid"]) == m.pid
    assert int(st["segments"]) == len(m.ls("segments"))
    # st_size of a generated file is its exact length
    assert os.stat(m / "status").st_size == len(text.encode())


def test_status_follows_commits(mount, small, tmp_path):
    m = mount(small)
    st0 = m.status()
    write_csv(tmp_path / "more.csv", [(10, [1, 1, 1, 1]), (11, [2, 1, 1, 1])])
    m.sh('cp more.csv "$M/ingest/"')
    st1 = m.status()
    assert int(st1["vectors"]) == 5
    assert int(st1["epoch"]) == int(st0["epoch"]) + 1
    assert int(st1["file_size"]) == os.path.getsize(small) > int(st0["file_size"])
    assert int(st1["segments"]) == len(m.ls("segments"))
    # visible at once, durable at the next fsync (rvffs(1), DURABILITY)
    assert (st0["durable"], st1["durable"]) == ("yes", "no")
    m.sh('sync "$M/ingest"')
    st1 = m.status()
    assert st1["durable"] == "yes" and int(st1["epoch"]) == int(st0["epoch"]) + 1
    assert int(st1["file_size"]) == os.path.getsize(small)
    assert int(st1["segments"]) == len(m.ls("segments")) > int(st0["segments"])
    m.sh('rm "$M/vectors/10"')
    st2 = m.status()
    assert (st2["vectors"], st2["deleted"]) == ("4", "1")


def test_manifest_decoded(mount, small, ctl_json, tmp_path):
    m = mount(small)
    write_csv(tmp_path / "b.csv", [(7, [7, 7, 7, 7])])
    m.sh('cp b.csv "$M/ingest/" && rm "$M/vectors/2"')
    text = m.cat("manifest")
    kv = parse_kv(text)
    st = m.status()
    ents = manifest_entries(text)
    assert ents, text
    assert [e[0] for e in ents] == list(range(1, len(ents) + 1)), "positions are not 1..N"
    assert re.search(r"^directory: %d entries$" % len(ents), text, re.M), text
    assert kv["deleted"] == st["deleted"] == "1"
    assert kv["file_id"] == st["file_id"]
    assert kv["epoch"] == st["epoch"]
    assert kv["dimension"] == "4"
    assert os.stat(m / "manifest").st_size == len(text.encode())
    # entries are the segments in the store file: header at OFFSET, with
    # that id, type and payload length
    data = small.read_bytes()
    types = {1: "vec", 2: "index", 4: "journal", 5: "manifest", 7: "meta",
             0x0A: "witness", 0x0E: "kernel", 0x0F: "ebpf"}
    for pos, sid, typ, off, length in ents:
        hdr = data[off:off + SEG_HEADER]
        assert hdr[:4] == b"SFVR", (pos, hdr[:4])
        assert struct.unpack_from("<Q", hdr, 8)[0] == sid, (pos, sid)
        assert struct.unpack_from("<Q", hdr, 0x10)[0] == length, (pos, length)
        assert types.get(hdr[5], f"type-{hdr[5]:02x}") == typ, (pos, typ, hdr[5])
    # the newest manifest is at `offset:`
    moff = int(kv["offset"])
    assert types.get(data[moff + 5]) == "manifest"


def test_lineage_root(mount, small):
    m = mount(small)
    kv = parse_kv(m.cat("lineage"))
    st = m.status()
    assert kv["file_id"] == st["file_id"]
    assert kv["parent_id"] == "0" * 32
    assert kv["lineage_depth"] == "0"


def test_witness_one_line_per_entry(mount, small, tmp_path):
    m = mount(small)
    lines0 = [ln for ln in m.cat("witness").splitlines() if not ln.startswith("#")]
    # one witness per durable commit (here: each fsync)
    for i in range(3):
        write_csv(tmp_path / f"w{i}.csv", [(100 + i, [i, i, i, i])])
        m.sh(f'cp w{i}.csv "$M/ingest/" && sync "$M/ingest"')
    lines = [ln for ln in m.cat("witness").splitlines() if not ln.startswith("#")]
    assert len(lines) == len(lines0) + 3, lines
    assert lines[:len(lines0)] == lines0, "old witness lines changed"
    for ln in lines:
        f = ln.split(" ")
        assert len(f) == 4, f"witness line is not 'type time action link': {ln!r}"
        assert f[0] in ("computation", "provenance", "other"), ln
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", f[1]), ln
    # one entry per commit, naming what was done; within a session each
    # entry is chained to the previous one
    for ln in lines[len(lines0):]:
        assert "ingest" in ln.split(" ")[2], ln
        assert ln.split(" ")[3] in ("linked", "session-start", "unlinked"), ln
    for ln in lines[-2:]:
        assert ln.split(" ")[3] == "linked", ln
    # also one witness segment per entry
    nwit = sum(1 for n in m.ls("segments") if n.endswith("-witness"))
    assert nwit == len(lines)
    # changes between two durable commits share one witness per kind
    for i in range(3, 6):
        write_csv(tmp_path / f"w{i}.csv", [(100 + i, [i, i, i, i])])
        m.sh(f'cp w{i}.csv "$M/ingest/"')
    m.sh('rm "$M/vectors/100" "$M/vectors/101"; sync "$M/vectors"')
    more = [ln for ln in m.cat("witness").splitlines() if not ln.startswith("#")]
    assert [ln.split(" ")[2].split(",")[0] for ln in more[len(lines):]] == \
        ["ingest:count=3", "delete:count=2"], more


def test_errors_empty_then_lines(mount, small, tmp_path):
    m = mount(small)
    assert m.errors() == ""
    assert os.stat(m / "errors").st_size == 0
    (tmp_path / "bad.csv").write_text("1,2,3\n")
    assert m.sh('cp bad.csv "$M/ingest/"', check=False).returncode != 0
    e = m.errors()
    assert e.endswith("\n") and "bad.csv" in e
    assert os.stat(m / "errors").st_size == len(e.encode())


def test_root_files_are_read_only(mount, small):
    m = mount(small)
    for f in ("status", "manifest", "lineage", "witness", "errors"):
        with pytest.raises(PermissionError):
            open(m / f, "w")
    with pytest.raises(OSError) as e:
        os.unlink(m / "status")
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.mkdir(m / "newdir")
    assert e.value.errno == errno.EPERM


# ------------------------------------------------------------------ segments

def test_segments_listing_matches_manifest(mount, small, tmp_path):
    m = mount(small)
    # a few commits of different kinds: vectors, a delete (journal)
    write_csv(tmp_path / "b.csv", [(7, [7, 7, 7, 7])])
    m.sh('cp b.csv "$M/ingest/" && rm "$M/vectors/1" && sync "$M/vectors"')
    names = m.ls("segments")
    table = segment_table(m)
    ranks = []
    for name, off, length, typ in table:
        mo = SEG_NAME.match(name)
        assert mo, f"segment name {name!r} is not NNNN-TYPE"
        assert mo.group(2) == typ, f"{name}: user.rvf.type is {typ}"
        ranks.append(int(mo.group(1)))
    assert sorted(ranks) == list(range(1, len(names) + 1)), names
    by_rank = sorted(table, key=lambda t: int(t[0].split("-")[0]))
    offs = [t[1] for t in by_rank]
    assert offs == sorted(offs) and len(set(offs)) == len(offs), "not in file offset order"
    # the newest manifest's directory, the newest manifest, and what lies
    # between them (older sessions' manifests: rvfctl create + ingest made
    # two), back to back: the pieces add up to the file (restore by cat)
    text = m.cat("manifest")
    ents = manifest_entries(text)
    moff = int(parse_kv(text)["offset"])
    data = small.read_bytes()
    mlen = struct.unpack_from("<Q", data, moff + 0x10)[0]
    listed = sorted([(e[3], e[4], e[2]) for e in ents] + [(moff, mlen, "manifest")])
    got = sorted((off, length, typ) for _, off, length, typ in table)
    assert set(listed) <= set(got)
    others = sorted(set(got) - set(listed))
    assert [t[2] for t in others] == ["manifest", "manifest"], others
    pos = 0
    for off, length, _ in got:
        assert off == pos, f"the listing skips bytes {pos}..{off}"
        pos = off + 64 + length
    assert pos == len(data)
    assert by_rank[-1][1] == moff and by_rank[-1][3] == "manifest", \
        "the newest manifest is not the last segment"


def test_segment_bytes_and_xattrs(mount, small, tmp_path):
    m = mount(small)
    write_csv(tmp_path / "b.csv", [(7, [7, 7, 7, 7])])
    m.sh('cp b.csv "$M/ingest/"')
    data = small.read_bytes()
    assert m.ls("segments")
    for name in m.ls("segments"):
        rel = f"segments/{name}"
        x = m.xattrs(rel)
        assert set(x) >= {"user.rvf.type", "user.rvf.id", "user.rvf.offset",
                          "user.rvf.payload_length", "user.rvf.content_hash",
                          "user.rvf.hash_ok"}, x
        off, plen = int(x["user.rvf.offset"]), int(x["user.rvf.payload_length"])
        got = m.cat_bytes(rel)
        want = data[off:off + SEG_HEADER + plen]
        assert got == want, f"{name}: bytes differ from the store file at {off}"
        st = os.stat(m / rel)
        assert st.st_size == len(got), name
        assert st.st_blocks > 0 and st.st_blksize >= 65536, name
        assert stat.S_IMODE(st.st_mode) & 0o222 == 0, f"{name} is writable"
        assert int(x["user.rvf.id"]) == struct.unpack_from("<Q", got, 8)[0]
        assert x["user.rvf.content_hash"] == got[0x28:0x38].hex()
        assert x["user.rvf.content_hash"] == crc_content_hash(got[SEG_HEADER:]), name
        assert x["user.rvf.hash_ok"] == "true", name
        # one attribute at a time, as getfattr -n reads it
        assert m.getfattr(rel, "user.rvf.offset") == str(off)
    # hexdump of a segment shows its header bytes
    first = m.ls("segments")[0]
    hd = m.sh(f'hexdump -C "$M/segments/{first}" | head -1').stdout
    off = int(m.getfattr(f"segments/{first}", "user.rvf.offset"))
    assert hd.split("|")[0].split()[1:17] == [f"{b:02x}" for b in data[off:off + 16]]


def test_segments_are_immutable(mount, small):
    m = mount(small)
    name = m.ls("segments")[0]
    p = m / "segments" / name
    with pytest.raises(OSError) as e:
        open(p, "r+b")
    assert e.value.errno == errno.EACCES
    with pytest.raises(OSError) as e:
        os.unlink(p)
    assert e.value.errno == errno.EPERM
    assert m.sh(f'setfattr -n user.rvf.id -v 9 "$M/segments/{name}"', check=False).returncode != 0
    with pytest.raises(OSError) as e:
        os.rename(p, m / "segments" / "x")
    assert e.value.errno == errno.EPERM
    assert m.ls("segments")[0] == name


def test_tar_of_segments_is_reproducible(mount, small, tmp_path):
    m = mount(small)
    m.sh('tar -cf a.tar -C "$M" segments && tar -cf b.tar -C "$M" segments')
    a, b = (tmp_path / "a.tar").read_bytes(), (tmp_path / "b.tar").read_bytes()
    assert a == b, "two tar runs of segments/ differ"
    data = small.read_bytes()
    with tarfile.open(tmp_path / "a.tar") as t:
        members = [x for x in t.getmembers() if x.isfile()]
        assert sorted(os.path.basename(x.name) for x in members) == sorted(m.ls("segments"))
        for x in members:
            name = os.path.basename(x.name)
            off = int(m.getfattr(f"segments/{name}", "user.rvf.offset"))
            plen = int(m.getfattr(f"segments/{name}", "user.rvf.payload_length"))
            assert t.extractfile(x).read() == data[off:off + SEG_HEADER + plen], name


def test_rsync_of_segments_second_run_copies_nothing(mount, small, tmp_path):
    m = mount(small)
    m.sh('rsync -a "$M/segments/" copy/')
    assert sorted(os.listdir(tmp_path / "copy")) == sorted(m.ls("segments"))
    out = m.sh('rsync -a --itemize-changes --stats "$M/segments/" copy/').stdout
    assert re.search(r"Number of regular files transferred: 0\b", out), out
    changed = [ln for ln in out.splitlines() if re.match(r"^[<>ch.*][fdLDS]", ln)
               and not ln.startswith(".d")]
    assert changed == [], f"second rsync changed: {changed}"
    for name in m.ls("segments"):
        assert (tmp_path / "copy" / name).read_bytes() == m.cat_bytes(f"segments/{name}")


def test_commit_adds_segments_keeps_existing(mount, small, tmp_path):
    m = mount(small)
    write_csv(tmp_path / "a.csv", [(20, [1, 0, 0, 0])])
    # durable segments never change (one not durable yet may grow until
    # the next sync: rvffs(1), DURABILITY)
    m.sh('cp a.csv "$M/ingest/" && sync "$M/ingest"')
    newest_manifest = max(m.ls("segments"), key=lambda n: int(n.split("-")[0]))
    before = snapshot_segments(m)
    write_csv(tmp_path / "b.csv", [(21, [2, 0, 0, 0]), (22, [3, 0, 0, 0])])
    m.sh('cp b.csv "$M/ingest/" && rm "$M/vectors/20"')
    after = snapshot_segments(m)
    assert len(after) > len(before)
    for name, (ino, data) in before.items():
        if name == newest_manifest and name not in after:
            continue  # a superseded manifest need not stay in the directory
        assert name in after, f"{name} disappeared after a commit"
        assert after[name] == (ino, data), f"{name} changed (inode or bytes)"
    new = set(after) - set(before)
    assert any(n.endswith("-vec") for n in new) and any(n.endswith("-journal") for n in new)
    # segments keep their size and inode in stat too
    for name, (ino, data) in before.items():
        if name in after:
            st = os.stat(m / "segments" / name)
            assert (st.st_ino, st.st_size) == (ino, len(data))


def test_segment_inodes_stable_across_remount(mount, small, tmp_path):
    m = mount(small)
    write_csv(tmp_path / "a.csv", [(20, [1, 0, 0, 0])])
    m.sh('cp a.csv "$M/ingest/" && sync "$M/ingest"')
    inos = {n: os.stat(m / "segments" / n).st_ino for n in m.ls("segments")}
    readdir_inos = dict(ln.split()[::-1] for ln in
                        m.sh('ls -1i "$M/segments"').stdout.splitlines())
    assert {n: int(i) for n, i in readdir_inos.items()} == inos, "readdir and stat inodes differ"
    m.unmount()
    m2 = mount(small)
    inos2 = {n: os.stat(m2 / "segments" / n).st_ino for n in m2.ls("segments")}
    assert inos2 == inos
    assert len(set(inos.values())) == len(inos), "segment inodes are not unique"


def test_directory_stat_and_statfs(mount, small):
    m = mount(small)
    for d in ("", "segments", "vectors", "ingest", "queries"):
        st = os.stat(m / d)
        assert stat.S_ISDIR(st.st_mode)
    sv = os.statvfs(m.path)
    assert sv.f_bsize > 0
    out = run(["stat", "-f", "-c", "%T", str(m.path)]).stdout.strip()
    assert "fuse" in out, out
