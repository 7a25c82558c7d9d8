/* manifest.c - MANIFEST codec and the tail scan. */
#include "manifest.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "segment.h"

bool manifest_parse(const unsigned char *p, size_t len, manifest *out,
		    bool *oom)
{
	*oom = false;
	memset(out, 0, sizeof(*out));
	if (len < 22)
		return false;
	uint32_t n = ld32(p + 14);
	if (n > (len - 22) / 25)
		return false;
	out->epoch = ld32(p);
	out->dimension = ld16(p + 4);
	out->total_vectors = ld64(p + 6);
	out->profile = p[18];
	out->metric = p[19];
	out->dir_len = n;
	if (n) {
		out->dir = malloc(sizeof(dir_entry) * n);
		if (!out->dir)
			goto nomem;
	}
	const unsigned char *e = p + 22;
	for (uint32_t i = 0; i < n; i++, e += 25) {
		out->dir[i].seg_id = ld64(e);
		out->dir[i].offset = ld64(e + 8);
		out->dir[i].payload_length = ld64(e + 16);
		out->dir[i].type = e[24];
	}
	size_t pos = 22 + (size_t)25 * n;
	if (len - pos < 4)
		return true; /* no deletion list: lenient, like the reference */
	uint32_t d = ld32(p + pos);
	pos += 4;
	/* Entries past the end are silently dropped, as the reference does. */
	size_t fit = (len - pos) / 8;
	if (d > fit)
		d = (uint32_t)fit;
	if (d) {
		out->deleted = malloc(sizeof(uint64_t) * d);
		if (!out->deleted)
			goto nomem;
	}
	for (uint32_t i = 0; i < d; i++)
		out->deleted[i] = ld64(p + pos + 8 * (size_t)i);
	out->deleted_len = d;
	pos += 8 * (size_t)d;
	if (len - pos >= 72 && ld32(p + pos) == RVF_FIDI_MARKER) {
		const unsigned char *f = p + pos + 4;
		out->has_identity = true;
		memcpy(out->identity.file_id, f, 16);
		memcpy(out->identity.parent_id, f + 16, 16);
		memcpy(out->identity.parent_hash, f + 32, 32);
		out->identity.lineage_depth = ld32(f + 64);
	}
	return true;
nomem:
	manifest_free(out);
	*oom = true;
	return false;
}

unsigned char *manifest_encode(const manifest *m, size_t *len)
{
	size_t n = 22 + (size_t)25 * m->dir_len + 4 + (size_t)8 * m->deleted_len +
		   (m->has_identity ? 72 : 0);
	unsigned char *p = calloc(1, n);
	if (!p)
		return NULL;
	st32(p, m->epoch);
	st16(p + 4, m->dimension);
	st64(p + 6, m->total_vectors);
	st32(p + 14, m->dir_len);
	p[18] = m->profile;
	p[19] = m->metric;
	unsigned char *e = p + 22;
	for (uint32_t i = 0; i < m->dir_len; i++, e += 25) {
		st64(e, m->dir[i].seg_id);
		st64(e + 8, m->dir[i].offset);
		st64(e + 16, m->dir[i].payload_length);
		e[24] = m->dir[i].type;
	}
	st32(e, m->deleted_len);
	e += 4;
	for (uint32_t i = 0; i < m->deleted_len; i++, e += 8)
		st64(e, m->deleted[i]);
	if (m->has_identity) {
		st32(e, RVF_FIDI_MARKER);
		memcpy(e + 4, m->identity.file_id, 16);
		memcpy(e + 20, m->identity.parent_id, 16);
		memcpy(e + 36, m->identity.parent_hash, 32);
		st32(e + 68, m->identity.lineage_depth);
	}
	*len = n;
	return p;
}

void manifest_free(manifest *m)
{
	free(m->dir);
	free(m->deleted);
	m->dir = NULL;
	m->deleted = NULL;
	m->dir_len = m->deleted_len = 0;
}

rvf_code manifest_locate(const unsigned char *map, uint64_t size,
			 manifest *out, rvf_segment *seg, rvf_error *err)
{
	/* The reference reads growing tail windows (64 KiB, 1 MiB, 16 MiB,
	 * whole file) and scans each downwards; since every window contains
	 * the previous one, that is one backward scan of the whole file. */
	if (size < RVF_SEGMENT_HEADER_SIZE)
		goto not_found;
	for (uint64_t i = size - RVF_SEGMENT_HEADER_SIZE;; i--) {
		const unsigned char *h = map + i;
		if (h[0] == 0x53 && h[5] == RVF_SEG_MANIFEST &&
		    ld32(h) == RVF_SEGMENT_MAGIC) {
			uint64_t plen = ld64(h + 0x10);
			if (plen <= RVF_MAX_PAYLOAD &&
			    plen <= size - i - RVF_SEGMENT_HEADER_SIZE) {
				bool oom;
				if (manifest_parse(h + RVF_SEGMENT_HEADER_SIZE,
						   (size_t)plen, out, &oom)) {
					segment_decode(h, i, seg);
					return RVF_OK;
				}
				if (oom)
					return rvf_fail(err, RVF_E_NO_MEMORY,
							"out of memory reading the manifest at offset %llu",
							(unsigned long long)i);
			}
		}
		if (i == 0)
			break;
	}
not_found:
	return rvf_fail(err, RVF_E_MANIFEST_NOT_FOUND,
			"no valid manifest found in %llu bytes (not an RVF file, or truncated before its first manifest)",
			(unsigned long long)size);
}
