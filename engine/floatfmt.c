/* floatfmt.c - printing float32 values so that they read back exactly.
 *
 * The text is "%.Pg" with the smallest P in 6..9 that reads back as the
 * same float (%.9g always does).  Done with printf and strtof that costs
 * about 2 us a number, and a vector file of 128 numbers is sized on every
 * `ls -l`; so values in [2^-30, 2^24) (nearly all data) take an exact
 * integer path that prints the same bytes, and the rest take printf. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rvf.h"

static size_t format_slow(float v, char out[RVF_FLOAT_TEXT_MAX])
{
	int n = 0;
	for (int prec = 6; prec <= 9; prec++) {
		n = snprintf(out, RVF_FLOAT_TEXT_MAX, "%.*g", prec, (double)v);
		if (isnan(v) || strtof(out, NULL) == v)
			break;
	}
	return (size_t)n;
}

typedef unsigned __int128 u128;

static const uint64_t pow10_u64[] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull,
	10000000ull, 100000000ull, 1000000000ull, 10000000000ull,
	100000000000ull, 1000000000000ull, 10000000000000ull,
	100000000000000ull, 1000000000000000ull, 10000000000000000ull,
	100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
};

/* Compares C * 10^-j with M * 2^-g exactly: <0, 0 or >0. */
static int cmp_dec_bin(uint64_t c, int j, uint64_t mant, int g)
{
	u128 l = (u128)c << g, r = mant;
	if (j >= 0)
		r *= pow10_u64[j];
	else
		l *= pow10_u64[-j];
	return l < r ? -1 : l > r;
}

/* "%.Pg" of the P significant digits in d (value 0.d1d2... * 10^(x+1)). */
static size_t put_g(char *out, bool neg, const char *d, int p, int x)
{
	char *o = out;
	int nd = p;
	while (nd > 1 && d[nd - 1] == '0')
		nd--; /* %g drops trailing zeros */
	if (neg)
		*o++ = '-';
	if (x < -4 || x >= p) {
		*o++ = d[0];
		if (nd > 1) {
			*o++ = '.';
			memcpy(o, d + 1, (size_t)nd - 1);
			o += nd - 1;
		}
		*o++ = 'e';
		*o++ = x < 0 ? '-' : '+';
		int ax = x < 0 ? -x : x;
		if (ax >= 100)
			*o++ = (char)('0' + ax / 100);
		*o++ = (char)('0' + ax / 10 % 10);
		*o++ = (char)('0' + ax % 10);
	} else if (x >= 0) {
		memcpy(o, d, (size_t)x + 1);
		o += x + 1;
		if (nd > x + 1) {
			*o++ = '.';
			memcpy(o, d + x + 1, (size_t)(nd - x - 1));
			o += nd - x - 1;
		}
	} else {
		*o++ = '0';
		*o++ = '.';
		for (int i = 0; i < -x - 1; i++)
			*o++ = '0';
		memcpy(o, d, (size_t)nd);
		o += nd;
	}
	*o = '\0';
	return (size_t)(o - out);
}

/* floor(D / 10^k) and D mod 10^k for k in 1..4, by constants (the
 * compiler turns each into a multiplication). */
static uint64_t div_pow10(uint64_t d, int k, uint64_t *rem)
{
	uint64_t q;
	switch (k) {
	case 1: q = d / 10; break;
	case 2: q = d / 100; break;
	case 3: q = d / 1000; break;
	default: q = d / 10000; break;
	}
	*rem = d - q * pow10_u64[k];
	return q;
}

/* A number as "%.Pg" prints it: the P significant digits c (c < 10^P)
 * of a value c * 10^(x - P + 1). */
typedef struct decimal {
	uint64_t c;
	int p, x;
	bool neg;
} decimal;

/* The exact path for normal |v| in [2^-30, 2^24): the decimal of the
 * smallest P in 6..9 that reads back as v; false to use printf. */
