"""Issue 11 item 4: a commit that reports a failure committed nothing.

The commit point is the manifest's fsync; everything that can fail (here:
mapping the grown file for the new view, RVF_FAULT=map:N) must happen
before it.  Before the fix the mapping came after the fsync, so rvfctl
said "failed" while the rows were in the file."""

import os
import subprocess

from mountlib import parse_kv

DIM = 256
ROWS = 70000  # 71.7 MB: more than the 64 MiB head room of the first mapping


def ctl(rvfctl, *args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([str(rvfctl)] + [str(a) for a in args], capture_output=True,
                          text=True, env=e, timeout=300)


def test_failed_commit_committed_nothing(rvfctl, tmp_path):
    p = tmp_path / "s.rvf"
    assert ctl(rvfctl, "create", p, "--dim", DIM).returncode == 0
    data = tmp_path / "big.f32"
    row = (b"\x00\x00\x80\x3f" * DIM)
    with open(data, "wb") as f:
        for _ in range(ROWS // 1000):
            f.write(row * 1000)
    size0 = p.stat().st_size
    failed = None
    for n in range(1, 6):
        cp = ctl(rvfctl, "ingest", p, data, env={"RVF_FAULT": f"map:{n}:12"})
        st = parse_kv(ctl(rvfctl, "status", p).stdout)
        if cp.returncode != 0:
            failed = n
            assert st["vectors"] == "0", \
                f"map fault {n}: rvfctl failed ({cp.stderr.strip()}) but the rows were committed"
            assert p.stat().st_size == size0, "the file is cut back"
        else:
            assert st["vectors"] == str(ROWS)
            break
    assert failed is not None and failed >= 2, \
        "the commit's own mapping was never failed: the fault seam is not exercised"
