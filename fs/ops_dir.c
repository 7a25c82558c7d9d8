/* ops_dir.c - FUSE handlers for names: lookup, attributes, directory
 * listings, mkdir/rmdir (queries/), unlink, rename, statfs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "rvffs.h"

/* Segments never change: the kernel may keep them long.  Everything else
 * changes with commits, which also send invalidations. */
double fs_attr_timeout(uint64_t ino)
{
	switch (fs_node_kind(ino)) {
	case NODE_SEGMENT:
		return 3600.0;
	case NODE_VECTOR:
		return 1.0;
	case NODE_FIXED:
		return ino == INO_ROOT || ino == INO_SEGMENTS || ino == INO_VECTORS ||
		       ino == INO_INGEST || ino == INO_QUERIES ? 1.0 : 0.0;
	default:
		return 0.0;
	}
}

static void reply_entry(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	if (!ino || !fs_stat(fs, v, ino, &e.attr)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	e.ino = ino;
	e.generation = 1;
	if (fs_node_kind(ino) == NODE_SEGMENT)
		atomic_store(&fs->segs_shown, true); /* fs/view.c invalidates it */
	e.attr_timeout = fs_attr_timeout(ino);
	e.entry_timeout = e.attr_timeout;
	fuse_reply_entry(req, &e);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	rvffs *fs = fs_of(req);
	rvf_view *v = fs_view(fs);
	reply_entry(req, fs, v, fs_lookup_name(fs, v, parent, name));
	rvf_view_release(v);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	rvffs *fs = fs_of(req);
	rvf_view *v = fs_view(fs);
	struct stat st;
	long long pending = writer_size(fs, ino);
	if (fs_stat(fs, v, ino, &st)) {
		if (pending >= 0)
			st.st_size = (off_t)pending; /* being rewritten */
		fuse_reply_attr(req, &st, pending >= 0 ? 0 : fs_attr_timeout(ino));
	} else if (pending >= 0) {
		/* Created and not committed yet (cp fstats before writing). */
		memset(&st, 0, sizeof(st));
		st.st_ino = ino;
		st.st_mode = S_IFREG | 0644;
		st.st_nlink = 1;
		st.st_uid = getuid();
		st.st_gid = getgid();
		st.st_size = (off_t)pending;
		st.st_blksize = 1 << 20;
		fuse_reply_attr(req, &st, 0);
	} else {
		fuse_reply_err(req, ENOENT);
	}
	rvf_view_release(v);
}

/* The caller's right to the changes of a setattr: 0 or -errno. */
static int setattr_allowed(fuse_req_t req, rvffs *fs, uint64_t ino,
			   int to_set, struct fuse_file_info *fi)
{
	rvf_view *v = fs_view(fs);
	struct stat st;
	int rc = access_ino(req, fs, v, ino, 0, &st);
	rvf_view_release(v);
	if (rc)
		return rc;
	/* truncate(2) needs write permission; ftruncate(2) was judged when
	 * its descriptor was opened for writing. */
	if ((to_set & FUSE_SET_ATTR_SIZE) && !fi && access_check(req, &st, W_OK))
		return -EACCES;
	/* chmod, chown and explicit times: the owner (or root); "now":
	 * whoever may write it, as utimes(2). */
	if ((to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
		       FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) &&
	    !access_owner(req, &st))
		return -EPERM;
	if ((to_set & (FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW)) &&
	    !access_owner(req, &st) && access_check(req, &st, W_OK))
		return -EACCES;
	return 0;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	node_kind kind = fs_node_kind(ino);
	int denied = setattr_allowed(req, fs, ino, to_set, fi);
	if (denied) {
		fuse_reply_err(req, -denied);
		return;
	}
	if (kind == NODE_STAGED) {
		pthread_mutex_lock(&fs->mu);
		staged *s = staged_find_ino(fs, ino);
		int rc = 0;
		if (s && (to_set & FUSE_SET_ATTR_SIZE) && attr->st_size > 0) {
			/* Growing counts against staged_max, as writes do
			 * (held open meanwhile: an unlink may not free it). */
			s->opens++;
			pthread_mutex_unlock(&fs->mu);
			rc = -limits_stage(fs, s, (uint64_t)attr->st_size);
			staged_put(fs, s);
			pthread_mutex_lock(&fs->mu);
			s = staged_find_ino(fs, ino);
		}
		if (s && !rc) {
			if ((to_set & FUSE_SET_ATTR_SIZE) &&
			    ftruncate(s->fd, attr->st_size) == 0) {
				s->size = (uint64_t)attr->st_size;
				s->dirty = true;
				limits_unstage(s, s->size);
			} else if (to_set & FUSE_SET_ATTR_SIZE) {
				rc = errno;
			}
			/* chmod and utime are accepted, as tools expect. */
			if (to_set & FUSE_SET_ATTR_MODE)
				s->mode = staged_mode(attr->st_mode);
			if (to_set & FUSE_SET_ATTR_MTIME)
				s->mtime = attr->st_mtim;
		}
		bool known = s || slot_find_ino(fs, ino);
		pthread_mutex_unlock(&fs->mu);
		if (!known) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		if (rc) {
			fuse_reply_err(req, rc);
			return;
		}
	} else if (to_set & FUSE_SET_ATTR_SIZE) {
		/* O_TRUNC on query, vectors, kernel, eBPF: the new content
		 * comes from the writes that follow. */
		bool writable = kind == NODE_VECTOR || ino == INO_QUERY ||
				ino == INO_KERNEL || ino == INO_EBPF ||
				ino == INO_CONTROL;
		if (!writable || (fs->read_only && ino != INO_QUERY)) {
			fuse_reply_err(req, fs->read_only ? EROFS : EACCES);
			return;
		}
		if (fi && fi->fh && attr->st_size == 0) {
			handle *h = (handle *)(uintptr_t)fi->fh;
			h->wlen = 0;
			h->wseq = true; /* only what is written next counts */
		}
	} else if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
			     FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, fs->read_only ? EROFS : EPERM);
		return;
	}
	op_getattr(req, ino, fi);
}

