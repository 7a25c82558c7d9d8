/* node_staged.c - ingest/ and the files staged in it (and rsync's
 * temporaries in vectors/, which are staged files too): bytes kept in a
 * temporary file, checked line by line as they arrive, committed as one
 * import at the opener's close (or at rsync's final rename).  The staged
 * objects themselves are in staging.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "node.h"

typedef struct staged_handle {
	handle h;
	staged *st;
} staged_handle;

static staged *st_of(handle *h)
{
	return ((staged_handle *)h)->st;
}

/* --- a staged file --- */

static bool staged_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	(void)v;
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_ino(fs, ino);
	if (s) {
		node_fill(fs, st, ino, S_IFREG | (s->mode & 07777), s->size, s->mtime, true);
		st->st_uid = s->uid;
		st->st_gid = s->gid;
	}
	pthread_mutex_unlock(&fs->mu);
	return s != NULL;
}

static int staged_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		       struct fuse_file_info *fi)
{
	(void)req;
	(void)v;
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_ino(fs, h->ino);
	if (s) {
		s->opens++;
		((staged_handle *)h)->st = s;
		fi->direct_io = s->parent == INO_INGEST && stream_direct(s->name);
		/* Emptied, not yet written: a close now commits nothing
		 * (bash's first descriptor of `> f`). */
		if (wants_write(fi) && (fi->flags & O_TRUNC) && ftruncate(s->fd, 0) == 0) {
			s->size = 0;
			limits_unstage(s, 0);
		}
	}
	pthread_mutex_unlock(&fs->mu);
	if (s && wants_write(fi) && (fi->flags & O_TRUNC))
		stream_drop(fs, s); /* written again from the start */
	h->gated = true;
	return s ? 0 : -ENOENT;
}

static void staged_read(fuse_req_t req, rvffs *fs, handle *h, size_t size, off_t off)
{
	/* A streamed file's bytes went into the store, not to the staging
	 * file, which holds only zeros: say so rather than hand them out. */
	if (stream_active(fs, st_of(h))) {
		fs_error(fs, "ingest/%s: not readable while written: its rows go into the store as they come (read them in vectors/ after the close)",
			 st_of(h)->name);
		fuse_reply_err(req, EINVAL);
		return;
	}
	char *buf = malloc(size);
	ssize_t r = buf ? pread(st_of(h)->fd, buf, size, off) : -1;
	if (r < 0)
		fuse_reply_err(req, buf ? errno : ENOMEM);
	else
		fuse_reply_buf(req, buf, (size_t)r);
	free(buf);
}

/* The bytes reached the file: grow it, then check the lines they completed. */
static long staged_wrote(rvffs *fs, staged *s, off_t off, size_t w)
{
	pthread_mutex_lock(&fs->mu);
	if ((uint64_t)off + w > s->size)
		s->size = (uint64_t)off + w;
	s->dirty = true;
	clock_gettime(CLOCK_REALTIME, &s->mtime);
	pthread_mutex_unlock(&fs->mu);
	/* A bad line fails this write, so a shell reports it; the file is
	 * then refused and leaves ingest/ at close. */
	int rc = staged_check(fs, s, (uint64_t)off, w);
	if (!rc)
		return (long)w;
	pthread_mutex_lock(&fs->mu);
	s->refused = EINVAL;
	pthread_mutex_unlock(&fs->mu);
	return rc;
}

void staged_streamed(rvffs *fs, staged *s, off_t off, size_t size, int rc)
{
	pthread_mutex_lock(&fs->mu);
	if ((uint64_t)off + size > s->size)
		s->size = (uint64_t)off + size;
	s->dirty = true;
	clock_gettime(CLOCK_REALTIME, &s->mtime);
	if (rc)
		s->refused = -rc; /* the write said why */
	pthread_mutex_unlock(&fs->mu);
}

