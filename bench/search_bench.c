/* search_bench.c - exact search throughput through the public API.
 *
 * Creates a temporary store of N x D seeded uniform[-1, 1) vectors and
 * measures queries per second one query per call and as one batch, with
 * one and two threads, optionally around single-vector commits.  See
 * README-search.md.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "rvf.h"

typedef struct options {
	size_t n, dim, queries, k;
	size_t commits;     /* single-vector commits interleaved with queries */
	size_t check;       /* queries checked against the float scan */
	bool codes_only;    /* skip the float-scan and batch timings */
	uint64_t seed;
	rvf_metric metric;
	double min_seconds; /* repeat each measurement at least this long */
	bool json;
	const char *store;  /* kept here: reused when it exists */
} options;

typedef struct result {
	const char *mode;
	bool codes;
	unsigned threads;
	double qps;
	double p50_ms;      /* single mode: median latency */
	double cpu_ms;      /* process CPU time (user + sys) per query */
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

/* CPU time of the whole process (every thread), user + system. */
static double cpu_now(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
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
		"                    [--min-seconds T] [--commits C]\n"
		"                    [--codes-only] [--check Q] [--json]\n"
		"                    [--store PATH]\n");
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
		if (!strcmp(a, "--codes-only")) {
			o->codes_only = true;
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
		else if (!strcmp(a, "--commits"))
			ok = parse_size(v, &o->commits);
		else if (!strcmp(a, "--check"))
			ok = parse_size(v, &o->check);
		else if (!strcmp(a, "--store"))
			o->store = v;
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

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Queries per second of one mode, repeated until min_seconds pass; in
 * single mode also the median latency of the last pass. */
static int measure(rvf_view *v, const options *o, const float *q,
		   unsigned threads, bool batch, bool codes, rvf_hit *out,
		   size_t *counts, double *qps, double *p50_ms, double *cpu_ms)
{
	rvf_search_options so = { .threads = threads, .filter = NULL,
				  .accel = codes ? RVF_ACCEL_NOW : RVF_ACCEL_OFF };
	rvf_error err;
	size_t done = 0;
	double t0 = now(), c0 = cpu_now(), t, *lat = malloc(o->queries * sizeof(double));

	if (!lat)
		return 1;
	do {
		if (batch) {
			if (rvf_view_search(v, q, o->queries, o->k, &so, out,
					    counts, &err) != RVF_OK)
				goto fail;
			done += o->queries;
		} else {
			for (size_t i = 0; i < o->queries; i++) {
				double ti = now();

				if (rvf_view_search(v, q + i * o->dim, 1, o->k, &so,
						    out + i * o->k, counts + i,
						    &err) != RVF_OK)
					goto fail;
				lat[i] = now() - ti;
			}
			done += o->queries;
		}
		t = now() - t0;
	} while (t < o->min_seconds);
	*qps = (double)done / t;
	*cpu_ms = (cpu_now() - c0) * 1000 / (double)done;
	*p50_ms = 0;
	if (!batch) {
		qsort(lat, o->queries, sizeof(double), cmp_double);
		*p50_ms = lat[o->queries / 2] * 1000;
	}
	free(lat);
	return 0;
fail:
	free(lat);
	return fail("search", &err);
}

/* The first nq queries' hits agree, ids and distance bits. */
static bool same_hits(const rvf_hit *a, const size_t *ca, const rvf_hit *b,
		      const size_t *cb, size_t nq, size_t k)
{
	for (size_t i = 0; i < nq; i++) {
		if (ca[i] != cb[i])
			return false;
		for (size_t j = 0; j < ca[i]; j++) {
			const rvf_hit *x = &a[i * k + j], *y = &b[i * k + j];

			if (x->id != y->id || memcmp(&x->distance, &y->distance,
						     sizeof(float)))
				return false;
		}
	}
	return true;
}

/* Resident and anonymous memory of this process, from /proc. */
static void memory_kb(long *rss, long *anon)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];

	*rss = *anon = 0;
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		sscanf(line, "VmRSS: %ld", rss);
		sscanf(line, "RssAnon: %ld", anon);
	}
	fclose(f);
}

