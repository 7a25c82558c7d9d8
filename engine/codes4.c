/* codes4.c - table sums over 4-bit codes (codes4.h): portable C,
 * AVX-512BW and AVX2 (vpshufb), ARM NEON (tbl).
 *
 * Each kernel looks up the two nibbles of a byte in their tables, adds the
 * two entries in a byte (at most 254: exact), then adds those into 16-bit
 * lanes with unsigned saturation, and at the end the lanes of one row with
 * saturation again: min(65535, exact sum), the portable kernel's number.
 */
#include "codes4.h"

#include <stdbool.h>

#include "env.h"

static void portable_sums(const uint8_t *blocks, size_t nblocks,
			  size_t ngroups, const uint8_t *table, uint16_t thr,
			  uint16_t *sums, uint16_t *masks)
{
	for (size_t b = 0; b < nblocks; b++) {
		const uint8_t *blk = blocks + b * ngroups * 64;

		masks[b] = 0;
		for (int r = 0; r < CODE_BLOCK; r++) {
			uint32_t s = 0;

			for (size_t g = 0; g < ngroups; g++)
				for (int l = 0; l < 4; l++) {
					uint8_t c = blk[g * 64 + l * 16 + r];
					const uint8_t *t = table + g * 128 + l * 16;

					s += t[c & 15] + t[64 + (c >> 4)];
				}
			s = s > 65535 ? 65535 : s;
			sums[b * CODE_BLOCK + r] = (uint16_t)s;
			if (s <= thr)
				masks[b] |= (uint16_t)(1u << r);
		}
	}
}

static const code4_ops portable_ops = { "portable", portable_sums };

const code4_ops *code4_ops_portable(void)
{
	return &portable_ops;
}

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>

/* Rows 0..15 from the per-lane totals of even rows (e: row 2j at j) and
 * odd rows (o), lane 0 of each; the mask of those <= thr. */
__attribute__((target("sse4.1")))
static uint16_t finish_block(__m128i e, __m128i o, uint16_t thr, uint16_t *out)
{
	__m128i lo = _mm_unpacklo_epi16(e, o), hi = _mm_unpackhi_epi16(e, o);
	__m128i t = _mm_set1_epi16((short)thr);
	__m128i le_lo = _mm_cmpeq_epi16(_mm_min_epu16(lo, t), lo);
	__m128i le_hi = _mm_cmpeq_epi16(_mm_min_epu16(hi, t), hi);

	_mm_storeu_si128((__m128i *)out, lo);
	_mm_storeu_si128((__m128i *)(out + 8), hi);
	return (uint16_t)_mm_movemask_epi8(_mm_packs_epi16(le_lo, le_hi));
}

__attribute__((target("avx512f,avx512bw,sse4.1")))
static void bw_sums(const uint8_t *blocks, size_t nblocks, size_t ngroups,
		    const uint8_t *table, uint16_t thr, uint16_t *sums,
		    uint16_t *masks)
{
	const __m512i nib = _mm512_set1_epi8(15), low = _mm512_set1_epi16(255);

	for (size_t b = 0; b < nblocks; b++) {
		const uint8_t *blk = blocks + b * ngroups * 64;
		__m512i even = _mm512_setzero_si512(), odd = even;

		for (size_t g = 0; g < ngroups; g++) {
			__m512i c = _mm512_loadu_si512(blk + g * 64);
			__m512i tl = _mm512_loadu_si512(table + g * 128);
			__m512i th = _mm512_loadu_si512(table + g * 128 + 64);
			__m512i s = _mm512_adds_epu8(
				_mm512_shuffle_epi8(tl, _mm512_and_si512(c, nib)),
				_mm512_shuffle_epi8(th, _mm512_and_si512(
					_mm512_srli_epi16(c, 4), nib)));

			even = _mm512_adds_epu16(even, _mm512_and_si512(s, low));
			odd = _mm512_adds_epu16(odd, _mm512_srli_epi16(s, 8));
		}
		/* the four lanes of each row, added */
		even = _mm512_adds_epu16(even, _mm512_shuffle_i64x2(even, even, 0x4e));
		odd = _mm512_adds_epu16(odd, _mm512_shuffle_i64x2(odd, odd, 0x4e));
		even = _mm512_adds_epu16(even, _mm512_shuffle_i64x2(even, even, 0xb1));
		odd = _mm512_adds_epu16(odd, _mm512_shuffle_i64x2(odd, odd, 0xb1));
		masks[b] = finish_block(_mm512_castsi512_si128(even),
					_mm512_castsi512_si128(odd), thr,
					sums + b * CODE_BLOCK);
	}
}

