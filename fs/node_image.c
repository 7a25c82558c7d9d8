/* node_image.c - `kernel` and `ebpf`: the store's kernel image and eBPF
 * program as files.  Reading gives the (decompressed) image or bytecode;
 * writing one whole re-embeds it at the opener's close, keeping the header
 * fields; rm removes the segment.  The header fields as xattrs are in
 * image_xattr.c; the shared decompressed kernel in image.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

typedef struct image_handle {
	handle h;               /* h.text: the bytes read at open */
	rewrite w;
	struct image *image;    /* kernel read: h.text points into it */
} image_handle;

static rewrite *rw(handle *h)
{
	return &((image_handle *)h)->w;
}

bool image_name(const char *name)
{
	return !strcmp(name, "kernel") || !strcmp(name, "ebpf");
}

static bool is_kernel(const handle *h)
{
	return h->ino == INO_KERNEL;
}

static uint64_t kernel_size(rvf_view *v)
{
	rvf_kernel_info k;
	if (!rvf_view_kernel(v, &k))
		return 0;
	return k.image_length;
}

static bool image_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	rvf_kernel_info k;
	rvf_ebpf_info e;
	if (ino == INO_KERNEL && rvf_view_kernel(v, &k))
		node_fill(fs, st, ino, S_IFREG | 0644, kernel_size(v),
			  node_view_mtime(fs, v), false);
	else if (ino == INO_EBPF && rvf_view_ebpf(v, &e))
		node_fill(fs, st, ino, S_IFREG | 0644, e.program_size,
			  node_view_mtime(fs, v), false);
	else
		return false;
	return true;
}

/* The eBPF bytecode into h->text. */
static int load_ebpf(rvffs *fs, rvf_view *v, handle *h)
{
	rvf_ebpf_info e;
	if (!rvf_view_ebpf(v, &e))
		return -ENOENT;
	if (!e.bytecode) {
		fs_error(fs, "ebpf: the eBPF segment is damaged (hash mismatch or truncated)");
		return -EIO;
	}
	h->text = malloc(e.program_size ? (size_t)e.program_size : 1);
	if (!h->text)
		return -ENOMEM;
	memcpy(h->text, e.bytecode, (size_t)e.program_size);
	h->len = (size_t)e.program_size;
	return 0;
}

/* The current kernel image or eBPF bytecode into h->text. */
static int load_image(rvffs *fs, rvf_view *v, handle *h)
{
	image_handle *ih = (image_handle *)h;
	rvf_error err;
	if (!is_kernel(h))
		return load_ebpf(fs, v, h);
	if (!ih->w.on) {
		/* Reading: the copy every reader shares. */
		int rc = image_kernel(fs, v, &ih->image);
		if (!rc)
			h->text = (char *)image_bytes(ih->image, &h->len);
		return rc;
	}
	unsigned char *img;
	size_t len;
	if (rvf_view_kernel_image(v, &img, &len, NULL, &err) != RVF_OK)
		return -fs_rvf_errno(fs, "kernel", &err);
	h->text = (char *)img;
	h->len = len;
	return 0;
}

static int image_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		      struct fuse_file_info *fi)
{
	(void)req;
	rewrite *w = rw(h);
	bool wr = wants_write(fi);
	fi->direct_io = 1; /* generated: the page cache must not truncate it */
	if (wr && fs->read_only)
		return -EROFS;
	w->ino = h->ino;
	w->on = wr;
	int rc = 0;
	if (wr && (fi->flags & O_TRUNC))
		w->seq = true; /* replaced by what is written, if anything */
	else
		rc = load_image(fs, v, h);
	if (!rc && wr && h->text)
		rewrite_adopt(w, h); /* read-modify-write: writes patch it */
	if (wr) {
		h->gated = true;
		writer_add(fs, w);
	}
	return rc;
}

static void image_read(fuse_req_t req, rvffs *fs, handle *h, size_t size, off_t off)
{
	(void)fs;
	rewrite_read(req, h, rw(h), size, off);
}

static long image_write(fuse_req_t req, rvffs *fs, handle *h, const char *buf,
			size_t size, off_t off)
{
	(void)req;
	(void)fs;
	rewrite *w = rw(h);
	if (!w->on)
		return -EBADF;
	w->seq = w->seq && (size_t)off == w->len;
	int rc = w->failed ? -EINVAL : rewrite_put(w, buf, size, off);
	if (rc == -EINVAL)
		w->failed = true;
	return rc ? rc : (long)size;
}

