/* stream_ingest.c - .fvecs, .f32 and .npy files written into ingest/ go
 * into the store as their bytes arrive (librvf's rvf_stream), not through
 * a staging file read back at close: the bytes are written once.
 *
 * A file is streamed when it is written from its start, in order (cp,
 * cat, dd); each write decodes the whole records it completes, and fails
 * with EINVAL at the first bad one (a wrong dimension prefix, a component
 * that is not finite or, from float64, does not fit float32), naming it.
 * An .npy file's header is parsed (librvf's rvf_npy_read_header, the one
 * the staged import uses) as soon as its bytes are there: a bad one, or
 * more rows than it declares, fails that write too.  The close commits the
 * file as one unit; one that ends inside a record or before the rows its
 * header declares, or that is written out of order after streaming began,
 * commits nothing.  Other files, and text formats, are staged as before
 * (staging.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

struct ingest_stream {
	pthread_mutex_t mu;
	/* References (under fs->mu): the staged file's, and one per write in
	 * progress, so that a descriptor emptying, removing or closing the
	 * file never frees a stream another descriptor's write is using. */
	unsigned refs;
	bool dropped;            /* under mu: left its file; writes are refused */
	rvf_stream *st;          /* NULL once dropped (aborted) or committed */
	bool fvecs;              /* else raw rows: .f32, or .npy after its header */
	bool npy;
	uint32_t dim;
	unsigned width;          /* bytes per component: 4, or 8 (npy '<f8') */
	size_t rec;              /* bytes per record */
	const char *unit;        /* what messages call a record */
	/* .npy: the header, collected until it parses */
	unsigned char *head;
	size_t nhead, head_need;
	bool have_header;
	uint64_t declared;       /* rows the header declares */
	uint64_t received;       /* bytes taken: the next write's offset */
	uint64_t records;        /* whole records decoded */
	unsigned char *part;     /* an unfinished record */
	size_t npart;
	/* -errno: the rows of a write already answered could not go into
	 * the store (a segment write failed); later writes and the close
	 * fail with it (the reason was logged when it happened). */
	int failed;
};

/* True when a write of `name` at offset 0 into an empty file starts a
 * stream. */
static bool streamable(const staged *s, rvf_import_format *fmt)
{
	return s->parent == INO_INGEST && s->name[0] != '.' &&
	       rvf_import_format_from_name(s->name, fmt) &&
	       (*fmt == RVF_IMPORT_FVECS || *fmt == RVF_IMPORT_F32 ||
		*fmt == RVF_IMPORT_NPY);
}

bool stream_direct(const char *name)
{
	/* The kernel would copy each write into a page cache nobody reads
	 * (the bytes go to the store, not to the staging file) before the
	 * daemon copies it out: direct_io hands the daemon the writer's
	 * pages. */
	rvf_import_format f;
	return name[0] != '.' && rvf_import_format_from_name(name, &f) &&
	       (f == RVF_IMPORT_FVECS || f == RVF_IMPORT_F32 || f == RVF_IMPORT_NPY);
}

/* librvf streams into a root store only: into a branch child the rows go
 * through the staged import, as they did before files streamed. */
static bool store_streams(rvffs *fs)
{
	rvf_view *v = rvf_store_view(fs->store);
	bool branch = rvf_view_info(v)->is_branch;
	rvf_view_release(v);
	return !branch;
}

static void stream_free(ingest_stream *is);

static int stream_start(rvffs *fs, staged *s, rvf_import_format fmt)
{
	ingest_stream *is = calloc(1, sizeof(*is));
	rvf_error err;
	if (!is)
		return -ENOMEM;
	if (rvf_stream_begin(fs->store, &is->st, &err) != RVF_OK) {
		fs_error(fs, "ingest/%s: %s; nothing committed", s->name, err.message);
		free(is);
		return -rvf_code_errno(err.code, err.sys_errno);
	}
	is->fvecs = fmt == RVF_IMPORT_FVECS;
	is->npy = fmt == RVF_IMPORT_NPY;
	is->unit = is->npy ? "row" : "record"; /* as the staged import says */
	is->dim = rvf_stream_dimension(is->st);
	is->width = 4; /* .npy: until its header says */
	is->rec = 4 * (size_t)is->dim + (is->fvecs ? 4 : 0);
	is->head_need = 10; /* an .npy header's fixed part */
	/* room for a float64 row, which an .npy header may announce */
	is->part = malloc(is->npy ? 8 * (size_t)is->dim : is->rec);
	if (!is->part) {
		rvf_stream_abort(is->st);
		free(is);
		return -ENOMEM;
	}
	pthread_mutex_init(&is->mu, NULL);
	is->refs = 1; /* the staged file's */
	pthread_mutex_lock(&fs->mu);
	/* Another first write started one, or the file left ingest/ (removed:
	 * staged_remove sets gone before it drops the stream, so a stream
	 * attached after that would outlive the file). */
	bool raced = s->stream != NULL || s->gone;
	if (!raced)
		s->stream = is;
	pthread_mutex_unlock(&fs->mu);
	if (raced)
		stream_free(is);
	return 0;
}

