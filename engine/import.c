/*
 * import.c - streaming import of vector files: CSV/TSV, JSON Lines, JSON
 * arrays, fvecs, npy and raw float32 (the formats are in import_csv.c,
 * import_json.c and import_binary.c; this file has what they share).
 *
 * Input is read in chunks into one buffer that holds the record in progress,
 * and rows go to the sink in bounded batches, so memory does not grow with
 * the file and pipes work.  Text numbers come out exactly as strtof() in the
 * C locale would give them (parse.c).
 */
#include "import.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BATCH_ROWS 4096
#define BATCH_FLOAT_BYTES ((size_t)8 << 20)
#define RECORD_MAX ((size_t)64 << 20)	/* longest text line / JSON element */

rvf_code imp_bad(struct imp *im, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	switch (im->loc_kind) {
	case LOC_LINE:
		if (im->elem)
			return rvf_fail(im->err, RVF_E_INVALID_ARGUMENT,
					"%s: line %" PRIu64 ": element %" PRIu64
					": %s", im->name, im->loc, im->elem, msg);
		return rvf_fail(im->err, RVF_E_INVALID_ARGUMENT,
				"%s: line %" PRIu64 ": %s", im->name, im->loc,
				msg);
	case LOC_ROW:
		return rvf_fail(im->err, RVF_E_INVALID_ARGUMENT,
				"%s: row %" PRIu64 ": %s", im->name, im->loc,
				msg);
	case LOC_NONE:
		break;
	}
	return rvf_fail(im->err, RVF_E_INVALID_ARGUMENT, "%s: %s", im->name, msg);
}

rvf_code imp_nomem(struct imp *im)
{
	return rvf_fail(im->err, RVF_E_NO_MEMORY, "%s: out of memory", im->name);
}

