/* test_search.c - search_exact and the distance kernels against a naive
 * double-precision brute force.
 *
 * The whole suite runs once per kernel set: in forked children with
 * RVF_NO_SIMD=1 (scalar) and RVF_NO_AVX512=1 (AVX2), then in the parent
 * with the best the CPU offers.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "distance.h"
#include "search.h"

#define RNG_SEED 88172645463325252ull
#include "check_random.h"

static const rvf_metric metrics[] = { RVF_METRIC_L2, RVF_METRIC_INNER_PRODUCT,
				      RVF_METRIC_COSINE };
static const size_t dims[] = { 1, 3, 7, 8, 16, 128, 129 };
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Rows stored like a VEC payload: an 8-byte id before each row and a base
 * at an odd offset, so no row is 4-byte aligned. */
typedef struct dataset {
	size_t n, dim;
	unsigned char *buf;
	search_row *rows;
	float *vals;  /* n * dim, row order, for the brute force */
} dataset;

static void put_row(dataset *ds, size_t i, const float *v)
{
	unsigned char *p = (unsigned char *)ds->rows[i].data;

	memcpy(p, v, ds->dim * sizeof(float));
	memcpy(ds->vals + i * ds->dim, v, ds->dim * sizeof(float));
}

static void dataset_init(dataset *ds, size_t n, size_t dim, bool random_ids)
{
	size_t stride = 8 + 4 * dim;

	ds->n = n;
	ds->dim = dim;
	ds->buf = malloc(7 + n * stride + 1);
	ds->rows = malloc((n + 1) * sizeof(*ds->rows));
	ds->vals = malloc((n * dim + 1) * sizeof(float));
	for (size_t i = 0; i < n; i++) {
		float v[200];

		ds->rows[i].data = ds->buf + 7 + i * stride + 8;
		/* distinct ids in no particular order */
		ds->rows[i].id = random_ids ? (i * 2654435761u) % 1000003u : i;
		for (size_t d = 0; d < dim; d++)
			v[d] = uniform();
		put_row(ds, i, v);
	}
}

static void dataset_free(dataset *ds)
{
	free(ds->buf);
	free(ds->rows);
	free(ds->vals);
}

/* The reference's distances, in double; *scale bounds the magnitude of
 * the terms so a tolerance can be relative to it. */
static double ref_distance(rvf_metric m, const float *q, const float *x,
			   size_t dim, double *scale)
{
	double l2 = 0, dot = 0, qq = 0, xx = 0, adot = 0;

	for (size_t d = 0; d < dim; d++) {
		double a = q[d], b = x[d];

		l2 += (a - b) * (a - b);
		dot += a * b;
		adot += fabs(a * b);
		qq += a * a;
		xx += b * b;
	}
	switch (m) {
	case RVF_METRIC_INNER_PRODUCT:
		*scale = adot;
		return -dot;
	case RVF_METRIC_COSINE: {
		double den = sqrt(qq * xx);

		if (den < FLT_EPSILON) {
			*scale = 0;
			return 1.0;
		}
		*scale = adot / den + 1.0;
		return 1.0 - dot / den;
	}
	default:
		*scale = l2;
		return l2;
	}
}

static bool before(const rvf_hit *a, const rvf_hit *b)
{
	bool an = isnan(a->distance), bn = isnan(b->distance);

	if (an != bn)
		return bn;
	if (!an && a->distance != b->distance)
		return a->distance < b->distance;
	return a->id < b->id;
}

typedef struct ref_hit {
	uint64_t id;
	double d;
} ref_hit;

