/* distance.c - L2, inner-product and cosine kernels: scalar, AVX2+FMA and
 * AVX-512.
 *
 * Each (query, row) pair is summed in 8 lanes (lane j takes components
 * j, j+8, ...) and the lanes are folded in one fixed order, so the blocking
 * of queries and rows never changes a result, and AVX-512 (which runs the
 * AVX2 lanes two rows at a time) matches AVX2 exactly.  The SIMD code fuses
 * multiply-adds and the scalar code need not, so scalar agrees with them
 * closely but not bit for bit.
 */
#include "distance.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "env.h"

rvf_metric dist_metric(rvf_metric m)
{
	if (m == RVF_METRIC_INNER_PRODUCT || m == RVF_METRIC_COSINE)
		return m;
	return RVF_METRIC_L2;
}

float dist_cosine(float dot, float qq, float xx)
{
	float denom = sqrtf(qq * xx);

	if (denom < FLT_EPSILON) /* a zero vector: the reference says 1.0 */
		return 1.0f;
	return 1.0f - dot / denom;
}

/* ------------------------------------------------------------------ */
/* Scalar                                                              */
/* ------------------------------------------------------------------ */

/* The fold of the AVX2 horizontal sum: halves, then quarters, then pairs. */
static float fold8(const float a[8])
{
	float s0 = a[0] + a[4], s1 = a[1] + a[5];
	float s2 = a[2] + a[6], s3 = a[3] + a[7];

	return (s0 + s2) + (s1 + s3);
}

static float scalar_l2_pair(const float *q, const unsigned char *x,
			    size_t dim)
{
	float acc[8] = { 0 };
	size_t d = 0;

	for (; d + 8 <= dim; d += 8)
		for (int j = 0; j < 8; j++) {
			float t = q[d + j] - ldf32(x + 4 * (d + j));
			acc[j] += t * t;
		}
	for (int j = 0; d < dim; d++, j++) {
		float t = q[d] - ldf32(x + 4 * d);
		acc[j] += t * t;
	}
	return fold8(acc);
}

static float scalar_dot_pair(const float *q, const unsigned char *x,
			     size_t dim)
{
	float acc[8] = { 0 };
	size_t d = 0;

	for (; d + 8 <= dim; d += 8)
		for (int j = 0; j < 8; j++)
			acc[j] += q[d + j] * ldf32(x + 4 * (d + j));
	for (int j = 0; d < dim; d++, j++)
		acc[j] += q[d] * ldf32(x + 4 * d);
	return fold8(acc);
}

static float scalar_norm(const unsigned char *x, size_t dim)
{
	float acc[8] = { 0 };
	size_t d = 0;

	for (; d + 8 <= dim; d += 8)
		for (int j = 0; j < 8; j++) {
			float v = ldf32(x + 4 * (d + j));
			acc[j] += v * v;
		}
	for (int j = 0; d < dim; d++, j++) {
		float v = ldf32(x + 4 * d);
		acc[j] += v * v;
	}
	return fold8(acc);
}

static void scalar_norms(const unsigned char *const *rows, size_t n,
			 size_t dim, float *out)
{
	for (size_t r = 0; r < n; r++)
		out[r] = scalar_norm(rows[r], dim);
}

static void scalar_l2(const float *q, size_t nq, size_t dim,
		      const unsigned char *const *rows, size_t n, float *out)
{
	for (size_t i = 0; i < nq; i++)
		for (size_t r = 0; r < n; r++)
			out[i * n + r] = scalar_l2_pair(q + i * dim, rows[r], dim);
}

static void scalar_dot(const float *q, size_t nq, size_t dim,
		       const unsigned char *const *rows, size_t n, float *out)
{
	for (size_t i = 0; i < nq; i++)
		for (size_t r = 0; r < n; r++)
			out[i * n + r] = scalar_dot_pair(q + i * dim, rows[r], dim);
}

static void scalar_ip(const float *q, size_t nq, size_t dim,
		      const unsigned char *const *rows, size_t n, float *out)
{
	for (size_t i = 0; i < nq; i++)
		for (size_t r = 0; r < n; r++)
			out[i * n + r] = -scalar_dot_pair(q + i * dim, rows[r], dim);
}

