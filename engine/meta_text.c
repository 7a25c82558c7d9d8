/*
 * meta_text.c - metadata values as text: one form for every door that has
 * only text (the user.rvf.meta.* xattrs, rvfctl export through a mount,
 * rvfctl query), so that a value read there and written back keeps its
 * type.
 *
 * Numbers and booleans are JSON (17, -3, 2.5, 1e+30, true, false).  A
 * string is its bare bytes, unless those would read back as something else
 * (a number, a boolean, a text starting with '"'): then it is a JSON string
 * literal ("17", "true", "\"x\"").  Bytes values are their raw bytes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l */
#endif

#include <inttypes.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "meta.h"
#include "store.h"

static bool digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Whether [s, e) is exactly an RFC 8259 number; *integral: no fraction or
 * exponent. */
static bool json_number(const char *s, const char *e, bool *integral)
{
	const char *p = s;

	*integral = true;
	if (p < e && *p == '-')
		p++;
	if (p == e)
		return false;
	if (*p == '0')
		p++;
	else if (digit(*p))
		while (p < e && digit(*p))
			p++;
	else
		return false;
	if (p < e && *p == '.') {
		*integral = false;
		if (++p == e || !digit(*p))
			return false;
		while (p < e && digit(*p))
			p++;
	}
	if (p < e && (*p == 'e' || *p == 'E')) {
		*integral = false;
		if (++p < e && (*p == '+' || *p == '-'))
			p++;
		if (p == e || !digit(*p))
			return false;
		while (p < e && digit(*p))
			p++;
	}
	return p == e;
}

/* The number [s, e) (json_number holds): i64, u64 or f64; false when it
 * is not finite as a double. */
static bool number_value(const char *s, const char *e, bool integral,
			 rvf_value *out)
{
	char buf[400];
	size_t n = (size_t)(e - s);

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (integral) {
		bool neg = buf[0] == '-';
		uint64_t m = 0;
		bool fits = true;

		for (const char *p = buf + neg; *p; p++) {
			unsigned d = (unsigned)(*p - '0');

			if (m > (UINT64_MAX - d) / 10) {
				fits = false;
				break;
			}
			m = m * 10 + d;
		}
		if (fits && !neg && m <= INT64_MAX) {
			*out = (rvf_value){ .type = RVF_VALUE_I64, .u.i64 = (int64_t)m };
			return true;
		}
		if (fits && !neg) {
			*out = (rvf_value){ .type = RVF_VALUE_U64, .u.u64 = m };
			return true;
		}
		if (fits && m <= (uint64_t)INT64_MAX + 1) {
			*out = (rvf_value){ .type = RVF_VALUE_I64,
					    .u.i64 = m == (uint64_t)INT64_MAX + 1 ?
						     INT64_MIN : -(int64_t)m };
			return true;
		}
	}
	locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (!c)
		return false;
	double d = strtod_l(buf, NULL, c);
	freelocale(c);
	if (!isfinite(d))
		return false;
	*out = (rvf_value){ .type = RVF_VALUE_F64, .u.f64 = d };
	return true;
}

/* The type the text itself says (see the top of the file). */
static rvf_code infer(const char *text, size_t len, rvf_value *out,
		      char **owned, bool *quoted, rvf_error *err)
{
	bool integral;

	*owned = NULL;
	*quoted = false;
	if ((len == 4 && !memcmp(text, "true", 4)) ||
	    (len == 5 && !memcmp(text, "false", 5))) {
		*out = (rvf_value){ .type = RVF_VALUE_BOOL, .u.b = len == 4 };
		return RVF_OK;
	}
	if (json_number(text, text + len, &integral) &&
	    number_value(text, text + len, integral, out))
		return RVF_OK;
	if (len && text[0] == '"') {
		json_t *j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL,
				       NULL);

		if (!json_is_string(j)) {
			json_decref(j);
			return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					"a value starting with '\"' must be a JSON "
					"string (\"...\" with JSON escapes)");
		}
		size_t n = json_string_length(j);
		*owned = malloc(n + 1);
		if (!*owned) {
			json_decref(j);
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		}
		memcpy(*owned, json_string_value(j), n + 1);
		json_decref(j);
		*out = (rvf_value){ .type = RVF_VALUE_STRING,
				    .u.str = { *owned, n } };
		*quoted = true;
		return RVF_OK;
	}
	*out = (rvf_value){ .type = meta_utf8_valid((const unsigned char *)text, len) ?
					    RVF_VALUE_STRING : RVF_VALUE_BYTES,
			    .u.str = { text, len } };
	return RVF_OK;
}

