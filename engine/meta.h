/*
 * meta.h - per-vector metadata: immutable tables and the META_SEG v1 codec.
 *
 * librvf persists metadata in META segments (0x07) laid out as upstream's
 * META_SEG v1: a body ("RVFMETA\0", version 1, flags, generation,
 * base_generation, schema, file metadata, records) closed by "RVFDONE\0" +
 * SHA-256(body).  Generations form a chain: a full snapshot (flags bit 0,
 * base_generation = UINT64_MAX), then deltas whose base_generation is the
 * previous generation.  rvf-node 0.2.x never writes nor reads them (its
 * compaction copies them verbatim), so the layout follows upstream's code.
 *
 * A meta_table is one immutable version of the metadata: a schema (field
 * name <-> field_id <-> value type) and, per vector id, a record of fields.
 * Tables are reference-counted and may be read from any thread.  A table is
 * a sorted array of (id, record); records are immutable and shared (and
 * reference-counted) between versions, so a commit copies the index, not the
 * values: O(records) pointer copies per commit.  Every writer builds its
 * payload first and then applies it with the decoder replay uses, so the
 * table a writer holds is exactly what a reader will rebuild from the file.
 *
 * Record semantics follow upstream: an upsert in a delta sets the fields it
 * lists and removes those tagged delete-field, keeping the others; a
 * delete-record removes the record.  A stored null (tag 0, upstream only)
 * reads as an absent field: rvf_value has no null.
 */
#ifndef RVF_META_H
#define RVF_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rvf.h"

/* Format limits (upstream rvf-types/src/metadata.rs). */
#define META_MAX_PAYLOAD (256u * 1024u * 1024u) /* whole payload, footer included */
#define META_MAX_FIELDS 65536u                   /* schema entries, fields per record */
#define META_MAX_RECORDS 16777216u               /* records per payload */
#define META_MAX_NAME 4096u                      /* field name / file key bytes */
#define META_MAX_VALUE (16u * 1024u * 1024u)     /* one string or bytes value */
#define META_SNAPSHOT_INTERVAL 32u /* a snapshot when generation % 32 == 0 */
#define META_MAX_DELTAS 64u        /* deltas replay accepts after a snapshot */

typedef struct meta_table meta_table;

/* One schema entry.  name is NUL-terminated and never contains NUL. */
typedef struct meta_field_def {
	uint16_t id;
	rvf_value_type type;
	bool nullable;
	const char *name;
	size_t name_len;
} meta_field_def;

/* The fields of one vector, ascending by field id.  Valid while the table
 * that returned it is held. */
typedef struct meta_record {
	size_t count;
	const rvf_meta_field *fields;
	const uint16_t *field_ids; /* parallel to fields */
} meta_record;

/* ------------------------------------------------------------------ */
/* Tables                                                              */
/* ------------------------------------------------------------------ */

/* The empty table (generation 0, no schema).  Never fails; ref/unref on it
 * are free, so it may be held like any other table. */
meta_table *meta_table_empty(void);
meta_table *meta_table_ref(const meta_table *t);
void meta_table_unref(meta_table *t);

/* Newest generation applied; 0 when no META segment was ever written. */
uint64_t meta_table_generation(const meta_table *t);
/* Vector ids that carry a record (an empty record counts). */
size_t meta_table_record_count(const meta_table *t);

/* Fields of `id` (0 when none); *fields valid while t is held. */
size_t meta_table_get(const meta_table *t, uint64_t id,
		      const rvf_meta_field **fields);
/* Like meta_table_get with the field ids; false when `id` has no record. */
bool meta_table_find(const meta_table *t, uint64_t id, meta_record *out);

/* Schema: entries ascending by id; lookups return NULL when unknown. */
size_t meta_table_field_count(const meta_table *t);
const meta_field_def *meta_table_field_at(const meta_table *t, size_t index);
const meta_field_def *meta_table_field_by_id(const meta_table *t, uint16_t id);
const meta_field_def *meta_table_field_by_name(const meta_table *t,
					       const char *name, size_t len);

/* Calls fn for every record in ascending id order until it returns false. */
typedef bool (*meta_visit_fn)(void *ctx, uint64_t id, const meta_record *rec);
void meta_table_foreach(const meta_table *t, meta_visit_fn fn, void *ctx);

/* ------------------------------------------------------------------ */
/* Values                                                              */
/* ------------------------------------------------------------------ */

#define META_CMP_NONE 2 /* meta_value_cmp: the values are not comparable */

/* -1, 0 or 1, or META_CMP_NONE.  i64, u64 and f64 compare exactly across
 * types (5 == 5.0, 2^64-1 != 2^64); strings with strings and bytes with
 * bytes bytewise; bools with bools (false < true); NaN with nothing. */
int meta_value_cmp(const rvf_value *a, const rvf_value *b);

/* Converts a number to another numeric type when the value is exactly
 * representable there; same-type values are copied.  False otherwise. */
bool meta_value_convert(const rvf_value *v, rvf_value_type to, rvf_value *out);

/* ------------------------------------------------------------------ */
/* Reading META payloads                                               */
/* ------------------------------------------------------------------ */

typedef struct meta_header {
	uint64_t generation;
	uint64_t base_generation; /* UINT64_MAX for a snapshot */
	bool snapshot;
	uint32_t schema_count;
	uint32_t file_meta_count;
	uint32_t record_count;
} meta_header;

/* Fully validates a payload (magic, version, footer, SHA-256, every length,
 * ordering, tag and value) without building anything.  RVF_E_CORRUPT on any
 * defect.  hdr may be NULL. */
rvf_code meta_payload_check(const void *payload, size_t len, meta_header *hdr,
			    rvf_error *err);

