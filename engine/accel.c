/* accel.c - building the codes of a view's rows and searching with them.
 * The reasoning that keeps answers exact is in accel.h. */
#include "accel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "distance.h"
#include "error.h"
#include "hits.h"
#include "pool.h"

enum {
	MAX_DIM = 32768,      /* keeps sum (c - cq)^2 inside 31 bits */
	QUERY_GROUP = 64,     /* queries per kernel call on one block */
	RESCORE_CHUNK = 256,  /* candidates measured per float-kernel call */
};

/* Code work (groups x blocks x queries) a task must have to be worth a
 * worker's wake-up. */
#define WORK_PER_TASK ((size_t)1 << 16)

struct accel_index {
	const code_ops *ops;
	const search_row *rows;
	size_t n, dim, ngroups, nblocks;
	double s;            /* one scale for every dimension */
	double *o;           /* per dimension: the smallest value */
	double omax;         /* the largest |o| */
	double e_max;        /* the largest |x - x^| of a coded row */
	uint8_t *codes;      /* nblocks blocks of ngroups * 64 bytes */
	int32_t *base;       /* per row: sum c^2 - 256 * sum c (blocks padded) */
	uint64_t *exc_bits;  /* rows the codes do not bound */
	uint32_t *exc;
	size_t nexc;
};

static bool is_exception(const accel_index *a, size_t row)
{
	return a->exc_bits[row / 64] >> (row % 64) & 1;
}

static void load_row(const unsigned char *p, size_t dim, float *x)
{
	for (size_t d = 0; d < dim; d++)
		x[d] = ldf32(p + 4 * d);
}

static bool all_finite(const float *x, size_t dim)
{
	for (size_t d = 0; d < dim; d++)
		if (!isfinite(x[d]))
			return false;
	return true;
}

/* The code of value v in dimension d, and |v - v^|^2 through *err2. */
static int code_of(const accel_index *a, size_t d, float v, double *err2)
{
	double c = nearbyint(((double)v - a->o[d]) / a->s);
	double t;

	c = c < 0 ? 0 : c > 255 ? 255 : c;
	t = (double)v - (a->o[d] + a->s * c);
	*err2 += t * t;
	return (int)c;
}

/* Rounding in the double arithmetic above, bounded generously. */
static double error_slack(const accel_index *a)
{
	return 1e-12 * (a->omax + 255 * a->s) * sqrt((double)a->dim);
}

size_t accel_estimate(size_t n, size_t dim)
{
	size_t nblocks = (n + CODE_BLOCK - 1) / CODE_BLOCK;

	return nblocks * ((dim + 3) / 4) * 64 + nblocks * CODE_BLOCK * 4 +
	       (n + 63) / 64 * 8;
}

size_t accel_bytes(const accel_index *a)
{
	return accel_estimate(a->n, a->dim) + a->nexc * sizeof(uint32_t) +
	       a->dim * sizeof(double) + sizeof(*a);
}

void accel_free(accel_index *a)
{
	if (!a)
		return;
	free(a->o);
	free(a->codes);
	free(a->base);
	free(a->exc_bits);
	free(a->exc);
	free(a);
}

/* First pass: o = per-dimension minimum, s from the widest range; rows
 * with a NaN or an infinity become exceptions. */
static void pick_scale(accel_index *a, float *x)
{
	double *hi = malloc(a->dim * sizeof(double)), range = 0;

	if (!hi) {
		a->s = 0;
		return;
	}
	for (size_t d = 0; d < a->dim; d++) {
		a->o[d] = INFINITY;
		hi[d] = -INFINITY;
	}
	for (size_t r = 0; r < a->n; r++) {
		load_row(a->rows[r].data, a->dim, x);
		if (!all_finite(x, a->dim)) {
			a->exc_bits[r / 64] |= 1ull << (r % 64);
			continue;
		}
		for (size_t d = 0; d < a->dim; d++) {
			if (x[d] < a->o[d])
				a->o[d] = x[d];
			if (x[d] > hi[d])
				hi[d] = x[d];
		}
	}
	for (size_t d = 0; d < a->dim; d++) {
		if (a->o[d] > hi[d]) /* no finite row */
			a->o[d] = hi[d] = 0;
		if (hi[d] - a->o[d] > range)
			range = hi[d] - a->o[d];
		if (fabs(a->o[d]) > a->omax)
			a->omax = fabs(a->o[d]);
	}
	a->s = range > 0 ? range / 255 : 1;
	free(hi);
}