/* A listing taken at opendir, so offsets stay valid across commits. */
typedef struct listing {
	rvf_view *view;
	char **names;       /* ingest/, queries/, slots: names */
	uint64_t *inos;
	size_t n;
	struct listing *prev, *next; /* every open listing (fs_listings_free) */
} listing;

static pthread_mutex_t listings_mu = PTHREAD_MUTEX_INITIALIZER;
static listing *listings;

static void listing_register(listing *l)
{
	pthread_mutex_lock(&listings_mu);
	l->next = listings;
	if (listings)
		listings->prev = l;
	listings = l;
	pthread_mutex_unlock(&listings_mu);
}

static void listing_free(listing *l)
{
	pthread_mutex_lock(&listings_mu);
	if (l->prev)
		l->prev->next = l->next;
	else
		listings = l->next;
	if (l->next)
		l->next->prev = l->prev;
	pthread_mutex_unlock(&listings_mu);
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	free(l->inos);
	rvf_view_release(l->view);
	free(l);
}

void fs_listings_free(void)
{
	while (listings)
		listing_free(listings);
}

static void listing_add(listing *l, const char *name, uint64_t ino)
{
	char **nn = realloc(l->names, (l->n + 1) * sizeof(char *));
	uint64_t *ni = realloc(l->inos, (l->n + 1) * sizeof(uint64_t));
	if (nn)
		l->names = nn;
	if (ni)
		l->inos = ni;
	if (!nn || !ni)
		return;
	l->names[l->n] = strdup(name);
	l->inos[l->n] = ino;
	if (l->names[l->n])
		l->n++;
}

static void listing_add_cb(void *ctx, const char *name, uint64_t ino)
{
	listing_add(ctx, name, ino);
}

