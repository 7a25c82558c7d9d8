/*
 * meta_batch.c - rows of new metadata (from ingest, xattrs, restore) turned
 * into one META delta: field names are looked up or added to the schema,
 * values converted to the field's type, and each row replaces the whole
 * record of its id.
 */
#include "meta_codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

typedef struct brow {
	uint64_t id;
	size_t first; /* into fields */
	size_t count;
} brow;

typedef struct bfield {
	uint16_t id;
	rvf_value v;
} bfield;

struct meta_batch {
	meta_table *base;
	meta_field_def *schema; /* base's entries, then new ones (owned names) */
	size_t nschema, nbase, cap_schema;
	size_t *by_name; /* indices into schema, ascending by name */
	brow *rows;
	size_t nrows, cap_rows;
	bfield *fields;
	size_t nfields, cap_fields;
	char **chunks; /* string copies, one chunk per add */
	size_t nchunks, cap_chunks;
};

/* Room for `need` elements: the (maybe moved) array, or NULL with p
 * untouched. */
static void *grow(void *p, size_t *cap, size_t need, size_t size)
{
	if (need <= *cap)
		return p;
	size_t c = *cap ? *cap : 16;
	while (c < need) {
		if (c > SIZE_MAX / 2 / size)
			return NULL;
		c *= 2;
	}
	void *q = realloc(p, c * size);
	if (q)
		*cap = c;
	return q;
}

#define GROW(arr, cap, need) \
	((tmp = grow(arr, &(cap), need, sizeof(*(arr)))) ? ((arr) = tmp, true) : false)

meta_batch *meta_batch_new(const meta_table *base, rvf_error *err)
{
	if (!base)
		base = &meta_empty_table;
	meta_batch *b = calloc(1, sizeof(*b));
	if (!b)
		goto oom;
	void *tmp;
	b->base = meta_table_ref(base);
	b->nschema = b->nbase = base->nschema;
	if (!GROW(b->schema, b->cap_schema, b->nschema + 1))
		goto oom;
	b->by_name = malloc(b->cap_schema * sizeof(size_t));
	if (!b->by_name)
		goto oom;
	if (b->nschema)
		memcpy(b->schema, base->schema, b->nschema * sizeof(meta_field_def));
	for (size_t i = 0; i < b->nschema; i++)
		b->by_name[i] = (size_t)(base->by_name[i] - base->schema);
	return b;
oom:
	meta_batch_free(b);
	rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	return NULL;
}

void meta_batch_free(meta_batch *b)
{
	if (!b)
		return;
	for (size_t i = b->nbase; i < b->nschema; i++)
		free((char *)b->schema[i].name);
	for (size_t i = 0; i < b->nchunks; i++)
		free(b->chunks[i]);
	meta_table_unref(b->base);
	free(b->schema);
	free(b->by_name);
	free(b->rows);
	free(b->fields);
	free(b->chunks);
	free(b);
}

size_t meta_batch_rows(const meta_batch *b)
{
	return b ? b->nrows : 0;
}

/* Position of name in by_name; *found says whether it is there. */
static size_t batch_name_pos(const meta_batch *b, const char *name, size_t len,
			     bool *found)
{
	size_t lo = 0, hi = b->nschema;
	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const meta_field_def *d = &b->schema[b->by_name[mid]];
		int c = meta_name_cmp(d->name, d->name_len, name, len);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

bool meta_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		size_t k;
		uint32_t cp, min;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			k = 1, cp = c & 0x1F, min = 0x80;
		} else if ((c & 0xF0) == 0xE0) {
			k = 2, cp = c & 0x0F, min = 0x800;
		} else if ((c & 0xF8) == 0xF0) {
			k = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3F);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += k + 1;
	}
	return true;
}

/* Undoes an add that failed part-way: the batch is as it was. */
static void batch_rollback(meta_batch *b, size_t nschema, size_t nrows,
			   size_t nfields, size_t nchunks)
{
	for (size_t i = nschema; i < b->nschema; i++)
		free((char *)b->schema[i].name);
	size_t k = 0;
	for (size_t i = 0; i < b->nschema; i++)
		if (b->by_name[i] < nschema)
			b->by_name[k++] = b->by_name[i];
	b->nschema = nschema;
	b->nrows = nrows;
	b->nfields = nfields;
	while (b->nchunks > nchunks)
		free(b->chunks[--b->nchunks]);
}

