/* codes4.h - rows as 4-bit codes, and table sums on them (the first pass
 * of large L2 searches, accel.h).
 *
 * A block holds CODE_BLOCK rows in groups of 8 dimensions, 64 bytes a
 * group (dim rounded up to 8, padded with code 0): in group g, byte
 * L * 16 + r holds row r's code of dimension 8g + 2L in its low nibble and
 * of dimension 8g + 2L + 1 in its high nibble.  Each 16-byte lane then
 * serves one pair of dimensions for 16 rows, the shape of a byte shuffle
 * (vpshufb, tbl) that looks up 16 table entries at once.
 *
 * A query comes as a table: per group 128 bytes, lane L of the first 64
 * the 16 entries for dimension 8g + 2L, lane L of the second 64 those of
 * 8g + 2L + 1.  Entries are at most 127 (two of them fit a byte).  Sums
 * of non-negative numbers with saturation at 65535 end at min(65535,
 * exact sum) whatever the order, so every kernel gives the same numbers.
 */
#ifndef RVF_CODES4_H
#define RVF_CODES4_H

#include <stddef.h>
#include <stdint.h>

#include "codes.h"

enum { CODE4_ENTRY_MAX = 127 };

typedef struct code4_ops {
	const char *name; /* "portable", "avx512bw", "avx2", "neon" */
	/* For nblocks consecutive blocks of ngroups groups:
	 * sums[b * CODE_BLOCK + r] = min(65535, sum over the dimensions d of
	 * block b's row r of the table entry of its code), and masks[b] has
	 * bit r set when that is <= thr. */
	void (*sums)(const uint8_t *blocks, size_t nblocks, size_t ngroups,
		     const uint8_t *table, uint16_t thr, uint16_t *sums,
		     uint16_t *masks);
} code4_ops;

const code4_ops *code4_ops_portable(void);
/* NULL when the CPU (or this build) lacks the instructions. */
const code4_ops *code4_ops_avx512bw(void);
const code4_ops *code4_ops_avx2(void);
const code4_ops *code4_ops_neon(void);

/* The best of this CPU under the switches of code_ops_best (RVF_NO_SIMD,
 * RVF_NO_AVX512). */
const code4_ops *code4_ops_best(void);

#endif