static int ref_cmp(const void *pa, const void *pb)
{
	const ref_hit *a = pa, *b = pb;

	if (a->d != b->d)
		return a->d < b->d ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

typedef struct filter_ctx {
	atomic_ulong calls;
	pthread_mutex_t lock;
	pthread_t seen[16];
	int nseen;
	uint64_t modulo;   /* accept ids with id % modulo == 0; 0 = all */
} filter_ctx;

static bool accept_row(void *ctx, const search_row *row)
{
	filter_ctx *f = ctx;
	pthread_t self = pthread_self();
	bool known = false;

	atomic_fetch_add(&f->calls, 1);
	pthread_mutex_lock(&f->lock);
	for (int i = 0; i < f->nseen; i++)
		known |= pthread_equal(f->seen[i], self);
	if (!known && f->nseen < 16)
		f->seen[f->nseen++] = self;
	pthread_mutex_unlock(&f->lock);
	return !f->modulo || row->id % f->modulo == 0;
}

static void filter_init(filter_ctx *f, uint64_t modulo)
{
	atomic_init(&f->calls, 0);
	pthread_mutex_init(&f->lock, NULL);
	f->nseen = 0;
	f->modulo = modulo;
}

static rvf_code run(const dataset *ds, rvf_metric m, const float *q,
		    size_t nq, size_t k, unsigned threads, filter_ctx *f,
		    rvf_hit *out, size_t *counts)
{
	search_request req = {
		.metric = m, .dim = ds->dim, .queries = q, .nq = nq, .k = k,
		.rows = ds->rows, .nrows = ds->n,
		.accept = f ? accept_row : NULL, .accept_ctx = f,
		.threads = threads,
	};
	rvf_error err = { 0 };
	rvf_code rc = search_exact(&req, out, counts, &err);

	CHECK(rc == RVF_OK, "search_exact: %s", err.message);
	return rc;
}

/* Hits of one query against the brute force: the right count, sorted,
 * distinct ids, each distance right for its id, and the same k-th
 * distances (near-ties may swap ids between float and double). */
static void verify(const dataset *ds, rvf_metric m, const float *q, size_t k,
		   uint64_t modulo, const rvf_hit *got, size_t count,
		   const char *what)
{
	ref_hit *ref = malloc((ds->n ? ds->n : 1) * sizeof(*ref));
	double *scale = malloc((ds->n ? ds->n : 1) * sizeof(*scale));
	size_t nref = 0, want;

	for (size_t i = 0; i < ds->n; i++) {
		if (modulo && ds->rows[i].id % modulo)
			continue;
		ref[nref].id = ds->rows[i].id;
		ref[nref].d = ref_distance(m, q, ds->vals + i * ds->dim,
					   ds->dim, &scale[nref]);
		nref++;
	}
	qsort(ref, nref, sizeof(*ref), ref_cmp);
	want = k < nref ? k : nref;
	CHECK(count == want, "%s: count %zu, want %zu", what, count, want);
	for (size_t i = 0; i < count && i < want; i++) {
		double s = 0, d = NAN;

		for (size_t j = 0; j < ds->n; j++)
			if (ds->rows[j].id == got[i].id)
				d = ref_distance(m, q, ds->vals + j * ds->dim,
						 ds->dim, &s);
		double tol = 1e-5 * s + 1e-6;
		CHECK(fabs(got[i].distance - d) <= tol,
		      "%s: hit %zu id %llu dist %.9g, brute force %.9g", what,
		      i, (unsigned long long)got[i].id, got[i].distance, d);
		CHECK(fabs(got[i].distance - ref[i].d) <= tol,
		      "%s: rank %zu dist %.9g, brute force %.9g (id %llu)",
		      what, i, got[i].distance, ref[i].d,
		      (unsigned long long)ref[i].id);
		if (i > 0)
			CHECK(before(&got[i - 1], &got[i]),
			      "%s: hits %zu,%zu out of order", what, i - 1, i);
	}
	free(ref);
	free(scale);
}

static bool same_hits(const rvf_hit *a, const rvf_hit *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].id != b[i].id ||
		    memcmp(&a[i].distance, &b[i].distance, sizeof(float)))
			return false;
	return true;
}

/* Random data, every metric and dimension; k below, at and above n. */
static void test_brute_force(void)
{
	const size_t n = 301, nq = 5;
	const size_t ks[] = { 1, 10, 301, 350 };

	for (size_t di = 0; di < NELEM(dims); di++) {
		dataset ds;
		float *q = malloc(nq * dims[di] * sizeof(float));

		dataset_init(&ds, n, dims[di], true);
		for (size_t i = 0; i < nq * dims[di]; i++)
			q[i] = uniform();
		for (size_t mi = 0; mi < NELEM(metrics); mi++)
			for (size_t ki = 0; ki < NELEM(ks); ki++) {
				size_t k = ks[ki];
				rvf_hit *out = malloc(nq * k * sizeof(*out));
				size_t counts[5];
				char what[96];
				size_t nq_ok = nq;

				if (run(&ds, metrics[mi], q, nq, k, 1, NULL, out,
					counts))
					nq_ok = 0;
				for (size_t i = 0; i < nq_ok; i++) {
					snprintf(what, sizeof(what),
						 "brute dim=%zu metric=%d k=%zu q=%zu",
						 dims[di], metrics[mi], k, i);
					verify(&ds, metrics[mi], q + i * dims[di],
					       k, 0, out + i * k, counts[i], what);
				}
				free(out);
			}
		dataset_free(&ds);
		free(q);
	}
}