static const char *type_word(rvf_value_type t)
{
	switch (t) {
	case RVF_VALUE_STRING: return "string";
	case RVF_VALUE_BYTES: return "bytes";
	case RVF_VALUE_I64: return "i64";
	case RVF_VALUE_U64: return "u64";
	case RVF_VALUE_F64: return "f64";
	case RVF_VALUE_BOOL: return "bool";
	}
	return "?";
}

rvf_code rvf_value_parse(const char *text, size_t len, rvf_value_type want,
			 rvf_value *out, char **owned, rvf_error *err)
{
	rvf_value v;
	bool quoted;
	rvf_code rc;

	*owned = NULL;
	if (len && !text)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "no value text");
	if (want == RVF_VALUE_BYTES) {
		*out = (rvf_value){ .type = RVF_VALUE_BYTES, .u.str = { text, len } };
		return RVF_OK;
	}
	rc = infer(text, len, &v, owned, &quoted, err);
	if (rc != RVF_OK || !want || v.type == want) {
		*out = v;
		return rc;
	}
	if (want == RVF_VALUE_STRING) {
		/* A bare text into a string field is that text. */
		*out = (rvf_value){ .type = RVF_VALUE_STRING, .u.str = { text, len } };
		if (!meta_utf8_valid((const unsigned char *)text, len))
			return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					"the field holds strings; this value is "
					"not UTF-8");
		return RVF_OK;
	}
	if (!meta_value_convert(&v, want, out)) {
		free(*owned);
		*owned = NULL;
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"the field holds %s values; \"%.*s\" is %s",
				type_word(want), len > 64 ? 64 : (int)len, text,
				v.type == RVF_VALUE_STRING || v.type == RVF_VALUE_BYTES ?
				"not a number" : v.type == RVF_VALUE_BOOL ?
				"a boolean" : "not exactly one");
	}
	return RVF_OK;
}

/* Shortest "%.Pg" that reads back as d, with a '.' or an exponent so it
 * reads back as a float (2.0, not 2). */
static char *f64_text(double d, size_t *len)
{
	char buf[40];
	int n = 0;
	locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	locale_t old = c ? uselocale(c) : (locale_t)0;

	for (int p = 1; p <= 17; p++) {
		n = snprintf(buf, sizeof(buf), "%.*g", p, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	if (c) {
		uselocale(old);
		freelocale(c);
	}
	if (!strpbrk(buf, ".eE") && (size_t)n + 2 < sizeof(buf)) {
		memcpy(buf + n, ".0", 3);
		n += 2;
	}
	*len = (size_t)n;
	return strdup(buf);
}

static char *bare_text(const rvf_value *v, size_t *len)
{
	char *out = malloc(v->u.str.len + 1);

	if (!out)
		return NULL;
	if (v->u.str.len)
		memcpy(out, v->u.str.ptr, v->u.str.len);
	out[v->u.str.len] = '\0';
	*len = v->u.str.len;
	return out;
}

char *rvf_value_text(const rvf_value *v, size_t *len)
{
	char *out = NULL;
	int n = -1;

	*len = 0;
	switch (v->type) {
	case RVF_VALUE_STRING: {
		rvf_value back;
		char *owned;
		bool quoted;
		rvf_error err;
		bool bare = infer(v->u.str.ptr, v->u.str.len, &back, &owned,
				  &quoted, &err) == RVF_OK &&
			    back.type == RVF_VALUE_STRING && !quoted;

		free(owned);
		if (!bare) {
			json_t *j = json_stringn_nocheck(v->u.str.ptr, v->u.str.len);

			out = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
			json_decref(j);
			if (out)
				*len = strlen(out);
			return out;
		}
		return bare_text(v, len);
	}
	case RVF_VALUE_BYTES:
		return bare_text(v, len);
	case RVF_VALUE_I64:
		n = asprintf(&out, "%" PRId64, v->u.i64);
		break;
	case RVF_VALUE_U64:
		n = asprintf(&out, "%" PRIu64, v->u.u64);
		break;
	case RVF_VALUE_F64:
		return f64_text(v->u.f64, len);
	case RVF_VALUE_BOOL:
		n = asprintf(&out, "%s", v->u.b ? "true" : "false");
		break;
	}
	if (n < 0)
		return NULL;
	*len = (size_t)n;
	return out;
}

bool rvf_view_meta_type(const rvf_view *v, const char *name,
			rvf_value_type *type)
{
	const meta_field_def *d =
		v && name ? meta_table_field_by_name(v->meta, name, strlen(name)) :
			    NULL;

	if (!d)
		return false;
	*type = d->type;
	return true;
}
