/* common.c - error reporting, opening and parsing for rvfctl. */
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int ctl_exit_code(rvf_code code)
{
	switch (code) {
	case RVF_OK:
		return 0;
	case RVF_E_IO:
	case RVF_E_LOCK_HELD:
	case RVF_E_NO_MEMORY:
		return EXIT_IO;
	case RVF_E_EXISTS:
	case RVF_E_READ_ONLY:
	case RVF_E_NOT_FOUND:
		return EXIT_OTHER;
	default:
		return EXIT_REFUSED;
	}
}

int ctl_report(const rvf_error *err)
{
	fprintf(stderr, "rvfctl: %s\n", err->message);
	return ctl_exit_code(err->code);
}

int ctl_usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("rvfctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	return EXIT_USAGE;
}

int ctl_open(const char *path, bool writable, rvf_store **out)
{
	rvf_error err;
	rvf_code rc = rvf_store_open(path, writable ? 0 : RVF_OPEN_READ_ONLY, out,
				     &err);
	if (rc != RVF_OK) {
		fprintf(stderr, "rvfctl: %s: %s (%s)\n", path, err.message,
			rvf_code_name(rc));
		return ctl_exit_code(rc);
	}
	return 0;
}

bool parse_u64(const char *s, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return false;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

bool parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v;
	if (!parse_u64(s, &v) || v > max)
		return false;
	*out = (uint32_t)v;
	return true;
}

static bool is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	       c == '[' || c == ']';
}

long parse_floats(const char *s, float **out)
{
	size_t n = 0, cap = 16;
	float *v = malloc(cap * sizeof(float));
	if (!v)
		return -1;
	const char *p = s;
	for (;;) {
		while (*p && is_sep(*p))
			p++;
		if (!*p)
			break;
		char *end;
		errno = 0;
		float f = strtof(p, &end);
		if (end == p || (*end && !is_sep(*end)) || !isfinite(f)) {
			free(v);
			return -1;
		}
		if (n == cap) {
			float *nv = realloc(v, (cap *= 2) * sizeof(float));
			if (!nv) {
				free(v);
				return -1;
			}
			v = nv;
		}
		v[n++] = f;
		p = end;
	}
	*out = v;
	return (long)n;
}

long parse_ids(const char *s, uint64_t **out)
{
	size_t n = 0, cap = 16;
	uint64_t *v = malloc(cap * sizeof(uint64_t));
	if (!v)
		return -1;
	const char *p = s;
	for (;;) {
		while (*p && is_sep(*p))
			p++;
		if (!*p)
			break;
		char tok[32];
		size_t len = 0;
		while (p[len] && !is_sep(p[len]))
			len++;
		uint64_t id;
		if (len >= sizeof(tok)) {
			free(v);
			return -1;
		}
		memcpy(tok, p, len);
		tok[len] = '\0';
		if (!parse_u64(tok, &id)) {
			free(v);
			return -1;
		}
		if (n == cap) {
			uint64_t *nv = realloc(v, (cap *= 2) * sizeof(uint64_t));
			if (!nv) {
				free(v);
				return -1;
			}
			v = nv;
		}
		v[n++] = id;
		p += len;
	}
	*out = v;
	return (long)n;
}

void print_float(FILE *f, float v)
{
	/* %.9g always round-trips a float32; try shorter forms first. */
	char buf[32];
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, (double)v);
		if (strtof(buf, NULL) == v || isnan(v))
			break;
	}
	fputs(buf, f);
}

void hex_encode(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

unsigned char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, n = 0;
	unsigned char *buf = malloc(cap);
	while (buf) {
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
		if (n == cap) {
			unsigned char *nb = realloc(buf, cap *= 2);
			if (!nb) {
				free(buf);
				buf = NULL;
			} else {
				buf = nb;
			}
		}
	}
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		free(buf);
		errno = EIO;
		return NULL;
	}
	*len = n;
	return buf;
}
