/* search.c - exact k-NN: one pass over the rows for a whole batch.
 *
 * Rows are taken in blocks small enough to stay in L1/L2 while every query
 * of the batch is measured against them, so a batch of nq queries reads the
 * file once, not nq times.  Each thread scans a contiguous range of rows and
 * keeps, per query, a bounded max-heap of its k best hits; the heaps are
 * merged at the end.  The k best under a total order do not depend on how
 * the rows were split, so any thread count gives the same answer.
 */
#include "search.h"

#include <stdint.h>
#include <stdlib.h>

#include "distance.h"
#include "hits.h"
#include "error.h"
#include "pool.h"

enum {
	BLOCK_BYTES = 32 * 1024, /* row bytes per block: about L1 */
	BLOCK_MIN = 8,
	BLOCK_MAX = 256,
	QUERY_GROUP = 64,        /* queries per distance pass (scratch size) */
	MAX_THREADS = 256,
};

/* Multiply-adds a task must have to be worth handing to a worker. */
#define WORK_PER_THREAD ((size_t)1 << 19)

/* Read-only during the scan, shared by the threads. */
typedef struct scan {
	const search_request *req;
	const dist_ops *ops;
	rvf_metric metric;
	const float *qq;  /* cosine: ‖q‖² per query */
	size_t block;     /* rows per block */
	size_t group;     /* queries per distance pass */
} scan;

typedef struct worker {
	const scan *sc;
	size_t begin, end;     /* rows [begin, end) */
	rvf_hit *heaps;        /* query q's heap at heaps + q * hstride */
	size_t hstride, cap;
	size_t *len;           /* nq */
	bool own_heaps;        /* heaps allocated here, not the caller's out */
	/* scratch, one block */
	const unsigned char **px;
	uint64_t *ids;
	float *xx;
	float *dist;           /* group x block */
} worker;

/* The bar a distance must not exceed to be worth a full compare: the
 * worst kept hit once the heap is full; NaN (everything passes) before. */
static inline float heap_bar(const rvf_hit *h, size_t len, size_t cap)
{
	return len == cap ? h[0].distance : NAN;
}

/* True when some distance in d[0..8) may enter: not above the bar, or NaN
 * on either side.  Branch-free, so the compiler can vectorise it. */
static inline bool any_candidate(const float *d, float bar)
{
	int any = 0;

	for (int j = 0; j < 8; j++)
		any |= !(d[j] > bar);
	return any;
}

static void offer_block(worker *w, size_t q, const float *dist, size_t n)
{
	rvf_hit *h = w->heaps + q * w->hstride;
	size_t len = w->len[q], cap = w->cap;
	float bar = heap_bar(h, len, cap);

	for (size_t r0 = 0; r0 < n; r0 += 8) {
		size_t end = r0 + 8 < n ? r0 + 8 : n;

		/* most rows lose to the worst kept hit: skip eight at once */
		if (end == r0 + 8 && !any_candidate(dist + r0, bar))
			continue;
		for (size_t r = r0; r < end; r++) {
			if (dist[r] > bar)
				continue;
			heap_offer(h, &len, cap,
				   (rvf_hit){ .id = w->ids[r],
					      .distance = dist[r] });
			bar = heap_bar(h, len, cap);
		}
	}
	w->len[q] = len;
}

static void scan_rows(worker *w)
{
	const scan *sc = w->sc;
	const search_request *req = sc->req;
	size_t dim = req->dim, nq = req->nq;

	for (size_t b = w->begin; b < w->end; b += sc->block) {
		size_t e = b + sc->block < w->end ? b + sc->block : w->end;
		size_t n = 0;

		/* the filter runs once per row, whatever the batch size, on
		 * the worker threads: accept must be safe to call
		 * concurrently (a read-only match over the view is) */
		for (size_t r = b; r < e; r++) {
			const search_row *row = &req->rows[r];

			if (req->accept && !req->accept(req->accept_ctx, row))
				continue;
			w->px[n] = row->data;
			w->ids[n] = row->id;
			n++;
		}
		if (!n)
			continue;
		if (sc->metric == RVF_METRIC_COSINE && nq == 1) {
			/* one pass over the rows instead of two */
			sc->ops->dot_norms(req->queries, dim, w->px, n, w->dist,
					   w->xx);
			sc->ops->cosine(w->dist, sc->qq, 1, w->xx, n);
			offer_block(w, 0, w->dist, n);
			continue;
		}
		if (sc->metric == RVF_METRIC_COSINE)
			sc->ops->norms(w->px, n, dim, w->xx);
		for (size_t q0 = 0; q0 < nq; q0 += sc->group) {
			size_t g = nq - q0 < sc->group ? nq - q0 : sc->group;

			dist_block(sc->ops, sc->metric, req->queries + q0 * dim,
				   sc->qq ? sc->qq + q0 : NULL, g, dim, w->px,
				   w->xx, n, w->dist);
			for (size_t i = 0; i < g; i++)
				offer_block(w, q0 + i, w->dist + i * n, n);
		}
	}
}

static void scan_task(void *ctx, size_t t)
{
	scan_rows(&((worker *)ctx)[t]);
}

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* a * b, saturating. */
static size_t mul_sat(size_t a, size_t b)
{
	return b && a > SIZE_MAX / b ? SIZE_MAX : a * b;
}