/* Metric bytes the enum does not name read as L2. */
static void test_unknown_metric(void)
{
	dataset ds;
	float q[16];
	rvf_hit a[5], b[5];
	size_t ca, cb;

	dataset_init(&ds, 50, 16, true);
	for (int i = 0; i < 16; i++)
		q[i] = uniform();
	run(&ds, RVF_METRIC_L2, q, 1, 5, 1, NULL, a, &ca);
	run(&ds, (rvf_metric)7, q, 1, 5, 1, NULL, b, &cb);
	CHECK(ca == cb && same_hits(a, b, ca), "metric byte 7 is not L2");
	dataset_free(&ds);
}

static void test_k_zero_and_empty(void)
{
	dataset ds;
	float q[3] = { 1, 2, 3 };
	size_t counts[2] = { 99, 99 };
	rvf_hit out[4];

	dataset_init(&ds, 10, 3, false);
	run(&ds, RVF_METRIC_L2, q, 1, 0, 1, NULL, NULL, counts);
	CHECK(counts[0] == 0, "k=0 gave %zu hits", counts[0]);

	ds.n = 0;
	counts[0] = 99;
	run(&ds, RVF_METRIC_COSINE, q, 1, 4, 1, NULL, out, counts);
	CHECK(counts[0] == 0, "no rows gave %zu hits", counts[0]);
	dataset_free(&ds);
}

/* Identical vectors ingested as 40,10,30,20 come out as 10,20,30,40. */
static void test_ties(void)
{
	const uint64_t ids[] = { 40, 10, 30, 20 };
	float v[2] = { 0.5f, -0.25f }, q[2] = { 1, 0 };

	for (size_t mi = 0; mi < NELEM(metrics); mi++) {
		dataset ds;
		rvf_hit out[4];
		size_t count;

		dataset_init(&ds, 4, 2, false);
		for (int i = 0; i < 4; i++) {
			ds.rows[i].id = ids[i];
			put_row(&ds, (size_t)i, v);
		}
		run(&ds, metrics[mi], q, 1, 4, 1, NULL, out, &count);
		CHECK(count == 4 && out[0].id == 10 && out[1].id == 20 &&
		      out[2].id == 30 && out[3].id == 40,
		      "metric %d: ties not in id order", metrics[mi]);
		run(&ds, metrics[mi], q, 1, 2, 1, NULL, out, &count);
		CHECK(count == 2 && out[0].id == 10 && out[1].id == 20,
		      "metric %d: k=2 ties not 10,20", metrics[mi]);
		dataset_free(&ds);
	}
}

/* A NaN row ranks after every number (the reference puts it first). */
static void test_nan_last(void)
{
	float q[2] = { 1, 1 };
	const float rowsv[5][2] = {
		{ NAN, 1 }, { 1, 1 }, { 2, 2 }, { 1, NAN }, { 3, 3 },
	};
	const uint64_t ids[5] = { 1, 2, 3, 0, 4 };

	for (size_t mi = 0; mi < NELEM(metrics); mi++) {
		dataset ds;
		rvf_hit out[5];
		size_t count;

		dataset_init(&ds, 5, 2, false);
		for (int i = 0; i < 5; i++) {
			ds.rows[i].id = ids[i];
			put_row(&ds, (size_t)i, rowsv[i]);
		}
		run(&ds, metrics[mi], q, 1, 5, 1, NULL, out, &count);
		CHECK(count == 5 && isnan(out[3].distance) &&
		      isnan(out[4].distance) && out[3].id == 0 &&
		      out[4].id == 1 && !isnan(out[2].distance),
		      "metric %d: NaN rows not last in id order", metrics[mi]);
		run(&ds, metrics[mi], q, 1, 2, 1, NULL, out, &count);
		CHECK(count == 2 && !isnan(out[0].distance) &&
		      !isnan(out[1].distance),
		      "metric %d: a NaN row pushed out a neighbour", metrics[mi]);
		if (metrics[mi] == RVF_METRIC_L2)
			CHECK(out[0].id == 2 && out[1].id == 3 &&
			      out[0].distance == 0.0f,
			      "L2 NaN case: got %llu,%llu",
			      (unsigned long long)out[0].id,
			      (unsigned long long)out[1].id);
		/* a NaN query: every distance NaN, still ordered by id */
		q[0] = NAN;
		run(&ds, metrics[mi], q, 1, 5, 1, NULL, out, &count);
		CHECK(count == 5 && isnan(out[0].distance) && out[0].id == 0 &&
		      out[4].id == 4, "metric %d: NaN query order",
		      metrics[mi]);
		q[0] = 1;
		dataset_free(&ds);
	}
}

