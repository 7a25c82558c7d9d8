"""rvfctl end to end: --json on every command, exit codes, the progress bar,
mount-point mode (through the daemon's tree and `control` file), derive
types, verify, keygen/sign (with tamper detection and the reference reading
signed stores), and the configuration file.

Mounts are made with the suite's one harness (the `mount` fixture of
mountlib.py), which unmounts them all at teardown."""

import concurrent.futures
import json
import os
import pty
import shutil
import stat
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

from conftest import TIMEOUT, check_sanitizers, fmt_cp
from mountlib import assert_segments_match
from rvfformat import content_hash, segments

ROWS = [(1, [1, 2, 3, 4]), (2, [2, 2, 2, 2]), (5, [0, 0, 0, 1]), (7, [4, 3, 2, 1])]


# ------------------------------------------------------------------ helpers

def write_csv(path, rows):
    path.write_text("".join(f"{i}," + ",".join(str(x) for x in v) + "\n" for i, v in rows))
    return path


def write_jsonl(path, rows, meta):
    with open(path, "w") as f:
        for (i, v), m in zip(rows, meta):
            f.write(json.dumps({"id": i, "vector": v, "metadata": m}) + "\n")
    return path


def tamper_vec(path):
    """Flips a bit in the first VEC payload and rewrites its content hash, so
    that only a signature can notice."""
    b = bytearray(Path(path).read_bytes())
    off, _, plen = next(s for s in segments(path) if s[1] == 0x01)
    b[off + 64 + plen - 1] ^= 0x01
    b[off + 0x28:off + 0x38] = content_hash(bytes(b[off + 64:off + 64 + plen]))
    Path(path).write_bytes(bytes(b))


def kv(text):
    out = {}
    for ln in text.splitlines():
        if ": " in ln:
            k, v = ln.split(": ", 1)
            out.setdefault(k, v)
    return out


# ------------------------------------------------------------------ fixtures

def run_rvfctl(rvfctl, *args, rc=0, env=None, input=None, cwd=None):
    """The `ctl` fixture's call (below)."""
    cmd = [str(rvfctl)] + [str(a) for a in args]
    e = dict(os.environ)
    e.pop("XDG_CONFIG_HOME", None)
    e["HOME"] = "/nonexistent"  # no user configuration unless a test sets one
    e.update(env or {})
    cp = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT,
                        env=e, input=input, cwd=cwd)
    check_sanitizers(cp, " ".join(cmd))
    if rc is not None and cp.returncode != rc:
        pytest.fail(f"expected exit {rc}\n{fmt_cp(cp)}", pytrace=False)
    return cp


@pytest.fixture
def ctl(rvfctl):
    """ctl(*args, rc=0, env=None, input=None) -> CompletedProcess; asserts the
    exit code (rc=None: any)."""

    def run(*args, **kw):
        return run_rvfctl(rvfctl, *args, **kw)

    return run


@pytest.fixture
def cj(ctl):
    """cj(*args, rc=0) -> the JSON document rvfctl --json printed."""

    def run(*args, rc=0, **kw):
        cp = ctl(*args, "--json", rc=rc, **kw)
        lines = cp.stdout.strip().splitlines()
        assert len(lines) == 1, f"not one JSON line:\n{fmt_cp(cp)}"
        return json.loads(lines[0])

    return run


@pytest.fixture(scope="module")
def made_keys(tmp_path_factory, rvfctl):
    """Two key pairs (rvfctl keygen), made once per module: k and other."""
    d = tmp_path_factory.mktemp("keys")
    for name in ("k", "other"):
        run_rvfctl(rvfctl, "keygen", d / name)
    return d


@pytest.fixture
def keypair(made_keys):
    """keypair(PREFIX, which="k"): copies a key pair made by rvfctl keygen
    to PREFIX and PREFIX.pub (modes kept) where a test needs a key, not
    keygen's work (test_keygen_files tests keygen)."""
    def put(prefix, which="k"):
        shutil.copy2(made_keys / which, prefix)
        shutil.copy2(made_keys / f"{which}.pub", f"{prefix}.pub")
    return put


@pytest.fixture
def small(tmp_path, rvfctl, made_once):
    """tmp_path/s.rvf (dim 4, ROWS ingested): rvfctl create and ingest once
    per module, then a copy (made_once)."""
    def make(p):
        run_rvfctl(rvfctl, "create", p, "--dim", 4)
        run_rvfctl(rvfctl, "ingest", p, write_csv(p.with_suffix(".csv"), ROWS))
    return made_once("small", make, tmp_path / "s.rvf")


# ------------------------------------------------------------------ --json and exit codes

def test_help_documents_exit_codes_and_options(ctl):
    out = ctl("--help").stdout
    for s in ("--json", "--config", "exit codes", "0  ok", "2  usage", "3  refused",
              "4  I/O", "mount point", "verify STORE", "keygen PREFIX", "sign STORE"):
        assert s in out, s
    assert ctl("status", "--help").stdout.startswith("usage: rvfctl status")


