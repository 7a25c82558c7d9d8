/* ingest.c - streaming ingest: rows go to the file as they come, in VEC
 * segments of at most 256 MiB, and become visible together at commit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bytes.h"
#include "error.h"
#include "sort.h"
#include "hash.h"
#include "io.h"
#include "segment.h"
#include "store.h"

#define WRITE_BUFFER (4u << 20)
/* The buffer starts small and doubles up to WRITE_BUFFER: most ingests are
 * a few rows (a write into the mount, one rvfctl call), and 4 MiB touched
 * fresh at every commit costs page faults (under ASan, each malloc of it is
 * a new mapping whose shadow is written at malloc and free: 2.5 ms). */
#define FIRST_BUFFER (64u << 10)

struct rvf_ingest {
	commit c;
	uint32_t dim;
	size_t stride;            /* bytes per row: id + components */
	uint64_t rows;

	/* the VEC segment being written */
	bool seg_open;
	bool seg_grows;           /* it is the store's deferred tail, grown */
	uint64_t seg_offset;
	uint64_t seg_id;
	uint32_t seg_rows;
	uint32_t seg_crc;         /* CRC of the rows written so far */
	uint64_t seg_max_rows;
	uint64_t write_pos;       /* next file offset for row bytes */
	unsigned char *buf;
	size_t buf_len, buf_cap;

	uint64_t *ids;            /* every id added, for the manifest total */
	size_t nids, ids_cap;
	bool have_max;
	uint64_t max_id;          /* for assigning ids */
	meta_batch *meta;         /* NULL until a row brings metadata */
};

rvf_code rvf_ingest_begin(rvf_store *s, rvf_ingest **out, rvf_error *err)
{
	rvf_ingest *t = calloc(1, sizeof(*t));
	if (!t)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	rvf_code rc = commit_begin(s, &t->c, err);
	if (rc == RVF_OK && t->c.base->info.dimension == 0) {
		commit_abort(&t->c);
		free(t);
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"the store has dimension 0: it cannot hold vectors");
	}
	if (rc != RVF_OK) {
		free(t);
		return rc;
	}
	t->buf_cap = FIRST_BUFFER;
	t->buf = malloc(t->buf_cap);
	if (!t->buf) {
		commit_abort(&t->c);
		free(t);
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	}
	t->dim = t->c.base->info.dimension;
	t->stride = 8 + 4 * (size_t)t->dim;
	t->seg_max_rows = (RVF_MAX_PAYLOAD - 6) / t->stride;
	t->have_max = rvf_view_max_id(t->c.base, &t->max_id);
	/* ids open streams reserved are theirs (write_mu is ours) */
	if (s->have_stream_ids && s->stream_next_id &&
	    (!t->have_max || s->stream_next_id - 1 > t->max_id)) {
		t->max_id = s->stream_next_id - 1;
		t->have_max = true;
	}
	*out = t;
	return RVF_OK;
}

commit *ingest_commit(rvf_ingest *t)
{
	return &t->c;
}

uint64_t rvf_ingest_rows(const rvf_ingest *t)
{
	return t->rows;
}

static rvf_code flush_buffer(rvf_ingest *t, rvf_error *err)
{
	if (!t->buf_len)
		return RVF_OK;
	/* the buffer holds rows of the open segment only (close_segment
	 * flushes): one CRC call per buffer, not one per row */
	t->seg_crc = crc32_update(t->seg_crc, t->buf, t->buf_len);
	if (io_pwrite_all(t->c.s->fd, t->buf, t->buf_len, (off_t)t->write_pos) != 0)
		return rvf_fail_io(err, errno, "cannot append to %s", t->c.s->path);
	t->write_pos += t->buf_len;
	t->buf_len = 0;
	return RVF_OK;
}

/* Room for one more row: a larger buffer while it is below WRITE_BUFFER,
 * else the rows written out (the same writes as a full-size buffer). */
static rvf_code make_room(rvf_ingest *t, rvf_error *err)
{
	if (t->buf_cap >= WRITE_BUFFER)
		return flush_buffer(t, err);
	size_t cap = t->buf_cap;
	while (cap < t->buf_len + t->stride && cap < WRITE_BUFFER)
		cap *= 2;
	if (cap > WRITE_BUFFER)
		cap = WRITE_BUFFER;
	unsigned char *buf = realloc(t->buf, cap);
	if (!buf)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	t->buf = buf;
	t->buf_cap = cap;
	if (t->buf_len + t->stride > cap)
		return flush_buffer(t, err);
	return RVF_OK;
}

