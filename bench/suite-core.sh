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
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
runs=${1:-1}
shift || true
[ $# -gt 0 ] || set -- ""
for ((r = 1; r <= runs; r++)); do
	for setting in "$@"; do
		log=$(mktemp "${TMPDIR:-/tmp}/suite-core.XXXXXX.log")
		before=$(cut -d' ' -f1-3 /proc/loadavg)
		# shellcheck disable=SC2086
		env RVF_CORE_ONLY=1 $setting bash tests/run-all.sh > "$log" 2>&1
		rc=$?
		after=$(cut -d' ' -f1-3 /proc/loadavg)
		printf '[%s] run %d, %s (exit %d; load %s before, %s after; %s)\n' \
			"$(date -u +%H:%M)" "$r" "${setting:-defaults}" "$rc" "$before" "$after" "$log"
		grep -E '^=== \[[0-9]+ s\] core ' "$log" | sed 's/^/    /'
		grep -E 'CPU  (pytest|meson test|configure)' "$log" | sed 's/^/    /'
		grep -E '^[0-9]+ (passed|failed)' "$log" | sed 's/^/    /'
	done
done
