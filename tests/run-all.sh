#!/usr/bin/env bash
# tests/run-all.sh: THE test command of rvffs.
#
#   bash tests/run-all.sh
#
# 1. installs missing Debian packages (apt-get; as root, or through sudo);
# 2. installs the reference implementation in tests/interop (npm, pinned);
# 3. configures and builds `build` (optimised) and `build-asan`
#    (AddressSanitizer + UBSan);
# 4. runs `meson test` in both;
# 5. runs the pytest suites (tests/pytest) against both builds.
#
# Environment:
#   RVF_SKIP_ASAN_PYTEST=1   skip the pytest run against build-asan
#   RVF_SKIP_APT=1           never call apt-get (report missing packages only)
#   PYTEST_ARGS="..."        extra pytest arguments (e.g. "-k interop -x")
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
              libzstd-dev libinih-dev libjansson-dev zlib1g-dev libisal-dev python3-pytest attr rsync
              man-db libclang-rt-14-dev bsdextrautils libssl-dev libxxhash-dev)
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

build_ok=()
for variant in build build-asan; do
	say "configure + build: $variant"
	if [ "$variant" = build ]; then
		opts=(-Dbuildtype=debugoptimized -Db_sanitize=none)
	else
		opts=(-Dbuildtype=debugoptimized '-Db_sanitize=address,undefined' -Db_lundef=false)
	fi
	if ! configure "$variant" "${opts[@]}"; then
		fail_step "meson setup $variant"
		continue
	fi
	if ! ninja -C "$variant"; then
		fail_step "ninja -C $variant"
		continue
	fi
	build_ok+=("$variant")
done

has_build() { local b; for b in "${build_ok[@]}"; do [ "$b" = "$1" ] && return 0; done; return 1; }

# Sanitizer settings for everything run from build-asan, LeakSanitizer
# included: the unit tests, rvfctl and every daemon the mount tests start
# must exit without a leak report.
asan_env=(ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
          UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}")

# ------------------------------------------------------------ 4. meson test
for variant in build build-asan; do
	has_build "$variant" || continue
	say "meson test: $variant"
	if [ "$variant" = build-asan ]; then
		env "${asan_env[@]}" meson test -C "$variant" --print-errorlogs || fail_step "meson test $variant"
	else
		meson test -C "$variant" --print-errorlogs || fail_step "meson test $variant"
	fi
done

# ------------------------------------------------------------ 5. pytest
run_pytest() { # variant, env...
	local variant=$1 log rc line n word bad=0
	shift
	log=$(mktemp)
	say "pytest: RVF_BUILD_DIR=$variant"
	# shellcheck disable=SC2086
	env RVF_BUILD_DIR="$variant" "$@" "$PYTHON" -m pytest -q tests/pytest ${PYTEST_ARGS:-} 2>&1 | tee "$log"
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
	if has_build build; then
		run_pytest build
	else
		fail_step "pytest (build): not built"
	fi
	if [ "${RVF_SKIP_ASAN_PYTEST:-0}" = 1 ]; then
		say "pytest: RVF_BUILD_DIR=build-asan skipped (RVF_SKIP_ASAN_PYTEST=1)"
	elif has_build build-asan; then
		run_pytest build-asan "${asan_env[@]}"
	else
		fail_step "pytest (build-asan): not built"
	fi
fi

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
