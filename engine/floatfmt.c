/* floatfmt.c - printing float32 values so that they read back exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rvf.h"

size_t rvf_format_float(float v, char out[RVF_FLOAT_TEXT_MAX])
{
	/* %.9g always round-trips a float32; shorter forms read better, so
	 * take the shortest precision that gives back the same bits. */
	int n = 0;
	for (int prec = 6; prec <= 9; prec++) {
		n = snprintf(out, RVF_FLOAT_TEXT_MAX, "%.*g", prec, (double)v);
		if (isnan(v) || strtof(out, NULL) == v)
			break;
	}
	return (size_t)n;
}