static void scalar_dot_norms(const float *q, size_t dim,
			     const unsigned char *const *rows, size_t n,
			     float *dot, float *xx)
{
	for (size_t r = 0; r < n; r++) {
		dot[r] = scalar_dot_pair(q, rows[r], dim);
		xx[r] = scalar_norm(rows[r], dim);
	}
}

static void scalar_cosine(float *io, const float *qq, size_t nq,
			  const float *xx, size_t n)
{
	for (size_t i = 0; i < nq; i++)
		for (size_t r = 0; r < n; r++)
			io[i * n + r] = dist_cosine(io[i * n + r], qq[i], xx[r]);
}

static const dist_ops scalar_ops = {
	.name = "scalar",
	.norms = scalar_norms,
	.l2 = scalar_l2,
	.dot = scalar_dot,
	.ip = scalar_ip,
	.dot_norms = scalar_dot_norms,
	.cosine = scalar_cosine,
};

const dist_ops *dist_ops_scalar(void)
{
	return &scalar_ops;
}

/* ------------------------------------------------------------------ */
/* AVX2 + FMA                                                          */
/* ------------------------------------------------------------------ */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* Per function, so the file builds without -mavx2 and runs anywhere. */
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))
/* Tile loops must unroll fully, or the accumulators live in memory. */
#ifdef __clang__
#define UNROLL _Pragma("unroll")
#else
#define UNROLL _Pragma("GCC unroll 16")
#endif

/* Lanes < rem on: masked loads read no byte past a row's end. */
static const int32_t tail_bits[16] = { -1, -1, -1, -1, -1, -1, -1, -1,
				       0, 0, 0, 0, 0, 0, 0, 0 };

AVX2_INLINE __m256i tail_mask(size_t rem)
{
	return _mm256_loadu_si256((const __m256i *)(const void *)
				  (tail_bits + 8 - rem));
}

/* Rows are not 4-byte aligned: only unaligned vector loads touch them. */
AVX2_INLINE __m256 load_row(const unsigned char *p)
{
	return _mm256_loadu_ps((const float *)(const void *)p);
}

AVX2_INLINE __m256 load_row_tail(const unsigned char *p, __m256i mask)
{
	return _mm256_maskload_ps((const float *)(const void *)p, mask);
}

/* Same fold as fold8(). */
AVX2_INLINE float hsum(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v),
			      _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Four horizontal sums at once, each folded exactly as hsum() folds. */
AVX2_INLINE __m128 hsum4(__m256 a, __m256 b, __m256 c, __m256 d)
{
	/* halves: [a0+a4 .. a3+a7 | b0+b4 .. b3+b7], the same for c, d */
	__m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20),
				  _mm256_permute2f128_ps(a, b, 0x31));
	__m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(c, d, 0x20),
				  _mm256_permute2f128_ps(c, d, 0x31));
	/* quarters: [a02 a13 c02 c13 | b02 b13 d02 d13] */
	__m256 w = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, 0x44),
				 _mm256_shuffle_ps(ab, cd, 0xee));
	/* pairs: [a c a c | b d b d] */
	__m256 f = _mm256_add_ps(_mm256_shuffle_ps(w, w, 0x88),
				 _mm256_shuffle_ps(w, w, 0xdd));

	return _mm_unpacklo_ps(_mm256_castps256_ps128(f),
			       _mm256_extractf128_ps(f, 1));
}

enum { K_L2, K_DOT, K_NEG_DOT };

/*
 * One register tile: QT queries x RT rows, one accumulator per pair.  QT,
 * RT and KIND are constants at every call and the loops are flat, so gcc
 * and clang unroll them completely and keep the accumulators in registers.
 * Pair j is query j % QT and row j / QT, so rows are loaded one at a time
 * and few registers stay live.  L2 is sum((q - x)^2), never
 * |q|^2 + |x|^2 - 2q.x, which would cancel badly for near neighbours.
 */
#define TILE_MAX 12

AVX2_INLINE __m256 tile_step(__m256 acc, __m256 q, __m256 x, const int KIND)
{
	if (KIND == K_L2) {
		__m256 t = _mm256_sub_ps(q, x);

		return _mm256_fmadd_ps(t, t, acc);
	}
	return _mm256_fmadd_ps(q, x, acc);
}

