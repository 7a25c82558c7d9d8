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

/* The header (npy.c, shared with rvffs's ingest/), read as far as it
 * goes, then exactly the rows it declares. */
rvf_code import_npy(struct imp *im, int fd)
{
	size_t len = 0, cap = 0, need = 10;
	unsigned char *h = NULL;
	rvf_npy_header npy;
	bool complete = false;
	rvf_code rc;

	im->loc_kind = LOC_NONE;
	for (;;) {
		size_t got = 0;

		if (need > cap) {
			unsigned char *nh = realloc(h, need);

			if (!nh) {
				free(h);
				return imp_nomem(im);
			}
			h = nh;
			cap = need;
		}
		rc = imp_read_full(im, fd, h + len, need - len, &got);
		len += got;
		complete = len < need;
		if (!rc)
			rc = rvf_npy_read_header(h, len, complete, im->name, im->dim,
						 &npy, &need, im->err);
		if (rc || !need)
			break;
	}
	free(h);
	if (rc || (complete && !npy.data_offset))
		return rc; /* refused, or an empty file: no rows */
	return import_raw(im, fd, true, npy.rows, npy.width);
}
