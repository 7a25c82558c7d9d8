#!/usr/bin/env node
// ref_bench.js: the reference side of bench/run.sh (see bench/README.md).
//
// Drives npm @ruvector/rvf-node 0.2.3 in-process, from the copy that
// tests/run-all.sh installs in tests/interop/node_modules. Every subcommand
// prints one JSON document on stdout; failures print {"error": "..."} and
// exit 1. Times are seconds (process.hrtime), memory is bytes.
//
//   node ref_bench.js ingest  --npy BASE.npy --out STORE --batch 10000 --reps R [--ids random]
//                             [--metric l2|cosine|ip]
//   node ref_bench.js query   --store STORE --queries Q.f32 --dim D --k K
//                             --reps R [--hnsw 0|1] [--exact-reps R]
//   node ref_bench.js open    --store STORE --queries Q.f32 --dim D --k K
//   node ref_bench.js compact --store STORE --work COPY --every 10 --reps R
//
// Ids are the row numbers 0..N-1, as the rvffs side gets them.
'use strict';

const fs = require('fs');
const path = require('path');

const MODULES = path.join(__dirname, '..', 'tests', 'interop', 'node_modules');
let RvfDatabase;
let refVersion = null;
try {
  ({ RvfDatabase } = require(path.join(MODULES, '@ruvector', 'rvf-node')));
  refVersion = JSON.parse(fs.readFileSync(
    path.join(MODULES, '@ruvector', 'rvf-node', 'package.json'), 'utf8')).version;
} catch (e) {
  process.stdout.write(JSON.stringify({
    error: 'cannot load @ruvector/rvf-node from tests/interop/node_modules ' +
      '(run tests/run-all.sh, or npm install in tests/interop): ' +
      String((e && e.message) || e),
  }) + '\n');
  process.exit(1);
}

// Matches every vector: the reference never stores field 65535, so this
// filter sends a query down the reference's exact scan instead of HNSW
// (the same trick as tests/interop/ref.js).
const MATCH_ALL_FILTER = JSON.stringify({
  op: 'not',
  child: { op: 'eq', fieldId: 65535, valueType: 'u64', value: '0' },
});

function parseArgs(argv) {
  const a = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    const s = argv[i];
    if (s.startsWith('--')) {
      a[s.slice(2)] = argv[i + 1];
      i++;
    } else {
      a._.push(s);
    }
  }
  return a;
}

function need(a, name) {
  if (a[name] === undefined) throw new Error(`missing --${name}`);
  return a[name];
}

