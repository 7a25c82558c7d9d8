/* open.c - opening, creating, refreshing and closing stores. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "hash.h"
#include "io.h"
#include "segment.h"
#include "store.h"

/* Branch chains deeper than this are refused (a cycle would never end). */
#define MAX_LINEAGE_DEPTH 1024

static rvf_code open_fd(const char *path, int flags, int *fd, uint64_t *size,
			rvf_error *err)
{
	bool other;
	*fd = io_open_regular(path, flags, &other);
	if (*fd < 0 && other)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"%s is not a regular file", path);
	if (*fd < 0)
		return rvf_fail_io(err, errno, "cannot open %s", path);
	struct stat st;
	if (fstat(*fd, &st) != 0) {
		int e = errno;
		close(*fd);
		return rvf_fail_io(err, e, "cannot stat %s", path);
	}
	*size = (uint64_t)st.st_size;
	return RVF_OK;
}

rvf_code open_view_readonly(const char *path, const view_chain *chain,
			    const uint8_t *as_of, rvf_view **out,
			    uint64_t *size_now, rvf_error *err)
{
	if (chain->depth > MAX_LINEAGE_DEPTH)
		return rvf_fail(err, RVF_E_COW_MAP_CORRUPT,
				"branch chain deeper than %d levels at %s",
				MAX_LINEAGE_DEPTH, path);
	int fd;
	uint64_t size;
	rvf_code rc = open_fd(path, O_RDONLY, &fd, &size, err);
	if (rc != RVF_OK)
		return rc;
	struct stat st;
	if (fstat(fd, &st) != 0) {
		int e = errno;
		close(fd);
		return rvf_fail_io(err, e, "cannot stat %s", path);
	}
	for (const view_chain *c = chain; c; c = c->child)
		if (c->dev == st.st_dev && c->ino == st.st_ino) {
			close(fd);
			return rvf_fail(err, RVF_E_COW_MAP_CORRUPT,
					"branch cycle: the parent %s is %s", path,
					c == chain ? "the store itself" :
					"a branch child of the store");
		}
	rvf_map *map = map_file(fd, size, err);
	close(fd); /* the mapping keeps the file */
	if (!map)
		return err ? err->code : RVF_E_IO;
	if (size_now)
		*size_now = size;
	uint64_t use = size;
	if (as_of) {
		uint8_t h[32];
		parent_tail_hash(map->base, size, h);
		if (memcmp(h, as_of, 32) != 0)
			parent_prefix_find(map->base, size, as_of, &use);
	}
	rc = view_build(map, use, path, NULL, UINT64_MAX, chain, NULL, out,
			err);
	map_unref(map);
	return rc;
}

static rvf_store *store_new(const char *path)
{
	rvf_store *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->path = strdup(path);
	if (!s->path) {
		free(s);
		return NULL;
	}
	s->fd = -1;
	pthread_mutex_init(&s->write_mu, NULL);
	pthread_mutex_init(&s->view_mu, NULL);
	return s;
}

static void store_free(rvf_store *s)
{
	if (s->current)
		rvf_view_release(s->current);
	map_unref(s->map);
	if (s->fd >= 0)
		close(s->fd);
	lock_release(&s->lock);
	pthread_mutex_destroy(&s->write_mu);
	pthread_mutex_destroy(&s->view_mu);
	free(s->pending);
	free(s->path);
	free(s);
}

void store_publish(rvf_store *s, rvf_view *v)
{
	v->info.generation = s->generation;
	/* the new view starts with the old one's search codes, updated */
	pthread_mutex_lock(&s->view_mu);
	rvf_view *prev = s->current ? rvf_view_ref(s->current) : NULL;
	pthread_mutex_unlock(&s->view_mu);
	if (prev) {
		view_accel_inherit(v, prev);
		rvf_view_release(prev);
	}
	pthread_mutex_lock(&s->view_mu);
	rvf_view *old = s->current;
	s->current = v;
	pthread_mutex_unlock(&s->view_mu);
	if (old)
		rvf_view_release(old);
}

/* Writer state after an open: ids continue after the directory's. */
static void start_session(rvf_store *s)
{
	const rvf_view *v = s->current;
	uint64_t max = 0;
	for (uint32_t i = 0; i < v->man.dir_len; i++)
		if (v->man.dir[i].seg_id > max)
			max = v->man.dir[i].seg_id;
	s->next_seg_id = max + 1;
	s->witness_started = false;
	memset(s->witness_prev, 0, 32);
	s->npending = 0;
	s->durable_end = s->end;
	s->tail.open = false;
	s->frozen = v->is_branch && v->cow.frozen;
}

