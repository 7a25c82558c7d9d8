/*
 * filter.c - metadata filters: JSON parsing and evaluation.
 *
 * Two forms, mixable within one tree:
 * - the reference's: {"op":"eq","fieldId":N,"valueType":"u64","value":"5"}.
 *   With a valueType the field must hold exactly that type (a u64 field
 *   never matches an i64 filter); values are strings parsed per valueType,
 *   or JSON numbers/bools that convert exactly.
 * - the named one: {"op":"eq","field":"color","value":"red"}.  The field is
 *   looked up by name; without valueType the value's type comes from the
 *   JSON and numbers compare numerically across i64/u64/f64 (5 == 5.0).
 * "fieldId" or "field" picks the field; "valueType" (either form) picks
 * exact typing.  As in the reference: values of different types never
 * compare (every comparison, ne included, is false); a missing field makes
 * every comparison false except ne, which is true; and[] is true, or[]
 * false; range is low <= v < high.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l */
#endif

#include "filter.h"

#include <ctype.h>
#include <jansson.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define MAX_DEPTH 64

typedef enum fop {
	F_EQ, F_NE, F_LT, F_LE, F_GT, F_GE, F_IN, F_RANGE, F_AND, F_OR, F_NOT,
} fop;

static const char *const op_names[] = {
	"eq", "ne", "lt", "le", "gt", "ge", "in", "range", "and", "or", "not",
};

struct rvf_filter {
	fop op;
	bool by_name;
	bool typed;        /* valueType given: exact type match */
	rvf_value_type vtype;
	uint16_t field_id;
	char *name;        /* by_name: field name (may hold NUL: never matches) */
	size_t name_len;
	rvf_value *vals;   /* value / values / low, high; strings malloc'd */
	size_t nvals;
	rvf_filter **kids; /* and, or: children; not: one */
	size_t nkids;
};

typedef struct pctx {
	rvf_error *err;
	locale_t cloc; /* "C" numbers whatever the caller's locale */
} pctx;

#define FAIL(...)                                                  \
	do {                                                       \
		rvf_fail(c->err, RVF_E_FILTER, "filter: " __VA_ARGS__); \
		goto fail;                                         \
	} while (0)

void rvf_filter_free(rvf_filter *f)
{
	if (!f)
		return;
	for (size_t i = 0; i < f->nvals; i++)
		if (f->vals[i].type == RVF_VALUE_STRING)
			free((char *)f->vals[i].u.str.ptr);
	for (size_t i = 0; i < f->nkids; i++)
		rvf_filter_free(f->kids[i]);
	free(f->vals);
	free(f->kids);
	free(f->name);
	free(f);
}

static bool parse_digits(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

/* Integers as Rust's from_str takes them: optional sign, digits only. */
static bool parse_u64(const char *s, uint64_t *out)
{
	return parse_digits(s + (*s == '+'), out);
}

static bool parse_i64(const char *s, int64_t *out)
{
	bool neg = *s == '-';
	uint64_t m;
	if (!parse_digits(s + (*s == '-' || *s == '+'), &m))
		return false;
	if (neg) {
		if (m > (uint64_t)INT64_MAX + 1)
			return false;
		*out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
	} else {
		if (m > INT64_MAX)
			return false;
		*out = (int64_t)m;
	}
	return true;
}

static bool parse_f64(pctx *c, const char *s, double *out)
{
	/* strtod would also take leading blanks and hex, Rust does not. */
	if (!*s || isspace((unsigned char)*s) || strpbrk(s, "xX"))
		return false;
	if (!c->cloc) {
		c->cloc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
		if (!c->cloc)
			return false;
	}
	char *end;
	double d = strtod_l(s, &end, c->cloc);
	if (*end)
		return false;
	*out = d;
	return true;
}

static bool value_type_of(const char *s, rvf_value_type *t)
{
	static const struct {
		const char *name;
		rvf_value_type type;
	} types[] = {
		{ "u64", RVF_VALUE_U64 }, { "i64", RVF_VALUE_I64 },
		{ "f64", RVF_VALUE_F64 }, { "string", RVF_VALUE_STRING },
		{ "bool", RVF_VALUE_BOOL },
	};
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcmp(s, types[i].name) == 0) {
			*t = types[i].type;
			return true;
		}
	}
	return false;
}

static const char *type_name(rvf_value_type t)
{
	switch (t) {
	case RVF_VALUE_U64: return "u64";
	case RVF_VALUE_I64: return "i64";
	case RVF_VALUE_F64: return "f64";
	case RVF_VALUE_STRING: return "string";
	case RVF_VALUE_BOOL: return "bool";
	default: return "bytes";
	}
}

