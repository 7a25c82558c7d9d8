/* stream.c - an ingest that does not hold the store while its rows come.
 *
 * rvffs streams a fixed-record file (.fvecs, .f32) written into ingest/
 * into the store as its bytes arrive, instead of keeping them in a staging
 * file and reading them back at close.  The rows go into VEC segments
 * appended between other writers' changes (the writer lock is taken per
 * segment, not for the whole file, which may take as long as its writer
 * likes); no manifest lists them until the commit, which lists them all at
 * once: the file is one atomic unit.  An aborted stream (a bad record, a
 * short file) leaves its segments unlisted -- cut off when they end the
 * file, else dead bytes for the next compaction -- and a crash leaves them
 * as any unlisted tail.  A segment's ids are reserved when it is written:
 * after the largest id the store used and every id another open stream
 * reserved, so streams running at once get ids of their own (one alone
 * gets consecutive ids after the largest, as the staged import gives);
 * a compaction meanwhile (a new file) or another writer giving one of
 * those ids a row fails the commit: nothing is committed. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bigmem.h"
#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "io.h"
#include "segment.h"
#include "store.h"

#define STREAM_SEGMENT_BYTES (8u << 20) /* rows per VEC segment, in bytes */
/* The row buffer starts this small and becomes a whole segment's when it
 * is full: most streams are small files, for which a segment's buffer
 * cost page faults (under ASan a fresh mapping and 1 MiB of shadow
 * written at malloc and again at free: ~600 faults per ingested file).
 * In one step, not doubling: a big stream's rows are copied once, 64 KiB
 * (doubling cost a 20 MB cp 10 ms of the daemon's CPU). */
#define STREAM_FIRST_BYTES (64u << 10)

/* The segments are written by a thread of the stream's own, so the
 * caller (a FUSE write) goes on decoding the next rows meanwhile: buf
 * fills while wbuf is written.  A write error is kept and returned by
 * the next call that hands a segment over, or by the commit. */
typedef struct stream_writer {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop;
	unsigned char *buf;          /* the segment being written */
	size_t len;                  /* its bytes; 0: the writer is idle */
	rvf_code rc;                 /* the first failure, with its message */
	rvf_error err;
} stream_writer;

/* The written segments are made durable by another thread, as they
 * come: fdatasync writes them back and flushes the device's cache, and it
 * waits for both, which held the segment writer (and so the file's writer)
 * to the disk's pace when done in it.  So the disk, and on a VM the host's
 * flush, work while the rows come, and the fsync that makes the commit
 * durable waits only for the last segment: with writeback alone
 * (sync_file_range) that fsync still waited for the device to flush all of
 * the file, a third of a 516 MB stream's time (bench/run.sh --workloads
 * stream).  A failure here is a hint only: the commit's fsync reports it. */
typedef struct stream_flusher {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop;
	int fd;                      /* the store's file, a descriptor of its own */
	bool written;                /* segments written since the last fdatasync */
} stream_flusher;

struct rvf_stream {
	rvf_store *s;
	uint32_t dim;
	size_t stride;               /* bytes per row: id + components */
	uint64_t generation;         /* of the file the segments are in */
	unsigned char *buf;          /* rows of the next segment */
	size_t len, cap;             /* bytes in buf; a segment's bytes */
	size_t size;                 /* buf's (room for one more row) */
	dir_entry *segs;             /* our segments, in file order */
	uint64_t *seg_first;         /* the first id of each (consecutive ids) */
	size_t nsegs, segs_cap;
	uint64_t rows;
	stream_writer w;
	stream_flusher f;
};

/* A stream ends: the last one's reservations are in the view, or free. */
static void streams_leave(rvf_store *s)
{
	pthread_mutex_lock(&s->write_mu);
	if (atomic_fetch_sub(&s->streams, 1) == 1)
		s->have_stream_ids = false;
	pthread_mutex_unlock(&s->write_mu);
}

