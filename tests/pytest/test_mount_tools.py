"""Standard tools on a mount (issue 13): `ls -l` sizes from READDIRPLUS,
the security/ACL probes answered "unsupported", vector text exactly as
before the fast float printer, and rvfctl export through a mount equal to
the export of the file (it reads the file when it may)."""

import errno
import json
import os
import random
import struct
import subprocess

import pytest

from mountlib import mount, rvffs, store_copies, world_dir  # noqa: F401  (fixtures)
from mountlib import make_store, int_rows, run_as_nobody, need_root
from mountlib import write_csv, write_jsonl, wait_for


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def shortest_g(x):
    """The vector file's number: "%.Pg" with the smallest P in 6..9 that
    reads back as the same float32 (Python's %g is correctly rounded, as
    glibc's printf)."""
    for p in range(6, 10):
        s = "%.*g" % (p, x)
        if f32(float(s)) == x or x != x:
            return s
    return s


def tricky_floats(rng, n):
    """Floats across every range the printer treats differently: the exact
    integer path ([2^-30, 2^24)), printf's (tiny, huge, subnormal, zero),
    values at decimal rounding ties and powers of ten."""
    out = [0.0, 1.0, -1.0, 0.5, 0.1, 1 / 3, 123456.0, 1234567.0, 16777215.0,
           16777216.0, 2.0 ** -30, 2.0 ** -31, 1e-10, 1e-45, 1.4e-45, 1e-38, 3.4e38,
           1e10, 9.999999e-5, 1e-4, 1e-5, 100000.0, 999999.5, 0.000123456789]
    out = [f32(x) for x in out]
    while len(out) < n:
        kind = rng.randrange(4)
        if kind == 0:
            bits = rng.getrandbits(32)
            x = struct.unpack("<f", struct.pack("<I", bits))[0]
            if x != x or x in (float("inf"), float("-inf")):
                continue
        elif kind == 1:
            x = f32(rng.uniform(-1, 1))
        elif kind == 2:
            x = f32(rng.randint(-10 ** 7, 10 ** 7) / 10 ** rng.randint(0, 9))
        else:
            x = f32(rng.uniform(-1, 1) * 2.0 ** rng.randint(-40, 30))
        out.append(f32(x))
    return out


def test_vector_text_and_sizes_from_the_listing(mount, store, run_ctl):
    """Every vector file's size in `ls -l` (READDIRPLUS) and stat equals its
    bytes, and the bytes are the shortest round-tripping %g numbers."""
    rng = random.Random(13)
    dim = 8
    xs = tricky_floats(rng, 60 * dim)
    rows = [(i + 1, xs[i * dim:(i + 1) * dim]) for i in range(60)]
    p = make_store(run_ctl, store, dim=dim, rows=rows)
    m = mount(p)
    listed = {}
    for line in m.sh('ls -ln "$M/vectors"').stdout.splitlines()[1:]:
        f = line.split()
        listed[int(f[-1])] = int(f[4])
    assert sorted(listed) == [i for i, _ in rows]
    with os.scandir(m / "vectors") as it:
        entries = {int(e.name): e.stat().st_size for e in it}
    for i, vec in rows:
        text = m.read(f"vectors/{i}").decode()  # read to the end, as cat: no process per file
        assert text == " ".join(shortest_g(x) for x in vec) + "\n", i
        assert listed[i] == entries[i] == len(text.encode()) == os.path.getsize(m / "vectors" / str(i))


def listed_sizes(m):
    return {int(ln.split()[-1]): int(ln.split()[4])
            for ln in m.sh('ls -ln "$M/vectors"').stdout.splitlines()[1:]}


