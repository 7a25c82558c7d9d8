/* parent_state.c - finding the state a branch child was made from.
 *
 * A branch child records parent_hash = H(last 64 KiB of the parent file at
 * branch time) (format document §4.2).  The reference refuses the child as
 * soon as the parent grows by one byte.  The parent is append-only, so the
 * state it had is still a prefix of the file: the end of a manifest (every
 * commit ends with one), or of the witness a compaction writes after its
 * manifest.  We try those ends, newest first, and read the parent as of
 * the one whose tail hash matches. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "hash.h"
#include "segment.h"
#include "store.h"

void parent_tail_hash(const unsigned char *base, uint64_t size, uint8_t out[32])
{
	uint64_t tail = size < 65536 ? size : 65536;
	rvf_simple_hash256(base + size - tail, (size_t)tail, out);
}

/* The whole header and payload at `pos` lie within size. */
static bool segment_fits(const unsigned char *base, uint64_t size, uint64_t pos,
			 uint64_t *end, uint8_t *type)
{
	if (size - pos < RVF_SEGMENT_HEADER_SIZE ||
	    ld32(base + pos) != RVF_SEGMENT_MAGIC)
		return false;
	uint64_t plen = ld64(base + pos + 0x10);
	if (plen > RVF_MAX_PAYLOAD ||
	    plen > size - pos - RVF_SEGMENT_HEADER_SIZE)
		return false;
	*end = pos + RVF_SEGMENT_HEADER_SIZE + plen;
	*type = base[pos + 5];
	return true;
}

bool parent_prefix_find(const unsigned char *base, uint64_t size,
			const uint8_t want[32], uint64_t *len)
{
	/* Collect candidate ends walking the packed segments from offset 0;
	 * bytes that are no segment are stepped over one at a time, as the
	 * reference's compaction scan does. */
	uint64_t *ends = NULL;
	size_t n = 0, cap = 0;
	bool after_manifest = false;
	for (uint64_t pos = 0; pos < size;) {
		uint64_t end;
		uint8_t type;
		if (!segment_fits(base, size, pos, &end, &type)) {
			pos++;
			after_manifest = false;
			continue;
		}
		if (type == RVF_SEG_MANIFEST ||
		    (after_manifest && type == RVF_SEG_WITNESS)) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				uint64_t *g = realloc(ends, nc * sizeof(*g));
				if (!g)
					break; /* try what we have */
				ends = g;
				cap = nc;
			}
			ends[n++] = end;
		}
		after_manifest = type == RVF_SEG_MANIFEST;
		pos = end;
	}
	bool found = false;
	for (size_t i = n; i-- > 0 && !found;) {
		uint8_t h[32];
		parent_tail_hash(base, ends[i], h);
		if (memcmp(h, want, 32) == 0) {
			*len = ends[i];
			found = true;
		}
	}
	free(ends);
	return found;
}