/* Cosine against a zero vector (either side) is exactly 1.0. */
static void test_cosine_zero(void)
{
	const size_t dim = 9;
	float zero[9] = { 0 }, one[9], q[9];
	dataset ds;
	rvf_hit out[2];
	size_t count;

	for (size_t d = 0; d < dim; d++) {
		one[d] = 1.0f;
		q[d] = uniform();
	}
	dataset_init(&ds, 2, dim, false);
	put_row(&ds, 0, zero);
	put_row(&ds, 1, one);
	run(&ds, RVF_METRIC_COSINE, q, 1, 2, 1, NULL, out, &count);
	CHECK(count == 2 && (out[0].id == 0 ? out[0] : out[1]).distance == 1.0f,
	      "cosine to a zero row is not 1.0");
	run(&ds, RVF_METRIC_COSINE, zero, 1, 2, 1, NULL, out, &count);
	CHECK(count == 2 && out[0].distance == 1.0f && out[1].distance == 1.0f,
	      "cosine of a zero query is not 1.0");
	CHECK(rvf_distance(RVF_METRIC_COSINE, zero, one, dim) == 1.0f,
	      "rvf_distance cosine zero");
	/* tiny but nonzero: sqrt(qq * xx) below epsilon still gives 1.0 */
	for (size_t d = 0; d < dim; d++)
		zero[d] = 1e-9f;
	CHECK(rvf_distance(RVF_METRIC_COSINE, zero, one, dim) == 1.0f,
	      "rvf_distance cosine below epsilon");
	CHECK(rvf_distance(RVF_METRIC_COSINE, one, one, dim) == 0.0f,
	      "cosine of a vector with itself");
	dataset_free(&ds);
}

/* Any thread count: the same bits.  The filter sees every row once per
 * request, from several threads. */
static void test_threads(void)
{
	const size_t n = 6007, dim = 64, nq = 24, k = 15;
	dataset ds;
	float *q = malloc(nq * dim * sizeof(float));
	rvf_hit *out[3];
	size_t counts[3][24];
	const unsigned threads[3] = { 1, 2, 4 };

	dataset_init(&ds, n, dim, true);
	for (size_t i = 0; i < nq * dim; i++)
		q[i] = uniform();
	for (size_t mi = 0; mi < NELEM(metrics); mi++) {
		for (int t = 0; t < 3; t++) {
			filter_ctx f;

			filter_init(&f, 3);
			out[t] = malloc(nq * k * sizeof(rvf_hit));
			run(&ds, metrics[mi], q, nq, k, threads[t], &f, out[t],
			    counts[t]);
			CHECK(atomic_load(&f.calls) == n,
			      "filter called %lu times for %zu rows",
			      atomic_load(&f.calls), n);
			/* tasks go to the shared pool: never more threads
			 * than asked for, and at least the caller's */
			CHECK(f.nseen >= 1 && f.nseen <= (int)threads[t],
			      "threads=%u ran on %d threads", threads[t],
			      f.nseen);
			pthread_mutex_destroy(&f.lock);
		}
		for (int t = 1; t < 3; t++)
			CHECK(!memcmp(counts[0], counts[t], sizeof(counts[0])) &&
			      same_hits(out[0], out[t], nq * k),
			      "metric %d: threads=%u differs from threads=1",
			      metrics[mi], threads[t]);
		for (size_t i = 0; i < nq; i += 7)
			verify(&ds, metrics[mi], q + i * dim, k, 3,
			       out[2] + i * k, counts[2][i], "threads=4 filtered");
		for (int t = 0; t < 3; t++)
			free(out[t]);
	}
	/* threads=0: one per CPU, same answer */
	{
		rvf_hit *a = malloc(nq * k * sizeof(rvf_hit));
		rvf_hit *b = malloc(nq * k * sizeof(rvf_hit));
		size_t ca[24], cb[24];

		run(&ds, RVF_METRIC_L2, q, nq, k, 1, NULL, a, ca);
		run(&ds, RVF_METRIC_L2, q, nq, k, 0, NULL, b, cb);
		CHECK(!memcmp(ca, cb, sizeof(ca)) && same_hits(a, b, nq * k),
		      "threads=0 differs");
		free(a);
		free(b);
	}
	dataset_free(&ds);
	free(q);
}

