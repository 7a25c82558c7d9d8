/*
 * import_json.c - JSON Lines and JSON arrays of objects
 * {"id": N, "vector": [...], "metadata": {...}}.
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
#include "import.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>


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
		while (p < end && imp_is_digit(*p))
			p++;
	else
		return 0;
	if (p < end && *p == '.') {
		if (++p == end || !imp_is_digit(*p))
			return 0;
		while (p < end && imp_is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || !imp_is_digit(*p))
			return 0;
		while (p < end && imp_is_digit(*p))
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
		return imp_bad(im, "\"vector\" is not an array");
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
			return imp_bad(im, "component %" PRIu64 " is not a number: %s",
				   k + 1, imp_show(tok, p, (size_t)(e - p)));
		}
		r = num_float(p, p + n, &v);
		if (r == NUM_BAD)
			return imp_bad(im, "component %" PRIu64 " is not a number: %s",
				   k + 1, imp_show(tok, p, n));
		if (r == NUM_RANGE)
			return imp_bad(im, "component %" PRIu64 " \"%s\" is not finite",
				   k + 1, imp_show(tok, p, n));
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
		return imp_bad(im, "bad JSON: expected ',' or ']' after component %"
			   PRIu64 " of \"vector\"", k);
	}
done:
	if (k != im->dim)
		return imp_bad(im, "expected %" PRIu32 " components, found %" PRIu64,
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

/* One metadata field: a string, number or boolean. */
static rvf_code meta_field(struct imp *im, const char *key, json_t *val)
{
	rvf_meta_field *f;
	char tok[48];

	if (im->meta_n == im->meta_cap) {
		size_t ncap = im->meta_cap ? im->meta_cap * 2 : 256;
		rvf_meta_field *nm = realloc(im->meta, ncap * sizeof(*nm));

		if (!nm)
			return imp_nomem(im);
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
		return imp_bad(im, "metadata \"%s\" is %s (expected a string, "
			       "number or boolean)",
			       imp_show(tok, key, strlen(key)), json_kind(val));
	}
	im->meta_n++;
	return RVF_OK;
}

/* The fields of "metadata", then every other top-level field but "id" and
 * "vector" ({"id":1,"vector":[...],"color":"green"}); a name in both
 * places is refused rather than one silently winning. */
static rvf_code json_meta(struct imp *im, json_t *doc)
{
	json_t *m = json_object_get(doc, "metadata"), *val;
	const char *key;
	char tok[48];
	rvf_code rc;

	if (m && !json_is_null(m)) {
		if (!json_is_object(m))
			return imp_bad(im, "\"metadata\" is not an object");
		json_object_foreach(m, key, val) {
			rc = meta_field(im, key, val);
			if (rc)
				return rc;
		}
	}
	json_object_foreach(doc, key, val) {
		if (!strcmp(key, "id") || !strcmp(key, "vector") ||
		    !strcmp(key, "metadata"))
			continue;
		if (json_is_object(m) && json_object_get(m, key))
			return imp_bad(im, "\"%s\" is both a top-level field and "
				       "in \"metadata\"",
				       imp_show(tok, key, strlen(key)));
		rc = meta_field(im, key, val);
		if (rc)
			return rc;
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
	json_t *doc;
	uint64_t id = 0;
	char tok[48];
	rvf_code rc;

	im->loc_kind = LOC_LINE;
	im->loc = line;
	json_prescan(s, s + n, &js);
	if (js.whole) {
		size_t idn;
		int r;

		if (js.id) {
			/* A number, or a string of one ("42"). */
			const char *a = js.id, *b = js.id_end;

			idn = (size_t)(js.id_end - js.id);
			if (idn >= 2 && a[0] == '"' && b[-1] == '"')
				a++, b--;
			r = imp_parse_id(a, b, &id);
			if (r == 1 || (b - a > 1 && a[0] == '0'))
				return imp_bad(im, "id %s is not a non-negative "
					       "integer", imp_show(tok, js.id, idn));
			if (r == 2)
				return imp_bad(im, "id %s is larger than %" PRIu64,
					       imp_show(tok, js.id, idn), UINT64_MAX);
		}
		/* Rows without ids take the store's next ids; they go to
		 * the sink in batches of their own. */
		if (im->n && im->auto_ids != !js.id) {
			rc = imp_flush(im);
			if (rc)
				return rc;
			row = im->vec;
			first = im->meta_n;
		}
		im->auto_ids = !js.id;
		if (!js.vec)
			return imp_bad(im, "missing \"vector\"");
		rc = json_vector(im, js.vec, js.vec_end, row);
		if (rc)
			return rc;
		/* The later value first, so the other stays in place. */
		if (!js.id) {
			cut(s, &n, js.vec, js.vec_end);
		} else if (js.id > js.vec) {
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
		return imp_bad(im, "bad JSON: %s%s", je.text,
			   big ? " (integers must fit in int64)" : "");
	}
	if (!json_is_object(doc)) {
		json_decref(doc);
		return imp_bad(im, "expected a JSON object");
	}
	if (!js.whole) { /* cannot happen: jansson accepted what we could not walk */
		json_decref(doc);
		return imp_bad(im, "bad JSON");
	}
	im->meta_start[im->n] = first;
	rc = json_meta(im, doc);
	if (rc) {
		im->meta_n = first;
		json_decref(doc);
		return rc;
	}
	if (im->meta_n > first) {
		im->docs[im->ndocs++] = doc;
		im->doc_bytes += n;
	} else {
		json_decref(doc);
	}
	im->ids[im->n] = id;
	if (++im->n == im->cap_rows || im->doc_bytes >= BATCH_JSON_BYTES)
		return imp_flush(im);
	return RVF_OK;
}

rvf_code import_jsonl(struct imp *im)
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
			return imp_bad(im, "unexpected end of file inside the element");
	}
}

rvf_code import_json(struct imp *im)
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
		return imp_bad(im, "expected a JSON array of objects");
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
			return imp_bad(im, "unexpected end of file in the array");
		im->elem = nelem + 1;
		if (c != '{')
			return imp_bad(im, "expected an object");
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
			return imp_bad(im, c < 0 ? "unexpected end of file after "
				   "element %" PRIu64 : "expected ',' or ']' after "
				   "element %" PRIu64, nelem);
		r->pos++;
		rc = rd_peek(im, &c, &line);
		if (rc)
			return rc;
		if (c == ']') {
			im->loc = line;
			return imp_bad(im, "trailing comma after element %" PRIu64,
				   nelem);
		}
	}
	rc = rd_peek(im, &c, &line);
	if (rc)
		return rc;
	if (c >= 0) {
		im->loc = line;
		return imp_bad(im, "data after the end of the array");
	}
	return RVF_OK;
}
