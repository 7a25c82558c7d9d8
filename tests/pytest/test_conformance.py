"""Conformance: `rvfctl inspect --json` against the corpus expectations.

For every *.rvf / *.rvdna under ../shared/corpus, FILE.expect.json records
what the reference implementation reports for FILE (see corpus/README.md).
rvfctl must report the same thing, or refuse the file with the same error.
"""

import json
import re
import subprocess

import pytest

from conftest import CORPUS, TIMEOUT, shared_missing_reason
from mountlib import SANITIZER_MARKERS


def corpus_files():
    if shared_missing_reason():
        return []
    files = sorted(p for p in CORPUS.rglob("*")
                   if p.is_file() and p.suffix in (".rvf", ".rvdna"))
    return files


FILES = corpus_files()

# Corrections to expectation files that contradict the reference itself.
#
# edge/w15_dim_mismatch.rvf: the manifest says dim 2; VEC segment 3 has dim 3
# and holds id 2 = [1,2,3]. rvf-format.md section 3.2 says such a segment is
# ignored row by row, and the reference agrees: the expect file's own
# status.totalVectors is 1 and `ref.js dump` (exact query over everything)
# returns only id 1. Only the oracle's independent-parser `live` list
# (liveCount 2) includes id 2 with its 3-float vector. We follow the
# reference: live = [id 1 = (1.0, 1.0)].
ERRATA = {
    "edge/w15_dim_mismatch.rvf": {
        "liveCount": 1,
        "live": [[1, "80b8fd6d60fa85fd14a38b5295cb92abd80dfec5ca406c9f969609a79d36809d"]],
        "vectorsDigest": "a71f4db9c2fecd73978e93916b7d22d4049e532297555adceb2d65c1f4e512af",
    },
}


# Where we deliberately differ from the reference (issue 11 item 8): a branch
# child whose parent was appended to after the branch is refused by the
# reference (ParentHashMismatch); we read the parent as it was when the child
# was made (the prefix whose tail hash is the child's parent_hash).  The
# oracle's own parser lists what the child then shows (`live`, 2 inherited
# rows): we must show exactly that.
DELIBERATE = {"edge/e04_child.rvf"}


def check_deliberate(path, exp, got, cp):
    assert cp.returncode == 0 and not got.get("openError"), (
        f"rvfctl refused {rel(path)}: {got.get('openError')}")
    parent = json.loads(path.with_name("e04_parent.rvf.expect.json").read_text())
    assert got["parentAsOf"] < got["parentSize"] == parent["fileSize"]
    ident = exp["parsed"]["identity"]
    assert (got["fileId"], got["parentId"], got["lineageDepth"]) == (
        ident["fileId"], ident["parentId"], ident["lineageDepth"])
    assert got["parentHash"] == ident["parentHash"]
    for k in ("dimension", "metric", "fileSize", "liveCount", "vectorsDigest"):
        assert got.get(k) == exp[k], f"{k}: {got.get(k)!r} != expected {exp[k]!r}"
    assert got["liveCount"] == exp["parsed"]["inheritedFromParent"]
    problems = []
    compare_live(exp["live"], got.get("live") or [], problems)
    assert not problems, problems


def rel(p):
    return p.relative_to(CORPUS).as_posix()


def error_name(msg):
    """'RVF error 0x0601: ParentHashMismatch' -> 'ParentHashMismatch'."""
    m = re.search(r"0x[0-9a-fA-F]+:\s*([A-Za-z][A-Za-z0-9_]*)", msg)
    if m:
        return m.group(1)
    return msg.rsplit(":", 1)[-1].strip()


def as_int(x):
    return int(x)


def norm_segments(segs):
    return [{"id": as_int(s["id"]), "offset": as_int(s["offset"]),
             "payloadLength": as_int(s["payloadLength"]), "segType": s["segType"]}
            for s in segs]


def compare_live(exp, got, problems):
    e = [(as_int(i), h) for i, h in exp]
    try:
        g = [(as_int(i), h) for i, h in got]
    except (TypeError, ValueError) as ex:
        problems.append(f"live: malformed list ({ex})")
        return
    if e == g:
        return
    if len(e) != len(g):
        problems.append(f"live: {len(g)} entries, expected {len(e)}")
    ei, gi = dict(e), dict(g)
    missing = sorted(set(ei) - set(gi))
    extra = sorted(set(gi) - set(ei))
    wrong = sorted(i for i in set(ei) & set(gi) if ei[i] != gi[i])
    if missing:
        problems.append(f"live: missing ids {missing[:10]}{'...' if len(missing) > 10 else ''}")
    if extra:
        problems.append(f"live: unexpected ids {extra[:10]}{'...' if len(extra) > 10 else ''}")
    if wrong:
        problems.append(f"live: wrong vector bytes for ids {wrong[:10]}"
                        f"{'...' if len(wrong) > 10 else ''}")
    if not (missing or extra or wrong):
        problems.append("live: entries not in ascending id order")