/* Applies one payload to base and returns the resulting table in *out: a
 * snapshot replaces everything, a delta must be based on base's generation.
 * base is not modified.  RVF_E_CORRUPT on a malformed payload, on a delta
 * that does not follow base, or on a schema that contradicts base's (a field
 * id or name that changes name or type). */
rvf_code meta_table_apply(const meta_table *base, const void *payload,
			  size_t len, meta_table **out, rvf_error *err);

typedef struct meta_blob {
	const void *data;
	size_t len;
} meta_blob;

typedef struct meta_replay_info {
	size_t first;       /* index of the snapshot the chain starts at */
	size_t applied;     /* payloads applied from there */
	size_t dropped;     /* damaged or unreachable payloads after `first` */
	bool truncated;     /* dropped > 0: the next write will be a snapshot */
} meta_replay_info;

/* Rebuilds the table from the META payloads of a directory, in directory
 * order: starts at the newest snapshot (payloads before it are ignored, not
 * even checked) and applies every later payload, each delta following its
 * predecessor.  Fails with RVF_E_CORRUPT, naming the payload, when one at or
 * after that snapshot is damaged or out of sequence, when there is no
 * snapshot, or when more than META_MAX_DELTAS deltas follow it.  (No
 * walk-back recovery: info->dropped is always 0.)  info may be NULL.  n == 0
 * gives the empty table. */
rvf_code meta_replay(const meta_blob *payloads, size_t n, meta_table **out,
		     meta_replay_info *info, rvf_error *err);

/* ------------------------------------------------------------------ */
/* Writing META payloads                                               */
/* ------------------------------------------------------------------ */

enum {
	META_FORCE_SNAPSHOT = 1u << 0, /* write a snapshot even if a delta would do */
};

/* One prepared write.  When payload is NULL there is nothing to write and
 * table is the base (a new reference).  Otherwise append payload as a META
 * segment; table is what the store holds once that commit is published
 * (and must simply be dropped if the commit fails). */
typedef struct meta_write {
	unsigned char *payload; /* malloc'd */
	size_t len;
	bool snapshot;
	uint64_t generation;
	meta_table *table;
} meta_write;

/* Frees the payload and drops the table reference; *w is zeroed. */
void meta_write_release(meta_write *w);

/*
 * Every encoder writes generation base+1.  It writes a snapshot instead of a
 * delta when the base has no generation yet, when (base+1) % 32 == 0, when
 * META_SNAPSHOT_INTERVAL deltas already follow the last snapshot, when the
 * chain would pass META_MAX_PAYLOAD bytes, or when META_FORCE_SNAPSHOT is
 * set.  Payloads larger than META_MAX_PAYLOAD, or
 * holding more than META_MAX_RECORDS records, fail with RVF_E_TOO_LARGE.
 */

/* Accumulates the metadata of ingested rows until commit.  Rows follow
 * rvf_ingest_add: row i has fields meta[meta_start[i] .. meta_start[i+1]).
 * A row with fields replaces the id's whole record (written as an upsert of
 * its fields plus delete-field for the base record's other fields, so any
 * upstream reader agrees); a row without fields
 * leaves the id's metadata alone (as the reference does); of several rows
 * with one id the last one with fields wins.  Within a row, the first
 * occurrence of a name wins (as the reference does).  A new name gets the
 * next field id and the type of its first value; later values convert when
 * exact (5 into an f64 field, a non-negative i64 into a u64 field) and are
 * otherwise refused with RVF_E_INVALID_ARGUMENT.  Strings must be UTF-8
 * (use bytes otherwise), f64 finite.  A failed add leaves the batch as it
 * was.  Rows are copied: meta may be freed after the call. */
typedef struct meta_batch meta_batch;

meta_batch *meta_batch_new(const meta_table *base, rvf_error *err);
rvf_code meta_batch_add(meta_batch *b, size_t n, const uint64_t *ids,
			const rvf_meta_field *meta, const size_t *meta_start,
			rvf_error *err);
/* Rows with fields added so far. */
size_t meta_batch_rows(const meta_batch *b);
/* Rows with no fields for ids: their records are emptied (ids without a
 * record are skipped). */
rvf_code meta_batch_clear(meta_batch *b, size_t n, const uint64_t *ids,
			  rvf_error *err);
/* Encodes the batch against its base.  The batch may be freed afterwards
 * whatever the result. */
rvf_code meta_batch_finish(meta_batch *b, unsigned flags, meta_write *out,
			   rvf_error *err);
void meta_batch_free(meta_batch *b);

/* meta_batch_new + add + finish in one call. */
rvf_code meta_encode_rows(const meta_table *base, size_t n,
			  const uint64_t *ids, const rvf_meta_field *meta,
			  const size_t *meta_start, unsigned flags,
			  meta_write *out, rvf_error *err);

/* Delete-records for those of ids[n] (any order, repeats allowed) that have
 * a record in base; nothing to write when none has. */
rvf_code meta_encode_delete(const meta_table *base, size_t n,
			    const uint64_t *ids, unsigned flags,
			    meta_write *out, rvf_error *err);

/* A full snapshot of base restricted to the ids keep() accepts (keep NULL:
 * all), e.g. the live ids at compaction.  Nothing to write when base never
 * had a generation (it then holds nothing to keep). */
typedef bool (*meta_keep_fn)(void *ctx, uint64_t id);
rvf_code meta_encode_snapshot(const meta_table *base, meta_keep_fn keep,
			      void *ctx, meta_write *out, rvf_error *err);

/* Whether [s, s+n) is well-formed UTF-8 (no overlongs, no surrogates):
 * what a META string may hold (meta_batch.c). */
bool meta_utf8_valid(const unsigned char *s, size_t n);

#endif