/* The kernel written whole, re-embedded with its header fields. */
static rvf_code embed_kernel(rvffs *fs, rvf_view *v, rewrite *w, rvf_error *err)
{
	rvf_kernel_info k;
	rvf_kernel_spec spec = { 0 };
	char *cmd = NULL;
	if (rvf_view_kernel(v, &k)) {
		unsigned char *img;
		size_t len;
		spec.arch = k.arch;
		spec.kernel_type = k.kernel_type;
		spec.flags = k.flags;
		spec.api_port = k.api_port;
		spec.compress = k.compression != 0;
		if (rvf_view_kernel_image(v, &img, &len, &cmd, NULL) == RVF_OK)
			free(img);
		spec.cmdline = cmd;
	}
	rvf_code rc = rvf_store_embed_kernel(fs->store, &spec, w->buf, w->len, NULL, err);
	free(cmd);
	return rc;
}

/* The eBPF program written whole, re-embedded with its header and BTF. */
static rvf_code embed_ebpf(rvffs *fs, rvf_view *v, rewrite *w, rvf_error *err)
{
	rvf_ebpf_info e;
	rvf_ebpf_spec spec = { 0 };
	const unsigned char *btf = NULL;
	size_t btf_len = 0;
	if (rvf_view_ebpf(v, &e)) {
		spec.program_type = e.program_type;
		spec.attach_type = e.attach_type;
		spec.max_dimension = e.max_dimension;
		btf = e.btf;
		btf_len = e.btf_size;
	}
	return rvf_store_embed_ebpf(fs->store, &spec, w->buf, w->len, btf,
				    btf_len, NULL, err);
}

/* The opener's close commits what was written. */
static int image_flush(fuse_req_t req, rvffs *fs, handle *h)
{
	(void)req;
	rewrite *w = rw(h);
	if (!w->on || !w->dirty)
		return 0; /* nothing written: nothing to commit, nothing to say */
	w->dirty = false;
	if (w->failed)
		return -EINVAL; /* a write() already failed and said why */
	rvf_view *v = fs_view(fs);
	rvf_error err;
	rvf_code rc = is_kernel(h) ? embed_kernel(fs, v, w, &err) :
		      embed_ebpf(fs, v, w, &err);
	rvf_view_release(v);
	if (rc != RVF_OK)
		return -fs_rvf_errno(fs, is_kernel(h) ? "kernel" : "ebpf", &err);
	fs_invalidate(fs, false);
	return 0;
}

static bool image_pending(rvffs *fs, handle *h)
{
	(void)fs;
	return rw(h)->on && rw(h)->dirty;
}

static void image_release(rvffs *fs, handle *h)
{
	image_handle *ih = (image_handle *)h;
	if (ih->image) {
		image_put(ih->image); /* shared: h->text is its bytes */
		h->text = NULL;
	}
	if (ih->w.on)
		writer_remove(fs, &ih->w);
	free(ih->w.buf);
}

/* O_TRUNC: the new content comes from the writes that follow. */
static int image_truncate(rvffs *fs, handle *h, off_t size)
{
	return rewrite_truncate(fs, h ? rw(h) : NULL, size);
}

const node_ops node_image = {
	.kind = "image",
	.handle_size = sizeof(image_handle),
	.creatable = true,
	.stat = image_stat,
	.open = image_open,
	.read = image_read,
	.write = image_write,
	.flush = image_flush,
	.pending = image_pending,
	.release = image_release,
	.truncate = image_truncate,
	.getxattr = image_getxattr,
	.listxattr = image_listxattr,
	.setxattr = image_setxattr,
};

int image_create(fuse_req_t req, rvffs *fs, const char *name,
		 struct fuse_file_info *fi, handle **out)
{
	(void)req;
	uint64_t ino = name[0] == 'k' ? INO_KERNEL : INO_EBPF;
	handle *h = handle_new(&node_image, ino);
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

void image_unlink(fuse_req_t req, rvffs *fs, const char *name)
{
	rvf_error err;
	rvf_commit_info info;
	rvf_code rc = name[0] == 'k' ? rvf_store_remove_kernel(fs->store, &info, &err) :
		      rvf_store_remove_ebpf(fs->store, &info, &err);
	if (rc != RVF_OK) {
		fuse_reply_err(req, rc == RVF_E_NOT_FOUND ? ENOENT :
			       fs_rvf_errno(fs, name, &err));
		return;
	}
	fs_invalidate(fs, false);
	fuse_reply_err(req, 0);
}
