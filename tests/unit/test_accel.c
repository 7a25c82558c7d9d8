/* test_accel.c - the 8-bit code search gives search_exact's answer, bit for
 * bit, on data chosen to stress its bounds; the code kernels agree. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accel.h"
#include "codes.h"
#include "search.h"

#define RNG_SEED 0x9e3779b97f4a7c15ull
#include "check_random.h"

/* Rows as in a VEC payload: an id before each, none 4-byte aligned. */
typedef struct dataset {
	size_t n, dim;
	unsigned char *bytes;
	search_row *rows;
} dataset;

static void set(dataset *ds, size_t r, size_t d, float v)
{
	memcpy((unsigned char *)ds->rows[r].data + 4 * d, &v, 4);
}

static void ds_init(dataset *ds, size_t n, size_t dim)
{
	size_t stride = 8 + 4 * dim;

	ds->n = n;
	ds->dim = dim;
	ds->bytes = malloc(n * stride + 3);
	ds->rows = malloc(n * sizeof(search_row));
	for (size_t r = 0; r < n; r++) {
		ds->rows[r].id = r * 3 + 1;
		ds->rows[r].data = ds->bytes + 1 + r * stride + 8;
		for (size_t d = 0; d < dim; d++)
			set(ds, r, d, uniform());
	}
}

static void ds_free(dataset *ds)
{
	free(ds->bytes);
	free(ds->rows);
}

static bool same(const rvf_hit *a, const size_t *ca, const rvf_hit *b,
		 const size_t *cb, size_t nq, size_t k)
{
	for (size_t q = 0; q < nq; q++) {
		if (ca[q] != cb[q])
			return false;
		for (size_t i = 0; i < ca[q]; i++)
			if (a[q * k + i].id != b[q * k + i].id ||
			    memcmp(&a[q * k + i].distance, &b[q * k + i].distance, 4))
				return false;
	}
	return true;
}

/* accel_search with ops equals search_exact for these queries. */
static void compare(const char *what, dataset *ds, const code_ops *ops,
		    const float *q, size_t nq, size_t k, unsigned threads)
{
	search_request req = { .metric = RVF_METRIC_L2, .dim = ds->dim,
			       .queries = q, .nq = nq, .k = k,
			       .rows = ds->rows, .nrows = ds->n,
			       .threads = threads };
	const char *why = NULL;
	accel_index *a = accel_build(ds->rows, ds->n, ds->dim, ops, &why);
	rvf_hit *x = malloc(nq * k * sizeof(rvf_hit) + 1);
	rvf_hit *y = malloc(nq * k * sizeof(rvf_hit) + 1);
	size_t *cx = malloc(nq * sizeof(size_t)), *cy = malloc(nq * sizeof(size_t));
	rvf_error err;

	CHECK(a != NULL, "%s: build failed: %s", what, why ? why : "?");
	if (a) {
		CHECK(accel_applies(a, &req), "%s: does not apply", what);
		CHECK(search_exact(&req, x, cx, &err) == RVF_OK, "%s: exact", what);
		CHECK(accel_search(a, &req, y, cy, &err) == RVF_OK, "%s: codes",
		      what);
		CHECK(same(x, cx, y, cy, nq, k),
		      "%s (%s, n=%zu dim=%zu nq=%zu k=%zu threads=%u): codes "
		      "differ from the exact scan", what, ops->name, ds->n,
		      ds->dim, nq, k, threads);
	}
	accel_free(a);
	free(x);
	free(y);
	free(cx);
	free(cy);
}

static float *random_queries(size_t nq, size_t dim, float scale)
{
	float *q = malloc(nq * dim * sizeof(float));

	for (size_t i = 0; i < nq * dim; i++)
		q[i] = uniform() * scale;
	return q;
}

/* Shapes: dims that are not multiples of 4 or 16, row counts that leave a
 * partial block, k from 1 to more than n, batches across the 8/4/1 tiles. */
static void test_shapes(const code_ops *ops)
{
	static const size_t dims[] = { 1, 3, 4, 5, 17, 64, 128, 130 };
	static const size_t ks[] = { 1, 10, 100 };
	static const size_t nqs[] = { 1, 7, 70 };

	for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++) {
		dataset ds;

		ds_init(&ds, 2001 + di * 37, dims[di]);
		for (size_t ki = 0; ki < 3; ki++)
			for (size_t qi = 0; qi < 3; qi++) {
				float *q = random_queries(nqs[qi], dims[di], 1);

				compare("shapes", &ds, ops, q, nqs[qi], ks[ki],
					(unsigned)(1 + (ki + qi) % 3));
				free(q);
			}
		{
			float *q = random_queries(3, dims[di], 1);

			compare("k > n", &ds, ops, q, 3, ds.n + 5, 2);
			free(q);
		}
		ds_free(&ds);
	}
}

/* Near neighbours closer than a code step, duplicates (ties broken by
 * id), queries on rows, far outside the data and at its corners. */
