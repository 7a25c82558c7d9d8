#!/usr/bin/env bash
# bench/run.sh: rvffs against the reference implementation in one run.
#
#   bash bench/run.sh [--size small|100k|1m] [--json] [--skip-ref-query] ...
#
# Generates seeded data, runs @ruvector/rvf-node (tests/interop/node_modules)
# in-process through node and rvffs through real mounts, prints a table (or
# JSON with --json). `bash bench/run.sh --help` lists every option;
# bench/README.md explains the figures.
#
# Needs: a build in $RVF_BUILD_DIR (default build: ninja -C build), node,
# the reference installed (tests/run-all.sh or npm install in tests/interop),
# fusermount3, python3. Dropping caches for cold reads needs root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

build=${RVF_BUILD_DIR:-build}
case $build in /*) ;; *) build=$PWD/$build ;; esac
for tool in bench_data fvecs_store; do
	if [ ! -x "$build/bench/$tool" ] && [ -f "$build/build.ninja" ]; then
		# built before the tool existed: build just it
		ninja -C "$build" "bench/$tool" >&2
	fi
done

python=/usr/bin/python3
[ -x "$python" ] || python=python3
exec "$python" bench/bench.py "$@"
