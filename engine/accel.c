/* accel.c - building the codes of a view's rows, carrying them across
 * commits, and searching with them.  The reasoning that keeps answers
 * exact is in accel.h. */
#include "accel.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "codes4.h"
#include "distance.h"
#include "error.h"
#include "hits.h"
#include "pool.h"

enum {
	MAX_DIM = 32768,      /* keeps 2 * sum c * cq inside 31 bits */
	QUERY_GROUP = 64,     /* queries per kernel call on one block */
	RUN4 = 64,            /* 4-bit blocks per kernel call (64 KiB at 128 dims) */
	CAND_FLUSH = 256,     /* 4-bit candidates gathered before measuring */
	CAND_CAP = CAND_FLUSH + RUN4 * CODE_BLOCK,
	RESCORE_CHUNK = 256,  /* candidates measured per float-kernel call */
};

#define DEAD UINT32_MAX
/* Norm^2 range of the rows IP and cosine code (others are exceptions),
 * and the range of |q|^2 |x|^2 a query may reach with them: inside it
 * float32 neither overflows nor meets the reference's zero-vector rule
 * (sqrt(|q|^2 |x|^2) < FLT_EPSILON gives cosine 1). */
#define NORM2_MIN 0x1p-60
#define NORM2_MAX 0x1p60
#define PROD2_MIN 0x1p-40
#define PROD2_MAX 0x1p120

/* Code work (groups x blocks x queries) a task must have to be worth a
 * worker's wake-up. */
#define WORK_PER_TASK ((size_t)1 << 16)

/* The codes of every row ever coded on one grid: append-only blocks in
 * fixed chunks, so an index keeps reading its blocks while a later view's
 * index adds its own. */
typedef struct code_store {
	atomic_int refs;
	pthread_mutex_t mu;  /* guards used and the chunk tables' growth */
	const code_ops *ops;    /* 8-bit codes: their kernels */
	const code4_ops *ops4;  /* 4-bit codes: theirs */
	unsigned cmax;          /* the largest code: 255 or 15 */
	rvf_metric metric;
	size_t dim, ngroups;    /* groups of 4 (8-bit) or 8 (4-bit) dims */
	double s;            /* one scale for every dimension */
	double *o;           /* per dimension: the smallest value */
	double omax;         /* the largest |o| */
	double e_lim;        /* a coded row's error above this: exception */
	size_t used;         /* blocks handed out */
	size_t chunk_blocks; /* blocks per allocation */
	size_t nchunks, chunk_cap;
	uint8_t **codes;     /* per chunk: chunk_blocks * ngroups * 64 bytes */
	int32_t **base;      /* L2, per chunk and slot: sum c^2 - 256 sum c */
	float **err;         /* 4-bit, per chunk and slot: |x - x^|, rounded up */
} code_store;

struct accel_index {
	atomic_int refs;
	code_store *cs;
	const search_row *rows;
	size_t n;            /* rows */
	size_t nblocks;      /* blocks [0, nblocks) of the store are scanned */
	uint32_t *slot_row;  /* per slot: index into rows, or DEAD */
	uint32_t *row_slot;  /* per row: its slot */
	bool sorted;         /* rows ascend by id: accel_derive can merge */
	uint64_t *skip;      /* per slot: dead or an exception */
	uint32_t *exc;       /* slots of exceptions */
	size_t nexc, ndead;
	double e_max;        /* the largest |x - x^| of a coded row */
	double xmax;         /* the largest norm of a coded row */
	double x2min;        /* the smallest norm^2 of a coded row */
};

static const int32_t zero_base[CODE_BLOCK];

static bool skipped(const accel_index *a, size_t slot)
{
	return a->skip[slot / 64] >> (slot % 64) & 1;
}

static void set_skip(accel_index *a, size_t slot)
{
	a->skip[slot / 64] |= 1ull << (slot % 64);
}

static uint8_t *block_codes(const code_store *cs, size_t b)
{
	return cs->codes[b / cs->chunk_blocks] +
	       b % cs->chunk_blocks * cs->ngroups * 64;
}

static float *block_err(const code_store *cs, size_t b)
{
	return cs->err[b / cs->chunk_blocks] + b % cs->chunk_blocks * CODE_BLOCK;
}

static int32_t *block_base(const code_store *cs, size_t b)
{
	return cs->base[b / cs->chunk_blocks] +
	       b % cs->chunk_blocks * CODE_BLOCK;
}

/* ------------------------------------------------------------------ */
/* Rows as the codes see them                                          */
/* ------------------------------------------------------------------ */

/* Row p as doubles, unit length for cosine; false when it is an
 * exception (accel.h).  *norm = its norm (before normalising). */
static bool row_values(rvf_metric m, const unsigned char *p, size_t dim,
		       double *x, double *norm)
{
	double nn = 0;

	for (size_t d = 0; d < dim; d++) {
		float f = ldf32(p + 4 * d);

		if (!isfinite(f))
			return false;
		x[d] = f;
		nn += x[d] * x[d];
	}
	*norm = sqrt(nn);
	if (m == RVF_METRIC_L2)
		return true;
	if (nn > NORM2_MAX)
		return false;
	if (m == RVF_METRIC_COSINE) {
		if (nn < NORM2_MIN)
			return false;
		for (size_t d = 0; d < dim; d++)
			x[d] /= *norm;
	}
	return true;
}

/* The code of value v in dimension d, and |v - v^|^2 added to *err2. */
static int code_of(const code_store *cs, size_t d, double v, double *err2)
{
	double c = nearbyint((v - cs->o[d]) / cs->s);
	double t;

	c = c < 0 ? 0 : c > cs->cmax ? cs->cmax : c;
	t = v - (cs->o[d] + cs->s * c);
	*err2 += t * t;
	return (int)c;
}

/* Rounding in the double arithmetic above, bounded generously. */
static double error_slack(const code_store *cs)
{
	return 1e-12 * (cs->omax + cs->cmax * cs->s + 1) * sqrt((double)cs->dim);
}

/* ------------------------------------------------------------------ */
/* Stores and indexes                                                  */
/* ------------------------------------------------------------------ */

static void store_unref(code_store *cs)
{
	if (!cs || atomic_fetch_sub(&cs->refs, 1) != 1)
		return;
	for (size_t c = 0; c < cs->nchunks; c++) {
		free(cs->codes[c]);
		if (cs->base)
			free(cs->base[c]);
		if (cs->err)
			free(cs->err[c]);
	}
	free(cs->codes);
	free(cs->base);
	free(cs->err);
	free(cs->o);
	pthread_mutex_destroy(&cs->mu);
	free(cs);
}