/* Writes the header and row count of the open VEC segment. */
static rvf_code close_segment(rvf_ingest *t, rvf_error *err)
{
	if (!t->seg_open)
		return RVF_OK;
	rvf_code rc = flush_buffer(t, err);
	if (rc != RVF_OK)
		return rc;
	/* header and prefix are adjacent: one write */
	unsigned char head[RVF_SEGMENT_HEADER_SIZE + 6];
	unsigned char *hdr = head, *prefix = head + RVF_SEGMENT_HEADER_SIZE;
	st16(prefix, (uint16_t)t->dim);
	st32(prefix + 2, t->seg_rows);
	uint64_t rows_len = (uint64_t)t->seg_rows * t->stride;
	/* The CRC covers the count, known only now: combine it in. */
	uint32_t crc = crc32_update(0, prefix, 6);
	crc = (uint32_t)crc32_combine(crc, t->seg_crc, (z_off_t)rows_len);
	uint8_t hash[16];
	content_hash_from_crc(crc, hash);
	uint64_t plen = 6 + rows_len;
	segment_encode(hdr, RVF_SEG_VEC, t->seg_id, plen, hash);
	rvf_store *s = t->c.s;
	if (io_pwrite_all(s->fd, head, sizeof(head), (off_t)t->seg_offset) != 0)
		return rvf_fail_io(err, errno, "cannot append to %s", s->path);
	if (t->seg_grows)
		commit_tail_grown(&t->c, plen);
	else
		rc = commit_push_entry(&t->c, RVF_SEG_VEC, t->seg_id, t->seg_offset,
				       plen, err);
	s->end = t->seg_offset + RVF_SEGMENT_HEADER_SIZE + plen;
	t->seg_open = false;
	if (!t->c.durable && rc == RVF_OK) {
		/* the next deferred ingest may grow it */
		s->tail.open = true;
		s->tail.type = RVF_SEG_VEC;
		s->tail.offset = t->seg_offset;
		s->tail.seg_id = t->seg_id;
		s->tail.payload_length = plen;
		s->tail.count = t->seg_rows;
		s->tail.crc = t->seg_crc;
	}
	return rc;
}

static rvf_code open_segment(rvf_ingest *t, rvf_error *err)
{
	rvf_store *s = t->c.s;
	if (!t->c.tail_grown && commit_tail_usable(&t->c, RVF_SEG_VEC) &&
	    s->tail.count < t->seg_max_rows &&
	    s->tail.payload_length == 6 + (uint64_t)s->tail.count * t->stride) {
		/* Grow the deferred tail: rows go after its last one. */
		rvf_code rc = commit_tail_save(&t->c, 6, err);
		if (rc != RVF_OK)
			return rc;
		t->seg_open = true;
		t->seg_grows = true;
		t->seg_offset = s->tail.offset;
		t->seg_id = s->tail.seg_id;
		t->seg_rows = s->tail.count;
		t->seg_crc = s->tail.crc;
		t->write_pos = s->end;
		return RVF_OK;
	}
	t->seg_grows = false;
	t->seg_open = true;
	t->seg_offset = s->end;
	t->seg_id = s->next_seg_id++;
	t->seg_rows = 0;
	t->seg_crc = 0;
	t->write_pos = s->end + RVF_SEGMENT_HEADER_SIZE + 6;
	/* Until closed, s->end marks where the segment began; a failure
	 * truncates back to the commit's start anyway. */
	return RVF_OK;
}

static rvf_code remember_ids(rvf_ingest *t, size_t n, const uint64_t *ids,
			     rvf_error *err)
{
	if (t->nids + n > t->ids_cap) {
		size_t cap = t->ids_cap ? t->ids_cap * 2 : 4096;
		while (cap < t->nids + n)
			cap *= 2;
		uint64_t *p = realloc(t->ids, cap * sizeof(uint64_t));
		if (!p)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		t->ids = p;
		t->ids_cap = cap;
	}
	if (n)
		memcpy(t->ids + t->nids, ids, n * sizeof(uint64_t));
	t->nids += n;
	return RVF_OK;
}

rvf_code rvf_ingest_clear_metadata(rvf_ingest *t, size_t n, const uint64_t *ids,
				   rvf_error *err)
{
	if (!t || (n && !ids))
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "no ids given");
	if (!t->meta) {
		t->meta = meta_batch_new(t->c.base->meta, err);
		if (!t->meta)
			return err ? err->code : RVF_E_NO_MEMORY;
	}
	return meta_batch_clear(t->meta, n, ids, err);
}

