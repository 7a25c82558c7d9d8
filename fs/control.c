/* control.c - the `control` file: store-wide operations through the daemon.
 *
 * Each write(2) is one command line (control_parse.h has the language); it
 * runs, and commits, before the write returns, which then reports 0 or the
 * errno of the failure (the reason goes to `errors`).  This is how rvfctl
 * changes a mounted store (the daemon holds the writer lock, so nobody else
 * may) and why the mount shows the change at once.
 *
 * Who may: only the mounting user or root, checked when the file is opened
 * for writing.  Every later write on that descriptor is judged as the
 * opener, whoever writes it: a descriptor handed to a setuid program (as
 * its stderr, say) does not gain that program's rights.  The paths a
 * command names are opened and created with the opener's file rights
 * (caller.h), never the daemon's. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caller.h"
#include "control_parse.h"
#include "rvffs.h"

#define CONTROL_MAX (64u * 1024u) /* well under max_write: one request */
#define IMAGE_MAX (256u << 20)

/* Reads a whole file a command names (with the opener's rights: the
 * caller has switched them in); -errno with the reason logged.  A FIFO or
 * device is refused without blocking on it or reading from it. */
static int read_path(rvffs *fs, const char *what, const char *path,
		     unsigned char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		fs_error(fs, "control: %s: %s: %s", what, path, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > IMAGE_MAX) {
		fs_error(fs, "control: %s: %s: not a regular file of at most 256 MiB",
			 what, path);
		close(fd);
		return -EINVAL;
	}
	size_t n = (size_t)st.st_size, got = 0;
	unsigned char *buf = malloc(n ? n : 1);
	while (buf && got < n) {
		ssize_t r = read(fd, buf + got, n - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (!buf || got != n) {
		free(buf);
		fs_error(fs, "control: %s: %s: cannot read it whole", what, path);
		return buf ? -EIO : -ENOMEM;
	}
	*out = buf;
	*len = n;
	return 0;
}

static int do_child(rvffs *fs, const control_cmd *c)
{
	rvf_store *child;
	rvf_error err;
	rvf_code rc = c->verb == CTL_BRANCH ?
		      rvf_store_branch(fs->store, c->path, &child, &err) :
		      rvf_store_derive(fs->store, c->path, &c->child, &child, &err);
	if (rc != RVF_OK)
		return -fs_rvf_errno(fs, c->name, &err);
	rvf_store_close(child);
	return 0;
}

static int do_kernel(rvffs *fs, const control_cmd *c)
{
	unsigned char *img;
	size_t len;
	int rc = read_path(fs, c->name, c->path, &img, &len);
	if (rc)
		return rc;
	rvf_error err;
	if (rvf_store_embed_kernel(fs->store, &c->kernel, img, len, NULL, &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, c->name, &err);
	free(img);
	return rc;
}

static int do_ebpf(rvffs *fs, const control_cmd *c)
{
	unsigned char *prog, *btf = NULL;
	size_t len, blen = 0;
	int rc = read_path(fs, c->name, c->path, &prog, &len);
	if (rc)
		return rc;
	if (c->btf_path && (rc = read_path(fs, c->name, c->btf_path, &btf, &blen))) {
		free(prog);
		return rc;
	}
	rvf_error err;
	if (rvf_store_embed_ebpf(fs->store, &c->ebpf, prog, len, btf, blen, NULL,
				 &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, c->name, &err);
	free(prog);
	free(btf);
	return rc;
}

static int do_delete_filter(rvffs *fs, const control_cmd *c)
{
	rvf_error err;
	rvf_filter *f = rvf_filter_parse(c->filter, &err);
	if (!f)
		return -fs_rvf_errno(fs, c->name, &err);
	rvf_commit_info info;
	int rc = 0;
	if (rvf_store_delete_filter(fs->store, f, &info, &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, c->name, &err);
	rvf_filter_free(f);
	return rc;
}

static int do_sign(rvffs *fs, const control_cmd *c)
{
	uint8_t sk[RVF_SIGN_SECRET_KEY_BYTES], pk[RVF_SIGN_PUBLIC_KEY_BYTES];
	rvf_error err;
	int rc = 0;
	if (rvf_sign_read_key(c->path, sk, pk, &err) != RVF_OK ||
	    rvf_store_sign(fs->store, sk, pk, NULL, &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, c->name, &err);
	sodium_memzero(sk, sizeof(sk));
	return rc;
}

/* Runs a command that names paths, with the opener's file rights. */
static int as_opener(rvffs *fs, const caller *opener, const control_cmd *c,
		     int (*fn)(rvffs *, const control_cmd *))
{
	caller_saved saved;
	int rc = caller_enter(opener, &saved);
	if (rc) {
		fs_error(fs, "control: %s: cannot take the rights of uid %u: %s", c->name,
			 opener ? (unsigned)opener->uid : 0u, strerror(-rc));
		return rc;
	}
	rc = fn(fs, c);
	caller_leave(&saved);
	return rc;
}

/* Runs one command line; 0 or -errno. */
static int run(rvffs *fs, const caller *opener, const char *line, bool *compacted)
{
	control_cmd c;
	int rc = control_parse(line, &c);
	if (rc) {
		fs_error(fs, "control: %s", c.error);
		control_cmd_free(&c);
		return rc;
	}
	rvf_error err;
	rvf_code code = RVF_OK;
	rvf_commit_info info;
	switch (c.verb) {
	case CTL_BLANK:
		break; /* a blank line does nothing */
	case CTL_COMPACT:
		if (!c.force && (rc = fs_children_block(fs, "control: compact"))) {
			control_cmd_free(&c);
			return rc;
		}
		code = rvf_store_compact(fs->store, NULL, &err);
		*compacted = code == RVF_OK;
		break;
	case CTL_FREEZE: {
		rvf_view *v = rvf_store_view(fs->store);
		bool branch = rvf_view_info(v)->is_branch;
		rvf_view_release(v);
		if (!branch) {
			/* Only a branch child's COW_MAP can record it: a root
			 * store would be "frozen" until unmount.  Never claim it. */
			fs_error(fs, "control: freeze: %s is not a branch child, and the format records a freeze only in a branch child's COW_MAP; it would not last past this mount. Make the store read-only instead (chmod a-w STORE, or mount -o ro)",
				 fs->store_path);
			control_cmd_free(&c);
			return -EINVAL;
		}
		code = rvf_store_freeze(fs->store, NULL, &err);
		break;
	}
	case CTL_REMOVE_KERNEL:
		code = rvf_store_remove_kernel(fs->store, NULL, &err);
		break;
	case CTL_REMOVE_EBPF:
		code = rvf_store_remove_ebpf(fs->store, NULL, &err);
		break;
	case CTL_REBUILD_REFCOUNTS: {
		rvf_refcount_info ri;
		code = rvf_store_rebuild_refcounts(fs->store, &ri, NULL, &err);
		break;
	}
	case CTL_DELETE:
		code = rvf_store_delete(fs->store, c.nids, c.ids, &info, &err);
		break;
	case CTL_DELETE_FILTER:
		rc = do_delete_filter(fs, &c);
		break;
	case CTL_DERIVE:
	case CTL_BRANCH:
		rc = as_opener(fs, opener, &c, do_child);
		break;
	case CTL_EMBED_KERNEL:
		rc = as_opener(fs, opener, &c, do_kernel);
		break;
	case CTL_EMBED_EBPF:
		rc = as_opener(fs, opener, &c, do_ebpf);
		break;
	case CTL_SIGN:
		rc = as_opener(fs, opener, &c, do_sign);
		break;
	}
	if (code != RVF_OK)
		rc = -fs_rvf_errno(fs, c.name, &err);
	control_cmd_free(&c);
	return rc;
}

int control_open(fuse_req_t req, struct caller **opener, struct fuse_file_info *fi)
{
	rvffs *fs = fs_of(req);
	if ((fi->flags & O_ACCMODE) == O_RDONLY) {
		/* Anyone may read it, and finds nothing: tar, rsync and cp -a
		 * of the whole tree copy it as an empty file. */
		fi->direct_io = 1;
		return 0;
	}
	if (fs->read_only)
		return -EROFS;
	uid_t uid = fuse_req_ctx(req)->uid;
	if (uid != 0 && uid != fs->uid) {
		fs_error(fs, "control: uid %u may not open it for writing (only the mounting user and root may send commands)",
			 (unsigned)uid);
		return -EACCES;
	}
	*opener = caller_of(req);
	if (!*opener)
		return -ENOMEM;
	fi->direct_io = 1;
	return 0;
}

void control_write(fuse_req_t req, struct caller *opener, const char *buf, size_t size)
{
	rvffs *fs = fs_of(req);
	if (!opener) { /* not opened for writing */
		fuse_reply_err(req, EBADF);
		return;
	}
	if (size > CONTROL_MAX) {
		fs_error(fs, "control: a command is at most %u bytes", CONTROL_MAX);
		fuse_reply_err(req, E2BIG);
		return;
	}
	if (memchr(buf, '\0', size)) {
		fs_error(fs, "control: a command is text (found a NUL byte)");
		fuse_reply_err(req, EINVAL);
		return;
	}
	char *line = strndup(buf, size);
	if (!line) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	int rc;
	bool compacted = false;
	if (strchr(line, '\n')) {
		fs_error(fs, "control: one command per write");
		rc = -EINVAL;
	} else if ((rc = fs_store_check(fs)) == 0) {
		rc = run(fs, opener, line, &compacted);
		/* Views and names changed with the commit (after a failure
		 * nothing changed, and an invalidation is harmless); a write
		 * to `control` holds no directory lock, so it can wait until
		 * the kernel was told. */
		(void)compacted;
		fs_invalidate(fs, true);
	}
	free(line);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_write(req, size);
}
