#!/usr/bin/env node
// ref.js: a small command-line driver for the RVF reference implementation
// (npm @ruvector/rvf-node 0.2.3 with the native addon 0.2.2), used by the
// pytest interop tests (tests/pytest/test_interop.py).
//
// Every subcommand prints one JSON document on stdout. Failures print
// {"error": "..."} and exit 1 (usage errors exit 2).
//
//   node ref.js dump FILE [--queries Q.json] [--selfcheck VECTORS.json [--k N]]
//   node ref.js run SCRIPT.json
//   node ref.js selfcheck FILE VECTORS.json [--k N]
//   node ref.js query FILE --vector V [--k N] [--exact] [--filter JSON] [--ef N]
//   node ref.js serve   (read-only commands and run, one per line on stdin; below)
//
// "Exact" answers use a filter that matches every vector (the reference never
// persists metadata, so field 65535 is never present and not(eq(...)) is
// always true). A filtered query always takes the reference's exact scan,
// also for stores with >= 1024 vectors (otherwise HNSW, approximate) and for
// branch children (otherwise a lossy dual-arm merge).
//
// Ids: JS numbers. Ids outside [0, 2^53) cannot be represented exactly; they
// are printed as decimal strings of the u64 the reference most likely means
// (negative numbers are the reference's i64 view of ids >= 2^63).
'use strict';

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');

let RvfDatabase;
try {
  ({ RvfDatabase } = require('@ruvector/rvf-node'));
} catch (e) {
  process.stdout.write(JSON.stringify({
    error: 'cannot load @ruvector/rvf-node (run tests/run-all.sh, or npm install in tests/interop): ' +
      String(e && e.message || e),
  }) + '\n');
  process.exit(1);
}

const MATCH_ALL_FILTER = JSON.stringify({
  op: 'not',
  child: { op: 'eq', fieldId: 65535, valueType: 'u64', value: '0' },
});
const K_MAX = 4294967295; // k is a u32 in the addon

class UsageError extends Error {}

