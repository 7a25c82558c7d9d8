/* test_meta.c - META payload codec and immutable metadata tables. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "meta.h"

#include "check.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                             */
/* ------------------------------------------------------------------ */

static rvf_meta_field fstr(const char *n, const char *s)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_STRING,
				      .u.str = { s, strlen(s) } } };
}

static rvf_meta_field fbytes(const char *n, const char *s, size_t len)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_BYTES,
				      .u.str = { s, len } } };
}

static rvf_meta_field fi64(const char *n, int64_t v)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_I64, .u.i64 = v } };
}

static rvf_meta_field fu64(const char *n, uint64_t v)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_U64, .u.u64 = v } };
}

static rvf_meta_field ff64(const char *n, double v)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_F64, .u.f64 = v } };
}

static rvf_meta_field fbool(const char *n, bool v)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_BOOL, .u.b = v } };
}

/* One row per id, with `nf` fields each (row i gets f[i*nf .. i*nf+nf)). */
static rvf_code commit_rows(const meta_table *base, size_t n,
			    const uint64_t *ids, const rvf_meta_field *f,
			    const size_t *start, meta_write *w, rvf_error *err)
{
	meta_batch *b = meta_batch_new(base, err);
	if (!b)
		return err->code;
	rvf_code rc = meta_batch_add(b, n, ids, f, start, err);
	if (rc != RVF_OK) {
		meta_batch_free(b);
		return rc;
	}
	return meta_batch_finish(b, 0, w, err);
}

static const rvf_value *get(const meta_table *t, uint64_t id, const char *name)
{
	const rvf_meta_field *f;
	size_t n = meta_table_get(t, id, &f);
	for (size_t i = 0; i < n; i++)
		if (strcmp(f[i].name, name) == 0)
			return &f[i].value;
	return NULL;
}

static bool same_value(const rvf_value *a, const rvf_value *b)
{
	if (a->type != b->type)
		return false;
	return meta_value_cmp(a, b) == 0;
}

typedef struct eq_ctx {
	const meta_table *other;
	bool ok;
} eq_ctx;

static bool eq_visit(void *ctx, uint64_t id, const meta_record *r)
{
	eq_ctx *c = ctx;
	meta_record o;
	if (!meta_table_find(c->other, id, &o) || o.count != r->count) {
		c->ok = false;
		return false;
	}
	for (size_t i = 0; i < r->count; i++) {
		if (o.field_ids[i] != r->field_ids[i] ||
		    strcmp(o.fields[i].name, r->fields[i].name) != 0 ||
		    !same_value(&o.fields[i].value, &r->fields[i].value)) {
			c->ok = false;
			return false;
		}
	}
	return true;
}

static bool tables_equal(const meta_table *a, const meta_table *b)
{
	if (meta_table_generation(a) != meta_table_generation(b) ||
	    meta_table_record_count(a) != meta_table_record_count(b) ||
	    meta_table_field_count(a) != meta_table_field_count(b))
		return false;
	for (size_t i = 0; i < meta_table_field_count(a); i++) {
		const meta_field_def *x = meta_table_field_at(a, i);
		const meta_field_def *y = meta_table_field_at(b, i);
		if (x->id != y->id || x->type != y->type ||
		    strcmp(x->name, y->name) != 0)
			return false;
	}
	eq_ctx c = { b, true };
	meta_table_foreach(a, eq_visit, &c);
	return c.ok;
}

static bool replay_equals(const meta_blob *p, size_t n, const meta_table *want)
{
	meta_table *t = NULL;
	rvf_error err;
	if (meta_replay(p, n, &t, NULL, &err) != RVF_OK) {
		fprintf(stderr, "replay: %s\n", err.message);
		return false;
	}
	bool ok = tables_equal(t, want);
	meta_table_unref(t);
	return ok;
}

/* Raw payload builder for hand-made (and malformed) payloads. */
typedef struct raw {
	unsigned char b[8192];
	size_t len;
} raw;

static void r8(raw *r, uint8_t v)
{
	r->b[r->len++] = v;
}

static void r16(raw *r, uint16_t v)
{
	r8(r, (uint8_t)v);
	r8(r, (uint8_t)(v >> 8));
}

static void r32(raw *r, uint32_t v)
{
	r16(r, (uint16_t)v);
	r16(r, (uint16_t)(v >> 16));
}

static void r64(raw *r, uint64_t v)
{
	r32(r, (uint32_t)v);
	r32(r, (uint32_t)(v >> 32));
}

static void rbytes(raw *r, const void *p, size_t n)
{
	memcpy(r->b + r->len, p, n);
	r->len += n;
}

static void rhead(raw *r, uint16_t version, uint16_t flags, uint64_t gen,
		  uint64_t base, uint32_t ns, uint32_t nf, uint32_t nr)
{
	r->len = 0;
	rbytes(r, "RVFMETA", 8);
	r16(r, version);
	r16(r, flags);
	r64(r, gen);
	r64(r, base);
	r32(r, ns);
	r32(r, nf);
	r32(r, nr);
}

static void rschema(raw *r, uint16_t id, uint8_t type, const char *name)
{
	r16(r, id);
	r8(r, type);
	r8(r, 1);
	r16(r, (uint16_t)strlen(name));
	rbytes(r, name, strlen(name));
}

static void rrec(raw *r, uint64_t id, uint8_t op, uint32_t n)
{
	r64(r, id);
	r8(r, op);
	r32(r, n);
}

static void rfoot(raw *r)
{
	unsigned char h[32];
	crypto_hash_sha256(h, r->b, r->len);
	rbytes(r, "RVFDONE", 8);
	rbytes(r, h, 32);
}

/* Rewrites the footer after the body (first body_len bytes) changed. */
static void refoot(unsigned char *p, size_t body_len)
{
	memcpy(p + body_len, "RVFDONE", 8);
	crypto_hash_sha256(p + body_len + 8, p, body_len);
}

