/* compact.c - rewriting a store without its deleted rows.
 *
 * Layout of the reference's compaction (§5.1): live rows first, in the order
 * their ids were first inserted, then the preserved segments in file order
 * with their old ids, then a manifest that does not list itself, and after
 * it a witness that the next manifest will list.  Written to a temporary
 * file, fsynced, renamed over the store and the directory fsynced.
 *
 * Where we differ, for correctness: we preserve only segments the current
 * directory lists (the reference byte-scans and would revive superseded
 * kernels and torn leftovers), metadata is rewritten as one snapshot of the
 * live ids, and more than 256 MiB of rows are split over several VEC
 * segments (the reference would write one its own reader refuses). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "bytes.h"
#include "dtype.h"
#include "error.h"
#include "hash.h"
#include "io.h"
#include "segment.h"
#include "store.h"

#define WRITE_BUFFER (4u << 20)

typedef struct writer {
	int fd;
	const char *path;       /* for messages */
	uint64_t pos;
	unsigned char *buf;
	size_t len;
} writer;

static int wflush(writer *w)
{
	if (w->len && io_pwrite_all(w->fd, w->buf, w->len, (off_t)(w->pos - w->len)) != 0)
		return -1;
	w->len = 0;
	return 0;
}

static int wput(writer *w, const void *p, size_t n)
{
	if (n > WRITE_BUFFER) {
		if (wflush(w) != 0 || io_pwrite_all(w->fd, p, n, (off_t)w->pos) != 0)
			return -1;
		w->pos += n;
		return 0;
	}
	if (w->len + n > WRITE_BUFFER && wflush(w) != 0)
		return -1;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	w->pos += n;
	return 0;
}

typedef struct live_row {
	size_t first;           /* first-insertion position */
	const search_row *row;
} live_row;

static int cmp_first(const void *a, const void *b)
{
	const live_row *x = a, *y = b;
	return x->first < y->first ? -1 : x->first > y->first;
}

/* Live own rows in first-insertion ("slab") order. */
static rvf_code live_rows_in_slab_order(const rvf_view *v, live_row **out,
					size_t *n, rvf_error *err)
{
	size_t *first = malloc((v->nown ? v->nown : 1) * sizeof(size_t));
	if (!first)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	for (size_t i = 0; i < v->nown; i++)
		first[i] = SIZE_MAX;
	size_t seq = 0;
	for (uint32_t d = 0; d < v->man.dir_len; d++) {
		const rvf_segment *s = &v->dir[d];
		if (s->type != RVF_SEG_VEC)
			continue;
		const unsigned char *p = v->map->base + s->offset + RVF_SEGMENT_HEADER_SIZE;
		uint32_t dim = ld16(p), count = ld32(p + 2);
		if (dim != v->info.dimension ||
		    /* converted rows (dtype.c) follow, in id order */
		    vec_is_block_layout(p, s->payload_length, dim))
			continue;
		size_t stride = 8 + 4 * (size_t)dim;
		for (uint32_t k = 0; k < count; k++, seq++) {
			const search_row *r = view_own_row(v, ld64(p + 6 + k * stride));
			size_t idx = (size_t)(r - v->own);
			if (first[idx] == SIZE_MAX)
				first[idx] = seq;
		}
	}
	live_row *rows = malloc((v->nown ? v->nown : 1) * sizeof(live_row));
	if (!rows) {
		free(first);
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	}
	size_t w = 0;
	for (size_t i = 0; i < v->nown; i++)
		if (!view_is_deleted(v, v->own[i].id))
			rows[w++] = (live_row){ .first = first[i], .row = &v->own[i] };
	free(first);
	qsort(rows, w, sizeof(live_row), cmp_first);
	*out = rows;
	*n = w;
	return RVF_OK;
}

static bool keep_live(void *ctx, uint64_t id)
{
	const rvf_view *v = ctx;
	return view_own_row(v, id) && !view_is_deleted(v, id);
}

/* Writes VEC segments holding rows[0..n) from w->pos, recording entries. */
static rvf_code write_rows(writer *w, const rvf_view *v, const live_row *rows,
			   size_t n, manifest *m, uint64_t *next_id,
			   rvf_error *err)
{
	uint32_t dim = v->info.dimension;
	size_t stride = 8 + 4 * (size_t)dim;
	size_t per_seg = (RVF_MAX_PAYLOAD - 6) / stride;
	for (size_t at = 0; at < n; at += per_seg) {
		size_t cnt = n - at < per_seg ? n - at : per_seg;
		uint64_t plen = 6 + (uint64_t)cnt * stride;
		unsigned char prefix[6];
		st16(prefix, (uint16_t)dim);
		st32(prefix + 2, (uint32_t)cnt);
		uint32_t crc = crc32_update(0, prefix, 6);
		unsigned char idb[8];
		for (size_t i = 0; i < cnt; i++) {
			st64(idb, rows[at + i].row->id);
			crc = crc32_update(crc, idb, 8);
			crc = crc32_update(crc, rows[at + i].row->data, 4 * (size_t)dim);
		}
		uint8_t hash[16];
		content_hash_from_crc(crc, hash);
		unsigned char hdr[RVF_SEGMENT_HEADER_SIZE];
		uint64_t id = (*next_id)++;
		segment_encode(hdr, RVF_SEG_VEC, id, plen, hash);
		m->dir[m->dir_len++] = (dir_entry){ .seg_id = id, .offset = w->pos,
						    .payload_length = plen,
						    .type = RVF_SEG_VEC };
		if (wput(w, hdr, sizeof(hdr)) || wput(w, prefix, 6))
			return rvf_fail_io(err, errno, "cannot write %s", w->path);
		for (size_t i = 0; i < cnt; i++) {
			st64(idb, rows[at + i].row->id);
			if (wput(w, idb, 8) ||
			    wput(w, rows[at + i].row->data, 4 * (size_t)dim))
				return rvf_fail_io(err, errno, "cannot write %s", w->path);
		}
	}
	return RVF_OK;
}