/* One value under key `key`: typed (parse per vt) or inferred from JSON. */
static bool parse_value(pctx *c, const json_t *j, const char *key, bool typed,
			rvf_value_type vt, rvf_value *out)
{
	rvf_value v = { 0 };
	if (json_is_string(j)) {
		const char *s = json_string_value(j);
		size_t len = json_string_length(j);
		if (!typed || vt == RVF_VALUE_STRING) {
			char *copy = malloc(len + 1);
			if (!copy) {
				rvf_fail(c->err, RVF_E_NO_MEMORY, "out of memory");
				return false;
			}
			memcpy(copy, s, len + 1);
			v.type = RVF_VALUE_STRING;
			v.u.str.ptr = copy;
			v.u.str.len = len;
			*out = v;
			return true;
		}
		bool ok = strlen(s) == len;
		v.type = vt;
		switch (vt) {
		case RVF_VALUE_U64:
			ok = ok && parse_u64(s, &v.u.u64);
			break;
		case RVF_VALUE_I64:
			ok = ok && parse_i64(s, &v.u.i64);
			break;
		case RVF_VALUE_F64:
			ok = ok && parse_f64(c, s, &v.u.f64);
			break;
		default:
			ok = ok && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0);
			v.u.b = ok && s[0] == 't';
			break;
		}
		if (!ok)
			FAIL("\"%s\" \"%.64s\" is not a valid %s", key, s, type_name(vt));
		*out = v;
		return true;
	}
	if (json_is_integer(j)) {
		v.type = RVF_VALUE_I64;
		v.u.i64 = (int64_t)json_integer_value(j);
	} else if (json_is_real(j)) {
		v.type = RVF_VALUE_F64;
		v.u.f64 = json_real_value(j);
	} else if (json_is_boolean(j)) {
		v.type = RVF_VALUE_BOOL;
		v.u.b = json_is_true(j);
	} else {
		FAIL("\"%s\" must be a string, number or boolean", key);
	}
	if (typed) {
		rvf_value conv;
		if (vt == RVF_VALUE_STRING || !meta_value_convert(&v, vt, &conv))
			FAIL("\"%s\" does not fit valueType %s", key, type_name(vt));
		v = conv;
	}
	*out = v;
	return true;
fail:
	return false;
}

static bool add_value(pctx *c, rvf_filter *f, const json_t *j, const char *key)
{
	if (!j)
		FAIL("\"%s\" needs \"%s\"", op_names[f->op], key);
	if (!parse_value(c, j, key, f->typed, f->vtype, &f->vals[f->nvals]))
		return false;
	f->nvals++;
	return true;
fail:
	return false;
}

static rvf_filter *parse_node(pctx *c, const json_t *j, unsigned depth);

static bool parse_leaf(pctx *c, rvf_filter *f, const json_t *j)
{
	const char *op = op_names[f->op];
	const json_t *id = json_object_get(j, "fieldId");
	const json_t *name = json_object_get(j, "field");
	const json_t *vt = json_object_get(j, "valueType");

	if (id && name)
		FAIL("\"%s\" has both \"fieldId\" and \"field\"", op);
	if (id) {
		if (!json_is_integer(id) || json_integer_value(id) < 0 ||
		    json_integer_value(id) > UINT16_MAX)
			FAIL("\"fieldId\" must be an integer from 0 to 65535");
		f->field_id = (uint16_t)json_integer_value(id);
	} else if (name) {
		if (!json_is_string(name))
			FAIL("\"field\" must be a string");
		f->by_name = true;
		f->name_len = json_string_length(name);
		f->name = malloc(f->name_len + 1);
		if (!f->name) {
			rvf_fail(c->err, RVF_E_NO_MEMORY, "out of memory");
			return false;
		}
		memcpy(f->name, json_string_value(name), f->name_len + 1);
	} else {
		FAIL("\"%s\" needs \"fieldId\" or \"field\"", op);
	}
	if (vt) {
		if (!json_is_string(vt))
			FAIL("\"valueType\" must be a string");
		if (!value_type_of(json_string_value(vt), &f->vtype))
			FAIL("unknown valueType \"%.64s\"", json_string_value(vt));
		f->typed = true;
	}

	const json_t *values = NULL;
	size_t n = 1;
	if (f->op == F_IN) {
		values = json_object_get(j, "values");
		if (!json_is_array(values))
			FAIL("\"in\" needs a \"values\" array");
		n = json_array_size(values);
	} else if (f->op == F_RANGE) {
		n = 2;
	}
	f->vals = calloc(n ? n : 1, sizeof(rvf_value));
	if (!f->vals) {
		rvf_fail(c->err, RVF_E_NO_MEMORY, "out of memory");
		return false;
	}
	if (f->op == F_IN) {
		for (size_t i = 0; i < n; i++)
			if (!add_value(c, f, json_array_get(values, i), "values"))
				return false;
	} else if (f->op == F_RANGE) {
		if (!add_value(c, f, json_object_get(j, "low"), "low") ||
		    !add_value(c, f, json_object_get(j, "high"), "high"))
			return false;
	} else if (!add_value(c, f, json_object_get(j, "value"), "value")) {
		return false;
	}
	return true;
fail:
	return false;
}