static rvf_code batch_field(meta_batch *b, size_t row, const rvf_meta_field *mf,
			    size_t row_first, char **chunk, rvf_error *err)
{
	const rvf_value *v = &mf->value;
	if (!mf->name)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"metadata of row %zu: a field has no name", row);
	size_t len = strlen(mf->name);
	if (len > META_MAX_NAME)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"metadata field name longer than %u bytes", META_MAX_NAME);
	bool found;
	size_t pos = batch_name_pos(b, mf->name, len, &found);
	if (found) {
		uint16_t id = b->schema[b->by_name[pos]].id;
		for (size_t i = row_first; i < b->nfields; i++)
			if (b->fields[i].id == id)
				return RVF_OK; /* the first occurrence wins */
	}
	if (v->type < RVF_VALUE_STRING || v->type > RVF_VALUE_BOOL)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"metadata field \"%s\": unknown value type %d",
				mf->name, (int)v->type);
	if (meta_is_str(v->type)) {
		if (v->u.str.len > META_MAX_VALUE)
			return rvf_fail(err, RVF_E_TOO_LARGE,
					"metadata field \"%s\": value longer than %u bytes",
					mf->name, META_MAX_VALUE);
		if (v->u.str.len && !v->u.str.ptr)
			return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					"metadata field \"%s\": NULL string", mf->name);
		if (v->type == RVF_VALUE_STRING &&
		    !meta_utf8_valid((const unsigned char *)v->u.str.ptr, v->u.str.len))
			return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					"metadata field \"%s\": string is not UTF-8 (use bytes)",
					mf->name);
	}
	if (v->type == RVF_VALUE_F64 && !isfinite(v->u.f64))
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"metadata field \"%s\": f64 value is not finite", mf->name);

	bfield f = { .v = *v };
	void *tmp;
	if (found) {
		const meta_field_def *d = &b->schema[b->by_name[pos]];
		f.id = d->id;
		if (!meta_value_convert(v, d->type, &f.v))
			return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					"metadata field \"%s\" holds %s values; this %s value does not convert exactly",
					mf->name, meta_type_name(d->type),
					meta_type_name(v->type));
	} else {
		uint32_t id = b->nschema ? b->schema[b->nschema - 1].id + 1u : 0;
		if (id > UINT16_MAX)
			return rvf_fail(err, RVF_E_TOO_LARGE,
					"metadata field \"%s\": no field ids left", mf->name);
		if (!GROW(b->schema, b->cap_schema, b->nschema + 1))
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		size_t *bn = realloc(b->by_name, b->cap_schema * sizeof(size_t));
		char *name = malloc(len + 1);
		if (bn)
			b->by_name = bn;
		if (!bn || !name) {
			free(name);
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		}
		memcpy(name, mf->name, len + 1);
		b->schema[b->nschema] = (meta_field_def){
			.id = (uint16_t)id, .type = v->type, .nullable = true,
			.name = name, .name_len = len };
		memmove(b->by_name + pos + 1, b->by_name + pos,
			(b->nschema - pos) * sizeof(size_t));
		b->by_name[pos] = b->nschema++;
		f.id = (uint16_t)id;
	}
	if (meta_is_str(f.v.type)) {
		size_t n = f.v.u.str.len;
		if (n) {
			memcpy(*chunk, f.v.u.str.ptr, n);
			f.v.u.str.ptr = *chunk;
			*chunk += n;
		} else {
			f.v.u.str.ptr = ""; /* no chunk when every string is empty */
		}
	}
	if (!GROW(b->fields, b->cap_fields, b->nfields + 1))
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	b->fields[b->nfields++] = f;
	return RVF_OK;
}

rvf_code meta_batch_add(meta_batch *b, size_t n, const uint64_t *ids,
			const rvf_meta_field *meta, const size_t *meta_start,
			rvf_error *err)
{
	if (!b)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "no metadata batch");
	if (n == 0 || !meta || !meta_start)
		return RVF_OK;
	if (!ids)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "metadata rows without ids");
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++) {
		if (meta_start[i + 1] < meta_start[i])
			return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					"meta_start decreases at row %zu", i);
		for (size_t j = meta_start[i]; j < meta_start[i + 1]; j++)
			if (meta_is_str(meta[j].value.type) &&
			    meta[j].value.u.str.len <= META_MAX_VALUE &&
			    !meta_size_add(&bytes, meta[j].value.u.str.len))
				return rvf_fail(err, RVF_E_TOO_LARGE, "metadata too large");
	}
	size_t s0 = b->nschema, r0 = b->nrows, f0 = b->nfields, c0 = b->nchunks;
	void *tmp;
	char *chunk = NULL;
	if (bytes) {
		if (!GROW(b->chunks, b->cap_chunks, b->nchunks + 1) ||
		    !(chunk = malloc(bytes)))
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		b->chunks[b->nchunks++] = chunk;
	}
	rvf_code rc = RVF_OK;
	for (size_t i = 0; i < n && rc == RVF_OK; i++) {
		size_t first = b->nfields;
		if (meta_start[i + 1] == meta_start[i])
			continue; /* leaves the id's metadata alone */
		for (size_t j = meta_start[i]; j < meta_start[i + 1] && rc == RVF_OK; j++)
			rc = batch_field(b, i, &meta[j], first, &chunk, err);
		if (rc != RVF_OK)
			break;
		if (!GROW(b->rows, b->cap_rows, b->nrows + 1))
			rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		else
			b->rows[b->nrows++] = (brow){ ids[i], first, b->nfields - first };
	}
	if (rc != RVF_OK)
		batch_rollback(b, s0, r0, f0, c0);
	return rc;
}

