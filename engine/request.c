/* request.c - the query language of the `query` file, queries/NAME/request
 * and `rvfctl query --file`.  No FUSE here: the daemon and the fuzzer link
 * the same code.
 *
 * One query per line (blank lines and lines starting with # are skipped):
 * plain text -- optional k=N and ef=N, then exactly `dimension` numbers
 * (rvf_parse_floats: blanks and/or commas, brackets allowed) -- or a JSON
 * object {"vector":[...], "k":N, "ef":N, "filter":{...}}.  Any other key
 * or a bad value refuses the whole request.  Results: per query one
 * "ID DISTANCE" line per hit, groups separated by an empty line.  Search
 * is exact, so ef is checked and has no effect. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* open_memstream, vasprintf */
#endif

#include "error.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct parsed {
	float *vec;
	size_t k;
	char *filter; /* JSON text or NULL */
} parsed;

static int fail(char **msg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int fail(char **msg, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(msg, fmt, ap) < 0)
		*msg = NULL;
	va_end(ap);
	return -EINVAL;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* k and ef: canonical positive integers up to RVF_REQUEST_MAX_K. */
static int parse_count(const char *key, const char *s, size_t len,
		       size_t *out, char **msg)
{
	uint64_t v;
	if (!rvf_parse_id(s, len, &v) || v == 0 || v > RVF_REQUEST_MAX_K)
		return fail(msg, "%s must be a positive integer up to %u, not \"%.*s\"",
			    key, RVF_REQUEST_MAX_K, len > 40 ? 40 : (int)len, s);
	*out = (size_t)v;
	return 0;
}

static int parse_text(const char *line, uint32_t dim, size_t default_k,
		      parsed *q, char **msg)
{
	q->k = default_k;
	q->vec = malloc(4 * (size_t)dim);
	if (!q->vec)
		return -ENOMEM;
	const char *p = line;
	/* key=value tokens first */
	for (;;) {
		while (*p && blank(*p))
			p++;
		size_t len = 0;
		while (p[len] && !blank(p[len]) && p[len] != ',')
			len++;
		const char *eq = memchr(p, '=', len);
		if (!eq)
			break;
		size_t klen = (size_t)(eq - p), vlen = len - klen - 1;
		size_t ef;
		int rc;
		if (klen == 1 && p[0] == 'k')
			rc = parse_count("k", eq + 1, vlen, &q->k, msg);
		else if (klen == 2 && !strncmp(p, "ef", 2))
			rc = parse_count("ef", eq + 1, vlen, &ef, msg);
		else
			rc = fail(msg, "unknown key \"%.*s\" (known: k, ef)",
				  klen > 40 ? 40 : (int)klen, p);
		if (rc)
			return rc;
		p += len;
	}
	rvf_error err;
	long n = rvf_parse_floats(p, strlen(p), q->vec, dim, &err);
	if (n < 0)
		return fail(msg, "%s", err.message);
	if ((size_t)n != dim)
		return fail(msg, "expected %u numbers, found %ld", dim, n);
	return 0;
}

static int parse_json(const char *line, uint32_t dim, size_t default_k,
		      parsed *q, char **msg)
{
	json_error_t je;
	json_t *o = json_loads(line, JSON_REJECT_DUPLICATES, &je);
	int rc = 0;
	if (!o || !json_is_object(o)) {
		rc = fail(msg, "bad JSON: %s", o ? "not an object" : je.text);
		goto out;
	}
	const char *key;
	json_t *val;
	json_object_foreach(o, key, val) {
		if (strcmp(key, "vector") && strcmp(key, "k") &&
		    strcmp(key, "ef") && strcmp(key, "filter")) {
			rc = fail(msg, "unknown key \"%.40s\" (known: vector, k, ef, filter)",
				  key);
			goto out;
		}
	}
	json_t *vec = json_object_get(o, "vector"), *k = json_object_get(o, "k");
	json_t *ef = json_object_get(o, "ef");
	json_t *filter = json_object_get(o, "filter");
	if (!json_is_array(vec)) {
		rc = fail(msg, "\"vector\" must be an array of numbers");
		goto out;
	}
	if (json_array_size(vec) != dim) {
		rc = fail(msg, "expected %u numbers, found %zu", dim,
			  json_array_size(vec));
		goto out;
	}
	q->vec = malloc(4 * (size_t)dim);
	if (!q->vec) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint32_t d = 0; d < dim; d++) {
		json_t *x = json_array_get(vec, d);
		float f = json_is_number(x) ? (float)json_number_value(x) : NAN;
		if (!isfinite(f)) {
			rc = fail(msg, "vector[%u] is not a finite float32 number", d);
			goto out;
		}
		q->vec[d] = f;
	}
	q->k = default_k;
	const char *names[2] = { "k", "ef" };
	json_t *counts[2] = { k, ef };
	for (int i = 0; i < 2; i++) {
		json_t *c = counts[i];
		if (c && (!json_is_integer(c) || json_integer_value(c) <= 0 ||
			  json_integer_value(c) > RVF_REQUEST_MAX_K)) {
			rc = fail(msg, "%s must be a positive integer up to %u",
				  names[i], RVF_REQUEST_MAX_K);
			goto out;
		}
	}
	if (k)
		q->k = (size_t)json_integer_value(k);
	if (filter && !json_is_null(filter)) {
		q->filter = json_dumps(filter, JSON_COMPACT);
		rvf_error err;
		rvf_filter *f = q->filter ? rvf_filter_parse(q->filter, &err) : NULL;
		if (!f) {
			rc = fail(msg, "%s", q->filter ? err.message : "bad filter");
			goto out;
		}
		rvf_filter_free(f);
	}
out:
	json_decref(o);
	return rc;
}

