/* distance.h - distance kernels: queries against rows read in place.
 *
 * Rows are `dim` little-endian float32 at any alignment (the mapping of a
 * VEC payload); queries are ordinary float arrays.  Kernels come as
 * portable scalar code, AVX2+FMA and AVX-512 (the AVX2 arithmetic at twice
 * the width, identical results), picked once per process: the best the CPU
 * has, unless the environment sets RVF_NO_SIMD=1 (scalar) or
 * RVF_NO_AVX512=1 (AVX2 at most).
 *
 * Every kernel computes each (query, row) pair with the same sequence of
 * float operations whatever the block shape, so a batch of queries gives
 * bit-for-bit the distances of one query at a time, and rvf_distance()
 * gives what search returns.
 */
#ifndef RVF_DISTANCE_H
#define RVF_DISTANCE_H

#include <stddef.h>

#include "rvf.h"

typedef struct dist_ops {
	const char *name; /* "scalar" or "avx2" */
	/* out[r] = ‖row r‖², for n rows. */
	void (*norms)(const unsigned char *const *rows, size_t n, size_t dim,
		      float *out);
	/* out[i * n + r] = Σ(q_i − x_r)² for i < nq, r < n; q holds nq
	 * queries of dim floats back to back. */
	void (*l2)(const float *q, size_t nq, size_t dim,
		   const unsigned char *const *rows, size_t n, float *out);
	/* out[i * n + r] = dot(q_i, x_r), laid out as for l2. */
	void (*dot)(const float *q, size_t nq, size_t dim,
		    const unsigned char *const *rows, size_t n, float *out);
	/* out[i * n + r] = −dot(q_i, x_r), the inner-product distance. */
	void (*ip)(const float *q, size_t nq, size_t dim,
		   const unsigned char *const *rows, size_t n, float *out);
	/* One query: dot[r] = dot(q, x_r) and xx[r] = ‖x_r‖² in one pass over
	 * the rows, equal to what dot and norms give. */
	void (*dot_norms)(const float *q, size_t dim,
			  const unsigned char *const *rows, size_t n,
			  float *dot, float *xx);
	/* io[i * n + r] = dist_cosine(io[i * n + r], qq[i], xx[r]). */
	void (*cosine)(float *io, const float *qq, size_t nq, const float *xx,
		       size_t n);
} dist_ops;

/* The kernels this process uses (chosen on first call, then fixed). */
const dist_ops *dist_ops_get(void);
/* Always available. */
const dist_ops *dist_ops_scalar(void);
/* NULL when the CPU (or this build) lacks AVX2+FMA. */
const dist_ops *dist_ops_avx2(void);
/* NULL without AVX-512F; gives the AVX2 results bit for bit, faster. */
const dist_ops *dist_ops_avx512(void);

/* Metric bytes other than IP and cosine read as L2, as in the manifest. */
rvf_metric dist_metric(rvf_metric m);

/* The reference's cosine from a dot product and the two squared norms. */
float dist_cosine(float dot, float qq, float xx);

/* Distances of nq queries to n rows under metric m: out[i * n + r].
 * qq[i] = ‖q_i‖² and xx[r] = ‖x_r‖² (from ops->norms) are needed for
 * cosine only and may be NULL otherwise. */
void dist_block(const dist_ops *ops, rvf_metric m, const float *q,
		const float *qq, size_t nq, size_t dim,
		const unsigned char *const *rows, const float *xx, size_t n,
		float *out);

#endif
