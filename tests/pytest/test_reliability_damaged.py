"""Damaged files: the corpus of tests/damaged/make_damaged.py (truncations at
every segment boundary and inside segments, flipped bytes in every segment
type, lying lengths, manifests pointing outside the file, absurd counts and
dimensions, lying payload internals with valid hashes, branch parents
missing / changed / replaced, branch cycles).

For every file:
  * `rvfctl --json inspect FILE` (this build: under build-asan with the
    sanitizers, leaks included) either opens it (exit 0) or refuses it
    (exit 3) with one clear `openError` line naming the problem; never a
    crash, a hang (30 s timeout) or a sanitizer report.  The files are
    inspected 160 to a process (`rvfctl --json inspect F1 F2 ...`, one JSON
    line each: a process start under ASan costs 30 times the inspection);
    a batch showing any problem is run again one file a process, so that
    the problem names its file (inspect_batch);
  * the reference (`@ruvector/rvf-node`, tests/damaged/ref_batch.js) is asked
    the same: when we open a file, the reference opens it too and sees the
    same ids (torn tails fall back to the same older manifest); when we
    refuse a file the reference opens, the damage must be one the reference
    does not check (a content hash, a VEC row count that does not fit, a
    header of another type, a damaged META / COW_MAP / MEMBERSHIP, dimension
    0) - ALLOWED_STRICTER below; where the reference crashes or hangs (it
    does, e.g. on a huge total_vectors) there is nothing to compare.

A sample is mounted (ASan daemon): refused at mount with one line, or
mounted with every damaged segment file giving EIO and a line in `errors`,
and the daemon exits cleanly at unmount (no sanitizer or leak report).
"""

import fcntl
import json
import os
import re
import resource
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mountlib import sanitizer_reports
from reliability_lib import (LONG, REPO, SANITIZER_MARKERS, is_asan,  # noqa: F401
                             node_exe, report, rvfctl_exe, sanitizer_env)

GEN = REPO / "tests" / "damaged" / "make_damaged.py"
REF_BATCH = REPO / "tests" / "damaged" / "ref_batch.js"

# Our open refuses, the reference opens: allowed only for damage the
# reference does not look at.  (kind, detail regex, our error code regex)
ALLOWED_STRICTER = [
    # Content hashes: we verify VEC, META, COW_MAP and MEMBERSHIP payloads
    # (docs/format.md); the reference reads them unchecked.
    ("flip", r"^(vec|meta|cow_map|membership)-", r"^(InvalidChecksum|CorruptSegment|CowMapCorrupt|MembershipInvalid)$"),
    ("length", r"^(vec|meta|cow_map|membership)-", r"^(InvalidChecksum|CorruptSegment|CowMapCorrupt|MembershipInvalid)$"),
    # VEC rows that do not fit their payload: the reference drops the
    # segment's rows silently, we refuse.
    ("vec", r"^count-", r"^CorruptSegment$"),
    # A directory entry whose header is of another type.
    ("manifest", r"^entry-(points-at-manifest|type-changed)$", r"^CorruptSegment$"),
    # A manifest damaged so that a META entry points nowhere: the
    # reference ignores META, we need it (metadata is persisted).
    ("flip", r"^manifest-.*-payload-", r"^CorruptSegment$"),
    # Dimension 0: no vector can be read; the reference shows an empty store.
    ("manifest", r"^dim-0$", r"^InvalidManifest$"),
    # Damaged metadata internals (valid hash): the reference ignores META.
    ("payload", r"^meta-", r"^(CorruptSegment|InvalidChecksum|InvalidArgument)$"),
]

# We open, the reference refuses: a branch child whose parent was appended
# to after the branch.  We read the parent as it was then (issue 11 item 8):
# the child must show what the undamaged child shows.
MORE_OPEN = [("branch", r"^parent-changed$")]

CODE_RE = re.compile(r"^([A-Za-z]+): (.+)$")


