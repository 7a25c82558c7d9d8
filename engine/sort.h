/* sort.h - the comparison qsort and bsearch use on u64 ids. */
#ifndef RVF_SORT_H
#define RVF_SORT_H

#include <stdint.h>

static inline int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

#endif