static bool shortest(float v, decimal *out)
{
	uint32_t bits;
	memcpy(&bits, &v, 4);
	bool neg = bits >> 31;
	int bexp = (int)(bits >> 23 & 0xff);
	if (bexp == 0 || bexp == 0xff)
		return false; /* zero, subnormal, inf, nan */
	uint64_t m = (bits & 0x7fffff) | 0x800000;
	int e = bexp - 150; /* |v| = m * 2^e */
	if (e > 0 || e < -53)
		return false;
	int g = -e;
	/* x = floor(log10 |v|): |v| is in [2^b, 2^(b+1)), b = 23 - g, so x
	 * is floor(b log10 2) or one more (78913 / 2^18 ~ log10 2). */
	int b = 23 - g;
	int x = (b * 78913) >> 18;
	if (x + 1 >= 0 ? ((u128)m >= (u128)pow10_u64[x + 1] << g) :
	    ((u128)m * pow10_u64[-(x + 1)] >= (u128)1 << g))
		x++;
	if (x < -10)
		return false; /* not reached: |v| >= 2^-30 */
	/* D: the first ten significant digits of |v| (exact: m * 10^19 <
	 * 2^88), and whether anything non-zero follows them. */
	u128 scaled = (u128)m * pow10_u64[9 - x];
	uint64_t d = (uint64_t)(scaled >> g);
	bool sticky = (scaled & (((u128)1 << g) - 1)) != 0;

	/* The float's rounding interval, as M * 2^-(g+2): ties round to even. */
	uint64_t hi = (4 * m + 2), lo = m == 0x800000 ? 4 * m - 1 : 4 * m - 2;
	bool closed = (m & 1) == 0;
	/* More than the interval's half-width (an ulp / 2), in units of
	 * D's last digit: a rounding that errs by more is outside it without
	 * the exact comparison (most p of most numbers). */
	uint64_t width = (pow10_u64[9 - x] >> (g + 1)) + 1;
	/* Less than it (the narrower side's), so that a rounding that errs
	 * by less is inside without the exact comparison either. */
	uint64_t narrow = (pow10_u64[9 - x] >> (g + 1)) >> (m == 0x800000);
	for (int p = 6; p <= 9; p++) {
		/* Round D to p digits, half to even like printf. */
		uint64_t r, c = div_pow10(d, 10 - p, &r), half = 5 * pow10_u64[9 - p];
		bool up = r > half || (r == half && (sticky || (c & 1)));
		if (p < 9 && (up ? pow10_u64[10 - p] - r - 1 : r) > width)
			continue;
		bool surely = p == 9 || (up ? pow10_u64[10 - p] - r : r + 1) < narrow;
		c += up;
		int px = x;
		if (c == pow10_u64[p]) {
			c /= 10;
			px++;
		}
		int j = p - 1 - px; /* c * 10^-j is the candidate */
		if (j > 18 || j < -18)
			return false;
		bool inside = surely;
		if (!inside) {
			int clo = cmp_dec_bin(c, j, lo, g + 2), chi = cmp_dec_bin(c, j, hi, g + 2);
			inside = closed ? clo >= 0 && chi <= 0 : clo > 0 && chi < 0;
		}
		if (inside) {
			*out = (decimal){ .c = c, .p = p, .x = px, .neg = neg };
			return true;
		}
	}
	return false;
}

size_t rvf_format_float(float v, char out[RVF_FLOAT_TEXT_MAX])
{
	decimal dec;
	if (!shortest(v, &dec))
		return format_slow(v, out);
	char digits[10];
	uint64_t c = dec.c;
	for (int i = dec.p - 1; i >= 0; i--, c /= 10)
		digits[i] = (char)('0' + c % 10);
	return put_g(out, dec.neg, digits, dec.p, dec.x);
}

/* What put_g would write, counted: sizing a vector file's text needs
 * only this (no digits). */
size_t rvf_float_text_length(float v)
{
	decimal dec;
	if (!shortest(v, &dec)) {
		char out[RVF_FLOAT_TEXT_MAX];
		return format_slow(v, out);
	}
	int nd = dec.p, x = dec.x;
	uint64_t c = dec.c;
	while (nd > 1 && c % 10 == 0) {
		c /= 10;
		nd--; /* %g drops trailing zeros */
	}
	size_t n = dec.neg;
	if (x < -4 || x >= dec.p) /* d[.ddd]e±XX[X] */
		n += 1 + (nd > 1 ? (size_t)nd : 0) + 4 + ((x < 0 ? -x : x) >= 100);
	else if (x >= 0) /* ddd[.ddd] */
		n += (size_t)x + 1 + (nd > x + 1 ? (size_t)(nd - x) : 0);
	else /* 0.000ddd */
		n += 2 + (size_t)(-x - 1) + (size_t)nd;
	return n;
}
