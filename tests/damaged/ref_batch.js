#!/usr/bin/env node
// ref_batch.js: what the reference (@ruvector/rvf-node, installed in
// tests/interop/node_modules) decides for many files, in one process.
//
//   node tests/damaged/ref_batch.js LIST.txt   (one file path per line)
//
// Prints one JSON line per file, as soon as it is done (so a caller can
// tell which file hung or crashed the reference):
//   {"file": F, "openError": null | "message", "ids": [sorted ids] | null}
// The ids are those of an exact match-all query (as `ref.js dump` gives
// them in all_ids).
'use strict';

const fs = require('fs');
const path = require('path');

const { RvfDatabase } = require(path.join(__dirname, '..', 'interop', 'node_modules',
  '@ruvector', 'rvf-node'));

const MATCH_ALL = JSON.stringify({
  op: 'not',
  child: { op: 'eq', fieldId: 65535, valueType: 'u64', value: '0' },
});
const K_MAX = 4294967295;

function outId(id) {
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return id;
  try {
    return BigInt.asUintN(64, BigInt(Math.trunc(id))).toString();
  } catch (_) {
    return String(id);
  }
}

function one(file) {
  const out = { file, openError: null, ids: null };
  let db;
  try {
    db = RvfDatabase.openReadonly(file);
  } catch (e) {
    out.openError = String((e && e.message) || e);
    return out;
  }
  try {
    const dim = db.dimension();
    const q = new Float32Array(dim);
    let k = Math.min(db.status().totalVectors + 100, K_MAX);
    let res;
    for (;;) {
      res = db.query(q, k, { filter: MATCH_ALL });
      if (res.length < k || k >= K_MAX) break;
      k = Math.min(k * 4, K_MAX);
    }
    const ids = res.map((r) => outId(r.id));
    ids.sort((a, b) => {
      const d = BigInt(a) - BigInt(b);
      return d < 0n ? -1 : d > 0n ? 1 : 0;
    });
    out.ids = ids;
  } catch (e) {
    out.queryError = String((e && e.message) || e);
  } finally {
    try { db.close(); } catch (_) { /* read-only */ }
  }
  return out;
}

const list = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter((l) => l !== '');
for (const f of list) {
  fs.writeSync(1, JSON.stringify(one(f)) + '\n');
}