static void stream_free(ingest_stream *is)
{
	if (is->st)
		rvf_stream_abort(is->st);
	pthread_mutex_destroy(&is->mu);
	free(is->head);
	free(is->part);
	free(is);
}

/* A reference to s's stream, or NULL. */
static ingest_stream *stream_get(rvffs *fs, staged *s)
{
	pthread_mutex_lock(&fs->mu);
	ingest_stream *is = s->stream;
	if (is)
		is->refs++;
	pthread_mutex_unlock(&fs->mu);
	return is;
}

static void stream_put(rvffs *fs, ingest_stream *is)
{
	pthread_mutex_lock(&fs->mu);
	bool last = --is->refs == 0;
	pthread_mutex_unlock(&fs->mu);
	if (last)
		stream_free(is);
}

/* Takes s's stream away from it; the caller holds the reference s had. */
static ingest_stream *stream_detach(rvffs *fs, staged *s)
{
	pthread_mutex_lock(&fs->mu);
	ingest_stream *is = s->stream;
	s->stream = NULL;
	pthread_mutex_unlock(&fs->mu);
	return is;
}

/* Under is->mu: its rows leave the store now, not with the last
 * reference.  A write answered early may still hold one; the close (or
 * truncate, unlink) that ends the stream must return with the store cut
 * back. */
static void stream_cut(ingest_stream *is)
{
	rvf_stream_abort(is->st);
	is->st = NULL;
}

void stream_drop(rvffs *fs, staged *s)
{
	ingest_stream *is = stream_detach(fs, s);
	if (!is)
		return;
	pthread_mutex_lock(&is->mu); /* after the write in progress, if any */
	is->dropped = true;
	stream_cut(is);
	pthread_mutex_unlock(&is->mu);
	stream_put(fs, is);
}

/* The dimension prefix of .fvecs record n (1-based) at p. */
static int check_prefix(rvffs *fs, staged *s, ingest_stream *is, const unsigned char *p,
			uint64_t n)
{
	uint32_t d = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		     (uint32_t)p[3] << 24;
	if (d == is->dim)
		return 0;
	fs_error(fs, "ingest/%s: record %llu: dimension %d, expected %u; the write fails and nothing is committed",
		 s->name, (unsigned long long)n, (int32_t)d, is->dim);
	return -EINVAL;
}

/* A float64 row (npy '<f8') as float32: a finite value outside float32's
 * range is refused, not turned into infinity (as the staged import). */
static int narrow(rvffs *fs, staged *s, ingest_stream *is, const unsigned char *p,
		  uint64_t n, float *row)
{
	for (uint32_t c = 0; c < is->dim; c++) {
		uint64_t u = 0; /* little-endian bytes, whatever the host */
		for (int k = 7; k >= 0; k--)
			u = u << 8 | p[8 * (size_t)c + (size_t)k];
		double d;
		memcpy(&d, &u, 8);
		row[c] = (float)d;
		if (isfinite(d) && !isfinite(row[c])) {
			fs_error(fs, "ingest/%s: row %llu: component %u (%g) does not fit float32; the write fails and nothing is committed",
				 s->name, (unsigned long long)n, c + 1, d);
			return -EINVAL;
		}
	}
	return 0;
}

/* Whether none of the n floats at p is NaN or infinite: with the sign
 * bit cleared, those are the bit patterns from 0x7f800000 up, so adding
 * 0x00800000 sets bit 31 for them only.  In vectors of four lanes (the
 * vector extension gcc and clang share), two at a time and without a
 * branch: a test per component took an eighth of the daemon's time in a
 * stream, and an array of lanes went through the stack at every step. */