/* A batch equals its queries one at a time, bit for bit, and the
 * distances equal rvf_distance(). */
static void test_batch(void)
{
	const size_t n = 517, nq = 37, k = 9;

	for (size_t di = 0; di < NELEM(dims); di++) {
		size_t dim = dims[di];
		dataset ds;
		float *q = malloc(nq * dim * sizeof(float));
		rvf_hit *batch = malloc(nq * k * sizeof(rvf_hit));
		rvf_hit one[9];
		size_t counts[37], c1;

		dataset_init(&ds, n, dim, true);
		for (size_t i = 0; i < nq * dim; i++)
			q[i] = uniform();
		for (size_t mi = 0; mi < NELEM(metrics); mi++) {
			filter_ctx f;

			filter_init(&f, 2);
			run(&ds, metrics[mi], q, nq, k, 1, &f, batch, counts);
			CHECK(atomic_load(&f.calls) == n,
			      "batch of %zu: filter called %lu times for %zu rows",
			      nq, atomic_load(&f.calls), n);
			pthread_mutex_destroy(&f.lock);
			for (size_t i = 0; i < nq; i++) {
				filter_init(&f, 2);
				run(&ds, metrics[mi], q + i * dim, 1, k, 1, &f,
				    one, &c1);
				pthread_mutex_destroy(&f.lock);
				CHECK(c1 == counts[i] &&
				      same_hits(one, batch + i * k, c1),
				      "dim %zu metric %d: batch query %zu differs",
				      dim, metrics[mi], i);
				for (size_t j = 0; j < c1; j++) {
					float x[200], d;
					size_t r = 0;

					while (ds.rows[r].id != one[j].id)
						r++;
					memcpy(x, ds.rows[r].data, dim * sizeof(float));
					d = rvf_distance(metrics[mi], q + i * dim, x, dim);
					CHECK(!memcmp(&d, &one[j].distance, sizeof(d)),
					      "dim %zu metric %d: rvf_distance %.9g, search %.9g",
					      dim, metrics[mi], d, one[j].distance);
				}
			}
			if (dim == 129)
				for (size_t i = 0; i < nq; i += 5)
					verify(&ds, metrics[mi], q + i * dim, k, 2,
					       batch + i * k, counts[i], "batch filtered");
		}
		dataset_free(&ds);
		free(q);
		free(batch);
	}
}

/* The scalar and AVX2 kernels agree to 1e-5 of the terms' magnitude;
 * AVX-512 gives the AVX2 bits exactly. */