__attribute__((target("avx2,sse4.1")))
static void avx2_sums(const uint8_t *blocks, size_t nblocks, size_t ngroups,
		      const uint8_t *table, uint16_t thr, uint16_t *sums,
		      uint16_t *masks)
{
	const __m256i nib = _mm256_set1_epi8(15), low = _mm256_set1_epi16(255);

	for (size_t b = 0; b < nblocks; b++) {
		const uint8_t *blk = blocks + b * ngroups * 64;
		__m256i even = _mm256_setzero_si256(), odd = even;

		for (size_t h = 0; h < 2 * ngroups; h++) {
			/* half a group: lanes 0-1 or 2-3 */
			size_t g = h / 2, off = g * 128 + h % 2 * 32;
			__m256i c = _mm256_loadu_si256((const __m256i *)(blk + h * 32));
			__m256i tl = _mm256_loadu_si256((const __m256i *)(table + off));
			__m256i th = _mm256_loadu_si256((const __m256i *)(table + off + 64));
			__m256i s = _mm256_adds_epu8(
				_mm256_shuffle_epi8(tl, _mm256_and_si256(c, nib)),
				_mm256_shuffle_epi8(th, _mm256_and_si256(
					_mm256_srli_epi16(c, 4), nib)));

			even = _mm256_adds_epu16(even, _mm256_and_si256(s, low));
			odd = _mm256_adds_epu16(odd, _mm256_srli_epi16(s, 8));
		}
		masks[b] = finish_block(
			_mm_adds_epu16(_mm256_castsi256_si128(even),
				       _mm256_extracti128_si256(even, 1)),
			_mm_adds_epu16(_mm256_castsi256_si128(odd),
				       _mm256_extracti128_si256(odd, 1)),
			thr, sums + b * CODE_BLOCK);
	}
}

static const code4_ops bw_ops = { "avx512bw", bw_sums };
static const code4_ops avx2_ops = { "avx2", avx2_sums };

const code4_ops *code4_ops_avx512bw(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") &&
	       __builtin_cpu_supports("avx512bw") ? &bw_ops : NULL;
}

const code4_ops *code4_ops_avx2(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx2") ? &avx2_ops : NULL;
}
#else
const code4_ops *code4_ops_avx512bw(void)
{
	return NULL;
}

const code4_ops *code4_ops_avx2(void)
{
	return NULL;
}
#endif

#if defined(__aarch64__)
#include <arm_neon.h>

static void neon_sums(const uint8_t *blocks, size_t nblocks, size_t ngroups,
		      const uint8_t *table, uint16_t thr, uint16_t *sums,
		      uint16_t *masks)
{
	const uint8x16_t nib = vdupq_n_u8(15);
	static const uint16_t w[8] = { 1, 2, 4, 8, 16, 32, 64, 128 };
	const uint16x8_t bits = vld1q_u16(w), t = vdupq_n_u16(thr);

	for (size_t b = 0; b < nblocks; b++) {
		const uint8_t *blk = blocks + b * ngroups * 64;
		uint16x8_t lo = vdupq_n_u16(0), hi = lo;

		for (size_t g = 0; g < ngroups; g++)
			for (int l = 0; l < 4; l++) {
				uint8x16_t c = vld1q_u8(blk + g * 64 + l * 16);
				const uint8_t *tb = table + g * 128 + l * 16;
				uint8x16_t s = vqaddq_u8(
					vqtbl1q_u8(vld1q_u8(tb), vandq_u8(c, nib)),
					vqtbl1q_u8(vld1q_u8(tb + 64), vshrq_n_u8(c, 4)));

				lo = vqaddq_u16(lo, vmovl_u8(vget_low_u8(s)));
				hi = vqaddq_u16(hi, vmovl_u8(vget_high_u8(s)));
			}
		vst1q_u16(sums + b * CODE_BLOCK, lo);
		vst1q_u16(sums + b * CODE_BLOCK + 8, hi);
		masks[b] = (uint16_t)(vaddvq_u16(vandq_u16(vcleq_u16(lo, t), bits)) |
				      vaddvq_u16(vandq_u16(vcleq_u16(hi, t), bits)) << 8);
	}
}

static const code4_ops neon_ops = { "neon", neon_sums };

const code4_ops *code4_ops_neon(void)
{
	return &neon_ops;
}
#else
const code4_ops *code4_ops_neon(void)
{
	return NULL;
}
#endif

const code4_ops *code4_ops_best(void)
{
	const code4_ops *ops = NULL;

	if (env_flag("RVF_NO_SIMD"))
		return &portable_ops;
	if (!env_flag("RVF_NO_AVX512"))
		ops = code4_ops_avx512bw();
	if (!ops)
		ops = code4_ops_avx2();
	if (!ops)
		ops = code4_ops_neon();
	return ops ? ops : &portable_ops;
}
