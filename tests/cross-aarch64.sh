#!/usr/bin/env bash
# tests/cross-aarch64.sh: the search engine's unit tests on AArch64, under
# qemu-user, from this (x86-64) machine.
#
#   bash tests/cross-aarch64.sh [OUTDIR]
#
# Needs Debian's gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user.
# Only the engine's search files are built (distance, search, codes, accel
# and what they use), statically, so no arm64 copies of libsodium, zstd,
# jansson, ISA-L or zlib are needed: those libraries serve the file format,
# which the x86-64 tests cover, while the code that differs by CPU (the
# NEON and sdot kernels) is all here.  test_accel searches with both ARM
# kernels (qemu's default CPU has sdot) and compares their integers with
# the portable kernel's; test_search checks the float kernels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CC=${CROSS_CC:-aarch64-linux-gnu-gcc}
QEMU=${QEMU:-qemu-aarch64}
out=${1:-$(mktemp -d "${TMPDIR:-/tmp}/rvf-aarch64.XXXXXX")}
mkdir -p "$out"
for tool in "$CC" "$QEMU"; do
	command -v "$tool" >/dev/null ||
		{ echo "cross-aarch64: $tool missing (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user)" >&2; exit 2; }
done

# Each source compiled once (through ccache when it is installed), then
# the two tests linked.
CCACHE=$(command -v ccache || true)
sources=(engine/error.c engine/distance.c engine/search.c engine/pool.c
         engine/codes.c engine/codes_neon.c engine/codes4.c engine/accel.c)
objs=()
pids=()
for src in "${sources[@]}" tests/unit/test_accel.c tests/unit/test_search.c; do
	obj=$out/$(basename "$src" .c).o
	$CCACHE "$CC" -std=gnu11 -O2 -g -Wall -Wextra -Werror -pthread -DRVF_SEARCH_ONLY \
		-Iengine -Iengine/include -Itests/unit -MD -MF "$obj.d" -c "$src" -o "$obj" &
	pids+=($!)
	case $src in engine/*) objs+=("$obj") ;; esac
done
for p in "${pids[@]}"; do wait "$p"; done
for t in test_accel test_search; do
	"$CC" -static -pthread "${objs[@]}" "$out/$t.o" -lm -o "$out/$t"
done
"$QEMU" "$out/test_accel"
"$QEMU" "$out/test_search"
echo "cross-aarch64: all passed"
