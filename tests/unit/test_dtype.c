/* test_dtype.c - the VEC data types of upstream's block layout (dtype.c):
 * exact conversions, layout detection, refusal of what cannot be read. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bytes.h"
#include "checksum.h"
#include "dtype.h"

#include "check.h"

static void test_half_bf16(void)
{
	CHECK(half_to_float(0x3C00) == 1.0f);
	CHECK(half_to_float(0xC000) == -2.0f);
	CHECK(half_to_float(0x7BFF) == 65504.0f);
	CHECK(half_to_float(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
	CHECK(half_to_float(0x03FF) == ldexpf(1023.0f, -24));
	CHECK(signbit(half_to_float(0x8000)) && half_to_float(0x8000) == 0.0f);
	CHECK(isinf(half_to_float(0x7C00)) && isnan(half_to_float(0x7E00)));
	CHECK(bf16_to_float(0x3F80) == 1.0f);
	CHECK(bf16_to_float(0xC040) == -3.0f);
}

/* One block of 2 rows, dim 2, of type t with raw ids. */
static size_t one_block(unsigned char *p, uint8_t t, const unsigned char *data,
			size_t dlen)
{
	memset(p, 0, 256);
	st32(p, 1);
	st32(p + 4, 64);
	st32(p + 8, 2);
	st16(p + 12, 2);
	p[14] = t;
	size_t pos = 64;
	memcpy(p + pos, data, dlen);
	pos += dlen;
	p[pos] = 0; /* raw ids */
	st16(p + pos + 1, 128);
	st32(p + pos + 3, 2);
	st64(p + pos + 7, 11);
	st64(p + pos + 15, 22);
	pos += 23;
	st32(p + pos, checksum_crc32c(p + 64, pos - 64));
	return pos + 4;
}

static void test_blocks(void)
{
	unsigned char p[256];
	rvf_error err;
	vec_blocks b;
	/* i8, columnar: component 0 of both rows, then component 1 */
	const unsigned char i8[4] = { 0x80, 0x05, 0x7F, 0xFF };
	size_t len = one_block(p, 3, i8, 4);
	CHECK(vec_is_block_layout(p, len, 2));
	CHECK(!vec_is_block_layout(p, len, 3)); /* other dimension */
	CHECK(vec_blocks_decode(p, len, 2, "t", &b, &err) == RVF_OK);
	CHECK(b.n == 2 && b.ids[0] == 11 && b.ids[1] == 22);
	CHECK(b.rows[0] == -128.0f && b.rows[1] == 127.0f);
	CHECK(b.rows[2] == 5.0f && b.rows[3] == -1.0f);
	vec_blocks_free(&b);
	/* a flat payload of the same dimension is not a block one */
	unsigned char flat[6 + 2 * 16] = { 0 };
	st16(flat, 2);
	st32(flat + 2, 2);
	CHECK(!vec_is_block_layout(flat, sizeof(flat), 2));
	/* PQ codes cannot be read: named in the message */
	len = one_block(p, 7, i8, 4);
	CHECK(vec_blocks_decode(p, len, 2, "t", &b, &err) == RVF_E_CORRUPT);
	CHECK(strstr(err.message, "pq") != NULL);
	/* a damaged block fails its CRC32C */
	len = one_block(p, 3, i8, 4);
	p[64] ^= 1;
	CHECK(vec_blocks_decode(p, len, 2, "t", &b, &err) == RVF_E_INVALID_CHECKSUM);
	/* truncated: the id map runs past the end */
	len = one_block(p, 3, i8, 4);
	CHECK(vec_blocks_decode(p, 64 + 4 + 10, 2, "t", &b, &err) != RVF_OK);
}

int main(void)
{
	test_half_bf16();
	test_blocks();
	return check_summary("test_dtype");
}
