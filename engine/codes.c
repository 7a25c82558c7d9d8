/* codes.c - integer dot products of 8-bit codes: portable C, AVX-512 VNNI,
 * AVX-512BW, AVX2 and ARM NEON (with and without sdot).
 *
 * VNNI (vpdpbusd) and sdot add products of bytes straight into 32-bit
 * lanes.  AVX2 and AVX-512BW have only vpmaddubsw, which adds two products
 * into a saturating 16-bit lane: 255 * -128 * 2 does not fit.  Their
 * prepared query is therefore split, q = 16 * qh + ql with qh in [-8, 7]
 * and ql in [0, 15]; each half's pair sums stay under 2^13, four groups of
 * them under 2^15, and vpmaddwd widens them (times 16 or 1) to 32 bits.
 * The integers are the portable kernel's exactly.  The ARM kernels are in
 * codes_neon.c.
 */
#include "codes.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

static size_t plain_qbytes(size_t ngroups)
{
	return 4 * ngroups;
}

static void plain_prep(const int8_t *q8, size_t ngroups, int8_t *out)
{
	memcpy(out, q8, 4 * ngroups);
}

static void portable_dists(const uint8_t *block, size_t ngroups,
			   const int32_t *base, const int8_t *q8,
			   const int32_t *qq, const int32_t *thr, size_t nq,
			   int32_t *out, uint16_t *mask)
{
	size_t dimp = 4 * ngroups;

	for (size_t i = 0; i < nq; i++) {
		const int8_t *q = q8 + i * dimp;

		mask[i] = 0;
		for (int r = 0; r < CODE_BLOCK; r++) {
			uint32_t s = 0, a;

			for (size_t g = 0; g < ngroups; g++)
				for (int j = 0; j < 4; j++)
					s += (uint32_t)((int32_t)block[g * 64 + r * 4 + j] *
							q[4 * g + j]);
			a = (uint32_t)base[r] + (uint32_t)qq[i] - 2 * s;
			out[i * CODE_BLOCK + r] = (int32_t)a;
			if ((int32_t)a <= thr[i])
				mask[i] |= (uint16_t)(1u << r);
		}
	}
}

static const code_ops portable_ops = { "portable", plain_qbytes, plain_prep,
				       portable_dists };

const code_ops *code_ops_portable(void)
{
	return &portable_ops;
}

/* The split form of AVX2 / AVX-512BW: per group 4 bytes qh, 4 bytes ql. */
static size_t split_qbytes(size_t ngroups)
{
	return 8 * ngroups;
}

static void split_prep(const int8_t *q8, size_t ngroups, int8_t *out)
{
	for (size_t g = 0; g < ngroups; g++)
		for (int j = 0; j < 4; j++) {
			int q = q8[4 * g + j];
			int hi = (q - (q & 15)) / 16; /* floor(q / 16) */

			out[8 * g + j] = (int8_t)hi;
			out[8 * g + 4 + j] = (int8_t)(q & 15);
		}
}

/* Groups summed in 16 bits before widening (see the top of the file). */
enum { SPLIT_RUN = 4 };

#if defined(__x86_64__)
#include <immintrin.h>

static int32_t word_at(const int8_t *p)
{
	int32_t w;

	memcpy(&w, p, 4);
	return w;
}

/* ------------------------------------------------------------------ */
/* AVX-512 VNNI                                                        */
/* ------------------------------------------------------------------ */

#define VNNI_INLINE static inline __attribute__((always_inline, \
	target("avx512f,avx512vnni")))

/* The four codes of query i for group g, as one 32-bit word. */
VNNI_INLINE __m512i qword(const int8_t *q, size_t g)
{
	return _mm512_set1_epi32(word_at(q + 4 * g));
}

/*
 * QT queries against one block; QT is a constant at each call, so the
 * loops unroll and the 2 * QT accumulators stay in registers.  Two
 * accumulators per query (even and odd groups) keep two additions in
 * flight when QT is small.
 */
VNNI_INLINE void vnni_tile(const uint8_t *block, size_t ngroups,
			   __m512i base, const int8_t *q8, size_t dimp,
			   const int32_t *qq, const int32_t *thr, int32_t *out,
			   uint16_t *mask, const int QT)
{
	__m512i acc[2 * 8];
	size_t g = 0;

	for (int i = 0; i < 2 * QT; i++)
		acc[i] = _mm512_setzero_si512();
	for (; g + 2 <= ngroups; g += 2) {
		__m512i c0 = _mm512_loadu_si512(block + g * 64);
		__m512i c1 = _mm512_loadu_si512(block + g * 64 + 64);

		for (int i = 0; i < QT; i++) {
			acc[2 * i] = _mm512_dpbusd_epi32(
				acc[2 * i], c0, qword(q8 + i * dimp, g));
			acc[2 * i + 1] = _mm512_dpbusd_epi32(
				acc[2 * i + 1], c1, qword(q8 + i * dimp, g + 1));
		}
	}
	if (g < ngroups) {
		__m512i c0 = _mm512_loadu_si512(block + g * 64);

		for (int i = 0; i < QT; i++)
			acc[2 * i] = _mm512_dpbusd_epi32(
				acc[2 * i], c0, qword(q8 + i * dimp, g));
	}
	for (int i = 0; i < QT; i++) {
		__m512i dot = _mm512_add_epi32(acc[2 * i], acc[2 * i + 1]);
		__m512i a = _mm512_sub_epi32(
			_mm512_add_epi32(base, _mm512_set1_epi32(qq[i])),
			_mm512_add_epi32(dot, dot));

		_mm512_storeu_si512(out + i * CODE_BLOCK, a);
		mask[i] = _mm512_cmple_epi32_mask(a, _mm512_set1_epi32(thr[i]));
	}
}