/* A printable, shortened copy of an input token for messages. */
const char *imp_show(char out[48], const char *s, size_t n)
{
	size_t i, k = 0, max = n > 40 ? 37 : n;

	for (i = 0; i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		out[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (max < n) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
	return out;
}

/* ------------------------------------------------------------------ */
/* Input buffer                                                        */
/* ------------------------------------------------------------------ */

rvf_code rd_init(struct imp *im, int fd, size_t cap, size_t limit)
{
	struct reader *r = &im->rd;

	r->fd = fd;
	r->cap = cap;
	r->limit = limit < cap ? cap : limit;
	r->buf = malloc(cap + 1);
	return r->buf ? RVF_OK : imp_nomem(im);
}

/* Reads more input after buf[pos, len), which is kept (compacting or growing
 * the buffer as needed).  *got is false at end of input. */
rvf_code rd_more(struct imp *im, bool *got)
{
	struct reader *r = &im->rd;
	ssize_t k;

	*got = false;
	if (r->eof)
		return RVF_OK;
	if (r->pos > 0 && r->cap - r->len < r->cap / 2) {
		memmove(r->buf, r->buf + r->pos, r->len - r->pos);
		r->len -= r->pos;
		r->pos = 0;
	}
	if (r->len == r->cap) {
		size_t ncap;
		char *nb;

		if (r->cap >= r->limit)
			return imp_bad(im, "record longer than %zu bytes", r->limit);
		ncap = r->cap > r->limit / 2 ? r->limit : r->cap * 2;
		nb = realloc(r->buf, ncap + 1);
		if (!nb)
			return imp_nomem(im);
		r->buf = nb;
		r->cap = ncap;
	}
	do
		k = read(r->fd, r->buf + r->len, r->cap - r->len);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return rvf_fail_io(im->err, errno, "%s: read", im->name);
	if (k == 0) {
		r->eof = true;
		return RVF_OK;
	}
	r->len += (size_t)k;
	*got = true;
	return RVF_OK;
}

/* Next line, without its '\n', in [*s, *s + *n); *have false at EOF. */
rvf_code rd_line(struct imp *im, char **s, size_t *n, bool *have)
{
	struct reader *r = &im->rd;
	size_t seen = 0;

	im->loc_kind = LOC_LINE;
	im->loc = im->line + 1;
	for (;;) {
		char *b = r->buf + r->pos;
		size_t avail = r->len - r->pos;
		char *nl = memchr(b + seen, '\n', avail - seen);
		rvf_code rc;
		bool got;

		if (nl) {
			*s = b;
			*n = (size_t)(nl - b);
			r->pos += *n + 1;
			break;
		}
		seen = avail;
		rc = rd_more(im, &got);
		if (rc)
			return rc;
		if (!got) {
			if (r->pos == r->len) {
				*have = false;
				return RVF_OK;
			}
			/* A last line without '\n'; buf[len] is spare. */
			*s = r->buf + r->pos;
			*n = r->len - r->pos;
			r->pos = r->len;
			break;
		}
	}
	im->line++;
	*have = true;
	return RVF_OK;
}

rvf_code rd_skip_bom(struct imp *im)
{
	struct reader *r = &im->rd;
	bool got = true;
	rvf_code rc;

	while (got && r->len - r->pos < 3) {
		rc = rd_more(im, &got);
		if (rc)
			return rc;
	}
	if (r->len - r->pos >= 3 && !memcmp(r->buf + r->pos, "\xEF\xBB\xBF", 3))
		r->pos += 3;
	return RVF_OK;
}

/* Reads up to want bytes; fewer only at end of input. */
rvf_code imp_read_full(struct imp *im, int fd, void *buf, size_t want,
			  size_t *got)
{
	size_t n = 0;

	*got = 0;
	while (n < want) {
		ssize_t k = read(fd, (char *)buf + n, want - n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return rvf_fail_io(im->err, errno, "%s: read", im->name);
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	*got = n;
	return RVF_OK;
}


/* ------------------------------------------------------------------ */
/* Batches                                                             */
/* ------------------------------------------------------------------ */

static void drop_docs(struct imp *im)
{
	while (im->ndocs)
		json_decref(im->docs[--im->ndocs]);
	im->doc_bytes = 0;
	im->meta_n = 0;
}

rvf_code imp_flush(struct imp *im)
{
	rvf_code rc;
	bool meta;

	if (!im->n)
		return RVF_OK;
	meta = im->meta_n > 0;
	if (meta)
		im->meta_start[im->n] = im->meta_n;
	rc = im->sink(im->ctx, im->n, im->auto_ids ? NULL : im->ids, im->vec,
		      meta ? im->meta : NULL,
		      meta ? im->meta_start : NULL, im->err);
	drop_docs(im);
	if (rc == RVF_OK)
		im->rows += im->n;
	im->n = 0;
	return rc;
}


/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

static const struct {
	const char *ext;
	rvf_import_format fmt;
} import_exts[] = {
	{ "csv", RVF_IMPORT_CSV }, { "tsv", RVF_IMPORT_CSV },
	{ "txt", RVF_IMPORT_CSV }, { "jsonl", RVF_IMPORT_JSONL },
	{ "ndjson", RVF_IMPORT_JSONL }, { "json", RVF_IMPORT_JSON },
	{ "fvecs", RVF_IMPORT_FVECS }, { "npy", RVF_IMPORT_NPY },
	{ "f32", RVF_IMPORT_F32 },
};

bool rvf_import_format_from_name(const char *name, rvf_import_format *out)
{
	const char *base, *dot;
	size_t i;

	if (!name)
		return false;
	base = strrchr(name, '/');
	base = base ? base + 1 : name;
	dot = strrchr(base, '.');
	if (!dot || dot == base) /* ".csv" alone is a name, not an extension */
		return false;
	for (i = 0; i < sizeof(import_exts) / sizeof(import_exts[0]); i++)
		if (!strcasecmp(dot + 1, import_exts[i].ext)) {
			if (out)
				*out = import_exts[i].fmt;
			return true;
		}
	return false;
}

const char *rvf_import_format_name(rvf_import_format f)
{
	switch (f) {
	case RVF_IMPORT_CSV: return "csv";
	case RVF_IMPORT_JSONL: return "jsonl";
	case RVF_IMPORT_JSON: return "json";
	case RVF_IMPORT_FVECS: return "fvecs";
	case RVF_IMPORT_NPY: return "npy";
	case RVF_IMPORT_F32: return "f32";
	}
	return "unknown";
}

static rvf_code imp_setup(struct imp *im, int fd, rvf_import_format fmt)
{
	size_t rowb = (size_t)im->dim * 4;
	bool text = fmt == RVF_IMPORT_CSV || fmt == RVF_IMPORT_JSONL ||
		    fmt == RVF_IMPORT_JSON;
	bool json = fmt == RVF_IMPORT_JSONL || fmt == RVF_IMPORT_JSON;

	im->cap_rows = BATCH_FLOAT_BYTES / rowb;
	if (im->cap_rows > BATCH_ROWS)
		im->cap_rows = BATCH_ROWS;
	if (!im->cap_rows)
		im->cap_rows = 1;
	im->vec = malloc(im->cap_rows * rowb);
	if (!im->vec)
		return imp_nomem(im);
	if (!text)
		return RVF_OK;
	im->ids = malloc(im->cap_rows * sizeof(*im->ids));
	im->cloc = newlocale(LC_ALL_MASK, "C", (locale_t)0);
	if (!im->ids || !im->cloc)
		return imp_nomem(im);
	if (json) {
		im->meta_start = malloc((im->cap_rows + 1) * sizeof(size_t));
		im->docs = malloc(im->cap_rows * sizeof(json_t *));
		if (!im->meta_start || !im->docs)
			return imp_nomem(im);
	}
	/* Lines may be long for big dimensions: ~48 bytes a component. */
	return rd_init(im, fd, READ_CHUNK,
		       RECORD_MAX + (rowb < SIZE_MAX / 16 ? rowb * 12 : 0));
}

rvf_code rvf_import_fd(int fd, const char *name, rvf_import_format fmt,
		       uint32_t dimension, rvf_import_sink sink, void *ctx,
		       uint64_t *rows, rvf_error *err)
{
	struct imp im;
	rvf_error local;
	rvf_code rc;

	if (!err) /* the sink may always write its reason */
		err = &local;
	if (rows)
		*rows = 0;
	if (!name)
		name = "input";
	if (!sink || fd < 0)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "%s: %s", name,
				sink ? "bad file descriptor" : "no sink");
	if (!dimension)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"%s: dimension must be at least 1", name);
#if SIZE_MAX < UINT64_MAX
	/* Row sizes are computed in size_t. */
	if ((uint64_t)dimension * 16 + 8 > SIZE_MAX)
		return rvf_fail(err, RVF_E_TOO_LARGE,
				"%s: dimension %" PRIu32 " is too large", name,
				dimension);
#endif
	memset(&im, 0, sizeof(im));
	im.name = name;
	im.dim = dimension;
	im.sink = sink;
	im.ctx = ctx;
	im.err = err;
	im.rd.fd = -1;

	rc = imp_setup(&im, fd, fmt);
	if (!rc) {
		switch (fmt) {
		case RVF_IMPORT_CSV:
			rc = import_csv(&im);
			break;
		case RVF_IMPORT_JSONL:
			rc = import_jsonl(&im);
			break;
		case RVF_IMPORT_JSON:
			rc = import_json(&im);
			break;
		case RVF_IMPORT_FVECS:
			rc = import_fvecs(&im, fd);
			break;
		case RVF_IMPORT_NPY:
			rc = import_npy(&im, fd);
			break;
		case RVF_IMPORT_F32:
			rc = import_raw(&im, fd, false, 0, 4);
			break;
		default:
			rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				      "%s: unknown import format %d", name,
				      (int)fmt);
			break;
		}
	}
	if (!rc)
		rc = imp_flush(&im);

	drop_docs(&im);
	free(im.docs);
	free(im.meta);
	free(im.meta_start);
	free(im.ids);
	free(im.vec);
	free(im.rd.buf);
	if (im.cloc)
		freelocale(im.cloc);
	if (rows)
		*rows = im.rows;
	return rc;
}

static rvf_code check_sink(void *ctx, size_t n, const uint64_t *ids,
			   const float *vectors, const rvf_meta_field *meta,
			   const size_t *meta_start, rvf_error *err)
{
	(void)ctx, (void)n, (void)ids, (void)vectors, (void)meta;
	(void)meta_start, (void)err;
	return RVF_OK;
}

rvf_code rvf_import_check_lines(const char *text, size_t len, const char *name,
				rvf_import_format fmt, uint32_t dimension,
				uint64_t first_line, rvf_error *err)
{
	struct imp im;
	rvf_error local;
	rvf_code rc;

	if (!err)
		err = &local;
	if (!name)
		name = "input";
	if (fmt != RVF_IMPORT_CSV && fmt != RVF_IMPORT_JSONL)
		return RVF_OK; /* not line by line: checked whole at the end */
	if (!dimension)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"%s: dimension must be at least 1", name);
	memset(&im, 0, sizeof(im));
	im.name = name;
	im.dim = dimension;
	im.sink = check_sink;
	im.err = err;
	im.rd.fd = -1;
	im.line = first_line ? first_line - 1 : 0;
	rc = imp_setup(&im, -1, fmt);
	if (!rc) {
		struct reader *r = &im.rd;

		/* The whole text is the input: no read() ever happens. */
		if (len > r->cap) {
			char *nb = realloc(r->buf, len + 1);

			if (!nb)
				rc = imp_nomem(&im);
			else {
				r->buf = nb;
				r->cap = len;
			}
		}
		if (!rc) {
			memcpy(r->buf, text, len);
			r->len = len;
			r->eof = true;
			if (first_line > 1)
				im.skip_header = SKIP_HEADER_DONE;
			rc = fmt == RVF_IMPORT_CSV ? import_csv(&im) :
			     import_jsonl(&im);
		}
	}
	drop_docs(&im);
	free(im.docs);
	free(im.meta);
	free(im.meta_start);
	free(im.ids);
	free(im.vec);
	free(im.rd.buf);
	if (im.cloc)
		freelocale(im.cloc);
	return rc;
}