function sha256hex(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

function errMsg(e) {
  if (e === null || e === undefined) return String(e);
  if (typeof e === 'string') return e;
  return String(e.message !== undefined ? e.message : e);
}

function outId(id) {
  if (typeof id === 'number' && Number.isSafeInteger(id) && id >= 0) return id;
  try {
    return BigInt.asUintN(64, BigInt(Math.trunc(id))).toString();
  } catch (_) {
    return String(id);
  }
}

function outResults(res) {
  return res.map((r) => [outId(r.id), r.distance]);
}

function toId(v) {
  if (typeof v === 'number') return v;
  if (typeof v === 'string' && v.trim() !== '') {
    // decimal u64 strings: pass the reference's i64 view
    const b = BigInt(v);
    return Number(BigInt.asIntN(64, b));
  }
  throw new UsageError(`bad id ${JSON.stringify(v)}`);
}

function hexBuf(h, what) {
  if (h === undefined || h === null) return null;
  if (typeof h !== 'string' || h.length % 2 !== 0 || /[^0-9a-fA-F]/.test(h)) {
    throw new UsageError(`${what}: expected a hex string`);
  }
  return Buffer.from(h, 'hex');
}

function toF32(vectors, dim) {
  // vectors: [[...], ...] or one flat list
  let flat;
  if (vectors.length > 0 && Array.isArray(vectors[0])) {
    flat = [];
    for (const v of vectors) {
      if (dim !== undefined && v.length !== dim) {
        // pass it on anyway: the reference decides what to do with a mismatch
      }
      for (const x of v) flat.push(x === null ? NaN : x);
    }
  } else {
    flat = vectors.map((x) => (x === null ? NaN : x));
  }
  return Float32Array.from(flat);
}

function queryVector(v) {
  if (typeof v === 'string') {
    v = v.trim();
    if (v.startsWith('[')) v = JSON.parse(v);
    else v = v.split(/[,\s]+/).filter((s) => s !== '').map(Number);
  }
  return Float32Array.from(v.map((x) => (x === null ? NaN : x)));
}

function filterString(f) {
  if (f === undefined || f === null) return undefined;
  return typeof f === 'string' ? f : JSON.stringify(f);
}

// The reference's exact answer for q: every visible vector when k is omitted.
function exactQuery(db, q, k) {
  if (k !== undefined && k !== null) {
    return db.query(q, Math.min(k, K_MAX), { filter: MATCH_ALL_FILTER });
  }
  // status().totalVectors counts own vectors only; a branch child also sees
  // inherited ones, so grow k until the answer is shorter than k.
  let kk = Math.min(db.status().totalVectors + 100, K_MAX);
  for (;;) {
    const res = db.query(q, kk, { filter: MATCH_ALL_FILTER });
    if (res.length < kk || kk >= K_MAX) return res;
    kk = Math.min(kk * 4, K_MAX);
  }
}

function u32(buf, off) { return buf.readUInt32LE(off); }
function u64n(buf, off) { return Number(buf.readBigUInt64LE(off)); }

function kernelInfo(db) {
  let k;
  try {
    k = db.extractKernel();
  } catch (e) {
    return { error: errMsg(e) };
  }
  if (k === null || k === undefined) return null;
  const h = Buffer.from(k.header);
  const img = Buffer.from(k.image);
  const info = {
    headerHex: h.toString('hex'),
    extractedLen: img.length,
    extractedSha256: sha256hex(img),
  };
  if (h.length >= 128) {
    const imageSize = u64n(h, 0x18);
    const cmdlineLength = u32(h, 0x78);
    info.arch = h[6];
    info.kernelType = h[7];
    info.flags = u32(h, 8);
    info.imageSize = imageSize;
    info.apiPort = h.readUInt16BE(0x2a);
    info.cmdlineLength = cmdlineLength;
    // extract returns image || cmdline: split it as the header says
    if (imageSize <= img.length) {
      info.imageSha256 = sha256hex(img.subarray(0, imageSize));
      info.cmdline = img.subarray(imageSize).toString('utf8');
    }
  }
  return info;
}

function ebpfInfo(db) {
  let e;
  try {
    e = db.extractEbpf();
  } catch (err) {
    return { error: errMsg(err) };
  }
  if (e === null || e === undefined) return null;
  const h = Buffer.from(e.header);
  const p = Buffer.from(e.payload);
  const info = {
    headerHex: h.toString('hex'),
    extractedLen: p.length,
    extractedSha256: sha256hex(p),
  };
  if (h.length >= 64) {
    const programSize = u64n(h, 0x10);
    const btfSize = u32(h, 0x1c);
    info.programType = h[6];
    info.attachType = h[7];
    info.insnCount = h.readUInt16LE(0x0c);
    info.maxDimension = h.readUInt16LE(0x0e);
    info.programSize = programSize;
    info.btfSize = btfSize;
    if (programSize <= p.length) {
      info.programSha256 = sha256hex(p.subarray(0, programSize));
      info.btfSha256 = sha256hex(p.subarray(programSize));
    }
  }
  return info;
}

function describe(db) {
  const st = db.status();
  return {
    dimension: db.dimension(),
    metric: db.metric(),
    fileId: db.fileId(),
    parentId: db.parentId(),
    lineageDepth: db.lineageDepth(),
    status: st,
    segments: db.segments(),
  };
}

function fileSize(file) {
  try {
    return fs.statSync(file).size;
  } catch (_) {
    return null;
  }
}

function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

// ---------------------------------------------------------------- dump

function cmdDump(args) {
  let file = null;
  let queries = null;
  let selfVectors = null;
  let k = 8;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--queries') queries = args[++i];
    else if (args[i] === '--selfcheck') selfVectors = args[++i];
    else if (args[i] === '--k') k = Number(args[++i]);
    else if (file === null) file = args[i];
    else throw new UsageError(`dump: unexpected argument ${args[i]}`);
  }
  if (!file) throw new UsageError('dump FILE [--queries Q.json] [--selfcheck VECTORS.json [--k N]]');
  if (queries === undefined) throw new UsageError('--queries needs a file');
  if (selfVectors === undefined) throw new UsageError('--selfcheck needs a file');
  const out = { file, openError: null, fileSize: fileSize(file) };
  let db;
  try {
    db = RvfDatabase.openReadonly(file);
  } catch (e) {
    out.openError = errMsg(e);
    return out;
  }
  try {
    Object.assign(out, describe(db));
    out.kernel = kernelInfo(db);
    out.ebpf = ebpfInfo(db);
    const zero = new Float32Array(out.dimension);
    const all = exactQuery(db, zero);
    // ascending by the u64 id (the reference shows ids >= 2^63 as negative)
    const ids = all.map((r) => outId(r.id));
    const key = (x) => BigInt(x);
    ids.sort((a, b) => { const d = key(a) - key(b); return d < 0n ? -1 : d > 0n ? 1 : 0; });
    out.all_ids = ids;
    out.liveCount = ids.length;
    if (queries !== null) {
      const qs = readJson(queries);
      out.exact = qs.map((q) => {
        let vec = q;
        let k;
        if (q !== null && !Array.isArray(q) && typeof q === 'object') {
          vec = q.vector;
          k = q.k;
        }
        return outResults(exactQuery(db, queryVector(vec), k));
      });
    }
    // the selfcheck in the same read-only open (the file does not change
    // between the two, and one node start is saved)
    if (selfVectors !== null) out.selfcheck = selfcheck(db, readJson(selfVectors), k);
  } finally {
    db.close();
  }
  return out;
}