__attribute__((target("avx512f,avx512vnni")))
static void vnni_dists(const uint8_t *block, size_t ngroups,
		       const int32_t *base, const int8_t *q8, const int32_t *qq,
		       const int32_t *thr, size_t nq, int32_t *out,
		       uint16_t *mask)
{
	size_t dimp = 4 * ngroups, i = 0;
	__m512i b = _mm512_loadu_si512(base);

#define TILE(QT) vnni_tile(block, ngroups, b, q8 + i * dimp, dimp, qq + i, \
			   thr + i, out + i * CODE_BLOCK, mask + i, QT)
	for (; i + 8 <= nq; i += 8)
		TILE(8);
	for (; i + 4 <= nq; i += 4)
		TILE(4);
	for (; i < nq; i++)
		TILE(1);
#undef TILE
}

static const code_ops vnni_ops = { "avx512vnni", plain_qbytes, plain_prep,
				   vnni_dists };

/* ------------------------------------------------------------------ */
/* AVX-512BW (no VNNI)                                                 */
/* ------------------------------------------------------------------ */

#define BW_INLINE static inline __attribute__((always_inline, \
	target("avx512f,avx512bw")))

/* QT split queries against one block: 16 rows per 64-byte load. */
BW_INLINE void bw_tile(const uint8_t *block, size_t ngroups, __m512i base,
		       const int8_t *qp, size_t qstride, const int32_t *qq,
		       const int32_t *thr, int32_t *out, uint16_t *mask,
		       const int QT)
{
	const __m512i k16 = _mm512_set1_epi16(16), k1 = _mm512_set1_epi16(1);
	__m512i acc[4];
	size_t g0 = 0;

	for (int i = 0; i < QT; i++)
		acc[i] = _mm512_setzero_si512();
	for (; g0 < ngroups; g0 += SPLIT_RUN) {
		size_t g1 = g0 + SPLIT_RUN < ngroups ? g0 + SPLIT_RUN : ngroups;
		__m512i hi[4], lo[4];

		for (int i = 0; i < QT; i++)
			hi[i] = lo[i] = _mm512_setzero_si512();
		for (size_t g = g0; g < g1; g++) {
			__m512i c = _mm512_loadu_si512(block + g * 64);

			for (int i = 0; i < QT; i++) {
				const int8_t *q = qp + i * qstride + 8 * g;

				hi[i] = _mm512_add_epi16(hi[i], _mm512_maddubs_epi16(
					c, _mm512_set1_epi32(word_at(q))));
				lo[i] = _mm512_add_epi16(lo[i], _mm512_maddubs_epi16(
					c, _mm512_set1_epi32(word_at(q + 4))));
			}
		}
		for (int i = 0; i < QT; i++)
			acc[i] = _mm512_add_epi32(acc[i], _mm512_add_epi32(
				_mm512_madd_epi16(hi[i], k16),
				_mm512_madd_epi16(lo[i], k1)));
	}
	for (int i = 0; i < QT; i++) {
		__m512i a = _mm512_sub_epi32(
			_mm512_add_epi32(base, _mm512_set1_epi32(qq[i])),
			_mm512_add_epi32(acc[i], acc[i]));

		_mm512_storeu_si512(out + i * CODE_BLOCK, a);
		mask[i] = _mm512_cmple_epi32_mask(a, _mm512_set1_epi32(thr[i]));
	}
}

__attribute__((target("avx512f,avx512bw")))
static void bw_dists(const uint8_t *block, size_t ngroups, const int32_t *base,
		     const int8_t *qp, const int32_t *qq, const int32_t *thr,
		     size_t nq, int32_t *out, uint16_t *mask)
{
	size_t qs = split_qbytes(ngroups), i = 0;
	__m512i b = _mm512_loadu_si512(base);

	for (; i + 4 <= nq; i += 4)
		bw_tile(block, ngroups, b, qp + i * qs, qs, qq + i, thr + i,
			out + i * CODE_BLOCK, mask + i, 4);
	for (; i < nq; i++)
		bw_tile(block, ngroups, b, qp + i * qs, qs, qq + i, thr + i,
			out + i * CODE_BLOCK, mask + i, 1);
}

static const code_ops bw_ops = { "avx512bw", split_qbytes, split_prep,
				 bw_dists };

/* ------------------------------------------------------------------ */
/* AVX2                                                                */
/* ------------------------------------------------------------------ */