static bool preserved_type(uint8_t t)
{
	return t != RVF_SEG_VEC && t != RVF_SEG_MANIFEST && t != RVF_SEG_JOURNAL &&
	       t != RVF_SEG_INDEX && t != RVF_SEG_META && t != RVF_SEG_SIGNATURE;
}

rvf_code rvf_store_compact(rvf_store *s, rvf_commit_info *info, rvf_error *err)
{
	commit c;
	rvf_code rc = commit_begin(s, &c, err);
	if (rc != RVF_OK)
		return rc;
	const rvf_view *v = c.base;
	live_row *rows = NULL;
	size_t nlive = 0;
	io_temp tmp = { .fd = -1 };
	char *what = NULL;      /* the temporary file, for messages */
	writer w = { .fd = -1 };
	manifest m = v->man;
	m.dir = NULL;
	m.deleted = NULL;
	m.deleted_len = 0;
	meta_write mw = { 0 };
	int fd = -1;

	if (info)
		memset(info, 0, sizeof(*info));
	rc = live_rows_in_slab_order(v, &rows, &nlive, err);
	if (rc != RVF_OK)
		goto fail;
	uint64_t dead = v->nown - nlive;
	size_t stride = 8 + 4 * (size_t)v->info.dimension;
	size_t nvec = nlive ? (nlive + (RVF_MAX_PAYLOAD - 6) / stride - 1) /
			      ((RVF_MAX_PAYLOAD - 6) / stride) : 0;
	m.dir = malloc((nvec + v->man.dir_len + s->npending + 2) * sizeof(dir_entry));
	w.buf = malloc(WRITE_BUFFER);
	if (asprintf(&what, "the compacted copy of %s", s->path) < 0)
		what = NULL;
	if (!m.dir || !w.buf || !what) {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		goto fail;
	}
	/* Never a predictable name someone could plant a symlink at. */
	if (io_temp_create(&tmp, s->path) != 0) {
		rc = rvf_fail_io(err, errno, "cannot create a temporary file beside %s",
				 s->path);
		goto fail;
	}
	fd = tmp.fd;
	w.fd = fd;
	w.path = what;
	m.dir_len = 0;
	uint64_t next_id = 1;
	rc = write_rows(&w, v, rows, nlive, &m, &next_id, err);
	if (rc != RVF_OK)
		goto fail;

	/* Preserved segments, verbatim and with their ids, in file order. */
	for (size_t i = 0; i < v->nsorted; i++) {
		const rvf_segment *seg = &v->sorted[i];
		if (!seg->listed || !seg->readable ||
		    (!preserved_type(seg->type) &&
		     /* JSON META documents are not vector metadata: keep them */
		     !(seg->type == RVF_SEG_META && rvf_segment_is_json(v, seg))))
			continue;
		uint64_t total = RVF_SEGMENT_HEADER_SIZE + seg->payload_length;
		m.dir[m.dir_len++] = (dir_entry){ .seg_id = seg->id, .offset = w.pos,
						  .payload_length = seg->payload_length,
						  .type = seg->type };
		if (seg->id >= next_id)
			next_id = seg->id + 1;
		if (wput(&w, v->map->base + seg->offset, (size_t)total)) {
			rc = rvf_fail_io(err, errno, "cannot write %s", w.path);
			goto fail;
		}
	}
	/* Metadata of the live ids, as one snapshot. */
	rc = meta_encode_snapshot(v->meta, keep_live, (void *)v, &mw, err);
	if (rc != RVF_OK)
		goto fail;
	if (mw.payload) {
		uint8_t hash[16];
		unsigned char hdr[RVF_SEGMENT_HEADER_SIZE];
		rvf_content_hash(mw.payload, mw.len, hash);
		segment_encode(hdr, RVF_SEG_META, next_id, mw.len, hash);
		m.dir[m.dir_len++] = (dir_entry){ .seg_id = next_id, .offset = w.pos,
						  .payload_length = mw.len,
						  .type = RVF_SEG_META };
		next_id++;
		if (wput(&w, hdr, sizeof(hdr)) || wput(&w, mw.payload, mw.len)) {
			rc = rvf_fail_io(err, errno, "cannot write %s", w.path);
			goto fail;
		}
	}
	m.epoch = v->info.epoch + 1;
	m.total_vectors = nlive;
	size_t mlen;
	unsigned char *mp = manifest_encode(&m, &mlen);
	if (!mp) {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		goto fail;
	}
	uint8_t hash[16];
	unsigned char hdr[RVF_SEGMENT_HEADER_SIZE];
	rvf_content_hash(mp, mlen, hash);
	segment_encode(hdr, RVF_SEG_MANIFEST, next_id++, mlen, hash);
	int bad = wput(&w, hdr, sizeof(hdr)) || wput(&w, mp, mlen) || wflush(&w);
	free(mp);
	if (bad || io_fsync(fd) != 0) {
		rc = rvf_fail_io(err, errno, "cannot write %s", w.path);
		goto fail;
	}
	/* The new file keeps the store's mode, owner and group. */
	if (io_temp_replace(&tmp, s->fd, s->path) != 0) {
		rc = errno == EPERM ?
		     rvf_fail_io(err, errno, "cannot give the compacted file the owner and group of %s (run the compaction as its owner or root)",
				 s->path) :
		     rvf_fail_io(err, errno, "cannot put the compacted file in place of %s",
				 s->path);
		goto fail;
	}
	io_temp_discard(&tmp, true);
	if (io_fsync_dir_of(s->path) != 0) {
		/* Renamed but the directory entry may not be durable yet; the
		 * file itself is complete, so go on and report nothing. */
	}
	/* Committed (deferred changes included: they were in the view).
	 * Switch the store to the new file. */
	s->dirty = false;
	s->tail.open = false;
	s->txn_changes = 0;
	s->txn_ingested = s->txn_deleted = 0;
	close(s->fd);
	s->fd = fd;
	fd = -1;
	s->end = w.pos;
	s->durable_end = w.pos;
	s->next_seg_id = next_id;
	s->npending = 0;
	map_unref(s->map);
	s->map = map_file(s->fd, s->end, err);
	rvf_view *nv = NULL;
	if (!s->map) {
		rc = err ? err->code : RVF_E_IO;
	} else {
		rc = view_build(s->map, s->end, s->path, NULL, 0, 0,
				mw.table ? mw.table : v->meta, &nv, err);
	}
	if (rc != RVF_OK) {
		/* The file is compacted but we cannot show it: stay consistent by
		 * refusing further writes on this handle. */
		s->read_only = true;
		goto out;
	}
	nv->info.read_only = s->read_only;
	s->generation++; /* offsets and segment names change */
	store_publish(s, nv);
	/* A new witness chain starts after compaction (reference §5.1). */
	s->witness_started = false;
	c.start = s->end;
	c.next.dir_len = 0;
	char action[160];
	snprintf(action, sizeof(action),
		 "compact:segments_compacted=%llu,bytes_reclaimed=%llu,epoch=%u",
		 (unsigned long long)dead,
		 (unsigned long long)(dead * 4 * v->info.dimension), m.epoch);
	rc = commit_witness(&c, 1, action, err);
	if (rc == RVF_OK && io_fsync(s->fd) != 0)
		rc = rvf_fail_io(err, errno, "cannot fsync %s", s->path);
	if (rc == RVF_OK) {
		/* The trailing witness is listed by the next manifest. */
		free(s->pending);
		s->pending = malloc(sizeof(dir_entry));
		if (s->pending) {
			s->pending[0] = c.next.dir[0];
			s->npending = 1;
		}
		/* Let the view cover the witness bytes too. */
		rvf_view *wv = NULL;
		if (s->end <= s->map->capacity &&
		    view_build(s->map, s->end, s->path, nv, UINT64_MAX, 0, nv->meta,
			       &wv, NULL) == RVF_OK) {
			wv->info.read_only = s->read_only;
			store_publish(s, wv);
		}
	} else {
		/* The compaction itself is committed; only the witness failed.
		 * Bytes that cannot be cut off stay (no manifest among them):
		 * append after them. */
		struct stat st;
		if (io_ftruncate(s->fd, (off_t)c.start) == 0 || fstat(s->fd, &st) != 0 ||
		    (uint64_t)st.st_size < c.start)
			s->end = c.start;
		else
			s->end = (uint64_t)st.st_size;
		rc = RVF_OK;
	}
	if (info) {
		info->epoch = m.epoch;
		info->accepted = dead;
		info->bytes = dead * 4 * v->info.dimension;
	}
out:
	free(what);
	free(rows);
	free(w.buf);
	free(m.dir);
	meta_write_release(&mw);
	commit_done(&c);
	return rc;
fail:
	io_temp_discard(&tmp, false);
	free(what);
	free(rows);
	free(w.buf);
	free(m.dir);
	meta_write_release(&mw);
	commit_abort(&c);
	return rc;
}
