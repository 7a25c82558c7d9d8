/* node_vector.c - vectors/ and vectors/ID: one vector as a line of text.
 * Reading gives its components; writing a whole line (in place or through
 * a created file, or rsync's ".ID.XXXXXX" renamed to ID) commits it as
 * vector ID at the opener's close; rm deletes it.  Its metadata xattrs are
 * in vector_meta.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node.h"

/* Largest temporary vector file committed by a rename (a dim-65535
 * vector as text is about 1 MiB). */
#define VECTOR_TEXT_MAX (16u << 20)

typedef struct vector_handle {
	handle h;
	rewrite w;
	rvf_view *view;         /* opened for reading: the vector as of open */
	size_t index;
} vector_handle;

static rewrite *rw(handle *h)
{
	return &((vector_handle *)h)->w;
}

uint32_t store_dimension(rvffs *fs)
{
	rvf_view *v = fs_view(fs);
	uint32_t d = v ? rvf_view_info(v)->dimension : 0;
	if (v)
		rvf_view_release(v);
	return d;
}

/* A vector file's name: its id in canonical decimal. */
static bool vector_name(const char *name, uint64_t *id)
{
	return rvf_parse_id(name, strlen(name), id);
}

/* A vector file's text: exactly `dimension` numbers (rvf_parse_floats). */
static int parse_vector(rvffs *fs, uint64_t id, const unsigned char *text,
			size_t len, float *x, uint32_t dim)
{
	rvf_error err;
	long n = rvf_parse_floats((const char *)text, len, x, dim, &err);
	if (n < 0) {
		fs_error(fs, "vectors/%llu: %s; nothing written",
			 (unsigned long long)id, err.message);
		return -EINVAL;
	}
	if ((size_t)n != dim) {
		fs_error(fs, "vectors/%llu: expected %u numbers, found %ld; nothing written",
			 (unsigned long long)id, dim, n);
		return -EINVAL;
	}
	return 0;
}

static bool vector_exists(rvffs *fs, uint64_t id)
{
	rvf_view *v = fs_view(fs);
	bool r = rvf_view_find(v, id) >= 0;
	rvf_view_release(v);
	return r;
}

/* A new vector's name is new to the kernel: its notices may wait for the
 * next pass (a bash loop's writes share one); a rewritten one's cached
 * size and pages must go at once. */
static void invalidate_written(rvffs *fs, bool existed)
{
	if (existed)
		fs_invalidate_now(fs);
	else
		fs_invalidate(fs, false);
}

int vector_commit_text_meta(rvffs *fs, uint64_t id, const char *buf, size_t len,
			    const staged_xattr *x, size_t nx)
{
	uint32_t dim = store_dimension(fs);
	float *vec = malloc(4 * (size_t)(dim ? dim : 1));
	rvf_meta_field *f = calloc(nx ? nx : 1, sizeof(*f));
	char **owned = calloc(nx ? nx : 1, sizeof(*owned));
	int rc = !vec || !f || !owned ? -ENOMEM :
		 parse_vector(fs, id, (const unsigned char *)buf, len, vec, dim);
	rvf_error err;
	bool existed = vector_exists(fs, id);
	rvf_view *v = rc ? NULL : fs_view(fs);
	for (size_t i = 0; !rc && i < nx; i++) {
		rvf_value_type want = 0;
		rvf_view_meta_type(v, x[i].name, &want);
		f[i].name = x[i].name;
		if (rvf_value_parse(x[i].value, x[i].len, want, &f[i].value, &owned[i],
				    &err) != RVF_OK) {
			fs_error(fs, "vectors/%llu: user.rvf.meta.%s: %s; nothing written",
				 (unsigned long long)id, x[i].name, err.message);
			rc = -EINVAL;
		}
	}
	if (v)
		rvf_view_release(v);
	if (!rc) {
		/* rsync -X: the file's xattrs are its whole metadata */
		size_t start[2] = { 0, nx };
		rvf_ingest *t = NULL;
		rvf_code c = rvf_ingest_begin(fs->store, &t, &err);
		if (c == RVF_OK)
			c = rvf_ingest_clear_metadata(t, 1, &id, &err);
		if (c == RVF_OK)
			c = rvf_ingest_add(t, 1, &id, vec, f, start, &err);
		if (c == RVF_OK)
			c = rvf_ingest_commit(t, NULL, &err);
		else if (t)
			rvf_ingest_abort(t);
		if (c != RVF_OK)
			rc = -fs_rvf_errno(fs, "vectors write", &err);
		else
			invalidate_written(fs, existed);
	}
	for (size_t i = 0; owned && i < nx; i++)
		free(owned[i]);
	free(owned);
	free(f);
	free(vec);
	return rc;
}

