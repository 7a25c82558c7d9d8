/* search.h - exact k-NN over rows read in place from the file mapping. */
#ifndef RVF_SEARCH_H
#define RVF_SEARCH_H

#include "rvf.h"

/* One candidate vector: its id and its `dim` little-endian float32
 * components in the mapping.  Rows are generally NOT 4-byte aligned. */
typedef struct search_row {
	uint64_t id;
	const unsigned char *data;
} search_row;

/* Filter hook: true when the row may be returned. */
typedef bool (*search_accept_fn)(void *ctx, const search_row *row);

typedef struct search_request {
	rvf_metric metric;
	size_t dim;
	const float *queries;     /* nq * dim */
	size_t nq;
	size_t k;
	const search_row *rows;   /* candidates, any order */
	size_t nrows;
	search_accept_fn accept;  /* NULL = every row */
	void *accept_ctx;
	unsigned threads;         /* 0 = one per online CPU */
} search_request;

/* Fills out[q*k ..] with up to k hits per query sorted by (distance, id)
 * and counts[q] with how many. */
rvf_code search_exact(const search_request *req, rvf_hit *out, size_t *counts,
		      rvf_error *err);

#endif