/* Rows in pieces of this many, so a 10M store never sits whole in the
 * heap: the same values as one piece. */
#define INGEST_PIECE ((size_t)1 << 16)

static int fill(rvf_store *s, const options *o, uint64_t *seed, double *secs)
{
	float *data = malloc(INGEST_PIECE * o->dim * sizeof(float));
	uint64_t *ids = malloc(INGEST_PIECE * sizeof(uint64_t));
	rvf_commit_info ci;
	rvf_error err;
	int rc = 0;

	*secs = 0;
	if (!data || !ids) {
		fprintf(stderr, "search_bench: out of memory\n");
		rc = 1;
	}
	for (size_t r0 = 0; !rc && r0 < o->n; r0 += INGEST_PIECE) {
		size_t m = o->n - r0 < INGEST_PIECE ? o->n - r0 : INGEST_PIECE;
		double t0;

		for (size_t i = 0; i < m * o->dim; i++)
			data[i] = uniform(seed);
		for (size_t i = 0; i < m; i++)
			ids[i] = r0 + i;
		t0 = now();
		if (rvf_store_ingest(s, m, ids, data, NULL, NULL, &ci, &err) !=
		    RVF_OK)
			rc = fail("ingest", &err);
		*secs += now() - t0;
	}
	free(data);
	free(ids);
	return rc;
}

/* Commits of one new vector each, every one followed by one query (codes
 * as a mount uses them: carried over, never waited for), against as many
 * queries on the store before the commits. */
typedef struct commit_result {
	double qps_before, qps_after, commit_ms;
	const char *state;
} commit_result;

static int commits(rvf_store *s, rvf_view **vp, const options *o,
		   const float *q, uint64_t *seed, rvf_hit *out, size_t *counts,
		   commit_result *cr)
{
	rvf_search_options so = { .accel = RVF_ACCEL_AUTO };
	float *row = malloc(o->dim * sizeof(float));
	double t_q = 0, t_c = 0, t0;
	rvf_commit_info ci;
	rvf_error err;

	if (!row)
		return 1;
	/* before: the same number of single queries on the unchanged view */
	t0 = now();
	for (size_t i = 0; i < o->commits; i++) {
		size_t qi = i % o->queries;

		if (rvf_view_search(*vp, q + qi * o->dim, 1, o->k, &so, out,
				    counts, &err) != RVF_OK)
			goto fail;
	}
	cr->qps_before = (double)o->commits / (now() - t0);
	for (size_t i = 0; i < o->commits; i++) {
		size_t qi = i % o->queries;
		uint64_t id = o->n + i;

		for (size_t d = 0; d < o->dim; d++)
			row[d] = uniform(seed);
		t0 = now();
		if (rvf_store_ingest(s, 1, &id, row, NULL, NULL, &ci, &err) !=
		    RVF_OK) {
			free(row);
			return fail("commit", &err);
		}
		t_c += now() - t0;
		rvf_view_release(*vp);
		*vp = rvf_store_view(s);
		t0 = now();
		if (rvf_view_search(*vp, q + qi * o->dim, 1, o->k, &so, out,
				    counts, &err) != RVF_OK)
			goto fail;
		t_q += now() - t0;
	}
	cr->qps_after = (double)o->commits / t_q;
	cr->commit_ms = t_c / (double)o->commits * 1000;
	cr->state = rvf_view_accel_state(*vp, NULL);
	free(row);
	return 0;
fail:
	free(row);
	return fail("search", &err);
}

