/* node.c - which kind an inode is, the handles of open files, and what
 * every kind shares: attributes and read replies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node.h"

#define BLKSIZE (1u << 20) /* tools read in large blocks */

/* Nothing: every operation refused. */
const node_ops node_none = { .kind = "none" };

/* The fixed inodes, by number. */
static const node_ops *const fixed[INO_FIXED_END] = {
	[INO_ROOT] = &node_root,
	[INO_STATUS] = &node_text,
	[INO_MANIFEST] = &node_text,
	[INO_LINEAGE] = &node_text,
	[INO_WITNESS] = &node_text,
	[INO_ERRORS] = &node_errors,
	[INO_QUERY] = &node_query,
	[INO_KERNEL] = &node_image,
	[INO_EBPF] = &node_image,
	[INO_SEGMENTS] = &node_segments,
	[INO_VECTORS] = &node_vectors,
	[INO_INGEST] = &node_ingest,
	[INO_QUERIES] = &node_queries,
	[INO_CONTROL] = &node_control,
	[INO_WASM] = &node_bundle,
	[INO_DASHBOARD] = &node_dashboard,
};

/* A dynamic inode: a staged file, or a slot's directory, request or
 * result (slots.c numbers them ino, ino+1, ino+2). */
static const node_ops *dynamic_node(rvffs *fs, uint64_t ino)
{
	const node_ops *ops = &node_staged; /* says "not found" itself */
	pthread_mutex_lock(&fs->mu);
	slot *q = staged_find_ino(fs, ino) ? NULL : slot_find_ino(fs, ino);
	if (q)
		ops = ino == q->ino ? &node_slot_dir :
		      ino == q->ino + 1 ? &node_slot_request : &node_slot_result;
	pthread_mutex_unlock(&fs->mu);
	return ops;
}

const node_ops *node_of(rvffs *fs, uint64_t ino)
{
	if (ino >= INO_VEC_BASE)
		return &node_vector;
	if (ino >= INO_SEG_BASE)
		return &node_segment;
	if (ino >= INO_BIGID_BASE)
		return &node_vector;
	if (ino >= INO_DYN_BASE)
		return dynamic_node(fs, ino);
	if (bundle_node(ino))
		return &node_bundle;
	if (ino < INO_FIXED_END && fixed[ino])
		return fixed[ino];
	return &node_none;
}

bool fs_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	const node_ops *ops = node_of(fs, ino);
	return ops->stat && ops->stat(fs, v, ino, st);
}

double fs_attr_timeout(rvffs *fs, uint64_t ino)
{
	return node_of(fs, ino)->attr_timeout;
}

/* Every open handle, so that the ones never released are freed at exit. */
static pthread_mutex_t handles_mu = PTHREAD_MUTEX_INITIALIZER;
static handle *handles;

handle *handle_new(const node_ops *ops, uint64_t ino)
{
	handle *h = calloc(1, ops->handle_size ? ops->handle_size : sizeof(*h));
	if (!h)
		return NULL;
	h->ops = ops;
	h->ino = ino;
	pthread_mutex_lock(&handles_mu);
	h->reg_next = handles;
	if (handles)
		handles->reg_prev = h;
	handles = h;
	pthread_mutex_unlock(&handles_mu);
	return h;
}

void handle_free(rvffs *fs, handle *h)
{
	pthread_mutex_lock(&handles_mu);
	if (h->reg_prev)
		h->reg_prev->reg_next = h->reg_next;
	else
		handles = h->reg_next;
	if (h->reg_next)
		h->reg_next->reg_prev = h->reg_prev;
	pthread_mutex_unlock(&handles_mu);
	if (h->ops->release)
		h->ops->release(fs, h);
	free(h->text);
	free(h);
}

void fs_handles_free(rvffs *fs)
{
	while (handles)
		handle_free(fs, handles);
}

struct timespec node_view_mtime(rvffs *fs, rvf_view *v)
{
	/* Every getattr and lookup needs it: stat the store only when a
	 * commit changed the committed state. */
	const rvf_info *i = rvf_view_info(v);
	pthread_mutex_lock(&fs->mu);
	bool fresh = fs->mtime_valid && fs->mtime_epoch == i->epoch &&
		     fs->mtime_size == i->file_size;
	struct timespec t = fs->mtime;
	pthread_mutex_unlock(&fs->mu);
	if (fresh)
		return t;
	struct stat st;
	t = stat(fs->store_path, &st) == 0 ? st.st_mtim : fs->mount_time;
	pthread_mutex_lock(&fs->mu);
	fs->mtime = t;
	fs->mtime_epoch = i->epoch;
	fs->mtime_size = i->file_size;
	fs->mtime_valid = true;
	pthread_mutex_unlock(&fs->mu);
	return t;
}

void node_fill(rvffs *fs, struct stat *st, uint64_t ino, mode_t mode,
	       uint64_t size, struct timespec mtime, bool answers_queries)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	bool dir = S_ISDIR(mode);
	/* A read-only mount still answers queries: the query file, queries/
	 * and its slots stay writable; nothing else is. */
	if (fs->read_only && !answers_queries)
		mode &= ~(mode_t)0222;
	st->st_mode = mode;
	st->st_nlink = dir ? 2 : 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)size;
	st->st_blksize = BLKSIZE;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	if (dir)
		st->st_blocks = 1;
	st->st_mtim = st->st_ctim = st->st_atim = mtime;
}

bool node_stat_dir(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	node_fill(fs, st, ino, S_IFDIR | 0755, 0, node_view_mtime(fs, v), false);
	return true;
}

void node_fill_pending(rvffs *fs, struct stat *st, uint64_t ino, uint64_t size)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | 0644;
	st->st_nlink = 1;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_size = (off_t)size;
	st->st_blksize = BLKSIZE;
}

void reply_slice(fuse_req_t req, const char *p, size_t len, size_t size, off_t off)
{
	if ((uint64_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, p + off, len - (size_t)off < size ?
					     len - (size_t)off : size);
}

void reply_copy(fuse_req_t req, const char *p, size_t len, size_t size, off_t off)
{
	/* A sanitizer build checks the buffer after the write, when another
	 * thread may already have released the handle. */
	if (!p || (uint64_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t n = len - (size_t)off < size ? len - (size_t)off : size;
	char *copy = malloc(n);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, p + off, n);
	fuse_reply_buf(req, copy, n);
	free(copy);
}

void node_read_text(fuse_req_t req, rvffs *fs, handle *h, size_t size, off_t off)
{
	(void)fs;
	reply_copy(req, h->text, h->len, size, off);
}