AVX2_INLINE void tile(const float *q, size_t dim,
		      const unsigned char *const *x, float *out,
		      size_t ostride, const int QT, const int RT,
		      const int KIND)
{
	__m256 acc[TILE_MAX], qv[3], xv = _mm256_setzero_ps();
	size_t d = 0, rem = dim & 7;

	UNROLL for (int j = 0; j < QT * RT; j++)
		acc[j] = _mm256_setzero_ps();
	for (; d + 8 <= dim; d += 8) {
		UNROLL for (int i = 0; i < QT; i++)
			qv[i] = _mm256_loadu_ps(q + i * dim + d);
		UNROLL for (int j = 0; j < QT * RT; j++) {
			if (j % QT == 0)
				xv = load_row(x[j / QT] + 4 * d);
			acc[j] = tile_step(acc[j], qv[j % QT], xv, KIND);
		}
	}
	if (rem) {
		__m256i m = tail_mask(rem);

		UNROLL for (int i = 0; i < QT; i++)
			qv[i] = _mm256_maskload_ps(q + i * dim + d, m);
		UNROLL for (int j = 0; j < QT * RT; j++) {
			if (j % QT == 0)
				xv = load_row_tail(x[j / QT] + 4 * d, m);
			acc[j] = tile_step(acc[j], qv[j % QT], xv, KIND);
		}
	}
	if (RT % 4 == 0) {
		/* four rows of one query: hsum4, one store */
		UNROLL for (int j = 0; j < QT * RT / 4; j++) {
			int i = j % QT, r = j / QT * 4;
			__m128 s = hsum4(acc[r * QT + i], acc[(r + 1) * QT + i],
					 acc[(r + 2) * QT + i],
					 acc[(r + 3) * QT + i]);

			if (KIND == K_NEG_DOT) /* exact: flips the sign bit */
				s = _mm_xor_ps(s, _mm_set1_ps(-0.0f));
			_mm_storeu_ps(out + i * ostride + r, s);
		}
	} else {
		UNROLL for (int j = 0; j < QT * RT; j++) {
			float s = hsum(acc[j]);

			out[j % QT * ostride + j / QT] = KIND == K_NEG_DOT ? -s : s;
		}
	}
}

/*
 * Tiles sized to the 16 ymm registers: one query against 8 rows (the
 * single-query scan, memory bound), 2x4 for L2 (each pair needs a sub and
 * an FMA), 3x4 for dot products.  Leftover queries and rows take narrower
 * tiles, which compute each pair exactly the same way.
 */
AVX2_INLINE void tiles(const float *q, size_t nq, size_t dim,
		       const unsigned char *const *x, size_t n, float *out,
		       const int QT, const int KIND)
{
	size_t i = 0, r;

	for (; i + QT <= nq; i += QT) {
		const float *qi = q + i * dim;
		float *o = out + i * n;

		for (r = 0; r + 4 <= n; r += 4)
			tile(qi, dim, x + r, o + r, n, QT, 4, KIND);
		for (; r < n; r++)
			tile(qi, dim, x + r, o + r, n, QT, 1, KIND);
	}
	for (; i < nq; i++) {
		const float *qi = q + i * dim;
		float *o = out + i * n;

		for (r = 0; r + 8 <= n; r += 8)
			tile(qi, dim, x + r, o + r, n, 1, 8, KIND);
		for (; r < n; r++)
			tile(qi, dim, x + r, o + r, n, 1, 1, KIND);
	}
}

static AVX2 void avx2_l2(const float *q, size_t nq, size_t dim,
			 const unsigned char *const *x, size_t n, float *out)
{
	tiles(q, nq, dim, x, n, out, 2, K_L2);
}

static AVX2 void avx2_dot(const float *q, size_t nq, size_t dim,
			  const unsigned char *const *x, size_t n, float *out)
{
	tiles(q, nq, dim, x, n, out, 3, K_DOT);
}

static AVX2 void avx2_ip(const float *q, size_t nq, size_t dim,
			 const unsigned char *const *x, size_t n, float *out)
{
	tiles(q, nq, dim, x, n, out, 3, K_NEG_DOT);
}

static AVX2 void avx2_norms(const unsigned char *const *x, size_t n,
			    size_t dim, float *out)
{
	size_t d, rem = dim & 7;
	__m256i m = tail_mask(rem);

	for (size_t r = 0; r < n; r++) {
		__m256 acc = _mm256_setzero_ps();

		for (d = 0; d + 8 <= dim; d += 8) {
			__m256 v = load_row(x[r] + 4 * d);

			acc = _mm256_fmadd_ps(v, v, acc);
		}
		if (rem) {
			__m256 v = load_row_tail(x[r] + 4 * d, m);

			acc = _mm256_fmadd_ps(v, v, acc);
		}
		out[r] = hsum(acc);
	}
}

