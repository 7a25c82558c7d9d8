/* manifest.h - the MANIFEST payload and the tail scan that finds it. */
#ifndef RVF_MANIFEST_H
#define RVF_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

#define RVF_FIDI_MARKER 0x46494449u /* "IDIF" on disk */

typedef struct dir_entry {
	uint64_t seg_id;
	uint64_t offset;         /* of the segment header */
	uint64_t payload_length;
	uint8_t type;
} dir_entry;

typedef struct manifest {
	uint32_t epoch;
	uint16_t dimension;
	uint64_t total_vectors;
	uint8_t profile;
	uint8_t metric;          /* raw byte */
	dir_entry *dir;          /* malloc'd */
	uint32_t dir_len;
	uint64_t *deleted;       /* malloc'd, as stored (writers keep it sorted) */
	uint32_t deleted_len;
	bool has_identity;
	rvf_identity identity;
} manifest;

/* Parses a payload with the reference's lenient rules.  False when it is
 * not a manifest (too short, directory overruns); ENOMEM also gives false
 * with *oom set. */
bool manifest_parse(const unsigned char *p, size_t len, manifest *out,
		    bool *oom);

/* Serialises m (FIDI written when has_identity).  Returns a malloc'd
 * payload and its length, or NULL on ENOMEM. */
unsigned char *manifest_encode(const manifest *m, size_t *len);

void manifest_free(manifest *m);

/* Finds the newest manifest exactly as the reference does: a backward
 * byte scan for "SFVR" + type 0x05 whose payload fits in the file and
 * parses; the first (highest) such candidate wins. */
rvf_code manifest_locate(const unsigned char *map, uint64_t size,
			 manifest *out, rvf_segment *seg, rvf_error *err);

#endif