rvf_code rvf_store_open(const char *path, unsigned flags, rvf_store **out,
			rvf_error *err)
{
	return rvf_store_open_wait(path, flags, RVF_LOCK_WAIT_DEFAULT_MS, out, err);
}

rvf_code rvf_store_open_wait(const char *path, unsigned flags,
			     unsigned wait_ms, rvf_store **out, rvf_error *err)
{
	rvf_error local;
	if (!err)
		err = &local;
	rvf_error_clear(err);
	rvf_store *s = store_new(path);
	if (!s)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	s->read_only = flags & RVF_OPEN_READ_ONLY;
	rvf_code rc;
	uint64_t size;
	if (!s->read_only) {
		/* Like the reference: refuse early when the file is missing,
		 * then take the lock before reading anything. */
		if (access(path, F_OK) != 0) {
			rc = rvf_fail_io(err, errno, "cannot open %s", path);
			goto fail;
		}
		rc = lock_acquire(path, wait_ms, &s->lock, err);
		if (rc != RVF_OK)
			goto fail;
	}
	rc = open_fd(path, s->read_only ? O_RDONLY : O_RDWR, &s->fd, &size, err);
	if (rc != RVF_OK)
		goto fail;
	s->map = map_file(s->fd, size, err);
	if (!s->map) {
		rc = err->code;
		goto fail;
	}
	rc = view_build(s->map, size, path, NULL, UINT64_MAX, 0, NULL,
			&s->current, err);
	if (rc != RVF_OK)
		goto fail;
	s->current->info.read_only = s->read_only;
	s->end = size;
	start_session(s);
	*out = s;
	return RVF_OK;
fail:
	store_free(s);
	return rc;
}

rvf_code rvf_store_create(const char *path, const rvf_create_options *opt,
			  rvf_store **out, rvf_error *err)
{
	rvf_error local;
	if (!err)
		err = &local;
	rvf_error_clear(err);
	if (opt->dimension == 0)
		return rvf_fail(err, RVF_E_INVALID_MANIFEST,
				"dimension must be at least 1");
	if (opt->dimension > 65535)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"dimension %u is above the format's limit of 65535",
				opt->dimension);
	if ((unsigned)opt->metric > 2)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT, "unknown metric %d",
				(int)opt->metric);
	if (sodium_init() < 0)
		return rvf_fail(err, RVF_E_IO, "libsodium failed to initialise");
	rvf_store *s = store_new(path);
	if (!s)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	rvf_code rc;
	s->fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (s->fd < 0) {
		rc = errno == EEXIST ?
		     rvf_fail(err, RVF_E_EXISTS, "%s already exists", path) :
		     rvf_fail_io(err, errno, "cannot create %s", path);
		goto fail;
	}
	rc = lock_acquire(path, 0, &s->lock, err); /* a new file: nobody to wait for */
	if (rc != RVF_OK) {
		close(s->fd);
		s->fd = -1;
		unlink(path);
		goto fail;
	}
	manifest m = { 0 };
	m.dimension = (uint16_t)opt->dimension;
	m.metric = (uint8_t)opt->metric;
	m.profile = opt->profile;
	m.has_identity = true;
	do
		randombytes_buf(m.identity.file_id, 16);
	while (m.identity.file_id[0] == 0); /* non-zero, so FIDI is kept */
	rc = store_write_first_manifest(s, &m, err);
	if (rc != RVF_OK) {
		unlink(path);
		goto fail;
	}
	*out = s;
	return RVF_OK;
fail:
	store_free(s);
	return rc;
}

/* Writes MANIFEST#1 of a new store (create, derive, branch) and opens the
 * first view.  The file is empty and s->fd open read-write. */
rvf_code store_write_first_manifest(rvf_store *s, const manifest *m,
				    rvf_error *err)
{
	size_t len;
	unsigned char *payload = manifest_encode(m, &len);
	if (!payload)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	unsigned char hdr[RVF_SEGMENT_HEADER_SIZE];
	uint8_t hash[16];
	rvf_content_hash(payload, len, hash);
	segment_encode(hdr, RVF_SEG_MANIFEST, 1, len, hash);
	int bad = io_pwrite_all(s->fd, hdr, sizeof(hdr), 0) ||
		  io_pwrite_all(s->fd, payload, len, sizeof(hdr)) ||
		  io_fsync(s->fd) || io_fsync_dir_of(s->path);
	int e = errno;
	free(payload);
	if (bad)
		return rvf_fail_io(err, e, "cannot write %s", s->path);
	uint64_t size = sizeof(hdr) + len;
	s->map = map_file(s->fd, size, err);
	if (!s->map)
		return err->code;
	rvf_code rc = view_build(s->map, size, s->path, NULL, 0, 0, NULL, &s->current,
				 err);
	if (rc != RVF_OK)
		return rc;
	s->end = size;
	s->next_seg_id = 2;
	s->pending = malloc(sizeof(dir_entry));
	if (!s->pending)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	s->pending[0] = (dir_entry){ .seg_id = 1, .offset = 0,
				     .payload_length = len,
				     .type = RVF_SEG_MANIFEST };
	s->npending = 1;
	return RVF_OK;
}