/* Dot products and norms of one query in one pass: the same FMA chains as
 * tile() and avx2_norms(), so the same bits, reading each row once. */
AVX2_INLINE void dot_norm_tile(const float *q, size_t dim,
			       const unsigned char *const *x, float *dot,
			       float *xx, const int RT)
{
	__m256 ad[4], an[4], qv, xv;
	size_t d = 0, rem = dim & 7;

	UNROLL for (int r = 0; r < RT; r++)
		ad[r] = an[r] = _mm256_setzero_ps();
	for (; d + 8 <= dim; d += 8) {
		qv = _mm256_loadu_ps(q + d);
		UNROLL for (int r = 0; r < RT; r++) {
			xv = load_row(x[r] + 4 * d);
			ad[r] = _mm256_fmadd_ps(qv, xv, ad[r]);
			an[r] = _mm256_fmadd_ps(xv, xv, an[r]);
		}
	}
	if (rem) {
		__m256i m = tail_mask(rem);

		qv = _mm256_maskload_ps(q + d, m);
		UNROLL for (int r = 0; r < RT; r++) {
			xv = load_row_tail(x[r] + 4 * d, m);
			ad[r] = _mm256_fmadd_ps(qv, xv, ad[r]);
			an[r] = _mm256_fmadd_ps(xv, xv, an[r]);
		}
	}
	if (RT == 4) {
		_mm_storeu_ps(dot, hsum4(ad[0], ad[1], ad[2], ad[3]));
		_mm_storeu_ps(xx, hsum4(an[0], an[1], an[2], an[3]));
	} else {
		UNROLL for (int r = 0; r < RT; r++) {
			dot[r] = hsum(ad[r]);
			xx[r] = hsum(an[r]);
		}
	}
}

static AVX2 void avx2_dot_norms(const float *q, size_t dim,
				const unsigned char *const *x, size_t n,
				float *dot, float *xx)
{
	size_t r = 0;

	for (; r + 4 <= n; r += 4)
		dot_norm_tile(q, dim, x + r, dot + r, xx + r, 4);
	for (; r < n; r++)
		dot_norm_tile(q, dim, x + r, dot + r, xx + r, 1);
}

/* dist_cosine() eight pairs at a time: sqrt and divide are IEEE-exact in
 * both, so the results are the same bits. */
static AVX2 void avx2_cosine(float *io, const float *qq, size_t nq,
			     const float *xx, size_t n)
{
	const __m256 one = _mm256_set1_ps(1.0f);
	const __m256 eps = _mm256_set1_ps(FLT_EPSILON);

	for (size_t i = 0; i < nq; i++) {
		const __m256 qv = _mm256_set1_ps(qq[i]);
		float *o = io + i * n;
		size_t r = 0;

		for (; r + 8 <= n; r += 8) {
			__m256 den = _mm256_sqrt_ps(
				_mm256_mul_ps(qv, _mm256_loadu_ps(xx + r)));
			__m256 v = _mm256_sub_ps(
				one, _mm256_div_ps(_mm256_loadu_ps(o + r), den));
			/* denom < eps (never true for NaN): exactly 1.0 */
			__m256 small = _mm256_cmp_ps(den, eps, _CMP_LT_OQ);

			_mm256_storeu_ps(o + r, _mm256_blendv_ps(v, one, small));
		}
		for (; r < n; r++)
			o[r] = dist_cosine(o[r], qq[i], xx[r]);
	}
}

static const dist_ops avx2_ops = {
	.name = "avx2",
	.norms = avx2_norms,
	.l2 = avx2_l2,
	.dot = avx2_dot,
	.ip = avx2_ip,
	.dot_norms = avx2_dot_norms,
	.cosine = avx2_cosine,
};

const dist_ops *dist_ops_avx2(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return &avx2_ops;
	return NULL;
}

/* ------------------------------------------------------------------ */
/* AVX-512: the AVX2 arithmetic, two rows per register                 */
/* ------------------------------------------------------------------ */

