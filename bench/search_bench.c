/* search_bench.c - exact search throughput through the public API.
 *
 * Creates a temporary store of N x D seeded uniform[-1, 1) vectors and
 * measures queries per second one query per call and as one batch, with
 * one and two threads.  See README-search.md.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rvf.h"

typedef struct options {
	size_t n, dim, queries, k;
	uint64_t seed;
	rvf_metric metric;
	double min_seconds; /* repeat each measurement at least this long */
	bool json;
} options;

typedef struct result {
	const char *mode;
	bool codes;
	unsigned threads;
	double qps;
} result;

/* splitmix64: the same vectors for the same seed on every machine. */
static uint64_t next_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static float uniform(uint64_t *s)
{
	return (float)((double)(next_u64(s) >> 40) / (double)(1u << 24) * 2.0 - 1.0);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: search_bench [--n N] [--dim D] [--queries Q] [--k K]\n"
		"                    [--seed S] [--metric l2|ip|cosine]\n"
		"                    [--min-seconds T] [--json]\n");
}

static bool parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v > SIZE_MAX)
		return false;
	*out = (size_t)v;
	return true;
}

static int parse_args(int argc, char **argv, options *o)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		size_t x;
		bool ok = true;

		if (!strcmp(a, "--json")) {
			o->json = true;
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			exit(0);
		}
		if (!v) {
			usage(stderr);
			return -1;
		}
		i++;
		if (!strcmp(a, "--n"))
			ok = parse_size(v, &o->n);
		else if (!strcmp(a, "--dim"))
			ok = parse_size(v, &o->dim) && o->dim >= 1 && o->dim <= 65535;
		else if (!strcmp(a, "--queries"))
			ok = parse_size(v, &o->queries) && o->queries >= 1;
		else if (!strcmp(a, "--k"))
			ok = parse_size(v, &o->k);
		else if (!strcmp(a, "--seed"))
			ok = parse_size(v, &x) && ((o->seed = x), true);
		else if (!strcmp(a, "--metric"))
			ok = rvf_metric_parse(v, &o->metric);
		else if (!strcmp(a, "--min-seconds"))
			ok = (o->min_seconds = atof(v)) >= 0;
		else
			ok = false;
		if (!ok) {
			fprintf(stderr, "search_bench: bad option %s %s\n", a, v);
			usage(stderr);
			return -1;
		}
	}
	return 0;
}

static int fail(const char *what, const rvf_error *err)
{
	fprintf(stderr, "search_bench: %s: %s (%s)\n", what, err->message,
		rvf_code_name(err->code));
	return 1;
}

/* Queries per second of one mode, repeated until min_seconds pass. */
static int measure(rvf_view *v, const options *o, const float *q,
		   unsigned threads, bool batch, bool codes, rvf_hit *out,
		   size_t *counts, double *qps)
{
	rvf_search_options so = { .threads = threads, .filter = NULL,
				  .accel = codes ? RVF_ACCEL_NOW : RVF_ACCEL_OFF };
	rvf_error err;
	size_t done = 0;
	double t0 = now(), t;

	do {
		if (batch) {
			if (rvf_view_search(v, q, o->queries, o->k, &so, out,
					    counts, &err) != RVF_OK)
				return fail("search", &err);
			done += o->queries;
		} else {
			for (size_t i = 0; i < o->queries; i++)
				if (rvf_view_search(v, q + i * o->dim, 1, o->k, &so,
						    out + i * o->k, counts + i,
						    &err) != RVF_OK)
					return fail("search", &err);
			done += o->queries;
		}
		t = now() - t0;
	} while (t < o->min_seconds);
	*qps = (double)done / t;
	return 0;
}

static bool same_hits(const rvf_hit *a, const size_t *ca, const rvf_hit *b,
		      const size_t *cb, const options *o)
{
	for (size_t i = 0; i < o->queries; i++) {
		if (ca[i] != cb[i])
			return false;
		for (size_t j = 0; j < ca[i]; j++) {
			const rvf_hit *x = &a[i * o->k + j], *y = &b[i * o->k + j];

			if (x->id != y->id || memcmp(&x->distance, &y->distance,
						     sizeof(float)))
				return false;
		}
	}
	return true;
}