def test_json_on_every_command(tmp_path, ctl, cj):
    p = tmp_path / "j.rvf"
    o = cj("create", p, "--dim", 4)
    assert o == {"store": str(p), "dimension": 4, "metric": "l2", "profile": 0, "epoch": 0}
    o = cj("ingest", p, write_csv(tmp_path / "a.csv", ROWS))
    assert o["rows"] == 4 and o["files"][0]["rows"] == 4 and o["epoch"] == 1
    assert o["mounted"] is False
    st = cj("status", p)
    assert (st["vectors"], st["deleted"], st["epoch"], st["dimension"]) == (4, 0, 1, 4)
    q = cj("query", p, "--vector", "1,2,3,4", "--k", 2)
    assert q["results"] == [{"id": 1, "distance": 0.0}, {"id": 2, "distance": 6.0}]
    ins = cj("inspect", p)
    assert ins["liveCount"] == 4 and [s["segType"] for s in ins["segments"]] == ["vec", "witness"]
    o = cj("export", p, "-o", tmp_path / "out.jsonl")
    assert o["rows"] == 4 and o["format"] == "jsonl"
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 4
    assert cj("delete", p, "--ids", "2")["deleted"] == 1
    o = cj("compact", p)
    assert o["removed"] == 1 and o["bytesReclaimed"] > 0
    img = tmp_path / "img"
    img.write_bytes(b"K" * 1000)
    o = cj("embed-kernel", p, img, "--arch", 1)
    assert o["imageSize"] == 1000 and o["compressed"] is False
    assert cj("extract-kernel", p, tmp_path / "k.out")["bytes"] == 1000
    assert cj("remove-kernel", p)["removed"] is True
    prog = tmp_path / "prog"
    prog.write_bytes(bytes(range(16)))
    assert cj("embed-ebpf", p, prog, "--prog-type", 2)["programSize"] == 16
    assert cj("extract-ebpf", p, tmp_path / "p.out")["bytes"] == 16
    assert cj("remove-ebpf", p)["removed"] is True
    d = cj("derive", p, tmp_path / "d.rvf")
    assert d["lineageDepth"] == 1 and d["parentId"] == st["fileId"]
    b = cj("branch", p, tmp_path / "b.rvf")
    assert b["branch"] is True and b["vectors"] == 3
    assert cj("freeze", tmp_path / "b.rvf")["frozen"] is True
    k = cj("keygen", tmp_path / "key")
    assert len(k["publicKeyHex"]) == 64
    s = cj("sign", p, "--key", tmp_path / "key")
    assert s["publicKey"] == k["publicKeyHex"] and s["covered"] >= 1
    v = cj("verify", p, "--pubkey", tmp_path / "key.pub")
    assert v["ok"] is True and {c["check"] for c in v["checks"]} >= {
        "open", "hashes", "manifests", "witnesses", "signatures"}


def test_human_output_is_default(small, ctl):
    out = ctl("status", small).stdout
    assert kv(out)["vectors"] == "4"
    with pytest.raises(ValueError):
        json.loads(out)
    assert ctl("query", small, "--vector", "1,2,3,4", "--k", 1).stdout == "1 0\n"


def test_exit_codes_and_json_errors(tmp_path, small, ctl, cj):
    # 2: usage
    assert ctl("status", rc=2).returncode == 2
    e = cj("create", tmp_path / "x.rvf", rc=2)
    assert e["exit"] == 2 and e["kind"] == "usage" and "--dim" in e["error"]
    e = cj("nosuchcommand", rc=2)
    assert "unknown command" in e["error"]
    # 1: missing store, existing path
    e = cj("status", tmp_path / "missing.rvf", rc=1)
    assert e["exit"] == 1 and "missing.rvf" in e["error"]
    e = cj("create", small, "--dim", 4, rc=1)
    assert e["code"] == "AlreadyExists"
    # 3: refused input (the line is named), damaged store
    bad = tmp_path / "bad.csv"
    bad.write_text("1,1,2,3,4\n2,1,2\n")
    e = cj("ingest", small, bad, rc=3)
    assert e["file"] == str(bad) and "line 2" in e["error"] and e["committed"] == []
    assert cj("status", small)["vectors"] == 4  # nothing committed
    broken = tmp_path / "broken.rvf"
    data = bytearray(small.read_bytes())
    off, _, plen = next(s for s in segments(small) if s[1] == 0x01)
    data[off + 64 + 3] ^= 0xFF
    broken.write_bytes(bytes(data))
    e = cj("status", broken, rc=3)
    assert e["code"] == "InvalidChecksum"
    # 4: the lock is held by another writer
    lock_holder = subprocess.Popen(
        ["sleep", "60"])   # any live process of ours
    try:
        Path(str(small) + ".lock").write_bytes(lock_bytes(lock_holder.pid))
        # (a short wait: the same polling and refusal as the default 5 s)
        e = cj("--wait", "0.5", "delete", small, "--ids", 1, rc=4)
        assert e["code"] == "LockHeld"
    finally:
        lock_holder.kill()
        lock_holder.wait()
        Path(str(small) + ".lock").unlink()


def lock_bytes(pid):
    """A lock file in the reference's layout held by pid on this host."""
    host = os.uname().nodename.encode()[:63]
    b = bytearray(104)
    struct.pack_into("<II", b, 0, 0x52564C46, pid)
    b[8:8 + len(host)] = host
    struct.pack_into("<Q", b, 72, time.time_ns())
    struct.pack_into("<I", b, 96, 1)
    struct.pack_into("<I", b, 100, zlib.crc32(bytes(b[:100])) & 0xFFFFFFFF)
    return bytes(b)


def run_with_tty_stderr(args, env):
    """Runs args with stderr on a pseudo-terminal; returns (rc, stdout, tty bytes)."""
    master, slave = pty.openpty()
    try:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=slave, env=env,
                           timeout=TIMEOUT)
    finally:
        os.close(slave)
    out = b""
    while True:
        try:
            d = os.read(master, 65536)
        except OSError:
            break
        if not d:
            break
        out += d
    os.close(master)
    return p.returncode, p.stdout, out


