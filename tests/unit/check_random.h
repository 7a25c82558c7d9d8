/* check_random.h - for the search unit tests: check.h, and reproducible
 * random data.
 * Define RNG_SEED before including it. */
#ifndef RVF_CHECK_RANDOM_H
#define RVF_CHECK_RANDOM_H

#include <stdint.h>
#include <stdio.h>

#include "check.h"

/* xorshift64: reproducible data without libc's rand state. */
static uint64_t rng = RNG_SEED;

static inline uint64_t next_u64(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static inline float uniform(void) /* [-1, 1) */
{
	return (float)((double)(next_u64() >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

#endif
