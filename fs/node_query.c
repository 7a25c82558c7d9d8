/* node_query.c - the query file: requests written to it run line by line;
 * reading the same descriptor gives their results (offsets ignored), and a
 * fresh descriptor gives the reader's own last results (results.c).  The
 * query language is in query.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

/* The state of the view's search codes. */
#define CODES_ATTR "user.rvf.search_codes"

typedef struct query_handle {
	handle h;               /* h.text, h.len: the results to read */
	pthread_mutex_t lock;   /* its requests and results (a forked
				 * child's close flushes concurrently) */
	size_t rpos;            /* read cursor */
	char *req;              /* unprocessed request bytes */
	size_t req_len, req_cap;
	uid_t uid;              /* its opener, whose budget */
	uint64_t held;          /* pays for req + text (limits.c) */
	bool wrote;             /* something was written */
} query_handle;

static bool query_stat(rvffs *fs, rvf_view *v, uint64_t ino, struct stat *st)
{
	(void)v;
	node_fill(fs, st, ino, S_IFREG | 0666, 0, fs->mount_time, true);
	return true;
}

/* Its content is the caller's own last results (results.c): so is its
 * size, and its mtime is when they were made, so that tar, rsync and cp
 * copy what they read and a second rsync copies nothing new. */
static void query_caller_stat(fuse_req_t req, rvffs *fs, struct stat *st)
{
	reader_id r;
	size_t len;
	struct timespec when;
	reader_of(req, &r);
	if (results_stat(fs, &r, &len, &when)) {
		st->st_size = (off_t)len;
		st->st_blocks = (blkcnt_t)((len + 511) / 512);
		st->st_mtim = st->st_ctim = when;
	}
}

static int query_open(fuse_req_t req, rvffs *fs, rvf_view *v, handle *h,
		      struct fuse_file_info *fi)
{
	(void)fs;
	(void)v;
	query_handle *qh = (query_handle *)h;
	pthread_mutex_init(&qh->lock, NULL);
	qh->uid = fuse_req_ctx(req)->uid; /* query_user_max is the opener's */
	fi->direct_io = 1;
	fi->nonseekable = 1;
	return 0;
}

/* Appends a batch of results to the ones not read yet, or replaces them:
 * 0 or -errno (out is taken). */
static int add_results(rvffs *fs, query_handle *qh, char *out, size_t out_len)
{
	handle *h = &qh->h;
	int rc;
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
	return 0;
}

/* Runs the complete lines written so far (all: the unfinished one too);
 * results replace the previous ones once those were read. */
static int query_process(rvffs *fs, fuse_req_t req, query_handle *qh, bool all)
{
	handle *h = &qh->h;
	size_t upto = qh->req_len;
	while (!all && upto && qh->req[upto - 1] != '\n')
		upto--;
	if (!upto)
		return 0;
	rvf_view *v = fs_view(fs);
	char *out = NULL;
	size_t out_len = 0;
	int rc = query_run(fs, v, qh->req, upto, &out, &out_len);
	rvf_view_release(v);
	if (!rc && fs_store_check(fs)) {
		/* The search read a store that shrank under us. */
		free(out);
		out = strdup("error: the store file shrank under the mount\n");
		out_len = out ? strlen(out) : 0;
		rc = -EIO;
	}
	memmove(qh->req, qh->req + upto, qh->req_len - upto);
	qh->req_len -= upto;
	if (rc || qh->rpos) {
		free(h->text);
		h->text = NULL;
		h->len = 0;
		qh->rpos = 0;
	}
	if (rc) {
		qh->req_len = 0;
		fs_error(fs, "query: %.*s", (int)(out_len && out[out_len - 1] == '\n' ?
						  out_len - 1 : out_len), out ? out : "");
	}
	int added = add_results(fs, qh, out, out_len);
	if (added)
		return added;
	if (rc != -ENOMEM) {
		/* `cat query` from a fresh descriptor shows the outcome of the
		 * reader's own last request: its results, or its error line. */
		reader_id c;
		reader_of(req, &c);
		results_put(fs, &c, h->text ? h->text : "", h->len);
	}
	return rc;
}

static void query_read(fuse_req_t req, rvffs *fs, handle *h, size_t size, off_t off)
{
	(void)off;
	query_handle *qh = (query_handle *)h;
	pthread_mutex_lock(&qh->lock);
	if (!qh->wrote) {
		/* Nothing written here: the reader's own last results. */
		if (!h->text) {
			reader_id c;
			reader_of(req, &c);
			h->text = results_get(fs, &c, &h->len);
		}
	} else if (qh->req_len) {
		query_process(fs, req, qh, true);
	}
	/* Advance the cursor before replying: the kernel may send the next
	 * read as soon as it has this reply. */
	size_t at = qh->rpos < h->len ? qh->rpos : h->len;
	size_t n = h->len - at < size ? h->len - at : size;
	qh->rpos = at + n;
	char *copy = n ? malloc(n) : NULL;
	if (copy)
		memcpy(copy, h->text + at, n);
	pthread_mutex_unlock(&qh->lock);
	if (n && !copy)
		fuse_reply_err(req, ENOMEM);
	else
		fuse_reply_buf(req, copy, n);
	free(copy);
}