static rvf_filter *parse_node(pctx *c, const json_t *j, unsigned depth)
{
	rvf_filter *f = NULL;
	if (depth > MAX_DEPTH)
		FAIL("nested deeper than %u levels", MAX_DEPTH);
	if (!json_is_object(j))
		FAIL("expected an object");
	const json_t *op = json_object_get(j, "op");
	if (!op)
		FAIL("missing \"op\"");
	if (!json_is_string(op))
		FAIL("\"op\" must be a string");
	const char *s = json_string_value(op);
	size_t k = 0;
	while (k < sizeof(op_names) / sizeof(op_names[0]) &&
	       strcmp(s, op_names[k]) != 0)
		k++;
	if (k == sizeof(op_names) / sizeof(op_names[0]))
		FAIL("unknown op \"%.64s\"", s);
	f = calloc(1, sizeof(*f));
	if (!f) {
		rvf_fail(c->err, RVF_E_NO_MEMORY, "out of memory");
		return NULL;
	}
	f->op = (fop)k;
	if (f->op == F_AND || f->op == F_OR) {
		const json_t *kids = json_object_get(j, "children");
		if (!json_is_array(kids))
			FAIL("\"%s\" needs a \"children\" array", s);
		size_t n = json_array_size(kids);
		f->kids = calloc(n ? n : 1, sizeof(*f->kids));
		if (!f->kids) {
			rvf_fail(c->err, RVF_E_NO_MEMORY, "out of memory");
			goto fail;
		}
		for (; f->nkids < n; f->nkids++) {
			f->kids[f->nkids] = parse_node(c, json_array_get(kids, f->nkids),
						       depth + 1);
			if (!f->kids[f->nkids])
				goto fail;
		}
	} else if (f->op == F_NOT) {
		const json_t *kid = json_object_get(j, "child");
		if (!json_is_object(kid))
			FAIL("\"not\" needs a \"child\" object");
		f->kids = calloc(1, sizeof(*f->kids));
		if (!f->kids) {
			rvf_fail(c->err, RVF_E_NO_MEMORY, "out of memory");
			goto fail;
		}
		f->kids[0] = parse_node(c, kid, depth + 1);
		if (!f->kids[0])
			goto fail;
		f->nkids = 1;
	} else if (!parse_leaf(c, f, j)) {
		goto fail;
	}
	return f;
fail:
	rvf_filter_free(f);
	return NULL;
}

rvf_filter *rvf_filter_parse(const char *json, rvf_error *err)
{
	pctx ctx = { .err = err }, *c = &ctx;
	rvf_filter *f = NULL;
	json_t *root = NULL;
	json_error_t je;
	if (!json)
		FAIL("no JSON given");
	root = json_loads(json, JSON_DECODE_ANY, &je);
	if (!root)
		FAIL("invalid JSON at line %d, column %d: %s", je.line,
		     je.column, je.text);
	f = parse_node(c, root, 1);
fail:
	json_decref(root);
	if (ctx.cloc)
		freelocale(ctx.cloc);
	return f;
}

/* ------------------------------------------------------------------ */
/* Evaluation                                                          */
/* ------------------------------------------------------------------ */

static const rvf_value *field_of(const rvf_filter *f, const meta_table *t,
				 uint64_t id)
{
	meta_record r;
	if (!meta_table_find(t, id, &r))
		return NULL;
	for (size_t i = 0; i < r.count; i++) {
		if (f->by_name) {
			const char *n = r.fields[i].name;
			if (strlen(n) == f->name_len &&
			    memcmp(n, f->name, f->name_len) == 0)
				return &r.fields[i].value;
		} else if (r.field_ids[i] == f->field_id) {
			return &r.fields[i].value;
		}
	}
	return NULL;
}

static int cmp(const rvf_filter *f, const rvf_value *v, const rvf_value *w)
{
	if (f->typed && v->type != w->type)
		return META_CMP_NONE;
	return meta_value_cmp(v, w);
}

bool filter_match(const rvf_filter *f, const meta_table *t, uint64_t id)
{
	if (!f)
		return true;
	switch (f->op) {
	case F_AND:
		for (size_t i = 0; i < f->nkids; i++)
			if (!filter_match(f->kids[i], t, id))
				return false;
		return true;
	case F_OR:
		for (size_t i = 0; i < f->nkids; i++)
			if (filter_match(f->kids[i], t, id))
				return true;
		return false;
	case F_NOT:
		return !filter_match(f->kids[0], t, id);
	default:
		break;
	}
	const rvf_value *v = field_of(f, t, id);
	if (!v)
		return f->op == F_NE;
	int c = f->nvals ? cmp(f, v, &f->vals[0]) : META_CMP_NONE;
	switch (f->op) {
	case F_EQ: return c == 0;
	case F_NE: return c == -1 || c == 1;
	case F_LT: return c == -1;
	case F_LE: return c == -1 || c == 0;
	case F_GT: return c == 1;
	case F_GE: return c == 0 || c == 1;
	case F_IN:
		for (size_t i = 0; i < f->nvals; i++)
			if (cmp(f, v, &f->vals[i]) == 0)
				return true;
		return false;
	case F_RANGE:
		return (c == 0 || c == 1) && cmp(f, v, &f->vals[1]) == -1;
	default:
		return false;
	}
}
