/* dtype.h - VEC payloads in upstream's block layout (rvf-wire
 * vec_seg_codec.rs), whose rows carry a data type.
 *
 * rvf-node writes and reads only the flat f32 layout (dim u16, count u32,
 * rows).  Upstream's wire codec defines another: a block directory
 * (u32 block count, then per block u32 offset, u32 count, u16 dim, u8 data
 * type, u8 tier; padded to 64 bytes), and per block the vectors column by
 * column, an id map (u8 encoding: 1 delta-varint with restarts, else raw
 * u64; u16 restart interval; u32 id count) and a CRC32C.  Data types
 * (rvf-types data_type.rs): 0 f32, 1 f16, 2 bf16, 3 i8, 4 u8, 5 i4,
 * 6 binary, 7 PQ, 8 custom.  Rows are converted to f32 when the view is
 * built (every value of the first five is exactly a float), so search and
 * everything else see f32 rows; the others are refused by name. */
#ifndef RVF_DTYPE_H
#define RVF_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

/* True when a VEC payload is in the block layout for vectors of `dim`
 * (and not a flat payload of that dimension). */
bool vec_is_block_layout(const unsigned char *p, uint64_t len, uint32_t dim);

/* One decoded block payload: n rows, ids[n], rows[n*dim] f32. */
typedef struct vec_blocks {
	size_t n;
	uint64_t *ids;
	float *rows;
} vec_blocks;

/* Decodes every block of a block-layout VEC payload into f32 rows.
 * `what` names the segment in messages.  RVF_E_CORRUPT on damage or on a
 * data type we cannot read (named). */
rvf_code vec_blocks_decode(const unsigned char *p, uint64_t len, uint32_t dim,
			   const char *what, vec_blocks *out, rvf_error *err);
void vec_blocks_free(vec_blocks *b);

/* "f32", "f16", ... or NULL. */
const char *vec_dtype_name(uint8_t dtype);

/* IEEE half and bfloat16 to float (exact). */
float half_to_float(uint16_t h);
float bf16_to_float(uint16_t b);

#endif