/* Second pass: the codes, each row's sums, e_max. */
static void code_rows(accel_index *a, float *x)
{
	double e_lim = 0.5 * a->s * sqrt((double)a->dim) * (1 + 1e-9) +
		       error_slack(a);

	for (size_t r = 0; r < a->n; r++) {
		uint8_t *blk = a->codes + r / CODE_BLOCK * a->ngroups * 64;
		size_t rr = r % CODE_BLOCK;
		int64_t sum = 0, sum2 = 0;
		double err2 = 0, e;

		if (is_exception(a, r))
			continue;
		load_row(a->rows[r].data, a->dim, x);
		for (size_t d = 0; d < a->dim; d++) {
			int c = code_of(a, d, x[d], &err2);

			blk[d / 4 * 64 + rr * 4 + d % 4] = (uint8_t)c;
			sum += c;
			sum2 += c * c;
		}
		e = sqrt(err2);
		if (e > e_lim) { /* cannot happen inside the range; be safe */
			a->exc_bits[r / 64] |= 1ull << (r % 64);
			continue;
		}
		if (e > a->e_max)
			a->e_max = e;
		a->base[r] = (int32_t)(sum2 - 256 * sum);
	}
	a->e_max = a->e_max * (1 + 1e-12) + error_slack(a);
}

accel_index *accel_build(const search_row *rows, size_t n, size_t dim,
			 const code_ops *ops, const char **why)
{
	accel_index *a;
	float *x = NULL;

	*why = "out of memory";
	if (dim == 0 || dim > MAX_DIM || n == 0 || n > UINT32_MAX) {
		*why = "dimension or row count outside what codes handle";
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->ops = ops;
	a->rows = rows;
	a->n = n;
	a->dim = dim;
	a->ngroups = (dim + 3) / 4;
	a->nblocks = (n + CODE_BLOCK - 1) / CODE_BLOCK;
	a->o = malloc(dim * sizeof(double));
	a->codes = calloc(a->nblocks, a->ngroups * 64);
	a->base = calloc(a->nblocks * CODE_BLOCK, sizeof(int32_t));
	a->exc_bits = calloc((n + 63) / 64, 8);
	x = malloc(dim * sizeof(float));
	if (!a->o || !a->codes || !a->base || !a->exc_bits || !x)
		goto fail;
	pick_scale(a, x);
	if (a->s == 0)
		goto fail;
	code_rows(a, x);

	for (size_t r = 0; r < n; r++)
		a->nexc += is_exception(a, r);
	if (a->nexc > n / 16 + 16) {
		*why = "too many rows with NaN or infinite values";
		goto fail;
	}
	a->exc = malloc((a->nexc ? a->nexc : 1) * sizeof(uint32_t));
	if (!a->exc)
		goto fail;
	for (size_t r = 0, i = 0; r < n; r++)
		if (is_exception(a, r))
			a->exc[i++] = (uint32_t)r;
	free(x);
	*why = NULL;
	return a;
fail:
	free(x);
	accel_free(a);
	return NULL;
}

bool accel_applies(const accel_index *a, const search_request *req)
{
	if (!a || dist_metric(req->metric) != RVF_METRIC_L2 || req->accept ||
	    req->rows != a->rows || req->nrows != a->n || req->dim != a->dim)
		return false;
	for (size_t i = 0; i < req->nq * req->dim; i++)
		if (!isfinite(req->queries[i]))
			return false;
	return true;
}

/* ------------------------------------------------------------------ */
/* Search                                                              */
/* ------------------------------------------------------------------ */

/* A row by code distance; heaps keep the largest on top. */
typedef struct code_hit {
	int32_t a;
	uint32_t row;
} code_hit;

typedef struct cand_list {
	code_hit *v;
	size_t len, cap;
} cand_list;

typedef struct scan_ctx {
	const accel_index *a;
	size_t nq, kk, ntasks;
	const int8_t *q8;        /* nq * dimp */
	const int32_t *qq;       /* per query: sum cq^2 */
	const double *eq;        /* per query: |q - q^| */
	double slack;            /* relative rounding of the float distances */
	struct task *tasks;
} scan_ctx;

typedef struct task {
	size_t b0, b1;           /* blocks [b0, b1) */
	code_hit *heaps;         /* query i's at heaps + i * kk */
	size_t *hlen;
	int32_t *thr;            /* code distances above this cannot win */
	cand_list *cands;
	int32_t dist[QUERY_GROUP * CODE_BLOCK];
	uint16_t mask[QUERY_GROUP];
	bool nomem;
} task;

static void ch_sift_up(code_hit *h, size_t i)
{
	code_hit v = h[i];

	while (i > 0 && h[(i - 1) / 2].a < v.a) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = v;
}

static void ch_sift_down(code_hit *h, size_t len)
{
	code_hit v = h[0];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= len)
			break;
		if (c + 1 < len && h[c].a < h[c + 1].a)
			c++;
		if (h[c].a <= v.a)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = v;
}

