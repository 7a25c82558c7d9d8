/* node_control.c - `control`: one command per write, judged as the
 * process that opened it for writing (control.c runs them); reads are
 * empty, so tar, rsync and cp -a of the tree copy it as an empty file. */
#include <errno.h>

#include "caller.h"
#include "node.h"

typedef struct control_handle {
	handle h;
	struct caller *opener;  /* who opened it for writing */
} control_handle;

static bool control_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	(void)v;
	node_fill(fs, st, ino, S_IFREG | 0644, 0, fs->mount_time, false);
	return true;
}

static int control_open_node(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
			     struct fuse_file_info *fi)
{
	(void)fs;
	(void)v;
	return control_open(req, &((control_handle *)h)->opener, fi);
}

static long control_write_node(fuse_req_t req, rvffs *fs, handle *h,
			       const char *buf, size_t size, off_t off)
{
	(void)fs;
	(void)off;
	control_write(req, ((control_handle *)h)->opener, buf, size);
	return NODE_REPLIED;
}

static void control_release(rvffs *fs, handle *h)
{
	(void)fs;
	caller_free(((control_handle *)h)->opener);
}

/* `> control` (O_TRUNC) before a command is taken. */
static int control_truncate(rvffs *fs, handle *h, off_t size)
{
	(void)h;
	(void)size;
	return fs->read_only ? -EROFS : 0;
}

const node_ops node_control = {
	.kind = "control",
	.handle_size = sizeof(control_handle),
	.stat = control_stat,
	.open = control_open_node,
	.read = node_read_text,
	.write = control_write_node,
	.release = control_release,
	.truncate = control_truncate,
};