rvf_code rvf_stream_begin(rvf_store *s, rvf_stream **out, rvf_error *err)
{
	rvf_stream *st = calloc(1, sizeof(*st));
	if (!st)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	pthread_mutex_lock(&s->write_mu);
	rvf_code rc = store_check_writable(s, err);
	rvf_view *v = rvf_store_view(s);
	st->s = s;
	st->dim = v->info.dimension;
	st->stride = 8 + 4 * (size_t)st->dim;
	st->generation = s->generation;
	uint64_t max;
	if (rvf_view_max_id(v, &max) && max == UINT64_MAX)
		rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT, "no ids left to assign");
	if (rc == RVF_OK && v->is_branch)
		rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT, "a branch child is not streamed");
	if (rc == RVF_OK && st->dim == 0)
		rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT,
			      "the store has dimension 0: it cannot hold vectors");
	if (rc == RVF_OK)
		atomic_fetch_add(&s->streams, 1);
	rvf_view_release(v);
	pthread_mutex_unlock(&s->write_mu);
	st->cap = STREAM_SEGMENT_BYTES / st->stride * st->stride;
	if (st->cap < st->stride)
		st->cap = st->stride;
	st->size = STREAM_FIRST_BYTES < st->cap ? STREAM_FIRST_BYTES : st->cap;
	if (st->size < st->stride)
		st->size = st->stride;
	st->buf = rc == RVF_OK ? big_alloc(st->size) : NULL;
	if (rc == RVF_OK && !st->buf) {
		streams_leave(s);
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	}
	if (rc != RVF_OK) {
		free(st);
		return rc;
	}
	pthread_mutex_init(&st->w.mu, NULL);
	pthread_cond_init(&st->w.cond, NULL);
	*out = st;
	return RVF_OK;
}

uint32_t rvf_stream_dimension(const rvf_stream *st)
{
	return st->dim;
}

uint64_t rvf_stream_rows(const rvf_stream *st)
{
	return st->rows;
}

static rvf_code check_same_file(rvf_stream *st, rvf_error *err)
{
	if (st->s->generation != st->generation)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"the store was rewritten (compacted) while the file was written");
	return RVF_OK;
}

/* Reserves count ids for a segment (write_mu held): after the largest id
 * of the store and every id an open stream reserved. */
static rvf_code reserve_ids(rvf_stream *st, uint32_t count, uint64_t *first,
			    rvf_error *err)
{
	rvf_store *s = st->s;
	rvf_view *v = rvf_store_view(s);
	uint64_t max;
	bool any = rvf_view_max_id(v, &max);
	rvf_view_release(v);
	uint64_t next = any ? max + 1 : 0;
	if (s->have_stream_ids && s->stream_next_id > next)
		next = s->stream_next_id;
	if ((any && max == UINT64_MAX) || UINT64_MAX - next < count)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "no ids left to assign");
	*first = next;
	s->stream_next_id = next + count;
	s->have_stream_ids = true;
	return RVF_OK;
}

static void *flusher_main(void *arg)
{
	stream_flusher *f = arg;
	pthread_mutex_lock(&f->mu);
	for (;;) {
		while (!f->written && !f->stop)
			pthread_cond_wait(&f->cond, &f->mu);
		/* Stopped (the stream ends): what is left is the commit's
		 * fsync's, so a close does not wait for it here. */
		if (f->stop)
			break;
		f->written = false;
		pthread_mutex_unlock(&f->mu);
		(void)fdatasync(f->fd);
		pthread_mutex_lock(&f->mu);
	}
	pthread_mutex_unlock(&f->mu);
	return NULL;
}

/* Starts the flusher (with the segment writer): false when it cannot. */
static bool flusher_start(rvf_stream *st)
{
	stream_flusher *f = &st->f;
	f->fd = fcntl(st->s->fd, F_DUPFD_CLOEXEC, 0);
	if (f->fd < 0)
		return false;
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cond, NULL);
	if (pthread_create(&f->thread, NULL, flusher_main, f) != 0) {
		pthread_mutex_destroy(&f->mu);
		pthread_cond_destroy(&f->cond);
		close(f->fd);
		return false;
	}
	f->started = true;
	return true;
}

static void flusher_stop(rvf_stream *st)
{
	stream_flusher *f = &st->f;
	if (!f->started)
		return;
	pthread_mutex_lock(&f->mu);
	f->stop = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->mu);
	pthread_join(f->thread, NULL);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cond);
	close(f->fd);
	f->started = false;
}

