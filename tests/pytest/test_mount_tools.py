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

from mountlib import mount, rvffs, world_dir  # noqa: F401  (fixtures)
from mountlib import make_store, int_rows, run_as_nobody, need_root
from mountlib import write_jsonl


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
        text = m.cat(f"vectors/{i}")
        assert text == " ".join(shortest_g(x) for x in vec) + "\n", i
        assert listed[i] == entries[i] == len(text.encode()) == os.path.getsize(m / "vectors" / str(i))


def test_sizes_follow_a_rewrite(mount, store, run_ctl):
    """The per-snapshot size cache never serves a stale length."""
    p = make_store(run_ctl, store, dim=4, rows=int_rows(3, 4))
    m = mount(p)
    before = os.path.getsize(m / "vectors" / "2")
    m.sh('echo "0.123456789 1e-20 3.000001 4" > "$M/vectors/2"')
    text = m.cat("vectors/2")
    assert text == " ".join(shortest_g(f32(x)) for x in (0.123456789, 1e-20, 3.000001, 4)) + "\n"
    assert os.path.getsize(m / "vectors" / "2") == len(text) != before
    assert {int(ln.split()[-1]): int(ln.split()[4])
            for ln in m.sh('ls -ln "$M/vectors"').stdout.splitlines()[1:]}[2] == len(text)


@pytest.mark.parametrize("name", ["security.selinux", "security.capability",
                                  "system.posix_acl_access", "system.posix_acl_default"])
def test_security_and_acl_probes_are_unsupported(mount, store, run_ctl, name):
    """EOPNOTSUPP (not ENODATA), so ls/cp stop asking after the first file;
    the user.rvf.* attributes are unaffected."""
    p = make_store(run_ctl, store, dim=4, rows=int_rows(2, 4))
    m = mount(p)
    for rel in ("vectors/1", "segments", "status", ""):
        with pytest.raises(OSError) as ei:
            os.getxattr(m / rel, name, follow_symlinks=False)
        assert ei.value.errno == errno.EOPNOTSUPP, rel
    assert os.getxattr(m / "segments" / m.ls("segments")[0], "user.rvf.type")
    with pytest.raises(OSError) as ei:
        os.getxattr(m / "vectors" / "1", "user.rvf.meta.nothing")
    assert ei.value.errno == errno.ENODATA


def meta_store(run_ctl, store, tmp_path):
    rows = [(i, [float(i), 0.5, -1.25, 1e-7]) for i in range(1, 21)]
    # "n": "7" is a string: the tree (which keeps no types) would show 7
    meta = [{"color": "red" if i % 2 else "blue", "n": str(i), "w": i / 4} for i, _ in rows]
    p = store(dim=4)
    run_ctl("ingest", p, write_jsonl(tmp_path / "m.jsonl", rows, meta))
    return p


@pytest.mark.parametrize("opts", [(), ("ro",)])
def test_export_through_the_mount_is_the_file_export(mount, store, run_ctl, tmp_path, opts):
    p = meta_store(run_ctl, store, tmp_path)
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
def copy_store(run_ctl, store, tmp_path):
    p = meta_store(run_ctl, store, tmp_path)
    (tmp_path / "k.img").write_bytes(b"K" * 5000)
    run_ctl("embed-kernel", p, tmp_path / "k.img")
    return p


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
