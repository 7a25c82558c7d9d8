#!/usr/bin/env bash
# tests/fuzz/run.sh - builds and runs the libFuzzer targets for a set time.
#
#   bash tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to 60; TARGETs default to all of them
# (fuzz_open fuzz_import_csv fuzz_import_jsonl fuzz_import_json
# fuzz_import_fvecs fuzz_import_npy fuzz_query fuzz_filter fuzz_control), run one after
# the other.  Builds with tests/fuzz/build.sh into build-fuzz/, makes the
# seeds (tests/fuzz/make-seeds.sh), then runs each target with
#   -max_total_time=S -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
# over the persistent corpus build-fuzz/corpus/<target> (new inputs are
# kept there between runs) plus the seeds and tests/fuzz/regressions/.
# LeakSanitizer is on: a leak counts as a crash.  Logs go to
# build-fuzz/logs/<target>.log, crashing inputs to build-fuzz/artifacts/
# <target>/.  Prints per target: seconds, executions, exec/s, cov, ft,
# corpus size and crashes, appends the same to build-fuzz/results.tsv, and
# exits non-zero when any target crashed (or failed to run).
#
# Environment: FUZZ_EXTRA="..." more libFuzzer flags; FUZZ_NO_BUILD=1 skips
# the build (e.g. when several runs share one build).
set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ALL_TARGETS=(fuzz_open fuzz_import_csv fuzz_import_jsonl fuzz_import_json
             fuzz_import_fvecs fuzz_import_npy fuzz_query fuzz_filter
             fuzz_control)

secs=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
	secs=$1
	shift
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")

OUT=build-fuzz
if [ "${FUZZ_NO_BUILD:-0}" != 1 ]; then
	# Two runs started together must not build at once.
	mkdir -p "$OUT"
	(
		flock 9
		bash tests/fuzz/build.sh "${targets[@]}" &&
			bash tests/fuzz/make-seeds.sh "$OUT/seeds"
	) 9>"$OUT/.build.lock" || { echo "run.sh: build failed" >&2; exit 2; }
fi

# Per-target libFuzzer options.
opts_for() {
	case $1 in
	fuzz_open) echo "-max_len=131072 -dict=tests/fuzz/dicts/rvf.dict" ;;
	fuzz_import_csv) echo "-max_len=16384 -dict=tests/fuzz/dicts/text.dict" ;;
	fuzz_import_jsonl|fuzz_import_json|fuzz_query|fuzz_filter)
		echo "-max_len=16384 -dict=tests/fuzz/dicts/json.dict" ;;
	fuzz_import_npy) echo "-max_len=16384 -dict=tests/fuzz/dicts/npy.dict" ;;
	fuzz_control) echo "-max_len=4096 -dict=tests/fuzz/dicts/control.dict" ;;
	*) echo "-max_len=16384" ;;
	esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:handle_abort=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

stat_of() { # NAME LOG: a stat::NAME value of -print_final_stats
	sed -n "s/^stat::$1: *//p" "$2" | tail -1
}

mkdir -p "$OUT/logs"
[ -f "$OUT/results.tsv" ] ||
	printf 'date\ttarget\tseconds\texecs\texec_per_s\tcov\tft\tcorpus\tcrashes\n' >"$OUT/results.tsv"
rows=()
bad=0
for t in "${targets[@]}"; do
	bin=$OUT/$t
	if [ ! -x "$bin" ]; then
		echo "run.sh: $bin is missing" >&2
		bad=1
		continue
	fi
	corpus=$OUT/corpus/$t
	art=$OUT/artifacts/$t
	mkdir -p "$corpus" "$art"
	dirs=("$corpus")
	for d in tests/fuzz/seeds/$t "$OUT/seeds/$t" tests/fuzz/regressions/$t; do
		[ -d "$d" ] && dirs+=("$d")
	done
	log=$OUT/logs/$t.log
	before=$(ls "$art" | wc -l)
	echo "=== $t: ${secs}s (log: $log)"
	start=$SECONDS
	# shellcheck disable=SC2046,SC2086
	"$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
		-print_final_stats=1 -artifact_prefix="$art/" $(opts_for "$t") \
		${FUZZ_EXTRA:-} "${dirs[@]}" </dev/null >"$log" 2>&1
	rc=$?
	took=$((SECONDS - start))
	execs=$(stat_of number_of_executed_units "$log")
	eps=$(stat_of average_exec_per_sec "$log")
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1)
	cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
	ncorp=$(ls "$corpus" | wc -l)
	after=$(ls "$art" | wc -l)
	crashes=$((after - before))
	if [ $rc -ne 0 ] && [ $crashes -eq 0 ]; then
		crashes=1 # died without an artifact (e.g. a startup failure)
	fi
	if [ $crashes -gt 0 ]; then
		bad=1
		echo "!!! $t: crashed (exit $rc); see $log and $art/"
		grep -E 'ERROR: |runtime error|SUMMARY|FUZZ_CHECK|Test unit written' "$log" | head -8
	fi
	row=$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$t" "$took" "${execs:-?}" \
		"${eps:-?}" "${cov:-?}" "${ft:-?}" "$ncorp" "$crashes")
	rows+=("$row")
	printf '%s\t%s\n' "$(date -u +%FT%TZ)" "$row" >>"$OUT/results.tsv"
done

echo
{
	printf 'target\tseconds\texecs\texec/s\tcov\tft\tcorpus\tcrashes\n'
	printf '%s\n' "${rows[@]}"
} | column -t -s $'\t'
exit $bad
