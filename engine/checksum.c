/* checksum.c - identifying and verifying a segment's content hash.
 *
 * Libraries: ISA-L for CRC32C (crc32_iscsi), libxxhash for XXH3-128,
 * Nettle for SHAKE-256, libsodium for SHA-256.  (Nettle rather than
 * OpenSSL's libcrypto: linking libcrypto costs every rvfctl and rvffs
 * start 21,000 relocations, as much again as the rest of rvfctl.) */
#include "checksum.h"

#include <isa-l/crc.h>
#include <nettle/sha3.h>
#include <sodium.h>
#include <string.h>
#include <xxhash.h>

#include "bytes.h"
#include "hash.h"

uint32_t checksum_crc32c(const void *data, size_t len)
{
	/* crc32_iscsi takes an int length: feed it in 1 GiB pieces. */
	const unsigned char *p = data;
	uint32_t crc = 0xFFFFFFFFu;
	while (len) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;
		crc = crc32_iscsi((unsigned char *)p, (int)n, crc);
		p += n;
		len -= n;
	}
	return ~crc;
}

void checksum_xxh3_128(const void *data, size_t len, uint8_t out[16])
{
	/* Rust's u128::to_le_bytes: the low 64 bits first. */
	XXH128_hash_t h = XXH3_128bits(data, len);
	st64(out, h.low64);
	st64(out + 8, h.high64);
}

bool checksum_shake256(const void *data, size_t len, uint8_t *out,
		       size_t outlen)
{
	struct sha3_256_ctx ctx;
	sha3_256_init(&ctx);
	sha3_256_update(&ctx, len, data);
	sha3_256_shake(&ctx, outlen, out);
	return true;
}

void checksum_sha256(const void *data, size_t len, uint8_t out[32])
{
	crypto_hash_sha256(out, data, len);
}

static bool match_algo(rvf_hash_algo a, const uint8_t stored[16],
		       const void *p, size_t len)
{
	uint8_t h[32] = { 0 };
	switch (a) {
	case RVF_HASH_CRC32_ROTATED:
		rvf_content_hash(p, len, h);
		break;
	case RVF_HASH_CRC32C:
		st32(h, checksum_crc32c(p, len)); /* "first 128 bits" of a u32 */
		break;
	case RVF_HASH_XXH3_128:
		checksum_xxh3_128(p, len, h);
		break;
	case RVF_HASH_SHAKE256:
		if (!checksum_shake256(p, len, h, 16))
			return false;
		break;
	case RVF_HASH_SHA256:
		checksum_sha256(p, len, h);
		break;
	default:
		return false;
	}
	return memcmp(h, stored, 16) == 0;
}

rvf_hash_algo content_hash_identify(const rvf_segment *seg,
				    const void *payload, size_t len)
{
	const uint8_t *stored = seg->content_hash;
	if (content_hash_is_zero(stored))
		return RVF_HASH_NONE;
	/* The reference's own hash first (every file it writes), then the one
	 * the header names, then the rest. */
	if (match_algo(RVF_HASH_CRC32_ROTATED, stored, payload, len))
		return RVF_HASH_CRC32_ROTATED;
	static const rvf_hash_algo by_byte[4] = {
		RVF_HASH_CRC32C, RVF_HASH_XXH3_128, RVF_HASH_SHAKE256,
		RVF_HASH_SHAKE256,
	};
	rvf_hash_algo named = seg->checksum_algo < 4 ?
			      by_byte[seg->checksum_algo] : RVF_HASH_XXH3_128;
	if (match_algo(named, stored, payload, len))
		return named;
	static const rvf_hash_algo all[] = {
		RVF_HASH_XXH3_128, RVF_HASH_SHA256, RVF_HASH_SHAKE256,
		RVF_HASH_CRC32C,
	};
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (all[i] != named && match_algo(all[i], stored, payload, len))
			return all[i];
	/* A keyed hash needs the key, which the file does not hold. */
	if (seg->checksum_algo == 3)
		return RVF_HASH_HMAC_SHAKE256;
	return RVF_HASH_MISMATCH;
}

const char *rvf_hash_algo_name(rvf_hash_algo a)
{
	switch (a) {
	case RVF_HASH_NONE: return "none";
	case RVF_HASH_CRC32_ROTATED: return "crc32-rotated";
	case RVF_HASH_CRC32C: return "crc32c";
	case RVF_HASH_XXH3_128: return "xxh3-128";
	case RVF_HASH_SHAKE256: return "shake256-128";
	case RVF_HASH_SHA256: return "sha256-128";
	case RVF_HASH_HMAC_SHAKE256: return "hmac-shake256 (keyed, not verified)";
	case RVF_HASH_MISMATCH: break;
	}
	return "mismatch";
}