static void put_hits(FILE *f, const rvf_hit *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char b[RVF_FLOAT_TEXT_MAX];
		rvf_format_float(h[i].distance, b);
		fprintf(f, "%llu %s\n", (unsigned long long)h[i].id, b);
	}
}

/* Parses every line; on a bad one returns -EINVAL with *msg and *lineno. */
static int parse_all(const rvf_view *v, char *text, size_t default_k,
		     parsed **out, size_t *nout, size_t *lineno, char **msg)
{
	uint32_t dim = rvf_view_info(v)->dimension;
	parsed *qs = NULL;
	size_t nq = 0, cap = 0;
	int rc = 0;
	char *next = text;
	*lineno = 0;
	while (next && !rc) {
		char *line = next;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		++*lineno;
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		if (!*p || *p == '#')
			continue;
		if (nq == cap) {
			parsed *n = realloc(qs, (cap = cap ? 2 * cap : 8) * sizeof(parsed));
			if (!n) {
				rc = -ENOMEM;
				break;
			}
			qs = n;
		}
		memset(&qs[nq], 0, sizeof(parsed));
		rc = *p == '{' ? parse_json(p, dim, default_k, &qs[nq], msg) :
		     parse_text(p, dim, default_k, &qs[nq], msg);
		nq++;
	}
	if (!rc && nq == 0)
		rc = fail(msg, "empty request: expected %u numbers per line", dim);
	*out = qs;
	*nout = nq;
	return rc;
}

/* Runs the parsed queries into f. */
static rvf_code search_all(const rvf_view *v, parsed *qs, size_t nq,
			   const rvf_search_options *base, FILE *f,
			   rvf_error *err)
{
	uint32_t dim = rvf_view_info(v)->dimension;
	/* Plain queries go in one batch (one pass over the data) at the
	 * largest k; filtered ones run alone. */
	size_t kmax = 0, nplain = 0;
	for (size_t i = 0; i < nq; i++)
		if (!qs[i].filter) {
			nplain++;
			if (qs[i].k > kmax)
				kmax = qs[i].k;
		}
	size_t visible = rvf_view_info(v)->visible;
	if (kmax > visible)
		kmax = visible ? visible : 1;
	float *batch = malloc(4 * (size_t)dim * (nplain ? nplain : 1));
	rvf_hit *hits = malloc(sizeof(rvf_hit) * (kmax ? kmax : 1) *
			       (nplain ? nplain : 1));
	size_t *counts = malloc(sizeof(size_t) * (nplain ? nplain : 1));
	rvf_search_options so = *base;
	so.filter = NULL;
	rvf_code rc = RVF_OK;
	if (!batch || !hits || !counts) {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "query: out of memory");
	} else if (nplain) {
		size_t j = 0;
		for (size_t i = 0; i < nq; i++)
			if (!qs[i].filter)
				memcpy(batch + (j++) * dim, qs[i].vec, 4 * (size_t)dim);
		rc = rvf_view_search(v, batch, nplain, kmax, &so, hits, counts, err);
	}
	for (size_t i = 0, j = 0; !rc && i < nq; i++) {
		if (i)
			fputc('\n', f);
		if (!qs[i].filter) {
			size_t n = counts[j] < qs[i].k ? counts[j] : qs[i].k;
			put_hits(f, hits + j * kmax, n);
			j++;
			continue;
		}
		size_t k = qs[i].k < visible ? qs[i].k : (visible ? visible : 1);
		rvf_hit *h = malloc(sizeof(rvf_hit) * k);
		size_t n = 0;
		rvf_filter *flt = rvf_filter_parse(qs[i].filter, err);
		so.filter = flt;
		if (!h)
			rc = rvf_fail(err, RVF_E_NO_MEMORY, "query: out of memory");
		else if (!flt)
			rc = err ? err->code : RVF_E_INVALID_ARGUMENT;
		else
			rc = rvf_view_search(v, qs[i].vec, 1, k, &so, h, &n, err);
		if (!rc)
			put_hits(f, h, n);
		rvf_filter_free(flt);
		so.filter = NULL;
		free(h);
	}
	free(batch);
	free(hits);
	free(counts);
	return rc;
}

