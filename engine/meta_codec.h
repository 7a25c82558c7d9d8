/* meta_codec.h - what meta.c (tables, decoder, encoder) shares with
 * meta_batch.c (rows of new metadata turned into one META delta).  Internal
 * to librvf. */
#ifndef RVF_META_CODEC_H
#define RVF_META_CODEC_H

#include "meta.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TAG_NULL = 0, TAG_DELETE = 7 }; /* 1..6 are rvf_value_type */
enum { OP_UPSERT = 0, OP_DELETE = 1 };

/* One vector's fields, names and values in a single allocation, shared by
 * every table version that holds it. */
typedef struct rec {
	atomic_size_t refs;
	size_t count;
	const uint16_t *ids;
	rvf_meta_field fields[];
} rec;

typedef struct entry {
	uint64_t id;
	rec *r;
} entry;

struct meta_table {
	atomic_size_t refs;
	bool is_static;
	uint64_t generation;
	uint32_t chain_deltas; /* deltas since the last snapshot */
	uint64_t chain_bytes;  /* payload bytes of the chain, snapshot included */
	size_t nschema;
	meta_field_def *schema;          /* ascending by id; names malloc'd */
	const meta_field_def **by_name;  /* ascending by name */
	size_t nrecs;
	entry *recs; /* ascending by id */
};

static inline bool meta_is_str(rvf_value_type t)
{
	return t == RVF_VALUE_STRING || t == RVF_VALUE_BYTES;
}

static inline bool meta_size_add(size_t *s, size_t n)
{
	if (*s > SIZE_MAX - n)
		return false;
	*s += n;
	return true;
}

typedef struct meta_buf {
	uint8_t *p;
	size_t len, cap;
	bool oom, too_large;
} meta_buf;

/* The empty table (generation 0), never freed. */
extern const meta_table meta_empty_table;

/* Names compare as byte strings, shorter first on a common prefix. */
int meta_name_cmp(const char *a, size_t al, const char *b, size_t bl);
/* "string", "i64", ...: the name of a value type, "?" if unknown. */
const char *meta_type_name(rvf_value_type t);

/* Encoding a payload into b (little-endian; errors are sticky in b). */
void meta_put8(meta_buf *b, uint8_t v);
void meta_put16(meta_buf *b, uint16_t v);
void meta_put32(meta_buf *b, uint32_t v);
void meta_put64(meta_buf *b, uint64_t v);
void meta_put_value(meta_buf *b, const rvf_value *v);
void meta_put_header(meta_buf *b, bool snapshot, uint64_t gen,
		     const meta_field_def *schema, size_t nschema);
rvf_code meta_put_footer(meta_buf *b, size_t nrecs, rvf_error *err);
rvf_code meta_check_generation(const meta_table *base, rvf_error *err);
/* Applies the finished delta in d to base, turning it into a snapshot of
 * the result when the chain wants one.  Consumes d. */
rvf_code meta_finish_write(const meta_table *base, meta_buf *d, unsigned flags,
			   meta_write *out, rvf_error *err);

#endif
