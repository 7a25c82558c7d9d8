/* delete.c - soft deletes: JOURNAL + WITNESS (+ META) + MANIFEST.
 *
 * As in the reference, only ids that exist and are live enter the
 * manifest's deletion list, and they stay deleted until compaction even if
 * re-ingested.  In a branch child an inherited id is hidden by clearing its
 * membership bit instead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <zlib.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "io.h"
#include "segment.h"
#include "sort.h"
#include "filter.h"
#include "store.h"

static unsigned char *journal_encode(const uint64_t *ids, size_t n,
				     uint32_t epoch, size_t *len)
{
	*len = 16 + 12 * n;
	unsigned char *p = calloc(1, *len);
	if (!p)
		return NULL;
	st32(p, (uint32_t)n);
	st32(p + 4, epoch);
	for (size_t i = 0; i < n; i++) {
		unsigned char *e = p + 16 + 12 * i;
		e[0] = 0x01; /* DELETE_VECTOR */
		st16(e + 2, 8);
		st64(e + 4, ids[i]);
	}
	return p;
}

/* Merges the ascending ids add[n] into the sorted deletion list of the
 * new manifest: O(list + n), however often one id at a time comes. */
static rvf_code merge_deleted(commit *c, const uint64_t *add, size_t n,
			      rvf_error *err)
{
	manifest *m = &c->next;
	if (!n)
		return RVF_OK;
	uint64_t *d = malloc((m->deleted_len + n) * sizeof(uint64_t));
	if (!d)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	/* the runs of the old list between added ids are copied whole: one
	 * `rm` adds one id to a list of thousands */
	size_t i = 0, j = 0, w = 0;
	while (j < n) {
		size_t lo = i, hi = m->deleted_len;
		while (lo < hi) { /* first old id >= add[j] */
			size_t mid = lo + (hi - lo) / 2;
			if (m->deleted[mid] < add[j])
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo > i)
			memcpy(d + w, m->deleted + i, (lo - i) * sizeof(uint64_t));
		w += lo - i;
		i = lo;
		d[w++] = add[j++];
	}
	if (m->deleted_len > i)
		memcpy(d + w, m->deleted + i, (m->deleted_len - i) * sizeof(uint64_t));
	w += m->deleted_len - i;
	if (c->deleted_owned)
		free(m->deleted);
	m->deleted = d;
	m->deleted_len = (uint32_t)w;
	c->deleted_owned = true;
	return RVF_OK;
}

/* Appends the journal of ids[n]: a new JOURNAL segment, or, for a deferred
 * delete right after another, more entries in the same one. */
static rvf_code append_journal(commit *c, const uint64_t *ids, size_t n,
			       rvf_error *err)
{
	rvf_store *s = c->s;
	if (!commit_tail_usable(c, RVF_SEG_JOURNAL) ||
	    (uint64_t)s->tail.count + n > UINT32_MAX ||
	    s->tail.payload_length != 16 + 12 * (uint64_t)s->tail.count) {
		size_t jlen;
		unsigned char *j = journal_encode(ids, n, c->next.epoch, &jlen);
		if (!j)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		uint64_t at = s->end, id = s->next_seg_id;
		rvf_code rc = commit_append(c, RVF_SEG_JOURNAL, j, jlen, err);
		if (rc == RVF_OK && !c->durable) {
			s->tail.open = true;
			s->tail.type = RVF_SEG_JOURNAL;
			s->tail.offset = at;
			s->tail.seg_id = id;
			s->tail.payload_length = jlen;
			s->tail.count = (uint32_t)n;
			s->tail.crc = crc32_update(0, j + 16, jlen - 16);
		}
		free(j);
		return rc;
	}
	size_t elen;
	unsigned char *j = journal_encode(ids, n, c->next.epoch, &elen);
	if (!j)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	rvf_code rc = commit_tail_save(c, 16, err);
	uint32_t count = s->tail.count + (uint32_t)n;
	uint64_t plen = 16 + 12 * (uint64_t)count;
	uint32_t crc = (uint32_t)crc32_combine(s->tail.crc,
					       crc32_update(0, j + 16, elen - 16),
					       (z_off_t)(elen - 16));
	/* header and prefix are adjacent: one write */
	unsigned char head[RVF_SEGMENT_HEADER_SIZE + 16] = { 0 };
	unsigned char *hdr = head, *prefix = head + RVF_SEGMENT_HEADER_SIZE;
	st32(prefix, count);
	st32(prefix + 4, c->next.epoch);
	uint8_t hash[16];
	content_hash_from_crc((uint32_t)crc32_combine(crc32_update(0, prefix, 16), crc,
						      (z_off_t)(plen - 16)), hash);
	segment_encode(hdr, RVF_SEG_JOURNAL, s->tail.seg_id, plen, hash);
	if (rc == RVF_OK &&
	    (io_pwrite_all(s->fd, j + 16, elen - 16, (off_t)s->end) != 0 ||
	     io_pwrite_all(s->fd, head, sizeof(head), (off_t)s->tail.offset) != 0))
		rc = rvf_fail_io(err, errno, "cannot append to %s", s->path);
	free(j);
	if (rc != RVF_OK)
		return rc;
	s->end += elen - 16;
	commit_tail_grown(c, plen);
	s->tail.payload_length = plen;
	s->tail.count = count;
	s->tail.crc = crc;
	return RVF_OK;
}