/* Appends buf to the unfinished request (holds qh->lock): 0 or -errno. */
static int append_request(rvffs *fs, query_handle *qh, const char *buf, size_t size)
{
	/* Complete lines run at each write, so what waits here is one
	 * unfinished line: at most request_max bytes. */
	int rc = limits_request(fs, "query", (uint64_t)qh->req_len + size);
	if (!rc) /* and what the opener holds over all its descriptors */
		rc = limits_user_hold(fs, qh->uid, &qh->held,
				      (uint64_t)qh->req_len + size + qh->h.len, true);
	size_t need = qh->req_len + size + 1, cap = qh->req_cap;
	while (!rc && cap < need) /* doubling: no copy per write */
		cap = cap ? 2 * cap : 4096;
	if (cap > fs->lim.request_max + 1 && need <= fs->lim.request_max + 1)
		cap = fs->lim.request_max + 1;
	char *n = rc ? NULL : cap == qh->req_cap ? qh->req : realloc(qh->req, cap);
	if (rc) {
		free(qh->req);
		qh->req = NULL;
		qh->req_len = qh->req_cap = 0;
		return rc;
	}
	if (!n)
		return -ENOMEM;
	qh->req = n;
	qh->req_cap = cap;
	memcpy(qh->req + qh->req_len, buf, size);
	qh->req_len += size;
	qh->wrote = true;
	return 0;
}

static long query_write(fuse_req_t req, rvffs *fs, handle *h, const char *buf,
			size_t size, off_t off)
{
	(void)off;
	query_handle *qh = (query_handle *)h;
	pthread_mutex_lock(&qh->lock);
	int rc = append_request(fs, qh, buf, size);
	/* The bytes before these hold no newline: look only at the new ones
	 * (no rescan of a long unfinished line). */
	if (!rc && memchr(buf, '\n', size))
		rc = query_process(fs, req, qh, false);
	limits_user_hold(fs, qh->uid, &qh->held,
			 (uint64_t)qh->req_len + h->len, false);
	pthread_mutex_unlock(&qh->lock);
	return rc ? rc : (long)size;
}

/* The close runs what is left (a last line without a newline). */
static int query_flush(fuse_req_t req, rvffs *fs, handle *h)
{
	query_handle *qh = (query_handle *)h;
	pthread_mutex_lock(&qh->lock);
	int rc = qh->req_len ? query_process(fs, req, qh, true) : 0;
	pthread_mutex_unlock(&qh->lock);
	return rc;
}

static void query_release(rvffs *fs, handle *h)
{
	(void)fs;
	query_handle *qh = (query_handle *)h;
	limits_user_hold(NULL, qh->uid, &qh->held, 0, false);
	free(qh->req);
	pthread_mutex_destroy(&qh->lock);
}

/* O_TRUNC (`> query`): taken, also on a read-only mount. */
static int query_truncate(rvffs *fs, handle *h, off_t size)
{
	(void)fs;
	(void)h;
	(void)size;
	return 0;
}

static void query_getxattr(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
			   const char *name, size_t size)
{
	(void)ino;
	if (strcmp(name, CODES_ATTR)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	char buf[256];
	uint64_t bytes;
	const char *st = fs->codes == RVF_ACCEL_OFF ? "off" :
			 rvf_view_accel_state(v, &bytes);
	int n = fs->codes == RVF_ACCEL_OFF || !bytes ?
		snprintf(buf, sizeof(buf), "%s", st) :
		snprintf(buf, sizeof(buf), "%s (%llu bytes)", st,
			 (unsigned long long)bytes);
	xattr_reply(req, buf, (size_t)n, size);
}

static void query_listxattr(rvffs *fs, rvf_view *v, uint64_t ino, FILE *out)
{
	(void)fs;
	(void)v;
	(void)ino;
	fwrite(CODES_ATTR, 1, sizeof(CODES_ATTR), out);
}

const node_ops node_query = {
	.kind = "query",
	.handle_size = sizeof(query_handle),
	.stat = query_stat,
	.caller_stat = query_caller_stat,
	.open = query_open,
	.read = query_read,
	.write = query_write,
	.flush = query_flush,
	.release = query_release,
	.truncate = query_truncate,
	.getxattr = query_getxattr,
	.listxattr = query_listxattr,
};
