/* hash.c - CRC content hash (zlib CRC-32/IEEE) and simple_hash256. */
#include "hash.h"

#include <isa-l/crc.h>
#include <string.h>

#include "rvf.h"

/* ISA-L's PCLMUL CRC runs at memory speed (about 6x zlib's here), and
 * opening a store checks the CRC of every vector payload. */
uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
	return crc32_gzip_refl(crc, data, len);
}

static uint32_t rotl32(uint32_t v, unsigned r)
{
	return (v << r) | (v >> (32 - r));
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

void content_hash_from_crc(uint32_t c, uint8_t out[16])
{
	/* The reference replicates the CRC four times, rotated by 8 each. */
	put_le32(out, c);
	put_le32(out + 4, rotl32(c, 8));
	put_le32(out + 8, rotl32(c, 16));
	put_le32(out + 12, rotl32(c, 24));
}

void rvf_content_hash(const void *data, size_t len, uint8_t out[16])
{
	content_hash_from_crc(crc32_update(0, data, len), out);
}

bool content_hash_is_zero(const uint8_t h[16])
{
	static const uint8_t zero[16];
	return memcmp(h, zero, 16) == 0;
}

bool content_hash_ok(const uint8_t stored[16], const void *payload, size_t len)
{
	uint8_t h[16];
	if (content_hash_is_zero(stored))
		return true;
	rvf_content_hash(payload, len, h);
	return memcmp(h, stored, 16) == 0;
}

static inline void simple_step(uint8_t *out, size_t a, unsigned char c)
{
	uint8_t v = (uint8_t)(out[a] + c);
	out[a] = v;
	out[(a + 13) & 31] = (uint8_t)(out[(a + 13) & 31] + (uint8_t)((v << 3) | (v >> 5)));
}

void rvf_simple_hash256(const void *data, size_t len, uint8_t out[32])
{
	const unsigned char *p = data;
	memset(out, 0, 32);
	/* Byte i updates out[i % 32] and out[(i + 13) % 32]: whole blocks of
	 * 32 need no division (finding a branch parent's state hashes many
	 * 64 KiB tails, parent_state.c). */
	size_t i = 0;
	for (; i + 32 <= len; i += 32)
		for (size_t a = 0; a < 32; a++)
			simple_step(out, a, p[i + a]);
	for (; i < len; i++)
		simple_step(out, i % 32, p[i]);
}
