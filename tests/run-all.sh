#!/usr/bin/env bash
# tests/run-all.sh: THE test command of rvffs.
#
#   bash tests/run-all.sh
#
# 1. installs missing Debian packages (apt-get; as root, or through sudo);
# 2. installs the reference implementation in tests/interop (npm, pinned);
# 3. configures and builds, all with -Werror: `build` (optimised) and
#    `build-asan` (AddressSanitizer + UBSan);
# 4. runs the quick unit tests (`meson test`) of both, and
# 5. the two pytest passes (tests/pytest) against build and build-asan,
#    side by side.  Steps 1-5 are the core: when they are done, a line says
#    so ("core (...): N s wall, M s CPU").
# The heavy steps run when the core is done (or beside it, in the
# background at nice 19 and SCHED_IDLE: RVF_HEAVY_AFTER_CORE=0): the CI variants
# build-ci/{release,hardened,clang} (compile only) and build-ci/nofuse
# (with its unit tests), then the search unit tests cross-built for
# aarch64 under qemu (cross-aarch64.sh); the fuzz targets, then the heavy
# tests (pytest -m background_pass: the benchmark, the Debian package, the
# QEMU boot, the fuzz regressions); the "slow" unit suite under ASan.
#
# Every step's header shows the seconds since the start; the end lists
# each step's wall time and CPU time; each pytest pass prints its 25
# slowest tests.
#
# Environment:
#   RVF_SKIP_ASAN_PYTEST=1   skip the pytest run against build-asan
#   RVF_SKIP_APT=1           never call apt-get (report missing packages only)
#   PYTEST_ARGS="..."        extra pytest arguments (e.g. "-k interop -x")
#   RVF_ASAN_WORKERS=N       pytest-xdist processes of the build-asan pass
#   RVF_NORMAL_WORKERS=N     ... of the build pass (the two run at once;
#                            defaults: see "xdist" below)
#   RVF_PYTEST_WORKERS=N     both of them (and the background_pass pass)
#   RVF_HEAVY_AFTER_CORE=0   start the heavy steps beside the core, not
#                            when it is done (the default, 1)
#   RVF_HEAVY_SCHED=nice     the heavy steps at nice 19 only (not SCHED_IDLE)
#   RVF_CORE_ONLY=1          stop after the core (to time it): no heavy steps
#
# Exits non-zero when anything failed. The last line is a pytest-style
# summary over the pytest passes, with every failed non-pytest step counted
# as one error.

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
REPO=$PWD
START=$SECONDS

PYTHON=/usr/bin/python3
APT_PACKAGES=(meson ninja-build pkg-config gcc clang libfuse3-dev fuse3 libsodium-dev
              libzstd-dev libinih-dev libjansson-dev zlib1g-dev libisal-dev python3-pytest
              python3-pytest-xdist attr rsync man-db libclang-rt-14-dev bsdextrautils
              dpkg-dev debhelper fakeroot lintian nettle-dev libxxhash-dev libbrotli-dev libmicrohttpd-dev curl chromium
              qemu-system-x86 busybox-static linux-image-cloud-amd64
              gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user ccache)
REF_PACKAGES=("@ruvector/rvf-node@0.2.3" "@ruvector/rvf-node-linux-x64-gnu@0.2.2")

# Every compiler runs through ccache when it is installed (meson picks it
# up by itself; CC=clang and the fuzz and aarch64 scripts ask for it): a
# rerun compiles only what changed.  Its cache is shared across checkouts
# (paths under the repository hashed relative to it, the directory not
# hashed: an object's debug information may name another checkout).
# Failed compilations (-Werror) are never cached.  Depend mode: a miss
# costs one compile (the compiler's -MD output lists the headers), not a
# compile and a preprocessor run (a third more CPU on a cold cache).
if command -v ccache >/dev/null 2>&1; then
	export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$REPO} CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1} \
		CCACHE_DEPEND=${CCACHE_DEPEND:-1}
	CCACHE=ccache