static size_t pick_threads(const search_request *req, size_t block)
{
	size_t t = req->threads, by_work, by_rows;

	if (t == 0) {
		t = pool_width();
	}
	t = min_sz(t, MAX_THREADS);
	/* waking a worker costs microseconds: tiny scans run here */
	by_work = mul_sat(mul_sat(req->nrows, req->nq), req->dim ? req->dim : 1) /
		  WORK_PER_THREAD;
	by_rows = req->nrows / block;
	t = min_sz(t, min_sz(by_work, by_rows));
	return t ? t : 1;
}

static void worker_free(worker *w)
{
	if (w->own_heaps)
		free(w->heaps);
	free(w->len);
	free(w->px);
	free(w->ids);
	free(w->xx);
	free(w->dist);
}

static bool worker_alloc(worker *w, const scan *sc)
{
	size_t nq = sc->req->nq, b = sc->block;

	w->len = calloc(nq, sizeof(*w->len));
	w->px = malloc(b * sizeof(*w->px));
	w->ids = malloc(b * sizeof(*w->ids));
	w->xx = malloc(b * sizeof(*w->xx));
	w->dist = malloc(sc->group * b * sizeof(*w->dist));
	if (w->own_heaps) {
		if (mul_sat(mul_sat(nq, w->cap), sizeof(rvf_hit)) == SIZE_MAX)
			w->heaps = NULL;
		else
			w->heaps = malloc(nq * w->cap * sizeof(rvf_hit));
	}
	return w->len && w->px && w->ids && w->xx && w->dist && w->heaps;
}

/* The scan's fixed part: distance kernels, block and group sizes, and for
 * cosine the queries' squared norms (*qq, the caller frees).  false: out
 * of memory. */
static bool scan_setup(scan *sc, const search_request *req, float **qq)
{
	size_t nq = req->nq, dim = req->dim;

	sc->req = req;
	sc->ops = dist_ops_get();
	sc->metric = dist_metric(req->metric);
	sc->qq = NULL;
	sc->block = dim ? BLOCK_BYTES / 4 / dim : BLOCK_MAX;
	sc->block = sc->block < BLOCK_MIN ? BLOCK_MIN :
		    sc->block > BLOCK_MAX ? BLOCK_MAX : sc->block;
	sc->group = min_sz(nq, QUERY_GROUP);
	*qq = NULL;
	if (sc->metric != RVF_METRIC_COSINE)
		return true;
	*qq = malloc(nq * sizeof(**qq));
	if (!*qq)
		return false;
	for (size_t q = 0; q < nq; q++) {
		const unsigned char *p = (const unsigned char *)(req->queries + q * dim);

		sc->ops->norms(&p, 1, dim, &(*qq)[q]);
	}
	sc->qq = *qq;
	return true;
}

/* nt workers, each with an equal share of the rows.  One worker keeps its
 * heaps in the output itself; several keep their own, merged afterwards.
 * false: out of memory (the workers made so far are to be freed). */
static bool workers_setup(worker *ws, size_t nt, const scan *sc, rvf_hit *out,
			  size_t kk)
{
	const search_request *req = sc->req;

	for (size_t t = 0; t < nt; t++) {
		worker *w = &ws[t];

		w->sc = sc;
		w->begin = req->nrows / nt * t + min_sz(t, req->nrows % nt);
		w->end = w->begin + req->nrows / nt + (t < req->nrows % nt);
		if (nt == 1) {
			w->heaps = out;
			w->hstride = req->k;
			w->cap = kk;
		} else {
			w->own_heaps = true;
			w->cap = min_sz(kk, w->end - w->begin);
			w->hstride = w->cap;
		}
		if (!worker_alloc(w, sc))
			return false;
	}
	return true;
}

/* Each query's best kk over all workers, sorted, into out; counts. */
static void merge_results(const worker *ws, size_t nt, const search_request *req,
			  size_t kk, rvf_hit *out, size_t *counts)
{
	for (size_t q = 0; q < req->nq; q++) {
		rvf_hit *h = out + q * req->k;
		size_t len = 0;

		if (nt == 1) {
			len = ws[0].len[q];
		} else {
			for (size_t t = 0; t < nt; t++) {
				const rvf_hit *src = ws[t].heaps + q * ws[t].hstride;

				for (size_t i = 0; i < ws[t].len[q]; i++)
					heap_offer(h, &len, kk, src[i]);
			}
		}
		heap_sort(h, len);
		counts[q] = len;
	}
}

rvf_code search_exact(const search_request *req, rvf_hit *out, size_t *counts,
		      rvf_error *err)
{
	size_t nq = req->nq, k = req->k, nt = 0, kk;
	float *qq = NULL;
	worker *ws = NULL;
	scan sc;
	rvf_code rc = RVF_OK;

	if (nq == 0)
		return RVF_OK;
	if (!counts || (k && !out) || !req->queries ||
	    (req->nrows && !req->rows))
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"search: missing queries, rows or output");
	if (k > SIZE_MAX / nq)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"search: k=%zu is too large for %zu queries",
				k, nq);
	for (size_t q = 0; q < nq; q++)
		counts[q] = 0;
	kk = min_sz(k, req->nrows);
	if (kk == 0)
		return RVF_OK;

	if (scan_setup(&sc, req, &qq)) {
		nt = pick_threads(req, sc.block);
		ws = calloc(nt, sizeof(*ws));
	}
	if (ws && workers_setup(ws, nt, &sc, out, kk)) {
		pool_run(scan_task, ws, nt);
		merge_results(ws, nt, req, kk, out, counts);
	} else {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "search: out of memory");
	}
	if (ws)
		for (size_t t = 0; t < nt; t++)
			worker_free(&ws[t]);
	free(ws);
	free(qq);
	return rc;
}
