#!/bin/sh
# meson test "rvfctl": the tool end to end on a real file (create, ingest,
# query, delete, compact, verify), so the -Dfuse=false build tests rvfctl
# too.  Usage: smoke.sh RVFCTL
set -eu
rvfctl=$(realpath "$1")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
cd "$dir"
printf '1,0,0\n2,1,1\n3,5,5\n' > a.csv
"$rvfctl" create s.rvf --dim 2 > /dev/null
"$rvfctl" ingest s.rvf a.csv > /dev/null
got=$("$rvfctl" query s.rvf --vector 1,1 --k 2 | tr '\n' ' ')
[ "$got" = "2 0 1 2 " ] || { echo "query: got '$got'" >&2; exit 1; }
"$rvfctl" delete s.rvf --ids 2 > /dev/null
"$rvfctl" compact s.rvf > /dev/null
got=$("$rvfctl" query s.rvf --vector 1,1 --k 2 | tr '\n' ' ')
[ "$got" = "1 2 3 32 " ] || { echo "after delete + compact: got '$got'" >&2; exit 1; }
"$rvfctl" verify s.rvf > /dev/null
echo ok
