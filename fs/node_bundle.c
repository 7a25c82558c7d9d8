/* node_bundle.c - wasm (one module: a file; several: wasm/NAME) and
 * dashboard/FILE: the store's WASM modules and dashboard bundle as
 * read-only files (bundles.c reads them from the view). */
#include <errno.h>

#include "node.h"

static bool bundle_node_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	mode_t mode;
	uint64_t size;
	if (!bundle_stat(v, ino, &mode, &size))
		return false;
	node_fill(fs, st, ino, mode, size, node_view_mtime(fs, v), false);
	return true;
}

static int bundle_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		       struct fuse_file_info *fi)
{
	(void)req;
	fi->direct_io = 1;
	if (wants_write(fi))
		return fs->read_only ? -EROFS : -EACCES;
	return bundle_read(fs, v, h->ino, &h->text, &h->len);
}

static uint64_t bundle_node_lookup(rvffs *fs, rvf_view *v, uint64_t dir, const char *name)
{
	(void)fs;
	return bundle_lookup(v, dir, name);
}

static void bundle_node_list(rvffs *fs, rvf_view *v, uint64_t dir, node_add_fn add,
			     void *ctx)
{
	(void)fs;
	bundle_list(v, dir, add, ctx);
}

/* wasm and its modules, dashboard's files */
const node_ops node_bundle = {
	.kind = "bundle",
	.stat = bundle_node_stat,
	.open = bundle_open,
	.read = node_read_text,
	.lookup = bundle_node_lookup,
	.list = bundle_node_list,
};

const node_ops node_dashboard = {
	.kind = "dashboard/",
	.stat = bundle_node_stat,
	.open = node_open_dir,
	.lookup = bundle_node_lookup,
	.list = bundle_node_list,
};