/*
 * A zmm register holds the same 8-float chunk of two rows, one per 256-bit
 * half, and the query chunk is broadcast to both halves.  Each half then
 * performs exactly the AVX2 operations for its pair, so the results are the
 * AVX2 results bit for bit, at twice the width, and leftovers can fall back
 * to the AVX2 tiles.
 */
#define AVX512 __attribute__((target("avx512f,avx2,fma")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx2,fma")))

AVX512_INLINE __m512 join(__m256 lo, __m256 hi)
{
	return _mm512_castpd_ps(_mm512_insertf64x4(
		_mm512_castpd256_pd512(_mm256_castps_pd(lo)),
		_mm256_castps_pd(hi), 1));
}

AVX512_INLINE __m256 half_lo(__m512 v)
{
	return _mm512_castps512_ps256(v);
}

AVX512_INLINE __m256 half_hi(__m512 v)
{
	return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

AVX512_INLINE __m512 broadcast(__m256 q)
{
	return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(q)));
}

AVX512_INLINE __m512 tile512_step(__m512 acc, __m512 q, __m512 x,
				  const int KIND)
{
	if (KIND == K_L2) {
		__m512 t = _mm512_sub_ps(q, x);

		return _mm512_fmadd_ps(t, t, acc);
	}
	return _mm512_fmadd_ps(q, x, acc);
}

/* QT queries x RP row pairs; accumulator j is query j % QT against rows
 * 2(j / QT) and 2(j / QT) + 1.  32 registers hold 4 x 4 (32 distances). */
AVX512_INLINE void tile512(const float *q, size_t dim,
			   const unsigned char *const *x, float *out,
			   size_t ostride, const int QT, const int RP,
			   const int KIND)
{
	__m512 acc[16], qv[4], xv = _mm512_setzero_ps();
	size_t d = 0, rem = dim & 7;

	UNROLL for (int j = 0; j < QT * RP; j++)
		acc[j] = _mm512_setzero_ps();
	for (; d + 8 <= dim; d += 8) {
		UNROLL for (int i = 0; i < QT; i++)
			qv[i] = broadcast(_mm256_loadu_ps(q + i * dim + d));
		UNROLL for (int j = 0; j < QT * RP; j++) {
			if (j % QT == 0)
				xv = join(load_row(x[2 * (j / QT)] + 4 * d),
					  load_row(x[2 * (j / QT) + 1] + 4 * d));
			acc[j] = tile512_step(acc[j], qv[j % QT], xv, KIND);
		}
	}
	if (rem) {
		__m256i m = tail_mask(rem);

		UNROLL for (int i = 0; i < QT; i++)
			qv[i] = broadcast(_mm256_maskload_ps(q + i * dim + d, m));
		UNROLL for (int j = 0; j < QT * RP; j++) {
			if (j % QT == 0)
				xv = join(load_row_tail(x[2 * (j / QT)] + 4 * d, m),
					  load_row_tail(x[2 * (j / QT) + 1] + 4 * d, m));
			acc[j] = tile512_step(acc[j], qv[j % QT], xv, KIND);
		}
	}
	if (RP % 2 == 0) {
		/* two accumulators = four rows of one query: one hsum4 */
		UNROLL for (int j = 0; j < QT * RP / 2; j++) {
			int i = j % QT, p = j / QT * 2;
			__m512 a = acc[p * QT + i], b = acc[(p + 1) * QT + i];
			__m128 s = hsum4(half_lo(a), half_hi(a), half_lo(b),
					 half_hi(b));

			if (KIND == K_NEG_DOT)
				s = _mm_xor_ps(s, _mm_set1_ps(-0.0f));
			_mm_storeu_ps(out + i * ostride + 2 * p, s);
		}
	} else {
		UNROLL for (int j = 0; j < QT * RP; j++) {
			float *o = out + j % QT * ostride + 2 * (j / QT);
			float lo = hsum(half_lo(acc[j])), hi = hsum(half_hi(acc[j]));

			o[0] = KIND == K_NEG_DOT ? -lo : lo;
			o[1] = KIND == K_NEG_DOT ? -hi : hi;
		}
	}
}

