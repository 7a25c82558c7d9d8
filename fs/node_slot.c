/* node_slot.c - queries/ and its slots: `mkdir queries/NAME` makes a slot
 * whose `request` file holds a query; the close of a write runs it and
 * its `result` file holds the answer.  A slot is its maker's: others may
 * not read or rewrite its request or read its results.  The slot objects
 * are in slots.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

typedef struct request_handle {
	handle h;
	bool dirty;             /* written: the close runs the request */
} request_handle;

/* --- queries/NAME, queries/NAME/request, queries/NAME/result --- */

static bool slot_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	(void)v;
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_ino(fs, ino);
	if (q) {
		if (ino == q->ino)
			node_fill(fs, st, ino, S_IFDIR | 0755, 0, q->mtime, true);
		else if (ino == q->ino + 1)
			node_fill(fs, st, ino, S_IFREG | 0600, q->request_len, q->mtime, true);
		else
			node_fill(fs, st, ino, S_IFREG | 0400, q->result_len, q->mtime, true);
		st->st_uid = q->uid;
		st->st_gid = q->gid;
	}
	pthread_mutex_unlock(&fs->mu);
	return q != NULL;
}

/* Every change of attributes is accepted (and ignored) while it exists. */
static int slot_setattr(rvffs *fs, uint64_t ino, struct stat *attr, int to_set)
{
	(void)attr;
	(void)to_set;
	pthread_mutex_lock(&fs->mu);
	bool known = slot_find_ino(fs, ino) != NULL;
	pthread_mutex_unlock(&fs->mu);
	return known ? 0 : -ENOENT;
}

static int request_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
			struct fuse_file_info *fi)
{
	(void)req;
	(void)v;
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_ino(fs, h->ino);
	if (q && wants_write(fi) && (fi->flags & O_TRUNC)) {
		free(q->request);
		q->request = NULL;
		q->request_len = 0;
	}
	pthread_mutex_unlock(&fs->mu);
	fi->direct_io = 1;
	return q ? 0 : -ENOENT;
}

static void request_read(fuse_req_t req, rvffs *fs, handle *h, size_t size, off_t off)
{
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_ino(fs, h->ino);
	char *copy = q && q->request_len ? strndup(q->request, q->request_len) : NULL;
	size_t len = copy ? q->request_len : 0;
	pthread_mutex_unlock(&fs->mu);
	reply_slice(req, copy, len, size, off);
	free(copy);
}

/* Puts [off, off+size) into the request (holds fs->mu): 0 or -errno. */
static int request_put(rvffs *fs, slot *q, const char *buf, size_t size, off_t off)
{
	size_t end = (size_t)off + size;
	if (end > fs->lim.request_max || (size_t)off > q->request_len) {
		/* Too long, or a hole (a write past the end): refused before
		 * anything is allocated; the caller logs why, without the lock. */
		return end > fs->lim.request_max ? -EFBIG : -EINVAL;
	}
	char *n = end > q->request_len ? realloc(q->request, end) : q->request;
	if (!n)
		return -ENOMEM;
	memcpy(n + off, buf, size);
	q->request = n;
	if (end > q->request_len)
		q->request_len = end;
	return 0;
}

static long request_write(fuse_req_t req, rvffs *fs, handle *h, const char *buf,
			  size_t size, off_t off)
{
	(void)req;
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_ino(fs, h->ino);
	char what[300] = "";
	if (q)
		snprintf(what, sizeof(what), "queries/%s/request", q->name);
	int rc = q ? request_put(fs, q, buf, size, off) : -EACCES;
	if (!rc)
		((request_handle *)h)->dirty = true;
	pthread_mutex_unlock(&fs->mu);
	if (rc == -EFBIG)
		limits_request(fs, what, (size_t)off + size);
	else if (rc == -EINVAL)
		fs_error(fs, "%s: a write at offset %lld would leave a hole; refused",
			 what, (long long)off);
	return rc ? rc : (long)size;
}

/* The close of a written request runs it into the result. */
static int request_flush(fuse_req_t req, rvffs *fs, handle *h)
{
	(void)req;
	request_handle *rh = (request_handle *)h;
	if (rh->dirty) {
		rh->dirty = false;
		slot_run(fs, h->ino - 1);
	}
	return 0;
}