static void test_hard_cases(const code_ops *ops)
{
	const size_t n = 4000, dim = 32, nq = 40;
	dataset ds;
	float *q = malloc(nq * dim * sizeof(float));

	ds_init(&ds, n, dim);
	/* rows 100..199: tiny moves of row 50, some exact copies */
	for (size_t r = 100; r < 200; r++)
		for (size_t d = 0; d < dim; d++) {
			float v;

			memcpy(&v, ds.rows[50].data + 4 * d, 4);
			set(&ds, r, d, r % 3 ? v + (float)(r - 100) * 1e-6f * (d % 2 ? 1 : -1) : v);
		}
	for (size_t i = 0; i < nq; i++)
		for (size_t d = 0; d < dim; d++) {
			float v;

			memcpy(&v, ds.rows[i < 20 ? 50 + i * 7 : i].data + 4 * d, 4);
			q[i * dim + d] = i < 10 ? v : i < 20 ? v + 1e-5f :
					 i < 30 ? v * 40 : (d % 2 ? 1.0f : -1.0f);
		}
	compare("near neighbours and ties", &ds, ops, q, nq, 10, 2);
	compare("near neighbours and ties, k=150", &ds, ops, q, nq, 150, 1);
	ds_free(&ds);
	free(q);
}

/* One dimension spans a million: the codes are coarse and nearly every
 * row becomes a candidate; the answer must not change. */
static void test_wide_range(const code_ops *ops)
{
	dataset ds;
	float *q;

	ds_init(&ds, 1500, 16);
	set(&ds, 7, 3, 1e6f);
	set(&ds, 8, 5, -1e6f);
	q = random_queries(5, 16, 1);
	compare("wide range", &ds, ops, q, 5, 10, 2);
	ds_free(&ds);
	free(q);
}

/* Rows with NaN or an infinity are measured for every query (NaN ranks
 * last); too many of them and codes are not built. */
static void test_exceptions(const code_ops *ops)
{
	dataset ds;
	float *q;
	const char *why = NULL;
	accel_index *a;

	ds_init(&ds, 3000, 8);
	set(&ds, 10, 2, NAN);
	set(&ds, 20, 0, INFINITY);
	set(&ds, 30, 7, -INFINITY);
	q = random_queries(4, 8, 1);
	compare("exceptions", &ds, ops, q, 4, 3000, 2);
	compare("exceptions, k=5", &ds, ops, q, 4, 5, 1);
	for (size_t r = 0; r < 400; r++)
		set(&ds, r * 7, 1, NAN);
	a = accel_build(ds.rows, ds.n, ds.dim, ops, &why);
	CHECK(a == NULL && why && strstr(why, "NaN"),
	      "too many exceptions must refuse codes (%s)", why ? why : "built");
	accel_free(a);
	ds_free(&ds);
	free(q);
}

/* The index refuses what it cannot answer exactly. */
static void test_applies(const code_ops *ops)
{
	dataset ds;
	float *q;
	const char *why;
	accel_index *a;

	ds_init(&ds, 100, 4);
	q = random_queries(2, 4, 1);
	a = accel_build(ds.rows, ds.n, ds.dim, ops, &why);
	{
		search_request req = { .metric = RVF_METRIC_L2, .dim = 4,
				       .queries = q, .nq = 2, .k = 3,
				       .rows = ds.rows, .nrows = ds.n };

		CHECK(accel_applies(a, &req), "plain L2 applies");
		req.metric = RVF_METRIC_INNER_PRODUCT;
		CHECK(!accel_applies(a, &req), "inner product does not");
		req.metric = RVF_METRIC_COSINE;
		CHECK(!accel_applies(a, &req), "cosine does not");
		req.metric = RVF_METRIC_L2;
		req.nrows = 99;
		CHECK(!accel_applies(a, &req), "other rows do not");
		req.nrows = ds.n;
		q[5] = NAN;
		CHECK(!accel_applies(a, &req), "a NaN query does not");
	}
	accel_free(a);
	ds_free(&ds);
	free(q);
}

/* Every kernel computes the same integers. */
static void test_kernels(void)
{
	const code_ops *v = code_ops_vnni(), *p = code_ops_portable();
	static const size_t ngroups[] = { 1, 2, 3, 32, 33 };

	if (!v) {
		printf("test_accel: no AVX-512 VNNI here; portable kernel only\n");
		return;
	}
	for (size_t gi = 0; gi < 5; gi++) {
		size_t ng = ngroups[gi], nq = 13;
		uint8_t *blk = malloc(ng * 64);
		int8_t *q8 = malloc(nq * ng * 4);
		int32_t base[CODE_BLOCK], qq[13], thr[13], o1[13 * 16], o2[13 * 16];
		uint16_t m1[13], m2[13];

		for (size_t i = 0; i < ng * 64; i++)
			blk[i] = (uint8_t)next_u64();
		for (size_t i = 0; i < nq * ng * 4; i++)
			q8[i] = (int8_t)next_u64();
		for (int r = 0; r < CODE_BLOCK; r++)
			base[r] = (int32_t)(next_u64() % 1000000);
		for (size_t i = 0; i < nq; i++) {
			qq[i] = (int32_t)(next_u64() % 1000000);
			thr[i] = (int32_t)(next_u64() % 2000000) - 500000;
		}
		v->dists(blk, ng, base, q8, qq, thr, nq, o1, m1);
		p->dists(blk, ng, base, q8, qq, thr, nq, o2, m2);
		CHECK(!memcmp(o1, o2, sizeof(o1)) && !memcmp(m1, m2, sizeof(m1)),
		      "vnni and portable differ for %zu groups", ng);
		free(blk);
		free(q8);
	}
}

int main(void)
{
	const code_ops *sets[2] = { code_ops_portable(), code_ops_vnni() };

	test_kernels();
	for (int i = 0; i < 2; i++) {
		if (!sets[i])
			continue;
		test_shapes(sets[i]);
		test_hard_cases(sets[i]);
		test_wide_range(sets[i]);
		test_exceptions(sets[i]);
		test_applies(sets[i]);
	}
	printf("test_accel: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