def test_progress_bar_only_on_a_terminal(tmp_path, rvfctl, ctl):
    p = tmp_path / "big.rvf"
    ctl("create", p, "--dim", 8)
    src = tmp_path / "big.csv"
    with open(src, "w") as f:
        for i in range(60000):
            f.write(f"{i}," + ",".join(str((i * 7 + d) % 13) for d in range(8)) + "\n")
    env = dict(os.environ, RVFCTL_PROGRESS_DELAY_MS="0")
    rc, out, tty = run_with_tty_stderr([str(rvfctl), "ingest", str(p), str(src)], env)
    assert rc == 0 and b"60000 vectors committed" in out
    assert b"ingest [" in tty and b"%" in tty and b"\r\x1b[K" in tty, tty[:400]
    rc, out, tty = run_with_tty_stderr(
        [str(rvfctl), "export", str(p), "-o", str(tmp_path / "o.csv"), "--format", "csv"], env)
    assert rc == 0 and b"export [" in tty
    # not a terminal: nothing but the result
    cp = ctl("export", p, "--format", "csv", "-o", tmp_path / "o2.csv",
             env={"RVFCTL_PROGRESS_DELAY_MS": "0"})
    assert cp.stderr == ""


# ------------------------------------------------------------------ derive --type

def test_derive_type_is_checked_and_reported(small, tmp_path, ctl, cj):
    o = cj("derive", small, tmp_path / "c.rvf", "--type", "snapshot")
    assert o["type"] == "snapshot" and o["typeRecorded"] is False
    assert o["lineageDepth"] == 1
    out = ctl("derive", small, tmp_path / "c2.rvf", "--type", "clone").stdout
    assert "clone" in out and "not stored" in out
    e = cj("derive", small, tmp_path / "c3.rvf", "--type", "bogus", rc=2)
    assert "clone" in e["error"]
    assert not (tmp_path / "c3.rvf").exists()


# ------------------------------------------------------------------ verify, keygen, sign

def test_verify_plain_store_and_chains(small, cj, ctl, keypair):
    v = cj("verify", small)
    assert v["ok"] and v["signatures"] == []
    checks = {c["check"]: c for c in v["checks"]}
    assert "1 entries" in checks["witnesses"]["detail"]
    ctl("delete", small, "--ids", 5)
    v = cj("verify", small)
    assert v["ok"]
    assert "2 entries" in {c["check"]: c for c in v["checks"]}["witnesses"]["detail"]
    # with a key but no signature: fails, naming what
    keypair(small.parent / "k")
    v = cj("verify", small, "--pubkey", small.parent / "k.pub", rc=3)
    bad = [c for c in v["checks"] if not c["ok"]]
    assert [c["check"] for c in bad] == ["signatures"] and "not signed" in bad[0]["detail"]


def test_verify_branch_parent_hash(small, tmp_path, ctl, cj):
    child = tmp_path / "child.rvf"
    ctl("branch", small, child)
    v = cj("verify", child)
    assert v["ok"] and any(c["check"] == "parent" and c["ok"] for c in v["checks"])
    # the parent changes after the branch: the child reads it as it was then
    # (issue 11 item 8), and verify says so
    ctl("ingest", small, write_csv(tmp_path / "more.csv", [(9, [9, 9, 9, 9])]))
    v = cj("verify", child)
    par = [c for c in v["checks"] if c["check"] == "parent"]
    assert v["ok"] and par[0]["ok"] and "as of byte" in par[0]["detail"]
    # a rewritten parent is a loss: verify fails on it
    ctl("compact", small, "--force")
    v = cj("verify", child, rc=3)
    assert not v["ok"] and v["checks"][0]["check"] == "parent"


def test_verify_manifest_chain_failure(small, tmp_path, ctl, cj):
    # An older manifest listed in the directory that no longer parses.  A
    # manifest is listed by the next commit of the same session: ingest two
    # files in one invocation (one session, two commits).
    a = write_csv(tmp_path / "a2.csv", [(20, [1, 1, 1, 1])])
    b = write_csv(tmp_path / "b2.csv", [(21, [2, 2, 2, 2])])
    ctl("ingest", small, a, b)
    ins = cj("inspect", small)
    man = [s for s in ins["segments"] if s["segType"] == "manifest"]
    assert man, ins["segments"]
    off = man[0]["offset"]
    data = bytearray(small.read_bytes())
    plen = man[0]["payloadLength"]
    data[off + 64:off + 64 + plen] = b"\xff" * plen  # garbage (its hash is never checked at open)
    data[off + 0x28:off + 0x38] = content_hash(bytes(data[off + 64:off + 64 + plen]))
    small.write_bytes(bytes(data))
    v = cj("verify", small, rc=3)
    bad = [c for c in v["checks"] if not c["ok"]]
    assert [c["check"] for c in bad] == ["manifests"], v
    assert "does not parse" in bad[0]["detail"]


