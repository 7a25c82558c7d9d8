#!/usr/bin/env bash
# tests/fuzz/make-seeds.sh - seed inputs for the fuzz targets.
#
#   bash tests/fuzz/make-seeds.sh [GENERATED_DIR]
#
# 1. tests/fuzz/seeds/<target>/ (committed, small): hand-written samples,
#    valid and invalid, for every parser (written below; rerunning rewrites
#    them identically), plus copies of the corpus files of at most 4 KiB
#    for fuzz_open (corpus-<folder>-<name>).
# 2. GENERATED_DIR/<target>/ (default build-fuzz/seeds; never committed):
#    every other *.rvf / *.rvdna file of ../shared/corpus for fuzz_open.
# ../shared/corpus (relative to the repository root) may be absent: the
# corpus seeds are then skipped and the committed ones are used as they are.
# Import seeds start with one byte that picks the dimension (byte % 8 + 1):
# '0' = 1, '1' = 2, '2' = 3, '3' = 4, ... '7' = 8.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
SEEDS=tests/fuzz/seeds
GEN=${1:-build-fuzz/seeds}
CORPUS=../shared/corpus
SMALL=4096

/usr/bin/env python3 - "$SEEDS" <<'PY'
import json, os, struct, sys

root = sys.argv[1]

def put(target, name, data):
    d = os.path.join(root, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

# ---- csv: dimension byte, then "id c1 c2 ..." lines
csv = {
    "valid-comma": "3" "1,0.5,1.5,2.5,-1\n2,1e3,2e-3,3,4\n",
    "valid-tsv-crlf": "2" "7\t1\t2\t3\r\n8\t-0\t0.1\t1e-45\r\n",
    "valid-blanks-comments": "1" "# header comment\n\n  5   1.25 , -2.5\n18446744073709551615 3 4\n",
    "valid-bom": "0" "\ufeff1,3.4028234663852886e38\n2,-1.17549435e-38\n",
    "valid-exact-rounding": "2" "1,0.1,0.2,0.30000000000000004\n2,16777217,1.00000005960464477539,7.038531e-26\n",
    "bad-nan": "1" "1,nan,1\n",
    "bad-inf": "0" "1,1e39\n",
    "bad-empty-component": "1" "1,,2\n",
    "bad-id": "0" "-1,2\n",
    "bad-id-overflow": "0" "18446744073709551616,2\n",
    "bad-count": "3" "1,1,2\n",
    "bad-trailing-comma": "0" "1,2,\n",
    "hex-float": "0" "1,0x1p3\n",
}
for n, s in csv.items():
    put("fuzz_import_csv", n, s)

# ---- jsonl / json
rows = [
    {"id": 1, "vector": [0.5, 1.5, 2.5], "metadata": {"color": "red", "n": 5, "x": 2.5, "ok": True}},
    {"id": 18446744073709551615, "vector": [1e-3, -2, 3e10], "metadata": {}},
    {"id": 2, "vector": [0, 0, 0]},
]
jl = "2" + "".join(json.dumps(r) + "\n" for r in rows)
put("fuzz_import_jsonl", "valid-rows", jl)
put("fuzz_import_jsonl", "valid-spaces-crlf",
    "1" '  {"vector" : [ 1 , 2 ] , "id" : 3 }\r\n\r\n{"id":4,"vector":[-0.0,1E2],"metadata":{"s":"\\u00e9\\n"}}\n')
put("fuzz_import_jsonl", "bad-big-id", "0" '{"id":18446744073709551616,"vector":[1]}\n')
put("fuzz_import_jsonl", "bad-negative-id", "0" '{"id":-1,"vector":[1]}\n')
put("fuzz_import_jsonl", "bad-meta-null", "0" '{"id":1,"vector":[1],"metadata":{"a":null}}\n')
put("fuzz_import_jsonl", "bad-meta-array", "0" '{"id":1,"vector":[1],"metadata":[1]}\n')
put("fuzz_import_jsonl", "bad-vector-string", "0" '{"id":1,"vector":["1"]}\n')
put("fuzz_import_jsonl", "bad-syntax", "1" '{"id":1,"vector":[1,2]\n')
put("fuzz_import_jsonl", "bad-dup-keys", "0" '{"id":1,"id":2,"vector":[1]}\n')
put("fuzz_import_jsonl", "bad-leading-zero", "0" '{"id":01,"vector":[1]}\n')

put("fuzz_import_json", "valid-array", "2" + json.dumps(rows, indent=1) + "\n")
put("fuzz_import_json", "valid-empty", "0" "[]")
put("fuzz_import_json", "valid-compact", "1" '[{"id":1,"vector":[1,2]},{"id":2,"vector":[3,4],"metadata":{"t":"x","b":false}}]')
put("fuzz_import_json", "bad-not-array", "0" '{"id":1,"vector":[1]}')
put("fuzz_import_json", "bad-unterminated", "0" '[{"id":1,"vector":[1]},')
put("fuzz_import_json", "bad-trailing", "0" '[{"id":1,"vector":[1]}] x')
put("fuzz_import_json", "bad-element", "0" '[1,2]')
put("fuzz_import_json", "bad-nested-strings", "0" '[{"id":1,"vector":[1],"metadata":{"a]":"}{\\""}}, {"id":2}]')

# ---- fvecs: int32 dim then dim float32 per row
def fvecs(dim, rows, dim_field=None):
    out = b""
    for r in rows:
        out += struct.pack("<i", dim if dim_field is None else dim_field) + struct.pack("<%df" % dim, *r)
    return out
put("fuzz_import_fvecs", "valid-dim3", b"2" + fvecs(3, [[1, 2, 3], [4.5, -5, 6e-3]]))
put("fuzz_import_fvecs", "valid-dim1", b"0" + fvecs(1, [[0.25]]))
put("fuzz_import_fvecs", "valid-empty", b"3")
put("fuzz_import_fvecs", "bad-dim", b"2" + fvecs(3, [[1, 2, 3]], dim_field=4))
put("fuzz_import_fvecs", "bad-truncated", b"2" + fvecs(3, [[1, 2, 3]])[:-2])
put("fuzz_import_fvecs", "bad-nan", b"1" + struct.pack("<i", 2) + struct.pack("<f", 1) + b"\x00\x00\xc0\x7f")
put("fuzz_import_fvecs", "bad-negative-dim", b"0" + struct.pack("<i", -1) + b"\0\0\0\0")

# ---- npy: magic, version, header length, dict, data
def npy(descr, shape, data, version=1, fortran=False, raw_header=None):
    h = raw_header if raw_header is not None else \
        "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape)
    h = h.encode()
    pre = 10 if version == 1 else 12
    pad = (64 - (pre + len(h) + 1) % 64) % 64
    h = h + b" " * pad + b"\n"
    if version == 1:
        head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h))
    else:
        head = b"\x93NUMPY" + bytes([version, 0]) + struct.pack("<I", len(h))
    return head + h + data