static rvf_code apply_raw(const meta_table *base, raw *r, meta_table **out,
			  rvf_error *err)
{
	return meta_table_apply(base, r->b, r->len, out, err);
}

/* ------------------------------------------------------------------ */
/* Tests                                                               */
/* ------------------------------------------------------------------ */

static void test_value_cmp(void)
{
	rvf_value i5 = { .type = RVF_VALUE_I64, .u.i64 = 5 };
	rvf_value u5 = { .type = RVF_VALUE_U64, .u.u64 = 5 };
	rvf_value f5 = { .type = RVF_VALUE_F64, .u.f64 = 5.0 };
	rvf_value f55 = { .type = RVF_VALUE_F64, .u.f64 = 5.5 };
	rvf_value im1 = { .type = RVF_VALUE_I64, .u.i64 = -1 };
	rvf_value umax = { .type = RVF_VALUE_U64, .u.u64 = UINT64_MAX };
	rvf_value f264 = { .type = RVF_VALUE_F64, .u.f64 = 18446744073709551616.0 };
	rvf_value nan = { .type = RVF_VALUE_F64, .u.f64 = NAN };
	rvf_value fm15 = { .type = RVF_VALUE_F64, .u.f64 = -1.5 };
	rvf_value sa = { .type = RVF_VALUE_STRING, .u.str = { "a", 1 } };
	rvf_value sab = { .type = RVF_VALUE_STRING, .u.str = { "ab", 2 } };
	rvf_value ba = { .type = RVF_VALUE_BYTES, .u.str = { "a", 1 } };
	rvf_value bt = { .type = RVF_VALUE_BOOL, .u.b = true };
	rvf_value bf = { .type = RVF_VALUE_BOOL, .u.b = false };

	CHECK(meta_value_cmp(&i5, &u5) == 0);
	CHECK(meta_value_cmp(&i5, &f5) == 0);
	CHECK(meta_value_cmp(&u5, &f5) == 0);
	CHECK(meta_value_cmp(&u5, &f55) == -1);
	CHECK(meta_value_cmp(&f55, &i5) == 1);
	CHECK(meta_value_cmp(&im1, &u5) == -1);
	CHECK(meta_value_cmp(&umax, &im1) == 1);
	CHECK(meta_value_cmp(&umax, &f264) == -1);
	CHECK(meta_value_cmp(&im1, &fm15) == 1);
	CHECK(meta_value_cmp(&fm15, &im1) == -1);
	CHECK(meta_value_cmp(&nan, &nan) == META_CMP_NONE);
	CHECK(meta_value_cmp(&nan, &i5) == META_CMP_NONE);
	CHECK(meta_value_cmp(&sa, &sab) == -1);
	CHECK(meta_value_cmp(&sab, &sa) == 1);
	CHECK(meta_value_cmp(&sa, &sa) == 0);
	CHECK(meta_value_cmp(&sa, &ba) == META_CMP_NONE);
	CHECK(meta_value_cmp(&sa, &i5) == META_CMP_NONE);
	CHECK(meta_value_cmp(&bf, &bt) == -1);
	CHECK(meta_value_cmp(&bt, &i5) == META_CMP_NONE);

	rvf_value out;
	CHECK(meta_value_convert(&i5, RVF_VALUE_F64, &out) &&
	      out.type == RVF_VALUE_F64 && out.u.f64 == 5.0);
	CHECK(meta_value_convert(&i5, RVF_VALUE_U64, &out) && out.u.u64 == 5);
	CHECK(!meta_value_convert(&im1, RVF_VALUE_U64, &out));
	CHECK(!meta_value_convert(&umax, RVF_VALUE_I64, &out));
	CHECK(!meta_value_convert(&umax, RVF_VALUE_F64, &out));
	CHECK(!meta_value_convert(&f55, RVF_VALUE_I64, &out));
	CHECK(meta_value_convert(&f5, RVF_VALUE_I64, &out) && out.u.i64 == 5);
	CHECK(!meta_value_convert(&sa, RVF_VALUE_BYTES, &out));
	rvf_value big = { .type = RVF_VALUE_I64, .u.i64 = (1LL << 53) + 1 };
	CHECK(!meta_value_convert(&big, RVF_VALUE_F64, &out));
}

static void test_empty(void)
{
	meta_table *e = meta_table_empty();
	CHECK(e);
	CHECK(meta_table_ref(e) == e);
	meta_table_unref(e);
	meta_table_unref(e);
	CHECK(meta_table_generation(e) == 0);
	CHECK(meta_table_record_count(e) == 0);
	const rvf_meta_field *f = (const rvf_meta_field *)1;
	CHECK(meta_table_get(e, 7, &f) == 0);
	meta_table *t = NULL;
	rvf_error err;
	CHECK(meta_replay(NULL, 0, &t, NULL, &err) == RVF_OK);
	CHECK(t && meta_table_record_count(t) == 0);
	meta_table_unref(t);
	/* Nothing to write on an empty batch or an empty delete. */
	meta_write w;
	meta_batch *b = meta_batch_new(e, &err);
	CHECK(b && meta_batch_rows(b) == 0);
	CHECK(meta_batch_finish(b, 0, &w, &err) == RVF_OK);
	CHECK(w.payload == NULL && w.table == e);
	meta_write_release(&w);
	uint64_t id = 3;
	CHECK(meta_encode_delete(e, 1, &id, 0, &w, &err) == RVF_OK);
	CHECK(w.payload == NULL);
	meta_write_release(&w);
	CHECK(meta_encode_snapshot(e, NULL, NULL, &w, &err) == RVF_OK);
	CHECK(w.payload == NULL);
	meta_write_release(&w);
}

static bool keep_40(void *ctx, uint64_t id)
{
	(void)ctx;
	return id == 40;
}

/* Round trips through snapshot, deltas, deletes and a compaction
 * snapshot, checking immutability of every older version. */