def compare_blob(name, exp, got, problems):
    if exp is None:
        if got is not None:
            problems.append(f"{name}: expected null, got {json.dumps(got)[:200]}")
        return
    if got is None:
        problems.append(f"{name}: expected {exp.get('extractedLen')} bytes, got null")
        return
    for k in ("headerHex", "extractedLen", "extractedSha256"):
        if exp.get(k) != got.get(k):
            problems.append(f"{name}.{k}: {got.get(k)!r} != expected {exp.get(k)!r}")


@pytest.fixture(scope="module")
def inspected(rvfctl):
    """{path: CompletedProcess} of one `rvfctl --json inspect` over every
    corpus file (rvfctl(1): one JSON line a file, its "exit" the exit code
    rvfctl gives for that file alone; the files are opened one after the
    other and share no state, see test_reliability_damaged.inspect_batch).
    Empty when the run shows anything a line cannot (a signal, a sanitizer
    report, a line missing): then every test runs rvfctl on its file alone.
    One process instead of one a file: under ASan its start costs more than
    the inspection."""
    if not FILES:
        return {}
    cp = subprocess.run([str(rvfctl), "--json", "inspect"] + [str(p) for p in FILES],
                        capture_output=True, text=True, timeout=TIMEOUT)
    try:
        lines = [json.loads(ln) for ln in cp.stdout.splitlines()]
    except ValueError:
        return {}
    if cp.returncode < 0 or any(m in cp.stderr for m in SANITIZER_MARKERS) or \
            [o.get("store") for o in lines] != [str(p) for p in FILES]:
        return {}
    codes = [o.get("exit", 0) for o in lines]
    assert cp.returncode == next((c for c in codes if c), 0), \
        "rvfctl inspect of several files: the exit code is not the first non-zero of theirs"
    return {str(p): subprocess.CompletedProcess(cp.args, code, json.dumps(o), "")
            for p, code, o in zip(FILES, codes, lines)}


@pytest.mark.skipif(not FILES, reason=shared_missing_reason() or "no corpus files")
@pytest.mark.parametrize("path", FILES, ids=[rel(p) for p in FILES])
def test_inspect_matches_expect(path, run_ctl, inspected):
    exp = json.loads(path.with_name(path.name + ".expect.json").read_text())
    exp.update(ERRATA.get(rel(path), {}))
    cp = inspected.get(str(path)) or run_ctl("inspect", "--json", path, check=False)
    try:
        got = json.loads(cp.stdout)
    except ValueError:
        pytest.fail(f"inspect printed no valid JSON (exit {cp.returncode})\n"
                    f"stdout: {cp.stdout[:2000]}\nstderr: {cp.stderr[-2000:]}", pytrace=False)

    if rel(path) in DELIBERATE:
        check_deliberate(path, exp, got, cp)
        return
    if exp.get("openError"):
        name = error_name(exp["openError"])
        rc = cp.returncode
        assert rc != 0, (
            f"rvfctl accepted a file the reference refuses with {exp['openError']}")
        oe = got.get("openError")
        assert oe and name in oe, (
            f"openError {oe!r} does not name {name} (reference: {exp['openError']})")
        return

    rc = cp.returncode
    assert rc == 0, (
        f"rvfctl refused a file the reference opens: exit {rc}, "
        f"openError {got.get('openError')!r}\nstderr: {cp.stderr[-2000:]}")
    problems = []
    if got.get("openError"):
        problems.append(f"openError: {got['openError']!r}, expected null")
    for k in ("dimension", "metric", "fileId", "parentId", "lineageDepth", "fileSize"):
        if got.get(k) != exp[k]:
            problems.append(f"{k}: {got.get(k)!r} != expected {exp[k]!r}")
    st = got.get("status") or {}
    for k in ("totalVectors", "totalSegments", "currentEpoch"):
        if st.get(k) != exp["status"][k]:
            problems.append(f"status.{k}: {st.get(k)!r} != expected {exp['status'][k]!r}")
    try:
        segs = norm_segments(got.get("segments") or [])
    except (KeyError, TypeError, ValueError) as ex:
        problems.append(f"segments: malformed ({ex!r})")
        segs = None
    if segs is not None and segs != norm_segments(exp["segments"]):
        e = norm_segments(exp["segments"])
        diff = next((i for i, (a, b) in enumerate(zip(segs, e)) if a != b), min(len(segs), len(e)))
        problems.append(f"segments differ (got {len(segs)}, expected {len(e)}) first at index "
                        f"{diff}: got {segs[diff] if diff < len(segs) else None}, "
                        f"expected {e[diff] if diff < len(e) else None}")
    compare_blob("kernel", exp["kernel"], got.get("kernel"), problems)
    compare_blob("ebpf", exp["ebpf"], got.get("ebpf"), problems)
    if got.get("liveCount") != exp["liveCount"]:
        problems.append(f"liveCount: {got.get('liveCount')!r} != expected {exp['liveCount']!r}")
    if got.get("vectorsDigest") != exp["vectorsDigest"]:
        problems.append(f"vectorsDigest: {got.get('vectorsDigest')!r} != expected "
                        f"{exp['vectorsDigest']!r}")
    compare_live(exp["live"], got.get("live") or [], problems)
    assert not problems, f"{rel(path)}:\n  " + "\n  ".join(problems)
