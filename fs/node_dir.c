/* node_dir.c - the root directory: its fixed names, and `kernel` / `ebpf`
 * made (written whole) or removed there. */
#include <errno.h>
#include <string.h>

#include "node.h"

static const struct {
	const char *name;
	uint64_t ino;
} root_names[] = {
	{ "status", INO_STATUS },     { "manifest", INO_MANIFEST },
	{ "lineage", INO_LINEAGE },   { "witness", INO_WITNESS },
	{ "errors", INO_ERRORS },     { "query", INO_QUERY },
	{ "kernel", INO_KERNEL },     { "ebpf", INO_EBPF },
	{ "segments", INO_SEGMENTS }, { "vectors", INO_VECTORS },
	{ "ingest", INO_INGEST },     { "queries", INO_QUERIES },
	{ "control", INO_CONTROL },
	{ "wasm", INO_WASM },         { "dashboard", INO_DASHBOARD },
};
#define NROOT (sizeof(root_names) / sizeof(root_names[0]))

int node_open_dir(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		  struct fuse_file_info *fi)
{
	(void)req;
	(void)fs;
	(void)v;
	(void)h;
	(void)fi;
	return -EISDIR;
}

static uint64_t root_lookup(rvffs *fs, rvf_view *v, uint64_t dir, const char *name)
{
	(void)fs;
	(void)v;
	(void)dir;
	for (size_t i = 0; i < NROOT; i++)
		if (!strcmp(name, root_names[i].name))
			return root_names[i].ino;
	return 0;
}

/* The names that exist in v (kernel only when the store has one, ...). */
static void root_list(rvffs *fs, rvf_view *v, uint64_t dir, node_add_fn add, void *ctx)
{
	(void)dir;
	struct stat st;
	for (size_t i = 0; i < NROOT; i++)
		if (fs_stat(fs, v, root_names[i].ino, &st))
			add(ctx, root_names[i].name, root_names[i].ino);
}

static int root_create(fuse_req_t req, rvffs *fs, const char *name, mode_t mode,
		       struct fuse_file_info *fi, handle **out)
{
	(void)mode;
	if (!image_name(name))
		return -EPERM;
	return image_create(req, fs, name, fi, out);
}

static void root_unlink(fuse_req_t req, rvffs *fs, const char *name)
{
	if (fs->read_only)
		fuse_reply_err(req, EROFS);
	else if (image_name(name))
		image_unlink(req, fs, name);
	else
		fuse_reply_err(req, EPERM);
}

const node_ops node_root = {
	.kind = "/",
	.attr_timeout = 1.0,
	.stat = node_stat_dir,
	.open = node_open_dir,
	.lookup = root_lookup,
	.list = root_list,
	.create = root_create,
	.unlink = root_unlink,
};