/* A branch child's id leaves its membership bitmap (copied from the
 * base's at the first one). */
static rvf_code drop_from_membership(commit *c, uint64_t id, rvf_error *err)
{
	const rvf_view *b = c->base;
	if (!c->membership) {
		size_t len = (size_t)(8 * ((b->cow.capacity_bits + 63) / 64));
		c->membership = malloc(len ? len : 1);
		if (!c->membership)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		memcpy(c->membership, b->cow.bitmap, len);
	}
	c->membership[id / 8] &= (unsigned char)~(1u << (id % 8));
	return RVF_OK;
}

/* What deleting the ids (ascending, repeats allowed) changes: own live
 * rows join fresh (ascending), a branch child's ids leave its membership;
 * *deleted counts the ids that were there to delete. */
static rvf_code sort_out_ids(commit *c, const uint64_t *sorted, size_t n,
			     uint64_t *fresh, size_t *nfresh, uint64_t *deleted,
			     rvf_error *err)
{
	const rvf_view *b = c->base;
	for (size_t i = 0; i < n; i++) {
		uint64_t id = sorted[i];
		if (i && sorted[i - 1] == id)
			continue;
		bool own_live = view_own_row(b, id) && !view_is_deleted(b, id);
		bool visible = rvf_view_find(b, id) >= 0;
		if (own_live)
			fresh[(*nfresh)++] = id;
		if (b->is_branch && id < b->cow.capacity_bits &&
		    drop_from_membership(c, id, err) != RVF_OK)
			return RVF_E_NO_MEMORY;
		if (own_live || visible)
			(*deleted)++;
	}
	return RVF_OK;
}

/* Forget the ids' metadata, so an id reused after any compaction (ours or
 * the reference's) starts clean. */
static rvf_code forget_metadata(commit *c, const uint64_t *sorted, size_t n,
				rvf_error *err)
{
	meta_write w = { 0 };
	rvf_code rc = meta_encode_delete(c->base->meta, n, sorted, 0, &w, err);
	if (rc == RVF_OK && w.payload)
		rc = commit_append(c, RVF_SEG_META, w.payload, w.len, err);
	if (rc == RVF_OK && w.payload) {
		c->meta = w.table;
		w.table = NULL;
	}
	meta_write_release(&w);
	return rc;
}

rvf_code rvf_store_delete(rvf_store *s, size_t n, const uint64_t *ids,
			  rvf_commit_info *info, rvf_error *err)
{
	commit c;
	rvf_code rc = commit_begin(s, &c, err);
	if (rc != RVF_OK)
		return rc;
	uint64_t *sorted = NULL, *fresh = NULL;
	size_t nfresh = 0;
	uint64_t deleted = 0;
	if (n > UINT32_MAX) {
		rc = rvf_fail(err, RVF_E_TOO_LARGE, "too many ids in one delete");
		goto out;
	}
	c.next.epoch = c.base->info.epoch + 1;
	sorted = malloc((n ? n : 1) * sizeof(uint64_t));
	fresh = malloc((n ? n : 1) * sizeof(uint64_t));
	if (!sorted || !fresh) {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		goto out;
	}
	if (n) {
		memcpy(sorted, ids, n * sizeof(uint64_t));
		qsort(sorted, n, sizeof(uint64_t), cmp_u64);
	}
	rc = sort_out_ids(&c, sorted, n, fresh, &nfresh, &deleted, err);
	if (rc == RVF_OK)
		rc = merge_deleted(&c, fresh, nfresh, err);
	/* The journal lists the ids as given, like the reference's. */
	if (rc == RVF_OK)
		rc = append_journal(&c, ids, n, err);
	if (rc == RVF_OK)
		rc = forget_metadata(&c, sorted, n, err);
	if (rc == RVF_OK) {
		commit_drop_type(&c, RVF_SEG_INDEX);
		rc = commit_record(&c, 0, "delete", deleted, err);
	}
out:
	free(fresh);
	free(sorted);
	if (rc != RVF_OK) {
		commit_abort(&c);
		return rc;
	}
	rc = commit_finish(&c, info, err);
	if (info)
		info->accepted = deleted;
	return rc;
}

rvf_code rvf_store_delete_filter(rvf_store *s, const rvf_filter *f,
				 rvf_commit_info *info, rvf_error *err)
{
	rvf_view *v = rvf_store_view(s);
	uint64_t *ids = NULL;
	size_t n = 0;
	rvf_code rc = RVF_OK;
	if (info)
		memset(info, 0, sizeof(*info));
	/* Only own live rows, as the reference (never inherited ones). */
	ids = malloc((v->nown ? v->nown : 1) * sizeof(uint64_t));
	if (!ids) {
		rvf_view_release(v);
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	}
	for (size_t i = 0; i < v->nown; i++) {
		uint64_t id = v->own[i].id;
		if (!view_is_deleted(v, id) && filter_match(f, v->meta, id))
			ids[n++] = id;
	}
	if (n == 0) {
		/* Nothing matched: the reference writes nothing either. */
		rc = store_check_writable(s, err);
		if (info)
			info->epoch = v->info.epoch;
	} else {
		rc = rvf_store_delete(s, n, ids, info, err);
	}
	free(ids);
	rvf_view_release(v);
	return rc;
}
