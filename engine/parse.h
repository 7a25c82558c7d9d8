/* parse.h - numbers and ids as every door reads them (parse.c). */
#ifndef RVF_PARSE_H
#define RVF_PARSE_H

#include <stdbool.h>
#include <stdint.h>

typedef enum num_result {
	NUM_OK,
	NUM_BAD,   /* not a number / not a canonical id */
	NUM_RANGE, /* a number, but not finite in float32 / above 2^64-1 */
} num_result;

/* [s, e) entirely one finite float32 (C locale, strtof's rounding). */
num_result num_float(const char *s, const char *e, float *out);
/* [s, e) entirely one canonical decimal id. */
num_result num_id(const char *s, const char *e, uint64_t *out);

#endif