void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	listing *l = calloc(1, sizeof(*l));
	if (!l) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	l->view = fs_view(fs);
	struct stat st;
	int rc = !fs_stat(fs, l->view, ino, &st) || !S_ISDIR(st.st_mode) ? ENOTDIR :
		 -access_check(req, &st, R_OK);
	if (rc) {
		rvf_view_release(l->view);
		free(l);
		fuse_reply_err(req, rc);
		return;
	}
	if (ino == INO_ROOT) {
		for (size_t i = 0; i < fs_root_count(); i++) {
			uint64_t rino;
			const char *name = fs_root_name(i, &rino);
			if (fs_stat(fs, l->view, rino, &st))
				listing_add(l, name, rino);
		}
	} else if (ino == INO_INGEST || ino == INO_QUERIES) {
		pthread_mutex_lock(&fs->mu);
		if (ino == INO_INGEST) {
			for (staged *s = fs->staged; s; s = s->next)
				if (s->parent == INO_INGEST)
					listing_add(l, s->name, s->ino);
		} else {
			for (slot *q = fs->slots; q; q = q->next)
				listing_add(l, q->name, q->ino);
		}
		pthread_mutex_unlock(&fs->mu);
	} else if (ino == INO_WASM || ino == INO_DASHBOARD) {
		bundle_list(l->view, ino, listing_add_cb, l);
	} else if (ino >= INO_DYN_BASE && ino < INO_BIGID_BASE) {
		listing_add(l, "request", ino + 1);
		listing_add(l, "result", ino + 2);
	}
	listing_register(l);
	fi->fh = (uintptr_t)l;
	fi->cache_readdir = 0;
	fuse_reply_open(req, fi);
}

void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	listing_free((listing *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* One listing entry for readdir or readdirplus.  With plus, the entry
 * carries the attributes (as a lookup would), so `ls -l` needs no lookup
 * or getattr per file; false when it does not exist any more. */
static bool fill_entry(rvffs *fs, rvf_view *v, uint64_t ino,
		       struct fuse_entry_param *e)
{
	if (!fs_stat(fs, v, ino, &e->attr))
		return false;
	e->ino = ino;
	e->generation = 1;
	if (fs_node_kind(ino) == NODE_SEGMENT)
		atomic_store(&fs->segs_shown, true);
	e->attr_timeout = fs_attr_timeout(ino);
	e->entry_timeout = e->attr_timeout;
	return true;
}

static void list_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi, bool plus)
{
	rvffs *fs = fs_of(req);
	listing *l = (listing *)(uintptr_t)fi->fh;
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	uint64_t total;
	if (ino == INO_SEGMENTS)
		total = rvf_view_segment_count(l->view);
	else if (ino == INO_VECTORS)
		total = rvf_view_info(l->view)->visible;
	else
		total = l->n;
	/* Offsets: 0 ".", 1 "..", 2 + i the i-th entry. */
	for (uint64_t pos = (uint64_t)off; pos < total + 2; pos++) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		struct stat st = { 0 };
		char name[SEG_NAME_MAX];
		const char *n;
		if (pos == 0) {
			n = ".";
			st.st_ino = ino;
			st.st_mode = S_IFDIR;
		} else if (pos == 1) {
			n = "..";
			st.st_ino = INO_ROOT;
			st.st_mode = S_IFDIR;
		} else if (ino == INO_SEGMENTS) {
			size_t i = (size_t)(pos - 2);
			seg_name(l->view, i, name);
			n = name;
			st.st_ino = seg_ino(fs, rvf_view_segment(l->view, i)->offset);
			st.st_mode = S_IFREG;
		} else if (ino == INO_VECTORS) {
			uint64_t id = rvf_view_id_at(l->view, (size_t)(pos - 2));
			snprintf(name, sizeof(name), "%llu", (unsigned long long)id);
			n = name;
			st.st_ino = vec_ino(fs, id);
			st.st_mode = S_IFREG;
		} else {
			n = l->names[pos - 2];
			st.st_ino = l->inos[pos - 2];
			struct stat full;
			st.st_mode = fs_stat(fs, l->view, st.st_ino, &full) ?
				     full.st_mode & S_IFMT : S_IFREG;
		}
		size_t need;
		if (!plus) {
			need = fuse_add_direntry(req, buf + used, size - used, n, &st,
						 (off_t)(pos + 1));
		} else {
			if (pos < 2 || !fill_entry(fs, l->view, st.st_ino, &e)) {
				/* "." and "..", or gone: the name only (ino 0:
				 * the kernel caches nothing for it) */
				memset(&e, 0, sizeof(e));
				e.attr = st;
			}
			need = fuse_add_direntry_plus(req, buf + used, size - used, n, &e,
						      (off_t)(pos + 1));
		}
		if (need > size - used)
			break;
		used += need;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	list_dir(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	list_dir(req, ino, size, off, fi, true);
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)mode;
	rvffs *fs = fs_of(req);
	if (parent != INO_QUERIES) {
		fuse_reply_err(req, EPERM);
		return;
	}
	const struct fuse_ctx *c = fuse_req_ctx(req);
	slot *q;
	int rc = access_dir(req, fs, parent);
	if (!rc)
		rc = slot_create(fs, name, c->uid, c->gid, &q);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	rvf_view *v = fs_view(fs);
	reply_entry(req, fs, v, q->ino);
	rvf_view_release(v);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	rvffs *fs = fs_of(req);
	if (parent != INO_QUERIES) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int rc = access_dir(req, fs, parent);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fs->mu);
	slot *q = slot_find_name(fs, name);
	if (q)
		slot_remove(fs, q);
	pthread_mutex_unlock(&fs->mu);
	fuse_reply_err(req, q ? 0 : ENOENT);
}

