#!/bin/bash
# pytest-process-starts.sh - how many processes pytest files start, by
# program (rvfctl, rvffs, node, fusermount3, ...), as a pass
# of tests/run-all.sh runs them: each ASan process pays the sanitizer
# runtime's start and LeakSanitizer's exit scan (bench/asan_process_cost.py),
# so the count says where fewer starts would pay.  Not strace: LeakSanitizer
# ptraces the process at exit and fails under a tracer.  Instead perf
# records the kernel's exec and fork events, system-wide, and only the
# descendants of the pytest run are counted.  Needs root (perf -a).
#
#   bench/pytest-process-starts.sh build|build-asan FILE[::TEST]...   (names under tests/pytest)
#   RVF_PYTEST_WORKERS=N (default 1), PYTEST_ARGS="-k ..."
#
# Prints per file: the processes it started, by program.
set -u
variant=$1
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ "$variant" = build-asan ]; then
	envs=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
	marks="not normal_pass and not background_pass"
else
	envs=(RVF_UNUSED=1)
	marks="not sanitizer_pass and not background_pass"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "$@"; do
	perf record -q -a -e sched:sched_process_fork -e sched:sched_process_exec \
		-o "$tmp/perf.data" 2>/dev/null &
	perf_pid=$!
	sleep 1 # perf's start
	(
		echo "$BASHPID" > "$tmp/root"
		cd "$repo" && exec env "${envs[@]}" RVF_BUILD_DIR="$variant" /usr/bin/python3 -m pytest -q \
			-n "${RVF_PYTEST_WORKERS:-1}" -m "$marks" "tests/pytest/$f" ${PYTEST_ARGS:-} > "$tmp/out" 2>&1
	)
	rc=$?
	sleep 1 # the last daemons' exit
	kill -INT "$perf_pid"
	wait "$perf_pid"
	perf script -i "$tmp/perf.data" -F event,trace 2>/dev/null > "$tmp/events"
	printf '%s (%s, exit %d, %s): ' "$f" "$variant" "$rc" "$(tail -n 1 "$tmp/out")"
	/usr/bin/python3 - "$(cat "$tmp/root")" "$tmp/events" <<'EOF'
import collections, re, sys
root, events = int(sys.argv[1]), sys.argv[2]
ours = {root}
progs = collections.Counter()
for line in open(events, errors="replace"):
    m = re.search(r"sched_process_fork:.*pid=(\d+) child_comm=.* child_pid=(\d+)", line)
    if m:
        if int(m.group(1)) in ours:
            ours.add(int(m.group(2)))
        continue
    m = re.search(r"sched_process_exec: filename=(\S+) pid=(\d+)", line)
    if m and int(m.group(2)) in ours:
        name = m.group(1).rsplit("/", 1)[-1]
        progs[name] += 1
print(sum(progs.values()), "execs:", ", ".join(f"{n} {c}" for n, c in progs.most_common(12)))
EOF
done