static void test_chain(void)
{
	rvf_error err;
	static const char raw_bytes[3] = { 0, 1, 2 };
	rvf_meta_field f1[] = {
		fstr("s", "hello"), fbytes("b", raw_bytes, 3), fi64("i", -5),
		fu64("u", UINT64_MAX), ff64("f", 2.5), fbool("t", true),
		fstr("s", "world"), fi64("i", 7),
	};
	uint64_t ids1[] = { 10, 20, 30 };
	size_t st1[] = { 0, 6, 8, 8 };
	meta_write w1 = { 0 };
	CHECK(commit_rows(NULL, 3, ids1, f1, st1, &w1, &err) == RVF_OK);
	meta_table *t1 = w1.table;
	CHECK(w1.payload && w1.snapshot && w1.generation == 1);
	CHECK(meta_table_generation(t1) == 1);
	CHECK(meta_table_record_count(t1) == 2);
	CHECK(meta_table_field_count(t1) == 6);
	const meta_field_def *d = meta_table_field_by_name(t1, "u", 1);
	CHECK(d && d->id == 3 && d->type == RVF_VALUE_U64);
	CHECK(meta_table_field_by_id(t1, 5) &&
	      strcmp(meta_table_field_by_id(t1, 5)->name, "t") == 0);
	CHECK(!meta_table_field_by_name(t1, "nope", 4));
	const rvf_value *v = get(t1, 10, "s");
	CHECK(v && v->type == RVF_VALUE_STRING && v->u.str.len == 5 &&
	      strcmp(v->u.str.ptr, "hello") == 0);
	v = get(t1, 10, "b");
	CHECK(v && v->type == RVF_VALUE_BYTES && v->u.str.len == 3 &&
	      memcmp(v->u.str.ptr, raw_bytes, 3) == 0);
	v = get(t1, 10, "i");
	CHECK(v && v->type == RVF_VALUE_I64 && v->u.i64 == -5);
	v = get(t1, 10, "u");
	CHECK(v && v->type == RVF_VALUE_U64 && v->u.u64 == UINT64_MAX);
	v = get(t1, 10, "f");
	CHECK(v && v->type == RVF_VALUE_F64 && v->u.f64 == 2.5);
	v = get(t1, 10, "t");
	CHECK(v && v->type == RVF_VALUE_BOOL && v->u.b);
	CHECK(meta_table_get(t1, 20, NULL) == 2);
	CHECK(meta_table_get(t1, 30, NULL) == 0); /* a row without fields */

	meta_header h;
	CHECK(meta_payload_check(w1.payload, w1.len, &h, &err) == RVF_OK);
	CHECK(h.snapshot && h.generation == 1 && h.base_generation == UINT64_MAX);
	CHECK(h.schema_count == 6 && h.file_meta_count == 0 && h.record_count == 2);
	CHECK(memcmp(w1.payload, "RVFMETA\0", 8) == 0);
	CHECK(memcmp(w1.payload + w1.len - 40, "RVFDONE\0", 8) == 0);
	meta_blob p[8];
	p[0] = (meta_blob){ w1.payload, w1.len };
	CHECK(replay_equals(p, 1, t1));

	/* A delta: row 10 replaces its record, 20 is left alone (no fields),
	 * 40 is new. */
	rvf_meta_field f2[] = { fi64("i", 8), fstr("s", "new") };
	uint64_t ids2[] = { 10, 20, 40 };
	size_t st2[] = { 0, 1, 1, 2 };
	meta_write w2 = { 0 };
	CHECK(commit_rows(t1, 3, ids2, f2, st2, &w2, &err) == RVF_OK);
	meta_table *t2 = w2.table;
	CHECK(w2.payload && !w2.snapshot && w2.generation == 2);
	CHECK(meta_payload_check(w2.payload, w2.len, &h, &err) == RVF_OK);
	CHECK(!h.snapshot && h.generation == 2 && h.base_generation == 1);
	CHECK(meta_table_get(t2, 10, NULL) == 1);
	v = get(t2, 10, "i");
	CHECK(v && v->u.i64 == 8);
	CHECK(meta_table_get(t2, 20, NULL) == 2);
	v = get(t2, 40, "s");
	CHECK(v && v->u.str.len == 3 && memcmp(v->u.str.ptr, "new", 3) == 0);
	/* t1 is untouched. */
	CHECK(meta_table_get(t1, 10, NULL) == 6);
	v = get(t1, 10, "i");
	CHECK(v && v->u.i64 == -5);
	CHECK(meta_table_get(t1, 40, NULL) == 0);
	p[1] = (meta_blob){ w2.payload, w2.len };
	CHECK(replay_equals(p, 2, t2));

	/* Deletes: repeats and ids without a record are fine. */
	uint64_t del[] = { 10, 99, 10 };
	meta_write w3 = { 0 };
	CHECK(meta_encode_delete(t2, 3, del, 0, &w3, &err) == RVF_OK);
	meta_table *t3 = w3.table;
	CHECK(w3.payload && !w3.snapshot && w3.generation == 3);
	CHECK(meta_payload_check(w3.payload, w3.len, &h, &err) == RVF_OK);
	CHECK(h.record_count == 1);
	CHECK(meta_table_get(t3, 10, NULL) == 0);
	CHECK(meta_table_get(t3, 20, NULL) == 2);
	CHECK(meta_table_get(t2, 10, NULL) == 1);
	p[2] = (meta_blob){ w3.payload, w3.len };
	CHECK(replay_equals(p, 3, t3));
	meta_write none = { 0 };
	CHECK(meta_encode_delete(t3, 1, &del[1], 0, &none, &err) == RVF_OK);
	CHECK(!none.payload && none.table == t3);
	meta_write_release(&none);

	/* A compaction snapshot keeping only 40. */
	meta_write w4 = { 0 };
	CHECK(meta_encode_snapshot(t3, keep_40, NULL, &w4, &err) == RVF_OK);
	meta_table *t4 = w4.table;
	CHECK(w4.payload && w4.snapshot && w4.generation == 4);
	CHECK(meta_table_record_count(t4) == 1 && meta_table_get(t4, 40, NULL) == 1);
	CHECK(meta_table_field_count(t4) == 6);
	CHECK(meta_table_record_count(t3) == 2);
	p[3] = (meta_blob){ w4.payload, w4.len };
	CHECK(replay_equals(p, 4, t4));
	/* Payloads before the newest snapshot are not even read. */
	static const unsigned char junk[] = "garbage";
	meta_blob q[2] = { { junk, sizeof(junk) }, { w4.payload, w4.len } };
	CHECK(replay_equals(q, 2, t4));
	meta_replay_info info;
	meta_table *rt = NULL;
	CHECK(meta_replay(p, 4, &rt, &info, &err) == RVF_OK);
	CHECK(info.first == 3 && info.applied == 1 && info.dropped == 0);
	meta_table_unref(rt);

	/* Forced snapshot after a delta. */
	meta_write w5 = { 0 };
	uint64_t del40 = 40;
	CHECK(meta_encode_delete(t4, 1, &del40, META_FORCE_SNAPSHOT, &w5, &err) == RVF_OK);
	CHECK(w5.snapshot && w5.generation == 5 && meta_table_record_count(w5.table) == 0);
	p[4] = (meta_blob){ w5.payload, w5.len };
	CHECK(replay_equals(p, 5, w5.table));

	/* A damaged delta after the snapshot fails replay, naming it. */
	unsigned char *bad = malloc(w2.len);
	memcpy(bad, w2.payload, w2.len);
	bad[w2.len - 1] ^= 1;
	meta_blob r[2] = { { w1.payload, w1.len }, { bad, w2.len } };
	meta_table *rt2 = (meta_table *)1;
	CHECK(meta_replay(r, 2, &rt2, NULL, &err) == RVF_E_CORRUPT);
	CHECK(rt2 == NULL && strstr(err.message, "segment 2 of 2"));
	free(bad);
	/* A delta alone, or out of order. */
	CHECK(meta_replay(&p[1], 1, &rt2, NULL, &err) == RVF_E_CORRUPT);
	meta_blob o[3] = { p[0], p[2], p[1] };
	CHECK(meta_replay(o, 3, &rt2, NULL, &err) == RVF_E_CORRUPT);

	meta_write_release(&w1);
	meta_write_release(&w2);
	meta_write_release(&w3);
	meta_write_release(&w4);
	meta_write_release(&w5);
}

