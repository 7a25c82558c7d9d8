/* test_checksum.c - every content-hash algorithm a segment header may
 * name (checksum.c), against published test vectors, and identification
 * of each by content_hash_identify. */
#include <stdio.h>
#include <string.h>

#include "checksum.h"
#include "hash.h"
#include "rvf.h"

#include "check.h"

static void unhex(const char *h, uint8_t *out)
{
	for (size_t i = 0; h[2 * i]; i++) {
		unsigned v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

static void test_vectors(void)
{
	uint8_t h[32], want[32];
	CHECK(checksum_crc32c("123456789", 9) == 0xE3069283u);
	/* XXH3-128("") = 0x99aa06d3014798d86001c324468d497f, stored as
	 * Rust's u128::to_le_bytes. */
	checksum_xxh3_128("", 0, h);
	unhex("7f498d4624c30160d8984701d306aa99", want);
	CHECK(memcmp(h, want, 16) == 0);
	CHECK(checksum_shake256("", 0, h, 32));
	unhex("46b9dd2b0ba88d13233b3feb743eeb243fcd52ea62b81b82b50c27646ed5762f", want);
	CHECK(memcmp(h, want, 32) == 0);
	CHECK(checksum_shake256("abc", 3, h, 32));
	unhex("483366601360a8771c6863080cc4114d8db44530f8f1e1ee4f94ea37e78b5739", want);
	CHECK(memcmp(h, want, 32) == 0);
	/* more than one 136-byte block, more output than a SHA3-256 digest
	 * (Python: hashlib.shake_256(bytes(range(256)) * 2).hexdigest(40)) */
	uint8_t in[512], h40[40], want40[40];
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	CHECK(checksum_shake256(in, sizeof(in), h40, 40));
	unhex("a1d71885b0a841f03d1dc7f2738a15cc984071a17ffed5ecacb9f58720a473be1f2d28b96d543a36", want40);
	CHECK(memcmp(h40, want40, 40) == 0);
	checksum_sha256("abc", 3, h);
	unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", want);
	CHECK(memcmp(h, want, 32) == 0);
}

static rvf_segment seg_with(uint8_t algo_byte, const uint8_t hash[16])
{
	rvf_segment s;
	memset(&s, 0, sizeof(s));
	s.checksum_algo = algo_byte;
	memcpy(s.content_hash, hash, 16);
	return s;
}

static void test_identify(void)
{
	const char *p = "a payload of some bytes";
	size_t n = strlen(p);
	uint8_t h[32] = { 0 };
	rvf_segment s;

	s = seg_with(0, h);
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_NONE);
	rvf_content_hash(p, n, h);
	s = seg_with(0, h);
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_CRC32_ROTATED);
	s = seg_with(2, h); /* whatever the byte says */
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_CRC32_ROTATED);

	memset(h, 0, sizeof(h));
	uint32_t c = checksum_crc32c(p, n);
	memcpy(h, &c, 4);
	s = seg_with(0, h);
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_CRC32C);

	checksum_xxh3_128(p, n, h);
	s = seg_with(1, h);
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_XXH3_128);
	s = seg_with(0, h); /* rvf-wire hashes algo 0 with XXH3 too */
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_XXH3_128);

	checksum_shake256(p, n, h, 16);
	s = seg_with(2, h);
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_SHAKE256);

	checksum_sha256(p, n, h);
	s = seg_with(0, h);
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_SHA256);

	/* One flipped byte: nothing matches. */
	h[3] ^= 1;
	s = seg_with(0, h);
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_MISMATCH);
	/* A keyed hash cannot be checked, and is not called damaged. */
	s = seg_with(3, h);
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_HMAC_SHAKE256);
	/* But a keyed header whose hash is one we know is verified. */
	checksum_shake256(p, n, h, 16);
	s = seg_with(3, h);
	CHECK(content_hash_identify(&s, p, n) == RVF_HASH_SHAKE256);

	CHECK(strcmp(rvf_hash_algo_name(RVF_HASH_SHA256), "sha256-128") == 0);
	CHECK(strcmp(rvf_hash_algo_name(RVF_HASH_MISMATCH), "mismatch") == 0);
}

int main(void)
{
	test_vectors();
	test_identify();
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
