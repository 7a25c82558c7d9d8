"""rvffs mount: durability (kill -9 after a write, remount), attributes
(st_size, st_blocks, st_blksize), parallel queries while ingesting,
read-only mounts, damaged stores."""

import errno
import os
import stat
import subprocess
import threading

import pytest

from mountlib import mount, rvffs, store_copies  # noqa: F401  (fixtures)
from mountlib import (SEG_HEADER, assert_sorted_group, fmt_vec, int_rows, knn,
                      parse_results, write_csv)

DIM = 4


@pytest.fixture
def base(store, store_copies):
    # rvfctl makes it once per module; each test gets a copy of its own
    rows = int_rows(30, DIM, start=1, seed=3)
    return store_copies(store, "base", dim=DIM, rows=rows), dict(rows)


# ------------------------------------------------------------------ durability

def test_writes_survive_kill9(mount, base, tmp_path):
    p, vecs = base
    m = mount(p)
    write_csv(tmp_path / "a.csv", [(200, [1, 2, 3, 4]), (201, [4, 3, 2, 1])])
    m.sh('cp a.csv "$M/ingest/"')
    m.sh('echo "7 7 7 7" > "$M/vectors/300"')
    m.sh('rm "$M/vectors/5"')
    (tmp_path / "img").write_bytes(b"\x7fELF" + bytes(range(256)) * 4)
    m.sh('cp img "$M/kernel"')
    m.sh('setfattr -n user.rvf.kernel.api_port -v 4242 "$M/kernel"')
    # durable at the fsync of any file or directory of the mount (rvffs(1),
    # DURABILITY): sync(1) of a directory, then kill at once, no unmount
    m.sh('sync "$M/vectors"')
    pid = m.pid
    m.kill9()
    assert m.lock.exists(), "expected the killed daemon's lock to be left behind"
    # the stale lock of a dead pid does not block the remount
    m2 = mount(p)
    assert m2.pid != pid
    ids = m2.vector_ids()
    assert 200 in ids and 201 in ids and 300 in ids and 5 not in ids
    assert m2.read_vector(201) == [4, 3, 2, 1]
    assert m2.read_vector(300) == [7, 7, 7, 7]
    assert m2.cat_bytes("kernel") == (tmp_path / "img").read_bytes()
    assert m2.getfattr("kernel", "user.rvf.kernel.api_port") == "4242"
    assert m2.status()["vectors"] == str(len(vecs) + 3 - 1)


def test_kill9_during_idle_keeps_everything(mount, base, ref):
    """After a kill -9 the file is a valid store for the reference too."""
    p, vecs = base
    m = mount(p)
    m.sh('echo "1 1 1 1" > "$M/vectors/77" && sync "$M/vectors/77"')
    m.sh('echo "2 2 2 2" > "$M/vectors/78"')  # not fsynced: may be lost, whole
    m.kill9()
    d = ref.dump(p)
    assert d["openError"] is None
    assert 77 in d["all_ids"]
    extra = 1 if 78 in d["all_ids"] else 0
    assert d["liveCount"] == len(vecs) + 1 + extra


# ------------------------------------------------------------------ attributes

def test_sizes_blocks_blksize(mount, base, tmp_path):
    p, vecs = base
    m = mount(p)
    (tmp_path / "img").write_bytes(b"k" * 3000)
    m.sh('cp img "$M/kernel" && cp img "$M/ebpf" && mkdir "$M/queries/s" && '
         'echo "1 2 3 4" > "$M/queries/s/request"')
    (tmp_path / "bad.csv").write_text("1\n")
    m.sh('cp bad.csv "$M/ingest/"', check=False)  # something in errors
    files = ["status", "manifest", "lineage", "witness", "errors", "kernel", "ebpf",
             "queries/s/result", "queries/s/request"]
    files += [f"segments/{n}" for n in m.ls("segments")]
    files += [f"vectors/{i}" for i in list(vecs)[:5]]
    for rel in files:
        data = m.cat_bytes(rel)
        st = os.stat(m / rel)
        assert stat.S_ISREG(st.st_mode), rel
        assert st.st_size == len(data), f"{rel}: st_size {st.st_size}, content {len(data)}"
        if data:
            assert st.st_blocks > 0, f"{rel}: st_blocks is 0"
            assert st.st_blocks * 512 >= st.st_size, rel
        assert st.st_blksize >= 65536, f"{rel}: st_blksize {st.st_blksize}"
    # the shell view agrees (stat -c)
    out = m.sh('stat -c "%s %b %o" "$M/status"').stdout.split()
    assert int(out[0]) == len(m.cat_bytes("status")) and int(out[1]) > 0 and int(out[2]) >= 65536
    # ls -l shows the same sizes as wc -c
    wc = m.sh('wc -c < "$M/manifest"').stdout.strip()
    ls = m.sh('ls -l "$M/manifest"').stdout.split()[4]
    assert wc == ls