static void test_cadence(void)
{
	rvf_error err;
	meta_table *t = meta_table_ref(meta_table_empty());
	meta_blob p[80];
	unsigned char *own[80];
	size_t first_snap = 0;
	for (uint64_t g = 1; g <= 70; g++) {
		rvf_meta_field f = fu64("g", g);
		size_t st[] = { 0, 1 };
		meta_write w = { 0 };
		CHECK(commit_rows(t, 1, &g, &f, st, &w, &err) == RVF_OK);
		CHECK(w.generation == g);
		CHECK(w.snapshot == (g == 1 || g % 32 == 0));
		if (w.snapshot)
			first_snap = g - 1;
		p[g - 1] = (meta_blob){ w.payload, w.len };
		own[g - 1] = w.payload;
		w.payload = NULL;
		meta_table_unref(t);
		t = w.table;
		w.table = NULL;
	}
	CHECK(meta_table_record_count(t) == 70);
	CHECK(replay_equals(p, 70, t));
	CHECK(replay_equals(p + first_snap, 70 - first_snap, t));
	/* A replayed table keeps the cadence. */
	meta_table *r = NULL;
	CHECK(meta_replay(p, 70, &r, NULL, &err) == RVF_OK);
	meta_write w = { 0 };
	uint64_t id = 1;
	CHECK(meta_encode_delete(r, 1, &id, 0, &w, &err) == RVF_OK);
	CHECK(!w.snapshot && w.generation == 71);
	meta_write_release(&w);
	meta_table_unref(r);
	for (int i = 0; i < 70; i++)
		free(own[i]);
	meta_table_unref(t);

	/* More than META_MAX_DELTAS deltas after a snapshot: refused. */
	static raw chain[META_MAX_DELTAS + 2];
	meta_blob b[META_MAX_DELTAS + 2];
	rhead(&chain[0], 1, 1, 1, UINT64_MAX, 0, 0, 0);
	rfoot(&chain[0]);
	for (unsigned i = 1; i < META_MAX_DELTAS + 2; i++) {
		rhead(&chain[i], 1, 0, i + 1, i, 0, 0, 0);
		rfoot(&chain[i]);
	}
	for (unsigned i = 0; i < META_MAX_DELTAS + 2; i++)
		b[i] = (meta_blob){ chain[i].b, chain[i].len };
	CHECK(meta_replay(b, META_MAX_DELTAS + 1, &r, NULL, &err) == RVF_OK);
	CHECK(meta_table_generation(r) == META_MAX_DELTAS + 1);
	meta_table_unref(r);
	CHECK(meta_replay(b, META_MAX_DELTAS + 2, &r, NULL, &err) == RVF_E_CORRUPT);
}

/* A payload with every feature, for the damage tests. */
static meta_write sample(const meta_table *base)
{
	rvf_error err;
	rvf_meta_field f[] = {
		fstr("s", "hello"), fbytes("b", "xyz", 3), fi64("i", -5),
		fu64("u", 9), ff64("f", 2.5), fbool("t", false), fstr("s", ""),
	};
	uint64_t ids[] = { 1, 2, 3 };
	size_t st[] = { 0, 6, 7, 7 };
	meta_write w = { 0 };
	CHECK(commit_rows(base, 3, ids, f, st, &w, &err) == RVF_OK);
	return w;
}