else
	CCACHE=
fi

failed_steps=()
uncounted=0 # failed steps that no pytest count covers
py_passed=0 py_failed=0 py_skipped=0 py_errors=0 py_xfailed=0 py_xpassed=0

# Every step's header says when it starts; the summary lists how long each
# took (wall time, from one header to the next), longest first, and the CPU
# time (user + sys) of what it ran: on a shared machine the wall time
# swells, the CPU time much less.
cpu_now() { # CPU=user + sys seconds of this shell's finished children, so far
	local f=${TMPDIR:-/tmp}/rvf-run-all-times.$BASHPID
	# `times` here, not in $(...) or a pipe: a subshell counts its own children
	times > "$f"
	CPU=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/)
		printf "%d", u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$f")
	rm -f "$f"
}
# `times` also counts a background step (bg_start) once this shell has
# reaped it: a step's CPU leaves out the background steps reaped meanwhile
# (`kill -0` fails once reaped; a running or unreaped one is not counted).
bg_names=() bg_pids=() bg_logs=() bg_groups=() bg_cpu_collected=0
bg_cpu_reaped() { # [GROUP]: CPU of the reaped background steps (of GROUP)
	local i n=0
	[ -n "${1:-}" ] || n=$bg_cpu_collected
	for i in "${!bg_pids[@]}"; do
		[ -z "${1:-}" ] || [ "${bg_groups[$i]}" = "$1" ] || continue
		kill -0 "${bg_pids[$i]}" 2>/dev/null && continue
		n=$((n + $(cat "${bg_logs[$i]}.cpu" 2>/dev/null || echo 0)))
	done
	echo "$n"
}
CPU=0 BG_CPU=0 step_name='' step_start=0 step_cpu=0 step_bg_cpu=0 step_times=()
step_done() {
	cpu_now
	BG_CPU=$(bg_cpu_reaped)
	[ -n "$step_name" ] &&
		step_times+=("$(printf '%6d s %6d s CPU  %s' $((SECONDS - step_start)) \
			$((CPU - step_cpu - (BG_CPU - step_bg_cpu))) "$step_name")")
	step_name=''
}
say() {
	step_done
	step_name=$* step_start=$SECONDS step_cpu=$CPU step_bg_cpu=$BG_CPU
	printf '\n=== [%d s] %s\n' $((SECONDS - START)) "$*"
}
# fail_step NAME [counted]: "counted" when pytest's own counts already show it
fail_step() {
	# in a background step: its collector counts it (bg_collect)
	[ -n "${bg_failed_file:-}" ] && printf '%s\n' "$1" >> "$bg_failed_file"
	failed_steps+=("$1")
	[ "${2:-}" = counted ] || uncounted=$((uncounted + 1))
	printf '*** FAILED: %s\n' "$1"
}

