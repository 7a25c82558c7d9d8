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
/* The buffer starts this small and becomes WRITE_BUFFER's size (in one
 * step: a big store's bytes are copied once, 64 KiB) when it is full; it
 * is flushed only when full at that size, so the writes are a 4 MiB
 * buffer's.  A small store's compaction no longer costs a fresh 4 MiB
 * (under ASan a new mapping, its shadow written at malloc and at free). */
#define FIRST_BUFFER (64u << 10)

typedef struct writer {
	int fd;
	const char *path;       /* for messages */
	uint64_t pos;
	unsigned char *buf;
	size_t len, size;
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
	if (w->len + n > w->size) {
		unsigned char *b = realloc(w->buf, WRITE_BUFFER);
		if (!b) {
			errno = ENOMEM;
			return -1;
		}
		w->buf = b;
		w->size = WRITE_BUFFER;
	}
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

/* One compaction: the store, its commit, and the copy being written. */
typedef struct compaction {
	rvf_store *s;
	commit c;
	const rvf_view *v;      /* the view compacted (c.base) */
	live_row *rows;         /* live own rows, in slab order */
	size_t nlive;
	uint64_t dead;          /* own rows dropped */
	io_temp tmp;            /* the copy, until it replaces the store */
	int fd;                 /* the copy, once it is the store file */
	char *what;             /* "the compacted copy of ...", for messages */
	writer w;
	manifest m;             /* the copy's manifest */
	uint64_t next_id;       /* next segment id in the copy */
	meta_write mw;          /* the live ids' metadata snapshot */
} compaction;

static rvf_code write_failed(compaction *k, rvf_error *err)
{
	return rvf_fail_io(err, errno, "cannot write %s", k->w.path);
}

/* The live rows, the buffers, and an unpredictable temporary file beside
 * the store (never a name someone could plant a symlink at). */
static rvf_code compaction_prepare(compaction *k, rvf_error *err)
{
	const rvf_view *v = k->v;
	rvf_code rc = live_rows_in_slab_order(v, &k->rows, &k->nlive, err);
	if (rc != RVF_OK)
		return rc;
	k->dead = v->nown - k->nlive;
	size_t per_seg = (RVF_MAX_PAYLOAD - 6) / (8 + 4 * (size_t)v->info.dimension);
	size_t nvec = (k->nlive + per_seg - 1) / per_seg;
	k->m.dir = malloc((nvec + v->man.dir_len + k->s->npending + 2) * sizeof(dir_entry));
	k->w.size = FIRST_BUFFER;
	k->w.buf = malloc(k->w.size);
	if (asprintf(&k->what, "the compacted copy of %s", k->s->path) < 0)
		k->what = NULL;
	if (!k->m.dir || !k->w.buf || !k->what)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	if (io_temp_create(&k->tmp, k->s->path) != 0)
		return rvf_fail_io(err, errno, "cannot create a temporary file beside %s",
				   k->s->path);
	k->w.fd = k->tmp.fd;
	k->w.path = k->what;
	return RVF_OK;
}

static bool is_preserved(const rvf_view *v, const rvf_segment *seg)
{
	if (!seg->listed || !seg->readable)
		return false;
	/* JSON META documents are not vector metadata: keep them */
	return preserved_type(seg->type) ||
	       (seg->type == RVF_SEG_META && rvf_segment_is_json(v, seg));
}

/* Preserved segments, verbatim and with their ids, in file order. */
static rvf_code write_preserved_segments(compaction *k, rvf_error *err)
{
	const rvf_view *v = k->v;
	for (size_t i = 0; i < v->nsorted; i++) {
		const rvf_segment *seg = &v->sorted[i];
		if (!is_preserved(v, seg))
			continue;
		k->m.dir[k->m.dir_len++] = (dir_entry){ .seg_id = seg->id, .offset = k->w.pos,
							.payload_length = seg->payload_length,
							.type = seg->type };
		if (seg->id >= k->next_id)
			k->next_id = seg->id + 1;
		if (wput(&k->w, v->map->base + seg->offset,
			 RVF_SEGMENT_HEADER_SIZE + (size_t)seg->payload_length))
			return write_failed(k, err);
	}
	return RVF_OK;
}

/* Header and payload of one new segment; listed in the copy's manifest
 * unless it is the manifest itself (which does not list itself). */
static rvf_code write_segment(compaction *k, uint8_t type, const void *payload,
			      size_t len, rvf_error *err)
{
	uint8_t hash[16];
	unsigned char hdr[RVF_SEGMENT_HEADER_SIZE];
	rvf_content_hash(payload, len, hash);
	segment_encode(hdr, type, k->next_id, len, hash);
	if (type != RVF_SEG_MANIFEST)
		k->m.dir[k->m.dir_len++] = (dir_entry){ .seg_id = k->next_id,
							.offset = k->w.pos,
							.payload_length = len, .type = type };
	k->next_id++;
	if (wput(&k->w, hdr, sizeof(hdr)) || wput(&k->w, payload, len))
		return write_failed(k, err);
	return RVF_OK;
}

/* Metadata of the live ids, as one snapshot. */
static rvf_code write_live_metadata(compaction *k, rvf_error *err)
{
	rvf_code rc = meta_encode_snapshot(k->v->meta, keep_live, (void *)k->v, &k->mw, err);
	if (rc != RVF_OK || !k->mw.payload)
		return rc;
	return write_segment(k, RVF_SEG_META, k->mw.payload, k->mw.len, err);
}

/* The copy's manifest last, then everything to disk. */
static rvf_code write_manifest_and_sync(compaction *k, rvf_error *err)
{
	k->m.epoch = k->v->info.epoch + 1;
	k->m.total_vectors = k->nlive;
	size_t mlen;
	unsigned char *mp = manifest_encode(&k->m, &mlen);
	if (!mp)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	rvf_code rc = write_segment(k, RVF_SEG_MANIFEST, mp, mlen, err);
	free(mp);
	if (rc != RVF_OK)
		return rc;
	if (wflush(&k->w) != 0 || io_fsync(k->w.fd) != 0)
		return write_failed(k, err);
	return RVF_OK;
}

/* The copy (complete and fsynced) replaces the store; it keeps the
 * store's mode, owner and group. */
static rvf_code replace_store_file(compaction *k, rvf_error *err)
{
	rvf_store *s = k->s;
	if (io_temp_replace(&k->tmp, s->fd, s->path) != 0)
		return errno == EPERM ?
		       rvf_fail_io(err, errno, "cannot give the compacted file the owner and group of %s (run the compaction as its owner or root)",
				   s->path) :
		       rvf_fail_io(err, errno, "cannot put the compacted file in place of %s",
				   s->path);
	k->fd = k->tmp.fd; /* now the store file: switch_to_copy takes it */
	io_temp_discard(&k->tmp, true);
	/* A failure leaves the rename not yet durable, but the file itself is
	 * complete: go on and report nothing. */
	(void)io_fsync_dir_of(s->path);
	return RVF_OK;
}

/* The store now works on the copy (deferred changes were in the view, so
 * they are committed too) and publishes its view. */
static rvf_code switch_to_copy(compaction *k, rvf_view **nv, rvf_error *err)
{
	rvf_store *s = k->s;
	s->dirty = false;
	s->tail.open = false;
	s->txn_changes = 0;
	s->txn_ingested = s->txn_deleted = 0;
	close(s->fd);
	s->fd = k->fd;
	s->end = k->w.pos;
	s->durable_end = k->w.pos;
	s->next_seg_id = k->next_id;
	s->npending = 0;
	map_unref(s->map);
	s->map = map_file(s->fd, s->end, err);
	rvf_code rc = !s->map ? (err ? err->code : RVF_E_IO) :
		      view_build(s->map, s->end, s->path, NULL, 0, 0,
				 k->mw.table ? k->mw.table : k->v->meta, nv, err);
	if (rc != RVF_OK) {
		/* The file is compacted but we cannot show it: stay consistent
		 * by refusing further writes on this handle. */
		s->read_only = true;
		return rc;
	}
	(*nv)->info.read_only = s->read_only;
	s->generation++; /* offsets and segment names change */
	store_publish(s, *nv);
	return RVF_OK;
}

/* A new witness chain starts after compaction (reference §5.1): one
 * witness after the manifest, listed by the next manifest.  The
 * compaction is committed whatever happens here. */
static void start_witness_chain(compaction *k, rvf_view *nv)
{
	rvf_store *s = k->s;
	commit *c = &k->c;
	s->witness_started = false;
	c->start = s->end;
	c->next.dir_len = 0;
	char action[160];
	snprintf(action, sizeof(action),
		 "compact:segments_compacted=%llu,bytes_reclaimed=%llu,epoch=%u",
		 (unsigned long long)k->dead,
		 (unsigned long long)(k->dead * 4 * k->v->info.dimension), k->m.epoch);
	if (commit_witness(c, 1, action, NULL) != RVF_OK || io_fsync(s->fd) != 0) {
		/* Bytes that cannot be cut off stay (no manifest among them):
		 * append after them. */
		struct stat st;
		if (io_ftruncate(s->fd, (off_t)c->start) == 0 || fstat(s->fd, &st) != 0 ||
		    (uint64_t)st.st_size < c->start)
			s->end = c->start;
		else
			s->end = (uint64_t)st.st_size;
		return;
	}
	free(s->pending);
	s->pending = malloc(sizeof(dir_entry));
	if (s->pending) {
		s->pending[0] = c->next.dir[0];
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
}

static void compaction_free(compaction *k)
{
	free(k->what);
	free(k->rows);
	free(k->w.buf);
	free(k->m.dir);
	meta_write_release(&k->mw);
}

/* Writes the copy and replaces the store with it; the store is unchanged
 * unless RVF_OK. */
static rvf_code write_copy(compaction *k, rvf_error *err)
{
	rvf_code rc = compaction_prepare(k, err);
	if (rc == RVF_OK)
		rc = write_rows(&k->w, k->v, k->rows, k->nlive, &k->m, &k->next_id, err);
	if (rc == RVF_OK)
		rc = write_preserved_segments(k, err);
	if (rc == RVF_OK)
		rc = write_live_metadata(k, err);
	if (rc == RVF_OK)
		rc = write_manifest_and_sync(k, err);
	if (rc == RVF_OK)
		rc = replace_store_file(k, err);
	return rc;
}

rvf_code rvf_store_compact(rvf_store *s, rvf_commit_info *info, rvf_error *err)
{
	compaction k = { .s = s, .tmp = { .fd = -1 }, .fd = -1, .w = { .fd = -1 }, .next_id = 1 };
	if (info)
		memset(info, 0, sizeof(*info));
	rvf_code rc = commit_begin(s, &k.c, err);
	if (rc != RVF_OK)
		return rc;
	if (atomic_load(&s->streams) > 0) {
		/* a stream's segments are listed by no manifest yet: the
		 * copy would drop them */
		commit_abort(&k.c);
		return rvf_fail(err, RVF_E_LOCK_HELD,
				"a file is being streamed into %s: compact once it is committed",
				s->path);
	}
	k.v = k.c.base;
	k.m = k.v->man;
	k.m.dir = NULL;
	k.m.dir_len = 0;
	k.m.deleted = NULL;
	k.m.deleted_len = 0;
	rc = write_copy(&k, err);
	if (rc != RVF_OK) {
		io_temp_discard(&k.tmp, false);
		compaction_free(&k);
		commit_abort(&k.c);
		return rc;
	}
	rvf_view *nv = NULL;
	rc = switch_to_copy(&k, &nv, err);
	if (rc == RVF_OK) {
		start_witness_chain(&k, nv);
		if (info) {
			info->epoch = k.m.epoch;
			info->accepted = k.dead;
			info->bytes = k.dead * 4 * k.v->info.dimension;
		}
	}
	compaction_free(&k);
	commit_done(&k.c);
	return rc;
}
