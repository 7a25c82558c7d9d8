/* codes.c - integer dot products of 8-bit codes: portable and AVX-512 VNNI. */
#include "codes.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

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

static const code_ops portable_ops = { "portable", portable_dists };

const code_ops *code_ops_portable(void)
{
	return &portable_ops;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define VNNI_INLINE static inline __attribute__((always_inline, \
	target("avx512f,avx512vnni")))

/* The four codes of query i for group g, as one 32-bit word. */
VNNI_INLINE __m512i qword(const int8_t *q, size_t g)
{
	int32_t w;

	memcpy(&w, q + 4 * g, 4);
	return _mm512_set1_epi32(w);
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

static const code_ops vnni_ops = { "avx512vnni", vnni_dists };

const code_ops *code_ops_vnni(void)
{
	__builtin_cpu_init();
	if (env_flag("RVF_NO_SIMD") || env_flag("RVF_NO_AVX512"))
		return NULL;
	if (!__builtin_cpu_supports("avx512f") ||
	    !__builtin_cpu_supports("avx512vnni"))
		return NULL;
	return &vnni_ops;
}
#else
const code_ops *code_ops_vnni(void)
{
	return NULL;
}
#endif