int vector_commit_text(rvffs *fs, uint64_t id, const char *buf, size_t len)
{
	uint32_t dim = store_dimension(fs);
	float *x = malloc(4 * (size_t)(dim ? dim : 1));
	if (!x)
		return -ENOMEM;
	int rc = parse_vector(fs, id, (const unsigned char *)buf, len, x, dim);
	rvf_error err;
	rvf_commit_info info;
	bool existed = vector_exists(fs, id);
	if (!rc && rvf_store_ingest(fs->store, 1, &id, x, NULL, NULL, &info,
				    &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, "vectors write", &err);
	else if (!rc)
		invalidate_written(fs, existed);
	free(x);
	return rc;
}

/* --- vectors/ID --- */

static bool vector_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	uint64_t id;
	if (!vec_id_of(fs, ino, &id))
		return false;
	long i = rvf_view_find(v, id);
	if (i < 0)
		return false;
	node_fill(fs, st, ino, S_IFREG | 0644, text_vector_size(fs, v, (size_t)i),
		  node_view_mtime(fs, v), false);
	return true;
}

static int vector_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		       struct fuse_file_info *fi)
{
	(void)req;
	rewrite *w = rw(h);
	bool wr = wants_write(fi);
	uint64_t id;
	long i = vec_id_of(fs, h->ino, &id) ? rvf_view_find(v, id) : -1;
	if (wr && fs->read_only)
		return -EROFS;
	if (i < 0 && !wr)
		return -ENOENT;
	if (!wr) {
		/* Through the page cache, kept across opens: the kernel
		 * knows the size (no read to see the end) and a second cat
		 * costs no read.  The text is made when the kernel reads;
		 * a change of the vector drops the cache (view.c). */
		vector_handle *vh = (vector_handle *)h;
		vh->view = rvf_view_ref(v);
		vh->index = (size_t)i;
		fi->keep_cache = 1;
		return 0;
	}
	if (i >= 0 && !(fi->flags & O_TRUNC))
		h->text = text_vector(v, (size_t)i, &h->len);
	fi->direct_io = 1;
	/* Read-modify-write: start from the current text. */
	if (h->text)
		rewrite_adopt(w, h);
	w->ino = h->ino;
	w->on = true;
	w->seq = i < 0 || (fi->flags & O_TRUNC);
	h->gated = true;
	writer_add(fs, w);
	return 0;
}

static void vector_read(fuse_req_t req, rvffs *fs, handle *h, size_t size, off_t off)
{
	vector_handle *vh = (vector_handle *)h;
	if (!vh->view) {
		rewrite_read(req, h, rw(h), size, off);
		return;
	}
	int bad = fs_store_check(fs);
	if (bad) {
		fuse_reply_err(req, -bad);
		return;
	}
	size_t len = 0;
	char *text = text_vector(vh->view, vh->index, &len);
	if (!text)
		fuse_reply_err(req, ENOMEM);
	else
		reply_slice(req, text, len, size, off);
	free(text);
}

/* Checks a vector file written from its start as the bytes arrive, so
 * that the write() of a bad line fails (a shell reports that; it ignores
 * errors at close): once a line is complete it must be the whole vector. */
static int check_vector_write(rvffs *fs, handle *h)
{
	rewrite *w = rw(h);
	const unsigned char *nl = w->buf ? memchr(w->buf, '\n', w->len) : NULL;
	uint64_t id;
	if (!nl || !vec_id_of(fs, h->ino, &id))
		return 0;
	for (const unsigned char *p = nl; p < w->buf + w->len; p++)
		if (*p != '\n' && *p != ' ' && *p != '\t' && *p != '\r') {
			fs_error(fs, "vectors/%llu: a vector file is one line; nothing written",
				 (unsigned long long)id);
			return -EINVAL;
		}
	uint32_t dim = store_dimension(fs);
	float *x = malloc(4 * (size_t)dim);
	if (!x)
		return -ENOMEM;
	int rc = parse_vector(fs, id, w->buf, (size_t)(nl - w->buf), x, dim);
	free(x);
	return rc;
}

static long vector_write(fuse_req_t req, rvffs *fs, handle *h, const char *buf,
			 size_t size, off_t off)
{
	(void)req;
	rewrite *w = rw(h);
	if (!w->on)
		return -EBADF;
	if ((uint64_t)off + size > fs->lim.request_max) {
		int over = limits_request(fs, "vectors/", (uint64_t)off + size);
		return over ? over : (long)size;
	}
	bool seq = w->seq && (size_t)off == w->len;
	w->seq = seq;
	int rc = w->failed ? -EINVAL : rewrite_put(w, buf, size, off);
	if (!rc && seq)
		rc = check_vector_write(fs, h);
	if (rc == -EINVAL)
		w->failed = true;
	return rc ? rc : (long)size;
}