AVX512_INLINE void tiles512(const float *q, size_t nq, size_t dim,
			    const unsigned char *const *x, size_t n,
			    float *out, const int KIND)
{
	size_t i = 0, r;

	for (; i + 4 <= nq; i += 4) {
		const float *qi = q + i * dim;
		float *o = out + i * n;

		for (r = 0; r + 8 <= n; r += 8)
			tile512(qi, dim, x + r, o + r, n, 4, 4, KIND);
		for (; r + 2 <= n; r += 2)
			tile512(qi, dim, x + r, o + r, n, 4, 1, KIND);
		for (; r < n; r++)
			for (int k = 0; k < 4; k++)
				tile(qi + k * dim, dim, x + r, o + k * n + r,
				     n, 1, 1, KIND);
	}
	for (; i < nq; i++) {
		const float *qi = q + i * dim;
		float *o = out + i * n;

		for (r = 0; r + 16 <= n; r += 16)
			tile512(qi, dim, x + r, o + r, n, 1, 8, KIND);
		for (; r + 8 <= n; r += 8)
			tile(qi, dim, x + r, o + r, n, 1, 8, KIND);
		for (; r < n; r++)
			tile(qi, dim, x + r, o + r, n, 1, 1, KIND);
	}
}

static AVX512 void avx512_l2(const float *q, size_t nq, size_t dim,
			     const unsigned char *const *x, size_t n,
			     float *out)
{
	tiles512(q, nq, dim, x, n, out, K_L2);
}

static AVX512 void avx512_dot(const float *q, size_t nq, size_t dim,
			      const unsigned char *const *x, size_t n,
			      float *out)
{
	tiles512(q, nq, dim, x, n, out, K_DOT);
}

static AVX512 void avx512_ip(const float *q, size_t nq, size_t dim,
			     const unsigned char *const *x, size_t n,
			     float *out)
{
	tiles512(q, nq, dim, x, n, out, K_NEG_DOT);
}

/* Norms, the single-query cosine pass (memory bound) and the cosine
 * finish gain nothing from the width: the AVX2 ones serve. */
static const dist_ops avx512_ops = {
	.name = "avx512",
	.norms = avx2_norms,
	.l2 = avx512_l2,
	.dot = avx512_dot,
	.ip = avx512_ip,
	.dot_norms = avx2_dot_norms,
	.cosine = avx2_cosine,
};

const dist_ops *dist_ops_avx512(void)
{
	__builtin_cpu_init();
	if (dist_ops_avx2() && __builtin_cpu_supports("avx512f"))
		return &avx512_ops;
	return NULL;
}

#else

const dist_ops *dist_ops_avx2(void)
{
	return NULL;
}

const dist_ops *dist_ops_avx512(void)
{
	return NULL;
}

#endif

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

/* The one piece of process state: set once, read-only afterwards. */
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;
static const dist_ops *chosen;

/* RVF_NO_SIMD=1 forces scalar, RVF_NO_AVX512=1 stops at AVX2: tests and
 * benchmarks compare the implementations that way. */
static void choose(void)
{
	chosen = NULL;
	if (!env_flag("RVF_NO_SIMD") && !env_flag("RVF_NO_AVX512"))
		chosen = dist_ops_avx512();
	if (!chosen && !env_flag("RVF_NO_SIMD"))
		chosen = dist_ops_avx2();
	if (!chosen)
		chosen = &scalar_ops;
}

const dist_ops *dist_ops_get(void)
{
	pthread_once(&chosen_once, choose);
	return chosen;
}

void dist_block(const dist_ops *ops, rvf_metric m, const float *q,
		const float *qq, size_t nq, size_t dim,
		const unsigned char *const *rows, const float *xx, size_t n,
		float *out)
{
	switch (dist_metric(m)) {
	case RVF_METRIC_INNER_PRODUCT:
		ops->ip(q, nq, dim, rows, n, out);
		break;
	case RVF_METRIC_COSINE:
		ops->dot(q, nq, dim, rows, n, out);
		ops->cosine(out, qq, nq, xx, n);
		break;
	default:
		ops->l2(q, nq, dim, rows, n, out);
		break;
	}
}

float rvf_distance(rvf_metric m, const float *a, const float *b, size_t dim)
{
	const dist_ops *ops = dist_ops_get();
	const unsigned char *x = (const unsigned char *)b;
	float qq = 0, xx = 0, out;

	if (dist_metric(m) == RVF_METRIC_COSINE) {
		const unsigned char *qa = (const unsigned char *)a;

		ops->norms(&qa, 1, dim, &qq);
		ops->norms(&x, 1, dim, &xx);
	}
	dist_block(ops, m, a, &qq, 1, dim, &x, &xx, 1, &out);
	return out;
}
