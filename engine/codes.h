/* codes.h - rows as 8-bit codes, and exact integer dot products on them.
 *
 * A block holds CODE_BLOCK rows of `dimp` codes (dim rounded up to 4,
 * padded with 0), laid out for the AVX-512 VNNI instruction that multiplies
 * 4 unsigned bytes by 4 signed bytes and adds them into one 32-bit lane:
 * group g (dimensions 4g..4g+3) is 64 bytes, row r's four codes at
 * g * 64 + r * 4.  One 64-byte load then feeds 16 rows (VNNI), 8 rows
 * (AVX2) or 4 rows (NEON).
 *
 * Queries are signed bytes, dimp per query; each kernel first rewrites a
 * query into the form its instructions want (code_ops.prep).  Sums are
 * exact integers (no rounding, no saturation anywhere), so every kernel
 * gives the same numbers: the choice of kernel never changes an answer.
 */
#ifndef RVF_CODES_H
#define RVF_CODES_H

#include <stddef.h>
#include <stdint.h>

enum { CODE_BLOCK = 16 };

typedef struct code_ops {
	const char *name; /* "portable", "avx2", "avx512bw", "avx512vnni",
			   * "neon", "neon-sdot" */
	/* Bytes of one prepared query of ngroups groups. */
	size_t (*qbytes)(size_t ngroups);
	/* Writes the prepared form of one query (4 * ngroups signed bytes). */
	void (*prep)(const int8_t *q8, size_t ngroups, int8_t *out);
	/* For nq prepared queries (qbytes(ngroups) apart):
	 * out[i * CODE_BLOCK + r] = base[r] + qq[i] - 2 * (sum over d of block
	 * row r's code d times query i's code d), in wrapping 32-bit
	 * arithmetic; mask[i] has bit r set when that is <= thr[i]. */
	void (*dists)(const uint8_t *block, size_t ngroups, const int32_t *base,
		      const int8_t *qp, const int32_t *qq, const int32_t *thr,
		      size_t nq, int32_t *out, uint16_t *mask);
} code_ops;

/* Always available; plain C. */
const code_ops *code_ops_portable(void);
/* Each NULL when the CPU (or this build) lacks the instructions. */
const code_ops *code_ops_vnni(void);     /* AVX-512 VNNI */
const code_ops *code_ops_avx512bw(void); /* AVX-512BW: vpmaddubsw/vpmaddwd */
const code_ops *code_ops_avx2(void);     /* AVX2: vpmaddubsw/vpmaddwd */
const code_ops *code_ops_neon(void);     /* ARM NEON: widening multiplies */
const code_ops *code_ops_sdot(void);     /* ARM NEON dot product (sdot) */

/* The best kernel of this CPU, as the environment allows: RVF_NO_SIMD=1
 * gives the portable one, RVF_NO_AVX512=1 stops at AVX2, RVF_NO_VNNI=1
 * skips VNNI (AVX-512BW then), RVF_NO_DOTPROD=1 skips sdot (plain NEON). */
const code_ops *code_ops_best(void);

#endif
