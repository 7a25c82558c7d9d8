/* xattr.c - FUSE handlers for extended attributes: each kind says what
 * its xattrs are (node.h; segment headers in node_segment.c, vector
 * metadata in vector_meta.c, kernel and eBPF fields in image_xattr.c, the
 * search codes on the query file in node_query.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

void xattr_reply(fuse_req_t req, const void *val, size_t n, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, n);
}

void xattr_hex(char *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

/* Security labels and POSIX ACLs (security.*, system.*) are not
 * supported: EOPNOTSUPP, not ENODATA, because ls, cp and friends remember
 * "unsupported" per filesystem and stop asking, while ENODATA makes them
 * ask again for every file (two round trips a file for `ls -l`). */
static bool unsupported_namespace(const char *name)
{
	return !strncmp(name, "security.", 9) || !strncmp(name, "system.", 7);
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	rvffs *fs = fs_of(req);
	if (unsupported_namespace(name)) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	const node_ops *ops = node_of(fs, ino);
	if (!ops->getxattr) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	rvf_view *v = fs_view(fs);
	ops->getxattr(req, fs, v, ino, name, size);
	rvf_view_release(v);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	rvffs *fs = fs_of(req);
	const node_ops *ops = node_of(fs, ino);
	rvf_view *v = fs_view(fs);
	char *list = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&list, &len);
	if (f && ops->listxattr)
		ops->listxattr(fs, v, ino, f);
	if (f)
		fclose(f);
	xattr_reply(req, list, len, size);
	free(list);
	rvf_view_release(v);
}

bool xattr_parse_num(const char *value, size_t size, unsigned long max,
		     unsigned long *out)
{
	char buf[32];
	if (size == 0 || size >= sizeof(buf))
		return false;
	memcpy(buf, value, size);
	buf[size] = '\0';
	char *end;
	errno = 0;
	unsigned long v = strtoul(buf, &end, 0);
	if (*end || errno || v > max || buf[0] == '-')
		return false;
	*out = v;
	return true;
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		 const char *value, size_t size, int flags)
{
	(void)flags;
	rvffs *fs = fs_of(req);
	if (fs->read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	const node_ops *ops = node_of(fs, ino);
	rvf_view *v = fs_view(fs);
	/* user.* attributes: whoever may write the file (xattr(7)). */
	int rc = access_ino(req, fs, v, ino, W_OK, NULL);
	if (!rc)
		rc = ops->setxattr ? ops->setxattr(fs, v, ino, name, value, size) :
		     -ENOTSUP;
	rvf_view_release(v);
	if (!rc)
		fs_invalidate(fs, false);
	fuse_reply_err(req, -rc);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	rvffs *fs = fs_of(req);
	if (fs->read_only) {
		fuse_reply_err(req, EROFS);
		return;
	}
	const node_ops *ops = node_of(fs, ino);
	rvf_view *v = fs_view(fs);
	int rc = access_ino(req, fs, v, ino, W_OK, NULL);
	if (!rc)
		rc = ops->removexattr ? ops->removexattr(fs, v, ino, name) : -ENOTSUP;
	rvf_view_release(v);
	fuse_reply_err(req, -rc);
}