# ------------------------------------------------------------ 1. packages
installed() {
	[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

say "packages"
if command -v dpkg-query >/dev/null 2>&1; then
	missing=()
	for p in "${APT_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
	# node and npm may come from elsewhere (nodesource, nvm): only the commands matter
	command -v node >/dev/null 2>&1 || missing+=(nodejs)
	command -v npm >/dev/null 2>&1 || missing+=(npm)
	if [ ${#missing[@]} -eq 0 ]; then
		echo "all present"
	elif [ "${RVF_SKIP_APT:-0}" = 1 ]; then
		echo "missing (RVF_SKIP_APT=1, not installing): ${missing[*]}"
	else
		echo "installing: ${missing[*]}"
		SUDO=()
		if [ "$(id -u)" != 0 ]; then
			if command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else
				echo "not root and no sudo: install them yourself"
			fi
		fi
		if [ "$(id -u)" = 0 ] || [ ${#SUDO[@]} -gt 0 ]; then
			export DEBIAN_FRONTEND=noninteractive
			if ! { "${SUDO[@]}" apt-get update -qq &&
			       "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; }; then
				fail_step "apt-get install ${missing[*]}"
			fi
		fi
	fi
else
	echo "dpkg-query not found: not a Debian system, skipping package installation"
fi

# ------------------------------------------------------------ 2. reference (npm)
ref_version_ok() {
	local spec name version got
	for spec in "${REF_PACKAGES[@]}"; do
		name=${spec%@*}
		version=${spec##*@}
		got=$(node -e 'try{process.stdout.write(require(process.argv[1]).version)}catch(e){}' \
			"$REPO/tests/interop/node_modules/$name/package.json" 2>/dev/null)
		[ "$got" = "$version" ] || return 1
	done
}

say "reference implementation (tests/interop)"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	fail_step "node/npm not available"
elif ref_version_ok; then
	echo "present: ${REF_PACKAGES[*]}"
else
	# no lockfile: a lockfile made on one machine can omit the platform package
	if (cd tests/interop && npm install --no-audit --no-fund --no-package-lock) && ref_version_ok; then
		echo "installed: ${REF_PACKAGES[*]}"
	else
		fail_step "npm install in tests/interop"
	fi
fi

# ------------------------------------------------------------ 3. build
configure() { # dir, options...
	local dir=$1
	shift
	if [ -f "$dir/meson-private/coredata.dat" ]; then
		meson setup --reconfigure "$dir" "$@" ||
			meson setup --wipe "$dir" "$@"
	else
		meson setup "$dir" "$@"
	fi
}

# Every variant is built with -Werror: warnings are errors here (CI), never
# in a user's build (meson.build sets no werror).  One line per variant:
#   NAME  WHAT-RUNS  [VAR=value...] -- MESON-OPTIONS
# WHAT-RUNS: "tests" (meson test, then pytest), "unit" (meson test but
# the "slow" suite, which the "tests" builds run on the same librvf),
# "compile" (building everything is the test), "product" (building what
# is installed is the test: rvffs, rvfctl, librvf; the unit tests and
# benchmarks are compiled, -Werror, by the gcc builds and clang).  The
# extra variants only compile, so they cost build time, not test time.
hardening() { # Debian's own flags, as dpkg-buildpackage passes them, but -g
	# (debug information changes no warning; it costs a sixth of the compile)
	local v
	for v in CFLAGS CPPFLAGS LDFLAGS; do
		printf '%s=%s\n' "$v" "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$v" |
			sed -E 's/(^| )-g( |$)/\1/')"
	done
}
mapfile -t HARDENING < <(command -v dpkg-buildflags >/dev/null && hardening)

build_ok=()     # variants that built
test_dirs=()    # variants whose tests run (meson test + pytest)

build_variant() { # NAME WHAT-RUNS [VAR=value...] -- MESON-OPTIONS...
	local dir=$1 what=$2 envs=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	say "configure + build: $dir ($what)"
	if ! (for e in "${envs[@]}"; do export "${e?}"; done
	      configure "$dir" -Dwerror=true "$@"); then
		fail_step "meson setup $dir"
		return 1
	fi
	local targets=()
	[ "$what" = product ] && targets=(rvfctl rvffs rvf)
	if ! meson compile -C "$dir" "${targets[@]}"; then
		fail_step "meson compile -C $dir ${targets[*]}"
		return 1
	fi
	build_ok+=("$dir")
	case $what in
	tests) test_dirs+=("$dir") ;;
	esac
}

# ------------------------------------------------------------ background steps
# The run has a core and heavy steps.  The core: the two builds the tests
# run from, their unit tests (but the "slow" suite) and the two main pytest
# passes; what a change is first checked by, printed as its own line when
# it ends ("core ...").  The heavy steps: the other build variants and
# aarch64, the fuzz programs, the "slow" unit suite and the heavy pytest
# tests (background_pass).  They start when the core is done: they are
# checks on top of it (the issue's time aim is the core's).  Beside the
# core, even at nice 19, in SCHED_IDLE and the idle I/O class, they cost
# it some 40 to 60 s (the disk and the VM's page faults are shared too;
# core alone 245 s, beside them 287 to 351 s, 2026-12-05), for 25 to 40 s
# less in all.  RVF_HEAVY_AFTER_CORE=0 starts them beside the core, in the
# background at nice 19, SCHED_IDLE and the idle I/O class (nice 19
# alone: RVF_HEAVY_SCHED=nice; it gave them a share of the CPU the core
# wanted: on the shared machine, one run each, core 458 s at nice 19,
# 396 s SCHED_IDLE).
# A background step's output is shown, its time listed and its failures
# counted when it is collected (bg_collect).
heavy_sched() { # PID: in SCHED_IDLE and the idle I/O class (inherited by
	# what it starts), but with RVF_HEAVY_SCHED=nice
	[ "${RVF_HEAVY_SCHED:-idle}" = idle ] || return 0
	chrt --idle -p 0 "$1" >/dev/null 2>&1
	ionice -c 3 -p "$1" >/dev/null 2>&1
	return 0
}
bg_start() { # NAME COMMAND... (a function of this script, or a program);
	# bg_nice=N (default 19) runs it at that priority, bg_group=G names its
	# group for bg_collect (default "heavy")
	local name=$1 log
	shift
	log=$(mktemp)
	printf '\n=== [%d s] %s: in the background (output below when it ends)\n' \
		$((SECONDS - START)) "$name"
	(
		bg_failed_file=$log.failed
		bg_names=() bg_pids=() bg_logs=() bg_groups=() bg_cpu_collected=0
		if [ "${bg_nice:-19}" != 0 ]; then
			renice -n "${bg_nice:-19}" -p "$BASHPID" >/dev/null 2>&1
			heavy_sched "$BASHPID"
		fi
		t0=$SECONDS
		"$@"
		rc=$?
		echo $((SECONDS - t0)) > "$log.time"
		cpu_now
		echo "$CPU" > "$log.cpu"
		exit "$rc"
	) > "$log" 2>&1 &
	bg_names+=("$name") bg_pids+=("$!") bg_logs+=("$log") bg_groups+=("${bg_group:-heavy}")
}
bg_collect() { # GROUP: waits for that group's steps, shows and counts them
	local i rc log f
	for i in "${!bg_pids[@]}"; do
		[ "${bg_groups[$i]}" = "$1" ] || continue
		rc=0
		wait "${bg_pids[$i]}" || rc=$?
		log=${bg_logs[$i]}
		printf '\n=== [%d s] %s (ran in the background)\n' $((SECONDS - START)) "${bg_names[$i]}"
		cat "$log"
		step_times+=("$(printf '%6d s %6d s CPU  %s (background)' \
			"$(cat "$log.time" 2>/dev/null || echo 0)" "$(cat "$log.cpu" 2>/dev/null || echo 0)" \
			"${bg_names[$i]}")")
		if [ -s "$log.failed" ]; then
			while read -r f; do fail_step "$f"; done < "$log.failed"
		elif [ "$rc" != 0 ]; then
			fail_step "${bg_names[$i]} (exit $rc)"
		fi
		bg_cpu_collected=$((bg_cpu_collected + $(cat "$log.cpu" 2>/dev/null || echo 0)))
		rm -f "$log" "$log.time" "$log.cpu" "$log.failed"
		unset "bg_names[$i]" "bg_pids[$i]" "bg_logs[$i]" "bg_groups[$i]"
	done
}
# The two builds the tests run from, in the foreground.
build_variant build tests -- -Dbuildtype=debugoptimized -Db_sanitize=none
build_variant build-asan tests -- -Dbuildtype=debugoptimized \
	'-Db_sanitize=address,undefined' -Db_lundef=false

# The variants whose building is their test, and the FUSE-less build with
# its unit tests; then the search unit tests cross-built for aarch64 and run
# under qemu (the ARM kernels: NEON, sdot).  A heavy step.
other_variants() {
	local bad=0
	build_variant build-ci/release product -- -Dbuildtype=release || bad=1
	build_variant build-ci/hardened product "${HARDENING[@]}" -- -Dbuildtype=plain || bad=1
	# everything, tests and benchmarks too (without -g it costs the same)
	build_variant build-ci/clang compile "CC=${CCACHE:+$CCACHE }clang" -- -Dbuildtype=debugoptimized || bad=1
	if build_variant build-ci/nofuse unit -- -Dbuildtype=debugoptimized -Dfuse=false; then
		say "meson test: build-ci/nofuse"
		# (at nice 19 beside the core: a slow start is no failure)
		meson test -C build-ci/nofuse --print-errorlogs --no-suite slow --timeout-multiplier 3 ||
			{ fail_step "meson test build-ci/nofuse"; bad=1; }
	else
		bad=1
	fi
	say "aarch64 search unit tests (qemu)"
	bash tests/cross-aarch64.sh "$REPO/build-ci/aarch64" ||
		{ fail_step "aarch64 unit tests under qemu"; bad=1; }
	return $bad
}

# The fuzz targets as plain programs under ASan/UBSan (gcc, and clang
# whose UBSan also sees pointer-arithmetic overflow), then the tests that
# take minutes whatever the build (marker background_pass: the benchmark,
# the Debian package, the fuzz regressions with those programs, the QEMU
# boot), as a third pytest pass against build.  A heavy step.
bg_pytest_log=$(mktemp)
fuzz_then_heavy_tests() {
	local cc
	for cc in gcc clang; do
		command -v "$cc" >/dev/null || continue
		say "build: fuzz targets (standalone, CC=$cc)"
		CC=$cc bash tests/fuzz/build.sh --standalone >/dev/null ||
			fail_step "tests/fuzz/build.sh --standalone (CC=$cc)"
	done
	# its counts and failures are taken from its log (pytest_count)
	if has_build build; then
		pytest_run build "background_pass" "$bg_pytest_log" "${RVF_PYTEST_WORKERS:-2}"
	fi
	return 0
}

has_build() { local b; for b in "${build_ok[@]}"; do [ "$b" = "$1" ] && return 0; done; return 1; }
is_asan_dir() { [[ $1 == *asan* ]]; }

# Sanitizer settings for everything run from build-asan, LeakSanitizer
# included: the unit tests, rvfctl and every daemon the mount tests start
# must exit without a leak report.
asan_env=(ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
          UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}")

# ------------------------------------------------------------ 4. meson test
# The quick unit tests of build and build-asan are core steps, beside the
# pytest passes.  The "slow" suite (test_faults: some 500 forked
# fault-injection runs) is a heavy step; it runs once, under ASan, where its
# error paths are also checked for memory errors.  (build-ci/nofuse's unit
# tests run with its build, in other_variants.)  --no-rebuild: both were
# just built, and a test in the passes beside may be installing from build.
unit_tests() { # dir, meson test options...
	local dir=$1
	shift
	if is_asan_dir "$dir"; then
		env "${asan_env[@]}" meson test -C "$dir" --no-rebuild --print-errorlogs \
			--timeout-multiplier 3 "$@"
	else
		meson test -C "$dir" --no-rebuild --print-errorlogs "$@"
	fi || { fail_step "meson test $dir $*"; return 1; }
}

# ------------------------------------------------------------ 5. pytest
# Three passes over tests/pytest.  Tests whose result does not depend on
# the build under test run in one pass only (markers in
# tests/pytest/conftest.py): `normal_pass` (installs, man pages, the SIGKILL
# crash tests) against
# build, `sanitizer_pass` (the soak and the fault injection, where ASan sees
# most) against build-asan, and `background_pass` (the heavy ones, see
# fuzz_then_heavy_tests) against build, a heavy step.  The passes
# against build and build-asan run side by side: most tests wait on FUSE
# round trips, on node and on process start-up more than they compute.
# pytest-xdist spreads each pass over its workers; --dist loadgroup hands
# the tests out in collection order (conftest.py: the long ones first) and
# keeps an xdist_group ("system") in one worker.  Workers per pass: 2 and
# 2.  Once the tests got cheaper, more workers for the ASan pass made the
# core slower, not faster, on an idle machine (bench/suite-core.sh, core
# only, one run each: ASan 2 workers 283 s / 464 CPU-s, 3 workers 285 s /
# 485, 4 workers 298 s / 511): the extra workers cost CPU in contention
# and in their own start-up, and the cores were already nearly full.
has_xdist=0
"$PYTHON" -c 'import xdist' 2>/dev/null && has_xdist=1
xdist() { # N: the pytest arguments for N pytest-xdist workers
	[ "$has_xdist" = 1 ] && echo "-n $1 --dist loadgroup"
}
asan_workers=${RVF_ASAN_WORKERS:-${RVF_PYTEST_WORKERS:-2}}
normal_workers=${RVF_NORMAL_WORKERS:-${RVF_PYTEST_WORKERS:-2}}

pytest_run() { # variant, marker expression, log, workers, env...: output to the log too
	local variant=$1 marks=$2 log=$3 workers=$4 shown=""
	shift 4
	[ "$has_xdist" = 1 ] && shown=" ($workers workers)" # else the pass is serial
	say "pytest: RVF_BUILD_DIR=$variant${marks:+ -m \"$marks\"}$shown"
	# shellcheck disable=SC2086
	env RVF_BUILD_DIR="$variant" "$@" "$PYTHON" -m pytest -q $(xdist "$workers") \
		--durations=25 ${marks:+-m "$marks"} tests/pytest ${PYTEST_ARGS:-} 2>&1 | tee "$log"
	echo "${PIPESTATUS[0]}" > "$log.rc"
}

pytest_count() { # variant, log (of pytest_run): adds its counts
	local variant=$1 log=$2 rc line n word bad=0
	rc=$(cat "$log.rc" 2>/dev/null || echo "never ran")
	line=$(grep -E '[0-9]+ (passed|failed|skipped|errors?|xfailed|xpassed|deselected)' "$log" 2>/dev/null | tail -n 1)
	rm -f "$log" "$log.rc"
	while read -r n word; do
		case $word in
		passed*) py_passed=$((py_passed + n)) ;;
		failed*) py_failed=$((py_failed + n)) bad=$((bad + n)) ;;
		skipped*) py_skipped=$((py_skipped + n)) ;;
		error*) py_errors=$((py_errors + n)) bad=$((bad + n)) ;;
		xfailed*) py_xfailed=$((py_xfailed + n)) ;;
		xpassed*) py_xpassed=$((py_xpassed + n)) ;;
		esac
	done < <(grep -oE '[0-9]+ [a-z]+' <<<"$line")
	# anything but 0 (all passed) is a failure, 5 (nothing collected) included
	if [ "$rc" != 0 ]; then
		if [ "$bad" -gt 0 ]; then
			fail_step "pytest ($variant, exit $rc)" counted
		else
			fail_step "pytest ($variant, exit $rc)"
		fi
	fi
}