f32 = lambda *v: struct.pack("<%df" % len(v), *v)
put("fuzz_import_npy", "valid-2x3", b"2" + npy("<f4", "(2, 3)", f32(1, 2, 3, 4, 5, 6)))
put("fuzz_import_npy", "valid-v2-0rows", b"3" + npy("<f4", "(0, 4)", b"", version=2))
put("fuzz_import_npy", "valid-v3-long", b"0" + npy("|f4", "(1L, 1L)", f32(7), version=3))
put("fuzz_import_npy", "valid-empty-file", b"0")
put("fuzz_import_npy", "bad-dtype", b"0" + npy("<f8", "(1, 1)", b"\0" * 8))
put("fuzz_import_npy", "bad-fortran", b"1" + npy("<f4", "(1, 2)", f32(1, 2), fortran=True))
put("fuzz_import_npy", "bad-1d", b"0" + npy("<f4", "(3,)", f32(1, 2, 3)))
put("fuzz_import_npy", "bad-cols", b"0" + npy("<f4", "(1, 2)", f32(1, 2)))
put("fuzz_import_npy", "bad-short-data", b"1" + npy("<f4", "(2, 2)", f32(1, 2, 3)))
put("fuzz_import_npy", "bad-extra-data", b"0" + npy("<f4", "(1, 1)", f32(1, 2)))
put("fuzz_import_npy", "bad-magic", b"0" + b"\x93NUMPX\x01\x00\x00\x00")
put("fuzz_import_npy", "bad-header", b"0" + npy(None, None, b"", raw_header="{'descr': '<f4', 'shape': (1, 1)"))
put("fuzz_import_npy", "bad-version", b"0" + b"\x93NUMPY\x09\x00\x10\x00" + b"{}" + b" " * 14)
put("fuzz_import_npy", "bad-huge-shape", b"0" + npy("<f4", "(18446744073709551615, 1)", b""))

