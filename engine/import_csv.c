/*
 * import_csv.c - CSV, TSV and whitespace-separated text: one vector a line,
 * "ID x0 x1 ...", an optional header line, '#' comments.
 */
#include "import.h"

#include <inttypes.h>
#include <string.h>


/* ------------------------------------------------------------------ */
/* CSV / TSV / whitespace-separated text                               */
/* ------------------------------------------------------------------ */

static bool csv_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool csv_sep(char c)
{
	return c == ',' || csv_blank(c);
}

/* The first line is a header when no field of it is a number ("id,x0,x1"
 * or names): it is skipped, and must have dimension + 1 fields.  Returns
 * true when it was one (im->err->code says whether it was right). */
static bool csv_header(struct imp *im, const char *p, const char *end)
{
	uint64_t fields = 0;
	float v;

	while (p < end) {
		const char *t = p;

		while (p < end && !csv_sep(*p))
			p++;
		if (p > t) {
			if (num_float(t, p, &v) != NUM_BAD)
				return false;
			fields++;
		}
		while (p < end && csv_sep(*p))
			p++;
	}
	if (fields != (uint64_t)im->dim + 1) {
		imp_bad(im, "the header has %" PRIu64 " fields; expected %" PRIu32
		    " (an id, then one per component)", fields, im->dim + 1);
		return true;
	}
	rvf_error_clear(im->err);
	return true;
}

static rvf_code csv_line(struct imp *im, char *p, char *end)
{
	uint32_t dim = im->dim;
	float *row = im->vec + im->n * (size_t)dim;
	char tok[48];
	uint64_t id, k = 0;
	char *t;
	int r;

	while (p < end && csv_blank(*p))
		p++;
	if (p == end || *p == '#')
		return RVF_OK;
	if (im->skip_header == SKIP_HEADER_MAYBE) {
		im->skip_header = SKIP_HEADER_DONE;
		if (csv_header(im, p, end))
			return im->err->code;
	}
	for (t = p; p < end && !csv_sep(*p); p++)
		;
	r = imp_parse_id(t, p, &id);
	if (r == 1)
		return imp_bad(im, "id \"%s\" is not an id (decimal digits, no sign, no leading zero)",
			   imp_show(tok, t, (size_t)(p - t)));
	if (r == 2)
		return imp_bad(im, "id \"%s\" is larger than %" PRIu64,
			   imp_show(tok, t, (size_t)(p - t)), UINT64_MAX);
	for (;;) {
		bool comma = false;
		char *q;
		float v;

		/* A separator: blanks with at most one comma among them. */
		while (p < end && csv_blank(*p))
			p++;
		if (p < end && *p == ',') {
			comma = true;
			for (p++; p < end && csv_blank(*p); p++)
				;
		}
		if (p == end) {
			if (comma)
				return imp_bad(im, "component %" PRIu64 " is empty",
					   k + 1);
			break;
		}
		if (*p == ',')
			return imp_bad(im, "component %" PRIu64 " is empty", k + 1);
		for (q = p; q < end && !csv_sep(*q); q++)
			;
		r = num_float(p, q, &v);
		if (r != NUM_OK)
			return imp_bad(im, "component %" PRIu64 " \"%s\" is %s", k + 1,
				   imp_show(tok, p, (size_t)(q - p)),
				   r == NUM_BAD ? "not a number" : "not finite");
		if (k < dim)
			row[k] = v;
		k++;
		p = q;
	}
	if (k != dim)
		return imp_bad(im, "expected %" PRIu32 " components, found %" PRIu64,
			   dim, k);
	im->ids[im->n] = id;
	if (++im->n == im->cap_rows)
		return imp_flush(im);
	return RVF_OK;
}

rvf_code import_csv(struct imp *im)
{
	rvf_code rc = rd_skip_bom(im);

	while (rc == RVF_OK) {
		bool have;
		char *s;
		size_t n;

		rc = rd_line(im, &s, &n, &have);
		if (rc || !have)
			break;
		rc = csv_line(im, s, s + n);
	}
	return rc;
}