static int run(const options *o, const char *path)
{
	rvf_create_options co = { .dimension = (uint32_t)o->dim,
				  .metric = o->metric, .profile = 0 };
	rvf_store *s = NULL;
	rvf_view *v = NULL;
	rvf_error err;
	rvf_commit_info ci;
	float *data = NULL, *q = NULL;
	rvf_hit *out = NULL, *ref = NULL;
	size_t *counts = NULL, *ref_counts = NULL;
	uint64_t seed = o->seed;
	double t0, ingest_s, build_s = 0;
	const char *accel_state = "";
	result res[8];
	int nres = 0, rc = 1;

	data = malloc(o->n * o->dim * sizeof(float) + 1);
	q = malloc(o->queries * o->dim * sizeof(float));
	out = malloc(o->queries * (o->k + 1) * sizeof(rvf_hit));
	ref = malloc(o->queries * (o->k + 1) * sizeof(rvf_hit));
	counts = malloc(o->queries * sizeof(size_t));
	ref_counts = malloc(o->queries * sizeof(size_t));
	if (!data || !q || !out || !ref || !counts || !ref_counts) {
		fprintf(stderr, "search_bench: out of memory\n");
		goto out;
	}
	for (size_t i = 0; i < o->n * o->dim; i++)
		data[i] = uniform(&seed);
	for (size_t i = 0; i < o->queries * o->dim; i++)
		q[i] = uniform(&seed);

	if (rvf_store_create(path, &co, &s, &err) != RVF_OK) {
		fail("create", &err);
		goto out;
	}
	t0 = now();
	if (rvf_store_ingest(s, o->n, NULL, data, NULL, NULL, &ci, &err) !=
	    RVF_OK) {
		fail("ingest", &err);
		goto out;
	}
	ingest_s = now() - t0;
	v = rvf_store_view(s);

	/* codes off (the float scan), then on (built before timing) */
	for (int codes = 0; codes < 2; codes++)
	for (int batch = 0; batch < 2; batch++)
		for (unsigned th = 1; th <= 2; th++) {
			result *r = &res[nres++];

			r->mode = batch ? "batch" : "single";
			r->codes = codes;
			r->threads = th;
			if (codes && nres == 5) { /* build outside the timing */
				rvf_search_options so = { .accel = RVF_ACCEL_NOW };

				t0 = now();
				if (rvf_view_search(v, q, 1, o->k, &so, out, counts,
						    &err) != RVF_OK)
					goto out;
				build_s = now() - t0;
				accel_state = rvf_view_accel_state(v, NULL);
			}
			if (measure(v, o, q, th, batch, codes,
				    nres == 1 ? ref : out,
				    nres == 1 ? ref_counts : counts, &r->qps))
				goto out;
			/* every mode must find the same neighbours */
			if (nres > 1 && !same_hits(ref, ref_counts, out, counts, o)) {
				fprintf(stderr, "search_bench: %s codes=%d threads=%u "
					"disagrees with the float scan, single, threads=1\n",
					r->mode, codes, th);
				goto out;
			}
		}

	if (o->json) {
		printf("{\"n\":%zu,\"dim\":%zu,\"queries\":%zu,\"k\":%zu,"
		       "\"seed\":%llu,\"metric\":\"%s\",\"ingest_seconds\":%.3f,"
		       "\"codes_build_seconds\":%.3f,\"codes\":\"%s\","
		       "\"results\":[", o->n, o->dim, o->queries, o->k,
		       (unsigned long long)o->seed, rvf_metric_name(o->metric),
		       ingest_s, build_s, accel_state);
		for (int i = 0; i < nres; i++)
			printf("%s{\"mode\":\"%s\",\"codes\":%s,\"threads\":%u,"
			       "\"qps\":%.1f}", i ? "," : "", res[i].mode,
			       res[i].codes ? "true" : "false", res[i].threads,
			       res[i].qps);
		printf("]}\n");
	} else {
		printf("search_bench: n=%zu dim=%zu metric=%s k=%zu queries=%zu "
		       "seed=%llu (ingest %.2f s; codes %s, built in %.3f s)\n",
		       o->n, o->dim, rvf_metric_name(o->metric), o->k, o->queries,
		       (unsigned long long)o->seed, ingest_s, accel_state, build_s);
		printf("%-8s %-6s %7s %12s %10s\n", "mode", "codes", "threads",
		       "queries/s", "ms/query");
		for (int i = 0; i < nres; i++)
			printf("%-8s %-6s %7u %12.1f %10.3f\n", res[i].mode,
			       res[i].codes ? "on" : "off", res[i].threads,
			       res[i].qps, 1000.0 / res[i].qps);
	}
	rc = 0;
out:
	if (v)
		rvf_view_release(v);
	if (s)
		rvf_store_close(s);
	free(data);
	free(q);
	free(out);
	free(ref);
	free(counts);
	free(ref_counts);
	return rc;
}

int main(int argc, char **argv)
{
	options o = { .n = 100000, .dim = 128, .queries = 200, .k = 10,
		      .seed = 1, .metric = RVF_METRIC_L2, .min_seconds = 1.0 };
	const char *tmp = getenv("TMPDIR");
	char dir[4096], path[4200], lock[4300];
	int rc;

	if (parse_args(argc, argv, &o))
		return 2;
	snprintf(dir, sizeof(dir), "%s/rvf-search-bench-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "search_bench: mkdtemp %s: %s\n", dir,
			strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/bench.rvf", dir);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	rc = run(&o, path);
	unlink(path);
	unlink(lock); /* normally gone with the close */
	if (rmdir(dir))
		fprintf(stderr, "search_bench: leaving %s: %s\n", dir,
			strerror(errno));
	return rc;
}
