/* codes.h - rows as 8-bit codes, and exact integer dot products on them.
 *
 * A block holds CODE_BLOCK rows of `dimp` codes (dim rounded up to 4,
 * padded with 0), laid out for the AVX-512 VNNI instruction that multiplies
 * 4 unsigned bytes by 4 signed bytes and adds them into one 32-bit lane:
 * group g (dimensions 4g..4g+3) is 64 bytes, row r's four codes at
 * g * 64 + r * 4.  One 64-byte load then feeds 16 rows.
 *
 * Queries are signed bytes, dimp per query.  Sums are exact integers (no
 * rounding anywhere), so every kernel gives the same numbers.
 */
#ifndef RVF_CODES_H
#define RVF_CODES_H

#include <stddef.h>
#include <stdint.h>

enum { CODE_BLOCK = 16 };

typedef struct code_ops {
	const char *name; /* "portable" or "avx512vnni" */
	/* For nq queries: out[i * CODE_BLOCK + r] = base[r] + qq[i] - 2 *
	 * (sum over d of block row r's code d times q8[i * dimp + d]), in
	 * wrapping 32-bit arithmetic, dimp = 4 * ngroups; mask[i] has bit r
	 * set when that is <= thr[i]. */
	void (*dists)(const uint8_t *block, size_t ngroups, const int32_t *base,
		      const int8_t *q8, const int32_t *qq, const int32_t *thr,
		      size_t nq, int32_t *out, uint16_t *mask);
} code_ops;

/* Always available; plain C. */
const code_ops *code_ops_portable(void);
/* NULL unless the CPU has AVX-512 VNNI (and RVF_NO_AVX512 / RVF_NO_SIMD
 * are unset). */
const code_ops *code_ops_vnni(void);

#endif