def test_listing_sizes_many_vectors_in_batches(mount, store, run_ctl):
    """A READDIRPLUS sizes its whole batch at once, split over the CPUs:
    with thousands of vectors (several batches and tasks), some already
    sized by a stat and some rewritten after a first listing, every size
    `ls -l` shows is the length of the file's text."""
    rng = random.Random(1313)
    dim = 16
    n = 6000
    xs = tricky_floats(rng, n * dim)
    rows = [(3 * i + 1, xs[i * dim:(i + 1) * dim]) for i in range(n)]
    p = make_store(run_ctl, store, dim=dim, rows=rows)
    m = mount(p)
    want = {i: len((" ".join(shortest_g(x) for x in vec) + "\n").encode()) for i, vec in rows}
    for i, _ in rng.sample(rows, 40):  # sized one by one before the listing
        assert os.path.getsize(m / "vectors" / str(i)) == want[i]
    assert listed_sizes(m) == want
    for i, _ in rng.sample(rows, 20):
        assert len(m.cat_bytes(f"vectors/{i}")) == want[i]
    # a new view: rewritten and added vectors, then a listing again
    m.sh('echo "0.123456789 1e-20 3.000001 4 5 6 7 8 9 10 11 12 13 14 15 16" > "$M/vectors/4"')
    m.sh('echo "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16" > "$M/vectors/2"')
    want[4] = len(m.cat_bytes("vectors/4"))
    want[2] = len("1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n")
    assert listed_sizes(m) == want


def test_sizes_follow_a_rewrite(mount, store, store_copies):
    """The per-snapshot size cache never serves a stale length."""
    p = store_copies(store, "ints3", dim=4, rows=int_rows(3, 4))
    m = mount(p)
    before = os.path.getsize(m / "vectors" / "2")
    m.sh('echo "0.123456789 1e-20 3.000001 4" > "$M/vectors/2"')
    text = m.cat("vectors/2")
    assert text == " ".join(shortest_g(f32(x)) for x in (0.123456789, 1e-20, 3.000001, 4)) + "\n"
    assert os.path.getsize(m / "vectors" / "2") == len(text) != before
    assert {int(ln.split()[-1]): int(ln.split()[4])
            for ln in m.sh('ls -ln "$M/vectors"').stdout.splitlines()[1:]}[2] == len(text)


def daemon_requests(log, ino):
    """Opcodes the daemon's debug log (-o debug) shows for inode ino."""
    ops = []
    for line in log.read_text(errors="replace").splitlines():
        if "opcode:" in line and f"nodeid: {ino}," in line:
            ops.append(line.split("opcode: ")[1].split()[0])
    return ops


def test_vector_files_are_cached_by_the_kernel(mount, store, store_copies):
    """A vector file is read once: a second `cat` (and stat) of an unchanged
    vector is answered by the kernel's caches (no LOOKUP, READ or GETATTR
    reaches the daemon; it sees only the open and the release), and the
    kernel knows the size, so no read is spent to find the end."""
    p = store_copies(store, "ints3", dim=4, rows=int_rows(3, 4))
    m = mount.foreground(p, "debug")
    ino = os.stat(m / "vectors" / "2").st_ino
    want = m.cat("vectors/2")
    assert daemon_requests(m.log, ino).count("READ") == 1
    before = len(daemon_requests(m.log, ino))
    for _ in range(3):
        assert m.sh('cat "$M/vectors/2"; stat -c %s "$M/vectors/2"').stdout == \
            want + f"{len(want)}\n"
    later = daemon_requests(m.log, ino)[before:]
    # the first stat after a read fetches the attributes once: a read
    # through the page cache makes the kernel forget the atime
    assert [op for op in later if op not in ("OPEN", "RELEASE")] in ([], ["GETATTR"]), later
    assert later.count("OPEN") == 3