function seconds(t0) {
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

function rss() {
  return process.memoryUsage().rss;
}

// Anonymous memory of this process (the figure the rvffs daemon reports).
function anon() {
  try {
    const m = /^Anonymous:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/smaps_rollup', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch (_) {
    return null;
  }
}

function readF32(file) {
  const b = fs.readFileSync(file);
  // copy: the Buffer may not be 4-byte aligned
  const out = new Float32Array(b.length / 4);
  new Uint8Array(out.buffer).set(b);
  return out;
}

// A float32 .npy (format 1.x or 2.x) as [rows, dim, Float32Array].
function readNpy(file) {
  const b = fs.readFileSync(file);
  if (b.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${file}: not an .npy file`);
  const major = b[6];
  const hlen = major === 1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const hdr = b.toString('latin1', major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(hdr) || /'fortran_order':\s*True/.test(hdr)) {
    throw new Error(`${file}: expected little-endian float32 in C order`);
  }
  const m = /'shape':\s*\((\d+),\s*(\d+)\)/.exec(hdr);
  if (!m) throw new Error(`${file}: expected a 2-D shape`);
  const rows = Number(m[1]);
  const dim = Number(m[2]);
  const out = new Float32Array(rows * dim);
  new Uint8Array(out.buffer).set(b.subarray(start, start + rows * dim * 4));
  return [rows, dim, out];
}

function unlinkStore(file) {
  for (const f of [file, file + '.lock']) {
    try {
      fs.unlinkSync(f);
    } catch (_) {
      // absent
    }
  }
}

// ------------------------------------------------------------------ ingest
// Row -> id, a bijection on [0, 2^48) (odd multiplier), so ids arrive in
// no order; bench.py's random_id computes the same.
const RANDOM_ID_MUL = 0x9e3779b97f4a7c15n & ((1n << 48n) - 1n);
function randomId(row) {
  return Number((BigInt(row) * RANDOM_ID_MUL) & ((1n << 48n) - 1n));
}

function cmdIngest(a) {
  const [rows, dim, data] = readNpy(need(a, 'npy'));
  const out = need(a, 'out');
  const batch = Number(a.batch || 10000);
  // --ids random: distinct ids spread over 48 bits (bench.py's random_id)
  const randomIds = a.ids === 'random';
  const reps = Number(a.reps || 1);
  // ids and batch views made before the clock starts
  const batches = [];
  for (let i = 0; i < rows; i += batch) {
    const n = Math.min(batch, rows - i);
    const ids = new Array(n);
    for (let j = 0; j < n; j++) ids[j] = randomIds ? randomId(i + j) : i + j;
    batches.push([data.subarray(i * dim, (i + n) * dim), ids]);
  }
  const runs = [];
  for (let r = 0; r < reps; r++) {
    unlinkStore(out);
    const db = RvfDatabase.create(out, { dimension: dim, metric: a.metric || 'l2' });
    const t0 = process.hrtime.bigint();
    let accepted = 0;
    for (const [v, ids] of batches) accepted += db.ingestBatch(v, ids).accepted;
    const tBatches = seconds(t0);
    const t1 = process.hrtime.bigint();
    db.close();
    const tClose = seconds(t1);
    if (accepted !== rows) throw new Error(`ingest accepted ${accepted} of ${rows} vectors`);
    runs.push({ seconds: tBatches + tClose, batches_seconds: tBatches, close_seconds: tClose });
  }
  return { rows, dim, batch, bytes: fs.statSync(out).size, runs };
}

// ------------------------------------------------------------------ query
function runQueries(db, q, dim, k, opts) {
  const nq = q.length / dim;
  const lat = new Array(nq);
  const ids = new Array(nq);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < nq; i++) {
    const t = process.hrtime.bigint();
    const res = db.query(q.subarray(i * dim, (i + 1) * dim), k, opts);
    lat[i] = seconds(t);
    ids[i] = res.map((h) => h.id);
  }
  return { seconds: seconds(t0), latencies: lat, ids };
}

function cmdQuery(a) {
  const dim = Number(need(a, 'dim'));
  const k = Number(a.k || 10);
  const reps = Number(a.reps || 3);
  const exactReps = Number(a['exact-reps'] !== undefined ? a['exact-reps'] : reps);
  const hnsw = a.hnsw === undefined ? true : a.hnsw !== '0';
  const q = readF32(need(a, 'queries'));
  const db = RvfDatabase.openReadonly(need(a, 'store'));
  const out = { k, queries: q.length / dim };
  // The exact scan first: a filtered query does not build the HNSW index.
  out.exact = [];
  for (let r = 0; r < exactReps; r++) out.exact.push(runQueries(db, q, dim, k, { filter: MATCH_ALL_FILTER }));
  if (hnsw) {
    // The first unfiltered query builds the HNSW index.
    const t0 = process.hrtime.bigint();
    const first = db.query(q.subarray(0, dim), k);
    out.first_query_seconds = seconds(t0);
    out.first_query_ids = first.map((h) => h.id);
    out.hnsw = [];
    for (let r = 0; r < reps; r++) out.hnsw.push(runQueries(db, q, dim, k, undefined));
    try {
      out.index = db.indexStats();
    } catch (_) {
      out.index = null;
    }
  }
  // only the last repetition's answers are needed for recall
  for (const key of ['exact', 'hnsw']) {
    if (!out[key]) continue;
    out[key].forEach((run, i) => {
      if (i !== out[key].length - 1) delete run.ids;
    });
  }
  db.close();
  return out;
}

// ------------------------------------------------------------------ open
// One fresh process per measurement (bench.py starts it once per
// repetition), so the memory delta is not hidden by freed heap.
function cmdOpen(a) {
  const dim = Number(need(a, 'dim'));
  const k = Number(a.k || 10);
  const q = readF32(need(a, 'queries'));
  if (global.gc) global.gc();
  const rss0 = rss();
  const anon0 = anon();
  const t0 = process.hrtime.bigint();
  const db = RvfDatabase.openReadonly(need(a, 'store'));
  const openS = seconds(t0);
  const rss1 = rss();
  const anon1 = anon();
  const vectors = db.status().totalVectors;
  const t1 = process.hrtime.bigint();
  const res = db.query(q.subarray(0, dim), k, { filter: MATCH_ALL_FILTER });
  const firstExact = seconds(t1);
  const rss2 = rss();
  const anon2 = anon();
  db.close();
  return {
    vectors,
    open_seconds: openS,
    rss_delta: rss1 - rss0,
    anon_delta: anon0 === null ? null : anon1 - anon0,
    first_exact_query_seconds: firstExact,
    first_exact_query_ids: res.map((h) => h.id),
    rss_delta_after_query: rss2 - rss0,
    anon_delta_after_query: anon0 === null ? null : anon2 - anon0,
  };
}

// ------------------------------------------------------------------ compact
function cmdCompact(a) {
  const store = need(a, 'store');
  const work = need(a, 'work');
  const every = Number(a.every || 10);
  const reps = Number(a.reps || 1);
  const runs = [];
  for (let r = 0; r < reps; r++) {
    unlinkStore(work);
    fs.copyFileSync(store, work);
    let db = RvfDatabase.open(work);
    const before = db.status().totalVectors;
    const ids = [];
    for (let id = 0; id < before; id += every) ids.push(id);
    const del = db.delete(ids);
    db.close();
    const sizeBefore = fs.statSync(work).size;
    const t0 = process.hrtime.bigint();
    db = RvfDatabase.open(work);
    const tOpen = seconds(t0);
    const t1 = process.hrtime.bigint();
    const res = db.compact();
    const tCompact = seconds(t1);
    const t2 = process.hrtime.bigint();
    const after = db.status().totalVectors;
    db.close();
    const tClose = seconds(t2);
    runs.push({
      deleted: del.deleted,
      vectors_before: before,
      vectors_after: after,
      compact_seconds: tCompact,
      open_compact_close_seconds: tOpen + tCompact + tClose,
      bytes_before: sizeBefore,
      bytes_after: fs.statSync(work).size,
      bytes_reclaimed: res.bytesReclaimed,
      segments_compacted: res.segmentsCompacted,
    });
  }
  unlinkStore(work);
  return { every, runs };
}

function main() {
  const a = parseArgs(process.argv.slice(2));
  const cmd = a._[0];
  const cmds = { ingest: cmdIngest, query: cmdQuery, open: cmdOpen, compact: cmdCompact };
  if (!cmds[cmd]) {
    process.stdout.write(JSON.stringify({ error: `unknown command ${cmd}` }) + '\n');
    process.exit(2);
  }
  let out;
  try {
    out = cmds[cmd](a);
  } catch (e) {
    process.stdout.write(JSON.stringify({ error: String((e && e.message) || e) }) + '\n');
    process.exit(1);
  }
  out.reference = `@ruvector/rvf-node ${refVersion}`;
  out.node = process.version;
  process.stdout.write(JSON.stringify(out) + '\n');
}

main();
