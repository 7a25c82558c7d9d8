/* ops_file.c - FUSE handlers for open files: generated texts, the query
 * file, segments, vectors, kernel / eBPF images and ingest staging. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "caller.h"
#include "rvffs.h"

/* Every open handle, so that the ones never released are freed at exit. */
static pthread_mutex_t handles_mu = PTHREAD_MUTEX_INITIALIZER;
static handle *handles;

static handle *handle_new(uint64_t ino)
{
	handle *h = calloc(1, sizeof(*h));
	if (h) {
		h->ino = ino;
		pthread_mutex_init(&h->lock, NULL);
		pthread_mutex_lock(&handles_mu);
		h->reg_next = handles;
		if (handles)
			handles->reg_prev = h;
		handles = h;
		pthread_mutex_unlock(&handles_mu);
	}
	return h;
}

static void handle_free(handle *h)
{
	pthread_mutex_lock(&handles_mu);
	if (h->reg_prev)
		h->reg_prev->reg_next = h->reg_next;
	else
		handles = h->reg_next;
	if (h->reg_next)
		h->reg_next->reg_prev = h->reg_prev;
	pthread_mutex_unlock(&handles_mu);
	if (h->view)
		rvf_view_release(h->view);
	if (h->image) {
		image_put(h->image); /* shared: h->text is its bytes */
		h->text = NULL;
	}
	limits_user_hold(NULL, h->uid, &h->held, 0, false);
	free(h->text);
	free(h->req);
	free(h->wbuf);
	caller_free(h->opener);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

void fs_handles_free(rvffs *fs)
{
	while (handles) {
		handle *h = handles;
		if (h->st)
			staged_put(fs, h->st);
		if (h->for_write)
			writer_remove(fs, h);
		handle_free(h);
	}
}

void writer_add(rvffs *fs, handle *h)
{
	pthread_mutex_lock(&fs->mu);
	h->next_writer = fs->writers;
	fs->writers = h;
	pthread_mutex_unlock(&fs->mu);
}

void writer_remove(rvffs *fs, handle *h)
{
	pthread_mutex_lock(&fs->mu);
	for (handle **p = &fs->writers; *p; p = &(*p)->next_writer)
		if (*p == h) {
			*p = h->next_writer;
			break;
		}
	pthread_mutex_unlock(&fs->mu);
}

long long writer_size(rvffs *fs, uint64_t ino)
{
	long long size = -1;
	pthread_mutex_lock(&fs->mu);
	for (handle *h = fs->writers; h; h = h->next_writer)
		if (h->ino == ino && (h->wdirty || h->wseq))
			size = (long long)h->wlen;
	pthread_mutex_unlock(&fs->mu);
	return size;
}

static handle *fh(struct fuse_file_info *fi)
{
	return (handle *)(uintptr_t)fi->fh;
}

static bool wants_write(const struct fuse_file_info *fi)
{
	return (fi->flags & O_ACCMODE) != O_RDONLY;
}

/* Loads the current kernel image or eBPF bytecode into h->text. */
static int load_image(rvffs *fs, rvf_view *v, handle *h)
{
	rvf_error err;
	if (h->ino == INO_KERNEL && !h->for_write) {
		/* Reading: the copy every reader shares. */
		int rc = image_kernel(fs, v, &h->image);
		if (!rc)
			h->text = (char *)image_bytes(h->image, &h->len);
		return rc;
	}
	if (h->ino == INO_KERNEL) {
		unsigned char *img;
		size_t len;
		if (rvf_view_kernel_image(v, &img, &len, NULL, &err) != RVF_OK)
			return -fs_rvf_errno(fs, "kernel", &err);
		h->text = (char *)img;
		h->len = len;
		return 0;
	}
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

static int open_fixed(rvffs *fs, rvf_view *v, handle *h,
		      struct fuse_file_info *fi)
{
	bool w = wants_write(fi);
	fi->direct_io = 1; /* generated: the page cache must not truncate it */
	switch (h->ino) {
	case INO_STATUS:
	case INO_MANIFEST:
	case INO_LINEAGE:
	case INO_WITNESS:
	case INO_ERRORS:
		if (w)
			return -EACCES;
		if (h->ino == INO_STATUS)
			h->text = text_status(fs, v, &h->len);
		else if (h->ino == INO_MANIFEST)
			h->text = text_manifest(v, &h->len);
		else if (h->ino == INO_LINEAGE)
			h->text = text_lineage(v, &h->len);
		else if (h->ino == INO_WITNESS)
			h->text = text_witness(v, &h->len);
		else {
			pthread_mutex_lock(&fs->mu);
			h->text = fs->errors_len ? strndup(fs->errors, fs->errors_len) :
				  strdup("");
			h->len = fs->errors_len;
			pthread_mutex_unlock(&fs->mu);
		}
		return h->text ? 0 : -ENOMEM;
	case INO_QUERY:
		fi->nonseekable = 1;
		return 0;
	case INO_WASM:
		if (w)
			return fs->read_only ? -EROFS : -EACCES;
		return bundle_read(fs, v, h->ino, &h->text, &h->len);
	case INO_KERNEL:
	case INO_EBPF:
		if (w && fs->read_only)
			return -EROFS;
		h->for_write = w;
		if (w && (fi->flags & O_TRUNC)) {
			h->wseq = true; /* replaced by what is written, if anything */
			return 0;
		}
		int rc = load_image(fs, v, h);
		if (!rc && w) {
			/* Read-modify-write: writes patch the current image. */
			h->wbuf = (unsigned char *)h->text;
			h->wlen = h->wcap = h->len;
			h->text = NULL;
			h->len = 0;
		}
		return rc;
	default:
		return -EISDIR;
	}
}

void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	handle *h = handle_new(ino);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rvf_view *v = fs_view(fs);
	bool w = wants_write(fi);
	int rc = access_ino(req, fs, v, ino, access_open_mask(fi->flags), NULL);
	if (rc == -ENOENT)
		rc = 0; /* each kind says below how it is missing */
	if (rc)
		goto out;
	switch (fs_node_kind(ino)) {
	case NODE_FIXED:
		rc = ino == INO_CONTROL ? control_open(req, h, fi) :
		     open_fixed(fs, v, h, fi);
		break;
	case NODE_SEGMENT: {
		if (w) {
			rc = fs->read_only ? -EROFS : -EACCES;
			break;
		}
		long i = seg_find_ino(fs, v, ino);
		if (i < 0) {
			rc = -ENOENT;
			break;
		}
		h->view = rvf_view_ref(v);
		fi->keep_cache = 1; /* immutable */
		break;
	}
	case NODE_BUNDLE:
		if (w) {
			rc = fs->read_only ? -EROFS : -EACCES;
			break;
		}
		fi->direct_io = 1;
		rc = bundle_read(fs, v, ino, &h->text, &h->len);
		break;
	case NODE_VECTOR: {
		uint64_t id;
		long i = vec_id_of(fs, ino, &id) ? rvf_view_find(v, id) : -1;
		if (w && fs->read_only) {
			rc = -EROFS;
			break;
		}
		h->for_write = w;
		if (i >= 0 && !(w && (fi->flags & O_TRUNC)))
			h->text = text_vector(v, (size_t)i, &h->len);
		else if (i < 0 && !w)
			rc = -ENOENT;
		if (w && h->text) {
			/* Read-modify-write: start from the current text. */
			h->wbuf = (unsigned char *)h->text;
			h->wlen = h->wcap = h->len;
			h->text = NULL;
			h->len = 0;
		}
		h->wseq = w && (i < 0 || (fi->flags & O_TRUNC));
		fi->direct_io = 1;
		break;
	}
	case NODE_STAGED: {
		pthread_mutex_lock(&fs->mu);
		staged *s = staged_find_ino(fs, ino);
		slot *q = s ? NULL : slot_find_ino(fs, ino);
		if (s) {
			s->opens++;
			h->st = s;
			/* Emptied, not yet written: a close now commits
			 * nothing (bash's first descriptor of `> f`). */
			if (w && (fi->flags & O_TRUNC) && ftruncate(s->fd, 0) == 0) {
				s->size = 0;
				limits_unstage(s, 0);
			}
		} else if (q && ino == q->ino + 1) {
			if (w && (fi->flags & O_TRUNC)) {
				free(q->request);
				q->request = NULL;
				q->request_len = 0;
			}
			fi->direct_io = 1;
		} else if (q && ino == q->ino + 2) {
			if (w)
				rc = -EACCES;
			h->text = q->result_len ? strndup(q->result, q->result_len) : strdup("");
			h->len = q->result_len;
			fi->direct_io = 1;
		} else {
			rc = -ENOENT;
		}
		pthread_mutex_unlock(&fs->mu);
		break;
	}
	default:
		rc = -ENOENT;
	}
out:
	/* What open read from a store that shrank under us is not the
	 * store (`errors` stays readable: it says why). */
	if (!rc && ino != INO_ERRORS)
		rc = fs_store_check(fs);
	rvf_view_release(v);
	if (rc) {
		handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	if (h->for_write)
		writer_add(fs, h);
	if (ino == INO_QUERY)
		h->uid = fuse_req_ctx(req)->uid; /* query_user_max is the opener's */
	if (h->for_write || (h->st && w))
		h->owner = caller_tgid(req);
	/* A close of a read-only descriptor has nothing to commit (flush
	 * acts on writes only): no FLUSH round trip, one less per `cat`. */
	if (!w)
		fi->noflush = 1;
	fi->fh = (uintptr_t)h;
	fuse_reply_open(req, fi);
}

/* The store's dimension now (0: a store without vectors). */
static uint32_t store_dimension(rvffs *fs)
{
	rvf_view *v = fs_view(fs);
	uint32_t d = v ? rvf_view_info(v)->dimension : 0;
	if (v)
		rvf_view_release(v);
	return d;
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode, struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	if (fs->read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	handle *h = handle_new(0);
	if (!h) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	bool known = parent == INO_INGEST || parent == INO_VECTORS || parent == INO_ROOT;
	int rc = known ? access_dir(req, fs, parent) : 0;
	if (rc) {
		/* refused below */
	} else if (parent == INO_INGEST) {
		rvf_import_format f;
		if (name[0] != '.' && !rvf_import_format_from_name(name, &f)) {
			fs_error(fs, "ingest/%s: unknown file type (use .csv .tsv .txt .jsonl .ndjson .json .fvecs .npy .f32)",
				 name);
			rc = -EINVAL;
		} else {
			pthread_mutex_lock(&fs->mu);
			staged *old = staged_find_name(fs, name);
			pthread_mutex_unlock(&fs->mu);
			if (old)
				staged_remove(fs, old);
			staged *s;
			rc = staged_create(fs, name, staged_mode(mode), &s);
			if (!rc) {
				const struct fuse_ctx *c = fuse_req_ctx(req);
				pthread_mutex_lock(&fs->mu);
				s->uid = c->uid;
				s->gid = c->gid;
				pthread_mutex_unlock(&fs->mu);
				h->ino = s->ino;
				h->st = s;
				s->opens++;
			}
		}
	} else if (parent == INO_VECTORS && name[0] == '.') {
		/* rsync's temporary ".ID.XXXXXX": staged until renamed to ID */
		pthread_mutex_lock(&fs->mu);
		staged *old = staged_find_in(fs, INO_VECTORS, name);
		pthread_mutex_unlock(&fs->mu);
		if (old)
			staged_remove(fs, old);
		staged *s;
		rc = staged_create(fs, name, staged_mode(mode), &s);
		if (!rc) {
			const struct fuse_ctx *c = fuse_req_ctx(req);
			pthread_mutex_lock(&fs->mu);
			s->parent = INO_VECTORS;
			s->uid = c->uid;
			s->gid = c->gid;
			pthread_mutex_unlock(&fs->mu);
			h->ino = s->ino;
			h->st = s;
			s->opens++;
		}
	} else if (parent == INO_VECTORS) {
		uint64_t id;
		if (!rvf_parse_id(name, strlen(name), &id)) {
			fs_error(fs, "vectors/%s: a vector file is named by its id in canonical decimal (digits, no sign, no leading zero)",
				 name);
			rc = -EINVAL;
		} else if (store_dimension(fs) == 0) {
			fs_error(fs, "vectors/%s: the store has dimension 0: it cannot hold vectors", name);
			rc = -EINVAL;
		} else {
			h->ino = vec_ino(fs, id);
			if (!h->ino)
				rc = -ENOMEM;
			h->for_write = true;
			h->wseq = true;
			fi->direct_io = 1;
		}
	} else if (parent == INO_ROOT && (!strcmp(name, "kernel") || !strcmp(name, "ebpf"))) {
		h->ino = name[0] == 'k' ? INO_KERNEL : INO_EBPF;
		h->for_write = true;
		h->wseq = true;
		fi->direct_io = 1;
	} else {
		rc = -EPERM;
	}
	if (rc) {
		handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = h->ino;
	e.generation = 1;
	rvf_view *v = fs_view(fs);
	if (!fs_stat(fs, v, h->ino, &e.attr)) {
		/* Not visible until the flush commits it. */
		e.attr.st_ino = h->ino;
		e.attr.st_mode = S_IFREG | 0644;
		e.attr.st_nlink = 1;
		e.attr.st_uid = getuid();
		e.attr.st_gid = getgid();
		e.attr.st_blksize = 1 << 20;
	}
	rvf_view_release(v);
	if (h->for_write)
		writer_add(fs, h);
	h->owner = caller_tgid(req);
	fi->fh = (uintptr_t)h;
	fuse_reply_create(req, &e, fi);
}

/* Query file: run the complete lines written so far; results replace the
 * previous ones once those were read. */
static int query_process(rvffs *fs, fuse_req_t req, handle *h, bool all)
{
	size_t upto = h->req_len;
	if (!all) {
		while (upto && h->req[upto - 1] != '\n')
			upto--;
	}
	if (!upto)
		return 0;
	rvf_view *v = fs_view(fs);
	char *out = NULL;
	size_t out_len = 0;
	int rc = query_run(fs, v, h->req, upto, &out, &out_len);
	rvf_view_release(v);
	if (!rc && fs_store_check(fs)) {
		/* The search read a store that shrank under us. */
		free(out);
		out = strdup("error: the store file shrank under the mount\n");
		out_len = out ? strlen(out) : 0;
		rc = -EIO;
	}
	memmove(h->req, h->req + upto, h->req_len - upto);
	h->req_len -= upto;
	if (rc || h->rpos) {
		free(h->text);
		h->text = NULL;
		h->len = 0;
		h->rpos = 0;
	}
	if (rc) {
		h->req_len = 0;
		fs_error(fs, "query: %.*s", (int)(out_len && out[out_len - 1] == '\n' ?
						  out_len - 1 : out_len), out ? out : "");
	}
	if (h->len && out_len &&
	    (rc = limits_held(fs, (uint64_t)h->len + 1 + out_len)) != 0) {
		free(out); /* unread results: at most results_max of them */
		return rc;
	}
	if (h->len && out_len) {
		/* Another batch of the same request: groups stay separated. */
		char *n = realloc(h->text, h->len + 1 + out_len);
		if (!n) {
			free(out);
			return -ENOMEM;
		}
		h->text = n;
		h->text[h->len++] = '\n';
		memcpy(h->text + h->len, out, out_len);
		h->len += out_len;
		free(out);
	} else {
		free(h->text);
		h->text = out;
		h->len = out_len;
	}
	if (rc != -ENOMEM) {
		/* `cat query` from a fresh descriptor shows the outcome of the
		 * reader's own last request: its results, or its error line. */
		reader_id c;
		reader_of(req, &c);
		results_put(fs, &c, h->text ? h->text : "", h->len);
	}
	return rc;
}

static void reply_slice(fuse_req_t req, const char *p, size_t len, size_t size,
			off_t off)
{
	if ((uint64_t)off >= len)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_buf(req, p + off, len - (size_t)off < size ?
					     len - (size_t)off : size);
}

/* Replies with a copy of a slice of memory the handle owns: once the
 * kernel has the reply, the file may be closed and released by another
 * thread while this one is still returning from the reply (a sanitizer
 * build checks the buffer after the write). */
static void reply_copy(fuse_req_t req, const char *p, size_t len, size_t size,
		       off_t off)
{
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

void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	     struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	handle *h = fh(fi);
	if (ino == INO_QUERY) {
		pthread_mutex_lock(&h->lock);
		if (!h->wrote) {
			/* Nothing written here: the reader's own last results. */
			if (!h->text) {
				reader_id c;
				reader_of(req, &c);
				h->text = results_get(fs, &c, &h->len);
			}
		} else if (h->req_len) {
			query_process(fs, req, h, true);
		}
		/* Advance the cursor before replying: the kernel may send the
		 * next read as soon as it has this reply. */
		size_t at = h->rpos < h->len ? h->rpos : h->len;
		size_t n = h->len - at < size ? h->len - at : size;
		h->rpos = at + n;
		char *copy = n ? malloc(n) : NULL;
		if (copy)
			memcpy(copy, h->text + at, n);
		pthread_mutex_unlock(&h->lock);
		if (n && !copy)
			fuse_reply_err(req, ENOMEM);
		else
			fuse_reply_buf(req, copy, n);
		free(copy);
		return;
	}
	switch (fs_node_kind(ino)) {
	case NODE_SEGMENT: {
		long i = seg_find_ino(fs, h->view, ino);
		const rvf_segment *s = i >= 0 ? rvf_view_segment(h->view, (size_t)i) : NULL;
		if (!s || !s->readable || !s->hash_ok) {
			char name[SEG_NAME_MAX] = "?";
			if (s)
				seg_name(h->view, (size_t)i, name);
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
		reply_slice(req, (const char *)rvf_view_segment_bytes(h->view, s),
			    RVF_SEGMENT_HEADER_SIZE + s->payload_length, size, off);
		return;
	}
	case NODE_STAGED:
		if (h->st) {
			char *buf = malloc(size);
			ssize_t r = buf ? pread(h->st->fd, buf, size, off) : -1;
			if (r < 0)
				fuse_reply_err(req, buf ? errno : ENOMEM);
			else
				fuse_reply_buf(req, buf, (size_t)r);
			free(buf);
			return;
		}
		if (!h->text) { /* slot request */
			pthread_mutex_lock(&fs->mu);
			slot *q = slot_find_ino(fs, ino);
			char *copy = q && q->request_len ? strndup(q->request, q->request_len) : NULL;
			size_t len = copy ? q->request_len : 0;
			pthread_mutex_unlock(&fs->mu);
			reply_slice(req, copy, len, size, off);
			free(copy);
			return;
		}
		break;
	default:
		break;
	}
	if (h->for_write && h->wbuf && !h->text) {
		reply_copy(req, (const char *)h->wbuf, h->wlen, size, off);
		return;
	}
	reply_copy(req, h->text, h->len, size, off);
}

/* A vector file's text: exactly `dimension` numbers (rvf_parse_floats). */
static int parse_vector(rvffs *fs, uint64_t id, const unsigned char *text,
			size_t len, float *x, uint32_t dim)
{
	rvf_error err;
	long n = rvf_parse_floats((const char *)text, len, x, dim, &err);
	if (n < 0) {
		fs_error(fs, "vectors/%llu: %s; nothing written",
			 (unsigned long long)id, err.message);
		return -EINVAL;
	}
	if ((size_t)n != dim) {
		fs_error(fs, "vectors/%llu: expected %u numbers, found %ld; nothing written",
			 (unsigned long long)id, dim, n);
		return -EINVAL;
	}
	return 0;
}

/* Checks a vector file written from its start as the bytes arrive, so
 * that the write() of a bad line fails (a shell reports that; it ignores
 * errors at close): once a line is complete it must be the whole vector. */
static int check_vector_write(rvffs *fs, handle *h)
{
	const unsigned char *nl = h->wbuf ? memchr(h->wbuf, '\n', h->wlen) : NULL;
	uint64_t id;
	if (!nl || !vec_id_of(fs, h->ino, &id))
		return 0;
	for (const unsigned char *p = nl; p < h->wbuf + h->wlen; p++)
		if (*p != '\n' && *p != ' ' && *p != '\t' && *p != '\r') {
			fs_error(fs, "vectors/%llu: a vector file is one line; nothing written",
				 (unsigned long long)id);
			return -EINVAL;
		}
	uint32_t dim = store_dimension(fs);
	float *x = malloc(4 * (size_t)dim);
	if (!x)
		return -ENOMEM;
	int rc = parse_vector(fs, id, h->wbuf, (size_t)(nl - h->wbuf), x, dim);
	free(x);
	return rc;
}

static int commit_vector(rvffs *fs, handle *h)
{
	uint64_t id;
	if (!vec_id_of(fs, h->ino, &id))
		return -ENOENT;
	return vector_commit_text(fs, id, (const char *)h->wbuf, h->wlen);
}

int vector_commit_text(rvffs *fs, uint64_t id, const char *buf, size_t len)
{
	uint32_t dim = store_dimension(fs);
	float *x = malloc(4 * (size_t)(dim ? dim : 1));
	if (!x)
		return -ENOMEM;
	int rc = parse_vector(fs, id, (const unsigned char *)buf, len, x, dim);
	rvf_error err;
	rvf_commit_info info;
	if (!rc && rvf_store_ingest(fs->store, 1, &id, x, NULL, NULL, &info,
				    &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, "vectors write", &err);
	else if (!rc)
		fs_invalidate(fs, false);
	free(x);
	return rc;
}

static int buffer_write(handle *h, const char *buf, size_t size, off_t off)
{
	size_t end = (size_t)off + size;
	if (end > (1u << 28)) /* kernels are at most 128 MiB */
		return -EFBIG;
	if (end > h->wcap) {
		size_t cap = h->wcap ? h->wcap : 4096;
		while (cap < end)
			cap *= 2;
		unsigned char *n = realloc(h->wbuf, cap);
		if (!n)
			return -ENOMEM;
		h->wbuf = n;
		h->wcap = cap;
	}
	if ((size_t)off > h->wlen)
		memset(h->wbuf + h->wlen, 0, (size_t)off - h->wlen);
	memcpy(h->wbuf + off, buf, size);
	if (end > h->wlen)
		h->wlen = end;
	h->wdirty = true;
	return 0;
}

void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
	      off_t off, struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	handle *h = fh(fi);
	int rc = 0;
	if (ino == INO_CONTROL) {
		control_write(req, h, buf, size);
		return;
	}
	if (ino == INO_QUERY) {
		pthread_mutex_lock(&h->lock);
		/* Complete lines run at each write, so what waits here is one
		 * unfinished line: at most request_max bytes. */
		rc = limits_request(fs, "query", (uint64_t)h->req_len + size);
		if (!rc) /* and what the opener holds over all its descriptors */
			rc = limits_user_hold(fs, h->uid, &h->held,
					      (uint64_t)h->req_len + size + h->len, true);
		size_t need = h->req_len + size + 1, cap = h->req_cap;
		while (!rc && cap < need) /* doubling: no copy per write */
			cap = cap ? 2 * cap : 4096;
		if (cap > fs->lim.request_max + 1 && need <= fs->lim.request_max + 1)
			cap = fs->lim.request_max + 1;
		char *n = rc ? NULL : cap == h->req_cap ? h->req : realloc(h->req, cap);
		if (rc) {
			free(h->req);
			h->req = NULL;
			h->req_len = h->req_cap = 0;
		} else if (!n) {
			rc = -ENOMEM;
		} else {
			h->req = n;
			h->req_cap = cap;
			memcpy(h->req + h->req_len, buf, size);
			h->req_len += size;
			h->wrote = true;
			/* The bytes before these hold no newline: look only at
			 * the new ones (no rescan of a long unfinished line). */
			if (memchr(buf, '\n', size))
				rc = query_process(fs, req, h, false);
		}
		limits_user_hold(fs, h->uid, &h->held,
				 (uint64_t)h->req_len + h->len, false);
		pthread_mutex_unlock(&h->lock);
	} else if (h->st) {
		pthread_mutex_lock(&fs->mu);
		bool gone = h->st->gone, refused = h->st->refused;
		pthread_mutex_unlock(&fs->mu);
		if (refused) {
			fuse_reply_err(req, EINVAL); /* already said why */
			return;
		}
		/* Already committed (or refused, or removed) at an earlier close
		 * of this descriptor: say so rather than drop the bytes. */
		int over = gone ? 0 : limits_stage(fs, h->st, (uint64_t)off + size);
		ssize_t w = gone || over ? -1 : pwrite(h->st->fd, buf, size, off);
		if (over) {
			rc = over;
		} else if (gone) {
			fs_error(fs, "ingest/%s: written to after it left ingest/ (committed or refused at an earlier close); these bytes are not committed",
				 h->st->name);
			rc = -ESTALE;
		} else if (w < 0) {
			rc = -errno;
		} else {
			pthread_mutex_lock(&fs->mu);
			if ((uint64_t)off + (uint64_t)w > h->st->size)
				h->st->size = (uint64_t)off + (uint64_t)w;
			h->st->dirty = true;
			clock_gettime(CLOCK_REALTIME, &h->st->mtime);
			pthread_mutex_unlock(&fs->mu);
			/* A bad line fails this write, so a shell reports it; the
			 * file is then refused and leaves ingest/ at close. */
			rc = staged_check(fs, h->st, (uint64_t)off, (size_t)w);
			if (!rc) {
				fuse_reply_write(req, (size_t)w);
				return;
			}
			pthread_mutex_lock(&fs->mu);
			h->st->refused = true;
			pthread_mutex_unlock(&fs->mu);
		}
	} else if (fs_node_kind(ino) == NODE_STAGED) {
		/* slot request file */
		pthread_mutex_lock(&fs->mu);
		slot *q = slot_find_ino(fs, ino);
		size_t end = (size_t)off + size;
		char what[300] = "";
		if (q)
			snprintf(what, sizeof(what), "queries/%s/request", q->name);
		if (!q || ino != q->ino + 1) {
			rc = -EACCES;
		} else if (end > fs->lim.request_max || (size_t)off > q->request_len) {
			/* Too long, or a hole (a write past the end): refused
			 * before anything is allocated; the reason is logged
			 * below, without the lock. */
			rc = end > fs->lim.request_max ? -EFBIG : -EINVAL;
		} else {
			char *n = end > q->request_len ? realloc(q->request, end) : q->request;
			if (!n) {
				rc = -ENOMEM;
			} else {
				memcpy(n + off, buf, size);
				q->request = n;
				if (end > q->request_len)
					q->request_len = end;
				h->wdirty = true;
			}
		}
		pthread_mutex_unlock(&fs->mu);
		if (rc == -EFBIG)
			limits_request(fs, what, end);
		else if (rc == -EINVAL)
			fs_error(fs, "%s: a write at offset %lld would leave a hole; refused",
				 what, (long long)off);
	} else if (h->for_write && fs_node_kind(ino) == NODE_VECTOR &&
		   (uint64_t)off + size > fs->lim.request_max) {
		rc = limits_request(fs, "vectors/", (uint64_t)off + size);
	} else if (h->for_write) {
		bool seq = h->wseq && (size_t)off == h->wlen;
		h->wseq = seq;
		rc = h->wfailed ? -EINVAL : buffer_write(h, buf, size, off);
		if (!rc && seq && fs_node_kind(ino) == NODE_VECTOR)
			rc = check_vector_write(fs, h);
		if (rc == -EINVAL)
			h->wfailed = true;
	} else {
		rc = -EBADF;
	}
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}

/* Kernel / eBPF written whole: re-embed it, keeping the header fields. */
static int commit_image(rvffs *fs, handle *h)
{
	rvf_view *v = fs_view(fs);
	rvf_error err;
	rvf_code rc;
	if (h->ino == INO_KERNEL) {
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
		rc = rvf_store_embed_kernel(fs->store, &spec, h->wbuf, h->wlen, NULL, &err);
		free(cmd);
	} else {
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
		rc = rvf_store_embed_ebpf(fs->store, &spec, h->wbuf, h->wlen, btf,
					  btf_len, NULL, &err);
	}
	rvf_view_release(v);
	if (rc != RVF_OK)
		return -fs_rvf_errno(fs, h->ino == INO_KERNEL ? "kernel" : "ebpf", &err);
	fs_invalidate(fs, false);
	return 0;
}

static int flush_handle(rvffs *fs, fuse_req_t req, fuse_ino_t ino, handle *h)
{
	if (ino == INO_QUERY) {
		pthread_mutex_lock(&h->lock);
		int rc = h->req_len ? query_process(fs, req, h, true) : 0;
		pthread_mutex_unlock(&h->lock);
		return rc;
	}
	if (h->st) {
		pthread_mutex_lock(&fs->mu);
		bool go = h->st->dirty && !h->st->gone &&
			  staged_commits_at_close(h->st->name);
		bool refused = h->st->refused;
		h->st->dirty = false;
		pthread_mutex_unlock(&fs->mu);
		if (go && refused) {
			staged_remove(fs, h->st); /* the failed write said why */
			return -EINVAL;
		}
		if (!go)
			return 0;
		int rc = staged_commit(fs, h->st);
		staged_remove(fs, h->st); /* committed, or refused: it leaves */
		return rc;
	}
	if (fs_node_kind(ino) == NODE_STAGED) {
		if (h->wdirty) {
			h->wdirty = false;
			slot_run(fs, ino - 1);
		}
		return 0;
	}
	if (!h->for_write || !h->wdirty)
		return 0; /* nothing written: nothing to commit, nothing to say */
	h->wdirty = false;
	if (h->wfailed)
		return -EINVAL; /* a write() already failed and said why */
	if (fs_node_kind(ino) == NODE_VECTOR)
		return commit_vector(fs, h);
	if (ino == INO_KERNEL || ino == INO_EBPF)
		return commit_image(fs, h);
	return 0;
}

/* Writes still pending at the last close (the opener never closed it
 * itself): commit them now; the reason of a failure is in `errors`. */
static bool pending_at_release(rvffs *fs, fuse_ino_t ino, handle *h)
{
	if (!h->owner)
		return false; /* opened for reading */
	if (h->st) {
		pthread_mutex_lock(&fs->mu);
		bool go = h->st->dirty && !h->st->gone;
		pthread_mutex_unlock(&fs->mu);
		return go;
	}
	return h->for_write && h->wdirty && ino != INO_QUERY;
}

void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	handle *h = fh(fi);
	/* A close by another process that holds a copy of the descriptor (a
	 * child that inherited it and exits, close-on-exec) does not end the
	 * writing: the opener's own close commits, or else the last release.
	 * Closing a staged file opened for reading commits nothing. */
	if ((h->st || h->for_write) && (!h->owner || caller_tgid(req) != h->owner)) {
		fuse_reply_err(req, 0);
		return;
	}
	int rc = flush_handle(fs_of(req), req, ino, h);
	fuse_reply_err(req, -rc);
}

void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	      struct fuse_file_info *fi)
{
	(void)datasync;
	rvffs *fs = fs_of(req);
	int rc = flush_handle(fs, req, ino, fh(fi));
	/* fsync makes every change of the mount durable, not only this
	 * file's: one manifest covers them all. */
	if (rc == 0)
		rc = fs_sync(fs);
	fuse_reply_err(req, -rc);
}

void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	handle *h = fh(fi);
	if (pending_at_release(fs, ino, h))
		flush_handle(fs, req, ino, h);
	if (h->st)
		staged_put(fs, h->st);
	if (h->for_write)
		writer_remove(fs, h);
	handle_free(h);
	fuse_reply_err(req, 0);
}