// ---------------------------------------------------------------- query

function cmdQuery(args) {
  let file = null;
  let vector = null;
  let k = 10;
  let exact = false;
  let filter;
  let ef;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--vector') vector = args[++i];
    else if (a === '--k') k = Number(args[++i]);
    else if (a === '--exact') exact = true;
    else if (a === '--filter') filter = args[++i];
    else if (a === '--ef') ef = Number(args[++i]);
    else if (file === null) file = a;
    else throw new UsageError(`query: unexpected argument ${a}`);
  }
  if (!file || vector === null || vector === undefined) {
    throw new UsageError('query FILE --vector V [--k N] [--exact] [--filter JSON] [--ef N]');
  }
  const db = RvfDatabase.openReadonly(file);
  try {
    const q = queryVector(vector);
    let res;
    if (exact) res = db.query(q, k, { filter: MATCH_ALL_FILTER });
    else {
      const opts = {};
      if (filter !== undefined) opts.filter = filter;
      if (ef !== undefined) opts.efSearch = ef;
      res = db.query(q, k, opts);
    }
    return { results: outResults(res) };
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------- selfcheck

// VECTORS.json: [[id, [floats...]], ...]. For each, the reference's exact
// answer (k best, default 8) to the vector itself: the top hit and where the
// id itself appears. ok = every id is found at distance exactly 0 among the
// hits (meaningful for l2: proves the reference holds the identical vector).
function cmdSelfcheck(args) {
  let file = null;
  let vecFile = null;
  let k = 8;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--k') k = Number(args[++i]);
    else if (file === null) file = args[i];
    else if (vecFile === null) vecFile = args[i];
    else throw new UsageError(`selfcheck: unexpected argument ${args[i]}`);
  }
  if (!file || !vecFile) throw new UsageError('selfcheck FILE VECTORS.json [--k N]');
  const entries = readJson(vecFile);
  const db = RvfDatabase.openReadonly(file);
  try {
    return Object.assign({ file }, selfcheck(db, entries, k));
  } finally {
    db.close();
  }
}

// The selfcheck of ENTRIES on an open handle (also `dump --selfcheck`).
function selfcheck(db, entries, k) {
  const metric = db.metric();
  const results = [];
  let ok = true;
  for (const [rawId, vec] of entries) {
    const id = toId(rawId);
    const res = db.query(queryVector(vec), k, { filter: MATCH_ALL_FILTER });
    const top = res.length ? res[0] : null;
    const selfIdx = res.findIndex((r) => r.id === id);
    const entry = {
      id: outId(id),
      hitId: top ? outId(top.id) : null,
      hitDistance: top ? top.distance : null,
      selfRank: selfIdx < 0 ? null : selfIdx,
      selfDistance: selfIdx < 0 ? null : res[selfIdx].distance,
    };
    entry.ok = selfIdx >= 0 && res[selfIdx].distance === 0 && top.distance === 0;
    if (!entry.ok) ok = false;
    results.push(entry);
  }
  return { metric, ok, results };
}

// ---------------------------------------------------------------- run