static code_store *store_new(size_t dim, rvf_metric m, const code_ops *ops,
			     const code4_ops *ops4, size_t n)
{
	code_store *cs = calloc(1, sizeof(*cs));

	if (!cs)
		return NULL;
	atomic_init(&cs->refs, 1);
	pthread_mutex_init(&cs->mu, NULL);
	cs->ops = ops;
	cs->ops4 = ops4;
	cs->cmax = ops4 ? 15 : 255;
	cs->metric = m;
	cs->dim = dim;
	cs->ngroups = ops4 ? (dim + 7) / 8 : (dim + 3) / 4;
	/* the rows in at most 64 allocations; room for as many again and
	 * 64k more added by commits */
	cs->chunk_blocks = ((n + CODE_BLOCK - 1) / CODE_BLOCK + 63) / 64;
	if (cs->chunk_blocks < 64)
		cs->chunk_blocks = 64;
	cs->chunk_cap = (2 * n + 65536) / (cs->chunk_blocks * CODE_BLOCK) + 2;
	cs->o = malloc(dim * sizeof(double));
	cs->codes = calloc(cs->chunk_cap, sizeof(*cs->codes));
	if (m == RVF_METRIC_L2 && !ops4)
		cs->base = calloc(cs->chunk_cap, sizeof(*cs->base));
	if (ops4)
		cs->err = calloc(cs->chunk_cap, sizeof(*cs->err));
	if (!cs->o || !cs->codes || (m == RVF_METRIC_L2 && !ops4 && !cs->base) ||
	    (ops4 && !cs->err)) {
		store_unref(cs);
		return NULL;
	}
	return cs;
}

/* Hands out nb fresh blocks; their first one through *b0. */
static bool store_take(code_store *cs, size_t nb, size_t *b0)
{
	bool ok = true;

	pthread_mutex_lock(&cs->mu);
	while (ok && cs->nchunks * cs->chunk_blocks < cs->used + nb) {
		size_t c = cs->nchunks;

		if (c == cs->chunk_cap) {
			ok = false;
			break;
		}
		cs->codes[c] = calloc(cs->chunk_blocks, cs->ngroups * 64);
		if (cs->base)
			cs->base[c] = calloc(cs->chunk_blocks * CODE_BLOCK,
					     sizeof(int32_t));
		if (cs->err)
			cs->err[c] = calloc(cs->chunk_blocks * CODE_BLOCK,
					    sizeof(float));
		if (!cs->codes[c] || (cs->base && !cs->base[c]) ||
		    (cs->err && !cs->err[c])) {
			free(cs->codes[c]);
			if (cs->base)
				free(cs->base[c]);
			if (cs->err)
				free(cs->err[c]);
			ok = false;
			break;
		}
		cs->nchunks++;
	}
	if (ok) {
		*b0 = cs->used;
		cs->used += nb;
	}
	pthread_mutex_unlock(&cs->mu);
	return ok;
}

size_t accel_estimate(size_t n, size_t dim, rvf_metric metric, unsigned bits)
{
	size_t nblocks = (n + CODE_BLOCK - 1) / CODE_BLOCK;
	size_t per_block = (bits == 4 ? (dim + 7) / 8 * 64 + CODE_BLOCK * 4 :
					(dim + 3) / 4 * 64) +
			   CODE_BLOCK * 8 + 2 +
			   (bits == 8 && dist_metric(metric) == RVF_METRIC_L2 ?
				    CODE_BLOCK * 4 : 0);

	return nblocks * per_block;
}

size_t accel_bytes(const accel_index *a)
{
	const code_store *cs = a->cs;

	return a->nblocks *
		       (cs->ngroups * 64 + (cs->base || cs->err ? CODE_BLOCK * 4 : 0)) +
	       a->nblocks * CODE_BLOCK * 4 + a->n * 4 + a->nblocks * 2 +
	       a->nexc * sizeof(uint32_t) + cs->dim * sizeof(double) +
	       sizeof(*a) + sizeof(*cs);
}

size_t accel_dead(const accel_index *a)
{
	return a->ndead;
}

bool accel_stale(const accel_index *a)
{
	return a->ndead > a->n / 4 || a->nexc > a->n / 64 + 16;
}

accel_index *accel_ref(accel_index *a)
{
	atomic_fetch_add(&a->refs, 1);
	return a;
}

void accel_release(accel_index *a)
{
	if (!a || atomic_fetch_sub(&a->refs, 1) != 1)
		return;
	store_unref(a->cs);
	free(a->slot_row);
	free(a->row_slot);
	free(a->skip);
	free(a->exc);
	free(a);
}

static accel_index *index_new(code_store *cs, const search_row *rows,
			      size_t n, size_t nblocks)
{
	accel_index *a = calloc(1, sizeof(*a));
	size_t nslots = nblocks * CODE_BLOCK;

	if (!a)
		return NULL;
	atomic_init(&a->refs, 1);
	a->x2min = INFINITY;
	a->cs = cs;
	atomic_fetch_add(&cs->refs, 1);
	a->rows = rows;
	a->n = n;
	a->nblocks = nblocks;
	a->slot_row = malloc((nslots ? nslots : 1) * sizeof(uint32_t));
	a->row_slot = malloc((n ? n : 1) * sizeof(uint32_t));
	a->skip = calloc((nslots + 63) / 64 + 1, 8);
	if (!a->slot_row || !a->row_slot || !a->skip) {
		accel_release(a);
		return NULL;
	}
	return a;
}

/* What coding a range of rows learnt: folded into the index after. */
typedef struct code_stats {
	double e_max, xmax, x2min;
} code_stats;

/* Code c of dimension d of row rr into block blk. */
static void put_code(const code_store *cs, uint8_t *blk, size_t rr, size_t d,
		     int c)
{
	if (cs->ops4) {
		uint8_t *b = blk + d / 8 * 64 + d % 8 / 2 * 16 + rr;
		int sh = d % 2 * 4;

		*b = (uint8_t)((*b & ~(15 << sh)) | c << sh);
	} else {
		blk[d / 4 * 64 + rr * 4 + d % 4] = (uint8_t)c;
	}
}

/* Codes row r of the index into its slot; false when the row becomes an
 * exception.  x is dim doubles of scratch. */
