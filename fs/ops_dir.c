/* ops_dir.c - FUSE handlers for names: lookup, attributes, directory
 * listings, create-less changes of entries (mkdir/rmdir, unlink, rename),
 * statfs.  Each finds the kind of the node or directory (node.h) and calls
 * through its ops table. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "node.h"

static void reply_entry(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	if (!ino || !fs_stat(fs, v, ino, &e.attr)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (node_of(fs, ino)->caller_stat)
		node_of(fs, ino)->caller_stat(req, fs, &e.attr);
	e.ino = ino;
	e.generation = 1;
	if (node_of(fs, ino) == &node_segment)
		atomic_store(&fs->segs_shown, true); /* fs/view.c invalidates it */
	e.attr_timeout = fs_attr_timeout(fs, ino);
	e.entry_timeout = e.attr_timeout;
	fuse_reply_entry(req, &e);
}

void fs_reply_entry(fuse_req_t req, rvffs *fs, uint64_t ino)
{
	rvf_view *v = fs_view(fs);
	reply_entry(req, fs, v, ino);
	rvf_view_release(v);
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	rvffs *fs = fs_of(req);
	const node_ops *dir = node_of(fs, parent);
	rvf_view *v = fs_view(fs);
	/* reply_entry says ENOENT for a name whose node does not exist
	 * (e.g. kernel when the store has none) */
	reply_entry(req, fs, v, dir->lookup ? dir->lookup(fs, v, parent, name) : 0);
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
		if (node_of(fs, ino)->caller_stat)
			node_of(fs, ino)->caller_stat(req, fs, &st);
		if (pending >= 0)
			st.st_size = (off_t)pending; /* being rewritten */
		fuse_reply_attr(req, &st, pending >= 0 ? 0 : fs_attr_timeout(fs, ino));
	} else if (pending >= 0) {
		/* Created and not committed yet (cp fstats before writing). */
		node_fill_pending(fs, &st, ino, (uint64_t)pending);
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

/* The changes of a kind without its own setattr: a size change where the
 * kind takes one (O_TRUNC of query, vectors, kernel, eBPF, control);
 * times are accepted.  Modes and owners here are the mount's policy (the
 * store's owner writes, everyone reads), not stored: a chmod, or a chown
 * that root makes or that keeps the owner, is accepted and changes
 * nothing -- what `cp -a` and `rsync -a` do after copying a file in
 * (vfat's "quiet").  setattr_allowed has refused anyone but the owner
 * and root already. */
static int setattr_common(fuse_req_t req, rvffs *fs, const node_ops *ops,
			  int to_set, struct stat *attr, struct fuse_file_info *fi)
{
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (!ops->truncate)
			return fs->read_only ? -EROFS : -EACCES;
		return ops->truncate(fs, fi && fi->fh ? handle_of(fi) : NULL,
				     attr->st_size);
	}
	if (!(to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)))
		return 0;
	if (fs->read_only)
		return -EROFS;
	/* As chown(2): only root gives a file to another user (these nodes,
	 * written or still being written, belong to the mounting user). */
	if ((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != fs->uid &&
	    fuse_req_ctx(req)->uid != 0)
		return -EPERM;
	return 0;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	const node_ops *ops = node_of(fs, ino);
	int rc = setattr_allowed(req, fs, ino, to_set, fi);
	if (!rc)
		rc = ops->setattr ? ops->setattr(fs, ino, attr, to_set) :
		     setattr_common(req, fs, ops, to_set, attr, fi);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		op_getattr(req, ino, fi);
}

/* A listing taken at opendir, so offsets stay valid across commits. */
typedef struct listing {
	const node_ops *dir;
	rvf_view *view;
	char **names;       /* the entries from dir->list */
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
	l->dir = node_of(fs, ino);
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
	if (l->dir->list)
		l->dir->list(fs, l->view, ino, listing_add_cb, l);
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
	if (node_of(fs, ino) == &node_segment)
		atomic_store(&fs->segs_shown, true);
	e->attr_timeout = fs_attr_timeout(fs, ino);
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
	uint64_t total = l->dir->count ? l->dir->count(l->view) : l->n;
	if (plus && l->dir->prepare_plus && total) {
		/* At most this many entries fit (the shortest name). */
		size_t most = size / fuse_add_direntry_plus(req, NULL, 0, "0", NULL, 0);
		size_t first = off > 2 ? (size_t)off - 2 : 0;
		l->dir->prepare_plus(fs, l->view, first, most);
	}
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
		} else if (l->dir->entry) {
			st.st_ino = l->dir->entry(fs, l->view, (size_t)(pos - 2), name);
			n = name;
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
	rvffs *fs = fs_of(req);
	const node_ops *dir = node_of(fs, parent);
	if (dir->mkdir)
		dir->mkdir(req, fs, name, mode);
	else
		fuse_reply_err(req, EPERM);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	rvffs *fs = fs_of(req);
	const node_ops *dir = node_of(fs, parent);
	if (dir->rmdir)
		dir->rmdir(req, fs, name);
	else
		fuse_reply_err(req, EPERM);
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	rvffs *fs = fs_of(req);
	const node_ops *dir = node_of(fs, parent);
	if (!dir->unlink) {
		fuse_reply_err(req, fs->read_only ? EROFS : EPERM);
		return;
	}
	int denied = access_dir(req, fs, parent);
	if (denied)
		fuse_reply_err(req, -denied);
	else
		dir->unlink(req, fs, name);
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
	       fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	rvffs *fs = fs_of(req);
	const node_ops *from = node_of(fs, parent), *to = node_of(fs, newparent);
	if (parent == newparent && from->rename) {
		from->rename(req, fs, name, newname, flags);
		return;
	}
	/* Between directories: refused, as the directories say. */
	int err = from->rename_errno ? from->rename_errno : to->rename_errno;
	fuse_reply_err(req, err ? err : EPERM);
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
