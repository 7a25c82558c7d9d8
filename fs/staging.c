/* staging.c - files copied into ingest/.
 *
 * Bytes go to an unlinked temporary file beside the store (never held in
 * memory); when the file is closed it is parsed and committed as one batch
 * before close() returns, then it leaves the listing.  Hidden names (rsync
 * writes ".name.csv.XXXXXX" then renames) are committed by the rename. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rvffs.h"

staged *staged_find_ino(rvffs *fs, uint64_t ino)
{
	for (staged *s = fs->staged; s; s = s->next)
		if (s->ino == ino)
			return s;
	return NULL;
}

staged *staged_find_in(rvffs *fs, uint64_t parent, const char *name)
{
	for (staged *s = fs->staged; s; s = s->next)
		if (s->parent == parent && !strcmp(s->name, name))
			return s;
	return NULL;
}

staged *staged_find_name(rvffs *fs, const char *name)
{
	return staged_find_in(fs, INO_INGEST, name);
}

bool staged_commits_at_close(const char *name)
{
	rvf_import_format f;
	return name[0] != '.' && rvf_import_format_from_name(name, &f);
}

/* An unlinked file in the store's directory (same filesystem, room for
 * the data, nothing left behind by a crash). */
static int staging_fd(rvffs *fs)
{
	char *copy = strdup(fs->store_path);
	if (!copy)
		return -ENOMEM;
	const char *dir = dirname(copy);
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
		char tmpl[4096];
		snprintf(tmpl, sizeof(tmpl), "%s/.rvffs-staging-XXXXXX", dir);
		fd = mkostemp(tmpl, O_CLOEXEC);
		if (fd >= 0)
			unlink(tmpl);
	}
	int e = errno;
	free(copy);
	return fd < 0 ? -e : fd;
}

int staged_create(rvffs *fs, const char *name, mode_t mode, staged **out)
{
	int fd = staging_fd(fs);
	if (fd < 0)
		return fd;
	staged *s = calloc(1, sizeof(*s));
	if (!s || !(s->name = strdup(name))) {
		free(s);
		close(fd);
		return -ENOMEM;
	}
	s->fd = fd;
	s->parent = INO_INGEST;
	s->mode = mode ? mode : 0644;
	clock_gettime(CLOCK_REALTIME, &s->mtime);
	pthread_mutex_lock(&fs->mu);
	s->ino = fs->next_dyn++;
	s->next = fs->staged;
	fs->staged = s;
	pthread_mutex_unlock(&fs->mu);
	*out = s;
	return 0;
}

void staged_xattrs_free(staged_xattr *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(x[i].name);
		free(x[i].value);
	}
	free(x);
}

void staged_remove(rvffs *fs, staged *s)
{
	pthread_mutex_lock(&fs->mu);
	for (staged **p = &fs->staged; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			break;
		}
	}
	s->gone = true;
	bool free_now = s->opens == 0;
	pthread_mutex_unlock(&fs->mu);
	stream_drop(fs, s); /* not committed: its rows go */
	if (free_now) {
		close(s->fd);
		staged_xattrs_free(s->xattrs, s->nxattrs);
		free(s->name);
		free(s);
	}
}

/* Drops one open of s; frees it once it left ingest/ and nobody has it. */
void staged_put(rvffs *fs, staged *s)
{
	pthread_mutex_lock(&fs->mu);
	bool free_now = --s->opens == 0 && s->gone;
	pthread_mutex_unlock(&fs->mu);
	if (free_now) {
		stream_drop(fs, s); /* none is left by then; never leak one */
		close(s->fd);
		staged_xattrs_free(s->xattrs, s->nxattrs);
		free(s->name);
		free(s);
	}
}

static rvf_code sink(void *ctx, size_t n, const uint64_t *ids,
		     const float *vectors, const rvf_meta_field *meta,
		     const size_t *meta_start, rvf_error *err)
{
	return rvf_ingest_add(ctx, n, ids, vectors, meta, meta_start, err);
}

#define CHECK_LINE_MAX (64u << 20) /* a longer unfinished line waits for close */

