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
	100000000000000000ull, 1000000000000000000ull,
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

/* The exact path for normal |v| in [2^-30, 2^24); false to use printf. */
static bool format_fast(float v, char out[RVF_FLOAT_TEXT_MAX], size_t *len)
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
	/* Ten significant digits of |v| (exact: fraction * 10 < 2^58), and
	 * whether anything non-zero follows them. */
	char d[11];
	int nd = 0, x;
	uint64_t ip = m >> g, frac = m & ((1ull << g) - 1), mask = (1ull << g) - 1;
	if (ip) {
		char t[12];
		int nt = 0;
		for (uint64_t q = ip; q; q /= 10)
			t[nt++] = (char)('0' + q % 10);
		x = nt - 1;
		while (nt && nd < 10)
			d[nd++] = t[--nt];
		if (nt)
			return false; /* not reached: ip < 2^24 has 8 digits */
	} else {
		x = -1;
		while (!((frac * 10) >> g)) {
			frac *= 10;
			x--;
		}
	}
	while (nd < 10) {
		frac *= 10;
		d[nd++] = (char)('0' + (frac >> g));
		frac &= mask;
	}
	bool sticky = frac != 0;

	/* The float's rounding interval, as M * 2^-(g+2): ties round to even. */
	uint64_t hi = (4 * m + 2), lo = m == 0x800000 ? 4 * m - 1 : 4 * m - 2;
	bool closed = (m & 1) == 0;
	for (int p = 6; p <= 9; p++) {
		/* Round the digits to p, half to even like printf. */
		uint64_t c = 0;
		for (int i = 0; i < p; i++)
			c = c * 10 + (uint64_t)(d[i] - '0');
		bool rest = sticky;
		for (int i = p + 1; i < 10; i++)
			rest = rest || d[i] != '0';
		int nx = d[p] - '0';
		if (nx > 5 || (nx == 5 && (rest || (c & 1))))
			c++;
		int px = x;
		if (c == pow10_u64[p]) {
			c /= 10;
			px++;
		}
		int j = p - 1 - px; /* c * 10^-j is the candidate */
		if (j > 18 || j < -18)
			return false;
		int clo = cmp_dec_bin(c, j, lo, g + 2), chi = cmp_dec_bin(c, j, hi, g + 2);
		bool inside = closed ? clo >= 0 && chi <= 0 : clo > 0 && chi < 0;
		if (inside || p == 9) {
			char digits[10];
			for (int i = p - 1; i >= 0; i--, c /= 10)
				digits[i] = (char)('0' + c % 10);
			*len = put_g(out, neg, digits, p, px);
			return true;
		}
	}
	return false;
}

size_t rvf_format_float(float v, char out[RVF_FLOAT_TEXT_MAX])
{
	size_t n;
	if (format_fast(v, out, &n))
		return n;
	return format_slow(v, out);
}
