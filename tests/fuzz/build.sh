#!/usr/bin/env bash
# tests/fuzz/build.sh - builds the fuzz targets (no meson involved).
#
#   bash tests/fuzz/build.sh [--standalone] [--out DIR] [TARGET...]
#
# Default: libFuzzer binaries with clang -fsanitize=fuzzer,address,undefined
# into build-fuzz/.  --standalone: the same targets as plain programs (a
# main() that runs the files/directories named on its command line once
# each, tests/fuzz/standalone_main.c) with gcc -fsanitize=address,undefined
# into build-fuzz-standalone/ (used by tests/pytest/test_fuzz_regressions.py;
# CC=clang builds build-fuzz-standalone-clang/, whose UBSan also sees
# pointer-arithmetic overflow, which gcc's does not).
# The engine sources (and fs/control_parse.c for fuzz_control) are
# compiled with the same flags; fuzz_query drives librvf's query language
# (engine/request.c): no FUSE headers.  Objects are rebuilt when a source or header is newer
# or the flags changed.  CC overrides the compiler.  Compiles go through
# ccache when it is installed (a fresh checkout rebuilds from its cache).
#
# Targets: fuzz_open fuzz_import_csv fuzz_import_jsonl fuzz_import_json
#          fuzz_import_fvecs fuzz_import_npy fuzz_query fuzz_filter fuzz_control
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
REPO=$PWD

ALL_TARGETS=(fuzz_open fuzz_import_csv fuzz_import_jsonl fuzz_import_json
             fuzz_import_fvecs fuzz_import_npy fuzz_query fuzz_filter
             fuzz_control)

mode=fuzz
out=
targets=()
while [ $# -gt 0 ]; do
	case $1 in
	--standalone) mode=standalone ;;
	--out) out=$2; shift ;;
	-h|--help) sed -n '2,16p' "$0"; exit 0 ;;
	-*) echo "build.sh: unknown option $1" >&2; exit 2 ;;
	*) targets+=("$1") ;;
	esac
	shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${ALL_TARGETS[@]}")
for t in "${targets[@]}"; do
	case " ${ALL_TARGETS[*]} " in
	*" $t "*) ;;
	*) echo "build.sh: unknown target $t" >&2; exit 2 ;;
	esac
done

SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
BASE="-std=gnu11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Wall -Wextra -Wno-unused-parameter"
if [ $mode = fuzz ]; then
	CC=${CC:-clang}
	out=${out:-build-fuzz}
	CFLAGS="$BASE $SAN -fsanitize=fuzzer-no-link"
	LDFLAGS="$SAN -fsanitize=fuzzer"
else
	CC=${CC:-gcc}
	# gcc by default; another compiler gets its own directory
	# (CC=clang: build-fuzz-standalone-clang).
	if [ "$(basename "$CC")" = gcc ]; then
		out=${out:-build-fuzz-standalone}
	else
		out=${out:-build-fuzz-standalone-$(basename "$CC")}
	fi
	CFLAGS="$BASE $SAN -DFUZZ_STANDALONE"
	LDFLAGS="$SAN"
fi
command -v "$CC" >/dev/null || { echo "build.sh: $CC not found" >&2; exit 1; }
CCACHE=$(command -v ccache || true)
INC="-I$REPO/engine/include -I$REPO/engine -I$REPO/tests/fuzz"
DEPS_CFLAGS=$(pkg-config --cflags jansson libsodium libzstd zlib libisal nettle libxxhash libbrotlidec)
LIBS="$(pkg-config --libs jansson libsodium libzstd zlib libisal nettle libxxhash libbrotlidec) -lpthread -lm"

mkdir -p "$out/obj/engine" "$out/obj/fs" "$out/obj/fuzz"
# Flags changed (or another compiler): start over.
stamp="$CC $CFLAGS $INC $DEPS_CFLAGS"
if [ ! -f "$out/obj/flags" ] || [ "$(cat "$out/obj/flags")" != "$stamp" ]; then
	rm -f "$out"/obj/*/*.o
	printf '%s' "$stamp" >"$out/obj/flags"
fi

# Newest header anywhere an object may include from.
newest_header=$(ls -t engine/*.h engine/include/*.h fs/*.h tests/fuzz/*.h | head -1)

stale() { # OBJ SRC
	[ ! -f "$1" ] || [ "$2" -nt "$1" ] || [ "$newest_header" -nt "$1" ]
}

JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
pids=()
failed=0
compile() { # OBJ SRC EXTRA_FLAGS...
	local obj=$1 src=$2
	shift 2
	stale "$obj" "$src" || return 0
	echo "  CC $src"
	# shellcheck disable=SC2086
	# (-MD: lets ccache's depend mode list the headers)
	$CCACHE $CC $CFLAGS $INC $DEPS_CFLAGS "$@" -MD -MF "$obj.d" -c "$src" -o "$obj.tmp" &&
		mv "$obj.tmp" "$obj" &
	pids+=($!)
	if [ ${#pids[@]} -ge "$JOBS" ]; then
		wait "${pids[0]}" || failed=1
		pids=("${pids[@]:1}")
	fi
}
finish() {
	local p
	for p in "${pids[@]}"; do wait "$p" || failed=1; done
	pids=()
	[ $failed = 0 ] || { echo "build.sh: compilation failed" >&2; exit 1; }
}

echo "building fuzz targets ($mode, $CC) into $out/"
engine_objs=()
for src in engine/*.c; do
	obj=$out/obj/engine/$(basename "$src" .c).o
	compile "$obj" "$src"
	engine_objs+=("$obj")
done

for t in "${targets[@]}"; do
	[ "$t" = fuzz_control ] &&
		compile "$out/obj/fs/control_parse.o" fs/control_parse.c -I"$REPO/fs"
done

extra_objs=()
if [ $mode = standalone ]; then
	compile "$out/obj/fuzz/standalone_main.o" tests/fuzz/standalone_main.c
	extra_objs+=("$out/obj/fuzz/standalone_main.o")
fi

for t in "${targets[@]}"; do
	[ -n "$t" ] || continue
	case $t in
	fuzz_import_*)
		fmt=$(echo "${t#fuzz_import_}" | tr a-z A-Z)
		compile "$out/obj/fuzz/$t.o" tests/fuzz/fuzz_import.c \
			-DFUZZ_FORMAT=RVF_IMPORT_$fmt
		;;
	fuzz_control)
		compile "$out/obj/fuzz/$t.o" tests/fuzz/$t.c -I"$REPO/fs" ;;
	*)
		compile "$out/obj/fuzz/$t.o" tests/fuzz/$t.c ;;
	esac
done
finish

for t in "${targets[@]}"; do
	[ -n "$t" ] || continue
	objs=("$out/obj/fuzz/$t.o" "${engine_objs[@]}" "${extra_objs[@]}")
	[ $t = fuzz_control ] && objs+=("$out/obj/fs/control_parse.o")
	newer=0
	[ -f "$out/$t" ] || newer=1
	for o in "${objs[@]}"; do [ "$o" -nt "$out/$t" ] && newer=1; done
	[ $newer = 1 ] || continue
	echo "  LD $out/$t"
	# shellcheck disable=SC2086
	$CC $LDFLAGS -o "$out/$t" "${objs[@]}" $LIBS
done
echo "done: $(for t in "${targets[@]}"; do [ -n "$t" ] && printf '%s ' "$out/$t"; done)"
