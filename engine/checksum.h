/* checksum.h - every content-hash algorithm a segment header may name.
 *
 * rvf-node writes the CRC-32/IEEE rotation (hash.c) whatever the header's
 * checksum_algo byte says.  Upstream's rvf-types defines the byte as
 * 0 CRC32C, 1 XXH3-128, 2 SHAKE-256, 3 HMAC-SHAKE-256 (rvf-wire hashes
 * both 0 and 1 with XXH3-128), and upstream's ruvbot build script writes
 * the first 16 bytes of SHA-256 with the byte left at 0.  A reader finds
 * out which one a segment carries by trying them. */
#ifndef RVF_CHECKSUM_H
#define RVF_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

/* Which algorithm matches the stored hash of `seg` over `payload`:
 * RVF_HASH_NONE for an all-zero hash, RVF_HASH_HMAC_SHAKE256 (unverified)
 * for a keyed hash none of the others match, else RVF_HASH_MISMATCH. */
rvf_hash_algo content_hash_identify(const rvf_segment *seg,
				    const void *payload, size_t len);

/* True for the results that count as an intact payload. */
static inline int content_hash_algo_ok(rvf_hash_algo a)
{
	return a != RVF_HASH_MISMATCH;
}

/* Digests (exposed for the unit tests and verify-attestation). */
uint32_t checksum_crc32c(const void *data, size_t len);
void checksum_xxh3_128(const void *data, size_t len, uint8_t out[16]);
/* SHAKE-256 with `outlen` bytes of output (always true: Nettle cannot
 * fail; the bool stays for the callers that check). */
bool checksum_shake256(const void *data, size_t len, uint8_t *out,
		       size_t outlen);
void checksum_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