def test_inspect_and_verify_several_stores(small, tmp_path, ctl):
    """`rvfctl verify *.rvf`: every store is checked, one that fails does not
    stop the next, the exit code is the first failure's."""
    other = tmp_path / "t.rvf"
    ctl("create", other, "--dim", 3)
    bad = tmp_path / "bad.rvf"
    bad.write_bytes(small.read_bytes()[:100])
    missing = tmp_path / "missing.rvf"
    stores = [small, bad, missing, other]
    cp = ctl("--json", "inspect", *stores, rc=3)
    lines = [json.loads(ln) for ln in cp.stdout.splitlines()]
    assert [o["store"] for o in lines] == [str(p) for p in stores]
    assert lines[0]["openError"] is None and lines[0]["liveCount"] == len(ROWS)
    assert lines[1]["exit"] == 3 and lines[1]["openError"]
    # a missing store is exit 1 in every command, --json or not (it was 4
    # in inspect --json and verify, 1 in text inspect and status)
    assert lines[2]["exit"] == 1 and "No such file" in lines[2]["openError"]
    assert lines[3]["openError"] is None and lines[3]["dimension"] == 3
    # each refusal on stderr, naming its file
    assert str(bad) in cp.stderr and str(missing) in cp.stderr
    cp = ctl("inspect", small, other)
    assert cp.stdout.count("store        ") == 2 and str(other) in cp.stdout
    ctl("inspect", missing, rc=1)
    cp = ctl("--json", "verify", missing, small, bad, rc=1)
    lines = [json.loads(ln) for ln in cp.stdout.splitlines()]
    assert [o["ok"] for o in lines] == [False, True, False]
    assert [o["store"] for o in lines] == [str(missing), str(small), str(bad)]
    cp = ctl("verify", small, bad, other, rc=3)
    assert f"{small}:\nok" in cp.stdout and f"\n{other}:\nok" in cp.stdout
    assert f"{bad}: verification failed" in cp.stderr
    ctl("verify", small, other)


def test_query_several_vectors(tmp_path, ctl, cj):
    """Several --vector in one rvfctl query: each vector is searched on its
    own at its own k (one --k for all, or one per --vector in order) and gets
    exactly the answer one rvfctl per vector gives, in the order given."""
    p = tmp_path / "m.rvf"
    ctl("create", p, "--dim", 4)
    ctl("ingest", p, write_jsonl(tmp_path / "rows.jsonl", ROWS,
                                 [{"n": i} for i, _ in ROWS]))
    a, b = "1,2,3,4", "0,0,0,1"
    alone = {(v, k): cj("query", p, "--vector", v, "--k", k) for v in (a, b) for k in (1, 3, 10)}
    assert alone[(a, 3)]["results"] == [{"id": 1, "distance": 0.0}, {"id": 2, "distance": 6.0},
                                        {"id": 7, "distance": 20.0}]
    assert [r["id"] for r in alone[(b, 10)]["results"]] == [5, 2, 1, 7]

    def several(*args, rc=0):
        cp = ctl("query", p, *args, "--json", rc=rc)
        return [json.loads(ln) for ln in cp.stdout.splitlines()]

    # one --k for every vector, and the default k (10)
    assert several("--vector", a, "--vector", b, "--k", 3) == [alone[(a, 3)], alone[(b, 3)]]
    assert several("--vector", b, "--vector", a) == [alone[(b, 10)], alone[(a, 10)]]
    # one --k per --vector, paired in order whatever the interleaving; the same
    # vector at several k
    pairs = [(a, 1), (b, 3), (a, 10), (b, 1), (a, 3)]
    assert several(*[x for v, k in pairs for x in ("--vector", v, "--k", k)]) == [
        alone[pr] for pr in pairs]
    assert several("--k", 1, "--k", 3, "--vector", a, "--vector", b) == [alone[(a, 1)],
                                                                         alone[(b, 3)]]
    # text: the answers separated by an empty line
    assert ctl("query", p, "--vector", a, "--k", 1, "--vector", b, "--k", 2).stdout == (
        "1 0\n\n5 0\n2 13\n")
    # --filter and --meta apply to every vector
    flt = '{"op":"gt","field":"n","value":1}'
    got = several("--vector", a, "--vector", b, "--k", 2, "--filter", flt, "--meta")
    assert got == [cj("query", p, "--vector", v, "--k", 2, "--filter", flt, "--meta")
                   for v in (a, b)]
    assert got[0]["results"] == [{"id": 2, "distance": 6.0, "metadata": {"n": 2}},
                                 {"id": 7, "distance": 20.0, "metadata": {"n": 7}}]
    # bad command lines print no answer at all
    cp = ctl("query", p, "--vector", a, "--vector", b, "--k", 1, "--k", 2, "--k", 3, rc=2)
    assert cp.stdout == "" and "once per --vector (2 --vector, 3 --k)" in cp.stderr
    cp = ctl("query", p, "--vector", a, "--k", 1, "--k", 2, rc=2)
    assert cp.stdout == "" and "(1 --vector, 2 --k)" in cp.stderr
    cp = ctl("query", p, "--vector", a, "--vector", "1,2,3", rc=2)
    assert cp.stdout == "" and "3 numbers, the store's dimension is 4" in cp.stderr
    cp = ctl("query", p, "--vector", a, "--vector", "1,x,3,4", rc=2)
    assert cp.stdout == "" and "not a list of finite numbers" in cp.stderr
    (tmp_path / "q.txt").write_text(a + "\n")
    cp = ctl("query", p, "--file", tmp_path / "q.txt", "--k", 1, "--k", 2, rc=2)
    assert cp.stdout == "" and "--file takes one --k" in cp.stderr


def test_keygen_files(tmp_path, ctl, cj):
    k = cj("keygen", tmp_path / "key")
    sec, pub = tmp_path / "key", tmp_path / "key.pub"
    assert stat.S_IMODE(os.stat(sec).st_mode) == 0o600
    assert sec.read_text().startswith("rvffs-ed25519-secret ")
    assert len(sec.read_text().split()[1]) == 128
    assert pub.read_text() == f"rvffs-ed25519-public {k['publicKeyHex']}\n"
    e = cj("keygen", tmp_path / "key", rc=1)
    assert "already exists" in e["error"]
    assert pub.read_text().endswith(k["publicKeyHex"] + "\n")  # untouched


