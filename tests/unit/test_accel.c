/* test_accel.c - the 8-bit code search (and for L2 the 4-bit one) gives
 * search_exact's answer, bit for bit, for every metric, on data chosen to stress its bounds, and after
 * simulated commits (accel_derive); every code kernel computes the same
 * integers. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "accel.h"
#include "codes.h"
#include "codes4.h"
#include "search.h"

#define RNG_SEED 0x9e3779b97f4a7c15ull
#include "check_random.h"

static const rvf_metric metrics[] = { RVF_METRIC_L2, RVF_METRIC_INNER_PRODUCT,
				      RVF_METRIC_COSINE };
static const char *const metric_names[] = { "l2", "ip", "cosine" };

/* The kernel and metric under test; ops4 set: 4-bit codes (L2). */
static const code_ops *ops;
static const code4_ops *ops4;
static rvf_metric metric;
static const char *mname;

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

static float get(const dataset *ds, size_t r, size_t d)
{
	float v;

	memcpy(&v, ds->rows[r].data + 4 * d, 4);
	return v;
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

/* accel_search with index a equals search_exact over rows. */
static void compare_index(const char *what, const accel_index *a,
			  const search_row *rows, size_t n, size_t dim,
			  const float *q, size_t nq, size_t k, unsigned threads)
{
	search_request req = { .metric = metric, .dim = dim, .queries = q,
			       .nq = nq, .k = k, .rows = rows, .nrows = n,
			       .threads = threads };
	rvf_hit *x = malloc(nq * k * sizeof(rvf_hit) + 1);
	rvf_hit *y = malloc(nq * k * sizeof(rvf_hit) + 1);
	size_t *cx = malloc(nq * sizeof(size_t)), *cy = malloc(nq * sizeof(size_t));
	rvf_error err;

	CHECK(accel_applies(a, &req), "%s %s: does not apply", what, mname);
	CHECK(search_exact(&req, x, cx, &err) == RVF_OK, "%s: exact", what);
	CHECK(accel_search(a, &req, y, cy, &err) == RVF_OK, "%s: codes", what);
	CHECK(same(x, cx, y, cy, nq, k),
	      "%s (%s, %s, n=%zu dim=%zu nq=%zu k=%zu threads=%u): codes "
	      "differ from the exact scan", what, mname,
	      ops4 ? ops4->name : ops->name, n, dim, nq, k, threads);
	free(x);
	free(y);
	free(cx);
	free(cy);
}

static void compare(const char *what, dataset *ds, const float *q, size_t nq,
		    size_t k, unsigned threads)
{
	const char *why = NULL;
	accel_index *a = accel_build(ds->rows, ds->n, ds->dim, metric, ops, ops4, &why);

	CHECK(a != NULL, "%s %s: build failed: %s", what, mname, why ? why : "?");
	if (a)
		compare_index(what, a, ds->rows, ds->n, ds->dim, q, nq, k, threads);
	accel_release(a);
}

/* Cosine queries stay clear of zero: one too short for a tiny row takes
 * the float scan (accel.h), and compare() wants the codes to apply. */
static float *random_queries(size_t nq, size_t dim, float scale)
{
	float *q = malloc(nq * dim * sizeof(float));

	for (size_t i = 0; i < nq * dim; i++) {
		q[i] = uniform() * scale;
		if (metric == RVF_METRIC_COSINE)
			q[i] = copysignf(fabsf(q[i]) + 0.1f * scale, q[i]);
	}
	return q;
}

/* Shapes: dims that are not multiples of 4 or 16, row counts that leave a
 * partial block, k from 1 to more than n, batches across the tiles. */
static void test_shapes(void)
{
	static const size_t dims[] = { 1, 3, 4, 5, 17, 64, 130 };
	static const size_t ks[] = { 1, 10, 100 };
	static const size_t nqs[] = { 1, 7, 70 };

	for (size_t di = 0; di < sizeof(dims) / sizeof(dims[0]); di++) {
		dataset ds;

		ds_init(&ds, 2001 + di * 37, dims[di]);
		for (size_t ki = 0; ki < 3; ki++)
			for (size_t qi = 0; qi < 3; qi++) {
				float *q = random_queries(nqs[qi], dims[di], 1);

				compare("shapes", &ds, q, nqs[qi], ks[ki],
					(unsigned)(1 + (ki + qi) % 3));
				free(q);
			}
		{
			float *q = random_queries(3, dims[di], 1);

			compare("k > n", &ds, q, 3, ds.n + 5, 2);
			free(q);
		}
		ds_free(&ds);
	}
}

/* Near neighbours closer than a code step, duplicates and scaled copies
 * (ties broken by id; cosine ties of parallel rows), queries on rows,
 * far outside the data and at its corners. */
static void test_hard_cases(void)
{
	const size_t n = 4000, dim = 32, nq = 50;
	dataset ds;
	float *q = malloc(nq * dim * sizeof(float));

	ds_init(&ds, n, dim);
	/* rows 100..199: tiny moves of row 50, some exact copies */
	for (size_t r = 100; r < 200; r++)
		for (size_t d = 0; d < dim; d++) {
			float v = get(&ds, 50, d);

			set(&ds, r, d, r % 3 ? v + (float)(r - 100) * 1e-6f * (d % 2 ? 1 : -1) : v);
		}
	/* rows 200..219: row 60 times powers of two (equal cosine, exactly) */
	for (size_t r = 200; r < 220; r++)
		for (size_t d = 0; d < dim; d++)
			set(&ds, r, d, ldexpf(get(&ds, 60, d), (int)(r - 210)));
	for (size_t i = 0; i < nq; i++)
		for (size_t d = 0; d < dim; d++) {
			float v = get(&ds, i < 20 ? 50 + i * 7 : i, d);

			q[i * dim + d] = i < 10 ? v : i < 20 ? v + 1e-5f :
					 i < 30 ? v * 40 : i < 40 ? (d % 2 ? 1.0f : -1.0f) :
					 get(&ds, 60, d) * 3;
		}
	compare("near neighbours and ties", &ds, q, nq, 10, 2);
	compare("near neighbours and ties, k=150", &ds, q, nq, 150, 1);
	ds_free(&ds);
	free(q);
}

/* One dimension spans a million: the codes are coarse and nearly every
 * row becomes a candidate; the answer must not change. */
static void test_wide_range(void)
{
	dataset ds;
	float *q;

	ds_init(&ds, 1500, 16);
	set(&ds, 7, 3, 1e6f);
	set(&ds, 8, 5, -1e6f);
	q = random_queries(5, 16, 1);
	compare("wide range", &ds, q, 5, 10, 2);
	ds_free(&ds);
	free(q);
}

/* Rows with NaN or an infinity, zero rows, tiny and huge norms are
 * measured for every query (NaN ranks last); too many of them and codes
 * are not built. */
static void test_exceptions(void)
{
	dataset ds;
	float *q;
	const char *why = NULL;
	accel_index *a;

	ds_init(&ds, 3000, 8);
	set(&ds, 10, 2, NAN);
	set(&ds, 20, 0, INFINITY);
	set(&ds, 30, 7, -INFINITY);
	for (size_t d = 0; d < 8; d++) {
		set(&ds, 40, d, 0);                  /* a zero vector */
		set(&ds, 41, d, d == 3 ? 1e-30f : 0); /* nearly zero */
		set(&ds, 42, d, get(&ds, 42, d) * 1e25f); /* huge norm */
		set(&ds, 43, d, get(&ds, 43, d) * 1e-4f); /* small */
	}
	q = random_queries(4, 8, 1);
	compare("exceptions", &ds, q, 4, 3000, 2);
	compare("exceptions, k=5", &ds, q, 4, 5, 1);
	compare("exceptions, k=1", &ds, q, 4, 1, 1);
	for (size_t r = 0; r < 400; r++)
		set(&ds, r * 7, 1, NAN);
	a = accel_build(ds.rows, ds.n, ds.dim, metric, ops, ops4, &why);
	CHECK(a == NULL && why && strstr(why, "NaN"),
	      "too many exceptions must refuse codes (%s)", why ? why : "built");
	accel_release(a);
	ds_free(&ds);
	free(q);
}

/* Integer rows in [-3, 3]: exact distances, masses of exact ties. */
static void test_integer_ties(void)
{
	dataset ds;
	float *q;

	ds_init(&ds, 5000, 12);
	for (size_t r = 0; r < ds.n; r++)
		for (size_t d = 0; d < ds.dim; d++)
			set(&ds, r, d, (float)(int)(next_u64() % 7) - 3);
	q = random_queries(9, 12, 3);
	for (size_t i = 0; i < 9 * 12; i++)
		q[i] = nearbyintf(q[i]);
	compare("integer ties", &ds, q, 9, 25, 2);
	ds_free(&ds);
	free(q);
}

/* The index refuses what it cannot answer exactly. */
static void test_applies(void)
{
	dataset ds;
	float *q;
	const char *why;
	accel_index *a;

	ds_init(&ds, 100, 4);
	q = random_queries(2, 4, 1);
	a = accel_build(ds.rows, ds.n, ds.dim, metric, ops, ops4, &why);
	{
		search_request req = { .metric = metric, .dim = 4,
				       .queries = q, .nq = 2, .k = 3,
				       .rows = ds.rows, .nrows = ds.n };

		CHECK(accel_applies(a, &req), "%s applies", mname);
		req.metric = metric == RVF_METRIC_L2 ? RVF_METRIC_COSINE :
						       RVF_METRIC_L2;
		CHECK(!accel_applies(a, &req), "another metric does not");
		req.metric = metric;
		req.nrows = 99;
		CHECK(!accel_applies(a, &req), "other rows do not");
		req.nrows = ds.n;
		q[5] = NAN;
		CHECK(!accel_applies(a, &req), "a NaN query does not");
		if (metric == RVF_METRIC_COSINE) {
			for (int d = 0; d < 4; d++)
				q[4 + d] = 0;
			CHECK(!accel_applies(a, &req), "a zero query does not");
		}
		if (metric != RVF_METRIC_L2) {
			q[5] = 1e31f;
			CHECK(!accel_applies(a, &req), "a huge query does not");
		}
	}
	accel_release(a);
	ds_free(&ds);
	free(q);
}

/*
 * Commits: from the rows of one view to the next, as a store does it:
 * rows appended with new ids, some deleted, some replaced (same id, new
 * bytes), every list ascending by id.  Each derived index must answer as
 * the exact scan of its own rows; a chain of them too.
 */
static void test_derive(void)
{
	const size_t n0 = 3000, dim = 24, extra = 600, nq = 12;
	dataset ds; /* rows 0..n0+extra: the bytes of every version */
	search_row *cur, *next;
	size_t ncur = n0;
	accel_index *a;
	const char *why;
	float *q = random_queries(nq, dim, 1);

	ds_init(&ds, n0 + extra, dim);
	/* the rows added later lie a little outside the first rows' range,
	 * one is NaN, one a zero vector */
	for (size_t r = n0; r < n0 + extra; r++)
		for (size_t d = 0; d < dim; d++)
			set(&ds, r, d, get(&ds, r, d) * 1.03f);
	set(&ds, n0 + 5, 3, NAN);
	for (size_t d = 0; d < dim; d++)
		set(&ds, n0 + 6, d, 0);
	cur = malloc((n0 + extra) * sizeof(search_row));
	next = malloc((n0 + extra) * sizeof(search_row));
	memcpy(cur, ds.rows, n0 * sizeof(search_row));
	a = accel_build(cur, ncur, dim, metric, ops, ops4, &why);
	CHECK(a != NULL, "build: %s", why ? why : "?");
	for (size_t step = 0; a && step < 30; step++) {
		size_t w = 0, add = 20, base = n0 + step * add;
		accel_index *b;

		/* delete every 50th row of this step's choosing, replace a
		 * few ids with new bytes, append new ids */
		for (size_t i = 0; i < ncur; i++) {
			search_row r = cur[i];

			if ((i + step) % 50 == 7)
				continue;
			if ((i + step) % 97 == 3) /* same id, other bytes */
				r.data = ds.rows[base + (i % add)].data;
			next[w++] = r;
		}
		for (size_t j = 0; j < add; j++)
			next[w++] = (search_row){ .id = 100000 + step * add + j,
						  .data = ds.rows[base + j].data };
		b = accel_derive(a, next, w, &why);
		CHECK(b != NULL, "derive step %zu: %s", step, why ? why : "?");
		accel_release(a);
		a = b;
		{ /* the index reads next now: the next step writes cur */
			search_row *t = cur;

			cur = next;
			next = t;
		}
		ncur = w;
		if (a && step % 3 == 0)
			compare_index("derived", a, cur, ncur, dim, q, nq,
				      step % 2 ? 10 : 40, 1 + step % 2);
	}
	if (a) {
		CHECK(accel_dead(a) > 0, "deleted rows leave dead slots");
		compare_index("derived, last", a, cur, ncur, dim, q, nq, 7, 2);
	}
	/* rows out of order: refused, the caller builds */
	if (a && ncur > 2) {
		search_row t = cur[0];

		memcpy(next, cur, ncur * sizeof(search_row));
		next[0] = next[1];
		next[1] = t;
		CHECK(accel_derive(a, next, ncur, &why) == NULL,
		      "unordered rows must be refused");
	}
	accel_release(a);
	free(cur);
	free(next);
	free(q);
	ds_free(&ds);
}

#ifndef RVF_SEARCH_ONLY /* the store: not in the aarch64 cross build */
static bool view_same(rvf_view *v, const float *q, size_t nq, size_t k)
{
	rvf_search_options off = { .accel = RVF_ACCEL_OFF },
			   on = { .accel = RVF_ACCEL_AUTO };
	rvf_hit *x = malloc(nq * k * sizeof(rvf_hit)), *y = malloc(nq * k * sizeof(rvf_hit));
	size_t cx[16], cy[16];
	rvf_error err;
	bool ok = rvf_view_search(v, q, nq, k, &off, x, cx, &err) == RVF_OK &&
		  rvf_view_search(v, q, nq, k, &on, y, cy, &err) == RVF_OK &&
		  same(x, cx, y, cy, nq, k);

	free(x);
	free(y);
	return ok;
}

/* Waits (up to a minute) for v's codes to be ready; no search meanwhile. */
static bool wait_ready(rvf_view *v)
{
	for (int i = 0; i < 6000; i++) {
		if (!strncmp(rvf_view_accel_state(v, NULL), "ready", 5))
			return true;
		usleep(10000);
	}
	return false;
}

/*
 * Through the store: codes built in the background, a commit while they
 * are being built (the new view gets them once the build ends, without a
 * search of its own), then commits after they are ready (carried at once)
 * - an append, a replacement, a deletion - every answer the float scan's.
 */
static void test_view_commits(void)
{
	const size_t n = 20000, dim = 32, nq = 8, k = 10;
	char dir[] = "/tmp/rvf-test-accel-XXXXXX", path[64];
	rvf_create_options co = { .dimension = dim, .metric = metric };
	rvf_search_options autoo = { .accel = RVF_ACCEL_AUTO };
	float *rows = malloc(n * dim * sizeof(float)), *q;
	rvf_hit hits[k];
	size_t cnt;
	rvf_store *s = NULL;
	rvf_view *v;
	rvf_error err;
	rvf_commit_info ci;
	uint64_t id;

	if (!mkdtemp(dir)) {
		CHECK(false, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/s.rvf", dir);
	for (size_t i = 0; i < n * dim; i++)
		rows[i] = uniform();
	q = random_queries(nq, dim, 1);
	CHECK(rvf_store_create(path, &co, &s, &err) == RVF_OK, "create");
	CHECK(rvf_store_ingest(s, n, NULL, rows, NULL, NULL, &ci, &err) == RVF_OK,
	      "ingest");
	v = rvf_store_view(s);
	CHECK(rvf_view_search(v, q, 1, k, &autoo, hits, &cnt, &err) == RVF_OK,
	      "first search");
	rvf_view_release(v);
	/* at once: the build is most likely still running */
	id = 1000000;
	CHECK(rvf_store_ingest(s, 1, &id, rows, NULL, NULL, &ci, &err) == RVF_OK,
	      "commit during the build");
	v = rvf_store_view(s);
	CHECK(wait_ready(v), "%s: codes never reached the view committed during "
	      "the build (%s)", mname, rvf_view_accel_state(v, NULL));
	CHECK(view_same(v, q, nq, k), "%s: after a commit during the build", mname);
	rvf_view_release(v);
	for (int step = 0; step < 3; step++) {
		const char *st;

		id = 1000001 + (uint64_t)step;
		if (step == 0)
			CHECK(rvf_store_ingest(s, 1, &id, rows + dim, NULL, NULL, &ci,
					       &err) == RVF_OK, "append");
		else if (step == 1)
			CHECK(rvf_store_ingest(s, 1, (uint64_t[]){ 5 }, rows + 9 * dim,
					       NULL, NULL, &ci, &err) == RVF_OK,
			      "replace");
		else
			CHECK(rvf_store_delete(s, 1, (uint64_t[]){ 7 }, &ci, &err) ==
			      RVF_OK, "delete");
		v = rvf_store_view(s);
		st = rvf_view_accel_state(v, NULL);
		CHECK(!strncmp(st, "ready", 5), "%s step %d: the commit's view has "
		      "no codes at once (%s)", mname, step, st);
		CHECK(view_same(v, q, nq, k), "%s step %d: codes after a commit",
		      mname, step);
		rvf_view_release(v);
	}
	rvf_store_close(s);
	unlink(path);
	rmdir(dir);
	free(rows);
	free(q);
}
#endif

/* Every kernel computes the portable kernel's integers, from the most
 * extreme codes and queries too. */
static void test_kernels(void)
{
	const code_ops *all[] = { code_ops_vnni(), code_ops_avx512bw(),
				  code_ops_avx2(), code_ops_neon(),
				  code_ops_sdot() };
	const code_ops *p = code_ops_portable();
	static const size_t ngroups[] = { 1, 2, 3, 4, 5, 9, 32, 33, 96 };

	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		if (!all[k])
			continue;
		printf("test_accel: kernel %s\n", all[k]->name);
		for (size_t gi = 0; gi < sizeof(ngroups) / sizeof(ngroups[0]); gi++)
			for (int extreme = 0; extreme < 3; extreme++) {
				size_t ng = ngroups[gi], nq = 13;
				uint8_t *blk = malloc(ng * 64);
				int8_t *q8 = malloc(nq * ng * 4);
				int8_t *pp = malloc(nq * p->qbytes(ng));
				int8_t *pk = malloc(nq * all[k]->qbytes(ng));
				int32_t base[CODE_BLOCK], qq[13], thr[13];
				int32_t o1[13 * 16], o2[13 * 16];
				uint16_t m1[13], m2[13];

				for (size_t i = 0; i < ng * 64; i++)
					blk[i] = extreme ? 255 : (uint8_t)next_u64();
				for (size_t i = 0; i < nq * ng * 4; i++)
					q8[i] = extreme == 1 ? -128 : extreme == 2 ? 127 :
						(int8_t)next_u64();
				for (int r = 0; r < CODE_BLOCK; r++)
					base[r] = (int32_t)(next_u64() % 1000000);
				for (size_t i = 0; i < nq; i++) {
					qq[i] = (int32_t)(next_u64() % 1000000);
					thr[i] = (int32_t)(next_u64() % 2000000) - 500000;
					p->prep(q8 + i * ng * 4, ng, pp + i * p->qbytes(ng));
					all[k]->prep(q8 + i * ng * 4, ng,
						     pk + i * all[k]->qbytes(ng));
				}
				all[k]->dists(blk, ng, base, pk, qq, thr, nq, o1, m1);
				p->dists(blk, ng, base, pp, qq, thr, nq, o2, m2);
				CHECK(!memcmp(o1, o2, sizeof(o1)) && !memcmp(m1, m2, sizeof(m1)),
				      "%s and portable differ for %zu groups (%d)",
				      all[k]->name, ng, extreme);
				free(blk);
				free(q8);
				free(pp);
				free(pk);
			}
	}
}

/* Every 4-bit kernel computes the portable kernel's sums and masks, with
 * the largest entries (saturating at 65535 for long rows) too. */
static void test_kernels4(void)
{
	const code4_ops *all[] = { code4_ops_avx512bw(), code4_ops_avx2(),
				   code4_ops_neon() };
	const code4_ops *p = code4_ops_portable();
	static const size_t ngroups[] = { 1, 2, 3, 16, 17, 96, 300 };

	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		if (!all[k])
			continue;
		printf("test_accel: 4-bit kernel %s\n", all[k]->name);
		for (size_t gi = 0; gi < sizeof(ngroups) / sizeof(ngroups[0]); gi++)
			for (int extreme = 0; extreme < 2; extreme++) {
				size_t ng = ngroups[gi], nb = 5;
				uint8_t *blk = malloc(nb * ng * 64);
				uint8_t *table = malloc(ng * 128);
				uint16_t s1[5 * 16], s2[5 * 16], m1[5], m2[5];
				uint16_t thr = (uint16_t)(next_u64() % (ng * 200 + 1));

				for (size_t i = 0; i < nb * ng * 64; i++)
					blk[i] = (uint8_t)next_u64();
				for (size_t i = 0; i < ng * 128; i++)
					table[i] = extreme ? CODE4_ENTRY_MAX :
						(uint8_t)(next_u64() % (CODE4_ENTRY_MAX + 1));
				all[k]->sums(blk, nb, ng, table, thr, s1, m1);
				p->sums(blk, nb, ng, table, thr, s2, m2);
				CHECK(!memcmp(s1, s2, sizeof(s1)) && !memcmp(m1, m2, sizeof(m1)),
				      "4-bit %s and portable differ for %zu groups (%d)",
				      all[k]->name, ng, extreme);
				free(blk);
				free(table);
			}
	}
}

int main(void)
{
	const code_ops *sets[] = { code_ops_portable(), code_ops_best(),
				   code_ops_avx2(), code_ops_neon() };
	const code4_ops *sets4[] = { code4_ops_portable(), code4_ops_best(),
				     code4_ops_avx2(), code4_ops_neon() };

	test_kernels();
	test_kernels4();
#ifndef RVF_SEARCH_ONLY
	for (size_t m = 0; m < 3; m++) {
		metric = metrics[m];
		mname = metric_names[m];
		test_view_commits();
	}
	/* the same through the store with 4-bit codes (L2) */
	setenv("RVF_CODES_BITS", "4", 1);
	metric = RVF_METRIC_L2;
	mname = "l2 (4-bit)";
	test_view_commits();
	unsetenv("RVF_CODES_BITS");
#endif
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		bool seen = false;

		for (size_t j = 0; j < i; j++)
			seen |= sets[j] == sets[i];
		if (!sets[i] || seen)
			continue;
		ops = sets[i];
		ops4 = NULL;
		printf("test_accel: searching with the %s kernel\n", ops->name);
		for (size_t m = 0; m < 4; m++) {
			/* m == 3: L2 again, with 4-bit codes */
			metric = metrics[m % 3];
			mname = m == 3 ? "l2 (4-bit)" : metric_names[m];
			ops4 = m == 3 ? sets4[i] : NULL;
			if (m == 3 && !ops4)
				continue;
			test_shapes();
			test_hard_cases();
			test_wide_range();
			test_exceptions();
			test_integer_ties();
			test_applies();
			test_derive();
		}
	}
	printf("test_accel: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
