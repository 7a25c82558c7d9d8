/* accel.h - 8-bit codes of a view's rows: exact neighbours, faster.
 *
 * Each row x is stored as codes c (one byte per dimension) with
 * x^ = o + s * c: o per dimension (the smallest value), s one scale for
 * all dimensions.  The codes only decide which rows are worth measuring:
 * every row that could be among the k nearest is measured again with the
 * float kernels of the exact scan, so the answer is search_exact's, bit for
 * bit, whatever the data.  e = |x - x^| is at most e_max for every coded
 * row; integer sums come from codes.h, exact on every kernel.
 *
 * L2.  For a query q coded the same way, |x^ - q^|^2 = s^2 * sum (c - cq)^2
 * (the integer A), and with e_q = |q - q^| the triangle inequality gives
 *
 *     |x^ - q^| - e - e_q  <=  |x - q|  <=  |x^ - q^| + e + e_q
 *
 * Inner product.  The query is coded on its own symmetric grid,
 * q' = t * cq with cq in [-127, 127], and A = -2 * sum c * cq; then
 * dot(q', x^) = C_q - (s t / 2) A with C_q the same for every row, and
 *
 *     |dot(q, x) - dot(q', x^)|  <=  |q| e + e_q (|x|max + e)  =: E
 *
 * (|x|max the largest row norm, e_q = |q - q'|).  Cosine codes the unit
 * rows x / |x| (exactly the per-row norm the reference divides by) and
 * the unit query, so E = e + e_q (1 + e) bounds the error of the cosine.
 * The float kernels' own rounding is bounded by sigma (a few dim ulps of
 * |q| |x|max, or of 1 for cosine).
 *
 * Either way the k rows with the smallest A give an upper bound for the
 * k-th distance the float scan computes; every row whose lower bound is
 * within it is a candidate (for IP and cosine, A <= A_k + (2E + 2 sigma)
 * / (s t / 2), C_q cancelling), and the candidates are measured exactly.
 *
 * Rows the codes cannot bound are "exceptions", measured exactly for every
 * query: a NaN or an infinity; for IP and cosine a norm^2 above 2^60,
 * for cosine also below 2^-60 (zero vectors).  A query takes the float
 * scan (accel_applies) when it has a NaN, a filter, or for IP and cosine
 * |q|^2 |x|^2 could pass 2^120 (float32 overflow) or, for cosine, fall
 * below 2^-40 for a coded row (the reference's zero-vector rule).
 *
 * 4-bit codes (L2 only; codes4.h) keep the same grid with 16 levels.
 * The query stays in floats and becomes a table of (q_d - x^_d)^2 per
 * code, in a unit delta, rounded down: a row's table sum times delta is
 * at most |q - x^|^2, so sqrt(sum delta) - e_max is a lower bound of
 * |q - x|.  A row within it is looked at again with the unrounded table
 * and its own error e_x (kept per row, rounded up): |q - x^| - e_x.  Each
 * thread measures with the float kernels the rows whose bounds do not
 * exceed its running k-th float distance (rounding allowed for) and keeps
 * the k best: the rows of the answer always pass, and the result is the
 * float scan's, distances included.
 *
 * Commits.  Codes live in slots (16 per block) of a code store shared by
 * the indexes of successive views.  accel_derive makes the next view's
 * index from the previous one: rows that stayed (same id, same bytes in
 * the mapping) keep their slots, rows that left become dead slots (never
 * offered), and only new rows are coded, into fresh blocks, on the same
 * grid.  A new row the grid cannot code closely becomes an exception.  A
 * full build (compaction, or too many dead slots) starts a new store.
 */
#ifndef RVF_ACCEL_H
#define RVF_ACCEL_H

#include "codes.h"
#include "codes4.h"
#include "search.h"

typedef struct accel_index accel_index;

/* Codes for rows[0..n) of dim floats under metric: 8-bit ones searched
 * with ops, or with ops4 set 4-bit ones (L2 only) searched with ops4.
 * NULL (with a reason in *why) when codes would not help (dim too large,
 * too many exceptions) or memory ran out.  The rows must outlive the
 * index.  The index starts with one reference.  Large builds use every
 * worker of the pool. */
accel_index *accel_build(const search_row *rows, size_t n, size_t dim,
			 rvf_metric metric, const code_ops *ops,
			 const code4_ops *ops4, const char **why);

/* The index of rows[0..n) (sorted by ascending id, like prev's rows)
 * from prev's codes: new rows coded, the rows gone masked.  NULL when
 * that is not possible (rows not sorted, too many new exceptions, the
 * store full, no memory): build instead. */
accel_index *accel_derive(const accel_index *prev, const search_row *rows,
			  size_t n, const char **why);

accel_index *accel_ref(accel_index *a);
void accel_release(accel_index *a);

/* Bytes the index holds (its share of the store counted whole). */
size_t accel_bytes(const accel_index *a);
/* Bytes an index over n rows of dim would hold under metric with codes of
 * bits (8 or 4) a dimension. */
size_t accel_estimate(size_t n, size_t dim, rvf_metric metric, unsigned bits);
/* Dead slots: a full build would drop them. */
size_t accel_dead(const accel_index *a);
/* True when a full build would serve better: many dead slots (over a
 * quarter of the rows) or new exceptions (over 1/64). */
bool accel_stale(const accel_index *a);

/* True when accel_search can answer req: a request under the index's
 * metric over the rows the index was built on, without a filter, every
 * query value finite and its norm in range (see above). */
bool accel_applies(const accel_index *a, const search_request *req);

/* search_exact's contract and answer (see above); threads as in
 * search_exact. */
rvf_code accel_search(const accel_index *a, const search_request *req,
		      rvf_hit *out, size_t *counts, rvf_error *err);

#endif