def test_sign_verify_and_tamper(small, tmp_path, ctl, cj, ref, keypair):
    keypair(tmp_path / "k")
    keypair(tmp_path / "other", "other")
    unsigned = tmp_path / "unsigned.rvf"
    shutil.copy(small, unsigned)
    s = cj("sign", small, "--key", tmp_path / "k")
    assert s["signedEpoch"] == 1 and s["covered"] == 2
    sig = [x for x in segments(small) if x[1] == 0x53]
    assert len(sig) == 1 and sig[0][2] == 142
    payload = small.read_bytes()[sig[0][0] + 64:sig[0][0] + 64 + 142]
    assert payload[:8] == b"RVFSIG1\0" and struct.unpack_from("<HI", payload, 8) == (1, 1)
    assert payload[14:46].hex() == s["publicKey"]

    v = cj("verify", small, "--pubkey", tmp_path / "k.pub")
    assert v["ok"] and v["signatures"][0]["trusted"] and v["signatures"][0]["ok"]
    # the wrong key: valid signature, but not by that key
    v = cj("verify", small, "--pubkey", tmp_path / "other.pub", rc=3)
    assert "no valid signature was made with the given public key" in v["checks"][-1]["detail"]
    # the secret key file works as --pubkey too
    assert cj("verify", small, "--pubkey", tmp_path / "k")["ok"]

    # the reference opens the signed store with the same vectors
    qs = [[1, 2, 3, 4], [0, 0, 0, 0]]
    a, b = ref.dump(small, queries=qs), ref.dump(unsigned, queries=qs)
    assert a["openError"] is None
    assert a["all_ids"] == b["all_ids"] == [1, 2, 5, 7]
    assert a["exact"] == b["exact"]
    assert "unknown(0x53)" in [x["segType"] for x in a["segments"]]

    # later commits keep the signature valid, and are reported as uncovered
    ctl("delete", small, "--ids", 7)
    v = cj("verify", small, "--pubkey", tmp_path / "k.pub")
    assert v["ok"] and v["signatures"][0]["uncovered"] == 2  # journal + witness
    # re-signing supersedes the older signature of the same key
    ctl("sign", small, "--key", tmp_path / "k")
    ctl("sign", small, "--key", tmp_path / "other")
    v = cj("verify", small, "--pubkey", tmp_path / "k.pub")
    assert len(v["signatures"]) == 2 and all(x["ok"] for x in v["signatures"])
    assert sorted(x["trusted"] for x in v["signatures"]) == [False, True]

    # tampering: a VEC payload with a recomputed CRC, caught only by the signature
    tamper_vec(small)
    v = cj("verify", small, rc=3)
    assert v["checks"][1]["check"] == "hashes" and v["checks"][1]["ok"]
    v = cj("verify", small, "--pubkey", tmp_path / "k.pub", rc=3)
    bad = [c for c in v["checks"] if not c["ok"]]
    assert [c["check"] for c in bad] == ["signatures"]
    assert "digest mismatch" in bad[0]["detail"]
    cp = ctl("verify", small, rc=3)
    assert "FAIL" in cp.stdout and "signed content changed" in cp.stderr


def test_sign_refuses_damaged_or_bad_key(small, tmp_path, ctl, cj, keypair):
    keypair(tmp_path / "k")
    e = cj("sign", small, "--key", tmp_path / "k.pub", rc=3)
    assert "not an rvffs secret key" in e["error"]
    e = cj("sign", small, rc=2)
    assert "--key" in e["error"]


def test_compaction_drops_signatures(small, tmp_path, ctl, cj, ref, keypair):
    keypair(tmp_path / "k")
    ctl("delete", small, "--ids", 2)
    ctl("sign", small, "--key", tmp_path / "k")
    ctl("compact", small)
    assert not [x for x in segments(small) if x[1] == 0x53]
    v = cj("verify", small, "--pubkey", tmp_path / "k.pub", rc=3)
    assert "not signed" in v["checks"][-1]["detail"]
    # the reference's compaction keeps the segment: verify says why it fails
    ctl("sign", small, "--key", tmp_path / "k")
    ctl("delete", small, "--ids", 5)
    r = ref.run([{"op": "open", "path": str(small)}, {"op": "compact"}, {"op": "close"}],
                serve=True)
    assert "error" not in r, r
    v = cj("verify", small, "--pubkey", tmp_path / "k.pub", rc=3)
    assert "no longer in the file" in v["checks"][-1]["detail"]
    ctl("sign", small, "--key", tmp_path / "k")  # re-signing repairs it
    assert cj("verify", small, "--pubkey", tmp_path / "k.pub")["ok"]


# ------------------------------------------------------------------ configuration

