/* query.c - the query file's language.
 *
 * One query per line: plain text (optional k=N and ef=N tokens, then
 * exactly `dimension` numbers, space or comma separated, brackets allowed)
 * or a JSON object {"vector":[...], "k":N, "filter":{...}}.  Results: per
 * query one "ID DISTANCE" line per hit, groups separated by an empty line.
 * Search is exact, so ef is accepted and has no effect. */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rvffs.h"

#define MAX_K (1u << 20)

typedef struct parsed {
	float *vec;
	size_t k;
	char *filter; /* JSON text or NULL */
} parsed;

static bool is_sep(char c)
{
	return c == ' ' || c == '\t' || c == ',' || c == '[' || c == ']' ||
	       c == '\r';
}

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

static int parse_k(const char *s, size_t len, size_t *k, char **msg)
{
	char buf[32];
	if (len == 0 || len >= sizeof(buf))
		return fail(msg, "k must be a positive integer");
	memcpy(buf, s, len);
	buf[len] = '\0';
	char *end;
	errno = 0;
	long long v = strtoll(buf, &end, 10);
	if (*end || errno || v <= 0 || v > MAX_K)
		return fail(msg, "k must be a positive integer up to %u, not \"%s\"",
			    MAX_K, buf);
	*k = (size_t)v;
	return 0;
}

static int parse_text(const char *line, uint32_t dim, size_t default_k,
		      parsed *q, char **msg)
{
	q->k = default_k;
	q->vec = malloc(4 * (size_t)dim);
	if (!q->vec)
		return -ENOMEM;
	size_t n = 0;
	const char *p = line;
	for (;;) {
		while (*p && is_sep(*p))
			p++;
		if (!*p)
			break;
		size_t len = 0;
		while (p[len] && !is_sep(p[len]))
			len++;
		if (len > 2 && (!strncmp(p, "k=", 2) || !strncmp(p, "ef=", 3))) {
			if (n)
				return fail(msg, "%.*s must come before the numbers",
					    (int)len, p);
			if (p[0] == 'k') {
				int rc = parse_k(p + 2, len - 2, &q->k, msg);
				if (rc)
					return rc;
			} /* ef: exact search needs none */
			p += len;
			continue;
		}
		char tok[64];
		if (len >= sizeof(tok))
			return fail(msg, "\"%.20s...\" is not a number", p);
		memcpy(tok, p, len);
		tok[len] = '\0';
		char *end;
		float x = strtof(tok, &end);
		if (*end || end == tok || !isfinite(x))
			return fail(msg, "\"%s\" is not a finite number", tok);
		if (n == dim)
			return fail(msg, "expected %u numbers, found more", dim);
		q->vec[n++] = x;
		p += len;
	}
	if (n != dim)
		return fail(msg, "expected %u numbers, found %zu", dim, n);
	return 0;
}

static int parse_json(const char *line, uint32_t dim, size_t default_k,
		      parsed *q, char **msg)
{
	json_error_t je;
	json_t *o = json_loads(line, 0, &je);
	int rc = 0;
	if (!o || !json_is_object(o)) {
		rc = fail(msg, "bad JSON: %s", o ? "not an object" : je.text);
		goto out;
	}
	json_t *vec = json_object_get(o, "vector"), *k = json_object_get(o, "k");
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
		if (!json_is_number(x) || !isfinite(json_number_value(x))) {
			rc = fail(msg, "vector[%u] is not a finite number", d);
			goto out;
		}
		q->vec[d] = (float)json_number_value(x);
	}
	q->k = default_k;
	if (k) {
		if (!json_is_integer(k) || json_integer_value(k) <= 0 ||
		    json_integer_value(k) > MAX_K) {
			rc = fail(msg, "k must be a positive integer up to %u", MAX_K);
			goto out;
		}
		q->k = (size_t)json_integer_value(k);
	}
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

/* The hits a batch may produce (k capped by the vectors there are),
 * against results_max: 0 or -E2BIG with the reason in *msg. */
static int results_budget(rvffs *fs, rvf_view *v, const parsed *qs, size_t nq,
			  char **msg)
{
	uint64_t visible = rvf_view_info(v)->visible, kmax = 0, hits = 0;
	size_t nplain = 0;
	for (size_t i = 0; i < nq; i++) {
		uint64_t k = qs[i].k < visible ? qs[i].k : visible;
		if (qs[i].filter)
			hits += k;
		else if (nplain++, k > kmax)
			kmax = k;
	}
	return limits_results(fs, hits + kmax * nplain, msg);
}

int query_run(rvffs *fs, rvf_view *v, const char *req, size_t len,
	      char **out, size_t *out_len)
{
	uint32_t dim = rvf_view_info(v)->dimension;
	char *text = strndup(req, len);
	parsed *qs = NULL;
	size_t nq = 0, cap = 0, lineno = 0;
	char *msg = NULL;
	int rc = 0;
	if (!text)
		return -ENOMEM;
	if (dim == 0) {
		free(text);
		const char *m = "error: the store has dimension 0: it holds no vectors to query\n";
		*out = strdup(m);
		*out_len = strlen(m);
		return *out ? -EINVAL : -ENOMEM;
	}
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		lineno++;
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
		rc = *p == '{' ? parse_json(p, dim, fs->default_k, &qs[nq], &msg) :
		     parse_text(p, dim, fs->default_k, &qs[nq], &msg);
		nq++;
		if (rc)
			break;
	}
	if (!rc && nq == 0)
		rc = fail(&msg, "empty request: expected %u numbers per line", dim);
	if (!rc)
		rc = results_budget(fs, v, qs, nq, &msg);

	char *buf = NULL;
	size_t sz = 0;
	FILE *f = open_memstream(&buf, &sz);
	if (rc) {
		if (msg && rc == -E2BIG)
			fprintf(f, "error: %s\n", msg); /* the whole batch's */
		else if (msg)
			fprintf(f, "error: line %zu: %s\n", lineno, msg);
		else
			fprintf(f, "error: %s\n", strerror(-rc));
	} else {
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
		rvf_error err;
		rvf_search_options so = { .threads = fs->search_threads,
					  .accel = fs->codes,
					  .accel_max_bytes = fs->codes_max_bytes };
		if (!batch || !hits || !counts) {
			rc = -ENOMEM;
		} else if (nplain) {
			size_t j = 0;
			for (size_t i = 0; i < nq; i++)
				if (!qs[i].filter)
					memcpy(batch + (j++) * dim, qs[i].vec, 4 * (size_t)dim);
			if (rvf_view_search(v, batch, nplain, kmax, &so, hits, counts,
					    &err) != RVF_OK)
				rc = -fs_rvf_errno(fs, "query", &err);
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
			rvf_filter *flt = rvf_filter_parse(qs[i].filter, &err);
			so.filter = flt;
			if (!h || !flt ||
			    rvf_view_search(v, qs[i].vec, 1, k, &so, h, &n, &err) != RVF_OK)
				rc = -EIO;
			else
				put_hits(f, h, n);
			rvf_filter_free(flt);
			free(h);
		}
		if (rc) {
			fclose(f);
			free(buf);
			buf = NULL;
			f = open_memstream(&buf, &sz);
			fprintf(f, "error: %s\n", strerror(-rc));
		}
		free(batch);
		free(hits);
		free(counts);
	}
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