static void test_damage(void)
{
	rvf_error err;
	meta_write s = sample(NULL);
	uint64_t del = 1;
	rvf_meta_field nf = fi64("i", 1);
	size_t st[] = { 0, 1 };
	meta_write d = { 0 };
	uint64_t two = 2;
	CHECK(commit_rows(s.table, 1, &two, &nf, st, &d, &err) == RVF_OK);
	meta_write dd = { 0 };
	CHECK(meta_encode_delete(d.table, 1, &del, 0, &dd, &err) == RVF_OK);
	const meta_write *ws[] = { &s, &d, &dd };
	const meta_table *bases[] = { meta_table_empty(), s.table, d.table };

	for (int k = 0; k < 3; k++) {
		const meta_write *w = ws[k];
		size_t len = w->len, body = len - 40;
		unsigned char *p = malloc(len);
		meta_table *t;
		/* Truncated at every byte: refused. */
		for (size_t n = 0; n < len; n++) {
			memcpy(p, w->payload, n);
			err.message[0] = '\0';
			CHECK(meta_payload_check(p, n, NULL, &err) == RVF_E_CORRUPT);
			CHECK(err.message[0] != '\0');
			t = (meta_table *)1;
			CHECK(meta_table_apply(bases[k], p, n, &t, &err) == RVF_E_CORRUPT);
			CHECK(t == NULL);
		}
		/* Truncated body with a valid footer: refused. */
		for (size_t n = 8; n < body; n++) {
			memcpy(p, w->payload, n);
			refoot(p, n);
			CHECK(meta_payload_check(p, n + 40, NULL, &err) == RVF_E_CORRUPT);
		}
		/* Any flipped bit: refused by the hash. */
		for (size_t i = 0; i < len; i++) {
			memcpy(p, w->payload, len);
			p[i] ^= 0x10;
			CHECK(meta_payload_check(p, len, NULL, &err) == RVF_E_CORRUPT);
			if (i >= 8 && i < body)
				CHECK(strstr(err.message, "SHA-256") != NULL);
		}
		/* Mutations with a recomputed hash never crash; whatever is
		 * accepted applies (or fails) cleanly. */
		static const unsigned char xs[] = { 0x01, 0x80, 0xff };
		for (size_t i = 8; i < body; i++) {
			for (size_t x = 0; x < sizeof(xs); x++) {
				memcpy(p, w->payload, len);
				p[i] ^= xs[x];
				refoot(p, body);
				rvf_code rc = meta_payload_check(p, len, NULL, &err);
				CHECK(rc == RVF_OK || rc == RVF_E_CORRUPT);
				rc = meta_table_apply(bases[k], p, len, &t, &err);
				CHECK(rc == RVF_OK || rc == RVF_E_CORRUPT);
				if (rc == RVF_OK)
					meta_table_unref(t);
			}
		}
		free(p);
	}
	meta_write_release(&s);
	meta_write_release(&d);
	meta_write_release(&dd);
}

static bool fails(const meta_table *base, raw *r, const char *what)
{
	rvf_error err;
	meta_table *t = NULL;
	rfoot(r);
	rvf_code rc = apply_raw(base, r, &t, &err);
	if (rc == RVF_OK) {
		meta_table_unref(t);
		fprintf(stderr, "accepted: %s\n", what);
		return false;
	}
	if (rc != RVF_E_CORRUPT || !strstr(err.message, what)) {
		fprintf(stderr, "want \"%s\", got: %s\n", what, err.message);
		return false;
	}
	return true;
}

