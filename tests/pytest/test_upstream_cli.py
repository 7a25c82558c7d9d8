"""The commands of upstream's `rvf` CLI that rvfctl adds: filter,
rebuild-refcounts, verify-attestation.  Every store they write must open in
the reference (tests/interop/ref.js) showing what we show."""

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import int_rows, make_store


@pytest.fixture
def five(store, run_ctl):
    return make_store(run_ctl, store, dim=3, rows=int_rows(5, 3))


@pytest.mark.parametrize("mode,ids,want", [("--include-ids", "2,4,99", [2, 4]),
                                           ("--exclude-ids", "1,5", [2, 3, 4])])
def test_filter_to_out_is_a_branch_the_reference_sees(five, tmp_path, ctl_json, ref, mode,
                                                      ids, want):
    out = tmp_path / "out.rvf"
    r = ctl_json("filter", five, mode, ids, "-o", out, "--json")
    assert r["status"] == "filtered" and r["visible"] == len(want)
    assert ctl_json("status", out, "--json")["vectors"] == len(want)
    d = ref.dump(out)
    assert d["openError"] is None and d["all_ids"] == want
    # the parent is unchanged
    assert ref.dump(five)["all_ids"] == [1, 2, 3, 4, 5]


def test_filter_in_place_on_a_branch_and_refused_on_a_plain_store(five, tmp_path, run_ctl,
                                                                  ctl_json, ref):
    before = five.read_bytes()
    cp = run_ctl("filter", five, "--exclude-ids", "1", check=False)
    assert cp.returncode == 3 and "not a branch child" in cp.stderr
    assert five.read_bytes() == before
    child = tmp_path / "child.rvf"
    run_ctl("branch", five, child)
    ctl_json("filter", child, "--include-ids", "1,2,3", "--json")
    ctl_json("filter", child, "--exclude-ids", "2", "--json")
    assert ref.dump(child)["all_ids"] == [1, 3]


def test_filter_through_a_mount(five, tmp_path, run_ctl, ctl_json, mount, ref):
    child = tmp_path / "child.rvf"
    run_ctl("branch", five, child)
    m = mount(child)
    r = ctl_json("filter", m.path, "--exclude-ids", "3,4", "--json")
    assert r["visible"] == 3
    assert sorted(int(x) for x in m.ls("vectors")) == [1, 2, 5]
    m.unmount()
    # the daemon made it durable (a deferred commit once dropped it)
    assert ref.dump(child)["all_ids"] == [1, 2, 5]
    # -o from a mounted store: a new filtered branch of it
    m = mount(five)
    out = tmp_path / "o.rvf"
    ctl_json("filter", m.path, "--include-ids", "1,5", "-o", out, "--json")
    m.unmount()
    assert ref.dump(out)["all_ids"] == [1, 5]


def test_branch_delete_through_mount_is_kept(five, tmp_path, run_ctl, mount, ref):
    """A delete that hides inherited ids of a branch child through the
    daemon's deferred commits must show at once and survive unmount."""
    child = tmp_path / "child.rvf"
    run_ctl("branch", five, child)
    m = mount(child)
    m.sh('rm "$M/vectors/2"')
    assert sorted(int(x) for x in m.ls("vectors")) == [1, 3, 4, 5]
    m.unmount()
    assert ref.dump(child)["all_ids"] == [1, 3, 4, 5]


def test_filter_usage_errors(five, run_ctl):
    assert run_ctl("filter", five, check=False).returncode == 2
    assert run_ctl("filter", five, "--include-ids", "1", "--exclude-ids", "2",
                   check=False).returncode == 2
    assert run_ctl("filter", five, "--include-ids", "x", check=False).returncode == 2
