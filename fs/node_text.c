/* node_text.c - the files the tree generates from the store: status,
 * manifest, lineage, witness (text.c writes them), and errors (the recent
 * error lines).  Each open takes the whole text; reads never change it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

/* The text of a generated file of view v (malloc'd; NULL: out of memory). */
static char *generate(rvffs *fs, rvf_view *v, uint64_t ino, size_t *len)
{
	switch (ino) {
	case INO_STATUS:
		return text_status(fs, v, len);
	case INO_MANIFEST:
		return text_manifest(v, len);
	case INO_LINEAGE:
		return text_lineage(v, len);
	default:
		return text_witness(v, len);
	}
}

static bool text_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	size_t len = 0;
	free(generate(fs, v, ino, &len));
	node_fill(fs, st, ino, S_IFREG | 0444, len, node_view_mtime(fs, v), false);
	return true;
}

static int text_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		     struct fuse_file_info *fi)
{
	(void)req;
	fi->direct_io = 1; /* generated: the page cache must not truncate it */
	if (wants_write(fi))
		return -EACCES;
	h->text = generate(fs, v, h->ino, &h->len);
	return h->text ? 0 : -ENOMEM;
}

const node_ops node_text = {
	.kind = "text",
	.stat = text_stat,
	.open = text_open,
	.read = node_read_text,
};

static bool errors_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	(void)v;
	pthread_mutex_lock(&fs->mu);
	size_t len = fs->errors_len;
	pthread_mutex_unlock(&fs->mu);
	node_fill(fs, st, ino, S_IFREG | 0444, len, fs->mount_time, false);
	return true;
}

static int errors_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		       struct fuse_file_info *fi)
{
	(void)req;
	(void)v;
	fi->direct_io = 1;
	if (wants_write(fi))
		return -EACCES;
	pthread_mutex_lock(&fs->mu);
	h->text = fs->errors_len ? strndup(fs->errors, fs->errors_len) : strdup("");
	h->len = fs->errors_len;
	pthread_mutex_unlock(&fs->mu);
	return h->text ? 0 : -ENOMEM;
}

const node_ops node_errors = {
	.kind = "errors",
	.store_free = true, /* readable when the store shrank: it says why */
	.stat = errors_stat,
	.open = errors_open,
	.read = node_read_text,
};