static void test_handmade(void)
{
	rvf_error err;
	raw r;
	meta_table *t1 = NULL, *t2 = NULL;

	/* A snapshot with a null field, file metadata, an empty record. */
	rhead(&r, 1, 1, 1, UINT64_MAX, 2, 2, 2);
	rschema(&r, 0, RVF_VALUE_STRING, "a");
	rschema(&r, 4, RVF_VALUE_I64, "n");
	r16(&r, 1); rbytes(&r, "k", 1); r8(&r, 4); r64(&r, 7);
	r16(&r, 2); rbytes(&r, "k2", 2); r8(&r, 0);
	rrec(&r, 5, 0, 2);
	r16(&r, 0); r8(&r, 1); r32(&r, 2); rbytes(&r, "hi", 2);
	r16(&r, 4); r8(&r, 0);
	rrec(&r, 6, 0, 0);
	rfoot(&r);
	CHECK(apply_raw(NULL, &r, &t1, &err) == RVF_OK);
	CHECK(meta_table_record_count(t1) == 2);
	CHECK(meta_table_get(t1, 5, NULL) == 1); /* null reads as absent */
	CHECK(get(t1, 5, "a") && !get(t1, 5, "n"));
	CHECK(meta_table_get(t1, 6, NULL) == 0);
	meta_record mr;
	CHECK(meta_table_find(t1, 6, &mr) && mr.count == 0);
	CHECK(!meta_table_find(t1, 7, &mr));

	/* Upstream delta semantics: upsert keeps unlisted fields, delete-field
	 * removes one, a new schema field is merged in. */
	rhead(&r, 1, 0, 2, 1, 3, 0, 2);
	rschema(&r, 0, RVF_VALUE_STRING, "a");
	rschema(&r, 4, RVF_VALUE_I64, "n");
	rschema(&r, 9, RVF_VALUE_BOOL, "z");
	rrec(&r, 5, 0, 2);
	r16(&r, 4); r8(&r, 3); r64(&r, (uint64_t)-3);
	r16(&r, 9); r8(&r, 6); r8(&r, 1);
	rrec(&r, 6, 0, 1);
	r16(&r, 0); r8(&r, 7);
	rfoot(&r);
	CHECK(apply_raw(t1, &r, &t2, &err) == RVF_OK);
	CHECK(meta_table_get(t2, 5, NULL) == 3);
	CHECK(get(t2, 5, "n") && get(t2, 5, "n")->u.i64 == -3);
	CHECK(get(t2, 5, "a") && get(t2, 5, "z") && get(t2, 5, "z")->u.b);
	CHECK(meta_table_field_count(t2) == 3);
	CHECK(meta_table_get(t1, 5, NULL) == 1);
	/* The same delta against the wrong generation. */
	CHECK(fails(t2, (r.len -= 40, &r), "based on generation 1"));
	meta_table_unref(t2);

	/* Each malformation, refused with its reason. */
	rhead(&r, 2, 1, 1, UINT64_MAX, 0, 0, 0);
	CHECK(fails(NULL, &r, "version 2"));
	rhead(&r, 1, 3, 1, UINT64_MAX, 0, 0, 0);
	CHECK(fails(NULL, &r, "flags"));
	rhead(&r, 1, 1, 1, 0, 0, 0, 0);
	CHECK(fails(NULL, &r, "base generation"));
	rhead(&r, 1, 0, 1, 1, 0, 0, 0);
	CHECK(fails(NULL, &r, "base generation"));
	rhead(&r, 1, 1, 0, UINT64_MAX, 0, 0, 0);
	CHECK(fails(NULL, &r, "generation 0"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 0, 0, UINT32_MAX);
	CHECK(fails(NULL, &r, "record count"));
	rhead(&r, 1, 1, 1, UINT64_MAX, UINT32_MAX, 0, 0);
	CHECK(fails(NULL, &r, "schema count"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 2, 0, 0);
	rschema(&r, 3, 1, "a");
	rschema(&r, 3, 1, "b");
	CHECK(fails(NULL, &r, "not ascending"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 2, 0, 0);
	rschema(&r, 3, 1, "a");
	rschema(&r, 4, 3, "a");
	CHECK(fails(NULL, &r, "given to fields"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 0);
	rschema(&r, 3, 8, "a");
	CHECK(fails(NULL, &r, "unknown type"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 0);
	r16(&r, 0); r8(&r, 1); r8(&r, 1); r16(&r, 3); rbytes(&r, "a\0b", 3);
	CHECK(fails(NULL, &r, "NUL"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 0, 2, 0);
	r16(&r, 1); rbytes(&r, "k", 1); r8(&r, 0);
	r16(&r, 1); rbytes(&r, "a", 1); r8(&r, 0);
	CHECK(fails(NULL, &r, "keys not ascending"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 2);
	rschema(&r, 0, RVF_VALUE_I64, "n");
	rrec(&r, 9, 0, 0);
	rrec(&r, 9, 0, 0);
	CHECK(fails(NULL, &r, "not above"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 1);
	rschema(&r, 0, RVF_VALUE_I64, "n");
	rrec(&r, 9, 2, 0);
	CHECK(fails(NULL, &r, "unknown op"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 1);
	rschema(&r, 0, RVF_VALUE_I64, "n");
	rrec(&r, 9, 1, 1);
	r16(&r, 0); r8(&r, 3); r64(&r, 1);
	CHECK(fails(NULL, &r, "delete-record carries"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 1);
	rschema(&r, 0, RVF_VALUE_I64, "n");
	rrec(&r, 9, 0, 1);
	r16(&r, 0); r8(&r, 4); r64(&r, 1);
	CHECK(fails(NULL, &r, "holds tag 4"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 1);
	rschema(&r, 0, RVF_VALUE_I64, "n");
	rrec(&r, 9, 0, 1);
	r16(&r, 1); r8(&r, 3); r64(&r, 1);
	CHECK(fails(NULL, &r, "not in the schema"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 2, 0, 1);
	rschema(&r, 0, RVF_VALUE_I64, "n");
	rschema(&r, 1, RVF_VALUE_I64, "m");
	rrec(&r, 9, 0, 2);
	r16(&r, 1); r8(&r, 3); r64(&r, 1);
	r16(&r, 0); r8(&r, 3); r64(&r, 1);
	CHECK(fails(NULL, &r, "field ids not ascending"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 1);
	rschema(&r, 0, RVF_VALUE_F64, "x");
	rrec(&r, 9, 0, 1);
	r16(&r, 0); r8(&r, 5); r64(&r, 0x7ff0000000000000ull);
	CHECK(fails(NULL, &r, "non-finite"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 1);
	rschema(&r, 0, RVF_VALUE_BOOL, "x");
	rrec(&r, 9, 0, 1);
	r16(&r, 0); r8(&r, 6); r8(&r, 2);
	CHECK(fails(NULL, &r, "bool"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 1);
	rschema(&r, 0, RVF_VALUE_BOOL, "x");
	rrec(&r, 9, 0, 1);
	r16(&r, 0); r8(&r, 9);
	CHECK(fails(NULL, &r, "holds tag 9"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 1, 0, 1);
	rschema(&r, 0, RVF_VALUE_STRING, "x");
	rrec(&r, 9, 0, 1);
	r16(&r, 0); r8(&r, 1); r32(&r, 100); rbytes(&r, "ab", 2);
	CHECK(fails(NULL, &r, "truncated"));
	rhead(&r, 1, 1, 1, UINT64_MAX, 0, 0, 0);
	r8(&r, 0);
	CHECK(fails(NULL, &r, "trailing"));
	/* A delta that renames or retypes a field of its base. */
	rhead(&r, 1, 0, 2, 1, 1, 0, 0);
	rschema(&r, 0, RVF_VALUE_I64, "a");
	CHECK(fails(t1, &r, "was \"a\""));
	rhead(&r, 1, 0, 2, 1, 1, 0, 0);
	rschema(&r, 0, RVF_VALUE_STRING, "b");
	CHECK(fails(t1, &r, "was \"a\""));
	rhead(&r, 1, 0, 2, 1, 1, 0, 0);
	rschema(&r, 7, RVF_VALUE_STRING, "a");
	CHECK(fails(t1, &r, "two field ids"));
	/* Bad magics. */
	rhead(&r, 1, 1, 1, UINT64_MAX, 0, 0, 0);
	rfoot(&r);
	r.b[0] = 'X';
	CHECK(meta_payload_check(r.b, r.len, NULL, &err) == RVF_E_CORRUPT &&
	      strstr(err.message, "magic"));
	r.b[0] = 'R';
	r.b[r.len - 40] = 'X';
	CHECK(meta_payload_check(r.b, r.len, NULL, &err) == RVF_E_CORRUPT &&
	      strstr(err.message, "RVFDONE"));
	CHECK(meta_payload_check(NULL, 0, NULL, &err) == RVF_E_CORRUPT);
	meta_table_unref(t1);
}

static void test_batch_types(void)
{
	rvf_error err;
	meta_batch *b = meta_batch_new(NULL, &err);
	CHECK(b);
	uint64_t ids[] = { 1, 2, 3 };

	/* A new field takes the type of its first value; exact conversions. */
	rvf_meta_field a[] = { ff64("x", 1.5), fu64("n", 3), fstr("s", "a") };
	size_t sa[] = { 0, 3 };
	CHECK(meta_batch_add(b, 1, ids, a, sa, &err) == RVF_OK);
	rvf_meta_field c[] = { fi64("x", 5), fi64("n", 7), fi64("d", 1),
			       fstr("d", "dup ignored") };
	size_t sc[] = { 0, 4 };
	CHECK(meta_batch_add(b, 1, ids + 1, c, sc, &err) == RVF_OK);
	CHECK(meta_batch_rows(b) == 2);

	/* Refusals leave the batch as it was (new field "q" included). */
	rvf_meta_field bad[][2] = {
		{ fstr("q", "new"), fi64("n", -1) },         /* negative into u64 */
		{ fstr("q", "new"), fi64("s", 1) },          /* i64 into string */
		{ fstr("q", "new"), ff64("n", 2.5) },        /* fraction into u64 */
		{ fstr("q", "new"), ff64("z", NAN) },        /* not finite */
		{ fstr("q", "new"), fstr("w", "\xff\xfe") }, /* not UTF-8 */
		{ fstr("q", "new"), fstr(NULL, "x") },       /* no name */
		{ fstr("q", "new"), fbool("x", true) },      /* bool into f64 */
		{ fstr("q", "new"), fstr("w", "\xed\xa0\x80") }, /* surrogate */
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t sb[] = { 0, 1, 2 };
		rvf_code rc = meta_batch_add(b, 2, ids, bad[i], sb, &err);
		CHECK(rc == RVF_E_INVALID_ARGUMENT);
		if (rc != RVF_E_INVALID_ARGUMENT)
			fprintf(stderr, "  case %zu\n", i);
		CHECK(meta_batch_rows(b) == 2);
	}
	/* "q" is free again: it may now be an i64. */
	rvf_meta_field q[] = { fi64("q", 4), fbytes("w", "\xff\xfe", 2) };
	size_t sq[] = { 0, 2 };
	CHECK(meta_batch_add(b, 1, ids + 2, q, sq, &err) == RVF_OK);
	/* Id 1 again: its last row with fields wins; a row without fields
	 * changes nothing. */
	rvf_meta_field e[] = { fstr("s", "last") };
	size_t se[] = { 0, 1, 1 };
	uint64_t ids2[] = { 1, 1 };
	CHECK(meta_batch_add(b, 2, ids2, e, se, &err) == RVF_OK);
	CHECK(meta_batch_rows(b) == 4);

	meta_write w = { 0 };
	CHECK(meta_batch_finish(b, 0, &w, &err) == RVF_OK);
	const meta_table *t = w.table;
	const rvf_value *v = get(t, 2, "x");
	CHECK(v && v->type == RVF_VALUE_F64 && v->u.f64 == 5.0);
	v = get(t, 2, "n");
	CHECK(v && v->type == RVF_VALUE_U64 && v->u.u64 == 7);
	v = get(t, 2, "d");
	CHECK(v && v->type == RVF_VALUE_I64 && v->u.i64 == 1);
	v = get(t, 3, "q");
	CHECK(v && v->type == RVF_VALUE_I64 && v->u.i64 == 4);
	v = get(t, 3, "w");
	CHECK(v && v->type == RVF_VALUE_BYTES && v->u.str.len == 2);
	CHECK(meta_table_get(t, 1, NULL) == 1);
	v = get(t, 1, "s");
	CHECK(v && v->u.str.len == 4 && memcmp(v->u.str.ptr, "last", 4) == 0);
	/* Field ids in order of first appearance. */
	CHECK(meta_table_field_by_name(t, "x", 1)->id == 0);
	CHECK(meta_table_field_by_name(t, "n", 1)->id == 1);
	CHECK(meta_table_field_by_name(t, "s", 1)->id == 2);
	CHECK(meta_table_field_by_name(t, "d", 1)->id == 3);
	CHECK(meta_table_field_by_name(t, "q", 1)->id == 4);

	/* Converting into an existing table's field types. */
	rvf_meta_field g[] = { fu64("x", 9) };
	size_t sg[] = { 0, 1 };
	meta_write w2 = { 0 };
	CHECK(meta_encode_rows(t, 1, ids, g, sg, 0, &w2, &err) == RVF_OK);
	v = get(w2.table, 1, "x");
	CHECK(v && v->type == RVF_VALUE_F64 && v->u.f64 == 9.0);
	CHECK(meta_table_get(w2.table, 1, NULL) == 1); /* "s" replaced away */
	meta_write_release(&w2);
	rvf_meta_field h[] = { fstr("x", "no") };
	CHECK(meta_encode_rows(t, 1, ids, h, sg, 0, &w2, &err) ==
	      RVF_E_INVALID_ARGUMENT);
	CHECK(strstr(err.message, "\"x\"") != NULL);
	meta_write_release(&w);
}

/* ------------------------------------------------------------------ */
/* The text form (xattrs, export through a mount)                      */
/* ------------------------------------------------------------------ */

/* text -> (inferred) value -> text gives the same text and type. */
static void text_round(const char *text, rvf_value_type type, const char *want)
{
	rvf_value v;
	char *owned = NULL, *back;
	size_t len;

	CHECK(rvf_value_parse(text, strlen(text), 0, &v, &owned, NULL) == RVF_OK,
	      "parse %s", text);
	CHECK(v.type == type, "%s: type %d, want %d", text, (int)v.type, (int)type);
	back = rvf_value_text(&v, &len);
	CHECK(back && len == strlen(want) && !memcmp(back, want, len),
	      "%s: text back %s, want %s", text, back ? back : "(null)", want);
	free(back);
	free(owned);
}

/* value -> text -> value is the same value. */
static void value_round(rvf_value v, const char *want)
{
	size_t len;
	char *t = rvf_value_text(&v, &len), *owned = NULL;
	rvf_value back;

	CHECK(t && len == strlen(want) && !memcmp(t, want, len), "text %s, want %s",
	      t ? t : "(null)", want);
	CHECK(rvf_value_parse(t, len, 0, &back, &owned, NULL) == RVF_OK, "parse %s", t);
	CHECK(meta_value_cmp(&v, &back) == 0 && back.type == v.type,
	      "%s: does not read back as the same value", want);
	free(t);
	free(owned);
}

static rvf_value sv(const char *s)
{
	return (rvf_value){ .type = RVF_VALUE_STRING, .u.str = { s, strlen(s) } };
}

static void test_text_form(void)
{
	text_round("17", RVF_VALUE_I64, "17");
	text_round("-3", RVF_VALUE_I64, "-3");
	text_round("18446744073709551615", RVF_VALUE_U64, "18446744073709551615");
	text_round("2.5", RVF_VALUE_F64, "2.5");
	text_round("2.0", RVF_VALUE_F64, "2.0");
	text_round("1e30", RVF_VALUE_F64, "1e+30");
	text_round("true", RVF_VALUE_BOOL, "true");
	text_round("false", RVF_VALUE_BOOL, "false");
	text_round("red", RVF_VALUE_STRING, "red");
	text_round("02134", RVF_VALUE_STRING, "02134");
	text_round("", RVF_VALUE_STRING, "");
	text_round("\"17\"", RVF_VALUE_STRING, "\"17\"");
	text_round("True", RVF_VALUE_STRING, "True");
	text_round("1e999", RVF_VALUE_STRING, "1e999");
	value_round(sv("17"), "\"17\"");
	value_round(sv("true"), "\"true\"");
	value_round(sv("02134"), "02134");
	value_round(sv("x y"), "x y");
	value_round(sv("\"quoted\""), "\"\\\"quoted\\\"\"");
	value_round(sv("-1.5e3"), "\"-1.5e3\"");
	value_round((rvf_value){ .type = RVF_VALUE_I64, .u.i64 = INT64_MIN },
		    "-9223372036854775808");
	value_round((rvf_value){ .type = RVF_VALUE_F64, .u.f64 = 0.1 }, "0.1");
	value_round((rvf_value){ .type = RVF_VALUE_F64, .u.f64 = 3.0 }, "3.0");
	value_round((rvf_value){ .type = RVF_VALUE_F64, .u.f64 = -1e-300 }, "-1e-300");
	value_round((rvf_value){ .type = RVF_VALUE_BOOL, .u.b = true }, "true");

	/* With the field's type: bare text into a string field is the text;
	 * numbers convert exactly or are refused. */
	rvf_value v;
	char *owned = NULL;
	CHECK(rvf_value_parse("17", 2, RVF_VALUE_STRING, &v, &owned, NULL) == RVF_OK &&
	      v.type == RVF_VALUE_STRING && v.u.str.len == 2, "17 into a string field");
	CHECK(rvf_value_parse("17", 2, RVF_VALUE_F64, &v, &owned, NULL) == RVF_OK &&
	      v.type == RVF_VALUE_F64 && v.u.f64 == 17.0, "17 into an f64 field");
	CHECK(rvf_value_parse("17", 2, RVF_VALUE_U64, &v, &owned, NULL) == RVF_OK &&
	      v.type == RVF_VALUE_U64 && v.u.u64 == 17, "17 into a u64 field");
	rvf_error err;
	CHECK(rvf_value_parse("1.5", 3, RVF_VALUE_I64, &v, &owned, &err) ==
	      RVF_E_INVALID_ARGUMENT && strstr(err.message, "i64"), "1.5 into i64");
	CHECK(rvf_value_parse("red", 3, RVF_VALUE_I64, &v, &owned, &err) ==
	      RVF_E_INVALID_ARGUMENT, "red into i64");
	CHECK(rvf_value_parse("\"17\"", 4, RVF_VALUE_I64, &v, &owned, &err) ==
	      RVF_E_INVALID_ARGUMENT && !owned, "a string into i64");
	CHECK(rvf_value_parse("\"x", 2, 0, &v, &owned, &err) == RVF_E_INVALID_ARGUMENT,
	      "an unterminated JSON string");
	CHECK(rvf_value_parse("\xff\xfe", 2, 0, &v, &owned, NULL) == RVF_OK &&
	      v.type == RVF_VALUE_BYTES, "non-UTF-8 text is bytes");
}

int main(void)
{
	test_value_cmp();
	test_empty();
	test_chain();
	test_cadence();
	test_damage();
	test_handmade();
	test_batch_types();
	test_text_form();
	if (failures) {
		fprintf(stderr, "test_meta: %d check(s) failed\n", failures);
		return 1;
	}
	printf("test_meta: all checks passed\n");
	return 0;
}