/* Bytes were just written: the flusher makes them durable (without one,
 * their writeback is started here and the commit's fsync waits for it). */
static void flush_later(rvf_stream *st, uint64_t at, uint64_t len)
{
	stream_flusher *f = &st->f;
	if (!f->started) {
		(void)sync_file_range(st->s->fd, (off_t)at, (off_t)len,
				      SYNC_FILE_RANGE_WRITE);
		return;
	}
	pthread_mutex_lock(&f->mu);
	f->written = true;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->mu);
}

/* Appends rows (len bytes) as one VEC segment (writer lock held only for
 * the append) and hands them to the flusher: the disk works while the
 * next rows arrive, and the commit's fsync waits only for the last ones.
 * Called by one thread at a time (the writer, or the caller once the
 * writer is idle). */
static rvf_code write_segment(rvf_stream *st, unsigned char *rows,
			      size_t len, rvf_error *err)
{
	if (!len)
		return RVF_OK;
	if (st->nsegs == st->segs_cap) {
		size_t cap = st->segs_cap ? 2 * st->segs_cap : 16;
		dir_entry *d = realloc(st->segs, cap * sizeof(*d));
		if (d)
			st->segs = d;
		uint64_t *f = d ? realloc(st->seg_first, cap * sizeof(*f)) : NULL;
		if (!f)
			return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		st->seg_first = f;
		st->segs_cap = cap;
	}
	uint32_t count = (uint32_t)(len / st->stride);
	rvf_store *s = st->s;
	uint64_t first = 0;
	pthread_mutex_lock(&s->write_mu);
	rvf_code rc = reserve_ids(st, count, &first, err);
	pthread_mutex_unlock(&s->write_mu);
	if (rc != RVF_OK)
		return rc;
	for (uint32_t i = 0; i < count; i++)
		st64(rows + (size_t)i * st->stride, first + i);
	unsigned char head[RVF_SEGMENT_HEADER_SIZE + 6];
	st16(head + RVF_SEGMENT_HEADER_SIZE, (uint16_t)st->dim);
	st32(head + RVF_SEGMENT_HEADER_SIZE + 2, count);
	uint32_t crc = crc32_update(0, head + RVF_SEGMENT_HEADER_SIZE, 6);
	crc = crc32_update(crc, rows, len);
	uint8_t hash[16];
	content_hash_from_crc(crc, hash);
	uint64_t plen = 6 + len;
	pthread_mutex_lock(&s->write_mu);
	rc = check_same_file(st, err);
	if (rc == RVF_OK)
		rc = store_check_writable(s, err);
	if (rc != RVF_OK) {
		pthread_mutex_unlock(&s->write_mu);
		return rc;
	}
	uint64_t id = s->next_seg_id++, at = s->end;
	segment_encode(head, RVF_SEG_VEC, id, plen, hash);
	struct iovec iov[2] = { { head, sizeof(head) }, { (void *)rows, len } };
	size_t total = sizeof(head) + len;
	if (io_pwritev_all(s->fd, iov, 2, (off_t)at) != 0) {
		int e = errno;
		/* nothing lists these bytes: cut them off again */
		if (io_ftruncate(s->fd, (off_t)at) != 0)
			s->end = at + total; /* leave them; append after */
		pthread_mutex_unlock(&s->write_mu);
		return rvf_fail_io(err, e, "cannot append to %s", s->path);
	}
	s->end = at + total;
	s->tail.open = false; /* the deferred tail no longer ends the file */
	pthread_mutex_unlock(&s->write_mu);
	flush_later(st, at, total);
	st->seg_first[st->nsegs] = first;
	st->segs[st->nsegs++] = (dir_entry){ .seg_id = id, .offset = at,
					     .payload_length = plen,
					     .type = RVF_SEG_VEC };
	return RVF_OK;
}