int staged_check(rvffs *fs, staged *s, uint64_t off, size_t len)
{
	rvf_import_format fmt;
	pthread_mutex_lock(&fs->mu);
	if (off < s->checked || off + len < s->size)
		s->unchecked = true; /* rewritten or written out of order */
	bool go = !s->unchecked && !s->gone && s->name[0] != '.' &&
		  rvf_import_format_from_name(s->name, &fmt) &&
		  (fmt == RVF_IMPORT_CSV || fmt == RVF_IMPORT_JSONL);
	uint64_t from = s->checked, to = s->size, line = s->next_line;
	pthread_mutex_unlock(&fs->mu);
	if (!go || to - from > CHECK_LINE_MAX)
		return 0;
	char *buf = malloc((size_t)(to - from) + 1);
	if (!buf)
		return 0; /* checked at close instead */
	ssize_t r = pread(s->fd, buf, (size_t)(to - from), (off_t)from);
	char *nl = r > 0 ? memrchr(buf, '\n', (size_t)r) : NULL;
	int rc = 0;
	if (nl) {
		size_t n = (size_t)(nl - buf) + 1, lines = 0;
		for (char *p = buf; (p = memchr(p, '\n', n - (size_t)(p - buf))); p++)
			lines++;
		rvf_view *v = fs_view(fs);
		uint32_t dim = rvf_view_info(v)->dimension;
		rvf_view_release(v);
		char label[300];
		snprintf(label, sizeof(label), "ingest/%s", s->name);
		rvf_error err;
		if (rvf_import_check_lines(buf, n, label, fmt, dim,
					   line ? line : 1, &err) != RVF_OK) {
			fs_error(fs, "%s; the write fails and nothing is committed",
				 err.message);
			rc = -EINVAL;
		} else {
			pthread_mutex_lock(&fs->mu);
			if (s->checked == from) {
				s->checked = from + n;
				s->next_line = (line ? line : 1) + lines;
			}
			pthread_mutex_unlock(&fs->mu);
		}
	}
	free(buf);
	return rc;
}

int staged_commit(rvffs *fs, staged *s)
{
	if (stream_active(fs, s))
		return stream_commit(fs, s);
	rvf_import_format fmt;
	if (!rvf_import_format_from_name(s->name, &fmt)) {
		fs_error(fs, "ingest/%s: unknown file type (use .csv .tsv .txt .jsonl .ndjson .json .fvecs .npy .f32); nothing committed",
			 s->name);
		return -EINVAL;
	}
	rvf_view *v = rvf_store_view(fs->store);
	uint32_t dim = rvf_view_info(v)->dimension;
	rvf_view_release(v);
	/* A descriptor of our own, so the parse reads from offset 0. */
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", s->fd);
	int fd = open(proc, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		fs_error(fs, "ingest/%s: cannot reopen the staged data: %s", s->name,
			 strerror(e));
		return -e;
	}
	rvf_error err;
	rvf_ingest *t;
	rvf_commit_info info;
	uint64_t rows = 0;
	char label[512];
	snprintf(label, sizeof(label), "ingest/%s", s->name);
	rvf_code rc = rvf_ingest_begin(fs->store, &t, &err);
	if (rc == RVF_OK) {
		rc = rvf_import_fd(fd, label, fmt, dim, sink, t, &rows, &err);
		if (rc == RVF_OK)
			rc = rvf_ingest_commit(t, &info, &err);
		else
			rvf_ingest_abort(t);
	}
	close(fd);
	if (rc != RVF_OK) {
		/* The importer's message usually names the file already. */
		bool named = !strncmp(err.message, label, strlen(label));
		fs_error(fs, "%s%s%s; nothing committed", named ? "" : label,
			 named ? "" : ": ", err.message);
		return -rvf_code_errno(rc, err.sys_errno);
	}
	fs_log(fs, LOG_INFO, "%s: %llu vectors committed (epoch %u)", label,
	       (unsigned long long)rows, info.epoch);
	/* Rows may replace vectors whose text the kernel keeps: the close
	 * (or rename) returns once it has forgotten them.  No directory the
	 * invalidator names is locked here. */
	fs_invalidate(fs, true);
	return 0;
}