/*
 * The largest code distance a row may have and still be among the k
 * nearest, given that k rows have code distance <= top:
 * s*sqrt(top) + e_max + e_q bounds their true distances (the float
 * kernels may round that up by a factor 1 + slack), and a row is
 * within it when s*sqrt(A) - e_max - e_q is.
 */
static int32_t threshold(const scan_ctx *sc, int32_t top, double eq)
{
	const accel_index *a = sc->a;
	double e = a->e_max + eq;
	double ub = a->s * sqrt((double)top) + e;
	double lim = (ub * (1 + sc->slack) + e) / a->s * (1 + 1e-9) + 1e-9;
	double lim2 = lim * lim;

	return lim2 >= INT32_MAX ? INT32_MAX : (int32_t)lim2;
}

static bool cand_push(cand_list *c, code_hit h, int32_t thr)
{
	if (c->len == c->cap) {
		size_t w = 0;

		/* the threshold only falls: drop what it now excludes */
		for (size_t i = 0; i < c->len; i++)
			if (c->v[i].a <= thr)
				c->v[w++] = c->v[i];
		c->len = w;
		if (c->len > c->cap / 2) {
			code_hit *v = realloc(c->v, 2 * c->cap * sizeof(*v));

			if (!v)
				return false;
			c->v = v;
			c->cap *= 2;
		}
	}
	c->v[c->len++] = h;
	return true;
}

static void offer(const scan_ctx *sc, task *t, size_t q, int32_t a,
		  uint32_t row)
{
	code_hit *h = t->heaps + q * sc->kk;
	size_t len = t->hlen[q];

	if (len < sc->kk) {
		h[len] = (code_hit){ a, row };
		ch_sift_up(h, len);
		t->hlen[q] = ++len;
		if (len == sc->kk)
			t->thr[q] = threshold(sc, h[0].a, sc->eq[q]);
	} else if (a < h[0].a) {
		h[0] = (code_hit){ a, row };
		ch_sift_down(h, len);
		t->thr[q] = threshold(sc, h[0].a, sc->eq[q]);
	}
	if (a <= t->thr[q] &&
	    !cand_push(&t->cands[q], (code_hit){ a, row }, t->thr[q]))
		t->nomem = true;
}