static void *writer_main(void *arg)
{
	rvf_stream *st = arg;
	stream_writer *w = &st->w;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->len && !w->stop)
			pthread_cond_wait(&w->cond, &w->mu);
		if (!w->len)
			break; /* stopped, nothing left */
		/* After a failure, or when stopped by an abort, the rest
		 * is not written. */
		bool skip = w->rc != RVF_OK || w->stop;
		pthread_mutex_unlock(&w->mu);
		rvf_error err;
		rvf_code rc = RVF_OK;
		if (!skip)
			rc = write_segment(st, w->buf, w->len, &err);
		pthread_mutex_lock(&w->mu);
		if (rc != RVF_OK && w->rc == RVF_OK) {
			w->rc = rc;
			w->err = err;
		}
		w->len = 0;
		pthread_cond_broadcast(&w->cond);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Waits until the writer wrote what it was given: its failure, if any. */
static rvf_code writer_wait(rvf_stream *st, rvf_error *err)
{
	stream_writer *w = &st->w;
	pthread_mutex_lock(&w->mu);
	while (w->len)
		pthread_cond_wait(&w->cond, &w->mu);
	rvf_code rc = w->rc;
	if (rc != RVF_OK && err)
		*err = w->err;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* Stops the writer once it is idle (no-op when it never started). */
static void writer_stop(rvf_stream *st)
{
	stream_writer *w = &st->w;
	if (!w->started)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	w->started = false;
}

/* The buffer is full: hand it to the writer and fill its spare one (the
 * writer's last, written by now).  Without a thread, written here. */
static rvf_code segment_full(rvf_stream *st, rvf_error *err)
{
	stream_writer *w = &st->w;
	if (!w->started && !w->buf) {
		w->buf = big_alloc(st->cap);
		if (w->buf && pthread_create(&w->thread, NULL, writer_main, st) == 0) {
			w->started = true;
			(void)flusher_start(st);
		}
	}
	if (!w->started) {
		rvf_code rc = write_segment(st, st->buf, st->len, err);
		st->len = 0;
		return rc;
	}
	rvf_code rc = writer_wait(st, err);
	if (rc != RVF_OK)
		return rc;
	pthread_mutex_lock(&w->mu);
	unsigned char *spare = w->buf;
	w->buf = st->buf;
	w->len = st->len;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->mu);
	st->buf = spare; /* a segment's size */
	st->size = st->cap;
	st->len = 0;
	return RVF_OK;
}

/* buf has no room for the next row but the segment has: a segment's
 * buffer with the rows so far. */
static rvf_code buffer_grow(rvf_stream *st, rvf_error *err)
{
	size_t size = st->cap;
	unsigned char *b = big_alloc(size);
	if (!b)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	memcpy(b, st->buf, st->len);
	free(st->buf);
	st->buf = b;
	st->size = size;
	return RVF_OK;
}

bool rvf_stream_room(const rvf_stream *st, size_t rows)
{
	return rows <= (st->cap - st->len) / st->stride &&
	       st->len + (rows + 1) * st->stride <= st->cap;
}

float *rvf_stream_slot(rvf_stream *st)
{
	return (float *)(st->buf + st->len + 8);
}

rvf_code rvf_stream_push(rvf_stream *st, rvf_error *err)
{
	(void)err; /* the id is set when the segment is written */
	st->len += st->stride;
	st->rows++;
	if (st->len + st->stride > st->cap)
		return segment_full(st, err);
	if (st->len + st->stride > st->size)
		return buffer_grow(st, err);
	return RVF_OK;
}

rvf_code rvf_stream_add(rvf_stream *st, size_t n, const float *vectors,
			rvf_error *err)
{
	size_t bytes = 4 * (size_t)st->dim;
	for (size_t i = 0; i < n; i++) {
		memcpy(rvf_stream_slot(st), vectors + i * st->dim, bytes);
		rvf_code rc = rvf_stream_push(st, err);
		if (rc != RVF_OK)
			return rc;
	}
	return RVF_OK;
}

static void stream_free(rvf_stream *st)
{
	writer_stop(st);
	flusher_stop(st);
	pthread_mutex_destroy(&st->w.mu);
	pthread_cond_destroy(&st->w.cond);
	streams_leave(st->s);
	free(st->w.buf);
	free(st->buf);
	free(st->segs);
	free(st->seg_first);
	free(st);
}