rvf_code meta_batch_clear(meta_batch *b, size_t n, const uint64_t *ids,
			  rvf_error *err)
{
	void *tmp;
	meta_record old;

	if (!b)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "no metadata batch");
	for (size_t i = 0; i < n; i++) {
		if (!meta_table_find(b->base, ids[i], &old) || !old.count)
			continue;
		if (!GROW(b->rows, b->cap_rows, b->nrows + 1))
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		b->rows[b->nrows++] = (brow){ ids[i], b->nfields, 0 };
	}
	return RVF_OK;
}

typedef struct row_ref {
	uint64_t id;
	size_t index;
} row_ref;

static int cmp_row_ref(const void *a, const void *b)
{
	const row_ref *x = a, *y = b;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->index < y->index ? -1 : x->index > y->index;
}

static int cmp_bfield(const void *a, const void *b)
{
	const bfield *x = a, *y = b;
	return (int)x->id - (int)y->id;
}

rvf_code meta_batch_finish(meta_batch *b, unsigned flags, meta_write *out,
			   rvf_error *err)
{
	memset(out, 0, sizeof(*out));
	if (!b)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "no metadata batch");
	const meta_table *base = b->base;
	rvf_code rc = RVF_OK;
	row_ref *order = NULL;
	meta_buf d = { 0 };
	if (b->nrows == 0) {
		out->table = meta_table_ref(base);
		goto done;
	}
	rc = meta_check_generation(base, err);
	if (rc != RVF_OK)
		goto done;
	order = malloc(b->nrows * sizeof(row_ref));
	if (!order) {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < b->nrows; i++)
		order[i] = (row_ref){ b->rows[i].id, i };
	qsort(order, b->nrows, sizeof(row_ref), cmp_row_ref);

	meta_put_header(&d, false, base->generation + 1, b->schema, b->nschema);
	size_t nrec = 0;
	for (size_t i = 0; i < b->nrows; i++) {
		if (i + 1 < b->nrows && order[i + 1].id == order[i].id)
			continue; /* the last row with fields wins */
		const brow *row = &b->rows[order[i].index];
		/* A cleared record has no fields (and b->fields may be NULL). */
		bfield *f = row->count ? b->fields + row->first : NULL;
		if (row->count > 1)
			qsort(f, row->count, sizeof(bfield), cmp_bfield);
		/* Replace the whole record: delete-field for what the row
		 * does not list. */
		meta_record old = { 0 };
		meta_table_find(base, row->id, &old);
		size_t j = 0, k = 0, count = 0;
		while (j < row->count || k < old.count) {
			if (k < old.count && (j == row->count || old.field_ids[k] < f[j].id))
				k++;
			else if (k < old.count && old.field_ids[k] == f[j].id)
				j++, k++;
			else
				j++;
			count++;
		}
		meta_put64(&d, row->id);
		meta_put8(&d, OP_UPSERT);
		meta_put32(&d, (uint32_t)count);
		j = k = 0;
		while (j < row->count || k < old.count) {
			if (k < old.count && (j == row->count || old.field_ids[k] < f[j].id)) {
				meta_put16(&d, old.field_ids[k++]);
				meta_put8(&d, TAG_DELETE);
				continue;
			}
			if (k < old.count && old.field_ids[k] == f[j].id)
				k++;
			meta_put16(&d, f[j].id);
			meta_put_value(&d, &f[j].v);
			j++;
		}
		nrec++;
	}
	rc = meta_put_footer(&d, nrec, err);
	if (rc != RVF_OK) {
		free(d.p);
		goto done;
	}
	rc = meta_finish_write(base, &d, flags, out, err);
done:
	free(order);
	meta_batch_free(b);
	return rc;
}

rvf_code meta_encode_rows(const meta_table *base, size_t n,
			  const uint64_t *ids, const rvf_meta_field *meta,
			  const size_t *meta_start, unsigned flags,
			  meta_write *out, rvf_error *err)
{
	memset(out, 0, sizeof(*out));
	meta_batch *b = meta_batch_new(base, err);
	if (!b)
		return err ? err->code : RVF_E_NO_MEMORY;
	rvf_code rc = meta_batch_add(b, n, ids, meta, meta_start, err);
	if (rc != RVF_OK) {
		meta_batch_free(b);
		return rc;
	}
	return meta_batch_finish(b, flags, out, err);
}