static bool floats_finite(const void *p, size_t n)
{
	typedef uint32_t lanes __attribute__((vector_size(16)));
	const unsigned char *b = p;
	lanes a = { 0 }, c = { 0 };
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		lanes x, y;
		memcpy(&x, b + 4 * i, sizeof(x));
		memcpy(&y, b + 4 * i + 16, sizeof(y));
		a |= (x & 0x7fffffffu) + 0x00800000u;
		c |= (y & 0x7fffffffu) + 0x00800000u;
	}
	a |= c;
	uint32_t any = a[0] | a[1] | a[2] | a[3];
	for (; i < n; i++) {
		uint32_t bits;
		memcpy(&bits, b + 4 * i, sizeof(bits));
		any |= (bits & 0x7fffffffu) + 0x00800000u;
	}
	return !(any & 0x80000000u);
}

/* Decodes record p (number `n`, 1-based) into row. */
static int decode(rvffs *fs, staged *s, ingest_stream *is, const unsigned char *p,
		  uint64_t n, float *row)
{
	if (is->fvecs) {
		int rc = check_prefix(fs, s, is, p, n);
		if (rc)
			return rc;
		p += 4;
	}
	if (is->width == 8) {
		int rc = narrow(fs, s, is, p, n, row);
		if (rc)
			return rc;
	} else {
		memcpy(row, p, 4 * (size_t)is->dim);
	}
	if (floats_finite(row, is->dim))
		return 0;
	uint32_t c = 0;
	while (isfinite(row[c]))
		c++;
	fs_error(fs, "ingest/%s: %s %llu: component %u is not finite; the write fails and nothing is committed",
		 s->name, is->unit, (unsigned long long)n, c + 1);
	return -EINVAL;
}

/* librvf's parse of the header bytes collected so far (at_end: no more
 * will come), its messages naming the file as ingest/NAME. */
static rvf_code read_header(const staged *s, const ingest_stream *is, bool at_end,
			    rvf_npy_header *h, size_t *need, rvf_error *err)
{
	char label[300];
	snprintf(label, sizeof(label), "ingest/%s", s->name);
	return rvf_npy_read_header(is->head, is->nhead, at_end, label, is->dim, h, need, err);
}

/* An .npy file's header: collects its bytes from [*p, *p + *len) until
 * librvf parses it, then sets the record layout it declares. */
static int take_header(rvffs *fs, staged *s, ingest_stream *is,
		       const unsigned char **p, size_t *len)
{
	while (*len && !is->have_header) {
		if (!is->head) {
			is->head = malloc(is->head_need);
			if (!is->head)
				return -ENOMEM;
		}
		size_t k = is->head_need - is->nhead < *len ? is->head_need - is->nhead : *len;
		memcpy(is->head + is->nhead, *p, k);
		is->nhead += k;
		*p += k;
		*len -= k;
		if (is->nhead < is->head_need)
			break;
		rvf_npy_header h;
		size_t need;
		rvf_error err;
		if (read_header(s, is, false, &h, &need, &err) != RVF_OK) {
			fs_error(fs, "%s; the write fails and nothing is committed",
				 err.message);
			return -EINVAL;
		}
		if (need) {
			unsigned char *g = realloc(is->head, need);
			if (!g)
				return -ENOMEM;
			is->head = g;
			is->head_need = need;
			continue;
		}
		is->have_header = true;
		is->declared = h.rows;
		is->width = h.width;
		is->rec = (size_t)h.width * is->dim;
		free(is->head);
		is->head = NULL;
	}
	return 0;
}

/* Bytes beyond the rows an .npy header declares: refused as they come. */
static bool beyond_declared(const ingest_stream *is, size_t len)
{
	return len > (is->declared - is->records) * is->rec - is->npart;
}

static int check_extra(rvffs *fs, staged *s, ingest_stream *is, size_t len)
{
	if (!beyond_declared(is, len))
		return 0;
	fs_error(fs, "ingest/%s: data after the %llu rows the header declares; the write fails and nothing is committed",
		 s->name, (unsigned long long)is->declared);
	return -EINVAL;
}

/* Decodes record p (number `n`, 1-based) straight into the stream's
 * next row and adds it. */
static int take_record(rvffs *fs, staged *s, ingest_stream *is,
		       const unsigned char *p, uint64_t n)
{
	int rc = decode(fs, s, is, p, n, rvf_stream_slot(is->st));
	rvf_error err;
	if (!rc && rvf_stream_push(is->st, &err) != RVF_OK) {
		/* a segment the stream's writer could not write */
		fs_error(fs, "ingest/%s: %s; nothing committed", s->name, err.message);
		rc = -rvf_code_errno(err.code, err.sys_errno);
	}
	return rc;
}

