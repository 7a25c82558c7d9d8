/* import.h - what the import parsers share (internal to librvf).
 *
 * import.c owns the input buffer, the batches and the entry points;
 * import_csv.c, import_json.c and import_binary.c each parse one family of
 * formats into the batch of a struct imp and call imp_flush() when it is
 * full. */
#ifndef RVF_IMPORT_H
#define RVF_IMPORT_H

#include "error.h"
#include "parse.h"

#include <jansson.h>
#include <locale.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define READ_CHUNK ((size_t)1 << 20)
#define BATCH_JSON_BYTES ((size_t)16 << 20)

struct reader {
	int fd;
	char *buf;		/* cap + 1 bytes: one spare for a temporary NUL */
	size_t cap;
	size_t limit;		/* largest record we agree to buffer */
	size_t pos, len;	/* unread input is buf[pos, len) */
	bool eof;
};

enum loc_kind { LOC_NONE, LOC_LINE, LOC_ROW };

struct imp {
	const char *name;
	uint32_t dim;
	rvf_import_sink sink;
	void *ctx;
	rvf_error *err;
	locale_t cloc;
	struct reader rd;
	uint64_t line;		/* text lines read so far */

	/* Where the record being parsed is, for messages. */
	enum loc_kind loc_kind;
	uint64_t loc;
	uint64_t elem;		/* JSON array element (1-based), 0: none */

	/* The batch being filled. */
	size_t cap_rows, n;
	uint64_t *ids;
	float *vec;
	size_t *meta_start;
	rvf_meta_field *meta;
	size_t meta_n, meta_cap;
	json_t **docs;		/* hold the metadata strings and names */
	size_t ndocs, doc_bytes;
	uint64_t rows;		/* rows the sink accepted */
	bool auto_ids;		/* the batch's rows have no ids: the store's next */
	enum { SKIP_HEADER_MAYBE, SKIP_HEADER_DONE } skip_header;
};

/* Errors: "NAME: line L: ..." (or row, or element) from im's location. */
rvf_code imp_bad(struct imp *im, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
rvf_code imp_nomem(struct imp *im);
/* A printable, shortened copy of an input token for messages. */
const char *imp_show(char out[48], const char *s, size_t n);

/* The input buffer (import.c). */
rvf_code rd_init(struct imp *im, int fd, size_t cap, size_t limit);
rvf_code rd_more(struct imp *im, bool *got);
rvf_code rd_line(struct imp *im, char **s, size_t *n, bool *have);
rvf_code rd_skip_bom(struct imp *im);
rvf_code imp_read_full(struct imp *im, int fd, void *buf, size_t want,
		       size_t *got);

/* Hands the batch to the sink and starts a new one. */
rvf_code imp_flush(struct imp *im);

static inline bool imp_is_digit(char c)
{
	return (unsigned char)(c - '0') < 10;
}

/* Ids are read by parse.c, as everywhere else: 0 ok, 1 not an id, 2 too
 * large. */
static inline int imp_parse_id(const char *s, const char *e, uint64_t *out)
{
	num_result r = num_id(s, e, out);

	return r == NUM_OK ? 0 : r == NUM_BAD ? 1 : 2;
}

/* The formats. */
rvf_code import_csv(struct imp *im);		/* import_csv.c */
rvf_code import_jsonl(struct imp *im);		/* import_json.c */
rvf_code import_json(struct imp *im);
rvf_code import_fvecs(struct imp *im, int fd);	/* import_binary.c */
rvf_code import_npy(struct imp *im, int fd);
/* Raw little-endian rows of float32 (width 4) or float64 (width 8, npy
 * '<f8', narrowed); sized: exactly `expect` rows, then end of input. */
rvf_code import_raw(struct imp *im, int fd, bool sized, uint64_t expect,
		    unsigned width);

#endif