static bool code_row(const accel_index *a, size_t slot, double *x,
		     code_stats *st)
{
	const code_store *cs = a->cs;
	uint8_t *blk = block_codes(cs, slot / CODE_BLOCK);
	size_t rr = slot % CODE_BLOCK;
	int64_t sum = 0, sum2 = 0;
	double err2 = 0, e, norm;

	if (!row_values(cs->metric, a->rows[a->slot_row[slot]].data, cs->dim,
			x, &norm))
		return false;
	for (size_t d = 0; d < cs->dim; d++) {
		int c = code_of(cs, d, x[d], &err2);

		put_code(cs, blk, rr, d, c);
		sum += c;
		sum2 += c * c;
	}
	e = sqrt(err2) * (1 + 1e-12) + error_slack(cs);
	if (e > cs->e_lim)
		return false;
	if (e > st->e_max)
		st->e_max = e;
	if (norm > st->xmax)
		st->xmax = norm;
	if (norm * norm < st->x2min)
		st->x2min = norm * norm;
	if (cs->base)
		block_base(cs, slot / CODE_BLOCK)[rr] = (int32_t)(sum2 - 256 * sum);
	if (cs->err) {
		float ef = (float)e;

		block_err(cs, slot / CODE_BLOCK)[rr] = ef < e ? nextafterf(ef, INFINITY) : ef;
	}
	return true;
}

/* The grid: o = per-dimension minimum, s from the widest range. */
static bool pick_scale(code_store *cs, const search_row *rows, size_t n,
		       double *x)
{
	double *hi = malloc(cs->dim * sizeof(double)), range = 0, norm;

	if (!hi)
		return false;
	for (size_t d = 0; d < cs->dim; d++) {
		cs->o[d] = INFINITY;
		hi[d] = -INFINITY;
	}
	for (size_t r = 0; r < n; r++) {
		if (!row_values(cs->metric, rows[r].data, cs->dim, x, &norm))
			continue;
		for (size_t d = 0; d < cs->dim; d++) {
			if (x[d] < cs->o[d])
				cs->o[d] = x[d];
			if (x[d] > hi[d])
				hi[d] = x[d];
		}
	}
	for (size_t d = 0; d < cs->dim; d++) {
		if (cs->o[d] > hi[d]) /* no finite row */
			cs->o[d] = hi[d] = 0;
		if (hi[d] - cs->o[d] > range)
			range = hi[d] - cs->o[d];
		if (fabs(cs->o[d]) > cs->omax)
			cs->omax = fabs(cs->o[d]);
	}
	cs->s = range > 0 ? range / cs->cmax : 1;
	/* inside the range every code is within half a step per dimension;
	 * rows added later may stray a little further */
	cs->e_lim = 4 * (0.5 * cs->s * sqrt((double)cs->dim) * (1 + 1e-9) +
			 error_slack(cs));
	free(hi);
	return true;
}

/* One thread's share of a build: slots [from, to), its exceptions. */
typedef struct code_part {
	accel_index *a;
	size_t from, to;
	uint32_t *exc;
	size_t nexc;
	code_stats st;
	bool nomem;
} code_part;

static void code_part_run(void *ctx, size_t i)
{
	code_part *p = (code_part *)ctx + i;
	double *x = malloc(p->a->cs->dim * sizeof(double));

	p->nomem = !x;
	for (size_t s = p->from; x && s < p->to; s++) {
		if (p->a->slot_row[s] == DEAD || code_row(p->a, s, x, &p->st))
			continue;
		if ((p->nexc & (p->nexc + 1)) == 0) { /* grow at 2^k - 1 */
			uint32_t *e = realloc(p->exc, (2 * p->nexc + 2) *
						      sizeof(uint32_t));

			if (!e) {
				p->nomem = true;
				break;
			}
			p->exc = e;
		}
		p->exc[p->nexc++] = (uint32_t)s;
	}
	free(x);
}

/* Codes slots [from, to) of a, on every worker of the pool for large
 * ranges (each part whole blocks: parts never share a byte); exceptions
 * are flagged and listed in slot order.  false: out of memory. */
static bool code_slots(accel_index *a, size_t from, size_t to)
{
	size_t nb = (to - from + CODE_BLOCK - 1) / CODE_BLOCK;
	size_t np = (to - from) * a->cs->dim >> 22; /* 4M values a part */
	size_t total = a->nexc;
	code_part *parts;
	bool ok = true;
	uint32_t *exc;

	np = np < pool_width() ? np : pool_width();
	np = np < nb ? np : nb;
	np = np ? np : 1;
	parts = calloc(np, sizeof(*parts));
	if (!parts)
		return false;
	for (size_t i = 0; i < np; i++) {
		parts[i].a = a;
		parts[i].from = from + nb * i / np * CODE_BLOCK;
		parts[i].to = i + 1 == np ? to : from + nb * (i + 1) / np * CODE_BLOCK;
		parts[i].st = (code_stats){ a->e_max, a->xmax, a->x2min };
	}
	pool_run(code_part_run, parts, np);
	for (size_t i = 0; i < np; i++) {
		ok &= !parts[i].nomem;
		total += parts[i].nexc;
		if (parts[i].st.e_max > a->e_max)
			a->e_max = parts[i].st.e_max;
		if (parts[i].st.xmax > a->xmax)
			a->xmax = parts[i].st.xmax;
		if (parts[i].st.x2min < a->x2min)
			a->x2min = parts[i].st.x2min;
	}
	/* the list grows at 2^k - 1 (code_slots, accel_derive): keep room */
	exc = ok ? realloc(a->exc, (total | 1) * 2 * sizeof(uint32_t)) : NULL;
	if (exc) {
		a->exc = exc;
		for (size_t i = 0; i < np; i++)
			for (size_t k = 0; k < parts[i].nexc; k++) {
				a->exc[a->nexc++] = parts[i].exc[k];
				set_skip(a, parts[i].exc[k]);
			}
	}
	for (size_t i = 0; i < np; i++)
		free(parts[i].exc);
	free(parts);
	return exc != NULL;
}

static bool too_many_exceptions(const accel_index *a)
{
	return a->nexc > a->n / 16 + 16;
}