def test_config_changes_defaults(tmp_path, ctl, cj, keypair):
    conf = tmp_path / "rvffs.conf"
    conf.write_text("[mount]\nthreads = 2\n[query]\nk = 5\n[create]\nmetric = cosine\n"
                    "[kernel]\narch = 2\ntype = 3\napi_port = 8080\ncompression = zstd\n"
                    "[signing]\nkey = mykey\n")
    p = tmp_path / "c.rvf"
    assert cj("create", p, "--dim", 4, "--config", conf)["metric"] == "cosine"
    assert cj("create", tmp_path / "d.rvf", "--dim", 4)["metric"] == "l2"  # no config
    # $XDG_CONFIG_HOME/rvffs/rvffs.conf is found without --config
    xdg = tmp_path / "xdg"
    (xdg / "rvffs").mkdir(parents=True)
    shutil.copy(conf, xdg / "rvffs" / "rvffs.conf")
    env = {"XDG_CONFIG_HOME": str(xdg)}
    assert cj("create", tmp_path / "e.rvf", "--dim", 4, env=env)["metric"] == "cosine"
    # [kernel] defaults: arch/type/api_port in the header, compressed
    img = tmp_path / "img"
    img.write_bytes(b"abc" * 5000)
    o = cj("embed-kernel", p, img, "--config", conf)
    assert o["compressed"] is True and o["arch"] == 2 and o["type"] == 3
    ins = cj("inspect", p)
    hdr = bytes.fromhex(ins["kernel"]["headerHex"])
    assert (hdr[6], hdr[7], hdr[0x28], hdr[0x2A] << 8 | hdr[0x2B]) == (2, 3, 1, 8080)
    ctl("extract-kernel", p, tmp_path / "img.out")
    assert (tmp_path / "img.out").read_bytes() == img.read_bytes()
    # --no-compress overrides the file
    assert cj("embed-kernel", p, img, "--config", conf, "--no-compress")["compressed"] is False
    # [signing] key: relative to the configuration file
    keypair(tmp_path / "mykey")
    assert cj("sign", p, "--config", conf)["publicKey"] in (tmp_path / "mykey.pub").read_text()


def test_config_errors_name_file_and_line(tmp_path, ctl, cj):
    conf = tmp_path / "bad.conf"
    conf.write_text("[create]\nmetric = cosine\ncolour = blue\n")
    e = cj("status", tmp_path / "x.rvf", "--config", conf, rc=2)
    assert e["error"] == f"{conf}:3: [create] colour = blue: unknown key"
    conf.write_text("[kernel]\napi_port = 70000\n")
    e = cj("status", tmp_path / "x.rvf", "--config", conf, rc=2)
    assert f"{conf}:2:" in e["error"] and "api_port" in e["error"]
    conf.write_text("[nosuch]\nx = 1\n")
    assert "unknown section" in cj("status", tmp_path / "x.rvf", "--config", conf, rc=2)["error"]
    e = cj("status", tmp_path / "x.rvf", "--config", tmp_path / "none.conf", rc=2)
    assert "cannot read" in e["error"]


# ------------------------------------------------------------------ mount-point mode

def test_control_file(small, mount, ctl):
    m = mount(small)
    mnt = m.path
    c = mnt / "control"
    assert "control" in os.listdir(mnt)
    assert stat.S_IMODE(os.stat(c).st_mode) == 0o644
    assert open(c).read() == ""  # reads find nothing (tar, rsync, cp -a)
    # one command per write; failures carry the errno, reasons go to errors
    fd = os.open(c, os.O_WRONLY)
    try:
        with pytest.raises(OSError) as ei:
            os.write(fd, b"frobnicate\n")
        assert ei.value.errno == 22
        with pytest.raises(OSError) as ei:
            os.write(fd, b"compact\nfreeze\n")
        assert ei.value.errno == 22
        with pytest.raises(OSError) as ei:
            os.write(fd, b"embed-kernel relative/path\n")
        assert ei.value.errno == 22
        assert os.write(fd, b"delete 1 2\n") == 11
        # JSON is the raw rest of the line, however many words it has
        f = {"op": "or", "children": [{"op": "eq", "field": "k", "value": i} for i in range(20)]}
        line = ("delete-filter " + json.dumps(f) + "\n").encode()
        assert line.count(b" ") > 40 and os.write(fd, line) == len(line)
    finally:
        os.close(fd)
    errors = (mnt / "errors").read_text()
    assert "unknown command or arguments: frobnicate" in errors
    assert "one command per write" in errors and "must be absolute" in errors
    st = kv((mnt / "status").read_text())
    assert (st["vectors"], st["deleted"]) == ("2", "2")  # shown at once
    # the shell way
    subprocess.run(["sh", "-c", f"echo compact > '{c}'"], check=True)
    assert kv((mnt / "status").read_text())["deleted"] == "0"
    assert_segments_match(mnt, small)


def test_control_file_read_only_mount(small, mount):
    m = mount(small, "ro")
    mnt = m.path
    assert stat.S_IMODE(os.stat(mnt / "control").st_mode) == 0o444
    assert (mnt / "control").read_bytes() == b""  # readable, empty (tar, rsync)
    with pytest.raises(OSError) as ei:
        os.open(mnt / "control", os.O_WRONLY)
    assert ei.value.errno == 30  # EROFS


