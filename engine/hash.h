/* hash.h - the checksums the format uses (CRC content hash, simple_hash256). */
#ifndef RVF_HASH_H
#define RVF_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* CRC-32/IEEE (zlib's), continued from `crc` (0 to start). */
uint32_t crc32_update(uint32_t crc, const void *data, size_t len);

/* The 16-byte content hash from a finished CRC value. */
void content_hash_from_crc(uint32_t crc, uint8_t out[16]);

/* All-zero stored hashes mean "not set" to the reference. */
bool content_hash_is_zero(const uint8_t h[16]);

/* True when the payload matches the stored hash (or the hash is zero). */
bool content_hash_ok(const uint8_t stored[16], const void *payload, size_t len);

#endif
