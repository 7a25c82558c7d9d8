/* npy.c - the header of a NumPy .npy file (format versions 1.0, 2.0 and
 * 3.0): which arrays we take, and where their rows start.
 *
 * One parser for both readers of .npy: the import of a whole file
 * (import_binary.c, which reads the header and then the rows) and rvffs's
 * ingest/ directory, which gets the file a write() at a time and parses
 * the header as soon as its bytes are there.  Both therefore accept the
 * same files with the same messages. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

#define NPY_HEADER_MAX ((size_t)1 << 20)

static rvf_code npy_bad(rvf_error *err, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* "NAME: message", as the importer words its errors without a row. */
static rvf_code npy_bad(rvf_error *err, const char *name, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "%s: %s", name, msg);
}

static bool is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

static const char *py_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* A quoted Python string at *p into out (truncated to cap - 1). */
static bool py_str(const char **pp, const char *end, char *out, size_t cap)
{
	const char *p = *pp;
	size_t k = 0;
	char q;

	if (p == end || (*p != '\'' && *p != '"'))
		return false;
	q = *p++;
	for (; p < end && *p != q; p++)
		if (k + 1 < cap)
			out[k++] = *p;
	if (p == end)
		return false;
	out[k] = '\0';
	*pp = p + 1;
	return true;
}

/* The shape tuple: up to 2 sizes kept, *nd = how many there are. */
static bool py_shape(const char **pp, const char *end, uint64_t *dims, int *nd)
{
	const char *p = *pp;

	*nd = 0;
	if (p == end || *p != '(')
		return false;
	p = py_ws(p + 1, end);
	while (p < end && *p != ')') {
		uint64_t v = 0;

		if (!is_digit(*p))
			return false;
		for (; p < end && is_digit(*p); p++) {
			unsigned d = (unsigned)(*p - '0');

			if (v > (UINT64_MAX - d) / 10)
				return false;
			v = v * 10 + d;
		}
		if (p < end && *p == 'L') /* Python 2 longs */
			p++;
		if (*nd < 2)
			dims[*nd] = v;
		if (*nd < 100)
			++*nd;
		p = py_ws(p, end);
		if (p < end && *p == ',')
			p = py_ws(p + 1, end);
		else if (p < end && *p != ')')
			return false;
	}
	if (p == end)
		return false;
	*pp = p + 1;
	return true;
}

