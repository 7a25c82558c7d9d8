"""The benchmark's small size, so bench/ never rots (issue 5).

Runs `bash bench/run.sh --size small --search-n 2000 --json` (rvffs through
real mounts and the reference in node) and checks the shape of what it
prints: every workload is there, each with figures for both sides, and every
compared figure is a number on both sides; recall is checked where it is
exact.  No timing thresholds: the figures themselves are for people
(bench/README.md).
"""

import json
import math
import os
import shutil
import subprocess

import pytest

from conftest import REPO, build_dir_path, reference_install_problem

WORKLOADS = {"query", "ingest", "search", "mount", "reads", "compact", "writes", "tools"}
# rows every run has, per workload (keys of bench/bench.py's rows)
REQUIRED = {
    "query": {"qps_per_open", "p50_per_open", "p99_per_open", "recall_per_open",
              "qps_batch", "qps_slots", "index_build", "qps_vs_exact",
              "qps_per_open_nocodes", "qps_batch_nocodes", "codes_build"},
    "ingest": {"fvecs_vps", "npy_vps", "csv_vps", "csv_mbps"},
    "search": {f"{k}_{m}" for k in ("qps", "p50", "recall", "codes_build")
               for m in ("l2", "cosine", "ip")} | {"cosine_vs_l2", "ip_vs_l2"},
    "mount": {"open_seconds", "memory", "first_query", "memory_with_codes"},
    "reads": {"cat_warm", "tar_warm", "cat_cold", "tar_cold", "ls_first", "ls_warm"},
    "compact": {"compact_seconds"},
    "tools": {"ls_first", "ls_warm", "find_cat", "find_cat_again", "export_mount",
              "mount_random", "random_vs_sequential", "random_vs_sequential_cpu",
              "random_rss", "cat_segments_warm"},
}


SEARCH_N = 2000


def number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.mark.normal_pass  # measures rvffs, not the sanitizers
def test_bench_small(tmp_path):
    build = build_dir_path()
    for exe in (build / "fs" / "rvffs", build / "ctl" / "rvfctl"):
        if not os.access(exe, os.X_OK):
            pytest.skip(f"{exe} is not built")
    if not shutil.which("fusermount3") or not os.path.exists("/dev/fuse"):
        pytest.skip("FUSE is not available (fusermount3, /dev/fuse)")
    _, problem = reference_install_problem()
    if problem:
        pytest.fail(f"the reference implementation is not installed ({problem}): "
                    f"run tests/run-all.sh (or `npm install` in tests/interop)", pytrace=False)

    # The search workload (three metrics, each with the reference's HNSW
    # build) at 2,000 x 384 rather than 10,000: the figures are checked here,
    # measured in bench/.  2,000 x 384 floats is above the size at which
    # the daemon builds its search codes, so their build is checked too.
    cmd = ["bash", str(REPO / "bench" / "run.sh"), "--size", "small", "--json",
           "--search-n", str(SEARCH_N), "--single-ingests", "300",
           "--tmpdir", str(tmp_path)]
    try:
        cp = subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                            env=dict(os.environ, RVF_BUILD_DIR=str(build)))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)}: no answer after {e.timeout} s", pytrace=False)
    assert cp.returncode == 0, f"exit {cp.returncode}\n{cp.stderr[-4000:]}"
    doc = json.loads(cp.stdout)

    assert doc["size"] == "small" and doc["n"] >= 1000 and doc["dim"] == 128
    assert doc["search_n"] == SEARCH_N
    assert doc["reference_queries"] is True  # never skipped at the small size
    assert set(doc["workloads"]) == WORKLOADS
    for name, body in doc["workloads"].items():
        rows = {r["key"]: r for r in body["rows"]}
        missing = REQUIRED.get(name, set()) - set(rows)
        assert not missing, f"{name}: rows missing: {sorted(missing)}"
        compared = [r for r in body["rows"] if r["compare"]]
        assert compared, f"{name}: no figure compares rvffs with a base"
        for r in body["rows"]:
            where = f"{name}/{r['key']}"
            if r["key"] in ("cat_cold", "tar_cold") and not doc["cold_reads"]:
                continue  # not root: caches cannot be dropped
            if r["key"] != "index_build":
                assert number(r["rvffs"]), f"{where}: rvffs = {r['rvffs']!r}"
            if r["compare"]:
                assert number(r["reference"]), f"{where}: base = {r['reference']!r}"
                assert number(r["ratio"]), f"{where}: ratio = {r['ratio']!r}"

    q = {r["key"]: r for r in doc["workloads"]["query"]["rows"]}
    assert number(q["index_build"]["reference"])  # the reference's HNSW build
    # exact search: recall against brute force (a correctness check, not a timing)
    assert q["recall_per_open"]["rvffs"] >= 0.99
    assert q["recall_vs_exact"]["reference"] >= 0.99
    # search codes are built for every metric, and with the exact rerank
    # they find what the float scan finds
    srch = {r["key"]: r for r in doc["workloads"]["search"]["rows"]}
    for metric in ("l2", "cosine", "ip"):
        assert number(srch[f"codes_build_{metric}"]["rvffs"]), doc.get("notes")
        assert srch[f"recall_{metric}"]["rvffs"] >= 0.99, srch[f"recall_{metric}"]
    # a query answered with EIO or a damaged answer is a daemon fault
    assert q["failed_requests"]["rvffs"] == 0, doc.get("notes")