def test_cached_vector_files_follow_changes(mount, store, run_ctl, tmp_path):
    """What the kernel keeps of a vector file is dropped when the vector
    changes under the same name: rows for existing ids ingested through
    ingest/ (same length and another length), a vector file rewritten in
    place, and a read-only mount beside the writer."""
    rows = int_rows(4, 4)
    p = make_store(run_ctl, store, dim=4, rows=rows)
    m = mount(p)
    r = mount(p, "ro")
    for i in (1, 2, 3, 4):  # into both kernels' caches
        m.cat(f"vectors/{i}")
        r.cat(f"vectors/{i}")
        os.stat(m / "vectors" / str(i))

    def same_len(v):  # other numbers, the same text length
        return [(-x if x else 1.0) for x in v] if all(x != 0 for x in v) else \
            [9.0 if x == 0 else x for x in v]
    one = [0.123456789, 1e-20, 3.000001, 4.0]
    write_csv(tmp_path / "r.csv", [(1, one), (2, [x + 0.0 for x in rows[1][1][::-1]])])
    m.sh(f'cp "{tmp_path}/r.csv" "$M/ingest/"')
    text1 = " ".join(shortest_g(f32(x)) for x in one) + "\n"
    text2 = " ".join(shortest_g(f32(x)) for x in rows[1][1][::-1]) + "\n"
    assert m.cat("vectors/1") == text1
    assert os.path.getsize(m / "vectors" / "1") == len(text1)
    assert m.cat("vectors/2") == text2
    assert m.cat("vectors/4") == " ".join(shortest_g(f32(x)) for x in rows[3][1]) + "\n"
    new3 = same_len(rows[2][1])
    text3 = " ".join(shortest_g(f32(x)) for x in new3) + "\n"
    m.sh('echo "%s" > "$M/vectors/3"' % " ".join(str(x) for x in new3))
    assert m.cat("vectors/3") == text3
    assert m.sh('ls -ln "$M/vectors" | awk \'$NF == 1 {print $5}\'').stdout == f"{len(text1)}\n"
    # the read-only mount follows the writer's commits (it checks the
    # store at most once a second, when asked)
    m.sh('sync "$M"')
    assert wait_for(lambda: r.cat("vectors/1") == text1 and r.cat("vectors/3") == text3, 20), \
        (r.cat("vectors/1"), r.cat("vectors/3"))
    assert os.path.getsize(r / "vectors" / "1") == len(text1)


@pytest.mark.parametrize("name", ["security.selinux", "security.capability",
                                  "system.posix_acl_access", "system.posix_acl_default"])
def test_security_and_acl_probes_are_unsupported(mount, store, store_copies, name):
    """EOPNOTSUPP (not ENODATA), so ls/cp stop asking after the first file;
    the user.rvf.* attributes are unaffected."""
    p = store_copies(store, "ints2", dim=4, rows=int_rows(2, 4))
    m = mount(p)
    for rel in ("vectors/1", "segments", "status", ""):
        with pytest.raises(OSError) as ei:
            os.getxattr(m / rel, name, follow_symlinks=False)
        assert ei.value.errno == errno.EOPNOTSUPP, rel
    assert os.getxattr(m / "segments" / m.ls("segments")[0], "user.rvf.type")
    with pytest.raises(OSError) as ei:
        os.getxattr(m / "vectors" / "1", "user.rvf.meta.nothing")
    assert ei.value.errno == errno.ENODATA


META_ROWS = [(i, [float(i), 0.5, -1.25, 1e-7]) for i in range(1, 21)]
# "n": "7" is a string: the tree (which keeps no types) would show 7
META = [{"color": "red" if i % 2 else "blue", "n": str(i), "w": i / 4} for i, _ in META_ROWS]


def meta_store(store_copies, store):
    """rvfctl create, then ingest of META_ROWS with META as .jsonl: made
    once per module, copied."""
    return store_copies(store, "meta", dim=4, rows=META_ROWS, metadata=META)


@pytest.mark.parametrize("opts", [(), ("ro",)])
def test_export_through_the_mount_is_the_file_export(mount, store, store_copies, run_ctl,
                                                     tmp_path, opts):
    p = meta_store(store_copies, store)
    m = mount(p, *opts)
    if not opts:
        # a change made through the tree is in the export at once
        m.sh('echo "9 9 9 9" > "$M/vectors/99"')
    for fmt in ("jsonl", "json", "csv", "fvecs"):
        run_ctl("export", m.path, "--format", fmt, "-o", tmp_path / f"m.{fmt}")
        run_ctl("export", p, "--format", fmt, "-o", tmp_path / f"f.{fmt}")
        assert (tmp_path / f"m.{fmt}").read_bytes() == (tmp_path / f"f.{fmt}").read_bytes(), fmt
    first = json.loads((tmp_path / "m.jsonl").read_text().splitlines()[6])
    assert first["metadata"]["n"] == "7"  # the file's types, not the tree's guess
    if not opts:
        assert (tmp_path / "m.csv").read_text().splitlines()[-1] == "99,9,9,9,9"