/* The opener's close commits the line written as the vector. */
static int vector_flush(fuse_req_t req, rvffs *fs, handle *h)
{
	(void)req;
	rewrite *w = rw(h);
	if (!w->on || !w->dirty)
		return 0; /* nothing written: nothing to commit, nothing to say */
	w->dirty = false;
	if (w->failed)
		return -EINVAL; /* a write() already failed and said why */
	uint64_t id;
	if (!vec_id_of(fs, h->ino, &id))
		return -ENOENT;
	staged_xattr *meta;
	size_t nmeta;
	writer_take_meta(fs, w, &meta, &nmeta);
	int rc = nmeta ? vector_commit_text_meta(fs, id, (const char *)w->buf, w->len,
						 meta, nmeta)
		       : vector_commit_text(fs, id, (const char *)w->buf, w->len);
	staged_xattrs_free(meta, nmeta);
	return rc;
}

static bool vector_pending(rvffs *fs, handle *h)
{
	(void)fs;
	return rw(h)->on && rw(h)->dirty;
}

static void vector_release(rvffs *fs, handle *h)
{
	rewrite *w = rw(h);
	if (w->on)
		writer_remove(fs, w);
	staged_xattrs_free(w->meta, w->nmeta);
	free(w->buf);
	if (((vector_handle *)h)->view)
		rvf_view_release(((vector_handle *)h)->view);
}

/* O_TRUNC: the new content comes from the writes that follow. */
static int vector_truncate(rvffs *fs, handle *h, off_t size)
{
	return rewrite_truncate(fs, h ? rw(h) : NULL, size);
}

const node_ops node_vector = {
	.kind = "vector",
	.handle_size = sizeof(vector_handle),
	.attr_timeout = 3600.0, /* a change of content is invalidated (view.c) */
	.creatable = true,
	.stat = vector_stat,
	.open = vector_open,
	.read = vector_read,
	.write = vector_write,
	.flush = vector_flush,
	.pending = vector_pending,
	.release = vector_release,
	.truncate = vector_truncate,
	.getxattr = vector_getxattr,
	.listxattr = vector_listxattr,
	.setxattr = vector_setxattr,
	.removexattr = vector_removexattr,
};

/* --- vectors/ --- */

static uint64_t vectors_lookup(rvffs *fs, rvf_view *v, uint64_t dir, const char *name)
{
	(void)dir;
	uint64_t id, ino = 0;
	if (name[0] == '.') { /* a temporary of rsync's */
		pthread_mutex_lock(&fs->mu);
		staged *s = staged_find_in(fs, INO_VECTORS, name);
		ino = s ? s->ino : 0;
		pthread_mutex_unlock(&fs->mu);
	} else if (vector_name(name, &id) && rvf_view_find(v, id) >= 0) {
		ino = vec_ino(fs, id);
	}
	return ino;
}

static uint64_t vectors_count(rvf_view *v)
{
	return rvf_view_info(v)->visible;
}

static uint64_t vectors_entry(rvffs *fs, rvf_view *v, size_t i, char name[SEG_NAME_MAX])
{
	uint64_t id = rvf_view_id_at(v, i);
	snprintf(name, SEG_NAME_MAX, "%llu", (unsigned long long)id);
	return vec_ino(fs, id);
}

static void vectors_prepare_plus(rvffs *fs, rvf_view *v, size_t first, size_t n)
{
	text_vector_sizes(fs, v, first, n);
}

static int vectors_create(fuse_req_t req, rvffs *fs, const char *name, mode_t mode,
			  struct fuse_file_info *fi, handle **out)
{
	if (name[0] == '.') /* rsync's temporary: staged until renamed to ID */
		return staged_create_handle(req, fs, INO_VECTORS, name, mode, out);
	uint64_t id;
	if (!vector_name(name, &id)) {
		fs_error(fs, "vectors/%s: a vector file is named by its id in canonical decimal (digits, no sign, no leading zero)",
			 name);
		return -EINVAL;
	}
	if (store_dimension(fs) == 0) {
		fs_error(fs, "vectors/%s: the store has dimension 0: it cannot hold vectors", name);
		return -EINVAL;
	}
	uint64_t ino = vec_ino(fs, id);
	handle *h = ino ? handle_new(&node_vector, ino) : NULL;
	if (!h)
		return -ENOMEM;
	rewrite *w = rw(h);
	w->ino = ino;
	w->on = true;
	w->seq = true;
	h->gated = true;
	fi->direct_io = 1;
	writer_add(fs, w);
	*out = h;
	return 0;
}