static long staged_write(fuse_req_t req, rvffs *fs, handle *h, const char *buf,
			 size_t size, off_t off)
{
	staged *s = st_of(h);
	pthread_mutex_lock(&fs->mu);
	bool gone = s->gone;
	int refused = s->refused;
	pthread_mutex_unlock(&fs->mu);
	if (refused)
		return -refused; /* already said why */
	/* Already committed (or refused, or removed) at an earlier close of
	 * this descriptor: say so rather than drop the bytes. */
	if (gone) {
		fs_error(fs, "ingest/%s: written to after it left ingest/ (committed or refused at an earlier close); these bytes are not committed",
			 s->name);
		return -ESTALE;
	}
	int over = limits_stage(fs, s, (uint64_t)off + size);
	if (over)
		return over;
	bool streamed;
	int rc = stream_write(fs, s, req, buf, size, off, &streamed);
	if (rc == STREAM_ANSWERED)
		return NODE_REPLIED;
	if (streamed) {
		staged_streamed(fs, s, off, size, rc);
		return rc ? rc : (long)size;
	}
	ssize_t w = pwrite(s->fd, buf, size, off);
	if (w < 0)
		return -errno;
	return staged_wrote(fs, s, off, (size_t)w);
}

bool staged_write_is_quick(rvffs *fs, handle *h, uint64_t off, size_t size)
{
	return h->ops == &node_staged && stream_write_is_quick(fs, st_of(h), off, size);
}

/* The opener's close commits a file with a known extension that was
 * written; a refused one leaves ingest/. */
static int staged_flush(fuse_req_t req, rvffs *fs, handle *h)
{
	(void)req;
	staged *s = st_of(h);
	pthread_mutex_lock(&fs->mu);
	bool go = s->dirty && !s->gone && staged_commits_at_close(s->name);
	int refused = s->refused;
	s->dirty = false;
	pthread_mutex_unlock(&fs->mu);
	if (go && refused) {
		staged_remove(fs, s); /* the failed write said why */
		return -refused;
	}
	if (!go)
		return 0;
	int rc = staged_commit(fs, s);
	staged_remove(fs, s); /* committed, or refused: it leaves */
	return rc;
}

static bool staged_pending(rvffs *fs, handle *h)
{
	pthread_mutex_lock(&fs->mu);
	bool go = st_of(h)->dirty && !st_of(h)->gone;
	pthread_mutex_unlock(&fs->mu);
	return go;
}

static void staged_release(rvffs *fs, handle *h)
{
	if (st_of(h))
		staged_put(fs, st_of(h));
}

/* truncate (counted against staged_max when it grows), chmod, utime. */
/* A streamed file cut to another size than written: its rows went into
 * the store as they came and cannot follow; emptied, it starts over. */
static int truncate_stream(rvffs *fs, staged *s, off_t size)
{
	pthread_mutex_lock(&fs->mu);
	bool same = (uint64_t)size == s->size;
	pthread_mutex_unlock(&fs->mu);
	if (same || !stream_active(fs, s))
		return 0;
	stream_drop(fs, s);
	if (size == 0)
		return 0;
	fs_error(fs, "ingest/%s: truncated to %lld bytes while streamed into the store; nothing is committed",
		 s->name, (long long)size);
	pthread_mutex_lock(&fs->mu);
	s->refused = EINVAL;
	pthread_mutex_unlock(&fs->mu);
	return -EINVAL;
}