static void scan_task(void *ctx, size_t ti)
{
	const scan_ctx *sc = ctx;
	const accel_index *a = sc->a;
	task *t = &sc->tasks[ti];
	size_t dimp = 4 * a->ngroups;

	for (size_t b = t->b0; b < t->b1; b++) {
		const uint8_t *blk = a->codes + b * a->ngroups * 64;
		size_t r0 = b * CODE_BLOCK;
		size_t nr = a->n - r0 < CODE_BLOCK ? a->n - r0 : CODE_BLOCK;

		for (size_t q0 = 0; q0 < sc->nq; q0 += QUERY_GROUP) {
			size_t g = sc->nq - q0 < QUERY_GROUP ? sc->nq - q0 :
							       QUERY_GROUP;

			a->ops->dists(blk, a->ngroups, a->base + r0,
				      sc->q8 + q0 * dimp, sc->qq + q0,
				      t->thr + q0, g, t->dist, t->mask);
			for (size_t i = 0; i < g; i++) {
				size_t q = q0 + i;
				const int32_t *d = t->dist + i * CODE_BLOCK;

				/* most blocks have no row under the bar */
				for (unsigned m = t->mask[i]; m; m &= m - 1) {
					size_t r = (size_t)__builtin_ctz(m);

					if (r >= nr || d[r] > t->thr[q] ||
					    (a->nexc && is_exception(a, r0 + r)))
						continue;
					offer(sc, t, q, d[r], (uint32_t)(r0 + r));
				}
			}
		}
	}
}

/* Codes of the queries, with sum cq^2 and |q - q^| per query. */
static void code_queries(const accel_index *a, const float *q, size_t nq,
			 int8_t *q8, int32_t *qqs, double *eq)
{
	size_t dimp = 4 * a->ngroups;

	memset(q8, 0, nq * dimp);
	for (size_t i = 0; i < nq; i++) {
		double err2 = 0;
		int64_t qq = 0;

		for (size_t d = 0; d < a->dim; d++) {
			int c = code_of(a, d, q[i * a->dim + d], &err2);

			q8[i * dimp + d] = (int8_t)(c - 128);
			qq += c * c;
		}
		qqs[i] = (int32_t)qq;
		eq[i] = sqrt(err2) * (1 + 1e-12) + error_slack(a);
	}
}

static void task_free(task *t, size_t nq)
{
	if (t->cands)
		for (size_t q = 0; q < nq; q++)
			free(t->cands[q].v);
	free(t->cands);
	free(t->heaps);
	free(t->hlen);
	free(t->thr);
}

static bool task_alloc(task *t, size_t nq, size_t kk)
{
	t->heaps = malloc(nq * kk * sizeof(code_hit));
	t->hlen = calloc(nq, sizeof(size_t));
	t->thr = malloc(nq * sizeof(int32_t));
	t->cands = calloc(nq, sizeof(cand_list));
	if (!t->heaps || !t->hlen || !t->thr || !t->cands)
		return false;
	for (size_t q = 0; q < nq; q++) {
		t->thr[q] = INT32_MAX;
		t->cands[q].cap = 2 * kk + 16;
		t->cands[q].v = malloc(t->cands[q].cap * sizeof(code_hit));
		if (!t->cands[q].v)
			return false;
	}
	return true;
}

/* Measures rows[0..m) against query q exactly and keeps the k best. */
static void rescore(const accel_index *a, const dist_ops *ops, const float *q,
		    const uint32_t *rows, size_t m, rvf_hit *h, size_t *len,
		    size_t kk)
{
	const unsigned char *px[RESCORE_CHUNK];
	float dist[RESCORE_CHUNK];

	for (size_t i0 = 0; i0 < m; i0 += RESCORE_CHUNK) {
		size_t c = m - i0 < RESCORE_CHUNK ? m - i0 : RESCORE_CHUNK;

		for (size_t i = 0; i < c; i++)
			px[i] = a->rows[rows[i0 + i]].data;
		dist_block(ops, RVF_METRIC_L2, q, NULL, 1, a->dim, px, NULL, c,
			   dist);
		for (size_t i = 0; i < c; i++)
			heap_offer(h, len, kk,
				   (rvf_hit){ .id = a->rows[rows[i0 + i]].id,
					      .distance = dist[i] });
	}
}

/* All tasks' candidates of query q under the final threshold, and the
 * exceptions, measured exactly. */
