/* accel.h - 8-bit codes of a view's rows: exact L2 neighbours, faster.
 *
 * Each row x is stored as codes c (one byte per dimension) with
 * x^ = o + s * c: o per dimension (the smallest value), s one scale for
 * all dimensions.  For a query q coded the same way, |x^ - q^|^2 is
 * s^2 * sum (c - cq)^2, an exact integer from one VNNI pass over a quarter
 * of the bytes of the float rows.  With e = |x - x^| (at most e_max) and
 * e_q = |q - q^|, the triangle inequality bounds the true distance:
 *
 *     |x^ - q^| - e - e_q  <=  |x - q|  <=  |x^ - q^| + e + e_q
 *
 * The k rows with the smallest code distance give an upper bound for the
 * k-th true distance; every row whose lower bound is within it is a
 * candidate, and the candidates are measured again with the float kernels
 * of the exact scan.  The answer is therefore exactly search_exact's, bit
 * for bit: the codes only decide which rows are worth measuring.
 *
 * Rows the codes cannot bound (a NaN or an infinity) are "exceptions",
 * measured exactly for every query.
 */
#ifndef RVF_ACCEL_H
#define RVF_ACCEL_H

#include "codes.h"
#include "search.h"

typedef struct accel_index accel_index;

/* Codes for rows[0..n) of dim floats.  NULL (with a reason in *why) when
 * codes would not help (dim too large, too many exceptions) or memory
 * ran out.  The rows must outlive the index. */
accel_index *accel_build(const search_row *rows, size_t n, size_t dim,
			 const code_ops *ops, const char **why);
void accel_free(accel_index *a);

/* Bytes the index holds. */
size_t accel_bytes(const accel_index *a);
/* Bytes an index over n rows of dim would hold. */
size_t accel_estimate(size_t n, size_t dim);

/* True when accel_search can answer req: an L2 request over the rows the
 * index was built on, without a filter, every query value finite. */
bool accel_applies(const accel_index *a, const search_request *req);

/* search_exact's contract and answer (see above); threads as in
 * search_exact. */
rvf_code accel_search(const accel_index *a, const search_request *req,
		      rvf_hit *out, size_t *counts, rvf_error *err);

#endif