rvf_code rvf_request_run(const rvf_view *v, const char *req, size_t len,
			 const rvf_request_options *opt, char **out,
			 size_t *out_len, rvf_error *err)
{
	rvf_error local;
	if (!err)
		err = &local;
	*out = NULL;
	*out_len = 0;
	size_t default_k = opt && opt->default_k ? opt->default_k : 10;
	rvf_search_options so = { 0 };
	if (opt)
		so = opt->search;
	if (rvf_view_info(v)->dimension == 0) {
		*out = strdup("error: the store has dimension 0: it holds no vectors to query\n");
		*out_len = *out ? strlen(*out) : 0;
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"the store has dimension 0: it holds no vectors to query");
	}
	char *text = malloc(len + 1);
	if (!text)
		return rvf_fail(err, RVF_E_NO_MEMORY, "query: out of memory");
	memcpy(text, req, len);
	text[len] = '\0';
	if (memchr(req, '\0', len)) { /* not text: stop at the NUL, say so */
		free(text);
		*out = strdup("error: line 1: the request contains a NUL byte\n");
		*out_len = *out ? strlen(*out) : 0;
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"the request contains a NUL byte");
	}
	parsed *qs = NULL;
	size_t nq = 0, lineno = 0;
	char *msg = NULL;
	int prc = parse_all(v, text, default_k, &qs, &nq, &lineno, &msg);
	if (!prc && opt && opt->budget) {
		/* The hits the batch may produce, k capped by the vectors. */
		uint64_t visible = rvf_view_info(v)->visible, kmax = 0, hits = 0;
		size_t nplain = 0;
		for (size_t i = 0; i < nq; i++) {
			uint64_t k = qs[i].k < visible ? qs[i].k : visible;
			if (qs[i].filter)
				hits += k;
			else if (nplain++, k > kmax)
				kmax = k;
		}
		if (opt->budget(opt->budget_ctx, hits + kmax * nplain, &msg))
			prc = -E2BIG;
	}

	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	rvf_code rc = RVF_OK;
	if (!f) {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "query: out of memory");
	} else if (prc == -E2BIG) { /* the whole batch's */
		rc = rvf_fail(err, RVF_E_TOO_LARGE, "%s", msg ? msg : "too many results");
		fprintf(f, "error: %s\n", err->message);
	} else if (prc == -EINVAL) {
		rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT, "line %zu: %s", lineno,
			      msg ? msg : "bad query");
		fprintf(f, "error: %s\n", err->message);
	} else if (prc) {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "query: out of memory");
		fprintf(f, "error: %s\n", err->message);
	} else {
		rc = search_all(v, qs, nq, &so, f, err);
		if (rc) {
			fclose(f);
			free(buf);
			buf = NULL;
			f = open_memstream(&buf, &sz);
			if (f)
				fprintf(f, "error: %s\n", err->message);
		}
	}
	if (f)
		fclose(f);
	for (size_t i = 0; i < nq; i++) {
		free(qs[i].vec);
		free(qs[i].filter);
	}
	free(qs);
	free(msg);
	free(text);
	*out = buf;
	*out_len = buf ? strlen(buf) : 0;
	return rc;
}
