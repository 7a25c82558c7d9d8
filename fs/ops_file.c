/* ops_file.c - FUSE handlers for open files: each finds the kind of the
 * node (node.h) and calls through its ops table; what is common to every
 * kind (permissions, the store check, who may commit at close) is here. */
#include <errno.h>
#include <string.h>

#include "node.h"

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	const node_ops *ops = node_of(fs, ino);
	handle *h = handle_new(ops, ino);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rvf_view *v = fs_view(fs);
	int rc = access_ino(req, fs, v, ino, access_open_mask(fi->flags), NULL);
	if (rc == -ENOENT)
		rc = 0; /* each kind says below how it is missing */
	if (!rc)
		rc = ops->open ? ops->open(req, fs, v, h, fi) : -ENOENT;
	/* What open read from a store that shrank under us is not the
	 * store (`errors` stays readable: it says why). */
	if (!rc && !ops->store_free)
		rc = fs_store_check(fs);
	rvf_view_release(v);
	if (rc) {
		handle_free(fs, h);
		fuse_reply_err(req, -rc);
		return;
	}
	if (h->gated && wants_write(fi))
		h->owner = fuse_req_ctx(req)->pid;
	/* A close of a read-only descriptor has nothing to commit (flush
	 * acts on writes only): no FLUSH round trip, one less per `cat`. */
	if (!wants_write(fi))
		fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	fuse_reply_open(req, fi);
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode, struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	const node_ops *dir = node_of(fs, parent);
	if (fs->read_only || !dir->create) {
		fuse_reply_err(req, fs->read_only ? EROFS : EPERM);
		return;
	}
	handle *h = NULL;
	int rc = access_dir(req, fs, parent);
	if (!rc)
		rc = dir->create(req, fs, name, mode, fi, &h);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = h->ino;
	e.generation = 1;
	rvf_view *v = fs_view(fs);
	if (!fs_stat(fs, v, h->ino, &e.attr))
		node_fill_pending(fs, &e.attr, h->ino, 0); /* until the flush commits it */
	rvf_view_release(v);
	h->owner = fuse_req_ctx(req)->pid;
	fi->fh = (uintptr_t)h;
	fuse_reply_create(req, &e, fi);
}

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi)
{
	(void)ino;
	handle *h = handle_of(fi);
	if (h->ops->read)
		h->ops->read(req, fs_of(req), h, size, off);
	else
		reply_copy(req, h->text, h->len, size, off);
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	      off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	handle *h = handle_of(fi);
	long n = h->ops->write ? h->ops->write(req, fs_of(req), h, buf, size, off) :
		 -EBADF;
	if (n == NODE_REPLIED)
		return;
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static int flush_handle(rvffs *fs, fuse_req_t req, handle *h)
{
	return h->ops->flush ? h->ops->flush(req, fs, h) : 0;
}

void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	handle *h = handle_of(fi);
	/* A close by another process that holds a copy of the descriptor (a
	 * child that inherited it and exits, close-on-exec) does not end the
	 * writing: the opener's own close commits, or else the last release.
	 * Closing a staged file opened for reading commits nothing. */
	if (h->gated && !caller_same_process(req, h->owner)) {
		fuse_reply_err(req, 0);
		return;
	}
	fuse_reply_err(req, -flush_handle(fs_of(req), req, h));
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	      struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	rvffs *fs = fs_of(req);
	int rc = flush_handle(fs, req, handle_of(fi));
	/* fsync makes every change of the mount durable, not only this
	 * file's: one manifest covers them all. */
	if (rc == 0)
		rc = fs_sync(fs);
	fuse_reply_err(req, -rc);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	rvffs *fs = fs_of(req);
	handle *h = handle_of(fi);
	/* Writes still pending at the last close (the opener never closed it
	 * itself): commit them now; the reason of a failure is in `errors`. */
	if (h->owner && h->ops->pending && h->ops->pending(fs, h))
		flush_handle(fs, req, h);
	handle_free(fs, h);
	fuse_reply_err(req, 0);
}