/* The records bytes [at, at+len) complete: 0 or -errno. */
static int take(rvffs *fs, staged *s, ingest_stream *is, const unsigned char *p,
		size_t len)
{
	int rc = 0;
	if (is->npy) {
		rc = take_header(fs, s, is, &p, &len);
		if (!rc && len)
			rc = check_extra(fs, s, is, len);
		if (rc || !len)
			return rc;
	}
	while (len && !rc) {
		if (is->npart || len < is->rec) {
			size_t k = is->rec - is->npart < len ? is->rec - is->npart : len;
			memcpy(is->part + is->npart, p, k);
			is->npart += k;
			p += k;
			len -= k;
			if (is->npart < is->rec) {
				/* its prefix already says whether it is right */
				if (is->fvecs && is->npart >= 4 && is->npart - k < 4)
					rc = check_prefix(fs, s, is, is->part, is->records + 1);
				break;
			}
			is->npart = 0;
			rc = take_record(fs, s, is, is->part, ++is->records);
		} else {
			rc = take_record(fs, s, is, p, ++is->records);
			p += is->rec;
			len -= is->rec;
		}
	}
	return rc;
}

/* The little-endian 32-bit word at p. */
static uint32_t word_at(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Whether the n whole float32 records at p are all valid: each .fvecs
 * prefix is the dimension, and every component is finite. */
static bool records_valid(const ingest_stream *is, const unsigned char *p, size_t n)
{
	if (!is->fvecs)
		return floats_finite(p, n * is->dim);
	for (size_t i = 0; i < n; i++, p += is->rec)
		if (word_at(p) != is->dim || !floats_finite(p + 4, is->dim))
			return false;
	return true;
}

/* cp's writes of a float32 file (1 MiB each, in order): the records are
 * checked where they lie, and when all are valid the write is answered
 * before its rows are copied into the stream, so the copy overlaps the
 * writer reading its next MiB instead of delaying its answer.  A write
 * with a bad record, or an .npy file's header, goes to take(), which
 * names what is wrong.  1 when it answered req, 0 when take() is to do
 * the write, or -errno (nothing answered).  A segment write that fails
 * after the answer fails the next write and the close (is->failed). */
static int take_answered(rvffs *fs, staged *s, ingest_stream *is, fuse_req_t req,
			 const unsigned char *p, size_t len, off_t off)
{
	if (!req || is->width != 4 || (is->npy && !is->have_header))
		return 0;
	if (is->npy && beyond_declared(is, len))
		return 0; /* take() says so */
	/* the record the last write began, finished the usual way */
	size_t head = is->npart ? is->rec - is->npart : 0;
	if (head >= len)
		return 0;
	const unsigned char *body = p + head;
	size_t n = (len - head) / is->rec, tail = (len - head) % is->rec;
	if (!records_valid(is, body, n) ||
	    (is->fvecs && tail >= 4 && word_at(body + n * is->rec) != is->dim))
		return 0;
	if (head) {
		int rc = take(fs, s, is, p, head);
		if (rc)
			return rc;
	}
	is->received += len;
	staged_streamed(fs, s, off, len, 0);
	fuse_reply_write(req, len);
	size_t skip = is->fvecs ? 4 : 0, bytes = 4 * (size_t)is->dim;
	for (size_t i = 0; i < n; i++) {
		memcpy(rvf_stream_slot(is->st), body + i * is->rec + skip, bytes);
		++is->records;
		rvf_error err;
		if (rvf_stream_push(is->st, &err) != RVF_OK) {
			fs_error(fs, "ingest/%s: %s; nothing committed", s->name, err.message);
			is->failed = -rvf_code_errno(err.code, err.sys_errno);
			return 1;
		}
	}
	memcpy(is->part, body + n * is->rec, tail);
	is->npart = tail;
	return 1;
}

int stream_write(rvffs *fs, staged *s, fuse_req_t req, const char *buf, size_t size,
		 off_t off, bool *streamed)
{
	rvf_import_format fmt;
	ingest_stream *is = stream_get(fs, s);
	pthread_mutex_lock(&fs->mu);
	bool start = !is && off == 0 && s->size == 0 && streamable(s, &fmt);
	pthread_mutex_unlock(&fs->mu);
	if (start && !store_streams(fs))
		start = false;
	*streamed = is || start;
	if (!*streamed)
		return 0;
	if (start) {
		int rc = stream_start(fs, s, fmt);
		if (rc)
			return rc;
		is = stream_get(fs, s);
		if (!is) { /* dropped at once by another descriptor */
			fs_error(fs, "ingest/%s: emptied or removed by another descriptor while written; these bytes are not committed",
				 s->name);
			return -ESTALE;
		}
	}
	pthread_mutex_lock(&is->mu);
	int rc = 0;
	if (is->dropped) {
		fs_error(fs, "ingest/%s: emptied, removed or closed by another descriptor while written; these bytes are not committed",
			 s->name);
		rc = -ESTALE;
	} else if (is->failed) {
		rc = is->failed; /* logged when it failed */
	} else if ((uint64_t)off != is->received) {
		fs_error(fs, "ingest/%s: written out of order (at %lld, after %llu bytes): a .fvecs, .f32 or .npy file goes into the store as it is written; nothing is committed",
			 s->name, (long long)off, (unsigned long long)is->received);
		rc = -EINVAL;
	} else {
		rc = take_answered(fs, s, is, req, (const unsigned char *)buf, size, off);
		if (rc == 0) {
			rc = take(fs, s, is, (const unsigned char *)buf, size);
			is->received += size;
		} else if (rc > 0) {
			rc = STREAM_ANSWERED;
		}
	}
	pthread_mutex_unlock(&is->mu);
	stream_put(fs, is);
	return rc;
}

bool stream_write_is_quick(rvffs *fs, staged *s, uint64_t off, size_t size)
{
	ingest_stream *is = stream_get(fs, s);
	if (!is)
		return false;
	pthread_mutex_lock(&fs->mu);
	bool quick = !s->refused && !s->gone;
	pthread_mutex_unlock(&fs->mu);
	/* Busy (another write of it in progress): not quick. */
	if (quick && pthread_mutex_trylock(&is->mu) == 0) {
		quick = !is->dropped && !is->failed && off == is->received && is->rec &&
			rvf_stream_room(is->st, (is->npart + size) / is->rec + 1);
		pthread_mutex_unlock(&is->mu);
	} else {
		quick = false;
	}
	stream_put(fs, is);
	return quick;
}

bool stream_active(rvffs *fs, staged *s)
{
	pthread_mutex_lock(&fs->mu);
	bool r = s->stream != NULL;
	pthread_mutex_unlock(&fs->mu);
	return r;
}

/* 0 when the file ended where a file of its format may end, else
 * -EINVAL, the reason logged. */
static int check_whole(rvffs *fs, staged *s, ingest_stream *is)
{
	if (is->npy && !is->have_header) {
		/* it ended inside its header: the parser says how (an empty
		 * one has no rows) */
		rvf_npy_header h;
		size_t need;
		rvf_error err;
		if (read_header(s, is, true, &h, &need, &err) == RVF_OK)
			return 0;
		fs_error(fs, "%s; nothing committed", err.message);
		return -EINVAL;
	}
	if (is->npy && is->records < is->declared) {
		fs_error(fs, "ingest/%s: truncated: the header declares %llu rows, the data holds %llu and %zu bytes; nothing committed",
			 s->name, (unsigned long long)is->declared,
			 (unsigned long long)is->records, is->npart);
		return -EINVAL;
	}
	if (is->npart) {
		fs_error(fs, "ingest/%s: truncated: record %llu has %zu of %zu bytes; nothing committed",
			 s->name, (unsigned long long)is->records + 1, is->npart, is->rec);
		return -EINVAL;
	}
	return 0;
}

int stream_commit(rvffs *fs, staged *s)
{
	ingest_stream *is = stream_detach(fs, s);
	if (!is)
		return -EINVAL;
	/* after a write in progress on another descriptor; later ones are
	 * refused */
	pthread_mutex_lock(&is->mu);
	is->dropped = true;
	int rc = is->failed ? is->failed : check_whole(fs, s, is);
	if (!rc) {
		rvf_error err;
		rvf_commit_info info;
		uint64_t rows = rvf_stream_rows(is->st);
		rvf_code c = rvf_stream_commit(is->st, &info, &err);
		is->st = NULL; /* freed by the commit */
		if (c != RVF_OK) {
			fs_error(fs, "ingest/%s: %s; nothing committed", s->name, err.message);
			rc = -rvf_code_errno(c, err.sys_errno);
		} else {
			fs_log(fs, LOG_INFO, "ingest/%s: %llu vectors committed (epoch %u)",
			       s->name, (unsigned long long)rows, info.epoch);
			fs_invalidate(fs, true);
		}
	} else {
		stream_cut(is); /* refused (short, failed): nothing committed */
	}
	pthread_mutex_unlock(&is->mu);
	stream_put(fs, is);
	return rc;
}
