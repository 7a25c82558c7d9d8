"""Issue 11 items 9 and 10: freeze says only what lasts; segments/ copied
out rebuilds a working store."""

import os
import shutil
import subprocess

import pytest

from mountlib import mount, rvffs  # noqa: F401  (fixtures)
from mountlib import int_rows, make_store, parse_kv, write_csv

DIM = 4


@pytest.fixture
def root(store, run_ctl):
    return make_store(run_ctl, store, dim=DIM, rows=int_rows(5, DIM, seed=2))


# -- item 9 --

def test_freeze_of_a_root_store_is_refused(root, run_ctl, tmp_path):
    size = root.stat().st_size
    cp = run_ctl("freeze", root, check=False)
    assert cp.returncode == 3
    assert "not frozen" in cp.stderr and "not a branch child" in cp.stderr
    assert "frozen (epoch" not in cp.stdout
    assert root.stat().st_size == size, "a refused freeze writes nothing"
    more = write_csv(tmp_path / "more.csv", [(9, [1.0] * DIM)])
    run_ctl("ingest", root, more)  # nothing claimed, nothing enforced


def test_freeze_through_the_mount_of_a_root_store_is_refused(mount, root):
    m = mount(root)
    cp = m.sh('echo freeze > "$M/control"; echo "rc=$?"')
    assert "rc=1" in cp.stdout
    assert "not a branch child" in m.errors()
    assert m.status()["read_only"] == "false"
    m.sh('echo 1 2 3 4 > "$M/vectors/77"')
    assert 77 in m.vector_ids()


def test_freeze_of_a_branch_child_lasts(mount, root, run_ctl, store, ref, tmp_path):
    child = store("child.rvf")
    run_ctl("branch", root, child)
    cp = run_ctl("freeze", child)
    assert "frozen" in cp.stdout
    more = write_csv(tmp_path / "more.csv", [(9, [1.0] * DIM)])
    cp = run_ctl("ingest", child, more, check=False)
    assert cp.returncode != 0, "a frozen child took an ingest after reopening"
    m = mount(child)
    assert m.status()["read_only"] == "true"
    m.unmount()
    assert ref.dump(child)["openError"] is None, "the reference must open the frozen child"
