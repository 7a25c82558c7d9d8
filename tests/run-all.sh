#!/usr/bin/env bash
# tests/run-all.sh: THE test command of rvffs.
#
#   bash tests/run-all.sh
#
# 1. installs missing Debian packages (apt-get; as root, or through sudo);
# 2. installs the reference implementation in tests/interop (npm, pinned);
# 3. configures and builds, all with -Werror: `build` (optimised),
#    `build-asan` (AddressSanitizer + UBSan), and, compile-only, the CI
#    variants build-ci/{release,hardened,clang,nofuse}; the fuzz targets;
# 4. runs `meson test` in build, build-asan and build-ci/nofuse, and the
#    search unit tests cross-built for aarch64 under qemu (cross-aarch64.sh);
# 5. runs the pytest suites (tests/pytest) against build and build-asan.
#
# Environment:
#   RVF_SKIP_ASAN_PYTEST=1   skip the pytest run against build-asan
#   RVF_SKIP_APT=1           never call apt-get (report missing packages only)
#   PYTEST_ARGS="..."        extra pytest arguments (e.g. "-k interop -x")
#   RVF_PYTEST_WORKERS=N     pytest-xdist processes per pass (default 2)
#
# Exits non-zero when anything failed. The last line is a pytest-style
# summary over both pytest runs, with every failed non-pytest step counted
# as one error.

set -uo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
REPO=$PWD
START=$SECONDS

PYTHON=/usr/bin/python3
APT_PACKAGES=(meson ninja-build pkg-config gcc clang libfuse3-dev fuse3 libsodium-dev
              libzstd-dev libinih-dev libjansson-dev zlib1g-dev libisal-dev python3-pytest
              python3-pytest-xdist attr rsync man-db libclang-rt-14-dev bsdextrautils
              dpkg-dev debhelper fakeroot lintian libssl-dev libxxhash-dev libbrotli-dev libmicrohttpd-dev curl chromium
              qemu-system-x86 busybox-static linux-image-cloud-amd64
              gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)
REF_PACKAGES=("@ruvector/rvf-node@0.2.3" "@ruvector/rvf-node-linux-x64-gnu@0.2.2")

failed_steps=()
uncounted=0 # failed steps that no pytest count covers
py_passed=0 py_failed=0 py_skipped=0 py_errors=0 py_xfailed=0 py_xpassed=0

say() { printf '\n=== %s\n' "$*"; }
# fail_step NAME [counted]: "counted" when pytest's own counts already show it
fail_step() {
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
# "compile" (building is the test).  The extra variants only compile, so
# they cost build time, not test time.
hardening() { # Debian's own flags, as dpkg-buildpackage passes them
	local v
	for v in CFLAGS CPPFLAGS LDFLAGS; do
		printf '%s=%s\n' "$v" "$(DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$v")"
	done
}
mapfile -t HARDENING < <(command -v dpkg-buildflags >/dev/null && hardening)

build_ok=()     # variants that built
test_dirs=()    # variants whose tests run (meson test + pytest)
unit_dirs=()    # variants whose meson tests run

build_variant() { # NAME WHAT-RUNS [VAR=value...] -- MESON-OPTIONS...
	local dir=$1 what=$2 envs=()
	shift 2
	while [ $# -gt 0 ] && [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	say "configure + build: $dir ($what)"
	if ! (for e in "${envs[@]}"; do export "${e?}"; done
	      configure "$dir" -Dwerror=true "$@"); then
		fail_step "meson setup $dir"
		return
	fi
	if ! ninja -C "$dir"; then
		fail_step "ninja -C $dir"
		return
	fi
	build_ok+=("$dir")
	case $what in
	tests) test_dirs+=("$dir"); unit_dirs+=("$dir") ;;
	unit) unit_dirs+=("$dir") ;;
	esac
}

build_variant build tests -- -Dbuildtype=debugoptimized -Db_sanitize=none
build_variant build-asan tests -- -Dbuildtype=debugoptimized \
	'-Db_sanitize=address,undefined' -Db_lundef=false
build_variant build-ci/release compile -- -Dbuildtype=release
build_variant build-ci/hardened compile "${HARDENING[@]}" -- -Dbuildtype=plain
build_variant build-ci/clang compile CC=clang -- -Dbuildtype=debugoptimized
build_variant build-ci/nofuse unit -- -Dbuildtype=debugoptimized -Dfuse=false

# The fuzz targets as plain programs under ASan/UBSan, for
# tests/pytest/test_fuzz_regressions.py (gcc, and clang whose UBSan also
# sees pointer-arithmetic overflow).
for cc in gcc clang; do
	command -v "$cc" >/dev/null || continue
	say "build: fuzz targets (standalone, CC=$cc)"
	CC=$cc bash tests/fuzz/build.sh --standalone >/dev/null ||
		fail_step "tests/fuzz/build.sh --standalone (CC=$cc)"