start_heavy() {
	bg_start "the other build variants, aarch64" other_variants
	bg_start "fuzz targets, then pytest -m background_pass" fuzz_then_heavy_tests
	if has_build build-asan; then
		bg_start "meson test: build-asan --suite slow" unit_tests build-asan --suite slow
	fi
}

# The core, in the background at the normal priority: the unit tests, and
# the pass against build; the pass against build-asan in the foreground.
for variant in "${test_dirs[@]}"; do
	bg_nice=0 bg_group=core bg_start "meson test: $variant --no-suite slow" \
		unit_tests "$variant" --no-suite slow
done
[ "${RVF_HEAVY_AFTER_CORE:-1}" = 1 ] || [ "${RVF_CORE_ONLY:-0}" = 1 ] || start_heavy

py_logs=() py_variants=()
if [ ! -x "$PYTHON" ] || ! "$PYTHON" -c 'import pytest' 2>/dev/null; then
	fail_step "$PYTHON -m pytest unavailable (apt-get install python3-pytest)"
else
	if [ "${RVF_SKIP_ASAN_PYTEST:-0}" = 1 ]; then
		normal_marks="not background_pass" # no second pass: run everything here
	else
		normal_marks="not sanitizer_pass and not background_pass"
	fi
	if has_build build; then
		log=$(mktemp)
		py_logs+=("$log") py_variants+=(build)
		bg_nice=0 bg_group=core bg_start "pytest: RVF_BUILD_DIR=build (beside the build-asan pass)" \
			pytest_run build "$normal_marks" "$log" "$normal_workers"
	else
		fail_step "pytest (build): not built"
	fi
	if [ "${RVF_SKIP_ASAN_PYTEST:-0}" = 1 ]; then
		say "pytest: RVF_BUILD_DIR=build-asan skipped (RVF_SKIP_ASAN_PYTEST=1)"
	elif has_build build-asan; then
		log=$(mktemp)
		py_logs+=("$log") py_variants+=(build-asan)
		pytest_run build-asan "not normal_pass and not background_pass" "$log" "$asan_workers" \
			"${asan_env[@]}"
	else
		fail_step "pytest (build-asan): not built"
	fi
