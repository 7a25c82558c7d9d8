/* hits.h - the order of search results, and bounded heaps of hits.
 *
 * Shared by the exact scan and the code-accelerated one, so both rank
 * equal distances and NaN the same way.
 */
#ifndef RVF_HITS_H
#define RVF_HITS_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "rvf.h"

/*
 * The result order: distance ascending, then id ascending, with NaN after
 * every number.  The reference compares NaN as equal to anything, which in
 * its k-best loop lets a NaN row take first place and push out a true
 * neighbour; we deliberately rank NaN last instead.
 */
static inline bool hit_before(const rvf_hit *a, const rvf_hit *b)
{
	if (a->distance < b->distance)
		return true;
	if (a->distance > b->distance)
		return false;
	if (a->distance != b->distance) { /* at least one NaN */
		bool an = isnan(a->distance), bn = isnan(b->distance);

		if (an != bn)
			return bn;
	}
	return a->id < b->id;
}

/* Max-heap under hit_before: h[0] is the worst hit kept. */
static inline void sift_up(rvf_hit *h, size_t i)
{
	rvf_hit v = h[i];

	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!hit_before(&h[p], &v))
			break;
		h[i] = h[p];
		i = p;
	}
	h[i] = v;
}

static inline void sift_down(rvf_hit *h, size_t len, size_t i)
{
	rvf_hit v = h[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= len)
			break;
		if (c + 1 < len && hit_before(&h[c], &h[c + 1]))
			c++;
		if (!hit_before(&v, &h[c]))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = v;
}

static inline void heap_offer(rvf_hit *h, size_t *len, size_t cap, rvf_hit c)
{
	if (*len < cap) {
		h[*len] = c;
		sift_up(h, (*len)++);
	} else if (hit_before(&c, &h[0])) {
		h[0] = c;
		sift_down(h, *len, 0);
	}
}

/* Heap to ascending order, in place. */
static inline void heap_sort(rvf_hit *h, size_t len)
{
	while (len > 1) {
		rvf_hit t = h[0];

		h[0] = h[--len];
		h[len] = t;
		sift_down(h, len, 0);
	}
}

#endif
