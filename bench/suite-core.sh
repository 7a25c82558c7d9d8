#!/usr/bin/env bash
# bench/suite-core.sh: times the core of tests/run-all.sh (builds, quick unit
# tests, the two main pytest passes) for some settings, one run after another,
# and prints per run the core line (wall and CPU), each pass's wall time and
# the load average before and after.  Nothing else should run meanwhile: every
# run uses both cores for minutes.
#
#   bash bench/suite-core.sh [RUNS] ["VAR=value ..." ...]
#
# e.g.  bash bench/suite-core.sh 2 "" "RVF_ASAN_WORKERS=2 RVF_NORMAL_WORKERS=2"
# runs each setting ("" = the defaults) RUNS times, interleaved (A B A B), so
# that a change in the machine's load affects both alike.  The full logs are
# left in ${TMPDIR:-/tmp}/suite-core.*.log.
#
# SUITE_FULL=1 runs the whole of run-all (the heavy steps too) and also prints
# its total and the CPU the whole machine spent meanwhile (others included),
# e.g. to compare the heavy steps' scheduling:
#   SUITE_FULL=1 bash bench/suite-core.sh 1 "RVF_HEAVY_SCHED=nice" ""
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
runs=${1:-1}
shift || true
[ $# -gt 0 ] || set -- ""
for ((r = 1; r <= runs; r++)); do
	for setting in "$@"; do
		log=$(mktemp "${TMPDIR:-/tmp}/suite-core.XXXXXX.log")
		before=$(cut -d' ' -f1-3 /proc/loadavg)
		stat0=$(head -n 1 /proc/stat) t0=$SECONDS
		core_only=RVF_CORE_ONLY=1
		[ "${SUITE_FULL:-0}" = 1 ] && core_only=RVF_CORE_ONLY=0
		# shellcheck disable=SC2086
		env $core_only $setting bash tests/run-all.sh > "$log" 2>&1
		rc=$?
		after=$(cut -d' ' -f1-3 /proc/loadavg)
		stat1=$(head -n 1 /proc/stat)
		printf '[%s] run %d, %s (exit %d; load %s before, %s after; %s)\n' \
			"$(date -u +%H:%M)" "$r" "${setting:-defaults}" "$rc" "$before" "$after" "$log"
		grep -E '^=== \[[0-9]+ s\] core ' "$log" | sed 's/^/    /'
		grep -E 'CPU  (pytest|meson test|configure)' "$log" | sed 's/^/    /'
		grep -E '^[0-9]+ (passed|failed)' "$log" | sed 's/^/    /'
		if [ "${SUITE_FULL:-0}" = 1 ]; then
			grep -E '^=== \[[0-9]+ s\] step times' "$log" | sed 's/^/    /'
			# user nice system idle iowait irq softirq, in USER_HZ (100 a second)
			printf '%s\n%s\n' "$stat0" "$stat1" | awk -v s=$((SECONDS - t0)) -v n="$(nproc)" '
				NR == 1 { for (i = 2; i <= 8; i++) a[i] = $i }
				NR == 2 { busy = ($2 - a[2]) + ($3 - a[3]) + ($4 - a[4]) + ($7 - a[7]) + ($8 - a[8])
					printf "    machine: %.0f CPU-s busy of %d (everyone, this run included)\n", busy / 100, n * s }'
		fi
	done
done