# ---- query: the store has dimension 4 (tests/fuzz/fuzz_query.c)
q = {
    "valid-text": "1 2 3 4\n",
    "valid-k-ef": "k=3 ef=50 0.5, -1, 2e0, 0\n",
    "valid-brackets": "[1, 2, 3, 4]\n[0 0 0 0]\n",
    "valid-comments-blank": "# a comment\n\n  \t\nk=100 1 1 1 1\n",
    "valid-json": '{"vector":[1,2,3,4],"k":2}\n',
    "valid-json-filter": '{"vector":[0,0,0,0],"k":5,"filter":{"op":"eq","field":"color","value":"red"}}\n',
    "valid-json-filter-ref": '{"vector":[1,1,1,1],"filter":{"op":"and","children":[{"op":"ge","fieldId":1,"valueType":"u64","value":"3"},{"op":"not","child":{"op":"eq","field":"flag","value":true}}]}}\n',
    "valid-mixed": '1 2 3 4\n{"vector":[4,3,2,1],"k":1,"filter":{"op":"in","field":"color","values":["red","blue"]}}\nk=2 0 0 0 1\n',
    "valid-json-null-filter": '{"vector":[1,2,3,4],"filter":null}\n',
    "bad-count": "1 2 3\n",
    "bad-too-many": "1 2 3 4 5\n",
    "bad-nan": "1 nan 3 4\n",
    "bad-k-late": "1 2 3 4 k=3\n",
    "bad-k-zero": "k=0 1 2 3 4\n",
    "bad-k-huge": "k=99999999999999999999 1 2 3 4\n",
    "bad-empty": "\n# nothing\n",
    "bad-json": '{"vector":[1,2,3,4]\n',
    "bad-json-k": '{"vector":[1,2,3,4],"k":-1}\n',
    "bad-json-filter": '{"vector":[1,2,3,4],"filter":{"op":"nope"}}\n',
    "bad-json-not-object": '{"vector":[1,2,3,"4"]}\n',
    "bad-long-token": "1" * 80 + " 2 3 4\n",
}
for n, s in q.items():
    put("fuzz_query", n, s)

# ---- filter: both forms against fuzz_filter.c's table
flt = {
    "ref-eq-string": {"op": "eq", "fieldId": 0, "valueType": "string", "value": "red"},
    "ref-eq-u64": {"op": "eq", "fieldId": 1, "valueType": "u64", "value": "5"},
    "ref-lt-i64": {"op": "lt", "fieldId": 2, "valueType": "i64", "value": "-9223372036854775808"},
    "ref-gt-f64": {"op": "gt", "fieldId": 3, "valueType": "f64", "value": "2.5"},
    "ref-bool": {"op": "eq", "fieldId": 4, "valueType": "bool", "value": "true"},
    "ref-in": {"op": "in", "fieldId": 1, "valueType": "u64", "values": ["0", "18446744073709551615"]},
    "ref-range": {"op": "range", "fieldId": 3, "valueType": "f64", "low": "-inf", "high": "inf"},
    "named-eq": {"op": "eq", "field": "color", "value": "blue"},
    "named-num-cross": {"op": "ge", "field": "x", "value": 5},
    "named-bytes": {"op": "eq", "field": "b", "value": "zz"},
    "named-ne-missing": {"op": "ne", "field": "nope", "value": 1},
    "and-or-not": {"op": "and", "children": [
        {"op": "or", "children": [{"op": "eq", "field": "color", "value": "red"},
                                   {"op": "lt", "field": "i", "value": 0}]},
        {"op": "not", "child": {"op": "eq", "field": "flag", "value": False}}]},
    "empty-and": {"op": "and", "children": []},
    "empty-or": {"op": "or", "children": []},
}
for n, o in flt.items():
    put("fuzz_filter", n, json.dumps(o, ensure_ascii=False))