rvf_code rvf_ingest_add(rvf_ingest *t, size_t n, const uint64_t *ids,
			const float *vectors, const rvf_meta_field *meta,
			const size_t *meta_start, rvf_error *err)
{
	rvf_code rc = RVF_OK;
	uint64_t *assigned = NULL;
	if (!ids && n) {
		/* Ids continue after the largest the store ever used, so a new
		 * row can never land on a deleted (and so invisible) id. */
		uint64_t first = t->have_max ? t->max_id + 1 : 0;
		if (t->have_max && (t->max_id == UINT64_MAX ||
				    UINT64_MAX - first < n - 1))
			return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					"no ids left to assign after %llu",
					(unsigned long long)t->max_id);
		assigned = malloc(n * sizeof(uint64_t));
		if (!assigned)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		for (size_t i = 0; i < n; i++)
			assigned[i] = first + i;
		ids = assigned;
	}
	if (meta && meta_start && meta_start[n] > meta_start[0]) {
		if (!t->meta) {
			t->meta = meta_batch_new(t->c.base->meta, err);
			if (!t->meta) {
				rc = err ? err->code : RVF_E_NO_MEMORY;
				goto out;
			}
		}
		rc = meta_batch_add(t->meta, n, ids, meta, meta_start, err);
		if (rc != RVF_OK)
			goto out;
	}
	rc = remember_ids(t, n, ids, err);
	if (rc != RVF_OK)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!t->seg_open) {
			rc = open_segment(t, err);
			if (rc != RVF_OK)
				goto out;
		}
		if (t->buf_len + t->stride > t->buf_cap) {
			rc = make_room(t, err);
			if (rc != RVF_OK)
				goto out;
		}
		unsigned char *row = t->buf + t->buf_len;
		st64(row, ids[i]);
		memcpy(row + 8, vectors + i * t->dim, 4 * (size_t)t->dim);
		t->buf_len += t->stride;
		t->seg_rows++;
		if (!t->have_max || ids[i] > t->max_id) {
			t->max_id = ids[i];
			t->have_max = true;
		}
		if (t->seg_rows == t->seg_max_rows) {
			rc = close_segment(t, err);
			if (rc != RVF_OK)
				goto out;
		}
	}
	t->rows += n;
out:
	free(assigned);
	return rc;
}

static void ingest_free(rvf_ingest *t)
{
	if (t->meta)
		meta_batch_free(t->meta);
	free(t->ids);
	free(t->buf);
	free(t);
}

void rvf_ingest_abort(rvf_ingest *t)
{
	if (!t)
		return;
	commit_abort(&t->c);
	ingest_free(t);
}

rvf_code rvf_ingest_commit(rvf_ingest *t, rvf_commit_info *info,
			   rvf_error *err)
{
	commit *c = &t->c;
	rvf_code rc;
	if (info)
		memset(info, 0, sizeof(*info));
	if (t->rows == 0) {
		/* The reference writes nothing for an empty batch. */
		if (info)
			info->epoch = c->base->info.epoch;
		rvf_ingest_abort(t);
		return RVF_OK;
	}
	rc = close_segment(t, err);
	if (rc != RVF_OK)
		goto fail;
	/* Manifest total = distinct own ids, deleted ones included. */
	if (t->nids)
		qsort(t->ids, t->nids, sizeof(uint64_t), cmp_u64);
	uint64_t fresh = 0;
	for (size_t i = 0; i < t->nids; i++) {
		if (i && t->ids[i] == t->ids[i - 1])
			continue;
		if (!view_own_row(c->base, t->ids[i]))
			fresh++;
	}
	c->next.total_vectors = view_total_rows(c->base) + fresh;
	c->next.epoch = c->base->info.epoch + 1;
	/* Vectors changed: an INDEX would be stale (the reference rebuilds). */
	commit_drop_type(c, RVF_SEG_INDEX);
	if (t->meta) {
		meta_write w = { 0 };
		rc = meta_batch_finish(t->meta, 0, &w, err);
		t->meta = NULL;
		if (rc == RVF_OK && w.payload)
			rc = commit_append(c, RVF_SEG_META, w.payload, w.len, err);
		if (rc == RVF_OK) {
			c->meta = w.table;
			w.table = NULL;
		}
		meta_write_release(&w);
		if (rc != RVF_OK)
			goto fail;
	}
	rc = commit_record(c, 1, "ingest", t->rows, err);
	if (rc != RVF_OK)
		goto fail;
	uint64_t rows = t->rows;
	rc = commit_finish(c, info, err);
	if (info)
		info->accepted = rows;
	ingest_free(t);
	return rc;
fail:
	rvf_ingest_abort(t);
	return rc;
}

rvf_code rvf_store_ingest(rvf_store *s, size_t n, const uint64_t *ids,
			  const float *vectors, const rvf_meta_field *meta,
			  const size_t *meta_start, rvf_commit_info *info,
			  rvf_error *err)
{
	rvf_ingest *t;
	rvf_code rc = rvf_ingest_begin(s, &t, err);
	if (rc != RVF_OK)
		return rc;
	rc = rvf_ingest_add(t, n, ids, vectors, meta, meta_start, err);
	if (rc != RVF_OK) {
		rvf_ingest_abort(t);
		return rc;
	}
	return rvf_ingest_commit(t, info, err);
}
