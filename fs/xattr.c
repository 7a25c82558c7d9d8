/* xattr.c - extended attributes: segment headers (user.rvf.*), vector
 * metadata (user.rvf.meta.NAME), kernel and eBPF header fields
 * (user.rvf.kernel.*, user.rvf.ebpf.*; the settable ones re-embed). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rvffs.h"

#define META_PREFIX "user.rvf.meta."

static const char *const kernel_attrs[] = {
	"user.rvf.kernel.arch", "user.rvf.kernel.type", "user.rvf.kernel.flags",
	"user.rvf.kernel.api_port", "user.rvf.kernel.cmdline",
	"user.rvf.kernel.image_hash", "user.rvf.kernel.compression", NULL,
};
static const char *const ebpf_attrs[] = {
	"user.rvf.ebpf.program_type", "user.rvf.ebpf.attach_type",
	"user.rvf.ebpf.max_dimension", "user.rvf.ebpf.insn_count",
	"user.rvf.ebpf.program_hash", "user.rvf.ebpf.btf", NULL,
};

/* On the query file: the state of the view's search codes. */
#define CODES_ATTR "user.rvf.search_codes"

static void reply_value(fuse_req_t req, const void *val, size_t n, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, n);
}

static void hexs(char *out, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
}

static int value_text(const rvf_value *v, char **out, size_t *len)
{
	switch (v->type) {
	case RVF_VALUE_STRING:
	case RVF_VALUE_BYTES:
		*out = malloc(v->u.str.len ? v->u.str.len : 1);
		if (!*out)
			return -ENOMEM;
		memcpy(*out, v->u.str.ptr, v->u.str.len);
		*len = v->u.str.len;
		return 0;
	case RVF_VALUE_I64:
		*len = (size_t)asprintf(out, "%lld", (long long)v->u.i64);
		break;
	case RVF_VALUE_U64:
		*len = (size_t)asprintf(out, "%llu", (unsigned long long)v->u.u64);
		break;
	case RVF_VALUE_F64:
		*len = (size_t)asprintf(out, "%.17g", v->u.f64);
		break;
	case RVF_VALUE_BOOL:
		*len = (size_t)asprintf(out, "%s", v->u.b ? "true" : "false");
		break;
	}
	return *out ? 0 : -ENOMEM;
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
	rvf_view *v = fs_view(fs);
	char buf[256];
	switch (fs_node_kind(ino)) {
	case NODE_SEGMENT: {
		long i = seg_find_ino(fs, v, ino);
		long n = i < 0 ? -ENOENT : seg_xattr(v, (size_t)i, name, buf, sizeof(buf));
		if (n < 0)
			fuse_reply_err(req, (int)-n);
		else
			reply_value(req, buf, (size_t)n, size);
		break;
	}
	case NODE_VECTOR: {
		uint64_t id;
		const rvf_meta_field *f;
		size_t n = vec_id_of(fs, ino, &id) ? rvf_view_metadata(v, id, &f) : 0;
		bool found = false;
		if (!strncmp(name, META_PREFIX, strlen(META_PREFIX))) {
			for (size_t k = 0; k < n && !found; k++) {
				if (strcmp(f[k].name, name + strlen(META_PREFIX)))
					continue;
				char *t = NULL;
				size_t len = 0;
				found = true;
				if (value_text(&f[k].value, &t, &len))
					fuse_reply_err(req, ENOMEM);
				else
					reply_value(req, t, len, size);
				free(t);
			}
		}
		if (!found)
			fuse_reply_err(req, ENODATA);
		break;
	}
	default:
		if (ino == INO_KERNEL) {
			rvf_kernel_info k;
			int n = -1;
			if (!rvf_view_kernel(v, &k)) {
				fuse_reply_err(req, ENOENT);
				break;
			}
			if (!strcmp(name, kernel_attrs[0]))
				n = snprintf(buf, sizeof(buf), "%u", k.arch);
			else if (!strcmp(name, kernel_attrs[1]))
				n = snprintf(buf, sizeof(buf), "%u", k.kernel_type);
			else if (!strcmp(name, kernel_attrs[2]))
				n = snprintf(buf, sizeof(buf), "%u", k.flags);
			else if (!strcmp(name, kernel_attrs[3]))
				n = snprintf(buf, sizeof(buf), "%u", k.api_port);
			else if (!strcmp(name, kernel_attrs[5])) {
				hexs(buf, k.image_hash, 32);
				n = 64;
			} else if (!strcmp(name, kernel_attrs[6]))
				n = snprintf(buf, sizeof(buf), "%s",
					     k.compression == 1 ? "zstd" : "none");
			else if (!strcmp(name, kernel_attrs[4])) {
				/* The shared copy: no image per caller. */
				struct image *im;
				int rc = image_kernel(fs, v, &im);
				if (rc) {
					fuse_reply_err(req, -rc);
					break;
				}
				const char *cmd = image_cmdline(im);
				reply_value(req, cmd ? cmd : "", cmd ? strlen(cmd) : 0, size);
				image_put(im);
				break;
			}
			if (n < 0)
				fuse_reply_err(req, ENODATA);
			else
				reply_value(req, buf, (size_t)n, size);
		} else if (ino == INO_EBPF) {
			rvf_ebpf_info e;
			int n = -1;
			if (!rvf_view_ebpf(v, &e)) {
				fuse_reply_err(req, ENOENT);
				break;
			}
			if (!strcmp(name, ebpf_attrs[0]))
				n = snprintf(buf, sizeof(buf), "%u", e.program_type);
			else if (!strcmp(name, ebpf_attrs[1]))
				n = snprintf(buf, sizeof(buf), "%u", e.attach_type);
			else if (!strcmp(name, ebpf_attrs[2]))
				n = snprintf(buf, sizeof(buf), "%u", e.max_dimension);
			else if (!strcmp(name, ebpf_attrs[3]))
				n = snprintf(buf, sizeof(buf), "%u", e.insn_count);
			else if (!strcmp(name, ebpf_attrs[4])) {
				hexs(buf, e.program_hash, 32);
				n = 64;
			} else if (!strcmp(name, ebpf_attrs[5])) {
				if (!e.bytecode)
					fuse_reply_err(req, EIO);
				else
					reply_value(req, e.btf, e.btf_size, size);
				break;
			}
			if (n < 0)
				fuse_reply_err(req, ENODATA);
			else
				reply_value(req, buf, (size_t)n, size);
		} else if (ino == INO_QUERY && !strcmp(name, CODES_ATTR)) {
			uint64_t bytes;
			const char *st = fs->codes == RVF_ACCEL_OFF ? "off" :
					 rvf_view_accel_state(v, &bytes);
			int n = fs->codes == RVF_ACCEL_OFF || !bytes ?
				snprintf(buf, sizeof(buf), "%s", st) :
				snprintf(buf, sizeof(buf), "%s (%llu bytes)", st,
					 (unsigned long long)bytes);
			reply_value(req, buf, (size_t)n, size);
		} else {
			fuse_reply_err(req, ENODATA);
		}
	}
	rvf_view_release(v);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	rvffs *fs = fs_of(req);
	rvf_view *v = fs_view(fs);
	char *list = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&list, &len);
	const char *const *names = NULL;
	if (fs_node_kind(ino) == NODE_SEGMENT)
		names = seg_xattr_names;
	else if (ino == INO_KERNEL)
		names = kernel_attrs;
	else if (ino == INO_EBPF)
		names = ebpf_attrs;
	for (size_t i = 0; names && names[i]; i++)
		fwrite(names[i], 1, strlen(names[i]) + 1, f);
	if (ino == INO_QUERY)
		fwrite(CODES_ATTR, 1, sizeof(CODES_ATTR), f);
	if (fs_node_kind(ino) == NODE_VECTOR) {
		uint64_t id;
		const rvf_meta_field *m;
		size_t n = vec_id_of(fs, ino, &id) ? rvf_view_metadata(v, id, &m) : 0;
		for (size_t i = 0; i < n; i++)
			fprintf(f, META_PREFIX "%s%c", m[i].name, 0);
	}
	fclose(f);
	reply_value(req, list, len, size);
	free(list);
	rvf_view_release(v);
}