// SCRIPT.json: a list of operations, or {"ops": [...]}. Handles:
//  * create/open/openReadonly open a handle and make it the current one.
//  * derive/branch open the child (the reference returns a read-write child
//    handle holding the child's lock) and make it current; the parent handle
//    stays open. Pass "stay": true to keep the parent current.
//  * {"op":"use","path":P} makes an already open handle current.
//  * close closes the current handle (or the one named by "path"); the most
//    recently opened remaining handle becomes current.
//  * Every handle still open at the end is closed, newest first (a
//    read-write close may persist an HNSW INDEX built by a query; note that
//    changing a branch parent after branching breaks the child).
// Every op may carry "expectError": true: its error is then recorded in its
// result and the script goes on (otherwise the first error ends the script,
// exit 1). Relative paths are relative to the current directory.
function cmdRun(args) {
  if (args.length !== 1) throw new UsageError('run SCRIPT.json');
  let script = readJson(args[0]);
  if (!Array.isArray(script)) script = script.ops;
  if (!Array.isArray(script)) throw new UsageError('run: the script must be a list of ops');

  const handles = []; // {path, db, mode}
  let cur = null;

  const find = (p) => {
    const abs = path.resolve(p);
    for (let i = handles.length - 1; i >= 0; i--) if (handles[i].path === abs) return handles[i];
    return null;
  };
  const need = (op) => {
    const h = op.path !== undefined ? find(op.path) : cur;
    if (!h) throw new UsageError(`${op.op}: no open handle${op.path !== undefined ? ' for ' + op.path : ''}`);
    return h;
  };
  const push = (p, db, mode) => {
    const h = { path: path.resolve(p), db, mode };
    handles.push(h);
    cur = h;
    return h;
  };
  const closeHandle = (h) => {
    const i = handles.indexOf(h);
    if (i >= 0) handles.splice(i, 1);
    if (cur === h) cur = handles.length ? handles[handles.length - 1] : null;
    h.db.close();
  };

  const ops = {
    create(op) {
      const opts = { dimension: op.dimension };
      for (const k of ['metric', 'profile', 'm', 'efConstruction', 'compression', 'signing']) {
        if (op[k] !== undefined) opts[k] = op[k];
      }
      const db = RvfDatabase.create(op.path, opts);
      push(op.path, db, 'rw');
      return { fileId: db.fileId() };
    },
    open(op) {
      const db = RvfDatabase.open(op.path);
      push(op.path, db, 'rw');
      return { fileId: db.fileId(), status: db.status() };
    },
    openReadonly(op) {
      const db = RvfDatabase.openReadonly(op.path);
      push(op.path, db, 'ro');
      return { fileId: db.fileId(), status: db.status() };
    },
    use(op) {
      const h = find(op.path);
      if (!h) throw new UsageError(`use: ${op.path} is not open`);
      cur = h;
      return { path: h.path };
    },
    ingest(op) {
      const h = need(op);
      const ids = (op.ids || []).map(toId);
      const vecs = toF32(op.vectors || []);
      let meta = op.metadata;
      if (Array.isArray(meta) && meta.length && Array.isArray(meta[0])) meta = meta.flat();
      return h.db.ingestBatch(vecs, ids, meta === undefined ? undefined : meta);
    },
    delete(op) {
      return need(op).db.delete((op.ids || []).map(toId));
    },
    deleteByFilter(op) {
      return need(op).db.deleteByFilter(filterString(op.filter));
    },
    query(op) {
      const h = need(op);
      const q = queryVector(op.vector);
      let res;
      if (op.exact) res = exactQuery(h.db, q, op.k);
      else {
        const opts = {};
        if (op.filter !== undefined) opts.filter = filterString(op.filter);
        if (op.efSearch !== undefined) opts.efSearch = op.efSearch;
        res = h.db.query(q, op.k === undefined ? 10 : op.k, opts);
      }
      return outResults(res);
    },
    compact(op) {
      return need(op).db.compact();
    },
    derive(op) {
      const h = need(op);
      let opts = null;
      if (op.dimension !== undefined || op.metric !== undefined) {
        opts = { dimension: op.dimension !== undefined ? op.dimension : h.db.dimension() };
        if (op.metric !== undefined) opts.metric = op.metric;
      }
      const child = h.db.derive(op.child, opts);
      const prev = cur;
      push(op.child, child, 'rw');
      if (op.stay) cur = prev;
      return { fileId: child.fileId(), parentId: child.parentId(), lineageDepth: child.lineageDepth() };
    },
    branch(op) {
      const h = need(op);
      const child = h.db.branch(op.child);
      const prev = cur;
      push(op.child, child, 'rw');
      if (op.stay) cur = prev;
      return { fileId: child.fileId(), parentId: child.parentId(), lineageDepth: child.lineageDepth() };
    },
    freeze(op) {
      return { epoch: need(op).db.freeze() };
    },
    embedKernel(op) {
      const img = hexBuf(op.imageHex, 'imageHex') || Buffer.alloc(0);
      const segId = need(op).db.embedKernel(op.arch || 0, op.type || 0, op.flags || 0, img,
        op.apiPort || 0, op.cmdline === undefined ? undefined : op.cmdline);
      return { segmentId: segId };
    },
    embedEbpf(op) {
      const code = hexBuf(op.bytecodeHex, 'bytecodeHex') || Buffer.alloc(0);
      const btf = hexBuf(op.btfHex, 'btfHex');
      const segId = need(op).db.embedEbpf(op.progType || 0, op.attachType || 0, op.maxDim || 0,
        code, btf === null ? undefined : btf);
      return { segmentId: segId };
    },
    extractKernel(op) { return kernelInfo(need(op).db); },
    extractEbpf(op) { return ebpfInfo(need(op).db); },
    status(op) { return need(op).db.status(); },
    segments(op) { return need(op).db.segments(); },
    describe(op) { return describe(need(op).db); },
    close(op) {
      closeHandle(need(op));
      return { closed: true };
    },
  };

  const results = [];
  let failure = null;
  for (let i = 0; i < script.length; i++) {
    const op = script[i];
    const fn = op && ops[op.op];
    if (!fn) {
      failure = { error: `unknown op ${JSON.stringify(op && op.op)}`, opIndex: i };
      break;
    }
    try {
      const r = fn(op);
      if (op.expectError) {
        failure = { error: `op ${i} (${op.op}) was expected to fail but succeeded`, opIndex: i };
        results.push({ op: op.op, result: r === undefined ? null : r });
        break;
      }
      results.push({ op: op.op, result: r === undefined ? null : r });
    } catch (e) {
      if (op.expectError && !(e instanceof UsageError)) {
        results.push({ op: op.op, error: errMsg(e) });
        continue;
      }
      failure = { error: `op ${i} (${op.op}): ${errMsg(e)}`, opIndex: i };
      break;
    }
  }
  const autoClosed = [];
  while (handles.length) {
    const h = handles[handles.length - 1];
    try {
      closeHandle(h);
      autoClosed.push(h.path);
    } catch (e) {
      handles.splice(handles.indexOf(h), 1);
      if (!failure) failure = { error: `closing ${h.path}: ${errMsg(e)}` };
    }
  }
  const out = { results, autoClosed };
  if (failure) {
    Object.assign(out, failure);
    out.failed = true;
  }
  return out;
}