bad_flt = {
    "bad-op": '{"op":"xor","field":"a","value":1}',
    "bad-both-fields": '{"op":"eq","field":"a","fieldId":0,"value":1}',
    "bad-no-value": '{"op":"eq","field":"a"}',
    "bad-valuetype": '{"op":"eq","fieldId":0,"valueType":"u128","value":"1"}',
    "bad-u64-value": '{"op":"eq","fieldId":1,"valueType":"u64","value":"-1"}',
    "bad-fieldid": '{"op":"eq","fieldId":65536,"valueType":"u64","value":"1"}',
    "bad-children": '{"op":"and","children":{}}',
    "bad-json": '{"op":"eq",',
    "bad-not-object": '[1,2]',
    "bad-hex-float": '{"op":"eq","fieldId":3,"valueType":"f64","value":"0x10"}',
    "deep-not": '{"op":"not","child":' * 40 + '{"op":"eq","field":"n","value":5}' + '}' * 40,
}
for n, s in bad_flt.items():
    put("fuzz_filter", n, s)

# ---- control: the command lines of fs/control_parse.h
ctl = {
    "compact": "compact", "freeze": "freeze", "remove-kernel": "remove-kernel",
    "remove-ebpf": "remove-ebpf", "blank": "   ",
    "delete": "delete 1 2,3\t18446744073709551615",
    "delete-filter": 'delete-filter {"op":"eq","field":"color","value":"red"}',
    "derive": "derive /tmp/child.rvf dim=8 metric=cosine",
    "branch": 'branch "/tmp/a b/c.rvf"',
    "embed-kernel": 'embed-kernel /boot/vmlinuz arch=1 type=0x2 flags=010 api_port=8080 compress cmdline=console=ttyS0 quiet',
    "embed-kernel-quoted": 'embed-kernel "/k \\"q\\"" cmdline="a b"',
    "embed-ebpf": "embed-ebpf /p.o btf=/p.btf prog_type=1 attach_type=2 max_dim=128",
    "sign": "sign /root/key.secret",
    "bad-relative": "derive child.rvf", "bad-quote": 'branch "/x',
    "bad-sign-args": "sign /a /b", "bad-delete-sign": "delete -1",
    "bad-delete-blank": "delete  ", "bad-bare-arg": "compact now",
    "bad-too-many": "derive /x " + " ".join(["dim=1"] * 20),
    "bad-dim": "derive /x dim=0", "bad-unknown": "format /",
}
for n, s in ctl.items():
    put("fuzz_control", n, s)
PY

if [ ! -d "$CORPUS" ]; then
	echo "make-seeds: $CORPUS is absent: corpus seeds skipped"
	exit 0
fi
mkdir -p "$SEEDS/fuzz_open" "$GEN/fuzz_open"
small=0 big=0
while IFS= read -r -d '' f; do
	rel=${f#"$CORPUS"/}
	name=corpus-${rel//\//-}
	if [ "$(stat -c %s "$f")" -le $SMALL ]; then
		cmp -s "$f" "$SEEDS/fuzz_open/$name" || cp "$f" "$SEEDS/fuzz_open/$name"
		small=$((small + 1))
	else
		cmp -s "$f" "$GEN/fuzz_open/$name" || cp "$f" "$GEN/fuzz_open/$name"
		big=$((big + 1))
	fi
done < <(find "$CORPUS" -type f \( -name '*.rvf' -o -name '*.rvdna' \) -print0 | sort -z)
chmod u+w "$SEEDS"/fuzz_open/* "$GEN"/fuzz_open/* 2>/dev/null || true
echo "make-seeds: fuzz_open: $small small corpus files in $SEEDS, $big larger ones in $GEN"