accel_index *accel_build(const search_row *rows, size_t n, size_t dim,
			 rvf_metric metric, const code_ops *ops,
			 const code4_ops *ops4, const char **why)
{
	size_t nblocks = (n + CODE_BLOCK - 1) / CODE_BLOCK, b0;
	code_store *cs = NULL;
	accel_index *a = NULL;
	double *x = NULL;

	*why = "out of memory";
	if (dim == 0 || dim > MAX_DIM || n == 0 || n >= UINT32_MAX / 2) {
		*why = "dimension or row count outside what codes handle";
		return NULL;
	}
	if (ops4 && dist_metric(metric) != RVF_METRIC_L2) {
		*why = "4-bit codes serve the L2 metric only";
		return NULL;
	}
	cs = store_new(dim, dist_metric(metric), ops, ops4, n);
	x = malloc(dim * sizeof(double));
	if (!cs || !x || !pick_scale(cs, rows, n, x) ||
	    !store_take(cs, nblocks, &b0) ||
	    !(a = index_new(cs, rows, n, nblocks)))
		goto fail;
	a->sorted = true;
	for (size_t r = 0; r < n; r++) {
		a->slot_row[r] = a->row_slot[r] = (uint32_t)r;
		if (r && rows[r - 1].id >= rows[r].id)
			a->sorted = false;
	}
	for (size_t s = n; s < nblocks * CODE_BLOCK; s++) {
		a->slot_row[s] = DEAD;
		set_skip(a, s);
	}
	if (!code_slots(a, 0, n))
		goto fail;
	if (too_many_exceptions(a)) {
		*why = "too many rows with NaN, infinite or out-of-range values";
		goto fail;
	}
	store_unref(cs); /* the index holds it */
	free(x);
	*why = NULL;
	return a;
fail:
	accel_release(a);
	store_unref(cs);
	free(x);
	return NULL;
}

/* How many leading rows a and b share (same ids, same bytes). */
static size_t common_prefix(const search_row *a, size_t na,
			    const search_row *b, size_t nb)
{
	size_t m = na < nb ? na : nb, p = 0;

	while (p + 256 <= m && !memcmp(a + p, b + p, 256 * sizeof(*a)))
		p += 256;
	while (p < m && a[p].id == b[p].id && a[p].data == b[p].data)
		p++;
	return p;
}

/*
 * The walk over the rows after the common prefix, both lists ascending by
 * id: fn is told of every row that stayed (i in prev, j in rows), left (j
 * = DEAD) or came (i = DEAD).  A row whose id stayed but whose bytes
 * changed left and came.
 */
typedef void (*merge_fn)(void *ctx, size_t i, size_t j);

static void merge(const search_row *prev, size_t np, const search_row *rows,
		  size_t n, size_t p, merge_fn fn, void *ctx)
{
	size_t i = p, j = p;

	while (i < np || j < n) {
		if (j == n || (i < np && prev[i].id < rows[j].id)) {
			fn(ctx, i++, DEAD);
		} else if (i == np || prev[i].id > rows[j].id) {
			fn(ctx, DEAD, j++);
		} else if (prev[i].data == rows[j].data) {
			fn(ctx, i++, j++);
		} else {
			fn(ctx, i++, DEAD);
			fn(ctx, DEAD, j++);
		}
	}
}

static void count_fresh(void *ctx, size_t i, size_t j)
{
	if (i == DEAD)
		(*(size_t *)ctx)++;
	(void)j;
}

typedef struct carry {
	const accel_index *prev;
	accel_index *a;
	size_t next_fresh;       /* slot of the next new row */
} carry;

static void carry_row(void *ctx, size_t i, size_t j)
{
	carry *c = ctx;
	accel_index *a = c->a;
	size_t s;

	if (i == DEAD) {
		s = c->next_fresh++;
		a->slot_row[s] = (uint32_t)j;
		a->row_slot[j] = (uint32_t)s;
		a->skip[s / 64] &= ~(1ull << (s % 64));
	} else if (j == DEAD) {
		s = c->prev->row_slot[i];
		a->slot_row[s] = DEAD;
		set_skip(a, s);
		a->ndead++;
	} else {
		s = c->prev->row_slot[i];
		a->slot_row[s] = (uint32_t)j;
		a->row_slot[j] = (uint32_t)s;
	}
}

accel_index *accel_derive(const accel_index *prev, const search_row *rows,
			  size_t n, const char **why)
{
	code_store *cs = prev->cs;
	size_t p, nfresh = 0, nbf, b0 = 0, nb, old_slots, new_slots;
	accel_index *a = NULL;
	carry c;

	*why = "out of memory";
	if (n == 0 || n >= UINT32_MAX / 2 || !prev->sorted) {
		*why = "row count outside what codes handle, or rows not sorted";
		return NULL;
	}
	/* most commits append: the rows before the first change keep their
	 * slots and their indexes, copied wholesale */
	p = common_prefix(prev->rows, prev->n, rows, n);
	for (size_t k = p ? p : 1; k < n; k++)
		if (rows[k - 1].id >= rows[k].id) {
			*why = "rows not in id order";
			return NULL;
		}
	merge(prev->rows, prev->n, rows, n, p, count_fresh, &nfresh);
	if (nfresh > n / 2 + 1024) {
		*why = "most rows are new";
		return NULL;
	}
	nbf = (nfresh + CODE_BLOCK - 1) / CODE_BLOCK;
	if (nbf && !store_take(cs, nbf, &b0)) {
		*why = "the code store is full";
		return NULL;
	}
	nb = nbf && b0 + nbf > prev->nblocks ? b0 + nbf : prev->nblocks;
	a = index_new(cs, rows, n, nb);
	if (!a)
		goto fail;
	a->e_max = prev->e_max;
	a->xmax = prev->xmax;
	a->x2min = prev->x2min;
	a->sorted = true;
	/* what did not change, as it was; slots past prev's: dead until a
	 * new row takes them */
	old_slots = prev->nblocks * CODE_BLOCK;
	new_slots = nb * CODE_BLOCK;
	memcpy(a->slot_row, prev->slot_row, old_slots * sizeof(uint32_t));
	memcpy(a->skip, prev->skip, (old_slots + 63) / 64 * 8);
	for (size_t s = old_slots; s < new_slots; s++)
		set_skip(a, s);
	memcpy(a->row_slot, prev->row_slot, p * sizeof(uint32_t));
	a->ndead = prev->ndead + (new_slots - old_slots - nfresh);
	c = (carry){ .prev = prev, .a = a, .next_fresh = b0 * CODE_BLOCK };
	merge(prev->rows, prev->n, rows, n, p, carry_row, &c);
	/* the exceptions that stayed, then the new rows' */
	for (size_t k = 0; k < prev->nexc; k++) {
		uint32_t s = prev->exc[k];

		if (a->slot_row[s] == DEAD)
			continue;
		if ((a->nexc & (a->nexc + 1)) == 0) {
			uint32_t *e = realloc(a->exc, (2 * a->nexc + 2) *
						      sizeof(uint32_t));

			if (!e)
				goto fail;
			a->exc = e;
		}
		a->exc[a->nexc++] = s;
	}
	if (nfresh && !code_slots(a, b0 * CODE_BLOCK, b0 * CODE_BLOCK + nfresh))
		goto fail;
	if (too_many_exceptions(a)) {
		*why = "too many new rows the codes cannot bound";
		goto fail;
	}
	*why = NULL;
	return a;
fail:
	accel_release(a);
	return NULL;
}