done

has_build() { local b; for b in "${build_ok[@]}"; do [ "$b" = "$1" ] && return 0; done; return 1; }
is_asan_dir() { [[ $1 == *asan* ]]; }

# Sanitizer settings for everything run from build-asan, LeakSanitizer
# included: the unit tests, rvfctl and every daemon the mount tests start
# must exit without a leak report.
asan_env=(ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
          UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}")

# ------------------------------------------------------------ 4. meson test
# The "slow" suite (test_faults: a thousand forked fault-injection runs)
# runs once, under ASan, where its error paths are also checked for memory
# errors.  build-asan's meson test runs in the background beside the first
# pytest pass (whose mounts wait more than they compute); its log is shown
# when that pass is over (finish_asan_unit).
asan_unit_pid='' asan_unit_log='' asan_unit_dir=''
for variant in "${unit_dirs[@]}"; do
	if is_asan_dir "$variant"; then
		say "meson test: $variant (in the background, log below)"
		asan_unit_log=$(mktemp)
		asan_unit_dir=$variant
		env "${asan_env[@]}" meson test -C "$variant" --print-errorlogs \
			--timeout-multiplier 3 > "$asan_unit_log" 2>&1 &
		asan_unit_pid=$!
	else
		say "meson test: $variant"
		meson test -C "$variant" --print-errorlogs --no-suite slow || fail_step "meson test $variant"
	fi
done

finish_asan_unit() {
	[ -n "$asan_unit_pid" ] || return 0
	local rc=0
	wait "$asan_unit_pid" || rc=$?
	say "meson test: $asan_unit_dir"
	cat "$asan_unit_log"
	rm -f "$asan_unit_log"
	[ "$rc" = 0 ] || fail_step "meson test $asan_unit_dir"
	asan_unit_pid=''
}

# ------------------------------------------------------------ 4b. aarch64
# The search kernels for ARM (NEON, sdot), cross-built and run under qemu.
say "aarch64 search unit tests (qemu)"
bash tests/cross-aarch64.sh "$REPO/build-ci/aarch64" || fail_step "aarch64 unit tests under qemu"

# ------------------------------------------------------------ 5. pytest
# Two passes over tests/pytest, one per test build.  Tests whose result
# does not depend on the build under test run in one pass only (markers in
# tests/pytest/conftest.py): `normal_pass` (the benchmark, installs, the
# Debian package, fuzz regressions whose programs carry their own
# sanitizers) and `sanitizer_pass` (the soak, where ASan sees most).
# pytest-xdist spreads a pass over RVF_PYTEST_WORKERS processes (default 2).
xdist=()
if "$PYTHON" -c 'import xdist' 2>/dev/null; then
	xdist=(-n "${RVF_PYTEST_WORKERS:-2}" --dist loadgroup)
fi

run_pytest() { # variant, marker expression, env...
	local variant=$1 marks=$2 log rc line n word bad=0
	shift 2
	log=$(mktemp)
	say "pytest: RVF_BUILD_DIR=$variant${marks:+ -m \"$marks\"}"
	# shellcheck disable=SC2086
	env RVF_BUILD_DIR="$variant" "$@" "$PYTHON" -m pytest -q "${xdist[@]}" \
		${marks:+-m "$marks"} tests/pytest ${PYTEST_ARGS:-} 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '[0-9]+ (passed|failed|skipped|errors?|xfailed|xpassed|deselected)' "$log" | tail -n 1)
	rm -f "$log"
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

if [ ! -x "$PYTHON" ] || ! "$PYTHON" -c 'import pytest' 2>/dev/null; then
	fail_step "$PYTHON -m pytest unavailable (apt-get install python3-pytest)"
else
	if [ "${RVF_SKIP_ASAN_PYTEST:-0}" = 1 ]; then
		normal_marks="" # no second pass: run everything here
	else
		normal_marks="not sanitizer_pass"
	fi
	if has_build build; then
		run_pytest build "$normal_marks"
	else
		fail_step "pytest (build): not built"
	fi
	finish_asan_unit
	if [ "${RVF_SKIP_ASAN_PYTEST:-0}" = 1 ]; then
		say "pytest: RVF_BUILD_DIR=build-asan skipped (RVF_SKIP_ASAN_PYTEST=1)"
	elif has_build build-asan; then
		run_pytest build-asan "not normal_pass" "${asan_env[@]}"
	else
		fail_step "pytest (build-asan): not built"
	fi
fi

finish_asan_unit # when no pytest pass ran

# ------------------------------------------------------------ summary
elapsed=$((SECONDS - START))

say "summary"
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
