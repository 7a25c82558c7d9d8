/* parse.c - the one reading of ids and float lists, for every door.
 *
 * Ids are canonical decimal: digits only, no sign, no blanks, no leading
 * zero (but "0" itself), at most 2^64-1 -- so a name or a field has one id
 * and an id one spelling ("007" and " 7" are not ids; "-1" is not 2^64-1).
 * Numbers are C-locale decimals read exactly as strtof reads them (a fast
 * path proves its rounding, the rest goes to strtof_l) and must be finite.
 * A float list separates its numbers by blanks with at most one comma
 * among them; one pair of brackets may enclose it (JSON-like text). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtof_l */
#endif

#include "error.h"
#include "parse.h"

#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
	c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static bool is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
static const double pow10_exact[23] = {
	1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
	1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
};

/*
 * Parses a plain decimal ([+-]digits[.digits][e[+-]digits]) at p, stopping
 * at the first byte that cannot continue it.  Returns the end, or NULL when
 * the caller must ask strtof.  Up to 19 significant digits w and the power
 * of ten are combined in double with at most three roundings, so d is within
 * 4 double ulps of the exact value; a float midpoint is 2^28 ulps from the
 * floats on each side, so unless d is within 16 ulps of one, rounding d to
 * float gives the same float as rounding the exact value (strtof's answer).
 */
static const char *fast_float(const char *p, const char *end, float *out)
{
	uint64_t w = 0, bits;
	int nd = 0, exp = 0;
	bool neg = false, any = false;
	uint32_t low;
	double d;
	float f;

	if (p < end && (*p == '-' || *p == '+')) {
		neg = *p == '-';
		p++;
	}
	for (; p < end && is_digit(*p); p++) {
		any = true;
		if (nd < 19) {
			w = w * 10 + (unsigned)(*p - '0');
			nd += w != 0;
		} else {
			exp++;
		}
	}
	if (p < end && *p == '.') {
		for (p++; p < end && is_digit(*p); p++) {
			any = true;
			if (nd < 19) {
				w = w * 10 + (unsigned)(*p - '0');
				nd += w != 0;
				exp--;
			}
		}
	}
	if (!any)
		return NULL;
	if (p < end && (*p == 'e' || *p == 'E')) {
		const char *q = p + 1;
		bool eneg = false;
		int ev = 0;

		if (q < end && (*q == '-' || *q == '+')) {
			eneg = *q == '-';
			q++;
		}
		if (q == end || !is_digit(*q))
			return NULL;
		for (; q < end && is_digit(*q); q++)
			if (ev < 100000)
				ev = ev * 10 + (*q - '0');
		exp += eneg ? -ev : ev;
		p = q;
	}
	if (w == 0) {
		*out = neg ? -0.0f : 0.0f;
		return p;
	}
	d = (double)w;
	if (exp < -44 || exp > 44)
		return NULL;
	if (exp < -22)
		d = d / 1e22 / pow10_exact[-exp - 22];
	else if (exp < 0)
		d /= pow10_exact[-exp];
	else if (exp > 22)
		d = d * 1e22 * pow10_exact[exp - 22];
	else
		d *= pow10_exact[exp];
	/* Normal float range only: subnormals round at other bits. */
	if (!(d >= 0x1p-126 && d < 0x1p127))
		return NULL;
	memcpy(&bits, &d, 8);
	low = (uint32_t)(bits & 0x1fffffff);
	if (low - (0x10000000u - 16) <= 32)
		return NULL;
	f = (float)d;
	*out = neg ? -f : f;
	return p;
}
#else
/* Excess precision would break the proof above: always use strtof. */
static const char *fast_float(const char *p, const char *end, float *out)
{
	(void)p;
	(void)end;
	(void)out;
	return NULL;
}
#endif


