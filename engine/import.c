/*
 * import.c - streaming import of vector files: CSV/TSV, JSON Lines, JSON
 * arrays, fvecs, npy and raw float32.
 *
 * Input is read in chunks into one buffer that holds the record in progress,
 * and rows go to the sink in bounded batches, so memory does not grow with
 * the file and pipes work.  Text numbers come out exactly as strtof() in the
 * C locale would give them: a fast path handles plain decimals when it can
 * prove its rounding, everything else goes to strtof_l().
 *
 * JSON ids: jansson holds integers as int64, so ids above INT64_MAX would not
 * survive json_loadb.  Each object's top level is therefore scanned by hand
 * first; the raw "id" token is checked as plain digits (no sign, fraction,
 * exponent or leading zero) up to UINT64_MAX, and the "vector" array is
 * parsed from its raw text (exact float rounding, no json_t per component).
 * Both values are then cut out of the buffer, leaving "0" and their newlines
 * (so jansson's line numbers stay right), and jansson parses the rest, i.e.
 * checks the syntax and decodes "metadata".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtof_l */
#endif

#include "error.h"
#include "parse.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define READ_CHUNK ((size_t)1 << 20)
#define BATCH_ROWS 4096
#define BATCH_FLOAT_BYTES ((size_t)8 << 20)
#define BATCH_JSON_BYTES ((size_t)16 << 20)
#define RECORD_MAX ((size_t)64 << 20)	/* longest text line / JSON element */
#define NPY_HEADER_MAX ((size_t)1 << 20)

struct reader {
	int fd;
	char *buf;		/* cap + 1 bytes: one spare for a temporary NUL */
	size_t cap;
	size_t limit;		/* largest record we agree to buffer */
	size_t pos, len;	/* unread input is buf[pos, len) */
	bool eof;
};

enum loc_kind { LOC_NONE, LOC_LINE, LOC_ROW };

struct imp {
	const char *name;
	uint32_t dim;
	rvf_import_sink sink;
	void *ctx;
	rvf_error *err;
	locale_t cloc;
	struct reader rd;
	uint64_t line;		/* text lines read so far */

	/* Where the record being parsed is, for messages. */
	enum loc_kind loc_kind;
	uint64_t loc;
	uint64_t elem;		/* JSON array element (1-based), 0: none */

	/* The batch being filled. */
	size_t cap_rows, n;
	uint64_t *ids;
	float *vec;
	size_t *meta_start;
	rvf_meta_field *meta;
	size_t meta_n, meta_cap;
	json_t **docs;		/* hold the metadata strings and names */
	size_t ndocs, doc_bytes;
	uint64_t rows;		/* rows the sink accepted */
	enum { SKIP_HEADER_MAYBE, SKIP_HEADER_DONE } skip_header;
};

