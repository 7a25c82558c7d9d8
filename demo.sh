#!/usr/bin/env bash
# demo.sh: build rvffs, make a demo store with rvfctl, mount it and use it.
#
#   ./demo.sh            (leaves the store mounted on demo/mnt)
#
# Everything it makes is under ./demo; unmount with: fusermount3 -u demo/mnt
set -euo pipefail
cd "$(dirname "$0")"
source tests/install-deps.sh
install_packages "${BUILD_PACKAGES[@]}"

[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
ctl=build/ctl/rvfctl

mkdir -p demo/mnt
mountpoint -q demo/mnt && fusermount3 -u demo/mnt
rm -f demo/demo.rvf demo/demo.rvf.lock

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "rvfctl create demo/demo.rvf --dim 4 --metric l2"
$ctl create demo/demo.rvf --dim 4 --metric l2
# a small catalogue: id, then four numbers
awk 'BEGIN { srand(7); for (i = 1; i <= 1000; i++)
	printf "%d,%.3f,%.3f,%.3f,%.3f\n", i, rand(), rand(), rand(), rand() }' > demo/vectors.csv
step "rvfctl ingest demo/demo.rvf demo/vectors.csv"
$ctl ingest demo/demo.rvf demo/vectors.csv

step "rvffs demo/demo.rvf demo/mnt"
build/fs/rvffs demo/demo.rvf demo/mnt
step "ls demo/mnt"
ls demo/mnt
step "cat demo/mnt/status"
cat demo/mnt/status
step "ls demo/mnt/segments"
ls -l demo/mnt/segments
step "printf '9001\t0.5\t0.5\t0.5\t0.5\n' > demo/mnt/ingest/more.tsv"
printf '9001\t0.5\t0.5\t0.5\t0.5\n' > demo/mnt/ingest/more.tsv
step "cat demo/mnt/vectors/9001"
cat demo/mnt/vectors/9001
step "echo 'k=3 0.5 0.5 0.5 0.5' > demo/mnt/query; cat demo/mnt/query"
echo 'k=3 0.5 0.5 0.5 0.5' > demo/mnt/query
cat demo/mnt/query
step "rm demo/mnt/vectors/1; grep -E 'vectors|deleted' demo/mnt/status"
rm demo/mnt/vectors/1
grep -E 'vectors|deleted' demo/mnt/status
step "tail -n 3 demo/mnt/witness"
tail -n 3 demo/mnt/witness
printf '\nThe store stays mounted on demo/mnt; unmount with: fusermount3 -u demo/mnt\n'