def test_export_falls_back_to_the_tree(mount, run_ctl, rvfctl, world_dir):  # noqa: F811
    """A caller who may not read the store file gets the tree's export."""
    need_root()
    target = world_dir / "s.rvf"
    run_ctl("create", target, "--dim", 4)
    run_ctl("ingest", target, write_jsonl(world_dir / "rows.jsonl", int_rows(5, 4)))
    os.chmod(target, 0o600)
    mnt = world_dir / "mnt"
    mnt.mkdir()
    m = mount(target, "allow_other", mnt=mnt)
    want = run_ctl("export", target, "--format", "csv").stdout
    r = run_as_nobody([rvfctl, "export", m.path, "--format", "csv"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == want


# ------------------------------------------------------------ whole-tree copies

def tree_files(root):
    """{relative path: bytes} of every regular file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[os.path.relpath(p, root)] = open(p, "rb").read()
    return out


@pytest.fixture
def copy_store(run_ctl, store, store_copies):
    """meta_store's store with a kernel embedded (rvfctl embed-kernel):
    made once per module, copied."""
    def embed(p):
        img = p.parent / "k.img"
        img.write_bytes(b"K" * 5000)
        run_ctl("embed-kernel", p, img)
    return store_copies(store, "meta+kernel", dim=4, rows=META_ROWS, metadata=META,
                        finish=embed)


@pytest.mark.parametrize("opts", [(), ("ro",)], ids=["rw", "ro"])
def test_tar_rsync_cp_of_the_whole_tree(mount, copy_store, tmp_path, opts):
    """tar, rsync -a and cp -a of the mount's root exit 0 and copy every
    file as the mount shows it; a second rsync -a copies nothing."""
    m = mount(copy_store, *opts)
    want = tree_files(m.path)
    assert "control" in want and want["control"] == b""
    assert want["kernel"] == b"K" * 5000
    assert len([k for k in want if k.startswith("vectors/")]) == 20
    assert any(k.startswith("segments/") for k in want)

    tar = tmp_path / "t.tar"
    r = subprocess.run(["tar", "cf", str(tar), "-C", str(m.path), "."],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (tmp_path / "untar").mkdir()
    subprocess.run(["tar", "xf", str(tar), "-C", str(tmp_path / "untar")], check=True)
    assert tree_files(tmp_path / "untar") == want

    r = subprocess.run(["rsync", "-a", f"{m.path}/", str(tmp_path / "rs")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert tree_files(tmp_path / "rs") == want
    again = subprocess.run(["rsync", "-a", "--itemize-changes", f"{m.path}/",
                            str(tmp_path / "rs")], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    changed = again.stdout.splitlines()
    assert changed == [], f"a second rsync -a copied again: {changed}"

    r = subprocess.run(["cp", "-a", str(m.path), str(tmp_path / "cp")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert tree_files(tmp_path / "cp") == want
    # the copies changed nothing
    assert tree_files(m.path) == want


@pytest.mark.parametrize("opts", [(), ("ro",)], ids=["rw", "ro"])
def test_query_file_stat_is_what_its_reader_reads(mount, copy_store, tmp_path, opts):
    """The query file's content is the reader's own last results, and so are
    its size and mtime: tar and rsync copy exactly what cat shows, and a
    second rsync -a after the query copies nothing."""
    m = mount(copy_store, *opts)
    assert os.stat(m / "query").st_size == 0  # no results yet
    results = m.sh('echo "k=3 1,2,3,4" > "$M/query"; cat "$M/query"').stdout
    assert results.count("\n") == 3
    st = os.stat(m / "query")
    assert st.st_size == len(results.encode()) == len(m.cat_bytes("query"))
    assert m.sh('stat -c %s "$M/query"').stdout == f"{len(results.encode())}\n"

    r = subprocess.run(["rsync", "-a", f"{m.path}/", str(tmp_path / "rs")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "rs" / "query").read_text() == results
    again = subprocess.run(["rsync", "-a", "--itemize-changes", f"{m.path}/",
                            str(tmp_path / "rs")], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines() == [], "a second rsync -a copied again"
    tar = subprocess.run(["tar", "cf", "-", "-C", str(m.path), "query"],
                         capture_output=True)
    assert tar.returncode == 0, tar.stderr
    assert results.encode() in tar.stdout
    # a newer result is a newer, other file
    m.sh('echo "k=1 1,2,3,4" > "$M/query"')
    newer = subprocess.run(["rsync", "-a", "--itemize-changes", f"{m.path}/",
                            str(tmp_path / "rs")], capture_output=True, text=True)
    assert [ln.split()[-1] for ln in newer.stdout.splitlines()] == ["query"]
    assert (tmp_path / "rs" / "query").read_text().count("\n") == 1