// ---------------------------------------------------------------- main

function main(argv) {
  const [cmd, ...args] = argv;
  const cmds = { dump: cmdDump, run: cmdRun, selfcheck: cmdSelfcheck, query: cmdQuery };
  if (!cmd || !cmds[cmd]) {
    throw new UsageError('usage: ref.js dump|run|selfcheck|query|serve ...');
  }
  return cmds[cmd](args);
}

// One command's document and exit code, as a process of its own prints
// them.
function runCommand(argv) {
  try {
    const out = main(argv);
    return { out, code: out && out.failed ? 1 : 0 };
  } catch (e) {
    return { out: { error: errMsg(e) }, code: e instanceof UsageError ? 2 : 1 };
  }
}

// serve: the read-only commands (dump, selfcheck, query) for a test
// session without a node start each (a start costs more CPU than most
// commands).  Each stdin line is a JSON argv; each answer one line
// {"exit": CODE, "out": DOCUMENT}.  Every command opens its file read-only
// (no lock) and closes it before answering, and this file keeps no state
// between commands, so an answer is the one `node ref.js ARGV` prints.
// `run` too, when the caller asks for it (conftest Ref.run(serve=True)): a
// script closes every handle it opened before its answer (autoClosed), so
// no lock or open file outlives it; but the writer lock it takes names this
// process, which lives on: a script that leaves a lock behind (a failed
// close) leaves a live holder, where a process of its own left a stale one.
const SERVED = new Set(['dump', 'selfcheck', 'query', 'run']);

function serve() {
  const rl = require('readline').createInterface({ input: process.stdin, terminal: false });
  rl.on('line', (line) => {
    let res;
    try {
      const argv = JSON.parse(line);
      if (!Array.isArray(argv) || !SERVED.has(argv[0])) {
        throw new UsageError('serve: a JSON array, one of dump|selfcheck|query|run and its arguments');
      }
      res = runCommand(argv.map(String));
    } catch (e) {
      res = { out: { error: errMsg(e) }, code: e instanceof UsageError ? 2 : 1 };
    }
    process.stdout.write(JSON.stringify({ exit: res.code, out: res.out }) + '\n');
  });
}

if (process.argv[2] === 'serve' && process.argv.length === 3) {
  serve();
} else {
  const { out, code } = runCommand(process.argv.slice(2));
  process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(code));
}
