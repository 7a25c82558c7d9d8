/* access.c - the daemon's own permission checks.
 *
 * With allow_other but without default_permissions the kernel checks
 * nothing: every user's request reaches the daemon.  So the daemon judges
 * each request that opens or changes something by the owner and mode the
 * mount shows (fs_stat), as the kernel does with default_permissions:
 * the two agree whatever the mount options.  What the modes say is the
 * policy: the store's files and directories belong to the mounting user
 * (writable by it and root only), query slots and staged files to the user
 * who made them, and the query file may be used by anyone. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "node.h"

#define GROUPS_MAX 256

/* True when the caller belongs to group gid (primary or supplementary). */
static bool in_group(fuse_req_t req, gid_t gid)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (c->gid == gid)
		return true;
	gid_t list[GROUPS_MAX];
	int n = fuse_req_getgroups(req, GROUPS_MAX, list);
	for (int i = 0; i < n && i < GROUPS_MAX; i++)
		if (list[i] == gid)
			return true;
	return false;
}

int access_check(fuse_req_t req, const struct stat *st, int mask)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	mask &= R_OK | W_OK | X_OK;
	if (c->uid == 0) {
		/* root: everything but executing what nobody may execute. */
		if ((mask & X_OK) && !S_ISDIR(st->st_mode) && !(st->st_mode & 0111))
			return -EACCES;
		return 0;
	}
	mode_t bits;
	if (c->uid == st->st_uid)
		bits = (st->st_mode >> 6) & 7;
	else if (in_group(req, st->st_gid))
		bits = (st->st_mode >> 3) & 7;
	else
		bits = st->st_mode & 7;
	/* R_OK, W_OK and X_OK are 4, 2 and 1, as the mode's bits. */
	return ((mode_t)mask & ~bits) ? -EACCES : 0;
}

bool access_owner(fuse_req_t req, const struct stat *st)
{
	uid_t uid = fuse_req_ctx(req)->uid;
	return uid == 0 || uid == st->st_uid;
}

/* A vector, kernel or eBPF file that does not exist (yet) may still be
 * opened for writing (created, or removed since the kernel looked it up):
 * it is judged as the file it would become (op_getattr shows the same for
 * one created and not committed yet). */
static bool creatable_stat(rvffs *fs, uint64_t ino, struct stat *st)
{
	if (!node_of(fs, ino)->creatable)
		return false;
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFREG | 0644;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	return true;
}

int access_ino(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
	       int mask, struct stat *st)
{
	struct stat own;
	if (!st)
		st = &own;
	if (!fs_stat(fs, v, ino, st) && !creatable_stat(fs, ino, st))
		return -ENOENT;
	return access_check(req, st, mask);
}

int access_open_mask(int flags)
{
	int acc = flags & O_ACCMODE;
	int mask = acc == O_RDONLY ? R_OK : acc == O_WRONLY ? W_OK : R_OK | W_OK;
	if (flags & O_TRUNC)
		mask |= W_OK; /* as the kernel: truncating is writing */
	return mask;
}

int access_dir(fuse_req_t req, rvffs *fs, uint64_t dir)
{
	rvf_view *v = fs_view(fs);
	int rc = access_ino(req, fs, v, dir, W_OK | X_OK, NULL);
	rvf_view_release(v);
	return rc;
}

mode_t staged_mode(mode_t mode)
{
	return mode & 07755;
}

void op_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	rvffs *fs = fs_of(req);
	rvf_view *v = fs_view(fs);
	struct stat st;
	int rc = access_ino(req, fs, v, ino, mask, &st);
	/* A read-only mount: writing fails whatever the mode says. */
	if (!rc && (mask & W_OK) && fs->read_only && !(st.st_mode & 0222))
		rc = -EROFS;
	rvf_view_release(v);
	fuse_reply_err(req, -rc);
}