def allowed_stricter(case, code):
    for kind, detail, codes in ALLOWED_STRICTER:
        if case["kind"] == kind and re.search(detail, case["detail"]) and re.search(codes, code):
            return True
    return False


def limit_memory():
    # A plain build must not allocate without bound: 4 GiB of address space
    # (the store mapping reserves size + 64 MiB).
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    # Under pytest-xdist the two tests of this file usually run in two
    # workers: the first makes the corpus, the other waits for it and uses
    # the same files (make_damaged.py's 27 rvfctl runs once, not twice).
    # Both only read them: inspect opens read-only, the mounts are `ro`
    # (they make no lock file) and the mounted copies live elsewhere.
    if os.environ.get("PYTEST_XDIST_WORKER"):
        out = tmp_path_factory.getbasetemp().parent / "damaged-corpus"  # this session's
    else:
        out = tmp_path_factory.mktemp("damaged")
    with open(f"{out}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (out / "cases.json").exists():  # written last: the corpus is complete
            inside = "7" if LONG else "3"
            cp = subprocess.run([sys.executable, str(GEN), str(out), "--rvfctl",
                                 str(rvfctl_exe()), "--inside", inside],
                                capture_output=True, text=True, timeout=300)
            assert cp.returncode == 0, cp.stderr
    cases = json.loads((out / "cases.json").read_text())
    return out, cases


def reference_verdicts(files, workdir):
    """{file: record} from ref_batch.js; a file on which the reference
    crashed or hung gets {"crashed": why}."""
    node = node_exe()
    res, todo = {}, list(files)
    restarts = 0
    while todo:
        lst = Path(workdir) / "ref-list.txt"
        lst.write_text("".join(f + "\n" for f in todo))
        try:
            cp = subprocess.run([node, str(REF_BATCH), str(lst)], capture_output=True,
                                timeout=60 + len(todo) * 0.2)
            out, rc = cp.stdout, cp.returncode
        except subprocess.TimeoutExpired as e:
            out, rc = e.stdout or b"", "timeout (hang)"
        lines = [json.loads(ln) for ln in out.decode(errors="replace").splitlines() if ln.strip()]
        for ln in lines:
            res[ln["file"]] = ln
        if len(lines) >= len(todo):
            break
        res[todo[len(lines)]] = {"file": todo[len(lines)], "crashed": f"exit {rc}"}
        todo = todo[len(lines) + 1:]
        restarts += 1
        assert restarts < 500, "the reference keeps crashing"
    return res


def run_inspect(cases, logdir, timeout):
    """`rvfctl --json inspect FILE...` over cases, the sanitizers' reports
    going to files in logdir: CompletedProcess, or None on a timeout."""
    exe = rvfctl_exe()
    env = sanitizer_env(logdir, leaks=True)
    if is_asan(exe):
        env["ASAN_OPTIONS"] += ":max_allocation_size_mb=2048:allocator_may_return_null=0"
    with subprocess.Popen([str(exe), "--json", "inspect"] + [c["file"] for c in cases],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                          preexec_fn=None if is_asan(exe) else limit_memory) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            return None
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def inspect_one(case, logdir):
    """(case, exit code, stdout, stderr, problem): one rvfctl process for
    the file, 30 s at most; its sanitizer reports in logdir (its own)."""
    logdir.mkdir()
    cp = run_inspect([case], logdir, 30)
    if cp is None:
        return case, None, b"", b"", "HANG: rvfctl inspect did not finish within 30 s"
    err = cp.stderr.decode(errors="replace")
    if any(m in err for m in SANITIZER_MARKERS):
        return case, cp.returncode, cp.stdout, cp.stderr, f"sanitizer report:\n{err[-3000:]}"
    # A report that did not halt rvfctl (UBSan without halt_on_error, a
    # leak at exit) is in a log file, not on stderr.
    reps = sanitizer_reports(logdir)
    if reps:
        return case, cp.returncode, cp.stdout, cp.stderr, f"sanitizer report in {reps[0]}"
    return case, cp.returncode, cp.stdout, cp.stderr, None


BATCH = 160


def inspect_batch(first, cases, logdir):
    """inspect_one of every case, through one `rvfctl --json inspect F1 F2
    ...` (rvfctl(1): one JSON line per file; exit, the first non-zero of the
    files').  Each file is opened and closed on its own; the process keeps
    no state from one file to the next (a thread pool, the C locale, the
    SIGBUS guard of mappings), so a file's line is what a process of its
    own prints, and its exit code is the line's "exit" (0 without an
    openError), what rvfctl's exit status is for one file.  What a line
    cannot show - a crash, a hang, a sanitizer report (leaks: at exit), a
    missing or unparsable line, an exit code outside (0, 3) - makes every
    file of the batch run on its own (inspect_one), so that the problem
    names its file."""
    bdir = logdir / f"batch{first}"
    bdir.mkdir()
    cp = run_inspect(cases, bdir, 30 + 2 * len(cases))
    lines = []
    if cp is not None and cp.returncode in (0, 3):
        err = cp.stderr.decode(errors="replace")
        try:
            lines = [json.loads(ln) for ln in cp.stdout.splitlines()]
        except ValueError:
            lines = []
        if any(m in err for m in SANITIZER_MARKERS) or sanitizer_reports(bdir):
            lines = []
    if len(lines) == len(cases) and all(o.get("store") == c["file"] and o.get("exit", 0) in (0, 3)
                                        for o, c in zip(lines, cases)):
        codes = [o.get("exit", 0) for o in lines]
        want = next((c for c in codes if c), 0)
        assert cp.returncode == want, f"rvfctl inspect of several files exits {cp.returncode}, " \
            f"the first non-zero of its files' codes is {want}"
        return [(c, code, json.dumps(o).encode(), b"", None)
                for c, code, o in zip(cases, codes, lines)]
    return [inspect_one(c, logdir / f"file{first + i}") for i, c in enumerate(cases)]


def test_damaged_files_open_or_refuse_like_the_reference(corpus, tmp_path):
    out, cases = corpus
    logdir = tmp_path / "logs"
    logdir.mkdir()
    problems = []
    stats = {"files": len(cases), "opened": 0, "refused": 0, "same_as_reference": 0,
             "fallbacks": 0, "stricter": 0, "reference_crashed": 0}
    starts = range(0, len(cases), BATCH)
    # The reference's verdicts (one node process, mostly waiting on its
    # crashes) while our inspects run, not before them: the same work, the
    # test's wall time is the longer of the two instead of their sum.
    with ThreadPoolExecutor(max_workers=1) as ref_ex, \
            ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as ex:
        ref_job = ref_ex.submit(reference_verdicts, [c["file"] for c in cases], tmp_path)
        results = [r for rs in ex.map(lambda i: inspect_batch(i, cases[i:i + BATCH], logdir),
                                      starts) for r in rs]
        ref = ref_job.result()
    for case, rc, stdout, stderr, problem in results:
        name = case["name"]
        if problem:
            problems.append(f"{name}: {problem}")
            continue
        err = stderr.decode(errors="replace")
        if rc < 0 or rc not in (0, 3):
            problems.append(f"{name}: rvfctl exit {rc} (want 0 or 3): {err[-500:]}")
            continue
        try:
            js = json.loads(stdout)
        except ValueError:
            problems.append(f"{name}: no JSON from rvfctl inspect: {stdout[:300]!r}")
            continue
        ours_open = rc == 0
        r = ref[case["file"]]
        if ours_open:
            stats["opened"] += 1
            assert js.get("openError") is None
            ids = sorted(int(i) for i, _ in js["live"])
        else:
            stats["refused"] += 1
            oe = js.get("openError") or ""
            m = CODE_RE.match(oe)
            if not m or "\n" in oe or len(m.group(2)) < 10 or m.group(2).endswith(": "):
                problems.append(f"{name}: refused without a clear one-line reason: {oe!r}")
                continue
        if "crashed" in r:
            stats["reference_crashed"] += 1
            continue
        ref_open = r.get("openError") is None and r.get("ids") is not None
        if ours_open and ref_open:
            rids = sorted(int(i) for i in r["ids"])
            if rids != ids:
                problems.append(f"{name}: we see {len(ids)} ids, the reference {len(rids)} "
                                f"(only ours: {sorted(set(ids) - set(rids))[:5]}, "
                                f"only the reference's: {sorted(set(rids) - set(ids))[:5]})")
                continue
            stats["same_as_reference"] += 1
            if case["kind"] != "intact":
                stats["fallbacks"] += 1
        elif ours_open and not ref_open and any(
                case["kind"] == k and re.search(d, case["detail"]) for k, d in MORE_OPEN):
            base = next(r for c, *_ in results for r in [ref[c["file"]]]
                        if c["kind"] == "intact" and c["base"] == case["base"])
            if sorted(int(i) for i in base["ids"]) != ids:
                problems.append(f"{name}: we open it with {len(ids)} ids, the intact "
                                f"child shows {len(base['ids'])}")
            stats["more_open"] = stats.get("more_open", 0) + 1
        elif ours_open and not ref_open:
            problems.append(f"{name}: we open it ({len(ids)} ids), the reference refuses: "
                            f"{r.get('openError') or r.get('queryError')}")
        elif not ours_open and ref_open:
            code = CODE_RE.match(js["openError"]).group(1)
            if allowed_stricter(case, code):
                stats["stricter"] += 1
            else:
                problems.append(f"{name}: we refuse ({js['openError']}), the reference opens it "
                                f"with {len(r['ids'])} ids")
        else:
            stats["same_as_reference"] += 1
    intact = [c for c, *_ in results if c["kind"] == "intact"]
    report("damaged", **stats, kinds=len({c["kind"] for c in cases}), intact=len(intact))
    assert not problems, f"{len(problems)} of {len(cases)} damaged files:\n" + "\n".join(problems[:40])
    bad = [(c["name"], rc, stderr[-300:])
           for c, rc, _, stderr, _ in results if c["kind"] == "intact" and rc != 0]
    assert not bad, f"undamaged base stores do not open: {bad}"
    # The corpus has what the issue asks for.
    kinds = {c["kind"] for c in cases}
    assert {"trunc", "flip", "length", "manifest", "vec", "payload", "branch"} <= kinds
    assert stats["fallbacks"] > 50  # torn tails falling back to an older manifest


# ------------------------------------------------------------------ mounts

MOUNT_SAMPLE = [
    # refused at mount
    "plain__flip__vec-first-payload-mid.rvf",
    "plain__trunc__0000032.rvf",
    "plain__manifest__dim-0.rvf",
    "ch__flip__cow_map-first-payload-mid.rvf",
    "noparent/ch.rvf",
    "cycle_self/ch.rvf",
    "cycle2/ch.rvf",
    # mounted, with damaged segments inside
    "changed/ch.rvf",       # the parent as it was at branch time
    "plain__flip__witness-last-payload-mid.rvf",
    "kernel__flip__kernel-first-payload-mid.rvf",
    "kernel__flip__ebpf-first-payload-mid.rvf",
    "deletes__flip__journal-first-payload-mid.rvf",
    "deletes__flip__witness-first-payload-start.rvf",
    "kernel__payload__kernel-image-size-huge.rvf",
    "kernel__payload__ebpf-program-size-huge.rvf",
    "kernel__payload__kernel-cmdline-length-huge.rvf",
    "plain__manifest__total-vectors-huge.rvf",
    "compacted__flip__witness-last-payload-end.rvf",
]


# Mounted where it lies in the corpus, beside its 1,200 damaged siblings:
# rvffs looks at every store file beside the mounted one for branch
# children (at the mount and in each read of `status`), and this one
# mount shows that such a look over damaged files is safe.
IN_PLACE = "plain__flip__witness-last-payload-mid.rvf"


def sample_copy(case, where):
    """The file to mount for a sampled case: a copy alone in a directory of
    its own, but for IN_PLACE and the files that are or name a branch
    parent (in subdirectories, or children of cases/pa.rvf).  The same
    bytes and the same store beside it; only the 1,200 damaged siblings
    are gone, whose look for branch children took most of each mount
    (seconds under ASan), and one mount (IN_PLACE) does that look."""
    src = Path(case["file"])
    if case["name"] == IN_PLACE or "/" in case["name"] or case["base"] in ("pa", "ch", "gc"):
        return src
    where.mkdir()
    dst = where / src.name
    dst.write_bytes(src.read_bytes())
    return dst


def test_mount_damaged_sample(corpus, mount, tmp_path):
    out, cases = corpus
    by_name = {c["name"]: c for c in cases}
    # Torn tails: mounts of a fallback (the last truncation of each base).
    trunc = sorted((c for c in cases if c["kind"] == "trunc" and c["base"] == "deletes"),
                   key=lambda c: c["detail"])
    sample = [n for n in MOUNT_SAMPLE if n in by_name] + [c["name"] for c in trunc[-3:]]
    assert len(sample) >= len(MOUNT_SAMPLE) - 2, "the corpus lacks the sampled files"
    assert IN_PLACE in sample
    refused = mounted = eio = 0
    for i, name in enumerate(sample):
        case = by_name[name]
        mnt = tmp_path / f"m{i}"
        d = mount.daemon(sample_copy(case, tmp_path / f"s{i}"), mnt, opts=["ro"])
        res = d.start(expect_fail=True)
        if res is not None:
            rc, log = res
            lines = [ln for ln in log.splitlines() if ln.strip() and not ln.startswith("==")]
            assert rc == 1, f"{name}: mount refused with exit {rc}: {log}"
            assert len(lines) == 1 and lines[0].startswith("rvffs: cannot mount ") and \
                re.search(r"\(([A-Za-z]+)\)$", lines[0]), f"{name}: not one clear line: {log!r}"
            refused += 1
            continue
        mounted += 1
        d.status()
        for f in ("manifest", "lineage", "witness", "errors"):
            d.read(f)
        bad = 0
        for seg in sorted(os.listdir(mnt / "segments")):
            p = mnt / "segments" / seg
            if seg.endswith("-gap"):  # bytes that are no segment: shown as they are
                with open(p, "rb") as fh:
                    fh.read()
                continue
            hash_ok = os.getxattr(p, "user.rvf.hash_ok").decode()
            try:
                with open(p, "rb") as fh:
                    fh.read()
                assert hash_ok == "true", f"{name}: segments/{seg} (hash_ok={hash_ok}) reads"
            except OSError as e:
                assert e.errno == 5 and hash_ok == "false", f"{name}: segments/{seg}: {e}"
                bad += 1
                assert f"segments/{seg}" in d.errors(), f"{name}: no errors line for {seg}"
        eio += bad
        for img in ("kernel", "ebpf"):
            if (mnt / img).exists():
                try:
                    d.read(img)
                except OSError as e:
                    assert e.errno == 5, f"{name}: {img}: {e}"
                    assert img in d.errors()
                    eio += 1
        d.vector_ids()
        assert d.alive(), f"{name}: the daemon died"
        assert d.unmount() == 0, f"{name}: daemon exit status\n{d.log_text()}"
    report("damaged-mounts", mounted=mounted, refused=refused, eio_reads=eio)
    assert mounted >= 5 and refused >= 5 and eio >= 5
