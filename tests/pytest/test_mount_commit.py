"""rvffs commits like a filesystem (issue 12): unmount then use at once,
changes visible at once and durable at fsync / unmount / the commit
interval, few commits for many small changes."""

import json
import os
import subprocess

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import FUSERMOUNT, int_rows, is_mounted, make_store, write_csv


def ctl_json(run_ctl, *args):
    return json.loads(run_ctl("--json", *args).stdout)


def test_unmount_then_ingest_at_once(mount, store, run_ctl, tmp_path):
    """`fusermount3 -u MNT; rvfctl ingest STORE f` must not fail with
    LockHeld while the daemon exits: rvfctl waits for the lock (--wait,
    5 s by default) and the daemon lets it go last."""
    p = make_store(run_ctl, store, dim=4, rows=int_rows(2, 4))
    for i in range(20):
        m = mount(p)
        src = write_csv(tmp_path / f"r{i}.csv", [(100 + i, [1.0, 2.0, 3.0, float(i)])])
        cp = subprocess.run([FUSERMOUNT, "-u", str(m.path)], capture_output=True, text=True)
        assert cp.returncode == 0, cp.stderr
        assert not is_mounted(m.path)
        # immediately, without waiting for the daemon's pid to go
        r = run_ctl("ingest", p, src, check=False)
        assert r.returncode == 0, f"iteration {i}: {r.stderr}"
        m.unmount()  # waits for the daemon (already unmounted)
    st = ctl_json(run_ctl, "status", p)
    assert st["vectors"] == 22


def test_wait_zero_fails_fast_on_a_live_writer(mount, store, run_ctl):
    p = make_store(run_ctl, store, dim=4, rows=int_rows(2, 4))
    mount(p)
    r = run_ctl("--json", "--wait", "0", "delete", p, "--ids", "1", check=False)
    assert r.returncode == 4
    assert json.loads(r.stdout)["code"] == "LockHeld"
    r = run_ctl("--wait", "x", "status", p, check=False)
    assert r.returncode == 2 and "--wait" in r.stderr


def test_wait_option_needs_seconds(run_ctl, store):
    p = store(dim=4)
    for bad in ("-1", "", "abc", "3601"):
        r = run_ctl("--wait", bad, "status", p, check=False)
        assert r.returncode == 2, bad
    assert run_ctl("--wait", "0.5", "status", p).returncode == 0