static void test_kernels_agree(void)
{
	const dist_ops *sc = dist_ops_scalar(), *vx = dist_ops_avx2();
	const dist_ops *v5 = dist_ops_avx512();
	const size_t n = 45, nqs[] = { 1, 2, 3, 4, 5, 7, 9 };

	if (!vx) {
		fprintf(stderr, "test_search: no AVX2 here, kernel comparison skipped\n");
		return;
	}
	for (size_t di = 0; di < NELEM(dims); di++) {
		size_t dim = dims[di], nq = nqs[di];
		dataset ds;
		float *q = malloc(9 * dim * sizeof(float));
		float a[9 * 45], b[9 * 45], c[9 * 45], qq[9], xa[45], xb[45];
		const unsigned char *px[45];

		dataset_init(&ds, n, dim, false);
		for (size_t i = 0; i < nq * dim; i++)
			q[i] = uniform() * 3.0f;
		for (size_t r = 0; r < n; r++)
			px[r] = ds.rows[r].data;
		sc->norms(px, n, dim, xa);
		vx->norms(px, n, dim, xb);
		for (size_t r = 0; r < n; r++)
			CHECK(fabsf(xa[r] - xb[r]) <= 1e-5f * xa[r],
			      "dim %zu norm %zu: %.9g vs %.9g", dim, r, xa[r], xb[r]);
		for (size_t i = 0; i < nq; i++) {
			const unsigned char *p = (const unsigned char *)(q + i * dim);

			vx->norms(&p, 1, dim, &qq[i]);
		}
		/* the fused single-query pass equals dot + norms, bit for bit */
		for (int k = 0; k < 3; k++) {
			const dist_ops *ops = k == 0 ? sc : k == 1 ? vx : v5;
			float dots[45], xs[45];

			if (!ops)
				continue;
			ops->dot_norms(q, dim, px, n, dots, xs);
			ops->dot(q, 1, dim, px, n, a);
			ops->norms(px, n, dim, xa);
			CHECK(!memcmp(dots, a, n * sizeof(float)) &&
			      !memcmp(xs, xa, n * sizeof(float)),
			      "%s dim %zu: dot_norms differs from dot, norms",
			      ops->name, dim);
		}
		for (size_t mi = 0; mi < NELEM(metrics); mi++) {
			dist_block(sc, metrics[mi], q, qq, nq, dim, px, xb, n, a);
			dist_block(vx, metrics[mi], q, qq, nq, dim, px, xb, n, b);
			for (size_t i = 0; i < nq; i++)
				for (size_t r = 0; r < n; r++) {
					double s;

					ref_distance(metrics[mi], q + i * dim,
						     ds.vals + r * dim, dim, &s);
					CHECK(fabs((double)a[i * n + r] - b[i * n + r]) <=
					      1e-5 * s + 1e-7,
					      "dim %zu metric %d: scalar %.9g avx2 %.9g",
					      dim, metrics[mi], a[i * n + r], b[i * n + r]);
				}
			if (!v5)
				continue;
			/* every block shape, so leftovers meet the wide tiles */
			for (size_t m = 1; m <= n; m += 3) {
				dist_block(v5, metrics[mi], q, qq, nq, dim, px, xb,
					   m, c);
				dist_block(vx, metrics[mi], q, qq, nq, dim, px, xb,
					   m, b);
				CHECK(!memcmp(b, c, nq * m * sizeof(float)),
				      "dim %zu metric %d nq %zu n %zu: avx512 differs from avx2",
				      dim, metrics[mi], nq, m);
			}
		}
		dataset_free(&ds);
		free(q);
	}
	if (!v5)
		fprintf(stderr, "test_search: no AVX-512 here, not compared\n");
}

static int suite(void)
{
	test_brute_force();
	test_unknown_metric();
	test_k_zero_and_empty();
	test_ties();
	test_nan_last();
	test_cosine_zero();
	test_threads();
	test_batch();
	test_kernels_agree();
	printf("test_search [%s]: %d checks, %d failed\n",
	       dist_ops_get()->name, checks, failures);
	fflush(stdout);
	return failures ? 1 : 0;
}

/* Runs the suite in a child with one kernel choice forced by env. */
static bool run_child(const char *env)
{
	int status = 0;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		setenv(env, "1", 1);
		_exit(suite());
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		fprintf(stderr, "test_search: cannot fork the %s run\n", env);
		return false;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "test_search: the %s run failed\n", env);
		return false;
	}
	return true;
}

static bool env_set(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

int main(void)
{
	bool ok = true;

	/* a kernel set forced from outside: run just that */
	if (env_set("RVF_NO_SIMD") || env_set("RVF_NO_AVX512"))
		return suite();
	/* each kernel set in a child that picks its kernels afresh */
	ok &= run_child("RVF_NO_SIMD");
	if (dist_ops_avx512())
		ok &= run_child("RVF_NO_AVX512");
	return suite() || !ok;
}