/* The header dictionary h[0, n). */
static rvf_code npy_dict(const char *h, size_t n, const char *name, uint32_t dim,
			 rvf_npy_header *out, rvf_error *err)
{
	const char *p = h, *end = h + n;
	bool have_descr = false, have_order = false, have_shape = false;
	bool fortran = false;
	char key[32], descr[32];
	uint64_t dims[2] = { 0, 0 };
	int nd = 0;

	p = py_ws(p, end);
	if (p == end || *p != '{')
		return npy_bad(err, name, "npy header: not a dictionary");
	for (p++;;) {
		p = py_ws(p, end);
		if (p < end && *p == '}')
			break;
		if (!py_str(&p, end, key, sizeof(key)))
			return npy_bad(err, name, "npy header: bad key");
		p = py_ws(p, end);
		if (p == end || *p != ':')
			return npy_bad(err, name, "npy header: expected ':' after '%s'", key);
		p = py_ws(p + 1, end);
		if (!strcmp(key, "descr")) {
			if (!py_str(&p, end, descr, sizeof(descr)))
				return npy_bad(err, name, "npy header: bad 'descr'");
			have_descr = true;
		} else if (!strcmp(key, "fortran_order")) {
			if ((size_t)(end - p) >= 4 && !memcmp(p, "True", 4)) {
				fortran = true;
				p += 4;
			} else if ((size_t)(end - p) >= 5 && !memcmp(p, "False", 5)) {
				p += 5;
			} else {
				return npy_bad(err, name, "npy header: bad 'fortran_order'");
			}
			have_order = true;
		} else if (!strcmp(key, "shape")) {
			if (!py_shape(&p, end, dims, &nd))
				return npy_bad(err, name, "npy header: bad 'shape'");
			have_shape = true;
		} else {
			return npy_bad(err, name, "npy header: unexpected key '%s'", key);
		}
		p = py_ws(p, end);
		if (p < end && *p == ',')
			p++;
		else if (p == end || *p != '}')
			return npy_bad(err, name, "npy header: expected ',' or '}'");
	}
	if (!have_descr || !have_order || !have_shape)
		return npy_bad(err, name, "npy header: missing '%s'", !have_descr ? "descr" :
			       !have_order ? "fortran_order" : "shape");
	if (!strcmp(descr, "<f4") || !strcmp(descr, "|f4") || !strcmp(descr, "f4"))
		out->width = 4;
	else if (!strcmp(descr, "<f8") || !strcmp(descr, "f8"))
		out->width = 8; /* converted to float32 row by row */
	else
		return npy_bad(err, name, "npy header: dtype '%s' is not little-endian "
			       "float32 ('<f4') or float64 ('<f8')", descr);
	if (fortran)
		return npy_bad(err, name, "npy header: fortran_order arrays are not "
			       "supported (save in C order)");
	if (nd != 2)
		return npy_bad(err, name, "npy header: shape has %d dimensions, expected 2 "
			       "(rows, %" PRIu32 ")", nd, dim);
	if (dims[1] != dim)
		return npy_bad(err, name, "npy header: shape (%" PRIu64 ", %" PRIu64 ") has %"
			       PRIu64 " columns, expected %" PRIu32,
			       dims[0], dims[1], dims[1], dim);
	if (dims[0] > UINT64_MAX / ((uint64_t)dim * 8))
		return npy_bad(err, name, "npy header: shape (%" PRIu64 ", %" PRIu64 ") is "
			       "too large", dims[0], dims[1]);
	out->rows = dims[0];
	return RVF_OK;
}

/* The fixed prefix: magic "\x93NUMPY", major and minor version, then the
 * dictionary's length in 2 (1.0) or 4 (2.0, 3.0) bytes.  Each check is
 * made as soon as its bytes are there, so a file that is not .npy is
 * refused at its first write. */
rvf_code rvf_npy_read_header(const void *buf, size_t len, bool complete,
			     const char *name, uint32_t dimension,
			     rvf_npy_header *out, size_t *need, rvf_error *err)
{
	const unsigned char *p = buf;
	size_t hlen, plen;

	*need = 0;
	memset(out, 0, sizeof(*out));
	if (len == 0) {
		*need = complete ? 0 : 10;
		return RVF_OK; /* complete: an empty file, no rows */
	}
	if (memcmp(p, "\x93" "NUMPY", len < 6 ? len : 6) || (len < 6 && complete))
		return npy_bad(err, name, "not an npy file (bad magic)");
	if (len < 10) {
		if (complete)
			return npy_bad(err, name, "npy header truncated");
		*need = 10;
		return RVF_OK;
	}
	if (p[6] == 1)
		plen = 10;
	else if (p[6] == 2 || p[6] == 3)
		plen = 12;
	else
		return npy_bad(err, name, "npy version %u.%u is not supported", p[6], p[7]);
	if (len < plen) {
		if (complete)
			return npy_bad(err, name, "npy header truncated");
		*need = plen;
		return RVF_OK;
	}
	hlen = plen == 10 ? (size_t)p[8] | (size_t)p[9] << 8
			  : (size_t)p[8] | (size_t)p[9] << 8 | (size_t)p[10] << 16 |
			    (size_t)p[11] << 24;
	if (hlen > NPY_HEADER_MAX)
		return npy_bad(err, name, "npy header of %zu bytes is too large", hlen);
	if (len < plen + hlen) {
		if (complete)
			return npy_bad(err, name, "npy header truncated (%zu of %zu bytes)",
				       len, plen + hlen);
		*need = plen + hlen;
		return RVF_OK;
	}
	rvf_code rc = npy_dict((const char *)p + plen, hlen, name, dimension, out, err);
	if (rc == RVF_OK)
		out->data_offset = plen + hlen;
	return rc;
}
