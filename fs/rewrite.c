/* rewrite.c - a vector, kernel or eBPF file written whole: the bytes are
 * kept per descriptor until its close commits them (node_vector.c,
 * node_image.c); the list of them gives getattr the size being written. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

void rewrite_adopt(rewrite *w, handle *h)
{
	w->buf = (unsigned char *)h->text;
	w->len = w->cap = h->len;
	h->text = NULL;
	h->len = 0;
}

int rewrite_put(rewrite *w, const char *buf, size_t size, off_t off)
{
	size_t end = (size_t)off + size;
	if (end > (1u << 28)) /* kernels are at most 128 MiB */
		return -EFBIG;
	if (end > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < end)
			cap *= 2;
		unsigned char *n = realloc(w->buf, cap);
		if (!n)
			return -ENOMEM;
		w->buf = n;
		w->cap = cap;
	}
	if ((size_t)off > w->len)
		memset(w->buf + w->len, 0, (size_t)off - w->len);
	memcpy(w->buf + off, buf, size);
	if (end > w->len)
		w->len = end;
	w->dirty = true;
	return 0;
}

int rewrite_truncate(rvffs *fs, rewrite *w, off_t size)
{
	if (fs->read_only)
		return -EROFS;
	if (w && size == 0) {
		w->len = 0;
		w->seq = true;
	}
	return 0;
}

void rewrite_read(fuse_req_t req, handle *h, rewrite *w, size_t size, off_t off)
{
	if (w->on && w->buf && !h->text)
		reply_copy(req, (const char *)w->buf, w->len, size, off);
	else
		reply_copy(req, h->text, h->len, size, off);
}

void writer_add(rvffs *fs, rewrite *w)
{
	pthread_mutex_lock(&fs->mu);
	w->next = fs->writers;
	fs->writers = w;
	pthread_mutex_unlock(&fs->mu);
}

void writer_remove(rvffs *fs, rewrite *w)
{
	pthread_mutex_lock(&fs->mu);
	for (rewrite **p = &fs->writers; *p; p = &(*p)->next)
		if (*p == w) {
			*p = w->next;
			break;
		}
	pthread_mutex_unlock(&fs->mu);
}

long long writer_size(rvffs *fs, uint64_t ino)
{
	long long size = -1;
	pthread_mutex_lock(&fs->mu);
	for (rewrite *w = fs->writers; w; w = w->next)
		if (w->ino == ino && (w->dirty || w->seq))
			size = (long long)w->len;
	pthread_mutex_unlock(&fs->mu);
	return size;
}

int writer_meta(rvffs *fs, uint64_t ino, const char *field, const char *value,
		size_t len)
{
	int rc = -ENOENT;
	pthread_mutex_lock(&fs->mu);
	for (rewrite *w = fs->writers; w; w = w->next)
		if (w->ino == ino) { /* the newest: writers are pushed in front */
			rc = value ? pending_meta_set(&w->meta, &w->nmeta, field, value, len)
				   : pending_meta_remove(w->meta, &w->nmeta, field);
			break;
		}
	pthread_mutex_unlock(&fs->mu);
	return rc;
}

void writer_take_meta(rvffs *fs, rewrite *w, staged_xattr **x, size_t *n)
{
	pthread_mutex_lock(&fs->mu);
	*x = w->meta;
	*n = w->nmeta;
	w->meta = NULL;
	w->nmeta = 0;
	pthread_mutex_unlock(&fs->mu);
}
