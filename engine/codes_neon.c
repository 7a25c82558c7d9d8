/* codes_neon.c - the code kernels (codes.h) for ARM: NEON widening
 * multiplies on every AArch64 CPU, and the dot-product instruction (sdot)
 * where the CPU has it.
 *
 * sdot multiplies signed bytes only, so it reads the codes minus 128
 * (an exclusive-or of the top bit) and adds 128 * sum q back: the
 * prepared query carries that sum after its codes.
 */
#include "codes.h"

#if defined(__aarch64__)
#include <arm_neon.h>
#include <string.h>
#include <sys/auxv.h>

#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif

static size_t neon_qbytes(size_t ngroups)
{
	return 4 * ngroups;
}

static void neon_prep(const int8_t *q8, size_t ngroups, int8_t *out)
{
	memcpy(out, q8, 4 * ngroups);
}

/* Bits of the rows of a (four of them, from row r) that are <= t. */
static unsigned le_bits(int32x4_t a, int32_t t, int r)
{
	uint32x4_t le = vcleq_s32(a, vdupq_n_s32(t));
	static const uint32_t w[4] = { 1, 2, 4, 8 };

	return vaddvq_u32(vandq_u32(le, vld1q_u32(w))) << r;
}

static void finish(const int32_t *base, int32_t qq, int32_t thr,
		   const int32x4_t dot[4], int32_t *out, uint16_t *mask)
{
	unsigned m = 0;

	for (int k = 0; k < 4; k++) {
		int32x4_t a = vsubq_s32(
			vaddq_s32(vld1q_s32(base + 4 * k), vdupq_n_s32(qq)),
			vaddq_s32(dot[k], dot[k]));

		vst1q_s32(out + 4 * k, a);
		m |= le_bits(a, thr, 4 * k);
	}
	*mask = (uint16_t)m;
}

/* Plain NEON: codes widened to 16 bits, multiplied and added into 32-bit
 * lanes, one accumulator per row, summed across at the end. */
static void neon_dists(const uint8_t *block, size_t ngroups,
		       const int32_t *base, const int8_t *qp, const int32_t *qq,
		       const int32_t *thr, size_t nq, int32_t *out,
		       uint16_t *mask)
{
	size_t dimp = 4 * ngroups;

	for (size_t i = 0; i < nq; i++) {
		const int8_t *q = qp + i * dimp;
		int32x4_t acc[CODE_BLOCK], dot[4];

		for (int r = 0; r < CODE_BLOCK; r++)
			acc[r] = vdupq_n_s32(0);
		for (size_t g = 0; g < ngroups; g++) {
			int32_t w;
			int16x4_t q4;

			memcpy(&w, q + 4 * g, 4);
			q4 = vget_low_s16(vmovl_s8(vreinterpret_s8_s32(vdup_n_s32(w))));
			for (int k = 0; k < 4; k++) {
				uint8x16_t v = vld1q_u8(block + g * 64 + 16 * k);
				int16x8_t lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v)));
				int16x8_t hi = vreinterpretq_s16_u16(vmovl_high_u8(v));

				acc[4 * k] = vmlal_s16(acc[4 * k], vget_low_s16(lo), q4);
				acc[4 * k + 1] = vmlal_s16(acc[4 * k + 1], vget_high_s16(lo), q4);
				acc[4 * k + 2] = vmlal_s16(acc[4 * k + 2], vget_low_s16(hi), q4);
				acc[4 * k + 3] = vmlal_s16(acc[4 * k + 3], vget_high_s16(hi), q4);
			}
		}
		for (int k = 0; k < 4; k++)
			dot[k] = vpaddq_s32(vpaddq_s32(acc[4 * k], acc[4 * k + 1]),
					    vpaddq_s32(acc[4 * k + 2], acc[4 * k + 3]));
		finish(base, qq[i], thr[i], dot, out + i * CODE_BLOCK, mask + i);
	}
}

/* sdot: the query's codes, then sum q as an int32. */
static size_t sdot_qbytes(size_t ngroups)
{
	return 4 * ngroups + 4;
}

static void sdot_prep(const int8_t *q8, size_t ngroups, int8_t *out)
{
	int32_t sum = 0;

	for (size_t d = 0; d < 4 * ngroups; d++)
		sum += q8[d];
	memcpy(out, q8, 4 * ngroups);
	memcpy(out + 4 * ngroups, &sum, 4);
}

__attribute__((target("arch=armv8.2-a+dotprod")))
static void sdot_dists(const uint8_t *block, size_t ngroups,
		       const int32_t *base, const int8_t *qp, const int32_t *qq,
		       const int32_t *thr, size_t nq, int32_t *out,
		       uint16_t *mask)
{
	size_t qs = sdot_qbytes(ngroups);
	const uint8x16_t top = vdupq_n_u8(0x80);

	for (size_t i = 0; i < nq; i++) {
		const int8_t *q = qp + i * qs;
		int32x4_t dot[4];
		int32_t sum, w;

		for (int k = 0; k < 4; k++)
			dot[k] = vdupq_n_s32(0);
		for (size_t g = 0; g < ngroups; g++) {
			int8x16_t qv;

			memcpy(&w, q + 4 * g, 4);
			qv = vreinterpretq_s8_s32(vdupq_n_s32(w));
			for (int k = 0; k < 4; k++) {
				uint8x16_t v = vld1q_u8(block + g * 64 + 16 * k);

				dot[k] = vdotq_s32(dot[k],
					vreinterpretq_s8_u8(veorq_u8(v, top)), qv);
			}
		}
		memcpy(&sum, q + 4 * ngroups, 4);
		for (int k = 0; k < 4; k++) /* wrapping, as the contract says */
			dot[k] = vreinterpretq_s32_u32(vaddq_u32(
				vreinterpretq_u32_s32(dot[k]),
				vdupq_n_u32((uint32_t)sum * 128u)));
		finish(base, qq[i], thr[i], dot, out + i * CODE_BLOCK, mask + i);
	}
}

static const code_ops neon_ops = { "neon", neon_qbytes, neon_prep,
				   neon_dists };
static const code_ops sdot_ops = { "neon-sdot", sdot_qbytes, sdot_prep,
				   sdot_dists };

const code_ops *code_ops_neon(void)
{
	return &neon_ops;
}

const code_ops *code_ops_sdot(void)
{
	return getauxval(AT_HWCAP) & HWCAP_ASIMDDP ? &sdot_ops : NULL;
}

#else

const code_ops *code_ops_neon(void)
{
	return NULL;
}

const code_ops *code_ops_sdot(void)
{
	return NULL;
}

#endif