def test_mount_point_reads_match_the_file(small, tmp_path, mount, cj, ctl):
    file_st = cj("status", small)
    file_ins = cj("inspect", small)
    file_export = ctl("export", small).stdout
    m = mount(small)
    mnt = m.path
    def steady(text):  # the daemon's heap moves between two reads
        return [ln for ln in text.splitlines() if not ln.startswith("heap_bytes: ")]
    shown = ctl("status", mnt).stdout
    assert "heap_bytes: " in shown and steady(shown) == steady((mnt / "status").read_text())
    st = cj("status", mnt)
    assert st["mounted"] is True and st["pid"] > 0 and st["heapBytes"] > 0
    for k in ("dimension", "metric", "vectors", "deleted", "epoch", "segments", "fileSize",
              "fileId", "parentId", "lineageDepth"):
        assert st[k] == file_st[k], k
    ins = cj("inspect", mnt)
    for k in ("dimension", "metric", "epoch", "fileSize", "fileId", "parentId",
              "parentHash", "lineageDepth", "segments", "liveCount", "witnessCount"):
        assert ins[k] == file_ins[k], k
    text = ctl("inspect", mnt).stdout
    assert "segments (offset order)" in text and "witness chain: 1 entries" in text
    assert ctl("export", mnt).stdout == file_export
    for fmt in ("csv", "fvecs", "json"):
        ctl("export", mnt, "--format", fmt, "-o", tmp_path / f"m.{fmt}")
        ctl("export", small, "--format", fmt, "-o", tmp_path / f"f.{fmt}")
        assert (tmp_path / f"m.{fmt}").read_bytes() == (tmp_path / f"f.{fmt}").read_bytes()
    q = cj("query", mnt, "--vector", "1,2,3,4", "--k", 3)
    assert q == cj("query", small, "--vector", "1,2,3,4", "--k", 3)
    e = cj("query", mnt, "--vector", "1,2,3", rc=2)
    assert "dimension is 4" in e["error"]
    # several vectors through the mount: one request each, answers in order
    args = ("--vector", "1,2,3,4", "--k", 1, "--vector", "0,0,0,1", "--k", 3)
    assert ctl("query", mnt, *args).stdout == ctl("query", small, *args).stdout == (
        "1 0\n\n5 0\n2 13\n1 23\n")
    cp = ctl("query", mnt, "--vector", "1,2,3,4", "--vector", "1,2,3", rc=2)
    assert cp.stdout == "" and "dimension is 4" in cp.stderr


def test_mount_point_changes_show_at_once(tmp_path, ctl, cj, mount):
    p = tmp_path / "m.rvf"
    ctl("create", p, "--dim", 4)
    rows = [(i, [float(i), 0, 0, 1]) for i in range(1, 9)]
    meta = [{"color": "red" if i % 2 else "blue", "n": i} for i, _ in rows]
    src = write_jsonl(tmp_path / "rows.jsonl", rows, meta)
    m = mount(p)
    mnt = m.path
    o = cj("ingest", mnt, src)
    assert o["mounted"] and o["rows"] == 8 and o["epoch"] == 1
    assert (mnt / "ingest").exists() and os.listdir(mnt / "ingest") == []
    assert kv((mnt / "status").read_text())["vectors"] == "8"
    # metadata comes back through the xattrs
    line = ctl("export", mnt).stdout.splitlines()[0]
    assert json.loads(line) == {"id": 1, "vector": [1, 0, 0, 1],
                                "metadata": {"color": "red", "n": 1}}
    # bad input is refused before the daemon sees it, naming the line
    bad = tmp_path / "bad.csv"
    bad.write_text("100,1,2,3,4\n101,1\n")
    e = cj("ingest", mnt, bad, rc=3)
    assert "line 2" in e["error"]
    d = cj("delete", mnt, "--ids", "1,2")
    assert d == {"deleted": 2, "epoch": 2, "mounted": True}
    # a filter with many words and lines (a command is one line)
    red = {"op": "or", "children": [{"op": "eq", "field": "color", "value": "red"}] +
           [{"op": "eq", "field": "n", "value": 100 + i} for i in range(20)]}
    d = cj("delete", mnt, "--filter", json.dumps(red, indent=2))
    assert d["deleted"] == 3 and d["epoch"] == 3  # 3 5 7
    ids = sorted(int(x) for x in os.listdir(mnt / "vectors"))
    assert ids == [4, 6, 8]
    e = cj("delete", mnt, "--filter", "{not json", rc=3)
    assert e["code"] == "BadFilter"
    # compaction through the daemon: the mount shows the compacted store
    st = kv((mnt / "status").read_text())
    assert st["deleted"] == "5"
    c = cj("compact", mnt)
    assert c["mounted"] and c["removed"] == 5 and c["bytesReclaimed"] > 0
    st = kv((mnt / "status").read_text())
    assert st["deleted"] == "0" and st["vectors"] == "3"
    assert int(st["file_size"]) == os.path.getsize(p) == c["fileSize"]
    assert sorted(int(x) for x in os.listdir(mnt / "vectors")) == [4, 6, 8]
    assert_segments_match(mnt, p)
    assert ctl("query", mnt, "--vector", "4,0,0,1", "--k", 1).stdout == "4 0\n"
    # --meta on several vectors reads each hit's xattrs through the mount
    one = [ctl("query", mnt, "--vector", v, "--k", k, "--meta").stdout
           for v, k in (("4,0,0,1", 1), ("6,0,0,1", 2))]
    assert one[1] == '6 0 {"color":"blue","n":6}\n4 4 {"color":"blue","n":4}\n'
    assert ctl("query", mnt, "--vector", "4,0,0,1", "--k", 1, "--vector", "6,0,0,1",
               "--k", 2, "--meta").stdout == "\n".join(one)
    # the file is locked by the daemon: writing to it directly says where to go
    # (after a short wait: the same polling and refusal as the default 5 s)
    e = cj("--wait", "0.5", "compact", p, rc=4)
    assert e["code"] == "LockHeld" and os.path.realpath(mnt) in e["error"]
    m.unmount()
    assert not m.lock.exists(), "the lock outlived the daemon"
    st = cj("status", p)
    assert (st["vectors"], st["deleted"]) == (3, 0)
    assert cj("verify", p)["ok"]