static bool parse_num(const char *value, size_t size, unsigned long max,
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

/* Re-embeds the kernel with one header field changed. */
static int set_kernel(rvffs *fs, rvf_view *v, const char *name,
		      const char *value, size_t size)
{
	rvf_kernel_info k;
	if (!rvf_view_kernel(v, &k))
		return -ENOENT;
	unsigned char *img;
	size_t len;
	char *cmd = NULL;
	rvf_error err;
	if (rvf_view_kernel_image(v, &img, &len, &cmd, &err) != RVF_OK)
		return -fs_rvf_errno(fs, "kernel", &err);
	rvf_kernel_spec s = { .arch = k.arch, .kernel_type = k.kernel_type,
			      .flags = k.flags, .api_port = k.api_port,
			      .cmdline = cmd, .compress = k.compression == 1 };
	unsigned long n = 0;
	char *newcmd = NULL;
	int rc = 0;
	if (!strcmp(name, kernel_attrs[0]) && parse_num(value, size, 255, &n))
		s.arch = (uint8_t)n;
	else if (!strcmp(name, kernel_attrs[1]) && parse_num(value, size, 255, &n))
		s.kernel_type = (uint8_t)n;
	else if (!strcmp(name, kernel_attrs[2]) && parse_num(value, size, UINT32_MAX, &n))
		s.flags = (uint32_t)n;
	else if (!strcmp(name, kernel_attrs[3]) && parse_num(value, size, 65535, &n))
		s.api_port = (uint16_t)n;
	else if (!strcmp(name, kernel_attrs[4]) && (newcmd = strndup(value, size)))
		s.cmdline = newcmd;
	else if (!strcmp(name, kernel_attrs[6]) && (size == 4 || size == 5))
		s.compress = !strncmp(value, "zstd", 4);
	else
		rc = -EINVAL;
	if (!rc && rvf_store_embed_kernel(fs->store, &s, img, len, NULL, &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, "kernel", &err);
	free(img);
	free(cmd);
	free(newcmd);
	return rc;
}

static int set_ebpf(rvffs *fs, rvf_view *v, const char *name,
		    const char *value, size_t size)
{
	rvf_ebpf_info e;
	if (!rvf_view_ebpf(v, &e))
		return -ENOENT;
	if (!e.bytecode)
		return -EIO;
	rvf_ebpf_spec s = { .program_type = e.program_type,
			    .attach_type = e.attach_type,
			    .max_dimension = e.max_dimension };
	const unsigned char *btf = e.btf;
	size_t btf_len = e.btf_size;
	unsigned long n = 0;
	if (!strcmp(name, ebpf_attrs[0]) && parse_num(value, size, 255, &n))
		s.program_type = (uint8_t)n;
	else if (!strcmp(name, ebpf_attrs[1]) && parse_num(value, size, 255, &n))
		s.attach_type = (uint8_t)n;
	else if (!strcmp(name, ebpf_attrs[2]) && parse_num(value, size, 65535, &n))
		s.max_dimension = (uint16_t)n;
	else if (!strcmp(name, ebpf_attrs[5])) {
		btf = (const unsigned char *)value;
		btf_len = size;
	} else
		return -EINVAL;
	rvf_error err;
	if (rvf_store_embed_ebpf(fs->store, &s, e.bytecode, (size_t)e.program_size,
				 btf, btf_len, NULL, &err) != RVF_OK)
		return -fs_rvf_errno(fs, "ebpf", &err);
	return 0;
}

/* Sets one metadata field: the vector is written again with its fields. */
static int set_meta(rvffs *fs, rvf_view *v, uint64_t ino, const char *field,
		    const char *value, size_t size, bool remove)
{
	uint64_t id;
	long i = vec_id_of(fs, ino, &id) ? rvf_view_find(v, id) : -1;
	if (i < 0)
		return -ENOENT;
	const rvf_meta_field *old;
	size_t n = rvf_view_metadata(v, id, &old);
	rvf_meta_field *f = calloc(n + 1, sizeof(*f));
	float *x = malloc(4 * (size_t)rvf_view_info(v)->dimension);
	if (!f || !x) {
		free(f);
		free(x);
		return -ENOMEM;
	}
	size_t k = 0;
	bool had = false;
	for (size_t j = 0; j < n; j++) {
		if (!strcmp(old[j].name, field)) {
			had = true;
			if (remove)
				continue;
		}
		f[k++] = old[j];
	}
	int rc = 0;
	if (remove && !had) {
		rc = -ENODATA;
	} else if (!remove) {
		/* A new value is text; a field that already holds a number keeps
		 * its type when the text parses as one. */
		rvf_value val = { .type = RVF_VALUE_STRING,
				  .u.str = { value, size } };
		for (size_t j = 0; j < k; j++)
			if (!strcmp(f[j].name, field)) {
				rvf_value t = f[j].value;
				char buf[64];
				char *end;
				if (t.type != RVF_VALUE_STRING && t.type != RVF_VALUE_BYTES &&
				    size < sizeof(buf)) {
					memcpy(buf, value, size);
					buf[size] = '\0';
					errno = 0;
					if (t.type == RVF_VALUE_I64) {
						t.u.i64 = strtoll(buf, &end, 10);
					} else if (t.type == RVF_VALUE_U64) {
						t.u.u64 = strtoull(buf, &end, 10);
					} else if (t.type == RVF_VALUE_F64) {
						t.u.f64 = strtod(buf, &end);
					} else {
						t.u.b = !strcmp(buf, "true");
						end = !strcmp(buf, "true") || !strcmp(buf, "false") ?
						      buf + size : buf;
					}
					if (*end == '\0' && !errno && size)
						val = t;
				}
				f[j].value = val;
				had = true;
				goto have;
			}
		f[k].name = field;
		f[k].value = val;
		k++;
	}
have:
	if (!rc) {
		size_t start[2] = { 0, k };
		rvf_error err;
		rvf_view_vector_at(v, (size_t)i, x);
		if (rvf_store_ingest(fs->store, 1, &id, x, f, start, NULL, &err) != RVF_OK)
			rc = -fs_rvf_errno(fs, "metadata", &err);
	}
	free(f);
	free(x);
	return rc;
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
	rvf_view *v = fs_view(fs);
	/* user.* attributes: whoever may write the file (xattr(7)). */
	int rc = access_ino(req, fs, v, ino, W_OK, NULL);
	if (rc)
		; /* refused */
	else if (ino == INO_KERNEL)
		rc = set_kernel(fs, v, name, value, size);
	else if (ino == INO_EBPF)
		rc = set_ebpf(fs, v, name, value, size);
	else if (fs_node_kind(ino) == NODE_VECTOR &&
		 !strncmp(name, META_PREFIX, strlen(META_PREFIX)) &&
		 name[strlen(META_PREFIX)])
		rc = set_meta(fs, v, ino, name + strlen(META_PREFIX), value, size, false);
	else
		rc = fs_node_kind(ino) == NODE_SEGMENT ? -EACCES : -ENOTSUP;
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
	rvf_view *v = fs_view(fs);
	int rc = access_ino(req, fs, v, ino, W_OK, NULL);
	if (rc)
		; /* refused */
	else if (fs_node_kind(ino) == NODE_VECTOR &&
		 !strncmp(name, META_PREFIX, strlen(META_PREFIX)))
		rc = set_meta(fs, v, ino, name + strlen(META_PREFIX), NULL, 0, true);
	else
		rc = -ENOTSUP;
	rvf_view_release(v);
	fuse_reply_err(req, -rc);
}