/* strtof_l on exactly [s, e). */
static bool slow_float(const char *s, const char *e, float *out)
{
	char small[64], *buf = small, *stop;
	size_t n = (size_t)(e - s);
	bool ok;

	if (n == 0 || memchr(s, '\0', n))
		return false;
	pthread_once(&c_locale_once, make_c_locale);
	if (!c_locale)
		return false;
	if (n >= sizeof(small) && !(buf = malloc(n + 1)))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	/* strtod would also take leading blanks: a token has none. */
	ok = buf[0] != ' ' && buf[0] != '\t' && buf[0] != '\n' &&
	     buf[0] != '\r' && buf[0] != '\f' && buf[0] != '\v';
	if (ok) {
		*out = strtof_l(buf, &stop, c_locale);
		ok = stop == buf + n;
	}
	if (buf != small)
		free(buf);
	return ok;
}

num_result num_float(const char *s, const char *e, float *out)
{
	const char *q = fast_float(s, e, out);

	if (q != e) {
		/* Plain decimals only, as the reference reads them: strtof
		 * would also take hex, "inf" and "nan". */
		for (q = s; q < e; q++)
			if (!strchr("0123456789+-.eE", *q) || !*q)
				return NUM_BAD;
		if (!slow_float(s, e, out))
			return NUM_BAD;
	}
	return isfinite(*out) ? NUM_OK : NUM_RANGE;
}

num_result num_id(const char *s, const char *e, uint64_t *out)
{
	uint64_t v = 0;
	bool big = false;

	if (s == e || (e - s > 1 && *s == '0'))
		return NUM_BAD;
	for (; s < e; s++) {
		unsigned d = (unsigned)(unsigned char)*s - '0';

		if (d > 9)
			return NUM_BAD;
		if (v > (UINT64_MAX - d) / 10)
			big = true;
		v = v * 10 + d;
	}
	*out = v;
	return big ? NUM_RANGE : NUM_OK;
}

bool rvf_parse_id(const char *s, size_t len, uint64_t *id)
{
	uint64_t v;

	if (!s || num_id(s, s + len, &v) != NUM_OK)
		return false;
	if (id)
		*id = v;
	return true;
}

bool rvf_parse_float(const char *s, size_t len, float *out)
{
	float v;

	if (!s || num_float(s, s + len, &v) != NUM_OK)
		return false;
	if (out)
		*out = v;
	return true;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A token of a list ends at a blank, a comma or a closing bracket. */
static bool token_end(char c)
{
	return blank(c) || c == ',' || c == ']';
}

long rvf_parse_floats(const char *s, size_t len, float *out, size_t cap,
		      rvf_error *err)
{
	const char *p = s, *end = s + len;
	bool open = false;
	size_t k = 0;

	while (p < end && blank(*p))
		p++;
	if (p < end && *p == '[') {
		open = true;
		for (p++; p < end && blank(*p); p++)
			;
	}
	for (;;) {
		const char *q;
		float v;
		num_result r;

		if (p == end || *p == ']')
			break;
		if (*p == ',') {
			rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				 "component %zu is empty", k + 1);
			return -1;
		}
		for (q = p; q < end && !token_end(*q); q++)
			;
		r = num_float(p, q, &v);
		if (r != NUM_OK) {
			rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				 "component %zu \"%.*s\" is %s", k + 1,
				 q - p > 40 ? 40 : (int)(q - p), p,
				 r == NUM_BAD ? "not a number" : "not finite");
			return -1;
		}
		if (k < cap)
			out[k] = v;
		k++;
		/* A separator: blanks with at most one comma among them. */
		for (p = q; p < end && blank(*p); p++)
			;
		if (p < end && *p == ',') {
			for (p++; p < end && blank(*p); p++)
				;
			if (p == end || *p == ']' || *p == ',') {
				rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					 "component %zu is empty", k + 1);
				return -1;
			}
		}
	}
	if (p < end) { /* at ']' */
		if (!open) {
			rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				 "\"]\" without \"[\"");
			return -1;
		}
		open = false;
		for (p++; p < end && blank(*p); p++)
			;
		if (p < end) {
			rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				 "text after \"]\"");
			return -1;
		}
	}
	if (open) {
		rvf_fail(err, RVF_E_INVALID_ARGUMENT, "\"[\" without \"]\"");
		return -1;
	}
	return k > LONG_MAX ? LONG_MAX : (long)k;
}