def test_status_changes_size_between_opens(mount, base, tmp_path):
    """Generated files are complete at open: reading after a commit gives
    the new text whole (no truncation to the old size)."""
    p, vecs = base
    m = mount(p)
    a = m.cat("manifest")
    for k in range(3):
        m.sh(f'echo "{k} {k} {k} {k}" > "$M/vectors/{1000 + k}"')
    b = m.cat("manifest")
    assert len(b) > len(a) and b.endswith("\n")
    assert os.stat(m / "manifest").st_size == len(b.encode())


# ------------------------------------------------------------------ concurrency

def test_parallel_queries_while_ingesting(mount, base, tmp_path):
    p, vecs = base
    m = mount(p, "threads=2")
    batches = []
    for b in range(8):
        rows = [(100 + 5 * b + j, [float((b * 7 + j * 3) % 11 - 5), float(j - b), 1.0,
                                   float(b % 3)]) for j in range(5)]
        write_csv(tmp_path / f"b{b}.csv", rows)
        batches.append(rows)
    # the answers allowed at any moment: those of one committed prefix
    snapshots = []
    acc = dict(vecs)
    queries = [[0, 0, 0, 0], [1, -1, 1, 0], [-3, 2, 0, 1]]
    snapshots.append(dict(acc))
    for rows in batches:
        acc.update(rows)
        snapshots.append(dict(acc))
    allowed = {tuple(q): [knn(s, q, 5) for s in snapshots] for q in queries}
    final_ids = set(acc)

    errors = []
    stop = threading.Event()

    def check(q, text, who):
        groups = parse_results(text)
        if len(groups) != 1:
            errors.append(f"{who}: {len(groups)} groups: {text!r}")
            return
        g = groups[0]
        got = [(i, d) for i, d, _ in g]
        if not set(i for i, _ in got) <= final_ids:
            errors.append(f"{who}: unknown ids in {got}")
        try:
            assert_sorted_group(g, who)
        except AssertionError as e:
            errors.append(str(e))
        if got not in allowed[tuple(q)]:
            errors.append(f"{who}: {got} is the answer of no committed state")

    def query_thread(n):
        k = 0
        while not stop.is_set() or k < 15:
            q = queries[(n + k) % len(queries)]
            fd = os.open(m / "query", os.O_RDWR)
            try:
                os.write(fd, f"k=5 {fmt_vec(q)}\n".encode())
                out = b""
                while True:
                    c = os.read(fd, 65536)
                    if not c:
                        break
                    out += c
            except OSError as e:
                errors.append(f"thread {n}: {e}")
                break
            finally:
                os.close(fd)
            check(q, out.decode(), f"thread {n}")
            k += 1

    threads = [threading.Thread(target=query_thread, args=(n,)) for n in range(3)]
    # two shell processes using their own queries/ slot
    script = ('mkdir "$M/queries/p$1"; for i in $(seq 1 25); do '
              'echo "k=5 $2" > "$M/queries/p$1/request" || exit 1; '
              'cat "$M/queries/p$1/result"; echo "--"; done')
    procs = [subprocess.Popen(["bash", "-c", script, "x", str(n), fmt_vec(queries[n])],
                              env=m.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for n in range(2)]
    for t in threads:
        t.start()
    # the ingest side: one cp per batch, meanwhile status/ls must be consistent
    counts = {len(s) for s in snapshots}
    for b in range(len(batches)):
        m.sh(f'cp b{b}.csv "$M/ingest/"')
        n = int(m.status()["vectors"])
        if n not in counts:
            errors.append(f"status shows {n} vectors, no committed state has that many")
        listed = len(m.ls("vectors"))
        if listed not in counts:
            errors.append(f"vectors/ lists {listed}")
    stop.set()
    for t in threads:
        t.join(60)
    for n, pr in enumerate(procs):
        out, err = pr.communicate(timeout=60)
        assert pr.returncode == 0, err
        chunks = out.split("--\n")[:-1]
        assert len(chunks) == 25
        for c in chunks:
            check(queries[n], c, f"process {n}")
    assert not errors, "\n".join(errors[:20])
    assert m.vector_ids() == sorted(final_ids)


def test_parallel_ingest_from_several_processes(mount, tmp_path):
    m = mount(tmp_path / "pi.rvf", "create", f"dim={DIM}")
    for w in range(4):
        write_csv(tmp_path / f"w{w}.csv", [(w * 100 + j, [w, j, 0, 0]) for j in range(20)])
    procs = [subprocess.Popen(["bash", "-c", f'cp w{w}.csv "$M/ingest/w{w}.csv"'],
                              env=m.env(), cwd=tmp_path, stderr=subprocess.PIPE, text=True)
             for w in range(4)]
    for pr in procs:
        _, err = pr.communicate(timeout=60)
        assert pr.returncode == 0, err
    ids = m.vector_ids()
    assert ids == sorted(w * 100 + j for w in range(4) for j in range(20))
    assert m.ls("ingest") == []
    for w in range(4):
        assert m.read_vector(w * 100 + 7) == [w, 7, 0, 0]


# ------------------------------------------------------------------ read-only

def test_read_only_mount_rejects_writes(mount, base, run_ctl, tmp_path):
    p, vecs = base
    (tmp_path / "img").write_bytes(b"x" * 100)
    run_ctl("embed-kernel", p, tmp_path / "img")
    size = os.path.getsize(p)
    data = p.read_bytes()
    m = mount(p, "ro")
    assert not m.lock.exists(), "a read-only mount took the lock"
    assert m.status()["read_only"] == "true"
    write_csv(tmp_path / "a.csv", [(500, [1, 1, 1, 1])])
    checks = {
        "cp ingest": 'cp a.csv "$M/ingest/"',
        "rm vector": 'rm "$M/vectors/1"',
        "write vector": 'echo "1 2 3 4" > "$M/vectors/1"',
        "new vector": 'echo "1 2 3 4" > "$M/vectors/999"',
        "cp kernel": 'cp img "$M/kernel"',
        "rm kernel": 'rm "$M/kernel"',
        "setfattr kernel": 'setfattr -n user.rvf.kernel.arch -v 2 "$M/kernel"',
        "setfattr meta": 'setfattr -n user.rvf.meta.x -v 1 "$M/vectors/1"',
        "touch": 'touch "$M/ingest/t.csv"',
    }
    for what, cmd in checks.items():
        r = m.sh(cmd, check=False)
        assert r.returncode != 0, f"{what} succeeded on a read-only mount"
        assert "Read-only file system" in r.stderr, f"{what}: {r.stderr}"
    for path, flags in ((m / "vectors" / "1", os.O_WRONLY), (m / "kernel", os.O_WRONLY),
                        (m / "ingest" / "x.csv", os.O_WRONLY | os.O_CREAT)):
        with pytest.raises(OSError) as e:
            os.open(path, flags, 0o644)
        assert e.value.errno == errno.EROFS, path
    with pytest.raises(OSError) as e:
        os.unlink(m / "vectors" / "2")
    assert e.value.errno == errno.EROFS
    assert p.read_bytes() == data and os.path.getsize(p) == size
    # reading works
    assert m.vector_ids() == sorted(vecs)
    assert m.read_vector(1) == vecs[1]
    # and so do queries: the query file and queries/ slots stay writable
    q = " ".join(str(x) for x in vecs[1])
    m.sh(f'echo "k=1 {q}" > "$M/query"')
    assert m.cat("query").split()[0] == "1"
    m.sh(f'mkdir "$M/queries/ro" && echo "k=1 {q}" > "$M/queries/ro/request"')
    assert m.cat("queries/ro/result").split()[0] == "1"
    assert p.read_bytes() == data


def test_read_only_mount_beside_a_writer(mount, base):
    p, vecs = base
    w = mount(p)
    assert w.lock.exists()
    r = mount(p, "ro")
    assert r.vector_ids() == sorted(vecs)
    assert r.status()["read_only"] == "true" and w.status()["read_only"] == "false"
    r.unmount()
    assert w.lock.exists(), "the read-only unmount removed the writer's lock"


# ------------------------------------------------------------------ damage

def segments_of(ctl_json, p):
    return ctl_json("inspect", p, "--json")["segments"]


def flip(p, offset):
    b = bytearray(p.read_bytes())
    b[offset] ^= 0x5A
    p.write_bytes(bytes(b))


def test_damaged_vec_segment_refused(mount, base, ctl_json):
    p, vecs = base
    seg = [s for s in segments_of(ctl_json, p) if s["segType"] == "vec"][0]
    flip(p, seg["offset"] + SEG_HEADER + seg["payloadLength"] // 2)
    cp, m = mount.run(p)
    assert cp.returncode != 0 and m is None, "a store with a damaged VEC segment mounted"
    lines = [ln for ln in cp.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, cp.stderr
    assert str(p.name) in lines[0]
    assert any(w in lines[0].lower() for w in ("hash", "checksum", "damaged", "corrupt")), lines[0]
    assert not os.path.exists(str(p) + ".lock"), "the refused mount left a lock"


def test_damaged_witness_segment_eio(mount, base, ctl_json):
    p, vecs = base
    seg = [s for s in segments_of(ctl_json, p) if s["segType"] == "witness"][0]
    flip(p, seg["offset"] + SEG_HEADER + 3)
    m = mount(p)
    name = [n for n in m.ls("segments")
            if int(m.getfattr(f"segments/{n}", "user.rvf.offset")) == seg["offset"]][0]
    assert m.getfattr(f"segments/{name}", "user.rvf.hash_ok") == "false"
    r = m.sh(f'cat "$M/segments/{name}" > /dev/null', check=False)
    assert r.returncode != 0 and "Input/output error" in r.stderr
    with pytest.raises(OSError) as e:
        with open(m / "segments" / name, "rb") as f:
            f.read()
    assert e.value.errno == errno.EIO
    assert name in m.errors()
    # everything else reads fine
    for n in m.ls("segments"):
        if n != name:
            m.cat_bytes(f"segments/{n}")
    assert m.vector_ids() == sorted(vecs)
    # and the mount keeps accepting writes
    m.sh('echo "1 1 1 1" > "$M/vectors/900"')
    assert 900 in m.vector_ids()
