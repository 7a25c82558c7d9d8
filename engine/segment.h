/* segment.h - the 64-byte segment header. */
#ifndef RVF_SEGMENT_H
#define RVF_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

#define RVF_SEGMENT_MAGIC 0x52564653u /* "SFVR" on disk */

/* Decodes the header at p (64 bytes readable).  False on a wrong magic. */
bool segment_decode(const unsigned char *p, uint64_t offset, rvf_segment *out);

/* Writes a reference-style header: magic, version 1, type, id, length and
 * content hash; every other field zero. */
void segment_encode(unsigned char out[RVF_SEGMENT_HEADER_SIZE], uint8_t type,
		    uint64_t id, uint64_t payload_length,
		    const uint8_t content_hash[16]);

/* Decodes the header at `offset` of a mapping of `size` bytes and checks
 * that magic, payload length (<= 256 MiB) and extent fit.  On failure
 * returns RVF_E_CORRUPT naming `what` (e.g. "VEC segment #4"). */
rvf_code segment_at(const unsigned char *map, uint64_t size, uint64_t offset,
		    rvf_segment *out, rvf_error *err);

/* Longest type label, NUL included ("federated_manifest"). */
#define SEGMENT_LABEL_SIZE 24

/* Name for messages and file names: "vec", ... or "type-XX" (segtypes.c). */
void segment_type_label(uint8_t type, char out[SEGMENT_LABEL_SIZE]);

#endif