fi

say "waiting for the core's background steps"
bg_collect core
step_done # (and cpu_now)
core_line=$(printf 'core (builds, unit tests, both pytest passes): %d s wall, %d s CPU' \
	$((SECONDS - START)) $((CPU - $(bg_cpu_reaped heavy))))
printf '\n=== [%d s] %s\n' $((SECONDS - START)) "$core_line"
if [ "${RVF_CORE_ONLY:-0}" = 1 ]; then
	echo "RVF_CORE_ONLY=1: the heavy steps are not run"
elif [ "${RVF_HEAVY_AFTER_CORE:-1}" = 1 ]; then
	start_heavy
fi

[ ${#bg_pids[@]} -gt 0 ] && say "waiting for the heavy steps"
bg_collect heavy
for i in "${!py_logs[@]}"; do
	pytest_count "${py_variants[$i]}" "${py_logs[$i]}"
done
has_build build && [ "${RVF_CORE_ONLY:-0}" != 1 ] &&
	pytest_count "build, background_pass" "$bg_pytest_log"

# ------------------------------------------------------------ summary
step_done # (and cpu_now)
elapsed=$((SECONDS - START))

say "step times (wall, CPU user+sys; background steps overlap the others); all: $elapsed s, $CPU s CPU"
printf '%s\n' "${step_times[@]}" | sort -rn
say "summary"
echo "$core_line"
if [ ${#failed_steps[@]} -eq 0 ]; then
	echo "run-all: OK"
else
	echo "run-all: FAILED steps:"
	printf '  - %s\n' "${failed_steps[@]}"
fi
parts=()
[ "$py_failed" -gt 0 ] && parts+=("$py_failed failed")
[ "$py_passed" -gt 0 ] && parts+=("$py_passed passed")
[ "$py_skipped" -gt 0 ] && parts+=("$py_skipped skipped")
[ "$py_xfailed" -gt 0 ] && parts+=("$py_xfailed xfailed")
[ "$py_xpassed" -gt 0 ] && parts+=("$py_xpassed xpassed")
errs=$((py_errors + uncounted))
[ "$errs" -gt 0 ] && parts+=("$errs error$([ "$errs" -gt 1 ] && echo s)")
[ ${#parts[@]} -eq 0 ] && parts+=("no tests ran")
summary=${parts[0]}
for p in "${parts[@]:1}"; do summary+=", $p"; done
printf '========== %s in %ss ==========\n' "$summary" "$elapsed"
[ ${#failed_steps[@]} -eq 0 ]