static void vectors_unlink(fuse_req_t req, rvffs *fs, const char *name)
{
	if (fs->read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (name[0] == '.') {
		staged_unlink(req, fs, INO_VECTORS, name);
		return;
	}
	uint64_t id;
	if (!vector_name(name, &id)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rvf_view *v = fs_view(fs);
	bool exists = rvf_view_find(v, id) >= 0;
	rvf_view_release(v);
	if (!exists) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	rvf_error err;
	rvf_commit_info info;
	if (rvf_store_delete(fs->store, 1, &id, &info, &err) != RVF_OK) {
		fuse_reply_err(req, fs_rvf_errno(fs, "rm vectors", &err));
		return;
	}
	fs_unlinked_by_us(fs, id);
	fs_invalidate(fs, false);
	fuse_reply_err(req, 0);
}

/* Commits temporary s (held) as vector file NEWNAME: 0 or -errno. */
static int commit_temporary(rvffs *fs, staged *s, uint64_t size, const char *newname)
{
	uint64_t id;
	if (!vector_name(newname, &id)) {
		fs_error(fs, "vectors/%s: a vector file is named by its decimal id", newname);
		return -EINVAL;
	}
	if (size > VECTOR_TEXT_MAX) {
		fs_error(fs, "vectors/%s: %llu bytes is too large for one vector", newname,
			 (unsigned long long)size);
		return -EFBIG;
	}
	char *buf = malloc(size ? size : 1);
	/* Metadata set on the temporary (rsync -X) comes with it: taken
	 * from s under the lock (setxattr changes the list under it). */
	pthread_mutex_lock(&fs->mu);
	staged_xattr *xs = s->xattrs;
	size_t nx = s->nxattrs;
	s->xattrs = NULL;
	s->nxattrs = 0;
	pthread_mutex_unlock(&fs->mu);
	int rc = !buf ? -ENOMEM : pread(s->fd, buf, size, 0) != (ssize_t)size ? -EIO :
		 nx ? vector_commit_text_meta(fs, id, buf, size, xs, nx) :
		 vector_commit_text(fs, id, buf, size);
	pthread_mutex_lock(&fs->mu);
	if (rc && !s->xattrs) { /* not committed: the temporary keeps them */
		s->xattrs = xs;
		s->nxattrs = nx;
		xs = NULL;
	}
	pthread_mutex_unlock(&fs->mu);
	staged_xattrs_free(xs, xs ? nx : 0);
	if (!rc)
		staged_remove(fs, s); /* committed: the temporary is gone */
	free(buf);
	return rc;
}

/* Renames temporary s (held) to another temporary name. */
static int rename_temporary(rvffs *fs, staged *s, const char *newname)
{
	char *nn = strdup(newname);
	pthread_mutex_lock(&fs->mu);
	staged *clash = staged_find_in(fs, INO_VECTORS, newname);
	if (nn) {
		free(s->name);
		s->name = nn;
	}
	pthread_mutex_unlock(&fs->mu);
	if (clash && clash != s)
		staged_remove(fs, clash);
	return nn ? 0 : -ENOMEM;
}

/* rsync into vectors/ without --inplace: ".ID.XXXXXX" written, then
 * renamed to ID, which commits it as one vector write. */
static void vectors_rename(fuse_req_t req, rvffs *fs, const char *name,
			   const char *newname, unsigned int flags)
{
	(void)flags;
	int rc = access_dir(req, fs, INO_VECTORS);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fs->read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	pthread_mutex_lock(&fs->mu);
	staged *s = name[0] == '.' ? staged_find_in(fs, INO_VECTORS, name) : NULL;
	if (s)
		s->opens++; /* keep it while we commit without the lock */
	uint64_t size = s ? s->size : 0;
	pthread_mutex_unlock(&fs->mu);
	if (!s) {
		/* only a temporary may be renamed; vectors are named by id */
		fuse_reply_err(req, name[0] == '.' ? ENOENT : EPERM);
		return;
	}
	rc = newname[0] == '.' ? rename_temporary(fs, s, newname) :
	     commit_temporary(fs, s, size, newname);
	staged_put(fs, s);
	fuse_reply_err(req, -rc);
}

const node_ops node_vectors = {
	.kind = "vectors/",
	.attr_timeout = 1.0,
	.stat = node_stat_dir,
	.open = node_open_dir,
	.lookup = vectors_lookup,
	.count = vectors_count,
	.entry = vectors_entry,
	.prepare_plus = vectors_prepare_plus,
	.create = vectors_create,
	.unlink = vectors_unlink,
	.rename = vectors_rename,
};