static int result_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		       struct fuse_file_info *fi)
{
	(void)req;
	(void)v;
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_ino(fs, h->ino);
	if (q)
		h->text = q->result_len ? strndup(q->result, q->result_len) : strdup("");
	h->len = q ? q->result_len : 0;
	pthread_mutex_unlock(&fs->mu);
	fi->direct_io = 1;
	return !q ? -ENOENT : wants_write(fi) ? -EACCES : 0;
}

static long result_write(fuse_req_t req, rvffs *fs, handle *h, const char *buf,
			 size_t size, off_t off)
{
	(void)req;
	(void)fs;
	(void)h;
	(void)buf;
	(void)size;
	(void)off;
	return -EACCES;
}

const node_ops node_slot_request = {
	.kind = "slot request",
	.handle_size = sizeof(request_handle),
	.stat = slot_stat,
	.setattr = slot_setattr,
	.open = request_open,
	.read = request_read,
	.write = request_write,
	.flush = request_flush,
};

const node_ops node_slot_result = {
	.kind = "slot result",
	.stat = slot_stat,
	.setattr = slot_setattr,
	.open = result_open,
	.read = node_read_text,
	.write = result_write,
};

/* --- queries/NAME --- */

static uint64_t slot_lookup(rvffs *fs, rvf_view *v, uint64_t dir, const char *name)
{
	(void)v;
	uint64_t ino = 0;
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_ino(fs, dir);
	if (q && dir == q->ino) {
		if (!strcmp(name, "request"))
			ino = q->ino + 1;
		else if (!strcmp(name, "result"))
			ino = q->ino + 2;
	}
	pthread_mutex_unlock(&fs->mu);
	return ino;
}

static void slot_list(rvffs *fs, rvf_view *v, uint64_t dir, node_add_fn add, void *ctx)
{
	(void)fs;
	(void)v;
	add(ctx, "request", dir + 1);
	add(ctx, "result", dir + 2);
}

const node_ops node_slot_dir = {
	.kind = "slot",
	.stat = slot_stat,
	.setattr = slot_setattr,
	.lookup = slot_lookup,
	.list = slot_list,
};

/* --- queries/ --- */

static bool queries_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	node_fill(fs, st, ino, S_IFDIR | 0755, 0, node_view_mtime(fs, v), true);
	return true;
}

static uint64_t queries_lookup(rvffs *fs, rvf_view *v, uint64_t dir, const char *name)
{
	(void)v;
	(void)dir;
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_name(fs, name);
	uint64_t ino = q ? q->ino : 0;
	pthread_mutex_unlock(&fs->mu);
	return ino;
}

static void queries_list(rvffs *fs, rvf_view *v, uint64_t dir, node_add_fn add, void *ctx)
{
	(void)v;
	(void)dir;
	pthread_mutex_lock(&fs->mu);
	for (slot *q = fs->slots; q; q = q->next)
		add(ctx, q->name, q->ino);
	pthread_mutex_unlock(&fs->mu);
}

static void queries_mkdir(fuse_req_t req, rvffs *fs, const char *name, mode_t mode)
{
	(void)mode;
	const struct fuse_ctx *c = fuse_req_ctx(req);
	slot *q;
	int rc = access_dir(req, fs, INO_QUERIES);
	if (!rc)
		rc = slot_create(fs, name, c->uid, c->gid, &q);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	fs_reply_entry(req, fs, q->ino);
}

static void queries_rmdir(fuse_req_t req, rvffs *fs, const char *name)
{
	int rc = access_dir(req, fs, INO_QUERIES);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_name(fs, name);
	if (q)
		slot_remove(fs, q);
	pthread_mutex_unlock(&fs->mu);
	fuse_reply_err(req, q ? 0 : ENOENT);
}

const node_ops node_queries = {
	.kind = "queries/",
	.attr_timeout = 1.0,
	.stat = queries_stat,
	.open = node_open_dir,
	.lookup = queries_lookup,
	.list = queries_list,
	.mkdir = queries_mkdir,
	.rmdir = queries_rmdir,
};
