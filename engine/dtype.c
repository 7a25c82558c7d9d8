/* dtype.c - decoding upstream's block-layout VEC payloads (dtype.h). */
#include "dtype.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "checksum.h"
#include "error.h"

#define DIR_ENTRY 12

const char *vec_dtype_name(uint8_t t)
{
	static const char *const names[] = { "f32", "f16", "bf16", "i8", "u8", "i4",
					     "binary", "pq", "custom" };
	return t < 9 ? names[t] : NULL;
}

float half_to_float(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1F, man = h & 0x3FF;
	float f;
	if (exp == 0)
		f = ldexpf((float)man, -24); /* zero and subnormals */
	else if (exp == 31)
		f = man ? NAN : INFINITY;
	else
		f = ldexpf((float)(man | 0x400), (int)exp - 25);
	uint32_t bits;
	memcpy(&bits, &f, 4);
	bits |= sign;
	memcpy(&f, &bits, 4);
	return f;
}

float bf16_to_float(uint16_t b)
{
	uint32_t bits = (uint32_t)b << 16;
	float f;
	memcpy(&f, &bits, 4);
	return f;
}

static size_t elem_size(uint8_t t)
{
	return t == 0 ? 4 : t <= 2 ? 2 : t <= 4 ? 1 : 0;
}

static uint64_t dir_size(uint32_t blocks)
{
	return ((uint64_t)4 + (uint64_t)blocks * DIR_ENTRY + 63) & ~(uint64_t)63;
}

bool vec_is_block_layout(const unsigned char *p, uint64_t len, uint32_t dim)
{
	if (dim == 0 || len < 64)
		return false;
	/* A flat payload of this dimension whose rows fit is flat. */
	uint64_t stride = 8 + 4 * (uint64_t)dim;
	if (ld16(p) == dim && (len - 6) / stride >= ld32(p + 2))
		return false;
	uint32_t blocks = ld32(p);
	if (blocks == 0 || dir_size(blocks) > len)
		return false;
	for (uint32_t b = 0; b < blocks; b++) {
		const unsigned char *e = p + 4 + (size_t)b * DIR_ENTRY;
		if (ld32(e) < dir_size(blocks) || ld32(e) >= len || ld16(e + 8) != dim ||
		    e[10] > 8)
			return false;
	}
	return true;
}

/* LEB128 varint at *pos; false when it runs past end or overflows. */
static bool varint(const unsigned char *p, uint64_t end, uint64_t *pos, uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned shift = 0; shift < 64; shift += 7) {
		if (*pos >= end)
			return false;
		uint8_t b = p[(*pos)++];
		v |= (uint64_t)(b & 0x7F) << shift;
		if (!(b & 0x80)) {
			*out = v;
			return true;
		}
	}
	return false;
}

void vec_blocks_free(vec_blocks *b)
{
	free(b->ids);
	free(b->rows);
	memset(b, 0, sizeof(*b));
}

static float element(const unsigned char *q, uint8_t t)
{
	switch (t) {
	case 0: {
		float f;
		memcpy(&f, q, 4);
		return f;
	}
	case 1: return half_to_float(ld16(q));
	case 2: return bf16_to_float(ld16(q));
	case 3: return (float)(int8_t)q[0];
	default: return (float)q[0];
	}
}

rvf_code vec_blocks_decode(const unsigned char *p, uint64_t len, uint32_t dim,
			   const char *what, vec_blocks *out, rvf_error *err)
{
	memset(out, 0, sizeof(*out));
	uint32_t blocks = ld32(p);
	uint64_t total = 0;
	for (uint32_t b = 0; b < blocks; b++) {
		const unsigned char *e = p + 4 + (size_t)b * DIR_ENTRY;
		uint8_t t = e[10];
		if (!elem_size(t))
			return rvf_fail(err, RVF_E_CORRUPT,
					"%s: block %u holds %s vectors, which cannot be read as numbers%s",
					what, b + 1, vec_dtype_name(t),
					t == 7 ? " (product-quantized codes need their codebook)" :
					t == 8 ? " (a custom encoding)" :
					" (upstream's DataType says 4 or 1 bits per element, its VEC codec stores one byte: the layout is not defined)");
		total += ld32(e + 4);
	}
	if (total > len) /* every row takes at least one byte */
		return rvf_fail(err, RVF_E_CORRUPT, "%s: block counts exceed the payload", what);
	out->ids = malloc(sizeof(uint64_t) * (total ? total : 1));
	out->rows = malloc(sizeof(float) * (size_t)dim * (total ? total : 1));
	if (!out->ids || !out->rows) {
		vec_blocks_free(out);
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory decoding %s", what);
	}
	for (uint32_t b = 0; b < blocks; b++) {
		const unsigned char *e = p + 4 + (size_t)b * DIR_ENTRY;
		uint64_t off = ld32(e), count = ld32(e + 4);
		uint8_t t = e[10];
		uint64_t vlen = count * dim * elem_size(t);
		uint64_t pos = off + vlen;
		if (off > len || vlen > len - off || len - pos < 7) {
			vec_blocks_free(out);
			return rvf_fail(err, RVF_E_CORRUPT, "%s: block %u runs past the payload",
					what, b + 1);
		}
		uint8_t enc = p[pos];
		uint32_t restart = ld16(p + pos + 1), nid = ld32(p + pos + 3);
		pos += 7;
		if (nid != count || (enc == 1 && restart == 0)) {
			vec_blocks_free(out);
			return rvf_fail(err, RVF_E_CORRUPT,
					"%s: block %u has %u ids for %llu vectors (or a zero restart interval)",
					what, b + 1, nid, (unsigned long long)count);
		}
		uint64_t *ids = out->ids + out->n, prev = 0;
		for (uint64_t i = 0; i < count; i++) {
			uint64_t v;
			if (enc == 1) {
				if (!varint(p, len, &pos, &v))
					goto truncated;
				prev = i % restart == 0 ? v : prev + v;
				ids[i] = prev;
			} else {
				if (len - pos < 8)
					goto truncated;
				ids[i] = ld64(p + pos);
				pos += 8;
			}
		}
		if (len - pos < 4)
			goto truncated;
		if (checksum_crc32c(p + off, (size_t)(pos - off)) != ld32(p + pos)) {
			vec_blocks_free(out);
			return rvf_fail(err, RVF_E_INVALID_CHECKSUM,
					"%s: block %u fails its CRC32C", what, b + 1);
		}
		/* Columnar: all rows' component 0, then component 1, ... */
		size_t es = elem_size(t);
		float *rows = out->rows + out->n * (size_t)dim;
		for (uint32_t d = 0; d < dim; d++)
			for (uint64_t i = 0; i < count; i++)
				rows[i * dim + d] = element(p + off + (d * count + i) * es, t);
		out->n += (size_t)count;
		continue;
truncated:
		vec_blocks_free(out);
		return rvf_fail(err, RVF_E_CORRUPT, "%s: block %u's id map runs past the payload",
				what, b + 1);
	}
	return RVF_OK;
}