static bool finish_query(const scan_ctx *sc, const float *q, size_t qi,
			 rvf_hit *out, size_t *count)
{
	const accel_index *a = sc->a;
	size_t kk = sc->kk, total = 0, len = 0, m = 0;
	code_hit *top = malloc(kk * sizeof(code_hit));
	uint32_t *rows;
	int32_t thr = INT32_MAX;

	for (size_t t = 0; t < sc->ntasks; t++)
		total += sc->tasks[t].cands[qi].len;
	rows = malloc((total + a->nexc + 1) * sizeof(uint32_t));
	if (!top || !rows) {
		free(top);
		free(rows);
		return false;
	}
	/* the k smallest code distances over every task */
	for (size_t t = 0; t < sc->ntasks; t++) {
		const code_hit *h = sc->tasks[t].heaps + qi * kk;

		for (size_t i = 0; i < sc->tasks[t].hlen[qi]; i++) {
			if (len < kk) {
				top[len] = h[i];
				ch_sift_up(top, len++);
			} else if (h[i].a < top[0].a) {
				top[0] = h[i];
				ch_sift_down(top, len);
			}
		}
	}
	if (len == kk)
		thr = threshold(sc, top[0].a, sc->eq[qi]);
	for (size_t t = 0; t < sc->ntasks; t++) {
		const cand_list *c = &sc->tasks[t].cands[qi];

		for (size_t i = 0; i < c->len; i++)
			if (c->v[i].a <= thr)
				rows[m++] = c->v[i].row;
	}
	memcpy(rows + m, a->exc, a->nexc * sizeof(uint32_t));
	m += a->nexc;

	len = 0;
	rescore(a, dist_ops_get(), q, rows, m, out, &len,
		sc->kk < sc->a->n ? sc->kk : sc->a->n);
	heap_sort(out, len);
	*count = len;
	free(top);
	free(rows);
	return true;
}

rvf_code accel_search(const accel_index *a, const search_request *req,
		      rvf_hit *out, size_t *counts, rvf_error *err)
{
	size_t nq = req->nq, k = req->k, dimp = 4 * a->ngroups, nt;
	size_t work, want = req->threads ? req->threads : pool_width();
	scan_ctx sc = { .a = a, .nq = nq };
	int8_t *q8 = NULL;
	int32_t *qq = NULL;
	double *eq = NULL;
	rvf_code rc = RVF_OK;

	if (nq == 0)
		return RVF_OK;
	for (size_t q = 0; q < nq; q++)
		counts[q] = 0;
	if (k == 0)
		return RVF_OK;
	if (k > SIZE_MAX / nq || !out)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"search: k=%zu is too large for %zu queries",
				k, nq);
	/* k best of the coded rows: exceptions are measured separately */
	sc.kk = k < a->n ? k : a->n;
	sc.slack = (double)a->dim * 0x1p-22;

	work = a->nblocks * a->ngroups * nq;
	nt = work / WORK_PER_TASK;
	nt = nt < want ? nt : want;
	nt = nt < a->nblocks ? nt : a->nblocks;
	sc.ntasks = nt ? nt : 1;

	q8 = malloc(nq * dimp);
	qq = malloc(nq * sizeof(*qq));
	eq = malloc(nq * sizeof(*eq));
	sc.tasks = calloc(sc.ntasks, sizeof(task));
	if (!q8 || !qq || !eq || !sc.tasks)
		goto nomem;
	code_queries(a, req->queries, nq, q8, qq, eq);
	sc.q8 = q8;
	sc.qq = qq;
	sc.eq = eq;
	for (size_t t = 0; t < sc.ntasks; t++) {
		sc.tasks[t].b0 = a->nblocks * t / sc.ntasks;
		sc.tasks[t].b1 = a->nblocks * (t + 1) / sc.ntasks;
		if (!task_alloc(&sc.tasks[t], nq, sc.kk))
			goto nomem;
	}
	pool_run(scan_task, &sc, sc.ntasks);
	for (size_t t = 0; t < sc.ntasks; t++)
		if (sc.tasks[t].nomem)
			goto nomem;
	for (size_t q = 0; q < nq; q++)
		if (!finish_query(&sc, req->queries + q * a->dim, q,
				  out + q * k, &counts[q]))
			goto nomem;
	goto done;
nomem:
	rc = rvf_fail(err, RVF_E_NO_MEMORY, "search: out of memory");
done:
	if (sc.tasks)
		for (size_t t = 0; t < sc.ntasks; t++)
			task_free(&sc.tasks[t], nq);
	free(sc.tasks);
	free(q8);
	free(qq);
	free(eq);
	return rc;
}