/* The query's norm^2 in double, or -1 when a value is not finite. */
static double query_norm2(const float *q, size_t dim)
{
	double nn = 0;

	for (size_t d = 0; d < dim; d++) {
		if (!isfinite(q[d]))
			return -1;
		nn += (double)q[d] * q[d];
	}
	return nn;
}

bool accel_applies(const accel_index *a, const search_request *req)
{
	rvf_metric m;

	if (!a)
		return false;
	m = dist_metric(req->metric);
	if (m != a->cs->metric || req->accept || req->rows != a->rows ||
	    req->nrows != a->n || req->dim != a->cs->dim)
		return false;
	for (size_t i = 0; i < req->nq; i++) {
		double nn = query_norm2(req->queries + i * req->dim, req->dim);

		if (nn < 0)
			return false;
		if (m != RVF_METRIC_L2 &&
		    (nn > NORM2_MAX || nn * a->xmax * a->xmax > PROD2_MAX))
			return false;
		if (m == RVF_METRIC_COSINE &&
		    (nn < NORM2_MIN || nn * a->x2min < PROD2_MIN))
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Search                                                              */
/* ------------------------------------------------------------------ */

/* A row by code distance; heaps keep the largest on top. */
typedef struct code_hit {
	int32_t a;
	uint32_t slot;
} code_hit;

typedef struct cand_list {
	code_hit *v;
	size_t len, cap;
} cand_list;

typedef struct scan_ctx {
	const accel_index *a;
	size_t nq, kk, ntasks, qstride;
	size_t kout;             /* hits per query: min(k, rows) */
	const int8_t *qp;        /* prepared queries, qstride bytes apart */
	const int32_t *qq;       /* per query: sum cq^2 (L2), else 0 */
	const double *qe;        /* per query: L2 e_q, else the A margin */
	double slack;            /* L2: relative rounding of float distances */
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
 * nearest, given that k rows have code distance <= top.
 *
 * L2: s*sqrt(top) + e_max + e_q bounds their true distances (the float
 * kernels may round that up by a factor 1 + slack), and a row is within
 * it when s*sqrt(A) - e_max - e_q is.  IP and cosine: A within a margin
 * of top, computed per query (code_queries).
 */
static int32_t threshold(const scan_ctx *sc, int32_t top, size_t q)
{
	const accel_index *a = sc->a;
	double lim2;

	if (a->cs->metric == RVF_METRIC_L2) {
		double e = a->e_max + sc->qe[q];
		double ub = a->cs->s * sqrt((double)top) + e;
		double lim = (ub * (1 + sc->slack) + e) / a->cs->s * (1 + 1e-9) +
			     1e-9;

		lim2 = lim * lim;
	} else {
		lim2 = (double)top + sc->qe[q];
	}
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
		  uint32_t slot)
{
	code_hit *h = t->heaps + q * sc->kk;
	size_t len = t->hlen[q];

	if (len < sc->kk) {
		h[len] = (code_hit){ a, slot };
		ch_sift_up(h, len);
		t->hlen[q] = ++len;
		if (len == sc->kk)
			t->thr[q] = threshold(sc, h[0].a, q);
	} else if (a < h[0].a) {
		h[0] = (code_hit){ a, slot };
		ch_sift_down(h, len);
		t->thr[q] = threshold(sc, h[0].a, q);
	}
	if (a <= t->thr[q] &&
	    !cand_push(&t->cands[q], (code_hit){ a, slot }, t->thr[q]))
		t->nomem = true;
}

static void scan_task(void *ctx, size_t ti)
{
	const scan_ctx *sc = ctx;
	const accel_index *a = sc->a;
	const code_store *cs = a->cs;
	task *t = &sc->tasks[ti];

	for (size_t b = t->b0; b < t->b1; b++) {
		const uint8_t *blk = block_codes(cs, b);
		const int32_t *base = cs->base ? block_base(cs, b) : zero_base;
		size_t s0 = b * CODE_BLOCK;

		for (size_t q0 = 0; q0 < sc->nq; q0 += QUERY_GROUP) {
			size_t g = sc->nq - q0 < QUERY_GROUP ? sc->nq - q0 :
							       QUERY_GROUP;

			cs->ops->dists(blk, cs->ngroups, base,
				       sc->qp + q0 * sc->qstride, sc->qq + q0,
				       t->thr + q0, g, t->dist, t->mask);
			for (size_t i = 0; i < g; i++) {
				size_t q = q0 + i;
				const int32_t *d = t->dist + i * CODE_BLOCK;

				/* most blocks have no row under the bar */
				for (unsigned m = t->mask[i]; m; m &= m - 1) {
					size_t r = (size_t)__builtin_ctz(m);

					if (d[r] > t->thr[q] || skipped(a, s0 + r))
						continue;
					offer(sc, t, q, d[r], (uint32_t)(s0 + r));
				}
			}
		}
	}
}

/* L2: the query on the rows' grid, cq - 128 as signed bytes, with
 * sum cq^2 and e_q = |q - q^|. */
static void code_query_l2(const code_store *cs, const float *q, int8_t *q8,
			  int32_t *qq, double *eq)
{
	double err2 = 0;
	int64_t sum2 = 0;

	for (size_t d = 0; d < cs->dim; d++) {
		int c = code_of(cs, d, q[d], &err2);

		q8[d] = (int8_t)(c - 128);
		sum2 += c * c;
	}
	*qq = (int32_t)sum2;
	*eq = sqrt(err2) * (1 + 1e-12) + error_slack(cs);
}

/* IP and cosine: the query (unit for cosine) on its own grid t * cq,
 * cq in [-127, 127]; the margin of A that (2E + 2 sigma) / (s t / 2)
 * allows (accel.h). */
static double code_query_lin(const accel_index *a, const float *q, int8_t *q8)
{
	const code_store *cs = a->cs;
	size_t dim = cs->dim;
	double nn = query_norm2(q, dim), norm = sqrt(nn), scale = 1, big = 0;
	double t, err2 = 0, eq, e, sigma, margin;

	if (cs->metric == RVF_METRIC_COSINE)
		scale = 1 / norm;
	for (size_t d = 0; d < dim; d++)
		if (fabs(q[d] * scale) > big)
			big = fabs(q[d] * scale);
	t = big > 0 ? big / 127 : 1;
	for (size_t d = 0; d < dim; d++) {
		double v = q[d] * scale, c = nearbyint(v / t), r;

		c = c < -127 ? -127 : c > 127 ? 127 : c;
		r = v - t * c;
		err2 += r * r;
		q8[d] = (int8_t)c;
	}
	eq = sqrt(err2) * (1 + 1e-12) + 1e-12 * (big + 1) * sqrt((double)dim);
	if (cs->metric == RVF_METRIC_COSINE) {
		e = a->e_max + eq * (1 + a->e_max) + 1e-9;
		sigma = (double)(dim + 64) * 0x1p-20;
	} else {
		e = norm * a->e_max + eq * (a->xmax + a->e_max);
		e = e * (1 + 1e-9) + 1e-300;
		sigma = (double)(dim + 16) * 0x1p-21 * norm * a->xmax +
			(double)dim * 0x1p-140;
	}
	margin = (2 * e + 2 * sigma) / (cs->s * t / 2) * (1 + 1e-9) + 2;
	return margin;
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

/* Measures the rows of slots[0..m) against query q exactly, as
 * search_exact does, and keeps the k best. */
static void rescore(const accel_index *a, const dist_ops *ops, const float *q,
		    const uint32_t *slots, size_t m, rvf_hit *h, size_t *len,
		    size_t kk)
{
	const unsigned char *px[RESCORE_CHUNK];
	float dist[RESCORE_CHUNK], xx[RESCORE_CHUNK], qq = 0;
	rvf_metric metric = a->cs->metric;

	if (metric == RVF_METRIC_COSINE) {
		const unsigned char *p = (const unsigned char *)q;

		ops->norms(&p, 1, a->cs->dim, &qq);
	}
	for (size_t i0 = 0; i0 < m; i0 += RESCORE_CHUNK) {
		size_t c = m - i0 < RESCORE_CHUNK ? m - i0 : RESCORE_CHUNK;

		for (size_t i = 0; i < c; i++)
			px[i] = a->rows[a->slot_row[slots[i0 + i]]].data;
		if (metric == RVF_METRIC_COSINE)
			ops->norms(px, c, a->cs->dim, xx);
		dist_block(ops, metric, q, &qq, 1, a->cs->dim, px, xx, c, dist);
		for (size_t i = 0; i < c; i++)
			heap_offer(h, len, kk,
				   (rvf_hit){ .id = a->rows[a->slot_row[slots[i0 + i]]].id,
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
	uint32_t *slots;
	int32_t thr = INT32_MAX;

	for (size_t t = 0; t < sc->ntasks; t++)
		total += sc->tasks[t].cands[qi].len;
	slots = malloc((total + a->nexc + 1) * sizeof(uint32_t));
	if (!top || !slots) {
		free(top);
		free(slots);
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
		thr = threshold(sc, top[0].a, qi);
	for (size_t t = 0; t < sc->ntasks; t++) {
		const cand_list *c = &sc->tasks[t].cands[qi];

		for (size_t i = 0; i < c->len; i++)
			if (c->v[i].a <= thr)
				slots[m++] = c->v[i].slot;
	}
	if (a->nexc)
		memcpy(slots + m, a->exc, a->nexc * sizeof(uint32_t));
	m += a->nexc;

	len = 0;
	rescore(a, dist_ops_get(), q, slots, m, out, &len, sc->kout);
	heap_sort(out, len);
	*count = len;
	free(top);
	free(slots);
	return true;
}

/* ------------------------------------------------------------------ */
/* 4-bit codes: a lower bound, then the float rows                     */
/* ------------------------------------------------------------------ */

/*
 * With 4-bit codes the query stays in floats: per dimension a table of
 * (q_d - x^_d)^2 for the 16 codes, in units of delta, rounded down, so a
 * row's table sum times delta is at most |q - x^|^2.  Each thread keeps
 * the k best rows it measured with the exact scan's float kernels; a row
 * is measured only when its sum allows |q - x| <= the k-th distance so
 * far: |q - x| >= |q - x^| - e_max.  The rows of the true answer always
 * pass (their distance is at most every running k-th distance), and what
 * is returned are float distances of the exact scan: its answer, ties and
 * all.
 */
typedef struct task4 {
	size_t b0, b1;           /* blocks [b0, b1) */
	rvf_hit *heaps;          /* query q's k best measured at heaps + q * kout */
	size_t *len;
	uint16_t *thr;           /* per query: table sums above this cannot win */
	double *rlim;            /* per query: |q - x| above this cannot win */
	uint16_t sums[RUN4 * CODE_BLOCK], masks[RUN4];
	uint32_t *cand;          /* per query, CAND_CAP apart: slots to measure */
	float *cbound;           /* and a lower bound of their |q - x| */
	size_t *ncand;
} task4;

typedef struct scan4 {
	const accel_index *a;
	const search_request *req;
	const dist_ops *dops;
	size_t nq, kout, ntasks, tbytes;
	const uint8_t *tables;   /* per query, tbytes apart */
	const double *delta;     /* per query: the table's unit */
	const double *ftables;   /* per query, 16 entries a dimension (padded) */
	task4 *tasks;
} scan4;

/* The table of query q (codes4.h) and its unit; ft: the same entries
 * unrounded, 16 a dimension. */
static double make_table(const code_store *cs, const float *q, uint8_t *t,
			 double *ft)
{
	double big = 0, delta, scale;

	memset(t, 0, cs->ngroups * 128);
	memset(ft, 0, cs->ngroups * 8 * 16 * sizeof(double));
	for (size_t d = 0; d < cs->dim; d++)
		for (unsigned c = 0; c <= cs->cmax; c++) {
			double v = q[d] - (cs->o[d] + cs->s * c);

			big = v * v > big ? v * v : big;
		}
	delta = big > 0 ? big / CODE4_ENTRY_MAX : 1;
	scale = (1 - 1e-12) / delta;
	for (size_t d = 0; d < cs->dim; d++) {
		uint8_t *e = t + d / 8 * 128 + d % 2 * 64 + d % 8 / 2 * 16;

		for (unsigned c = 0; c <= cs->cmax; c++) {
			double v = q[d] - (cs->o[d] + cs->s * c);
			double u = floor(v * v * scale);

			e[c] = (uint8_t)(u > CODE4_ENTRY_MAX ? CODE4_ENTRY_MAX : u);
			ft[d * 16 + c] = v * v;
		}
	}
	return delta;
}

/* The bars of query q once its k-th float distance is fk (a squared L2
 * distance): the largest |q - x| a row may have, and the largest table
 * sum.  Float rounding: the real squared distance is at most
 * fk (1 + 2 slack) plus what underflow lost. */
static void set_bar(const scan4 *sc, task4 *t, size_t q, float fk)
{
	const accel_index *a = sc->a;
	double slack = (double)a->cs->dim * 0x1p-22, r2, lim, u;

	if (!(fk < INFINITY))
		return;
	r2 = (double)fk * (1 + 2 * slack) + (double)a->cs->dim * 0x1p-120;
	t->rlim[q] = sqrt(r2) * (1 + 1e-12);
	lim = t->rlim[q] + a->e_max;
	u = lim * lim * (1 + 1e-9) / sc->delta[q];
	t->thr[q] = u >= UINT16_MAX ? UINT16_MAX : (uint16_t)u;
}

/* Asks for the float rows of candidates [from, to) of query q that the
 * bar still admits: they lie anywhere in the file, and one miss (and
 * page walk) after another would cost more than the code scan. */
static void fetch4(const scan4 *sc, const task4 *t, size_t q, size_t from,
		   size_t to)
{
	const accel_index *a = sc->a;
	const uint32_t *cand = t->cand + q * CAND_CAP;
	const float *cb = t->cbound + q * CAND_CAP;
	size_t bytes = 4 * a->cs->dim;

	for (size_t c = from; c < to; c++) {
		const unsigned char *p;

		if (cb[c] > t->rlim[q])
			continue;
		p = a->rows[a->slot_row[cand[c]]].data;
		for (size_t off = 0; off < bytes; off += 64)
			__builtin_prefetch(p + off);
		__builtin_prefetch(p + bytes - 1);
	}
}

/* Measures query q's gathered candidates, in order, and keeps the best in
 * the task's heap; a candidate whose sum the falling bar has passed
 * meanwhile is dropped.  The next few rows are fetched while a few are
 * measured. */
static void measure4(const scan4 *sc, task4 *t, size_t q)
{
	const accel_index *a = sc->a;
	rvf_hit *h = t->heaps + q * sc->kout;
	const uint32_t *cand = t->cand + q * CAND_CAP;
	const float *cb = t->cbound + q * CAND_CAP;
	size_t ncand = t->ncand[q];

	t->ncand[q] = 0;
	fetch4(sc, t, q, 0, ncand < CODE_BLOCK ? ncand : CODE_BLOCK);
	for (size_t c0 = 0; c0 < ncand; c0 += CODE_BLOCK) {
		const unsigned char *px[CODE_BLOCK];
		uint64_t ids[CODE_BLOCK];
		float dist[CODE_BLOCK];
		size_t n = 0, c1 = c0 + CODE_BLOCK < ncand ? c0 + CODE_BLOCK : ncand;

		fetch4(sc, t, q, c1, c1 + CODE_BLOCK < ncand ? c1 + CODE_BLOCK : ncand);
		for (size_t c = c0; c < c1; c++) {
			const search_row *row;

			if (cb[c] > t->rlim[q])
				continue;
			row = &a->rows[a->slot_row[cand[c]]];
			px[n] = row->data;
			ids[n++] = row->id;
		}
		if (!n)
			continue;
		dist_block(sc->dops, RVF_METRIC_L2, sc->req->queries + q * a->cs->dim,
			   NULL, 1, a->cs->dim, px, NULL, n, dist);
		for (size_t i = 0; i < n; i++) {
			heap_offer(h, &t->len[q], sc->kout,
				   (rvf_hit){ .id = ids[i], .distance = dist[i] });
			if (t->len[q] == sc->kout)
				set_bar(sc, t, q, h[0].distance);
		}
	}
}

/* Adds the live rows of the set bits of a run's masks to query q's
 * candidates, unless a closer look rules them out: |q - x^| from the
 * float table (no rounding down to the table's unit) less the row's own
 * error (not the largest) is a lower bound of |q - x|.  Their codes were
 * just read: this costs far less than fetching their float rows. */
static void collect4(const scan4 *sc, task4 *t, size_t q, size_t b0, size_t nb)
{
	const accel_index *a = sc->a;
	const code_store *cs = a->cs;
	const double *ft = sc->ftables + q * cs->ngroups * 128;
	uint32_t *cand = t->cand + q * CAND_CAP;
	float *cb = t->cbound + q * CAND_CAP;
	size_t n = t->ncand[q];
	/* rounding of the table and of its sum */
	double shrink = 1 - (double)cs->dim * 0x1p-48;

	for (size_t i = 0; i < nb; i++) {
		const uint8_t *blk = block_codes(cs, b0 + i);

		for (unsigned m = t->masks[i]; m; m &= m - 1) {
			unsigned r = (unsigned)__builtin_ctz(m);
			size_t slot = (b0 + i) * CODE_BLOCK + r;
			double sum = 0, lb2, lb;

			if (skipped(a, slot))
				continue;
			for (size_t g = 0; g < cs->ngroups; g++)
				for (int l = 0; l < 4; l++) {
					uint8_t c = blk[g * 64 + l * 16 + r];
					const double *e = ft + (g * 8 + 2 * l) * 16;

					sum += e[c & 15] + e[16 + (c >> 4)];
				}
			lb2 = sum * shrink;
			lb = (lb2 > 0 ? sqrt(lb2) : 0) - block_err(cs, b0 + i)[r];
			if (lb > t->rlim[q])
				continue;
			cand[n] = (uint32_t)slot;
			cb[n++] = (float)lb > lb ? nextafterf((float)lb, -INFINITY) :
						  (float)lb;
		}
	}
	t->ncand[q] = n;
}

static void scan4_task(void *ctx, size_t ti)
{
	const scan4 *sc = ctx;
	const code_store *cs = sc->a->cs;
	task4 *t = &sc->tasks[ti];

	for (size_t b = t->b0, nb; b < t->b1; b += nb) {
		/* a run of blocks in one chunk, read once for every query */
		const uint8_t *blk = block_codes(cs, b);

		nb = t->b1 - b < RUN4 ? t->b1 - b : RUN4;
		if (nb > cs->chunk_blocks - b % cs->chunk_blocks)
			nb = cs->chunk_blocks - b % cs->chunk_blocks;
		for (size_t q = 0; q < sc->nq; q++) {
			cs->ops4->sums(blk, nb, cs->ngroups, sc->tables + q * sc->tbytes,
				       t->thr[q], t->sums, t->masks);
			collect4(sc, t, q, b, nb);
			/* measured in bunches, so their fetches overlap; at once
			 * while the heap is not full (no bar yet) */
			if (t->len[q] < sc->kout || t->ncand[q] >= CAND_FLUSH)
				measure4(sc, t, q);
		}
	}
	for (size_t q = 0; q < sc->nq; q++)
		measure4(sc, t, q);
}

static rvf_code search4(const accel_index *a, const search_request *req,
			rvf_hit *out, size_t *counts, rvf_error *err)
{
	const code_store *cs = a->cs;
	size_t nq = req->nq, k = req->k, nt, work;
	size_t want = req->threads ? req->threads : pool_width();
	scan4 sc = { .a = a, .req = req, .dops = dist_ops_get(), .nq = nq };
	uint8_t *tables = NULL;
	double *ftables = NULL;
	double *delta = NULL;
	rvf_code rc = RVF_OK;

	sc.kout = k < a->n ? k : a->n;
	sc.tbytes = cs->ngroups * 128;
	work = a->nblocks * cs->ngroups * nq;
	nt = work / WORK_PER_TASK;
	nt = nt < want ? nt : want;
	nt = nt < a->nblocks ? nt : a->nblocks;
	sc.ntasks = nt ? nt : 1;
	tables = malloc(nq * sc.tbytes);
	ftables = malloc(nq * cs->ngroups * 128 * sizeof(double));
	delta = malloc(nq * sizeof(*delta));
	sc.tasks = calloc(sc.ntasks, sizeof(task4));
	if (!tables || !ftables || !delta || !sc.tasks)
		goto nomem;
	for (size_t q = 0; q < nq; q++)
		delta[q] = make_table(cs, req->queries + q * cs->dim,
				      tables + q * sc.tbytes,
				      ftables + q * cs->ngroups * 128);
	sc.tables = tables;
	sc.ftables = ftables;
	sc.delta = delta;
	for (size_t i = 0; i < sc.ntasks; i++) {
		task4 *t = &sc.tasks[i];

		t->b0 = a->nblocks * i / sc.ntasks;
		t->b1 = a->nblocks * (i + 1) / sc.ntasks;
		t->heaps = malloc(nq * sc.kout * sizeof(rvf_hit));
		t->len = calloc(nq, sizeof(size_t));
		t->thr = malloc(nq * sizeof(uint16_t));
		t->rlim = malloc(nq * sizeof(double));
		t->cand = malloc(nq * CAND_CAP * sizeof(uint32_t));
		t->cbound = malloc(nq * CAND_CAP * sizeof(float));
		t->ncand = calloc(nq, sizeof(size_t));
		if (!t->heaps || !t->len || !t->thr || !t->rlim || !t->cand ||
		    !t->cbound || !t->ncand)
			goto nomem;
		for (size_t q = 0; q < nq; q++) {
			t->thr[q] = UINT16_MAX;
			t->rlim[q] = INFINITY;
		}
	}
	pool_run(scan4_task, &sc, sc.ntasks);
	for (size_t q = 0; q < nq; q++) {
		rvf_hit *h = out + q * k;
		size_t len = 0;

		for (size_t i = 0; i < sc.ntasks; i++)
			for (size_t j = 0; j < sc.tasks[i].len[q]; j++)
				heap_offer(h, &len, sc.kout,
					   sc.tasks[i].heaps[q * sc.kout + j]);
		rescore(a, sc.dops, req->queries + q * cs->dim, a->exc, a->nexc,
			h, &len, sc.kout);
		heap_sort(h, len);
		counts[q] = len;
	}
	goto done;
nomem:
	rc = rvf_fail(err, RVF_E_NO_MEMORY, "search: out of memory");
done:
	if (sc.tasks)
		for (size_t i = 0; i < sc.ntasks; i++) {
			free(sc.tasks[i].heaps);
			free(sc.tasks[i].len);
			free(sc.tasks[i].thr);
			free(sc.tasks[i].rlim);
			free(sc.tasks[i].cand);
			free(sc.tasks[i].cbound);
			free(sc.tasks[i].ncand);
		}
	free(sc.tasks);
	free(tables);
	free(ftables);
	free(delta);
	return rc;
}

rvf_code accel_search(const accel_index *a, const search_request *req,
		      rvf_hit *out, size_t *counts, rvf_error *err)
{
	const code_store *cs = a->cs;
	size_t nq = req->nq, k = req->k, dimp = 4 * cs->ngroups, nt;
	size_t work, want = req->threads ? req->threads : pool_width();
	size_t live = a->n - a->nexc;
	scan_ctx sc = { .a = a, .nq = nq };
	int8_t *q8 = NULL, *qp = NULL;
	int32_t *qq = NULL;
	double *qe = NULL;
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
	if (cs->ops4)
		return search4(a, req, out, counts, err);
	/* k best of the coded rows: exceptions are measured separately */
	sc.kk = k < live ? k : live;
	if (sc.kk == 0)
		sc.kk = 1;
	sc.kout = k < a->n ? k : a->n;
	sc.slack = (double)cs->dim * 0x1p-22;
	sc.qstride = cs->ops->qbytes(cs->ngroups);

	work = a->nblocks * cs->ngroups * nq;
	nt = work / WORK_PER_TASK;
	nt = nt < want ? nt : want;
	nt = nt < a->nblocks ? nt : a->nblocks;
	sc.ntasks = nt ? nt : 1;

	q8 = calloc(1, dimp);
	qp = malloc(nq * sc.qstride);
	qq = calloc(nq, sizeof(*qq));
	qe = malloc(nq * sizeof(*qe));
	sc.tasks = calloc(sc.ntasks, sizeof(task));
	if (!q8 || !qp || !qq || !qe || !sc.tasks)
		goto nomem;
	for (size_t i = 0; i < nq; i++) {
		const float *q = req->queries + i * cs->dim;

		if (cs->metric == RVF_METRIC_L2)
			code_query_l2(cs, q, q8, &qq[i], &qe[i]);
		else
			qe[i] = code_query_lin(a, q, q8);
		cs->ops->prep(q8, cs->ngroups, qp + i * sc.qstride);
	}
	sc.qp = qp;
	sc.qq = qq;
	sc.qe = qe;
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
		if (!finish_query(&sc, req->queries + q * cs->dim, q,
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
	free(qp);
	free(qq);
	free(qe);
	return rc;
}