void rvf_stream_abort(rvf_stream *st)
{
	if (!st)
		return;
	writer_stop(st); /* its segment, if any, is written first */
	rvf_store *s = st->s;
	pthread_mutex_lock(&s->write_mu);
	/* Our segments that end the file go; others stay unlisted (dead). */
	uint64_t end = s->end;
	for (size_t i = st->nsegs; i-- > 0 && st->generation == s->generation;) {
		const dir_entry *e = &st->segs[i];
		if (e->offset + RVF_SEGMENT_HEADER_SIZE + e->payload_length != end)
			break;
		end = e->offset;
	}
	if (end != s->end && io_ftruncate(s->fd, (off_t)end) == 0)
		s->end = end;
	pthread_mutex_unlock(&s->write_mu);
	stream_free(st);
}

static uint32_t seg_rows(const rvf_stream *st, size_t i)
{
	return (uint32_t)((st->segs[i].payload_length - 6) / st->stride);
}

/* The segment one of whose ids another writer gave a row meanwhile, or
 * nsegs. */
static size_t ids_taken(const rvf_stream *st, const rvf_view *base)
{
	uint64_t max;
	if (!rvf_view_max_id(base, &max))
		return st->nsegs;
	for (size_t i = 0; i < st->nsegs; i++) {
		uint64_t first = st->seg_first[i], end = first + seg_rows(st, i);
		for (uint64_t id = first; id < end && id <= max; id++)
			if (view_own_row(base, id) || view_is_deleted(base, id))
				return i;
	}
	return st->nsegs;
}

rvf_code rvf_stream_commit(rvf_stream *st, rvf_commit_info *info,
			   rvf_error *err)
{
	if (info)
		memset(info, 0, sizeof(*info));
	rvf_code rc = writer_wait(st, err);
	if (rc == RVF_OK)
		rc = write_segment(st, st->buf, st->len, err);
	st->len = 0;
	writer_stop(st);
	if (rc != RVF_OK) {
		rvf_stream_abort(st);
		return rc;
	}
	commit c;
	rc = commit_begin(st->s, &c, err);
	if (rc != RVF_OK) {
		rvf_stream_abort(st);
		return rc;
	}
	if (!st->rows) { /* the reference writes nothing for an empty batch */
		if (info)
			info->epoch = c.base->info.epoch;
		commit_abort(&c);
		rvf_stream_abort(st);
		return RVF_OK;
	}
	rc = check_same_file(st, err);
	size_t taken = rc == RVF_OK ? ids_taken(st, c.base) : st->nsegs;
	if (taken < st->nsegs)
		rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT,
			      "another writer used ids %llu..%llu while the file was written",
			      (unsigned long long)st->seg_first[taken],
			      (unsigned long long)(st->seg_first[taken] + seg_rows(st, taken) - 1));
	for (size_t i = 0; rc == RVF_OK && i < st->nsegs; i++)
		rc = commit_push_entry(&c, RVF_SEG_VEC, st->segs[i].seg_id,
				       st->segs[i].offset, st->segs[i].payload_length, err);
	/* The new view learns the ids from us, not from the rows. */
	row_run *runs = rc == RVF_OK ? malloc(st->nsegs * sizeof(row_run)) : NULL;
	if (runs) {
		for (size_t i = 0; i < st->nsegs; i++)
			runs[i] = (row_run){ .offset = st->segs[i].offset,
					     .first_id = st->seg_first[i],
					     .count = seg_rows(st, i) };
		c.runs = runs;
		c.nruns = st->nsegs;
	}
	if (rc == RVF_OK) {
		c.next.total_vectors = view_total_rows(c.base) + st->rows;
		c.next.epoch = c.base->info.epoch + 1;
		commit_drop_type(&c, RVF_SEG_INDEX);
		rc = commit_record(&c, 1, "ingest", st->rows, err);
	}
	if (rc != RVF_OK) {
		commit_abort(&c);
		free(runs);
		rvf_stream_abort(st);
		return rc;
	}
	uint64_t rows = st->rows;
	rc = commit_finish(&c, info, err);
	free(runs);
	if (info)
		info->accepted = rows;
	if (rc != RVF_OK) {
		rvf_stream_abort(st);
		return rc;
	}
	stream_free(st);
	return RVF_OK;
}

bool rvf_store_streaming(rvf_store *s)
{
	return atomic_load(&s->streams) > 0;
}
