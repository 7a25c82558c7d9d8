#!/bin/bash
# pytest-file-cpu.sh - CPU seconds (user+sys) of pytest files as a pass of
# tests/run-all.sh runs them, the rvffs daemons and every other process
# they start included (RUSAGE_CHILDREN misses the daemons: they are not
# waited for by pytest).  Each file runs in a cpuacct cgroup of its own,
# removed afterwards.  Needs root and cgroup v1's cpuacct.
#
#   bench/pytest-file-cpu.sh build|build-asan FILE...   (names under tests/pytest)
#   e.g. bench/pytest-file-cpu.sh build-asan test_reliability_faults.py test_mount_ingest.py
#
# Prints one line per file: CPU-s, wall s, exit status, load average; for
# a file that failed (exit other than 0 or 5, no tests), its failed tests
# and where its output was kept.
set -u
variant=$1
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
root=/sys/fs/cgroup/cpuacct
[ -w "$root" ] || { echo "needs root and $root (cgroup v1 cpuacct)" >&2; exit 2; }
if [ "$variant" = build-asan ]; then
	envs=(ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1)
	marks="not normal_pass and not background_pass"
else
	envs=()
	marks="not sanitizer_pass and not background_pass"
fi
for f in "$@"; do
	cg=$root/pytest-file-cpu-$$
	mkdir "$cg"
	out=$(mktemp)
	t0=$(date +%s.%N)
	(
		echo "$BASHPID" > "$cg/cgroup.procs"
		cd "$repo" && exec env "${envs[@]}" RVF_BUILD_DIR="$variant" /usr/bin/python3 -m pytest -q \
			-n "${RVF_PYTEST_WORKERS:-2}" -m "$marks" "tests/pytest/$f" > "$out" 2>&1
	)
	rc=$?
	t1=$(date +%s.%N)
	sleep 0.5 # the last daemons' exit
	ns=$(cat "$cg/cpuacct.usage")
	rmdir "$cg"
	printf "%-40s %-10s cpu %6.1f s  wall %6.1f s  exit %d  load %s\n" "$f" "$variant" \
		"$(echo "$ns / 1000000000" | bc -l)" "$(echo "$t1 - $t0" | bc -l)" "$rc" \
		"$(cut -d' ' -f1-3 /proc/loadavg)"
	# a failure is no timing to compare: keep what pytest said
	if [ "$rc" != 0 ] && [ "$rc" != 5 ]; then
		keep=${TMPDIR:-/tmp}/pytest-file-cpu.$f.$$.log
		mv "$out" "$keep"
		echo "    failed: $(grep -E '^(FAILED|ERROR) ' "$keep" | head -n 3 | tr '\n' ' ')(output: $keep)"
	else
		rm -f "$out"
	fi
done