static int run(const options *o, const char *path)
{
	rvf_create_options co = { .dimension = (uint32_t)o->dim,
				  .metric = o->metric, .profile = 0 };
	rvf_search_options exact = { .threads = 0, .accel = RVF_ACCEL_OFF },
			   with_codes = { .accel = RVF_ACCEL_AUTO };
	rvf_store *s = NULL;
	rvf_view *v = NULL;
	rvf_error err;
	float *q = NULL;
	rvf_hit *out = NULL, *ref = NULL;
	size_t *counts = NULL, *ref_counts = NULL;
	size_t nchk = o->check && o->check < o->queries ? o->check : o->queries;
	uint64_t seed = o->seed, codes_bytes = 0;
	double t0, ingest_s, build_s = 0, ref_s;
	const char *accel_state = "";
	char state_buf[160];
	result res[8];
	commit_result cr = { 0 };
	long rss = 0, anon = 0;
	int nres = 0, rc = 1;

	q = malloc(o->queries * o->dim * sizeof(float));
	out = malloc(o->queries * (o->k + 1) * sizeof(rvf_hit));
	ref = malloc(o->queries * (o->k + 1) * sizeof(rvf_hit));
	counts = malloc(o->queries * sizeof(size_t));
	ref_counts = malloc(o->queries * sizeof(size_t));
	if (!q || !out || !ref || !counts || !ref_counts) {
		fprintf(stderr, "search_bench: out of memory\n");
		goto out;
	}
	if (o->store && access(path, F_OK) == 0) {
		/* made by an earlier run with these options: the queries
		 * follow the rows in the seed's sequence (one step a value) */
		ingest_s = 0;
		seed += (uint64_t)o->n * o->dim * 0x9e3779b97f4a7c15ull;
		if (rvf_store_open(path, 0, &s, &err) != RVF_OK) {
			fail("open", &err);
			goto out;
		}
	} else {
		if (rvf_store_create(path, &co, &s, &err) != RVF_OK) {
			fail("create", &err);
			goto out;
		}
		if (fill(s, o, &seed, &ingest_s))
			goto out;
	}
	for (size_t i = 0; i < o->queries * o->dim; i++)
		q[i] = uniform(&seed);
	v = rvf_store_view(s);
	if (rvf_view_info(v)->visible != o->n ||
	    rvf_view_info(v)->dimension != o->dim ||
	    rvf_view_info(v)->metric != o->metric) {
		fprintf(stderr, "search_bench: %s was not made with these "
			"--n/--dim/--metric\n", path);
		goto out;
	}

	/* the answers every mode must give: the float scan, one pass */
	t0 = now();
	if (rvf_view_search(v, q, nchk, o->k, &exact, ref, ref_counts, &err) !=
	    RVF_OK) {
		fail("search", &err);
		goto out;
	}
	ref_s = now() - t0;

	/* codes off (the float scan), then on (built before timing) */
	for (int codes = 0; codes < 2; codes++)
	for (int batch = 0; batch < 2; batch++)
		for (unsigned th = 1; th <= 2; th++) {
			result *r;

			if (o->codes_only && (!codes || batch))
				continue;
			r = &res[nres++];
			r->mode = batch ? "batch" : "single";
			r->codes = codes;
			r->threads = th;
			if (codes && !build_s) { /* build outside the timing */
				rvf_search_options so = { .accel = RVF_ACCEL_NOW };

				t0 = now();
				if (rvf_view_search(v, q, 1, o->k, &so, out, counts,
						    &err) != RVF_OK)
					goto out;
				build_s = now() - t0;
				snprintf(state_buf, sizeof(state_buf), "%s",
					 rvf_view_accel_state(v, &codes_bytes));
				accel_state = state_buf;
				memory_kb(&rss, &anon);
			}
			if (measure(v, o, q, th, batch, codes, out, counts,
				    &r->qps, &r->p50_ms, &r->cpu_ms))
				goto out;
			if (!same_hits(ref, ref_counts, out, counts, nchk, o->k)) {
				fprintf(stderr, "search_bench: %s codes=%d threads=%u "
					"disagrees with the float scan\n",
					r->mode, codes, th);
				goto out;
			}
		}
	if (o->commits) {
		if (commits(s, &v, o, q, &seed, out, counts, &cr))
			goto out;
		/* the last view's answers: codes (carried over) = float scan */
		if (rvf_view_search(v, q, nchk, o->k, &exact, ref, ref_counts,
				    &err) != RVF_OK ||
		    rvf_view_search(v, q, nchk, o->k, &with_codes, out, counts,
				    &err) != RVF_OK) {
			fail("search", &err);
			goto out;
		}
		if (!same_hits(ref, ref_counts, out, counts, nchk, o->k)) {
			fprintf(stderr, "search_bench: after the commits the codes "
				"disagree with the float scan\n");
			goto out;
		}
	}

	if (o->json) {
		printf("{\"n\":%zu,\"dim\":%zu,\"queries\":%zu,\"k\":%zu,"
		       "\"seed\":%llu,\"metric\":\"%s\",\"ingest_seconds\":%.3f,"
		       "\"codes_build_seconds\":%.3f,\"codes\":\"%s\","
		       "\"codes_bytes\":%llu,\"rss_kb\":%ld,\"anon_kb\":%ld,"
		       "\"checked_queries\":%zu,\"float_scan_batch_seconds\":%.3f,",
		       o->n, o->dim, o->queries, o->k,
		       (unsigned long long)o->seed, rvf_metric_name(o->metric),
		       ingest_s, build_s, accel_state,
		       (unsigned long long)codes_bytes, rss, anon, nchk, ref_s);
		if (o->commits)
			printf("\"commits\":{\"n\":%zu,\"qps_before\":%.1f,"
			       "\"qps_after\":%.1f,\"commit_ms\":%.3f,"
			       "\"codes\":\"%s\"},", o->commits, cr.qps_before,
			       cr.qps_after, cr.commit_ms, cr.state);
		printf("\"results\":[");
		for (int i = 0; i < nres; i++)
			printf("%s{\"mode\":\"%s\",\"codes\":%s,\"threads\":%u,"
			       "\"qps\":%.1f,\"p50_ms\":%.3f,\"cpu_ms\":%.3f}",
			       i ? "," : "", res[i].mode,
			       res[i].codes ? "true" : "false", res[i].threads,
			       res[i].qps, res[i].p50_ms, res[i].cpu_ms);
		printf("]}\n");
	} else {
		printf("search_bench: n=%zu dim=%zu metric=%s k=%zu queries=%zu "
		       "seed=%llu (ingest %.2f s; codes %s, built in %.3f s, "
		       "%.1f MB; process RSS %.1f MB, anonymous %.1f MB)\n",
		       o->n, o->dim, rvf_metric_name(o->metric), o->k, o->queries,
		       (unsigned long long)o->seed, ingest_s, accel_state, build_s,
		       (double)codes_bytes / 1e6, rss / 1e3, anon / 1e3);
		printf("%-8s %-6s %7s %12s %10s %10s %12s\n", "mode", "codes",
		       "threads", "queries/s", "ms/query", "p50 ms", "cpu ms/query");
		for (int i = 0; i < nres; i++)
			printf("%-8s %-6s %7u %12.1f %10.3f %10.3f %12.3f\n",
			       res[i].mode, res[i].codes ? "on" : "off",
			       res[i].threads, res[i].qps, 1000.0 / res[i].qps,
			       res[i].p50_ms, res[i].cpu_ms);
		if (o->commits)
			printf("commits: %zu single-vector commits, one query after "
			       "each: %.1f q/s (before the commits %.1f q/s, ratio "
			       "%.2f); %.2f ms a commit; codes %s\n", o->commits,
			       cr.qps_after, cr.qps_before,
			       cr.qps_before / cr.qps_after, cr.commit_ms, cr.state);
		printf("answers: %zu queries identical to the float scan\n", nchk);
	}
	rc = 0;
out:
	if (v)
		rvf_view_release(v);
	if (s)
		rvf_store_close(s);
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
	if (o.store)
		return run(&o, o.store);
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
