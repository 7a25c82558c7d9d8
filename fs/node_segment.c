/* node_segment.c - segments/ and segments/NNNN-TYPE: each segment of the
 * store as a read-only file of its bytes (header and payload), its header
 * fields as xattrs.  Names and xattr values are in segfiles.c. */
#include <errno.h>
#include <string.h>

#include "node.h"

typedef struct segment_handle {
	handle h;
	rvf_view *view;         /* pinned: the segment's bytes stay mapped */
} segment_handle;

static rvf_view *view_of(handle *h)
{
	return ((segment_handle *)h)->view;
}

/* --- segments/NAME --- */

static bool segment_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	long i = seg_find_ino(fs, v, ino);
	if (i < 0)
		return false;
	const rvf_segment *s = rvf_view_segment(v, (size_t)i);
	node_fill(fs, st, ino, S_IFREG | 0444, rvf_segment_extent(s),
		  seg_mtime(v, (size_t)i), false);
	return true;
}

static int segment_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
			struct fuse_file_info *fi)
{
	(void)req;
	if (wants_write(fi))
		return fs->read_only ? -EROFS : -EACCES;
	if (seg_find_ino(fs, v, h->ino) < 0)
		return -ENOENT;
	((segment_handle *)h)->view = rvf_view_ref(v);
	fi->keep_cache = 1; /* immutable */
	return 0;
}

/* A segment whose header or hash is bad is not read: EIO, and why. */
static void segment_read(fuse_req_t req, rvffs *fs, handle *h, size_t size, off_t off)
{
	rvf_view *v = view_of(h);
	long i = seg_find_ino(fs, v, h->ino);
	const rvf_segment *s = i >= 0 ? rvf_view_segment(v, (size_t)i) : NULL;
	/* A gap is raw bytes: shown as they are, so segments/ adds up to the
	 * file (restore). */
	if (!s || (!s->gap && (!s->readable || !s->hash_ok))) {
		char name[SEG_NAME_MAX] = "?";
		if (s)
			seg_name(v, (size_t)i, name);
		fs_error(fs, "segments/%s: %s: refusing to read it (EIO)", name,
			 !s ? "gone" : !s->readable ? "no valid segment header at its offset" :
			 "content hash mismatch");
		fuse_reply_err(req, EIO);
		return;
	}
	int bad = fs_store_check(fs);
	if (bad) {
		fuse_reply_err(req, -bad);
		return;
	}
	reply_slice(req, (const char *)rvf_view_segment_bytes(v, s),
		    rvf_segment_extent(s), size, off);
}

static void segment_release(rvffs *fs, handle *h)
{
	(void)fs;
	if (view_of(h))
		rvf_view_release(view_of(h));
}

static void segment_getxattr(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
			     const char *name, size_t size)
{
	char buf[256];
	long i = seg_find_ino(fs, v, ino);
	long n = i < 0 ? -ENOENT : seg_xattr(v, (size_t)i, name, buf, sizeof(buf));
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		xattr_reply(req, buf, (size_t)n, size);
}

static void segment_listxattr(rvffs *fs, rvf_view *v, uint64_t ino, FILE *out)
{
	(void)fs;
	(void)v;
	(void)ino;
	for (size_t i = 0; seg_xattr_names[i]; i++)
		fwrite(seg_xattr_names[i], 1, strlen(seg_xattr_names[i]) + 1, out);
}

/* Segments never change. */
static int segment_setxattr(rvffs *fs, rvf_view *v, uint64_t ino, const char *name,
			    const char *value, size_t size)
{
	(void)fs;
	(void)v;
	(void)ino;
	(void)name;
	(void)value;
	(void)size;
	return -EACCES;
}

const node_ops node_segment = {
	.kind = "segment",
	.handle_size = sizeof(segment_handle),
	.attr_timeout = 3600.0, /* immutable: the kernel may keep it long */
	.stat = segment_stat,
	.open = segment_open,
	.read = segment_read,
	.release = segment_release,
	.getxattr = segment_getxattr,
	.listxattr = segment_listxattr,
	.setxattr = segment_setxattr,
};

/* --- segments/ --- */

static uint64_t segments_lookup(rvffs *fs, rvf_view *v, uint64_t dir, const char *name)
{
	(void)dir;
	long i = seg_find(v, name);
	return i < 0 ? 0 : seg_ino(fs, rvf_view_segment(v, (size_t)i)->offset);
}

static uint64_t segments_count(rvf_view *v)
{
	return rvf_view_segment_count(v);
}

static uint64_t segments_entry(rvffs *fs, rvf_view *v, size_t i, char name[SEG_NAME_MAX])
{
	seg_name(v, i, name);
	return seg_ino(fs, rvf_view_segment(v, i)->offset);
}

const node_ops node_segments = {
	.kind = "segments/",
	.attr_timeout = 1.0,
	.stat = node_stat_dir,
	.open = node_open_dir,
	.lookup = segments_lookup,
	.count = segments_count,
	.entry = segments_entry,
};