rvf_store *store_alloc(const char *path)
{
	return store_new(path);
}

void store_discard(rvf_store *s)
{
	store_free(s);
}

void rvf_store_close(rvf_store *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->write_mu);
	/* Deferred changes become durable at close; a failure leaves them
	 * out, as a crash would (the file stays a valid store). */
	if (s->dirty)
		store_sync_locked(s, NULL, NULL);
	if (!s->read_only && s->fd >= 0)
		io_fsync(s->fd);
	pthread_mutex_unlock(&s->write_mu);
	store_free(s);
}

rvf_code rvf_store_refresh(rvf_store *s, rvf_error *err)
{
	pthread_mutex_lock(&s->write_mu);
	rvf_code rc = RVF_OK;
	struct stat st;
	if (stat(s->path, &st) != 0) {
		rc = rvf_fail_io(err, errno, "cannot stat %s", s->path);
		goto out;
	}
	rvf_view *cur = rvf_store_view(s);
	bool same_file = st.st_ino == s->map->ino && st.st_dev == s->map->dev;
	if (same_file && (uint64_t)st.st_size == cur->info.file_size) {
		rvf_view_release(cur);
		goto out;
	}
	if (!same_file) {
		/* Compaction renamed a new file over the path. */
		int fd;
		uint64_t size;
		rc = open_fd(s->path, s->read_only ? O_RDONLY : O_RDWR, &fd, &size,
			     err);
		if (rc == RVF_OK) {
			rvf_map *map = map_file(fd, size, err);
			if (!map) {
				rc = err ? err->code : RVF_E_IO;
				close(fd);
			} else {
				rvf_view *v;
				rc = view_build(map, size, s->path, NULL, UINT64_MAX,
						0, NULL, &v, err);
				if (rc == RVF_OK) {
					close(s->fd);
					s->fd = fd;
					map_unref(s->map);
					s->map = map;
					v->info.read_only = s->read_only;
					s->generation++; /* another file */
					store_publish(s, v);
					s->end = size;
				} else {
					map_unref(map);
					close(fd);
				}
			}
		}
	} else {
		uint64_t size = (uint64_t)st.st_size;
		rvf_map *map = s->map;
		if (size > map->capacity) {
			map = map_file(s->fd, size, err);
			if (!map) {
				rc = err ? err->code : RVF_E_IO;
				rvf_view_release(cur);
				goto out;
			}
		} else {
			map_ref(map);
		}
		rvf_view *v;
		bool shorter = size < cur->info.file_size; /* rewritten in place */
		rc = view_build(map, size, s->path, shorter ? NULL : cur,
				UINT64_MAX, 0, NULL, &v, err);
		if (rc == RVF_OK) {
			v->info.read_only = s->read_only;
			if (shorter)
				s->generation++;
			if (map != s->map) {
				map_unref(s->map);
				s->map = map_ref(map);
			}
			store_publish(s, v);
			s->end = size;
		}
		map_unref(map);
	}
	rvf_view_release(cur);
out:
	pthread_mutex_unlock(&s->write_mu);
	return rc;
}

bool rvf_store_read_only(const rvf_store *s)
{
	return s->read_only || s->frozen;
}

const char *rvf_store_path(const rvf_store *s)
{
	return s->path;
}

rvf_view *rvf_store_view(rvf_store *s)
{
	pthread_mutex_lock(&s->view_mu);
	rvf_view *v = rvf_view_ref(s->current);
	pthread_mutex_unlock(&s->view_mu);
	return v;
}

bool rvf_store_shrunk(rvf_store *s, uint64_t *now, uint64_t *expected)
{
	rvf_view *v = rvf_store_view(s);
	uint64_t want = rvf_view_info(v)->file_size;
	dev_t dev = v->map->dev;
	ino_t ino = v->map->ino;
	rvf_view_release(v);
	struct stat st;
	/* A compaction may be swapping s->fd: only the mapped file counts. */
	if (fstat(s->fd, &st) != 0 || st.st_dev != dev || st.st_ino != ino)
		return false;
	if (now)
		*now = (uint64_t)st.st_size;
	if (expected)
		*expected = want;
	return (uint64_t)st.st_size < want;
}