static rvf_code bad(struct imp *im, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static rvf_code bad(struct imp *im, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	switch (im->loc_kind) {
	case LOC_LINE:
		if (im->elem)
			return rvf_fail(im->err, RVF_E_INVALID_ARGUMENT,
					"%s: line %" PRIu64 ": element %" PRIu64
					": %s", im->name, im->loc, im->elem, msg);
		return rvf_fail(im->err, RVF_E_INVALID_ARGUMENT,
				"%s: line %" PRIu64 ": %s", im->name, im->loc,
				msg);
	case LOC_ROW:
		return rvf_fail(im->err, RVF_E_INVALID_ARGUMENT,
				"%s: row %" PRIu64 ": %s", im->name, im->loc,
				msg);
	case LOC_NONE:
		break;
	}
	return rvf_fail(im->err, RVF_E_INVALID_ARGUMENT, "%s: %s", im->name, msg);
}

static rvf_code nomem(struct imp *im)
{
	return rvf_fail(im->err, RVF_E_NO_MEMORY, "%s: out of memory", im->name);
}

/* A printable, shortened copy of an input token for messages. */
static const char *show(char out[48], const char *s, size_t n)
{
	size_t i, k = 0, max = n > 40 ? 37 : n;

	for (i = 0; i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		out[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (max < n) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
	return out;
}

/* ------------------------------------------------------------------ */
/* Input buffer                                                        */
/* ------------------------------------------------------------------ */

static rvf_code rd_init(struct imp *im, int fd, size_t cap, size_t limit)
{
	struct reader *r = &im->rd;

	r->fd = fd;
	r->cap = cap;
	r->limit = limit < cap ? cap : limit;
	r->buf = malloc(cap + 1);
	return r->buf ? RVF_OK : nomem(im);
}

/* Reads more input after buf[pos, len), which is kept (compacting or growing
 * the buffer as needed).  *got is false at end of input. */
static rvf_code rd_more(struct imp *im, bool *got)
{
	struct reader *r = &im->rd;
	ssize_t k;

	*got = false;
	if (r->eof)
		return RVF_OK;
	if (r->pos > 0 && r->cap - r->len < r->cap / 2) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	if (r->len == r->cap) {
		size_t ncap;
		char *nb;

		if (r->cap >= r->limit)
			return bad(im, "record longer than %zu bytes", r->limit);
		ncap = r->cap > r->limit / 2 ? r->limit : r->cap * 2;
		nb = realloc(r->buf, ncap + 1);
		if (!nb)
			return nomem(im);
		r->buf = nb;
		r->cap = ncap;
	}
	do
		k = read(r->fd, r->buf + r->len, r->cap - r->len);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return rvf_fail_io(im->err, errno, "%s: read", im->name);
	if (k == 0) {
		r->eof = true;
		return RVF_OK;
	}
	r->len += (size_t)k;
	*got = true;
	return RVF_OK;
}

/* Next line, without its '\n', in [*s, *s + *n); *have false at EOF. */
static rvf_code rd_line(struct imp *im, char **s, size_t *n, bool *have)
{
	struct reader *r = &im->rd;
	size_t seen = 0;

	im->loc_kind = LOC_LINE;
	im->loc = im->line + 1;
	for (;;) {
		char *b = r->buf + r->pos;
		size_t avail = r->len - r->pos;
		char *nl = memchr(b + seen, '\n', avail - seen);
		rvf_code rc;
		bool got;

		if (nl) {
			*s = b;
			*n = (size_t)(nl - b);
			r->pos += *n + 1;
			break;
		}
		seen = avail;
		rc = rd_more(im, &got);
		if (rc)
			return rc;
		if (!got) {
			if (r->pos == r->len) {
				*have = false;
				return RVF_OK;
			}
			/* A last line without '\n'; buf[len] is spare. */
			*s = r->buf + r->pos;
			*n = r->len - r->pos;
			r->pos = r->len;
			break;
		}
	}
	im->line++;
	*have = true;
	return RVF_OK;
}

static rvf_code rd_skip_bom(struct imp *im)
{
	struct reader *r = &im->rd;
	bool got = true;
	rvf_code rc;

	while (got && r->len - r->pos < 3) {
		rc = rd_more(im, &got);
		if (rc)
			return rc;
	}
	if (r->len - r->pos >= 3 && !memcmp(r->buf + r->pos, "\xEF\xBB\xBF", 3))
		r->pos += 3;
	return RVF_OK;
}

/* Reads up to want bytes; fewer only at end of input. */
static rvf_code read_full(struct imp *im, int fd, void *buf, size_t want,
			  size_t *got)
{
	size_t n = 0;

	*got = 0;
	while (n < want) {
		ssize_t k = read(fd, (char *)buf + n, want - n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return rvf_fail_io(im->err, errno, "%s: read", im->name);
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	*got = n;
	return RVF_OK;
}

/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

static void drop_docs(struct imp *im)
{
	while (im->ndocs)
		json_decref(im->docs[--im->ndocs]);
	im->doc_bytes = 0;
	im->meta_n = 0;
}

static rvf_code flush(struct imp *im)
{
	rvf_code rc;
	bool meta;

	if (!im->n)
		return RVF_OK;
	meta = im->meta_n > 0;
	if (meta)
		im->meta_start[im->n] = im->meta_n;
	rc = im->sink(im->ctx, im->n, im->ids, im->vec, meta ? im->meta : NULL,
		      meta ? im->meta_start : NULL, im->err);
	drop_docs(im);
	if (rc == RVF_OK)
		im->rows += im->n;
	im->n = 0;
	return rc;
}

/* Finite iff the exponent bits are not all ones; written to vectorise. */
static bool floats_finite(const float *v, size_t n)
{
	int over = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, &v[i], 4);
		over |= (int32_t)(u & 0x7fffffff) > 0x7f7fffff;
	}
	return !over;
}

static void le_floats(float *v, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	size_t i;

	for (i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, &v[i], 4);
		u = __builtin_bswap32(u);
		memcpy(&v[i], &u, 4);
	}
#else
	(void)v;
	(void)n;
#endif
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Binary rows are checked here, a batch at a time: first_row is 1-based. */
static rvf_code flush_binary(struct imp *im, uint64_t first_row)
{
	size_t dim = im->dim, i, c;

	if (!floats_finite(im->vec, im->n * dim)) {
		for (i = 0; i < im->n; i++)
			for (c = 0; c < dim; c++)
				if (!isfinite(im->vec[i * dim + c])) {
					im->loc_kind = LOC_ROW;
					im->loc = first_row + i;
					return bad(im, "component %zu is not finite",
						   c + 1);
				}
	}
	return flush(im);
}

/* ------------------------------------------------------------------ */
/* Numbers                                                             */
/* ------------------------------------------------------------------ */

static bool is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

/* The numbers and ids are read by parse.c, as everywhere else. */
static int parse_u64(const char *s, const char *e, uint64_t *out)
{
	num_result r = num_id(s, e, out);

	return r == NUM_OK ? 0 : r == NUM_BAD ? 1 : 2;
}

/* ------------------------------------------------------------------ */
/* CSV / TSV / whitespace-separated text                               */
/* ------------------------------------------------------------------ */

static bool csv_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool csv_sep(char c)
{
	return c == ',' || csv_blank(c);
}

/* The first line is a header when no field of it is a number ("id,x0,x1"
 * or names): it is skipped, and must have dimension + 1 fields.  Returns
 * true when it was one (im->err->code says whether it was right). */
static bool csv_header(struct imp *im, const char *p, const char *end)
{
	uint64_t fields = 0;
	float v;

	while (p < end) {
		const char *t = p;

		while (p < end && !csv_sep(*p))
			p++;
		if (p > t) {
			if (num_float(t, p, &v) != NUM_BAD)
				return false;
			fields++;
		}
		while (p < end && csv_sep(*p))
			p++;
	}
	if (fields != (uint64_t)im->dim + 1) {
		bad(im, "the header has %" PRIu64 " fields; expected %" PRIu32
		    " (an id, then one per component)", fields, im->dim + 1);
		return true;
	}
	rvf_error_clear(im->err);
	return true;
}

static rvf_code csv_line(struct imp *im, char *p, char *end)
{
	uint32_t dim = im->dim;
	float *row = im->vec + im->n * (size_t)dim;
	char tok[48];
	uint64_t id, k = 0;
	char *t;
	int r;

	while (p < end && csv_blank(*p))
		p++;
	if (p == end || *p == '#')
		return RVF_OK;
	if (im->skip_header == SKIP_HEADER_MAYBE) {
		im->skip_header = SKIP_HEADER_DONE;
		if (csv_header(im, p, end))
			return im->err->code;
	}
	for (t = p; p < end && !csv_sep(*p); p++)
		;
	r = parse_u64(t, p, &id);
	if (r == 1)
		return bad(im, "id \"%s\" is not an id (decimal digits, no sign, no leading zero)",
			   show(tok, t, (size_t)(p - t)));
	if (r == 2)
		return bad(im, "id \"%s\" is larger than %" PRIu64,
			   show(tok, t, (size_t)(p - t)), UINT64_MAX);
	for (;;) {
		bool comma = false;
		char *q;
		float v;

		/* A separator: blanks with at most one comma among them. */
		while (p < end && csv_blank(*p))
			p++;
		if (p < end && *p == ',') {
			comma = true;
			for (p++; p < end && csv_blank(*p); p++)
				;
		}
		if (p == end) {
			if (comma)
				return bad(im, "component %" PRIu64 " is empty",
					   k + 1);
			break;
		}
		if (*p == ',')
			return bad(im, "component %" PRIu64 " is empty", k + 1);
		for (q = p; q < end && !csv_sep(*q); q++)
			;
		r = num_float(p, q, &v);
		if (r != NUM_OK)
			return bad(im, "component %" PRIu64 " \"%s\" is %s", k + 1,
				   show(tok, p, (size_t)(q - p)),
				   r == NUM_BAD ? "not a number" : "not finite");
		if (k < dim)
			row[k] = v;
		k++;
		p = q;
	}
	if (k != dim)
		return bad(im, "expected %" PRIu32 " components, found %" PRIu64,
			   dim, k);
	im->ids[im->n] = id;
	if (++im->n == im->cap_rows)
		return flush(im);
	return RVF_OK;
}

static rvf_code import_csv(struct imp *im)
{
	rvf_code rc = rd_skip_bom(im);

	while (rc == RVF_OK) {
		bool have;
		char *s;
		size_t n;

		rc = rd_line(im, &s, &n, &have);
		if (rc || !have)
			break;
		rc = csv_line(im, s, s + n);
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* JSON objects: {"id": N, "vector": [...], "metadata": {...}}         */
/* ------------------------------------------------------------------ */

static bool json_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool json_delim(char c)
{
	return json_ws(c) || c == ',' || c == '}' || c == ']' || c == ':';
}

static char *skip_ws(char *p, const char *end)
{
	while (p < end && json_ws(*p))
		p++;
	return p;
}

/* p is on '"': returns the byte after the closing quote, or NULL. */
static char *skip_string(char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\') {
			if (++p == end)
				break;
		} else if (*p == '"') {
			return p + 1;
		}
	}
	return NULL;
}

/* The end of the value at p; lenient (jansson judges the syntax later). */
static char *skip_value(char *p, const char *end)
{
	char *s = p;
	size_t depth = 0;

	if (p >= end)
		return NULL;
	if (*p == '"')
		return skip_string(p, end);
	if (*p == '{' || *p == '[') {
		while (p < end) {
			if (*p == '"') {
				p = skip_string(p, end);
				if (!p)
					return NULL;
				continue;
			}
			if (*p == '{' || *p == '[')
				depth++;
			else if ((*p == '}' || *p == ']') && --depth == 0)
				return p + 1;
			p++;
		}
		return NULL;
	}
	while (p < end && !json_delim(*p))
		p++;
	return p == s ? NULL : p;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Whether the string body [s, e) decodes to the ASCII lit (escapes too). */
static bool key_is(const char *s, const char *e, const char *lit)
{
	while (s < e) {
		unsigned c = (unsigned char)*s++;

		if (c == '\\') {
			int i, h;

			if (s == e)
				return false;
			c = (unsigned char)*s++;
			switch (c) {
			case 'u':
				for (c = 0, i = 0; i < 4; i++) {
					if (s == e || (h = hexval(*s++)) < 0)
						return false;
					c = c * 16 + (unsigned)h;
				}
				break;
			case '"': case '\\': case '/':
				break;
			default:
				return false; /* \n, \t...: never in our keys */
			}
		}
		if (c == 0 || c != (unsigned char)*lit)
			return false;
		lit++;
	}
	return *lit == '\0';
}

struct jscan {
	char *id, *id_end;
	char *vec, *vec_end;
	bool whole;		/* the top level was walked to its '}' */
};

/* Finds the raw "id" and "vector" values at the object's top level. */
static void json_prescan(char *p, char *end, struct jscan *js)
{
	memset(js, 0, sizeof(*js));
	p = skip_ws(p, end);
	if (p == end || *p != '{')
		return;
	p = skip_ws(p + 1, end);
	if (p < end && *p == '}') {
		js->whole = true;
		return;
	}
	for (;;) {
		char *k, *ke, *v;

		if (p == end || *p != '"')
			return;
		k = p + 1;
		p = skip_string(p, end);
		if (!p)
			return;
		ke = p - 1;
		p = skip_ws(p, end);
		if (p == end || *p != ':')
			return;
		v = p = skip_ws(p + 1, end);
		p = skip_value(p, end);
		if (!p)
			return;
		if (!js->id && key_is(k, ke, "id")) {
			js->id = v;
			js->id_end = p;
		} else if (!js->vec && key_is(k, ke, "vector")) {
			js->vec = v;
			js->vec_end = p;
		}
		p = skip_ws(p, end);
		if (p == end)
			return;
		if (*p == '}') {
			js->whole = true;
			return;
		}
		if (*p != ',')
			return;
		p = skip_ws(p + 1, end);
	}
}

/* Length of the RFC 8259 number at p (followed by a delimiter), else 0. */
static size_t json_num_len(const char *p, const char *end)
{
	const char *s = p;

	if (p < end && *p == '-')
		p++;
	if (p == end)
		return 0;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (p < end && is_digit(*p))
			p++;
	else
		return 0;
	if (p < end && *p == '.') {
		if (++p == end || !is_digit(*p))
			return 0;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || !is_digit(*p))
			return 0;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && !json_delim(*p))
		return 0;
	return (size_t)(p - s);
}

static rvf_code json_vector(struct imp *im, char *p, char *end, float *row)
{
	uint64_t k = 0;
	char tok[48];

	if (*p != '[')
		return bad(im, "\"vector\" is not an array");
	p = skip_ws(p + 1, end);
	if (p < end && *p == ']')
		goto done;
	for (;;) {
		size_t n = json_num_len(p, end);
		num_result r;
		float v;

		if (!n) {
			char *e = skip_value(p, end);

			if (!e || e == p)
				e = p + 1 < end ? p + 1 : end;
			return bad(im, "component %" PRIu64 " is not a number: %s",
				   k + 1, show(tok, p, (size_t)(e - p)));
		}
		r = num_float(p, p + n, &v);
		if (r == NUM_BAD)
			return bad(im, "component %" PRIu64 " is not a number: %s",
				   k + 1, show(tok, p, n));
		if (r == NUM_RANGE)
			return bad(im, "component %" PRIu64 " \"%s\" is not finite",
				   k + 1, show(tok, p, n));
		if (k < im->dim)
			row[k] = v;
		k++;
		p = skip_ws(p + n, end);
		if (p < end && *p == ',') {
			p = skip_ws(p + 1, end);
			continue;
		}
		if (p < end && *p == ']')
			break;
		return bad(im, "bad JSON: expected ',' or ']' after component %"
			   PRIu64 " of \"vector\"", k);
	}
done:
	if (k != im->dim)
		return bad(im, "expected %" PRIu32 " components, found %" PRIu64,
			   im->dim, k);
	return RVF_OK;
}

/* Replaces the value [v, e) of the record [s, s + *n) by 0 and the value's
 * newlines (so jansson's line numbers stay right), shortening the record:
 * jansson is slow at skipping blanks. */
static void cut(char *s, size_t *n, char *v, char *e)
{
	char *w = v + 1;

	*v = '0';
	for (v++; v < e; v++)
		if (*v == '\n')
			*w++ = '\n';
	memmove(w, e, (size_t)(s + *n - e));
	*n -= (size_t)(e - w);
}

static const char *json_kind(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_NULL: return "null";
	case JSON_ARRAY: return "an array";
	case JSON_OBJECT: return "an object";
	default: return "this type";
	}
}

static rvf_code json_meta(struct imp *im, json_t *m)
{
	const char *key;
	json_t *val;
	char tok[48];

	if (!json_is_object(m))
		return bad(im, "\"metadata\" is not an object");
	json_object_foreach(m, key, val) {
		rvf_meta_field *f;

		if (im->meta_n == im->meta_cap) {
			size_t ncap = im->meta_cap ? im->meta_cap * 2 : 256;
			rvf_meta_field *nm = realloc(im->meta, ncap * sizeof(*nm));

			if (!nm)
				return nomem(im);
			im->meta = nm;
			im->meta_cap = ncap;
		}
		f = &im->meta[im->meta_n];
		memset(f, 0, sizeof(*f));
		f->name = key;
		switch (json_typeof(val)) {
		case JSON_STRING:
			f->value.type = RVF_VALUE_STRING;
			f->value.u.str.ptr = json_string_value(val);
			f->value.u.str.len = json_string_length(val);
			break;
		case JSON_INTEGER:
			f->value.type = RVF_VALUE_I64;
			f->value.u.i64 = (int64_t)json_integer_value(val);
			break;
		case JSON_REAL:
			f->value.type = RVF_VALUE_F64;
			f->value.u.f64 = json_real_value(val);
			break;
		case JSON_TRUE:
		case JSON_FALSE:
			f->value.type = RVF_VALUE_BOOL;
			f->value.u.b = json_is_true(val);
			break;
		default:
			return bad(im, "metadata \"%s\" is %s (expected a string, "
				   "number or boolean)",
				   show(tok, key, strlen(key)), json_kind(val));
		}
		im->meta_n++;
	}
	return RVF_OK;
}

/* One object [s, s + n) that starts on line `line`; s is modified. */
static rvf_code json_record(struct imp *im, char *s, size_t n, uint64_t line)
{
	float *row = im->vec + im->n * (size_t)im->dim;
	size_t first = im->meta_n;
	struct jscan js;
	json_error_t je;
	json_t *doc, *m;
	uint64_t id = 0;
	char tok[48];
	rvf_code rc;

	im->loc_kind = LOC_LINE;
	im->loc = line;
	json_prescan(s, s + n, &js);
	if (js.whole) {
		size_t idn;
		int r;

		if (!js.id)
			return bad(im, "missing \"id\"");
		idn = (size_t)(js.id_end - js.id);
		r = parse_u64(js.id, js.id_end, &id);
		if (r == 1 || (idn > 1 && js.id[0] == '0'))
			return bad(im, "id %s is not a non-negative integer",
				   show(tok, js.id, idn));
		if (r == 2)
			return bad(im, "id %s is larger than %" PRIu64,
				   show(tok, js.id, idn), UINT64_MAX);
		if (!js.vec)
			return bad(im, "missing \"vector\"");
		rc = json_vector(im, js.vec, js.vec_end, row);
		if (rc)
			return rc;
		/* The later value first, so the other stays in place. */
		if (js.id > js.vec) {
			cut(s, &n, js.id, js.id_end);
			cut(s, &n, js.vec, js.vec_end);
		} else {
			cut(s, &n, js.vec, js.vec_end);
			cut(s, &n, js.id, js.id_end);
		}
	}
	doc = json_loadb(s, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!doc) {
		bool big = strstr(je.text, "too big") != NULL;

		if (je.line > 1)
			im->loc = line + (uint64_t)je.line - 1;
		return bad(im, "bad JSON: %s%s", je.text,
			   big ? " (integers must fit in int64)" : "");
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		return bad(im, "expected a JSON object");
	}
	if (!js.whole) { /* cannot happen: jansson accepted what we could not walk */
		json_decref(doc);
		return bad(im, "bad JSON");
	}
	im->meta_start[im->n] = first;
	m = json_object_get(doc, "metadata");
	if (m && !json_is_null(m)) {
		rc = json_meta(im, m);
		if (rc) {
			im->meta_n = first;
			json_decref(doc);
			return rc;
		}
	}
	if (im->meta_n > first) {
		im->docs[im->ndocs++] = doc;
		im->doc_bytes += n;
	} else {
		json_decref(doc);
	}
	im->ids[im->n] = id;
	if (++im->n == im->cap_rows || im->doc_bytes >= BATCH_JSON_BYTES)
		return flush(im);
	return RVF_OK;
}

static rvf_code import_jsonl(struct imp *im)
{
	rvf_code rc = rd_skip_bom(im);

	while (rc == RVF_OK) {
		bool have;
		char *s;
		size_t n;

		rc = rd_line(im, &s, &n, &have);
		if (rc || !have)
			break;
		if (skip_ws(s, s + n) == s + n)
			continue;
		rc = json_record(im, s, n, im->line);
	}
	return rc;
}

/* Skips blanks (counting newlines); *c = next byte, unconsumed, or -1. */
static rvf_code rd_peek(struct imp *im, int *c, uint64_t *line)
{
	struct reader *r = &im->rd;

	for (;;) {
		rvf_code rc;
		bool got;

		for (; r->pos < r->len; r->pos++) {
			char ch = r->buf[r->pos];

			if (!json_ws(ch)) {
				*c = (unsigned char)ch;
				return RVF_OK;
			}
			if (ch == '\n')
				++*line;
		}
		rc = rd_more(im, &got);
		if (rc)
			return rc;
		if (!got) {
			*c = -1;
			return RVF_OK;
		}
	}
}

/* The length of the object starting at buf[pos], read in as needed. */
static rvf_code json_extent(struct imp *im, size_t *len, uint64_t *line)
{
	struct reader *r = &im->rd;
	bool in_str = false, esc = false;
	size_t off = 0, depth = 0;

	for (;;) {
		const char *b = r->buf + r->pos;
		size_t avail = r->len - r->pos;
		rvf_code rc;
		bool got;

		while (off < avail) {
			char ch = b[off++];

			if (in_str) {
				if (esc)
					esc = false;
				else if (ch == '\\')
					esc = true;
				else if (ch == '"')
					in_str = false;
				else if (ch == '\n')
					++*line;
				continue;
			}
			switch (ch) {
			case '"':
				in_str = true;
				break;
			case '{': case '[':
				depth++;
				break;
			case '}': case ']':
				if (--depth == 0) {
					*len = off;
					return RVF_OK;
				}
				break;
			case '\n':
				++*line;
				break;
			}
		}
		rc = rd_more(im, &got);
		if (rc)
			return rc;
		if (!got)
			return bad(im, "unexpected end of file inside the element");
	}
}

static rvf_code import_json(struct imp *im)
{
	struct reader *r = &im->rd;
	uint64_t line = 1, nelem = 0;
	rvf_code rc;
	int c = -1;

	im->loc_kind = LOC_LINE;
	im->loc = 1;
	rc = rd_skip_bom(im);
	if (!rc)
		rc = rd_peek(im, &c, &line);
	if (rc || c < 0)
		return rc; /* empty input: no rows */
	im->loc = line;
	if (c != '[')
		return bad(im, "expected a JSON array of objects");
	r->pos++;
	for (;;) {
		uint64_t start;
		size_t len = 0;

		rc = rd_peek(im, &c, &line);
		if (rc)
			return rc;
		im->loc = line;
		if (c == ']' && !nelem) {
			r->pos++;
			break;
		}
		if (c < 0)
			return bad(im, "unexpected end of file in the array");
		im->elem = nelem + 1;
		if (c != '{')
			return bad(im, "expected an object");
		start = line;
		rc = json_extent(im, &len, &line);
		if (rc)
			return rc;
		nelem++;
		rc = json_record(im, r->buf + r->pos, len, start);
		if (rc)
			return rc;
		r->pos += len;
		im->elem = 0;

		rc = rd_peek(im, &c, &line);
		if (rc)
			return rc;
		im->loc = line;
		if (c == ']') {
			r->pos++;
			break;
		}
		if (c != ',')
			return bad(im, c < 0 ? "unexpected end of file after "
				   "element %" PRIu64 : "expected ',' or ']' after "
				   "element %" PRIu64, nelem);
		r->pos++;
		rc = rd_peek(im, &c, &line);
		if (rc)
			return rc;
		if (c == ']') {
			im->loc = line;
			return bad(im, "trailing comma after element %" PRIu64,
				   nelem);
		}
	}
	rc = rd_peek(im, &c, &line);
	if (rc)
		return rc;
	if (c >= 0) {
		im->loc = line;
		return bad(im, "data after the end of the array");
	}
	return RVF_OK;
}

/* ------------------------------------------------------------------ */
/* fvecs                                                               */
/* ------------------------------------------------------------------ */

static rvf_code import_fvecs(struct imp *im, int fd)
{
	size_t rowb = (size_t)im->dim * 4, rec = rowb + 4;
	size_t cap = rec > READ_CHUNK ? rec : READ_CHUNK;
	struct reader *r = &im->rd;
	uint64_t row = 0;	/* whole records consumed */
	rvf_code rc;

	rc = rd_init(im, fd, cap, cap);
	if (rc)
		return rc;
	im->loc_kind = LOC_ROW;
	for (;;) {
		bool got = true;
		size_t avail;

		while (got && r->len - r->pos < rec) {
			rc = rd_more(im, &got);
			if (rc)
				return rc;
		}
		avail = r->len - r->pos;
		if (!avail)
			break;
		im->loc = row + 1;
		if (avail < rec)
			return bad(im, "truncated: %zu of %zu bytes", avail, rec);
		for (; avail >= rec; avail -= rec) {
			const unsigned char *p = (unsigned char *)r->buf + r->pos;
			uint32_t d = le32(p);
			float *dst = im->vec + im->n * (size_t)im->dim;

			if (d != im->dim) {
				im->loc = row + 1;
				return bad(im, "dimension %" PRId32 ", expected %"
					   PRIu32, (int32_t)d, im->dim);
			}
			memcpy(dst, p + 4, rowb);
			le_floats(dst, im->dim);
			r->pos += rec;
			row++;
			if (++im->n == im->cap_rows) {
				rc = flush_binary(im, row - im->n + 1);
				if (rc)
					return rc;
			}
		}
	}
	return flush_binary(im, row - im->n + 1);
}

/* ------------------------------------------------------------------ */
/* Raw float32 rows: .f32, and the data of .npy                        */
/* ------------------------------------------------------------------ */

/* Reads straight into the batch.  sized: exactly `expect` rows, then EOF. */
static rvf_code import_raw(struct imp *im, int fd, bool sized, uint64_t expect)
{
	size_t rowb = (size_t)im->dim * 4, full = im->cap_rows * rowb;
	uint64_t done = 0;
	unsigned char extra;
	size_t got = 0;
	rvf_code rc;

	im->loc_kind = LOC_NONE;
	for (;;) {
		size_t want = full, whole, rest;

		if (sized && expect - done < im->cap_rows)
			want = (size_t)(expect - done) * rowb;
		if (!want)
			break;
		rc = read_full(im, fd, im->vec, want, &got);
		if (rc)
			return rc;
		whole = got / rowb;
		rest = got % rowb;
		if (sized && got < want)
			return bad(im, "truncated: the header declares %" PRIu64
				   " rows, the data holds %" PRIu64 " and %zu "
				   "bytes", expect, done + whole, rest);
		if (rest && done + whole == 0)
			return bad(im, "truncated: %zu bytes, less than one row "
				   "(%zu bytes)", rest, rowb);
		if (rest)
			return bad(im, "truncated: %zu bytes after row %" PRIu64,
				   rest, done + whole);
		if (whole) {
			le_floats(im->vec, whole * im->dim);
			im->n = whole;
			rc = flush_binary(im, done + 1);
			if (rc)
				return rc;
			done += whole;
		}
		if (got < want)
			break;
	}
	if (sized) {
		rc = read_full(im, fd, &extra, 1, &got);
		if (rc)
			return rc;
		if (got)
			return bad(im, "data after the %" PRIu64 " rows the "
				   "header declares", expect);
	}
	return RVF_OK;
}

/* ------------------------------------------------------------------ */
/* npy                                                                 */
/* ------------------------------------------------------------------ */

static const char *py_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* A quoted Python string at *p into out (truncated to cap - 1). */
static bool py_str(const char **pp, const char *end, char *out, size_t cap)
{
	const char *p = *pp;
	size_t k = 0;
	char q;

	if (p == end || (*p != '\'' && *p != '"'))
		return false;
	q = *p++;
	for (; p < end && *p != q; p++)
		if (k + 1 < cap)
			out[k++] = *p;
	if (p == end)
		return false;
	out[k] = '\0';
	*pp = p + 1;
	return true;
}

/* The shape tuple: up to 2 sizes kept, *nd = how many there are. */
static bool py_shape(const char **pp, const char *end, uint64_t *dims, int *nd)
{
	const char *p = *pp;

	*nd = 0;
	if (p == end || *p != '(')
		return false;
	p = py_ws(p + 1, end);
	while (p < end && *p != ')') {
		uint64_t v = 0;

		if (!is_digit(*p))
			return false;
		for (; p < end && is_digit(*p); p++) {
			unsigned d = (unsigned)(*p - '0');

			if (v > (UINT64_MAX - d) / 10)
				return false;
			v = v * 10 + d;
		}
		if (p < end && *p == 'L') /* Python 2 longs */
			p++;
		if (*nd < 2)
			dims[*nd] = v;
		if (*nd < 100)
			++*nd;
		p = py_ws(p, end);
		if (p < end && *p == ',')
			p = py_ws(p + 1, end);
		else if (p < end && *p != ')')
			return false;
	}
	if (p == end)
		return false;
	*pp = p + 1;
	return true;
}

static rvf_code npy_header(struct imp *im, const char *h, size_t n,
			   uint64_t *rows)
{
	const char *p = h, *end = h + n;
	bool have_descr = false, have_order = false, have_shape = false;
	bool fortran = false;
	char key[32], descr[32];
	uint64_t dims[2] = { 0, 0 };
	int nd = 0;

	p = py_ws(p, end);
	if (p == end || *p != '{')
		return bad(im, "npy header: not a dictionary");
	for (p++;;) {
		p = py_ws(p, end);
		if (p < end && *p == '}')
			break;
		if (!py_str(&p, end, key, sizeof(key)))
			return bad(im, "npy header: bad key");
		p = py_ws(p, end);
		if (p == end || *p != ':')
			return bad(im, "npy header: expected ':' after '%s'", key);
		p = py_ws(p + 1, end);
		if (!strcmp(key, "descr")) {
			if (!py_str(&p, end, descr, sizeof(descr)))
				return bad(im, "npy header: bad 'descr'");
			have_descr = true;
		} else if (!strcmp(key, "fortran_order")) {
			if ((size_t)(end - p) >= 4 && !memcmp(p, "True", 4)) {
				fortran = true;
				p += 4;
			} else if ((size_t)(end - p) >= 5 && !memcmp(p, "False", 5)) {
				p += 5;
			} else {
				return bad(im, "npy header: bad 'fortran_order'");
			}
			have_order = true;
		} else if (!strcmp(key, "shape")) {
			if (!py_shape(&p, end, dims, &nd))
				return bad(im, "npy header: bad 'shape'");
			have_shape = true;
		} else {
			return bad(im, "npy header: unexpected key '%s'", key);
		}
		p = py_ws(p, end);
		if (p < end && *p == ',')
			p++;
		else if (p == end || *p != '}')
			return bad(im, "npy header: expected ',' or '}'");
	}
	if (!have_descr || !have_order || !have_shape)
		return bad(im, "npy header: missing '%s'", !have_descr ? "descr" :
			   !have_order ? "fortran_order" : "shape");
	if (strcmp(descr, "<f4") && strcmp(descr, "|f4") && strcmp(descr, "f4"))
		return bad(im, "npy header: dtype '%s' is not little-endian "
			   "float32 ('<f4')", descr);
	if (fortran)
		return bad(im, "npy header: fortran_order arrays are not "
			   "supported (save in C order)");
	if (nd != 2)
		return bad(im, "npy header: shape has %d dimensions, expected 2 "
			   "(rows, %" PRIu32 ")", nd, im->dim);
	if (dims[1] != im->dim)
		return bad(im, "npy header: shape (%" PRIu64 ", %" PRIu64 ") has %"
			   PRIu64 " columns, expected %" PRIu32,
			   dims[0], dims[1], dims[1], im->dim);
	if (dims[0] > UINT64_MAX / ((uint64_t)im->dim * 4))
		return bad(im, "npy header: shape (%" PRIu64 ", %" PRIu64 ") is "
			   "too large", dims[0], dims[1]);
	*rows = dims[0];
	return RVF_OK;
}

static rvf_code import_npy(struct imp *im, int fd)
{
	unsigned char pre[12];
	size_t got = 0, hlen, plen;
	uint64_t rows = 0;
	rvf_code rc;
	char *h;

	im->loc_kind = LOC_NONE;
	rc = read_full(im, fd, pre, 10, &got);
	if (rc)
		return rc;
	if (!got)
		return RVF_OK; /* empty file: no rows */
	if (got < 6 || memcmp(pre, "\x93" "NUMPY", 6))
		return bad(im, "not an npy file (bad magic)");
	if (got < 10)
		return bad(im, "npy header truncated");
	if (pre[6] == 1) {
		hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
		plen = 10;
	} else if (pre[6] == 2 || pre[6] == 3) {
		rc = read_full(im, fd, pre + 10, 2, &got);
		if (rc)
			return rc;
		if (got < 2)
			return bad(im, "npy header truncated");
		hlen = le32(pre + 8);
		plen = 12;
	} else {
		return bad(im, "npy version %u.%u is not supported", pre[6], pre[7]);
	}
	if (hlen > NPY_HEADER_MAX)
		return bad(im, "npy header of %zu bytes is too large", hlen);
	h = malloc(hlen + 1);
	if (!h)
		return nomem(im);
	rc = read_full(im, fd, h, hlen, &got);
	if (!rc && got < hlen)
		rc = bad(im, "npy header truncated (%zu of %zu bytes)", plen + got,
			 plen + hlen);
	if (!rc) {
		h[hlen] = '\0';
		rc = npy_header(im, h, hlen, &rows);
	}
	free(h);
	if (rc)
		return rc;
	return import_raw(im, fd, true, rows);
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

static const struct {
	const char *ext;
	rvf_import_format fmt;
} import_exts[] = {
	{ "csv", RVF_IMPORT_CSV }, { "tsv", RVF_IMPORT_CSV },
	{ "txt", RVF_IMPORT_CSV }, { "jsonl", RVF_IMPORT_JSONL },
	{ "ndjson", RVF_IMPORT_JSONL }, { "json", RVF_IMPORT_JSON },
	{ "fvecs", RVF_IMPORT_FVECS }, { "npy", RVF_IMPORT_NPY },
	{ "f32", RVF_IMPORT_F32 },
};

bool rvf_import_format_from_name(const char *name, rvf_import_format *out)
{
	const char *base, *dot;
	size_t i;

	if (!name)
		return false;
	base = strrchr(name, '/');
	base = base ? base + 1 : name;
	dot = strrchr(base, '.');
	if (!dot || dot == base) /* ".csv" alone is a name, not an extension */
		return false;
	for (i = 0; i < sizeof(import_exts) / sizeof(import_exts[0]); i++)
		if (!strcasecmp(dot + 1, import_exts[i].ext)) {
			if (out)
				*out = import_exts[i].fmt;
			return true;
		}
	return false;
}

const char *rvf_import_format_name(rvf_import_format f)
{
	switch (f) {
	case RVF_IMPORT_CSV: return "csv";
	case RVF_IMPORT_JSONL: return "jsonl";
	case RVF_IMPORT_JSON: return "json";
	case RVF_IMPORT_FVECS: return "fvecs";
	case RVF_IMPORT_NPY: return "npy";
	case RVF_IMPORT_F32: return "f32";
	}
	return "unknown";
}

static rvf_code imp_setup(struct imp *im, int fd, rvf_import_format fmt)
{
	size_t rowb = (size_t)im->dim * 4;
	bool text = fmt == RVF_IMPORT_CSV || fmt == RVF_IMPORT_JSONL ||
		    fmt == RVF_IMPORT_JSON;
	bool json = fmt == RVF_IMPORT_JSONL || fmt == RVF_IMPORT_JSON;

	im->cap_rows = BATCH_FLOAT_BYTES / rowb;
	if (im->cap_rows > BATCH_ROWS)
		im->cap_rows = BATCH_ROWS;
	if (!im->cap_rows)
		im->cap_rows = 1;
	im->vec = malloc(im->cap_rows * rowb);
	if (!im->vec)
		return nomem(im);
	if (!text)
		return RVF_OK;
	im->ids = malloc(im->cap_rows * sizeof(*im->ids));
	im->cloc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (!im->ids || !im->cloc)
		return nomem(im);
	if (json) {
		im->meta_start = malloc((im->cap_rows + 1) * sizeof(size_t));
		im->docs = malloc(im->cap_rows * sizeof(json_t *));
		if (!im->meta_start || !im->docs)
			return nomem(im);
	}
	/* Lines may be long for big dimensions: ~48 bytes a component. */
	return rd_init(im, fd, READ_CHUNK,
		       RECORD_MAX + (rowb < SIZE_MAX / 16 ? rowb * 12 : 0));
}

rvf_code rvf_import_fd(int fd, const char *name, rvf_import_format fmt,
		       uint32_t dimension, rvf_import_sink sink, void *ctx,
		       uint64_t *rows, rvf_error *err)
{
	struct imp im;
	rvf_error local;
	rvf_code rc;

	if (!err) /* the sink may always write its reason */
		err = &local;
	if (rows)
		*rows = 0;
	if (!name)
		name = "input";
	if (!sink || fd < 0)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "%s: %s", name,
				sink ? "bad file descriptor" : "no sink");
	if (!dimension)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"%s: dimension must be at least 1", name);
#if SIZE_MAX < UINT64_MAX
	/* Row sizes are computed in size_t. */
	if ((uint64_t)dimension * 16 + 8 > SIZE_MAX)
		return rvf_fail(err, RVF_E_TOO_LARGE,
				"%s: dimension %" PRIu32 " is too large", name,
				dimension);
#endif
	memset(&im, 0, sizeof(im));
	im.name = name;
	im.dim = dimension;
	im.sink = sink;
	im.ctx = ctx;
	im.err = err;
	im.rd.fd = -1;

	rc = imp_setup(&im, fd, fmt);
	if (!rc) {
		switch (fmt) {
		case RVF_IMPORT_CSV:
			rc = import_csv(&im);
			break;
		case RVF_IMPORT_JSONL:
			rc = import_jsonl(&im);
			break;
		case RVF_IMPORT_JSON:
			rc = import_json(&im);
			break;
		case RVF_IMPORT_FVECS:
			rc = import_fvecs(&im, fd);
			break;
		case RVF_IMPORT_NPY:
			rc = import_npy(&im, fd);
			break;
		case RVF_IMPORT_F32:
			rc = import_raw(&im, fd, false, 0);
			break;
		default:
			rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				      "%s: unknown import format %d", name,
				      (int)fmt);
			break;
		}
	}
	if (!rc)
		rc = flush(&im);

	drop_docs(&im);
	free(im.docs);
	free(im.meta);
	free(im.meta_start);
	free(im.ids);
	free(im.vec);
	free(im.rd.buf);
	if (im.cloc)
		freelocale(im.cloc);
	if (rows)
		*rows = im.rows;
	return rc;
}

