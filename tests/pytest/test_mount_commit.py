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


def on_disk(run_ctl, p):
    """What the store file says (a read-only open: the durable state)."""
    return ctl_json(run_ctl, "status", p)


def test_changes_visible_at_once_durable_at_fsync(mount, store, run_ctl):
    p = make_store(run_ctl, store, dim=4, rows=int_rows(3, 4))
    m = mount(p)
    m.sh('for i in $(seq 10 59); do echo "1 2 3 $i" > "$M/vectors/$i"; done; '
         'rm "$M/vectors/1" "$M/vectors/2"')
    st = m.status()
    assert (st["vectors"], st["durable"]) == ("51", "no")
    assert m.read_vector(59) == [1, 2, 3, 59]
    assert on_disk(run_ctl, p)["vectors"] == 3      # no manifest names them yet
    m.sh('sync "$M/vectors/10"')                     # fsync of any file of the mount
    assert m.status()["durable"] == "yes"
    d = on_disk(run_ctl, p)
    assert (d["vectors"], d["deleted"]) == (51, 2)
    # unmount commits too
    m.sh('echo "9 9 9 9" > "$M/vectors/99"')
    assert on_disk(run_ctl, p)["vectors"] == 51
    m.unmount()
    assert on_disk(run_ctl, p)["vectors"] == 52


def test_sync_option_commits_each_change(mount, store, run_ctl):
    p = make_store(run_ctl, store, dim=4, rows=int_rows(3, 4))
    m = mount(p, "sync")
    m.sh('echo "1 2 3 4" > "$M/vectors/10"')
    assert m.status()["durable"] == "yes"
    assert on_disk(run_ctl, p)["vectors"] == 4
    m.sh('rm "$M/vectors/10"')
    assert on_disk(run_ctl, p)["vectors"] == 3


def test_commit_interval(mount, store, run_ctl):
    from mountlib import wait_for
    p = make_store(run_ctl, store, dim=4, rows=int_rows(3, 4))
    m = mount(p, "commit=1")
    m.sh('echo "1 2 3 4" > "$M/vectors/10"')
    # durable within about a second without anyone asking (generous bound:
    # the machine may be loaded; this is not a timing measurement)
    assert wait_for(lambda: on_disk(run_ctl, p)["vectors"] == 4, 30, 0.2)
    assert m.status()["durable"] == "yes"


def test_many_deletes_cost_what_they_delete(mount, store, run_ctl, tmp_path):
    """rm of 500 vectors: a few manifests, not 500 (each would list every
    segment and every deleted id)."""
    rows = int_rows(500, 4)
    p = make_store(run_ctl, store, dim=4, rows=rows)
    m = mount(p)
    size0 = os.path.getsize(p)
    m.sh('rm "$M"/vectors/*')
    assert m.status()["vectors"] == "0"
    m.unmount()
    grown = os.path.getsize(p) - size0
    # a journal segment per rm (~92 bytes) and one final manifest
    assert grown < 500 * 150, grown
    d = on_disk(run_ctl, p)
    assert d["vectors"] == 0


def test_automatic_compaction_at_unmount(mount, store, run_ctl, tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text("[compact]\nauto = on\nratio = 0.5\nmin_dead_mb = 0\n")
    p = make_store(run_ctl, store, dim=4, rows=int_rows(200, 4))
    m = mount(p, f"config={conf}")
    m.sh('rm "$M"/vectors/1*')
    st = m.status()
    assert int(st["dead_bytes"]) > 0
    m.unmount()
    d = on_disk(run_ctl, p)
    # compacted: no deletion list, nothing dead left but the trailing witness
    assert d["deleted"] == 0 and d["vectors"] == 200 - 111
    assert d["deadBytes"] < 200, d
    # with auto = off the dead bytes stay
    conf.write_text("[compact]\nauto = off\n")
    m = mount(p, f"config={conf}")
    m.sh('rm "$M"/vectors/2*')
    m.unmount()
    d = on_disk(run_ctl, p)
    assert d["deleted"] > 0 and d["deadBytes"] > 1000