#define AVX2_INLINE static inline __attribute__((always_inline, \
	target("avx2")))

/* Bits of the rows of a whose value is <= t. */
AVX2_INLINE unsigned le_mask(__m256i a, __m256i t)
{
	return ~(unsigned)_mm256_movemask_ps(
		_mm256_castsi256_ps(_mm256_cmpgt_epi32(a, t))) & 0xffu;
}

/* One split query against one block: rows 0-7 and 8-15 per group. */
__attribute__((target("avx2")))
static void avx2_dists(const uint8_t *block, size_t ngroups,
		       const int32_t *base, const int8_t *qp, const int32_t *qq,
		       const int32_t *thr, size_t nq, int32_t *out,
		       uint16_t *mask)
{
	const __m256i k16 = _mm256_set1_epi16(16), k1 = _mm256_set1_epi16(1);
	size_t qs = split_qbytes(ngroups);
	__m256i b0 = _mm256_loadu_si256((const __m256i *)(const void *)base);
	__m256i b1 = _mm256_loadu_si256((const __m256i *)(const void *)(base + 8));

	for (size_t i = 0; i < nq; i++) {
		const int8_t *q = qp + i * qs;
		__m256i acc0 = _mm256_setzero_si256(), acc1 = acc0, a0, a1, t;

		for (size_t g0 = 0; g0 < ngroups; g0 += SPLIT_RUN) {
			size_t g1 = g0 + SPLIT_RUN < ngroups ? g0 + SPLIT_RUN :
							       ngroups;
			__m256i h0 = _mm256_setzero_si256(), h1 = h0, l0 = h0,
				l1 = h0;

			for (size_t g = g0; g < g1; g++) {
				const uint8_t *p = block + g * 64;
				__m256i c0 = _mm256_loadu_si256((const __m256i *)(const void *)p);
				__m256i c1 = _mm256_loadu_si256((const __m256i *)(const void *)(p + 32));
				__m256i qh = _mm256_set1_epi32(word_at(q + 8 * g));
				__m256i ql = _mm256_set1_epi32(word_at(q + 8 * g + 4));

				h0 = _mm256_add_epi16(h0, _mm256_maddubs_epi16(c0, qh));
				h1 = _mm256_add_epi16(h1, _mm256_maddubs_epi16(c1, qh));
				l0 = _mm256_add_epi16(l0, _mm256_maddubs_epi16(c0, ql));
				l1 = _mm256_add_epi16(l1, _mm256_maddubs_epi16(c1, ql));
			}
			acc0 = _mm256_add_epi32(acc0, _mm256_add_epi32(
				_mm256_madd_epi16(h0, k16), _mm256_madd_epi16(l0, k1)));
			acc1 = _mm256_add_epi32(acc1, _mm256_add_epi32(
				_mm256_madd_epi16(h1, k16), _mm256_madd_epi16(l1, k1)));
		}
		t = _mm256_set1_epi32(qq[i]);
		a0 = _mm256_sub_epi32(_mm256_add_epi32(b0, t),
				      _mm256_add_epi32(acc0, acc0));
		a1 = _mm256_sub_epi32(_mm256_add_epi32(b1, t),
				      _mm256_add_epi32(acc1, acc1));
		_mm256_storeu_si256((__m256i *)(void *)(out + i * CODE_BLOCK), a0);
		_mm256_storeu_si256((__m256i *)(void *)(out + i * CODE_BLOCK + 8), a1);
		t = _mm256_set1_epi32(thr[i]);
		mask[i] = (uint16_t)(le_mask(a0, t) | le_mask(a1, t) << 8);
	}
}

static const code_ops avx2_ops = { "avx2", split_qbytes, split_prep,
				   avx2_dists };

const code_ops *code_ops_vnni(void)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f") ||
	    !__builtin_cpu_supports("avx512vnni"))
		return NULL;
	return &vnni_ops;
}

const code_ops *code_ops_avx512bw(void)
{
	__builtin_cpu_init();
	if (!__builtin_cpu_supports("avx512f") ||
	    !__builtin_cpu_supports("avx512bw"))
		return NULL;
	return &bw_ops;
}

const code_ops *code_ops_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") ? &avx2_ops : NULL;
}

#else
const code_ops *code_ops_vnni(void)
{
	return NULL;
}

const code_ops *code_ops_avx512bw(void)
{
	return NULL;
}

const code_ops *code_ops_avx2(void)
{
	(void)split_prep;
	(void)split_qbytes;
	return NULL;
}
#endif

const code_ops *code_ops_best(void)
{
	const code_ops *ops = NULL;

	if (env_flag("RVF_NO_SIMD"))
		return &portable_ops;
	if (!env_flag("RVF_NO_AVX512")) {
		if (!env_flag("RVF_NO_VNNI"))
			ops = code_ops_vnni();
		if (!ops)
			ops = code_ops_avx512bw();
	}
	if (!ops)
		ops = code_ops_avx2();
	if (!ops && !env_flag("RVF_NO_DOTPROD"))
		ops = code_ops_sdot();
	if (!ops)
		ops = code_ops_neon();
	return ops ? ops : &portable_ops;
}