static rvf_code check_sink(void *ctx, size_t n, const uint64_t *ids,
			   const float *vectors, const rvf_meta_field *meta,
			   const size_t *meta_start, rvf_error *err)
{
	(void)ctx, (void)n, (void)ids, (void)vectors, (void)meta;
	(void)meta_start, (void)err;
	return RVF_OK;
}

rvf_code rvf_import_check_lines(const char *text, size_t len, const char *name,
				rvf_import_format fmt, uint32_t dimension,
				uint64_t first_line, rvf_error *err)
{
	struct imp im;
	rvf_error local;
	rvf_code rc;

	if (!err)
		err = &local;
	if (!name)
		name = "input";
	if (fmt != RVF_IMPORT_CSV && fmt != RVF_IMPORT_JSONL)
		return RVF_OK; /* not line by line: checked whole at the end */
	if (!dimension)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"%s: dimension must be at least 1", name);
	memset(&im, 0, sizeof(im));
	im.name = name;
	im.dim = dimension;
	im.sink = check_sink;
	im.err = err;
	im.rd.fd = -1;
	im.line = first_line ? first_line - 1 : 0;
	rc = imp_setup(&im, -1, fmt);
	if (!rc) {
		struct reader *r = &im.rd;

		/* The whole text is the input: no read() ever happens. */
		if (len > r->cap) {
			char *nb = realloc(r->buf, len + 1);

			if (!nb)
				rc = nomem(&im);
			else {
				r->buf = nb;
				r->cap = len;
			}
		}
		if (!rc) {
			memcpy(r->buf, text, len);
			r->len = len;
			r->eof = true;
			if (first_line > 1)
				im.skip_header = SKIP_HEADER_DONE;
			rc = fmt == RVF_IMPORT_CSV ? import_csv(&im) :
			     import_jsonl(&im);
		}
	}
	drop_docs(&im);
	free(im.docs);
	free(im.meta);
	free(im.meta_start);
	free(im.ids);
	free(im.vec);
	free(im.rd.buf);
	if (im.cloc)
		freelocale(im.cloc);
	return rc;
}