static int parse_vector_id(const char *name, uint64_t *id)
{
	return rvf_parse_id(name, strlen(name), id) ? 0 : -EINVAL;
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	rvffs *fs = fs_of(req);
	rvf_error err;
	rvf_commit_info info;
	int denied = parent == INO_INGEST || parent == INO_VECTORS || parent == INO_ROOT ?
		     access_dir(req, fs, parent) : 0;
	if (denied) {
		fuse_reply_err(req, -denied);
		return;
	}
	if (parent == INO_INGEST) {
		pthread_mutex_lock(&fs->mu);
		staged *s = staged_find_name(fs, name);
		pthread_mutex_unlock(&fs->mu);
		if (s)
			staged_remove(fs, s);
		fuse_reply_err(req, s ? 0 : ENOENT);
		return;
	}
	if (fs->read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (parent == INO_VECTORS && name[0] == '.') {
		pthread_mutex_lock(&fs->mu);
		staged *s = staged_find_in(fs, INO_VECTORS, name);
		pthread_mutex_unlock(&fs->mu);
		if (s)
			staged_remove(fs, s);
		fuse_reply_err(req, s ? 0 : ENOENT);
		return;
	}
	if (parent == INO_VECTORS) {
		uint64_t id;
		if (parse_vector_id(name, &id)) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		rvf_view *v = fs_view(fs);
		bool exists = rvf_view_find(v, id) >= 0;
		rvf_view_release(v);
		if (!exists) {
			fuse_reply_err(req, ENOENT);
			return;
		}
		if (rvf_store_delete(fs->store, 1, &id, &info, &err) != RVF_OK) {
			fuse_reply_err(req, fs_rvf_errno(fs, "rm vectors", &err));
			return;
		}
		fs_unlinked_by_us(fs, id);
		fs_invalidate(fs, false);
		fuse_reply_err(req, 0);
		return;
	}
	if (parent == INO_ROOT && (!strcmp(name, "kernel") || !strcmp(name, "ebpf"))) {
		bool k = name[0] == 'k';
		rvf_code rc = k ? rvf_store_remove_kernel(fs->store, &info, &err) :
			      rvf_store_remove_ebpf(fs->store, &info, &err);
		if (rc != RVF_OK) {
			fuse_reply_err(req, rc == RVF_E_NOT_FOUND ? ENOENT :
				       fs_rvf_errno(fs, name, &err));
			return;
		}
		fs_invalidate(fs, false);
		fuse_reply_err(req, 0);
		return;
	}
	fuse_reply_err(req, EPERM);
}

/* Largest temporary vector file committed by a rename (a dim-65535
 * vector as text is about 1 MiB). */
#define VECTOR_TEXT_MAX (16u << 20)

/* rsync into vectors/ without --inplace: ".ID.XXXXXX" written, then
 * renamed to ID, which commits it as one vector write. */
static void rename_in_vectors(fuse_req_t req, rvffs *fs, const char *name,
			      const char *newname)
{
	int rc = access_dir(req, fs, INO_VECTORS);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	if (fs->read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	pthread_mutex_lock(&fs->mu);
	staged *s = name[0] == '.' ? staged_find_in(fs, INO_VECTORS, name) : NULL;
	if (s)
		s->opens++; /* keep it while we commit without the lock */
	uint64_t size = s ? s->size : 0;
	pthread_mutex_unlock(&fs->mu);
	if (!s) {
		/* only a temporary may be renamed; vectors are named by id */
		fuse_reply_err(req, name[0] == '.' ? ENOENT : EPERM);
		return;
	}
	uint64_t id;
	char *buf = NULL;
	if (newname[0] == '.') {
		char *nn = strdup(newname);
		pthread_mutex_lock(&fs->mu);
		staged *clash = staged_find_in(fs, INO_VECTORS, newname);
		if (nn) {
			free(s->name);
			s->name = nn;
		}
		pthread_mutex_unlock(&fs->mu);
		if (clash && clash != s)
			staged_remove(fs, clash);
		rc = nn ? 0 : -ENOMEM;
	} else if (parse_vector_id(newname, &id)) {
		fs_error(fs, "vectors/%s: a vector file is named by its decimal id", newname);
		rc = -EINVAL;
	} else if (size > VECTOR_TEXT_MAX) {
		fs_error(fs, "vectors/%s: %llu bytes is too large for one vector", newname,
			 (unsigned long long)size);
		rc = -EFBIG;
	} else if (!(buf = malloc(size ? size : 1))) {
		rc = -ENOMEM;
	} else if (pread(s->fd, buf, size, 0) != (ssize_t)size) {
		rc = -EIO;
	} else {
		rc = vector_commit_text(fs, id, buf, size);
		if (!rc)
			staged_remove(fs, s); /* committed: the temporary is gone */
	}
	free(buf);
	staged_put(fs, s);
	fuse_reply_err(req, -rc);
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	rvffs *fs = fs_of(req);
	if (parent == INO_VECTORS && newparent == INO_VECTORS) {
		rename_in_vectors(req, fs, name, newname);
		return;
	}
	if (parent != INO_INGEST || newparent != INO_INGEST) {
		fuse_reply_err(req, parent == INO_INGEST || newparent == INO_INGEST ?
				    EXDEV : EPERM);
		return;
	}
	int denied = access_dir(req, fs, INO_INGEST);
	if (denied) {
		fuse_reply_err(req, -denied);
		return;
	}
	pthread_mutex_lock(&fs->mu);
	staged *s = staged_find_name(fs, name);
	staged *clash = staged_find_name(fs, newname);
	int rc = 0;
	char *nn = NULL;
	if (!s)
		rc = ENOENT;
	else if (clash && clash != s && (flags & RENAME_NOREPLACE))
		rc = EEXIST;
	else if (!(nn = strdup(newname)))
		rc = ENOMEM;
	if (!rc) {
		free(s->name);
		s->name = nn;
		s->opens++; /* keep it while we commit without the lock */
	}
	pthread_mutex_unlock(&fs->mu);
	if (rc) {
		fuse_reply_err(req, rc);
		return;
	}
	if (clash && clash != s)
		staged_remove(fs, clash);
	/* rsync's final rename: the data is complete, commit it now. */
	if (staged_commits_at_close(newname)) {
		rc = staged_commit(fs, s);
		staged_remove(fs, s);
	}
	staged_put(fs, s);
	fuse_reply_err(req, -rc);
}

void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	rvffs *fs = fs_of(req);
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	rvf_view *v = fs_view(fs);
	const rvf_info *i = rvf_view_info(v);
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_blocks = (i->file_size + 4095) / 4096;
	sv.f_files = i->visible + rvf_view_segment_count(v) + INO_FIXED_END;
	sv.f_namemax = 255;
	rvf_view_release(v);
	fuse_reply_statfs(req, &sv);
}