static int staged_setattr(rvffs *fs, uint64_t ino, struct stat *attr, int to_set)
{
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_ino(fs, ino);
	if (s && (to_set & FUSE_SET_ATTR_SIZE)) {
		s->opens++;
		pthread_mutex_unlock(&fs->mu);
		int bad = truncate_stream(fs, s, attr->st_size);
		staged_put(fs, s);
		if (bad)
			return bad;
		pthread_mutex_lock(&fs->mu);
		s = staged_find_ino(fs, ino);
	}
	int rc = 0;
	if (s && (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size > 0) {
		/* Growing counts against staged_max, as writes do (held open
		 * meanwhile: an unlink may not free it). */
		s->opens++;
		pthread_mutex_unlock(&fs->mu);
		rc = limits_stage(fs, s, (uint64_t)attr->st_size);
		staged_put(fs, s);
		pthread_mutex_lock(&fs->mu);
		s = staged_find_ino(fs, ino);
	}
	if (s && !rc) {
		if ((to_set & FUSE_SET_ATTR_SIZE) && ftruncate(s->fd, attr->st_size) == 0) {
			s->size = (uint64_t)attr->st_size;
			s->dirty = true;
			limits_unstage(s, s->size);
		} else if (to_set & FUSE_SET_ATTR_SIZE) {
			rc = -errno;
		}
		/* chmod and utime are accepted, as tools expect. */
		if (to_set & FUSE_SET_ATTR_MODE)
			s->mode = staged_mode(attr->st_mode);
		if (to_set & FUSE_SET_ATTR_MTIME)
			s->mtime = attr->st_mtim;
	}
	pthread_mutex_unlock(&fs->mu);
	return !s ? -ENOENT : rc;
}

/* --- metadata xattrs of rsync's temporaries in vectors/ (rsync -X sets them
 * before the rename that makes the file a vector) --- */

#define META_PREFIX "user.rvf.meta."

/* s's pending xattr called name (prefix included), or NULL; under fs->mu. */
static staged_xattr *pending_xattr(staged *s, const char *name)
{
	if (strncmp(name, META_PREFIX, strlen(META_PREFIX)))
		return NULL;
	return pending_meta_find(s->xattrs, s->nxattrs, name + strlen(META_PREFIX));
}

static void staged_getxattr(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
			    const char *name, size_t size)
{
	(void)v;
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_ino(fs, ino);
	staged_xattr *x = s ? pending_xattr(s, name) : NULL;
	char *copy = x ? malloc(x->len ? x->len : 1) : NULL;
	size_t len = x ? x->len : 0;
	if (copy)
		memcpy(copy, x->value, len);
	pthread_mutex_unlock(&fs->mu);
	if (!x)
		fuse_reply_err(req, ENODATA);
	else if (!copy)
		fuse_reply_err(req, ENOMEM);
	else
		xattr_reply(req, copy, len, size);
	free(copy);
}

static void staged_listxattr(rvffs *fs, rvf_view *v, uint64_t ino, FILE *out)
{
	(void)v;
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_ino(fs, ino);
	for (size_t i = 0; s && i < s->nxattrs; i++)
		fprintf(out, META_PREFIX "%s%c", s->xattrs[i].name, 0);
	pthread_mutex_unlock(&fs->mu);
}

static int staged_setxattr(rvffs *fs, rvf_view *v, uint64_t ino, const char *name,
			   const char *value, size_t size)
{
	(void)v;
	if (strncmp(name, META_PREFIX, strlen(META_PREFIX)) || !name[strlen(META_PREFIX)])
		return -ENOTSUP;
	const char *field = name + strlen(META_PREFIX);
	/* Checked now (the text form), converted to the field's type at the
	 * rename. */
	int rc = pending_meta_check(fs, field, value, size);
	if (rc)
		return rc;
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_ino(fs, ino);
	if (!s || s->parent != INO_VECTORS)
		rc = s ? -ENOTSUP : -ENOENT;
	else
		rc = pending_meta_set(&s->xattrs, &s->nxattrs, field, value, size);
	pthread_mutex_unlock(&fs->mu);
	return rc;
}

static int staged_removexattr(rvffs *fs, rvf_view *v, uint64_t ino, const char *name)
{
	(void)v;
	if (strncmp(name, META_PREFIX, strlen(META_PREFIX)))
		return -ENOTSUP;
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_ino(fs, ino);
	int rc = !s ? -ENOENT : pending_meta_remove(s->xattrs, &s->nxattrs,
						    name + strlen(META_PREFIX));
	pthread_mutex_unlock(&fs->mu);
	return rc;
}

const node_ops node_staged = {
	.kind = "staged",
	.handle_size = sizeof(staged_handle),
	.stat = staged_stat,
	.open = staged_open,
	.read = staged_read,
	.write = staged_write,
	.flush = staged_flush,
	.pending = staged_pending,
	.release = staged_release,
	.setattr = staged_setattr,
	.getxattr = staged_getxattr,
	.listxattr = staged_listxattr,
	.setxattr = staged_setxattr,
	.removexattr = staged_removexattr,
};

int staged_create_handle(fuse_req_t req, rvffs *fs, uint64_t parent,
			 const char *name, mode_t mode, handle **out)
{
	handle *h = handle_new(&node_staged, 0);
	if (!h)
		return -ENOMEM;
	pthread_mutex_lock(&fs->mu);
	staged *old = staged_find_in(fs, parent, name);
	pthread_mutex_unlock(&fs->mu);
	if (old)
		staged_remove(fs, old);
	staged *s;
	int rc = staged_create(fs, name, staged_mode(mode), &s);
	if (rc) {
		handle_free(fs, h);
		return rc;
	}
	const struct fuse_ctx *c = fuse_req_ctx(req);
	pthread_mutex_lock(&fs->mu);
	s->parent = parent;
	s->uid = c->uid;
	s->gid = c->gid;
	s->opens++;
	pthread_mutex_unlock(&fs->mu);
	h->ino = s->ino;
	h->gated = true;
	((staged_handle *)h)->st = s;
	*out = h;
	return 0;
}

void staged_unlink(fuse_req_t req, rvffs *fs, uint64_t parent, const char *name)
{
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_in(fs, parent, name);
	pthread_mutex_unlock(&fs->mu);
	if (s)
		staged_remove(fs, s);
	fuse_reply_err(req, s ? 0 : ENOENT);
}

/* --- ingest/ --- */

static uint64_t ingest_lookup(rvffs *fs, rvf_view *v, uint64_t dir, const char *name)
{
	(void)v;
	(void)dir;
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_name(fs, name);
	uint64_t ino = s ? s->ino : 0;
	pthread_mutex_unlock(&fs->mu);
	return ino;
}

static void ingest_list(rvffs *fs, rvf_view *v, uint64_t dir, node_add_fn add, void *ctx)
{
	(void)v;
	pthread_mutex_lock(&fs->mu);
	for (staged *s = fs->staged; s; s = s->next)
		if (s->parent == dir)
			add(ctx, s->name, s->ino);
	pthread_mutex_unlock(&fs->mu);
}

/* A name with a known extension (or hidden: an editor's or rsync's
 * temporary, committed when renamed to a known one). */
static int ingest_create(fuse_req_t req, rvffs *fs, const char *name, mode_t mode,
			 struct fuse_file_info *fi, handle **out)
{
	rvf_import_format f;
	if (name[0] != '.' && !rvf_import_format_from_name(name, &f)) {
		fs_error(fs, "ingest/%s: unknown file type (use .csv .tsv .txt .jsonl .ndjson .json .fvecs .npy .f32)",
			 name);
		return -EINVAL;
	}
	fi->direct_io = stream_direct(name);
	return staged_create_handle(req, fs, INO_INGEST, name, mode, out);
}

static void ingest_unlink(fuse_req_t req, rvffs *fs, const char *name)
{
	staged_unlink(req, fs, INO_INGEST, name);
}

/* Renames s in ingest/ (replacing a clash unless RENAME_NOREPLACE) and
 * holds it: 0 or an errno. */
static int ingest_rename_entry(rvffs *fs, const char *name, const char *newname,
			       unsigned int flags, staged **s, staged **clash)
{
	pthread_mutex_lock(&fs->mu);
	*s = staged_find_name(fs, name);
	*clash = staged_find_name(fs, newname);
	int rc = 0;
	char *nn = NULL;
	if (!*s)
		rc = ENOENT;
	else if (*clash && *clash != *s && (flags & RENAME_NOREPLACE))
		rc = EEXIST;
	else if (!(nn = strdup(newname)))
		rc = ENOMEM;
	if (!rc) {
		free((*s)->name);
		(*s)->name = nn;
		(*s)->opens++; /* keep it while we commit without the lock */
	}
	pthread_mutex_unlock(&fs->mu);
	return rc;
}

static void ingest_rename(fuse_req_t req, rvffs *fs, const char *name,
			  const char *newname, unsigned int flags)
{
	int denied = access_dir(req, fs, INO_INGEST);
	if (denied) {
		fuse_reply_err(req, -denied);
		return;
	}
	staged *s, *clash;
	int rc = ingest_rename_entry(fs, name, newname, flags, &s, &clash);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	if (clash && clash != s)
		staged_remove(fs, clash);
	/* rsync's final rename: the data is complete, commit it now. */
	if (staged_commits_at_close(newname)) {
		rc = staged_commit(fs, s);
		staged_remove(fs, s);
	}
	staged_put(fs, s);
	fuse_reply_err(req, -rc);
}

const node_ops node_ingest = {
	.kind = "ingest/",
	.attr_timeout = 1.0,
	.rename_errno = EXDEV, /* its files never leave it by a rename */
	.stat = node_stat_dir,
	.open = node_open_dir,
	.lookup = ingest_lookup,
	.list = ingest_list,
	.create = ingest_create,
	.unlink = ingest_unlink,
	.rename = ingest_rename,
};
