/* decompress.h - gzip, zstd and brotli payloads, bounded (decompress.c). */
#ifndef RVF_DECOMPRESS_H
#define RVF_DECOMPRESS_H

#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

typedef enum { DECOMP_UNKNOWN, DECOMP_GZIP, DECOMP_ZSTD, DECOMP_BROTLI } decomp_kind;

/* gzip and zstd by their magic; brotli has none (DECOMP_UNKNOWN). */
decomp_kind decomp_sniff(const unsigned char *p, size_t n);
const char *decomp_name(decomp_kind k);

/* Decompresses in[0..n) into a malloc'd *out.  want != 0: the output must
 * be exactly want bytes; else at most max.  RVF_E_CORRUPT "WHAT does not
 * decompress (...)" otherwise. */
rvf_code decomp_run(decomp_kind kind, const unsigned char *in, size_t n,
		    uint64_t want, size_t max, const char *what,
		    unsigned char **out, size_t *out_len, rvf_error *err);

#endif