def test_mount_point_lifecycle_and_images(small, tmp_path, ctl, cj, mount, ref, keypair):
    m = mount(small)
    mnt = m.path
    # derive / branch from a mounted parent: the daemon creates the child
    d = cj("derive", mnt, tmp_path / "sub dir child.rvf", "--metric", "cosine", "--type", "filter")
    assert d["lineageDepth"] == 1 and d["metric"] == "cosine" and d["type"] == "filter"
    b = cj("branch", mnt, tmp_path / "br.rvf")
    assert b["branch"] and b["vectors"] == 4
    e = cj("derive", mnt, tmp_path / "br.rvf", rc=1)
    assert "already exists" in e["error"]
    # kernel and eBPF through the daemon; the mount shows them at once
    img = tmp_path / "kernel image"
    img.write_bytes(os.urandom(3000))
    o = cj("embed-kernel", mnt, img, "--arch", 1, "--type", 2, "--api-port", 9000,
           "--cmdline", 'console=ttyS0 quiet "x"', "--compress")
    assert o["mounted"] and o["compressed"]
    assert (mnt / "kernel").read_bytes() == img.read_bytes()
    assert os.getxattr(mnt / "kernel", "user.rvf.kernel.cmdline") == b'console=ttyS0 quiet "x"'
    assert os.getxattr(mnt / "kernel", "user.rvf.kernel.api_port") == b"9000"
    ctl("extract-kernel", mnt, tmp_path / "k.out")
    assert (tmp_path / "k.out").read_bytes() == img.read_bytes()
    prog, btf = tmp_path / "prog", tmp_path / "btf"
    prog.write_bytes(bytes(range(64)))
    btf.write_bytes(b"BTF!" * 8)
    cj("embed-ebpf", mnt, prog, "--btf", btf, "--prog-type", 3, "--attach-type", 1, "--max-dim", 4)
    o = cj("extract-ebpf", mnt, tmp_path / "p.out", "--btf", tmp_path / "b.out")
    assert o["bytes"] == 64 and o["btfBytes"] == 32
    assert (tmp_path / "p.out").read_bytes() == prog.read_bytes()
    assert (tmp_path / "b.out").read_bytes() == btf.read_bytes()
    cj("remove-kernel", mnt)
    cj("remove-ebpf", mnt)
    assert not (mnt / "kernel").exists() and not (mnt / "ebpf").exists()
    e = cj("remove-kernel", mnt, rc=1)
    assert "has no kernel" in e["error"]
    assert cj("extract-kernel", mnt, tmp_path / "none", rc=1)["exit"] == 1
    # sign through the daemon, verify through the mount
    keypair(tmp_path / "k")
    s = cj("sign", mnt, "--key", tmp_path / "k")
    assert s["mounted"] and s["covered"] >= 2
    v = cj("verify", mnt, "--pubkey", tmp_path / "k.pub")
    assert v["ok"] and v["mounted"] and v["store"] == os.path.realpath(small)
    # freeze: a root store cannot record it, so the daemon refuses and
    # the mount stays writable (issue 11 item 9)
    e = cj("freeze", mnt, rc=None)
    assert e["exit"] != 0
    assert "not a branch child" in (mnt / "errors").read_text()
    assert kv((mnt / "status").read_text())["read_only"] == "false"
    e = cj("create", mnt, "--dim", 4, rc=1)
    assert "mount point" in e["error"]
    m.unmount()
    assert not m.lock.exists(), "the lock outlived the daemon"
    # what the daemon wrote opens in the reference (the branch child is not
    # checked: its parent changed after the branch, which the reference refuses)
    r = ref.dump(small)
    assert r["openError"] is None and r["all_ids"] == [1, 2, 5, 7], r
    assert ref.dump(tmp_path / "sub dir child.rvf")["metric"] == "cosine"


def test_single_ingests_follow_the_compact_policy(run_ctl, tmp_path):
    """One rvfctl ingest per vector (the reference's own pattern): each run
    is a durable commit whose manifest lists everything, so the file grows
    with the square of the runs -- unless rvfctl applies the [compact]
    policy after its commits, as a mount does.  Same vectors either way;
    `delete` applies it too.  The two stores are made side by side (two
    chains of 31 rvfctl runs that wait on fsync more than they compute)."""
    def make(mode, conf):
        c = tmp_path / f"{mode}.conf"
        c.write_text(conf)
        p = tmp_path / f"{mode}.rvf"
        one = tmp_path / f"{mode}-one.csv"
        run_ctl("create", p, "--dim", 4)
        for i in range(1, 31):
            one.write_text(f"{i},1,2,3,{i}\n")
            run_ctl("--config", c, "ingest", p, one)
        st = json.loads(run_ctl("--json", "status", p).stdout)
        assert st["vectors"] == 30
        size = os.path.getsize(p)
        if mode == "on":
            assert st["deadBytes"] * 2 <= size
            run_ctl("--config", c, "delete", p, "--ids", ",".join(str(i) for i in range(1, 21)))
            st = json.loads(run_ctl("--json", "status", p).stdout)
            assert st["vectors"] == 10 and st["deadBytes"] * 2 <= os.path.getsize(p)
        return size

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        arms = {mode: pool.submit(make, mode, conf) for mode, conf in
                (("on", "[compact]\nmin_dead_mb = 0\n"), ("off", "[compact]\nauto = off\n"))}
        sizes = {mode: f.result() for mode, f in arms.items()}
    assert sizes["on"] * 2 < sizes["off"], sizes
