/*
 * import_binary.c - binary rows: fvecs, npy (little-endian float32, C
 * order) and raw float32 (.f32).  Rows are checked for finite components a
 * batch at a time.
 */
#include "import.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NPY_HEADER_MAX ((size_t)1 << 20)

/* Finite iff the exponent bits are not all ones; written to vectorise. */
static bool floats_finite(const float *v, size_t n)
{
	int over = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, &v[i], 4);
		over |= (int32_t)(u & 0x7fffffff) > 0x7f7fffff;
	}
	return !over;
}

static void le_floats(float *v, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	size_t i;

	for (i = 0; i < n; i++) {
		uint32_t u;

		memcpy(&u, &v[i], 4);
		u = __builtin_bswap32(u);
		memcpy(&v[i], &u, 4);
	}
#else
	(void)v;
	(void)n;
#endif
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Binary rows are checked here, a batch at a time: first_row is 1-based. */
static rvf_code flush_binary(struct imp *im, uint64_t first_row)
{
	size_t dim = im->dim, i, c;

	if (!floats_finite(im->vec, im->n * dim)) {
		for (i = 0; i < im->n; i++)
			for (c = 0; c < dim; c++)
				if (!isfinite(im->vec[i * dim + c])) {
					im->loc_kind = LOC_ROW;
					im->loc = first_row + i;
					return imp_bad(im, "component %zu is not finite",
						   c + 1);
				}
	}
	return imp_flush(im);
}


/* ------------------------------------------------------------------ */
/* fvecs                                                               */
/* ------------------------------------------------------------------ */

rvf_code import_fvecs(struct imp *im, int fd)
{
	size_t rowb = (size_t)im->dim * 4, rec = rowb + 4;
	size_t cap = rec > READ_CHUNK ? rec : READ_CHUNK;
	struct reader *r = &im->rd;
	uint64_t row = 0;	/* whole records consumed */
	rvf_code rc;

	rc = rd_init(im, fd, cap, cap);
	if (rc)
		return rc;
	im->loc_kind = LOC_ROW;
	for (;;) {
		bool got = true;
		size_t avail;

		while (got && r->len - r->pos < rec) {
			rc = rd_more(im, &got);
			if (rc)
				return rc;
		}
		avail = r->len - r->pos;
		if (!avail)
			break;
		im->loc = row + 1;
		if (avail < rec)
			return imp_bad(im, "truncated: %zu of %zu bytes", avail, rec);
		for (; avail >= rec; avail -= rec) {
			const unsigned char *p = (unsigned char *)r->buf + r->pos;
			uint32_t d = le32(p);
			float *dst = im->vec + im->n * (size_t)im->dim;

			if (d != im->dim) {
				im->loc = row + 1;
				return imp_bad(im, "dimension %" PRId32 ", expected %"
					   PRIu32, (int32_t)d, im->dim);
			}
			memcpy(dst, p + 4, rowb);
			le_floats(dst, im->dim);
			r->pos += rec;
			row++;
			if (++im->n == im->cap_rows) {
				rc = flush_binary(im, row - im->n + 1);
				if (rc)
					return rc;
			}
		}
	}
	return flush_binary(im, row - im->n + 1);
}

/* ------------------------------------------------------------------ */
/* Raw float32 rows: .f32, and the data of .npy                        */
/* ------------------------------------------------------------------ */

/* float64 rows (npy '<f8') into the batch as float32: a value outside
 * float32's range is refused, not turned into infinity. */
static rvf_code narrow_rows(struct imp *im, const unsigned char *wide,
			    size_t rows, uint64_t first_row)
{
	size_t dim = im->dim;

	for (size_t i = 0; i < rows; i++)
		for (size_t c = 0; c < dim; c++) {
			uint64_t u = 0;
			double d;
			float f;

			for (int b = 7; b >= 0; b--)
				u = u << 8 | wide[(i * dim + c) * 8 + (size_t)b];
			memcpy(&d, &u, 8);
			f = (float)d;
			if (isfinite(d) && !isfinite(f)) {
				im->loc_kind = LOC_ROW;
				im->loc = first_row + i;
				return imp_bad(im, "component %zu (%g) does not "
					       "fit float32", c + 1, d);
			}
			im->vec[i * dim + c] = f; /* NaN/inf: refused at flush */
		}
	return RVF_OK;
}

/* Reads straight into the batch (float32) or through a buffer (float64,
 * width 8).  sized: exactly `expect` rows, then EOF. */
rvf_code import_raw(struct imp *im, int fd, bool sized, uint64_t expect,
		    unsigned width)
{
	size_t rowb = (size_t)im->dim * width, full = im->cap_rows * rowb;
	unsigned char *wide = NULL;
	uint64_t done = 0;
	unsigned char extra;
	size_t got = 0;
	rvf_code rc = RVF_OK;

	im->loc_kind = LOC_NONE;
	if (width == 8 && !(wide = malloc(full)))
		return imp_nomem(im);
	for (;;) {
		size_t want = full, whole, rest;

		if (sized && expect - done < im->cap_rows)
			want = (size_t)(expect - done) * rowb;
		if (!want)
			break;
		rc = imp_read_full(im, fd, wide ? (void *)wide : im->vec, want, &got);
		if (rc)
			goto out;
		whole = got / rowb;
		rest = got % rowb;
		if (sized && got < want) {
			rc = imp_bad(im, "truncated: the header declares %" PRIu64
				     " rows, the data holds %" PRIu64 " and %zu "
				     "bytes", expect, done + whole, rest);
			goto out;
		}
		if (rest && done + whole == 0) {
			rc = imp_bad(im, "truncated: %zu bytes, less than one row "
				     "(%zu bytes)", rest, rowb);
			goto out;
		}
		if (rest) {
			rc = imp_bad(im, "truncated: %zu bytes after row %" PRIu64,
				     rest, done + whole);
			goto out;
		}
		if (whole) {
			if (wide)
				rc = narrow_rows(im, wide, whole, done + 1);
			else
				le_floats(im->vec, whole * im->dim);
			im->n = whole;
			if (!rc)
				rc = flush_binary(im, done + 1);
			if (rc) {
				im->n = 0;
				goto out;
			}
			done += whole;
		}
		if (got < want)
			break;
	}
	if (sized) {
		rc = imp_read_full(im, fd, &extra, 1, &got);
		if (!rc && got)
			rc = imp_bad(im, "data after the %" PRIu64 " rows the "
				     "header declares", expect);
	}
out:
	free(wide);
	return rc;
}

/* ------------------------------------------------------------------ */
/* npy                                                                 */
/* ------------------------------------------------------------------ */

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

		if (!imp_is_digit(*p))
			return false;
		for (; p < end && imp_is_digit(*p); p++) {
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

static rvf_code npy_header(struct imp *im, const char *h, size_t n,
			   uint64_t *rows, unsigned *width)
{
	const char *p = h, *end = h + n;
	bool have_descr = false, have_order = false, have_shape = false;
	bool fortran = false;
	char key[32], descr[32];
	uint64_t dims[2] = { 0, 0 };
	int nd = 0;

	p = py_ws(p, end);
	if (p == end || *p != '{')
		return imp_bad(im, "npy header: not a dictionary");
	for (p++;;) {
		p = py_ws(p, end);
		if (p < end && *p == '}')
			break;
		if (!py_str(&p, end, key, sizeof(key)))
			return imp_bad(im, "npy header: bad key");
		p = py_ws(p, end);
		if (p == end || *p != ':')
			return imp_bad(im, "npy header: expected ':' after '%s'", key);
		p = py_ws(p + 1, end);
		if (!strcmp(key, "descr")) {
			if (!py_str(&p, end, descr, sizeof(descr)))
				return imp_bad(im, "npy header: bad 'descr'");
			have_descr = true;
		} else if (!strcmp(key, "fortran_order")) {
			if ((size_t)(end - p) >= 4 && !memcmp(p, "True", 4)) {
				fortran = true;
				p += 4;
			} else if ((size_t)(end - p) >= 5 && !memcmp(p, "False", 5)) {
				p += 5;
			} else {
				return imp_bad(im, "npy header: bad 'fortran_order'");
			}
			have_order = true;
		} else if (!strcmp(key, "shape")) {
			if (!py_shape(&p, end, dims, &nd))
				return imp_bad(im, "npy header: bad 'shape'");
			have_shape = true;
		} else {
			return imp_bad(im, "npy header: unexpected key '%s'", key);
		}
		p = py_ws(p, end);
		if (p < end && *p == ',')
			p++;
		else if (p == end || *p != '}')
			return imp_bad(im, "npy header: expected ',' or '}'");
	}
	if (!have_descr || !have_order || !have_shape)
		return imp_bad(im, "npy header: missing '%s'", !have_descr ? "descr" :
			   !have_order ? "fortran_order" : "shape");
	if (!strcmp(descr, "<f4") || !strcmp(descr, "|f4") || !strcmp(descr, "f4"))
		*width = 4;
	else if (!strcmp(descr, "<f8") || !strcmp(descr, "f8"))
		*width = 8; /* converted to float32 row by row */
	else
		return imp_bad(im, "npy header: dtype '%s' is not little-endian "
			       "float32 ('<f4') or float64 ('<f8')", descr);
	if (fortran)
		return imp_bad(im, "npy header: fortran_order arrays are not "
			   "supported (save in C order)");
	if (nd != 2)
		return imp_bad(im, "npy header: shape has %d dimensions, expected 2 "
			   "(rows, %" PRIu32 ")", nd, im->dim);
	if (dims[1] != im->dim)
		return imp_bad(im, "npy header: shape (%" PRIu64 ", %" PRIu64 ") has %"
			   PRIu64 " columns, expected %" PRIu32,
			   dims[0], dims[1], dims[1], im->dim);
	if (dims[0] > UINT64_MAX / ((uint64_t)im->dim * 8))
		return imp_bad(im, "npy header: shape (%" PRIu64 ", %" PRIu64 ") is "
			   "too large", dims[0], dims[1]);
	*rows = dims[0];
	return RVF_OK;
}

rvf_code import_npy(struct imp *im, int fd)
{
	unsigned char pre[12];
	size_t got = 0, hlen, plen;
	uint64_t rows = 0;
	unsigned width = 4;
	rvf_code rc;
	char *h;

	im->loc_kind = LOC_NONE;
	rc = imp_read_full(im, fd, pre, 10, &got);
	if (rc)
		return rc;
	if (!got)
		return RVF_OK; /* empty file: no rows */
	if (got < 6 || memcmp(pre, "\x93" "NUMPY", 6))
		return imp_bad(im, "not an npy file (bad magic)");
	if (got < 10)
		return imp_bad(im, "npy header truncated");
	if (pre[6] == 1) {
		hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
		plen = 10;
	} else if (pre[6] == 2 || pre[6] == 3) {
		rc = imp_read_full(im, fd, pre + 10, 2, &got);
		if (rc)
			return rc;
		if (got < 2)
			return imp_bad(im, "npy header truncated");
		hlen = le32(pre + 8);
		plen = 12;
	} else {
		return imp_bad(im, "npy version %u.%u is not supported", pre[6], pre[7]);
	}
	if (hlen > NPY_HEADER_MAX)
		return imp_bad(im, "npy header of %zu bytes is too large", hlen);
	h = malloc(hlen + 1);
	if (!h)
		return imp_nomem(im);
	rc = imp_read_full(im, fd, h, hlen, &got);
	if (!rc && got < hlen)
		rc = imp_bad(im, "npy header truncated (%zu of %zu bytes)", plen + got,
			 plen + hlen);
	if (!rc) {
		h[hlen] = '\0';
		rc = npy_header(im, h, hlen, &rows, &width);
	}
	free(h);
	if (rc)
		return rc;
	return import_raw(im, fd, true, rows, width);
}
