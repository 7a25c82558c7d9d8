/*
 * meta.c - immutable metadata tables and the META_SEG v1 codec.
 *
 * Writers never build tables directly: they encode a payload and apply it
 * with the same decoder replay uses (meta_table_apply), so the writer's
 * table cannot drift from what the file says.
 */
#include "meta_codec.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "bytes.h"
#include "error.h"
#include "sort.h"

#define BODY_MAGIC "RVFMETA" /* with its NUL: 8 bytes */
#define FOOT_MAGIC "RVFDONE"
#define HDR_LEN 40u
#define FOOT_LEN (8u + crypto_hash_sha256_BYTES)
#define OFF_RECORD_COUNT 36u


#define corrupt(err, fmt, ...) \
	rvf_fail(err, RVF_E_CORRUPT, "META payload: " fmt, ##__VA_ARGS__)

/* ------------------------------------------------------------------ */
/* Records and tables                                                  */
/* ------------------------------------------------------------------ */


const meta_table meta_empty_table = { .is_static = true };

/* A field with its value, while decoding or merging. */
typedef struct fv {
	uint16_t id;
	uint8_t tag; /* a value type, TAG_NULL or TAG_DELETE */
	rvf_value v;
} fv;


int meta_name_cmp(const char *a, size_t al, const char *b, size_t bl)
{
	size_t m = al < bl ? al : bl;
	int c = m ? memcmp(a, b, m) : 0;
	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

static void rec_unref(rec *r)
{
	if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
		free(r);
}


/* Builds a record of f[n] (real values only, ascending ids in t's schema). */
static rec *rec_new(const meta_table *t, const fv *f, size_t n)
{
	size_t size = sizeof(rec);
	if (!meta_size_add(&size, n * (sizeof(rvf_meta_field) + sizeof(uint16_t))))
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const meta_field_def *d = meta_table_field_by_id(t, f[i].id);
		if (!d || !meta_size_add(&size, d->name_len + 1))
			return NULL;
		if (meta_is_str(f[i].v.type) && !meta_size_add(&size, f[i].v.u.str.len + 1))
			return NULL;
	}
	rec *r = malloc(size);
	if (!r)
		return NULL;
	atomic_init(&r->refs, 1);
	r->count = n;
	uint16_t *ids = (uint16_t *)(r->fields + n);
	char *s = (char *)(ids + n);
	for (size_t i = 0; i < n; i++) {
		const meta_field_def *d = meta_table_field_by_id(t, f[i].id);
		ids[i] = f[i].id;
		memcpy(s, d->name, d->name_len);
		s[d->name_len] = '\0';
		r->fields[i].name = s;
		s += d->name_len + 1;
		r->fields[i].value = f[i].v;
		if (meta_is_str(f[i].v.type)) {
			size_t len = f[i].v.u.str.len;
			if (len)
				memcpy(s, f[i].v.u.str.ptr, len);
			s[len] = '\0'; /* convenient for callers printing strings */
			r->fields[i].value.u.str.ptr = s;
			s += len + 1;
		}
	}
	r->ids = ids;
	return r;
}

static void table_free(meta_table *t)
{
	for (size_t i = 0; i < t->nrecs; i++)
		rec_unref(t->recs[i].r);
	for (size_t i = 0; i < t->nschema; i++)
		free((char *)t->schema[i].name);
	free(t->schema);
	free(t->by_name);
	free(t->recs);
	free(t);
}

meta_table *meta_table_empty(void)
{
	return (meta_table *)&meta_empty_table;
}

meta_table *meta_table_ref(const meta_table *t)
{
	if (!t)
		return meta_table_empty();
	if (!t->is_static)
		atomic_fetch_add_explicit(&((meta_table *)t)->refs, 1,
					  memory_order_relaxed);
	return (meta_table *)t;
}

void meta_table_unref(meta_table *t)
{
	if (!t || t->is_static)
		return;
	if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
		table_free(t);
}

uint64_t meta_table_generation(const meta_table *t)
{
	return t ? t->generation : 0;
}

size_t meta_table_record_count(const meta_table *t)
{
	return t ? t->nrecs : 0;
}

static const entry *find_entry(const meta_table *t, uint64_t id)
{
	if (!t)
		return NULL;
	size_t lo = 0, hi = t->nrecs;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->recs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->nrecs && t->recs[lo].id == id ? &t->recs[lo] : NULL;
}

bool meta_table_find(const meta_table *t, uint64_t id, meta_record *out)
{
	const entry *e = find_entry(t, id);
	if (!e)
		return false;
	out->count = e->r->count;
	out->fields = e->r->fields;
	out->field_ids = e->r->ids;
	return true;
}

size_t meta_table_get(const meta_table *t, uint64_t id,
		      const rvf_meta_field **fields)
{
	const entry *e = find_entry(t, id);
	if (fields)
		*fields = e ? e->r->fields : NULL;
	return e ? e->r->count : 0;
}

size_t meta_table_field_count(const meta_table *t)
{
	return t ? t->nschema : 0;
}

const meta_field_def *meta_table_field_at(const meta_table *t, size_t index)
{
	return t && index < t->nschema ? &t->schema[index] : NULL;
}

const meta_field_def *meta_table_field_by_id(const meta_table *t, uint16_t id)
{
	if (!t)
		return NULL;
	size_t lo = 0, hi = t->nschema;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->schema[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->nschema && t->schema[lo].id == id ? &t->schema[lo] : NULL;
}

const meta_field_def *meta_table_field_by_name(const meta_table *t,
					       const char *name, size_t len)
{
	if (!t || !t->by_name)
		return NULL;
	size_t lo = 0, hi = t->nschema;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const meta_field_def *d = t->by_name[mid];
		int c = meta_name_cmp(d->name, d->name_len, name, len);
		if (c == 0)
			return d;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

void meta_table_foreach(const meta_table *t, meta_visit_fn fn, void *ctx)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrecs; i++) {
		const rec *r = t->recs[i].r;
		meta_record mr = { r->count, r->fields, r->ids };
		if (!fn(ctx, t->recs[i].id, &mr))
			return;
	}
}

static int def_name_cmp(const void *a, const void *b)
{
	const meta_field_def *x = *(const meta_field_def *const *)a;
	const meta_field_def *y = *(const meta_field_def *const *)b;
	return meta_name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* Builds t->by_name; NULL when fine, else the name given to two ids. */
static const meta_field_def *index_names(meta_table *t, bool *oom)
{
	*oom = false;
	t->by_name = malloc((t->nschema ? t->nschema : 1) * sizeof(*t->by_name));
	if (!t->by_name) {
		*oom = true;
		return NULL;
	}
	for (size_t i = 0; i < t->nschema; i++)
		t->by_name[i] = &t->schema[i];
	qsort(t->by_name, t->nschema, sizeof(*t->by_name), def_name_cmp);
	for (size_t i = 1; i < t->nschema; i++)
		if (def_name_cmp(&t->by_name[i - 1], &t->by_name[i]) == 0)
			return t->by_name[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

static int cmp3(int c)
{
	return c < 0 ? -1 : c > 0;
}

/* Exact u64 <-> double comparison. */
static int cmp_u64_f64(uint64_t x, double d)
{
	if (d < 0)
		return 1;
	if (d >= 18446744073709551616.0)
		return -1;
	/* The cast truncates; (double)ti is exact (below 2^53 any integer
	 * is, above it d is itself an integer).  No libm needed. */
	uint64_t ti = (uint64_t)d;
	if (x != ti)
		return x < ti ? -1 : 1;
	return d > (double)ti ? -1 : 0;
}

static int cmp_i64_f64(int64_t x, double d)
{
	if (x >= 0)
		return cmp_u64_f64((uint64_t)x, d);
	if (d >= 0)
		return -1;
	if (d < -9223372036854775808.0)
		return 1;
	int64_t ti = (int64_t)d; /* truncates; exact back as above */
	if (x != ti)
		return x < ti ? -1 : 1;
	return d < (double)ti ? 1 : 0;
}

static bool is_num(rvf_value_type t)
{
	return t == RVF_VALUE_I64 || t == RVF_VALUE_U64 || t == RVF_VALUE_F64;
}

static int cmp_num(const rvf_value *a, const rvf_value *b)
{
	switch (a->type) {
	case RVF_VALUE_I64:
		switch (b->type) {
		case RVF_VALUE_I64:
			return a->u.i64 < b->u.i64 ? -1 : a->u.i64 > b->u.i64;
		case RVF_VALUE_U64:
			if (a->u.i64 < 0)
				return -1;
			return (uint64_t)a->u.i64 < b->u.u64 ? -1 :
			       (uint64_t)a->u.i64 > b->u.u64;
		default:
			return cmp_i64_f64(a->u.i64, b->u.f64);
		}
	case RVF_VALUE_U64:
		switch (b->type) {
		case RVF_VALUE_U64:
			return a->u.u64 < b->u.u64 ? -1 : a->u.u64 > b->u.u64;
		case RVF_VALUE_I64:
			return -cmp_num(b, a);
		default:
			return cmp_u64_f64(a->u.u64, b->u.f64);
		}
	default:
		if (b->type == RVF_VALUE_F64)
			return a->u.f64 < b->u.f64 ? -1 : a->u.f64 > b->u.f64;
		return -cmp_num(b, a);
	}
}

int meta_value_cmp(const rvf_value *a, const rvf_value *b)
{
	if (is_num(a->type) && is_num(b->type)) {
		if ((a->type == RVF_VALUE_F64 && isnan(a->u.f64)) ||
		    (b->type == RVF_VALUE_F64 && isnan(b->u.f64)))
			return META_CMP_NONE;
		return cmp_num(a, b);
	}
	if (a->type != b->type)
		return META_CMP_NONE;
	switch (a->type) {
	case RVF_VALUE_STRING:
	case RVF_VALUE_BYTES:
		return cmp3(meta_name_cmp(a->u.str.ptr, a->u.str.len, b->u.str.ptr,
				     b->u.str.len));
	case RVF_VALUE_BOOL:
		return (int)a->u.b - (int)b->u.b;
	default:
		return META_CMP_NONE;
	}
}

bool meta_value_convert(const rvf_value *v, rvf_value_type to, rvf_value *out)
{
	if (v->type == to) {
		*out = *v;
		return true;
	}
	if (!is_num(v->type) || !is_num(to))
		return false;
	if (v->type == RVF_VALUE_F64 && !isfinite(v->u.f64))
		return false;
	rvf_value r = { .type = to };
	switch (to) {
	case RVF_VALUE_I64:
		if (v->type == RVF_VALUE_U64) {
			if (v->u.u64 > INT64_MAX)
				return false;
			r.u.i64 = (int64_t)v->u.u64;
		} else {
			double d = v->u.f64;
			if (d < -9223372036854775808.0 || d >= 9223372036854775808.0)
				return false;
			r.u.i64 = (int64_t)d; /* a fraction fails the check below */
		}
		break;
	case RVF_VALUE_U64:
		if (v->type == RVF_VALUE_I64) {
			if (v->u.i64 < 0)
				return false;
			r.u.u64 = (uint64_t)v->u.i64;
		} else {
			double d = v->u.f64;
			if (d < 0 || d >= 18446744073709551616.0)
				return false;
			r.u.u64 = (uint64_t)d;
		}
		break;
	default:
		r.u.f64 = v->type == RVF_VALUE_I64 ? (double)v->u.i64 :
						     (double)v->u.u64;
		break;
	}
	if (meta_value_cmp(v, &r) != 0)
		return false; /* not exactly representable */
	*out = r;
	return true;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                            */
/* ------------------------------------------------------------------ */

/* A bounds-checked cursor: every read fails cleanly past the end. */
typedef struct rd {
	const uint8_t *p;
	size_t len;
	size_t pos;
} rd;

static const uint8_t *rd_take(rd *r, size_t n)
{
	if (r->len - r->pos < n)
		return NULL;
	const uint8_t *q = r->p + r->pos;
	r->pos += n;
	return q;
}

static bool rd_u8(rd *r, uint8_t *v)
{
	const uint8_t *q = rd_take(r, 1);
	if (q)
		*v = *q;
	return q;
}

static bool rd_u16(rd *r, uint16_t *v)
{
	const uint8_t *q = rd_take(r, 2);
	if (q)
		*v = ld16(q);
	return q;
}

static bool rd_u32(rd *r, uint32_t *v)
{
	const uint8_t *q = rd_take(r, 4);
	if (q)
		*v = ld32(q);
	return q;
}

static bool rd_u64(rd *r, uint64_t *v)
{
	const uint8_t *q = rd_take(r, 8);
	if (q)
		*v = ld64(q);
	return q;
}

/* Reads the value after `tag`; NULL when fine, else what is wrong. */
static const char *rd_value(rd *r, uint8_t tag, rvf_value *v)
{
	uint64_t x;
	uint32_t n;
	uint8_t b;
	const uint8_t *q;

	memset(v, 0, sizeof(*v));
	switch (tag) {
	case TAG_NULL:
	case TAG_DELETE:
		return NULL;
	case RVF_VALUE_STRING:
	case RVF_VALUE_BYTES:
		if (!rd_u32(r, &n))
			return "truncated value";
		if (n > META_MAX_VALUE)
			return "value longer than the limit";
		q = rd_take(r, n);
		if (!q)
			return "truncated value";
		v->type = tag;
		v->u.str.ptr = (const char *)q;
		v->u.str.len = n;
		return NULL;
	case RVF_VALUE_I64:
	case RVF_VALUE_U64:
	case RVF_VALUE_F64:
		if (!rd_u64(r, &x))
			return "truncated value";
		v->type = tag;
		if (tag == RVF_VALUE_U64) {
			v->u.u64 = x;
		} else if (tag == RVF_VALUE_I64) {
			memcpy(&v->u.i64, &x, 8);
		} else {
			memcpy(&v->u.f64, &x, 8);
			if (!isfinite(v->u.f64))
				return "non-finite f64 value";
		}
		return NULL;
	case RVF_VALUE_BOOL:
		if (!rd_u8(r, &b))
			return "truncated value";
		if (b > 1)
			return "bool value is neither 0 nor 1";
		v->type = RVF_VALUE_BOOL;
		v->u.b = b;
		return NULL;
	default:
		return "unknown value tag";
	}
}

typedef struct pschema {
	uint16_t id;
	uint8_t type;
	bool nullable;
	const char *name;
	size_t name_len;
} pschema;

/* A validated payload. */
typedef struct parsed {
	meta_header h;
	size_t body_len;
	pschema *schema;   /* h.schema_count entries, names point into it */
	size_t records_at; /* body offset of the first record */
} parsed;

/* Growable scratch array of fields. */
typedef struct scratch {
	fv *f;
	size_t cap;
} scratch;

static bool scratch_fit(scratch *s, size_t n)
{
	if (n <= s->cap)
		return true;
	size_t c = s->cap ? s->cap : 16;
	while (c < n)
		c *= 2;
	fv *f = realloc(s->f, c * sizeof(fv));
	if (!f)
		return false;
	s->f = f;
	s->cap = c;
	return true;
}

static const pschema *pschema_find(const parsed *P, uint16_t id)
{
	size_t lo = 0, hi = P->h.schema_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (P->schema[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < P->h.schema_count && P->schema[lo].id == id ?
		       &P->schema[lo] : NULL;
}

static const char *const type_names[] = {
	"null", "string", "bytes", "i64", "u64", "f64", "bool", "delete-field"
};

/* Reads and validates record `index` into s->f[0 .. *n). */
static rvf_code read_record(rd *r, const parsed *P, uint32_t index,
			    const uint64_t *prev, uint64_t *id, uint8_t *op,
			    scratch *s, uint32_t *n, rvf_error *err)
{
	uint32_t count;
	if (!rd_u64(r, id) || !rd_u8(r, op) || !rd_u32(r, &count))
		return corrupt(err, "record %u is truncated", index);
	unsigned long long vid = (unsigned long long)*id;
	if (prev && *id <= *prev)
		return corrupt(err, "record %u: vector id %llu is not above %llu",
			       index, vid, (unsigned long long)*prev);
	if (*op != OP_UPSERT && *op != OP_DELETE)
		return corrupt(err, "record %u (id %llu): unknown op %u", index,
			       vid, *op);
	if (*op == OP_DELETE && count)
		return corrupt(err, "record %u (id %llu): delete-record carries %u fields",
			       index, vid, count);
	if (count > META_MAX_FIELDS || count > (r->len - r->pos) / 3)
		return corrupt(err, "record %u (id %llu): field count %u exceeds the payload",
			       index, vid, count);
	if (!scratch_fit(s, count))
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	for (uint32_t i = 0; i < count; i++) {
		fv *f = &s->f[i];
		if (!rd_u16(r, &f->id) || !rd_u8(r, &f->tag))
			return corrupt(err, "record %u (id %llu) is truncated",
				       index, vid);
		if (i && f->id <= s->f[i - 1].id)
			return corrupt(err, "record %u (id %llu): field ids not ascending",
				       index, vid);
		const pschema *d = pschema_find(P, f->id);
		if (!d)
			return corrupt(err, "record %u (id %llu): field %u is not in the schema",
				       index, vid, f->id);
		if (f->tag != TAG_NULL && f->tag != TAG_DELETE && f->tag != d->type)
			return corrupt(err, "record %u (id %llu): field %u is %s but holds tag %u",
				       index, vid, f->id, type_names[d->type], f->tag);
		const char *why = rd_value(r, f->tag, &f->v);
		if (why)
			return corrupt(err, "record %u (id %llu), field %u: %s",
				       index, vid, f->id, why);
	}
	*n = count;
	return RVF_OK;
}

static int pschema_name_cmp(const void *a, const void *b)
{
	const pschema *x = *(const pschema *const *)a;
	const pschema *y = *(const pschema *const *)b;
	return meta_name_cmp(x->name, x->name_len, y->name, y->name_len);
}

static rvf_code parse_schema(rd *r, parsed *P, rvf_error *err)
{
	uint32_t n = P->h.schema_count;
	P->schema = calloc(n ? n : 1, sizeof(pschema));
	if (!P->schema)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		pschema *d = &P->schema[i];
		uint8_t nullable;
		uint16_t len;
		if (!rd_u16(r, &d->id) || !rd_u8(r, &d->type) ||
		    !rd_u8(r, &nullable) || !rd_u16(r, &len))
			return corrupt(err, "schema entry %u is truncated", i);
		if (i && d->id <= P->schema[i - 1].id)
			return corrupt(err, "schema field ids not ascending at entry %u", i);
		if (d->type < RVF_VALUE_STRING || d->type > RVF_VALUE_BOOL)
			return corrupt(err, "schema field %u has unknown type %u",
				       d->id, d->type);
		if (nullable > 1)
			return corrupt(err, "schema field %u: nullable byte %u",
				       d->id, nullable);
		if (len > META_MAX_NAME)
			return corrupt(err, "schema field %u: name of %u bytes exceeds the limit",
				       d->id, len);
		const uint8_t *q = rd_take(r, len);
		if (!q)
			return corrupt(err, "schema entry %u is truncated", i);
		if (memchr(q, 0, len))
			return corrupt(err, "schema field %u: name contains NUL", d->id);
		d->nullable = nullable;
		d->name = (const char *)q;
		d->name_len = len;
	}
	/* Names identify fields too: two ids for one name is ambiguous. */
	const pschema **s = malloc((n ? n : 1) * sizeof(*s));
	if (!s)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	for (uint32_t i = 0; i < n; i++)
		s[i] = &P->schema[i];
	qsort(s, n, sizeof(*s), pschema_name_cmp);
	for (uint32_t i = 1; i < n; i++) {
		if (pschema_name_cmp(&s[i - 1], &s[i]) == 0) {
			rvf_code rc = corrupt(err, "schema name \"%.*s\" is given to fields %u and %u",
					      (int)s[i]->name_len, s[i]->name,
					      s[i - 1]->id, s[i]->id);
			free(s);
			return rc;
		}
	}
	free(s);
	return RVF_OK;
}

static rvf_code parse_file_meta(rd *r, const parsed *P, rvf_error *err)
{
	const uint8_t *prev = NULL;
	uint16_t prev_len = 0;
	for (uint32_t i = 0; i < P->h.file_meta_count; i++) {
		uint16_t len;
		uint8_t tag;
		rvf_value v;
		const uint8_t *key;
		if (!rd_u16(r, &len))
			return corrupt(err, "file metadata entry %u is truncated", i);
		if (len > META_MAX_NAME)
			return corrupt(err, "file metadata key %u exceeds the limit", i);
		key = rd_take(r, len);
		if (!key || !rd_u8(r, &tag))
			return corrupt(err, "file metadata entry %u is truncated", i);
		if (prev && meta_name_cmp((const char *)prev, prev_len,
				     (const char *)key, len) >= 0)
			return corrupt(err, "file metadata keys not ascending at entry %u", i);
		if (tag == TAG_DELETE)
			return corrupt(err, "file metadata entry %u holds delete-field", i);
		const char *why = rd_value(r, tag, &v);
		if (why)
			return corrupt(err, "file metadata entry %u: %s", i, why);
		prev = key;
		prev_len = len;
	}
	return RVF_OK;
}

/* Validates a whole payload; P->schema must be freed even on failure. */
static rvf_code parse(const void *payload, size_t len, parsed *P, scratch *s,
		      rvf_error *err)
{
	const uint8_t *p = payload;
	memset(P, 0, sizeof(*P));
	if (len > META_MAX_PAYLOAD)
		return corrupt(err, "%zu bytes exceed the %u-byte limit", len,
			       META_MAX_PAYLOAD);
	if (!p || len < HDR_LEN + FOOT_LEN)
		return corrupt(err, "too short (%zu bytes)", len);
	if (memcmp(p, BODY_MAGIC, 8) != 0)
		return corrupt(err, "bad magic (no \"RVFMETA\")");
	size_t body = len - FOOT_LEN;
	if (memcmp(p + body, FOOT_MAGIC, 8) != 0)
		return corrupt(err, "no \"RVFDONE\" footer (truncated?)");
	uint8_t h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, p, body);
	if (memcmp(h, p + body + 8, sizeof(h)) != 0)
		return corrupt(err, "SHA-256 of the body does not match the footer");

	rd r = { p, body, 8 };
	uint16_t version, flags;
	meta_header *H = &P->h;
	rd_u16(&r, &version);
	rd_u16(&r, &flags);
	rd_u64(&r, &H->generation);
	rd_u64(&r, &H->base_generation);
	rd_u32(&r, &H->schema_count);
	rd_u32(&r, &H->file_meta_count);
	rd_u32(&r, &H->record_count); /* HDR_LEN bytes are there */
	if (version != 1)
		return corrupt(err, "unsupported version %u", version);
	if (flags & ~1u)
		return corrupt(err, "unknown flags 0x%x", flags);
	H->snapshot = flags & 1u;
	unsigned long long gen = (unsigned long long)H->generation;
	unsigned long long bgen = (unsigned long long)H->base_generation;
	if (H->generation == 0 || H->generation == UINT64_MAX)
		return corrupt(err, "invalid generation %llu", gen);
	if (H->snapshot && H->base_generation != UINT64_MAX)
		return corrupt(err, "snapshot %llu has base generation %llu", gen, bgen);
	if (!H->snapshot && H->base_generation >= H->generation)
		return corrupt(err, "delta %llu has base generation %llu", gen, bgen);
	size_t left = body - HDR_LEN;
	if (H->schema_count > META_MAX_FIELDS || H->schema_count > left / 6)
		return corrupt(err, "schema count %u exceeds the payload", H->schema_count);
	if (H->file_meta_count > left / 3)
		return corrupt(err, "file metadata count %u exceeds the payload",
			       H->file_meta_count);
	if (H->record_count > META_MAX_RECORDS || H->record_count > left / 13)
		return corrupt(err, "record count %u exceeds the payload", H->record_count);

	rvf_code rc = parse_schema(&r, P, err);
	if (rc != RVF_OK)
		return rc;
	rc = parse_file_meta(&r, P, err);
	if (rc != RVF_OK)
		return rc;
	P->records_at = r.pos;
	P->body_len = body;
	uint64_t id, prev = 0;
	for (uint32_t i = 0; i < H->record_count; i++) {
		uint8_t op;
		uint32_t n;
		rc = read_record(&r, P, i, i ? &prev : NULL, &id, &op, s, &n, err);
		if (rc != RVF_OK)
			return rc;
		prev = id;
	}
	if (r.pos != body)
		return corrupt(err, "%zu trailing bytes after the records", body - r.pos);
	return RVF_OK;
}

rvf_code meta_payload_check(const void *payload, size_t len, meta_header *hdr,
			    rvf_error *err)
{
	parsed P;
	scratch s = { 0 };
	rvf_code rc = parse(payload, len, &P, &s, err);
	if (rc == RVF_OK && hdr)
		*hdr = P.h;
	free(P.schema);
	free(s.f);
	return rc;
}

/* t's schema: P's for a snapshot, base's merged with P's for a delta. */
static rvf_code build_schema(meta_table *t, const meta_table *base,
			     const parsed *P, rvf_error *err)
{
	size_t nb = base ? base->nschema : 0, np = P->h.schema_count;
	t->schema = calloc(nb + np > 0 ? nb + np : 1, sizeof(meta_field_def));
	if (!t->schema)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	size_t i = 0, j = 0;
	while (i < nb || j < np) {
		const meta_field_def *b = i < nb ? &base->schema[i] : NULL;
		const pschema *p = j < np ? &P->schema[j] : NULL;
		const char *name;
		meta_field_def d;
		if (b && p && b->id == p->id) {
			if (b->type != p->type ||
			    meta_name_cmp(b->name, b->name_len, p->name, p->name_len))
				return corrupt(err, "field %u was \"%s\" (%s), now \"%.*s\" (%s)",
					       b->id, b->name, type_names[b->type],
					       (int)p->name_len, p->name,
					       type_names[p->type]);
			d = *b;
			name = b->name;
			i++;
			j++;
		} else if (b && (!p || b->id < p->id)) {
			d = *b;
			name = b->name;
			i++;
		} else {
			d = (meta_field_def){ .id = p->id, .type = p->type,
					      .nullable = p->nullable,
					      .name_len = p->name_len };
			name = p->name;
			j++;
		}
		char *copy = malloc(d.name_len + 1);
		if (!copy)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		if (d.name_len)
			memcpy(copy, name, d.name_len);
		copy[d.name_len] = '\0';
		d.name = copy;
		t->schema[t->nschema++] = d;
	}
	bool oom;
	const meta_field_def *dup = index_names(t, &oom);
	if (oom)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	if (dup)
		return corrupt(err, "field name \"%s\" would name two field ids", dup->name);
	return RVF_OK;
}

/* An upsert on top of `old` (may be NULL): listed fields replace, null and
 * delete-field remove, the others stay.  Result in m->f[0 .. *k). */
static bool merge_fields(const rec *old, const fv *up, size_t nup, scratch *m,
			 size_t *k)
{
	size_t nold = old ? old->count : 0, i = 0, j = 0;
	*k = 0;
	if (!scratch_fit(m, nold + nup))
		return false;
	while (i < nold || j < nup) {
		if (j < nup && (i == nold || up[j].id <= old->ids[i])) {
			if (i < nold && up[j].id == old->ids[i])
				i++;
			if (up[j].tag != TAG_NULL && up[j].tag != TAG_DELETE)
				m->f[(*k)++] = up[j];
			j++;
		} else {
			m->f[*k] = (fv){ .id = old->ids[i],
					 .tag = (uint8_t)old->fields[i].value.type,
					 .v = old->fields[i].value };
			(*k)++;
			i++;
		}
	}
	return true;
}

rvf_code meta_table_apply(const meta_table *base, const void *payload,
			  size_t len, meta_table **out, rvf_error *err)
{
	parsed P;
	scratch s = { 0 }, m = { 0 };
	meta_table *t = NULL;
	*out = NULL;
	if (!base)
		base = &meta_empty_table;
	rvf_code rc = parse(payload, len, &P, &s, err);
	if (rc != RVF_OK)
		goto out;
	if (!P.h.snapshot && P.h.base_generation != base->generation) {
		rc = corrupt(err, "delta %llu is based on generation %llu, but the metadata is at %llu",
			     (unsigned long long)P.h.generation,
			     (unsigned long long)P.h.base_generation,
			     (unsigned long long)base->generation);
		goto out;
	}
	const meta_table *old = P.h.snapshot ? NULL : base;
	t = calloc(1, sizeof(*t));
	size_t nold = old ? old->nrecs : 0;
	if (t)
		t->recs = malloc((nold + P.h.record_count > 0 ?
				  nold + P.h.record_count : 1) * sizeof(entry));
	if (!t || !t->recs) {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		goto out;
	}
	atomic_init(&t->refs, 1);
	t->generation = P.h.generation;
	t->chain_deltas = old ? old->chain_deltas + 1 : 0;
	t->chain_bytes = (old ? old->chain_bytes : 0) + len;
	rc = build_schema(t, old, &P, err);
	if (rc != RVF_OK)
		goto out;

	rd r = { payload, P.body_len, P.records_at };
	size_t i = 0;
	uint64_t prev = 0;
	for (uint32_t x = 0; x < P.h.record_count; x++) {
		uint64_t id;
		uint8_t op;
		uint32_t n;
		rc = read_record(&r, &P, x, x ? &prev : NULL, &id, &op, &s, &n, err);
		if (rc != RVF_OK)
			goto out;
		prev = id;
		for (; i < nold && old->recs[i].id < id; i++) {
			atomic_fetch_add_explicit(&old->recs[i].r->refs, 1,
						  memory_order_relaxed);
			t->recs[t->nrecs++] = old->recs[i];
		}
		const rec *was = NULL;
		if (i < nold && old->recs[i].id == id)
			was = old->recs[i++].r;
		if (op == OP_DELETE)
			continue;
		size_t k;
		rec *nr = NULL;
		if (merge_fields(was, s.f, n, &m, &k))
			nr = rec_new(t, m.f, k);
		if (!nr) {
			rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
			goto out;
		}
		t->recs[t->nrecs++] = (entry){ id, nr };
	}
	for (; i < nold; i++) {
		atomic_fetch_add_explicit(&old->recs[i].r->refs, 1,
					  memory_order_relaxed);
		t->recs[t->nrecs++] = old->recs[i];
	}
	*out = t;
	t = NULL;
out:
	if (t)
		table_free(t);
	free(P.schema);
	free(s.f);
	free(m.f);
	return rc;
}

rvf_code meta_replay(const meta_blob *payloads, size_t n, meta_table **out,
		     meta_replay_info *info, rvf_error *err)
{
	char why[sizeof(((rvf_error *)0)->message)];
	rvf_error e;
	meta_header h;
	size_t first = n;

	*out = NULL;
	if (info)
		memset(info, 0, sizeof(*info));
	if (n == 0) {
		*out = meta_table_empty();
		return RVF_OK;
	}
	for (size_t i = n; i-- > 0;) {
		rvf_code rc = meta_payload_check(payloads[i].data, payloads[i].len,
						 &h, &e);
		if (rc != RVF_OK) {
			snprintf(why, sizeof(why), "%s", e.message);
			return rvf_fail(err, rc, "META segment %zu of %zu: %s",
					i + 1, n, why);
		}
		if (h.snapshot) {
			first = i;
			break;
		}
	}
	if (first == n)
		return rvf_fail(err, RVF_E_CORRUPT,
				"none of the %zu META segments is a snapshot", n);
	if (n - 1 - first > META_MAX_DELTAS)
		return rvf_fail(err, RVF_E_CORRUPT,
				"%zu META deltas follow the snapshot (at most %u)",
				n - 1 - first, META_MAX_DELTAS);
	meta_table *t = meta_table_empty();
	for (size_t i = first; i < n; i++) {
		meta_table *next;
		rvf_code rc = meta_table_apply(t, payloads[i].data,
					       payloads[i].len, &next, &e);
		meta_table_unref(t);
		if (rc != RVF_OK) {
			snprintf(why, sizeof(why), "%s", e.message);
			return rvf_fail(err, rc, "META segment %zu of %zu: %s",
					i + 1, n, why);
		}
		t = next;
	}
	if (info) {
		info->first = first;
		info->applied = n - first;
	}
	*out = t;
	return RVF_OK;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                            */
/* ------------------------------------------------------------------ */


static void put(meta_buf *b, const void *d, size_t n)
{
	if (b->oom || b->too_large)
		return;
	if (n > META_MAX_PAYLOAD - b->len) {
		b->too_large = true; /* stop before allocating the excess */
		return;
	}
	if (b->cap - b->len < n) {
		size_t c = b->cap ? b->cap : 4096;
		while (c - b->len < n)
			c *= 2;
		uint8_t *q = realloc(b->p, c);
		if (!q) {
			b->oom = true;
			return;
		}
		b->p = q;
		b->cap = c;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

void meta_put8(meta_buf *b, uint8_t v)
{
	put(b, &v, 1);
}

void meta_put16(meta_buf *b, uint16_t v)
{
	uint8_t q[2];
	st16(q, v);
	put(b, q, 2);
}

void meta_put32(meta_buf *b, uint32_t v)
{
	uint8_t q[4];
	st32(q, v);
	put(b, q, 4);
}

void meta_put64(meta_buf *b, uint64_t v)
{
	uint8_t q[8];
	st64(q, v);
	put(b, q, 8);
}

void meta_put_value(meta_buf *b, const rvf_value *v)
{
	uint64_t x;
	meta_put8(b, (uint8_t)v->type);
	switch (v->type) {
	case RVF_VALUE_STRING:
	case RVF_VALUE_BYTES:
		meta_put32(b, (uint32_t)v->u.str.len);
		put(b, v->u.str.ptr, v->u.str.len);
		break;
	case RVF_VALUE_I64:
		memcpy(&x, &v->u.i64, 8);
		meta_put64(b, x);
		break;
	case RVF_VALUE_U64:
		meta_put64(b, v->u.u64);
		break;
	case RVF_VALUE_F64:
		memcpy(&x, &v->u.f64, 8);
		meta_put64(b, x);
		break;
	case RVF_VALUE_BOOL:
		meta_put8(b, v->u.b);
		break;
	}
}

void meta_put_header(meta_buf *b, bool snapshot, uint64_t gen,
		       const meta_field_def *schema, size_t nschema)
{
	put(b, BODY_MAGIC, 8);
	meta_put16(b, 1);
	meta_put16(b, snapshot ? 1 : 0);
	meta_put64(b, gen);
	meta_put64(b, snapshot ? UINT64_MAX : gen - 1);
	meta_put32(b, (uint32_t)nschema);
	meta_put32(b, 0); /* no file metadata */
	meta_put32(b, 0); /* record count, patched by put_footer */
	for (size_t i = 0; i < nschema; i++) {
		meta_put16(b, schema[i].id);
		meta_put8(b, (uint8_t)schema[i].type);
		meta_put8(b, schema[i].nullable);
		meta_put16(b, (uint16_t)schema[i].name_len);
		put(b, schema[i].name, schema[i].name_len);
	}
}

rvf_code meta_put_footer(meta_buf *b, size_t nrecs, rvf_error *err)
{
	if (!b->oom && !b->too_large && b->len + FOOT_LEN > META_MAX_PAYLOAD)
		b->too_large = true;
	if (!b->oom && !b->too_large) {
		uint8_t h[crypto_hash_sha256_BYTES];
		st32(b->p + OFF_RECORD_COUNT, (uint32_t)nrecs);
		crypto_hash_sha256(h, b->p, b->len);
		put(b, FOOT_MAGIC, 8);
		put(b, h, sizeof(h));
	}
	if (b->oom)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	if (b->too_large || nrecs > META_MAX_RECORDS)
		return rvf_fail(err, RVF_E_TOO_LARGE,
				"metadata payload exceeds the META limits (%u bytes, %u records)",
				META_MAX_PAYLOAD, META_MAX_RECORDS);
	return RVF_OK;
}

rvf_code meta_check_generation(const meta_table *base, rvf_error *err)
{
	if (base->generation >= UINT64_MAX - 1)
		return rvf_fail(err, RVF_E_TOO_LARGE, "metadata generations exhausted");
	return RVF_OK;
}

/* A snapshot of t (restricted to keep) as generation gen. */
static rvf_code encode_full(const meta_table *t, meta_keep_fn keep, void *ctx,
			    uint64_t gen, meta_buf *b, rvf_error *err)
{
	size_t n = 0;
	meta_put_header(b, true, gen, t->schema, t->nschema);
	for (size_t i = 0; i < t->nrecs; i++) {
		const rec *r = t->recs[i].r;
		if (keep && !keep(ctx, t->recs[i].id))
			continue;
		meta_put64(b, t->recs[i].id);
		meta_put8(b, OP_UPSERT);
		meta_put32(b, (uint32_t)r->count);
		for (size_t j = 0; j < r->count; j++) {
			meta_put16(b, r->ids[j]);
			meta_put_value(b, &r->fields[j].value);
		}
		n++;
	}
	return meta_put_footer(b, n, err);
}

static bool want_snapshot(const meta_table *base, unsigned flags, size_t len)
{
	return (flags & META_FORCE_SNAPSHOT) || base->generation == 0 ||
	       (base->generation + 1) % META_SNAPSHOT_INTERVAL == 0 ||
	       base->chain_deltas >= META_SNAPSHOT_INTERVAL ||
	       base->chain_bytes + len > META_MAX_PAYLOAD;
}

/* Applies the finished delta in d to base, turning it into a snapshot of
 * the result when the chain wants one.  Consumes d. */
rvf_code meta_finish_write(const meta_table *base, meta_buf *d, unsigned flags,
			     meta_write *out, rvf_error *err)
{
	meta_table *t = NULL;
	rvf_code rc = meta_table_apply(base, d->p, d->len, &t, err);
	if (rc != RVF_OK)
		goto fail;
	if (want_snapshot(base, flags, d->len)) {
		free(d->p);
		*d = (meta_buf){ 0 };
		rc = encode_full(t, NULL, NULL, t->generation, d, err);
		if (rc != RVF_OK)
			goto fail;
		t->chain_deltas = 0;
		t->chain_bytes = d->len;
		out->snapshot = true;
	}
	out->payload = d->p;
	out->len = d->len;
	out->generation = t->generation;
	out->table = t;
	return RVF_OK;
fail:
	free(d->p);
	meta_table_unref(t);
	return rc;
}

void meta_write_release(meta_write *w)
{
	if (!w)
		return;
	free(w->payload);
	meta_table_unref(w->table);
	memset(w, 0, sizeof(*w));
}

rvf_code meta_encode_delete(const meta_table *base, size_t n,
			    const uint64_t *ids, unsigned flags,
			    meta_write *out, rvf_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!base)
		base = &meta_empty_table;
	if (n && !ids)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "no ids given");
	uint64_t *del = malloc((n ? n : 1) * sizeof(uint64_t));
	if (!del)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (find_entry(base, ids[i]))
			del[k++] = ids[i];
	qsort(del, k, sizeof(uint64_t), cmp_u64);
	size_t u = 0;
	for (size_t i = 0; i < k; i++)
		if (!u || del[i] != del[u - 1])
			del[u++] = del[i];
	if (u == 0) {
		free(del);
		out->table = meta_table_ref(base);
		return RVF_OK;
	}
	rvf_code rc = meta_check_generation(base, err);
	if (rc != RVF_OK) {
		free(del);
		return rc;
	}
	meta_buf b = { 0 };
	meta_put_header(&b, false, base->generation + 1, base->schema, base->nschema);
	for (size_t i = 0; i < u; i++) {
		meta_put64(&b, del[i]);
		meta_put8(&b, OP_DELETE);
		meta_put32(&b, 0);
	}
	free(del);
	rc = meta_put_footer(&b, u, err);
	if (rc != RVF_OK) {
		free(b.p);
		return rc;
	}
	return meta_finish_write(base, &b, flags, out, err);
}

rvf_code meta_encode_snapshot(const meta_table *base, meta_keep_fn keep,
			      void *ctx, meta_write *out, rvf_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!base)
		base = &meta_empty_table;
	if (base->generation == 0) {
		out->table = meta_table_ref(base);
		return RVF_OK;
	}
	rvf_code rc = meta_check_generation(base, err);
	if (rc != RVF_OK)
		return rc;
	meta_buf b = { 0 };
	rc = encode_full(base, keep, ctx, base->generation + 1, &b, err);
	if (rc == RVF_OK)
		rc = meta_table_apply(base, b.p, b.len, &out->table, err);
	if (rc != RVF_OK) {
		free(b.p);
		return rc;
	}
	out->payload = b.p;
	out->len = b.len;
	out->snapshot = true;
	out->generation = base->generation + 1;
	return RVF_OK;
}

const char *meta_type_name(rvf_value_type t)
{
	return t >= RVF_VALUE_STRING && t <= RVF_VALUE_BOOL ? type_names[t] : "?";
}
