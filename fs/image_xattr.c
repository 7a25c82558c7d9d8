/* image_xattr.c - the header fields of `kernel` (user.rvf.kernel.*) and
 * `ebpf` (user.rvf.ebpf.*) as xattrs; setting one re-embeds the image
 * with that field changed. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

static const char *const kernel_attrs[] = {
	"user.rvf.kernel.arch", "user.rvf.kernel.type", "user.rvf.kernel.flags",
	"user.rvf.kernel.api_port", "user.rvf.kernel.cmdline",
	"user.rvf.kernel.image_hash", "user.rvf.kernel.compression",
	/* read-only: where the parts are (rvf.h, rvf_kernel_layout) and the
	 * header fields upstream's layouts fill */
	"user.rvf.kernel.layout", "user.rvf.kernel.min_memory_mb",
	"user.rvf.kernel.entry_point", "user.rvf.kernel.api_version",
	"user.rvf.kernel.vcpu_count", "user.rvf.kernel.build_timestamp",
	"user.rvf.kernel.binding", NULL,
};
#define KERNEL_BINDING_ATTR 13 /* listed only when there is one */
static const char *const ebpf_attrs[] = {
	"user.rvf.ebpf.program_type", "user.rvf.ebpf.attach_type",
	"user.rvf.ebpf.max_dimension", "user.rvf.ebpf.insn_count",
	"user.rvf.ebpf.program_hash", "user.rvf.ebpf.btf", NULL,
};

/* The kernel command line, from the shared copy: no image per caller. */
static void kernel_cmdline(fuse_req_t req, rvffs *fs, rvf_view *v, size_t size)
{
	struct image *im;
	int rc = image_kernel(fs, v, &im);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	const char *cmd = image_cmdline(im);
	xattr_reply(req, cmd ? cmd : "", cmd ? strlen(cmd) : 0, size);
	image_put(im);
}

static void kernel_getxattr(fuse_req_t req, rvffs *fs, rvf_view *v,
			    const char *name, size_t size)
{
	rvf_kernel_info k;
	char buf[256];
	int n = -1;
	if (!rvf_view_kernel(v, &k)) {
		fuse_reply_err(req, ENOENT);
		return;
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
		xattr_hex(buf, k.image_hash, 32);
		n = 64;
	} else if (!strcmp(name, kernel_attrs[6]))
		n = snprintf(buf, sizeof(buf), "%s", k.compression_name);
	else if (!strcmp(name, kernel_attrs[7]))
		n = snprintf(buf, sizeof(buf), "%s", k.layout_name);
	else if (!strcmp(name, kernel_attrs[8]))
		n = snprintf(buf, sizeof(buf), "%u", k.min_memory_mb);
	else if (!strcmp(name, kernel_attrs[9]))
		n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)k.entry_point);
	else if (!strcmp(name, kernel_attrs[10]))
		n = snprintf(buf, sizeof(buf), "%u", k.api_version);
	else if (!strcmp(name, kernel_attrs[11]))
		n = snprintf(buf, sizeof(buf), "%u", k.vcpu_count);
	else if (!strcmp(name, kernel_attrs[12]))
		n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)k.build_timestamp);
	else if (!strcmp(name, kernel_attrs[KERNEL_BINDING_ATTR]) && k.has_binding) {
		xattr_reply(req, k.binding, 128, size); /* in the view's mapping */
		return;
	} else if (!strcmp(name, kernel_attrs[4])) {
		kernel_cmdline(req, fs, v, size);
		return;
	}
	if (n < 0)
		fuse_reply_err(req, ENODATA);
	else
		xattr_reply(req, buf, (size_t)n, size);
}

static void ebpf_getxattr(fuse_req_t req, rvf_view *v, const char *name, size_t size)
{
	rvf_ebpf_info e;
	char buf[256];
	int n = -1;
	if (!rvf_view_ebpf(v, &e)) {
		fuse_reply_err(req, ENOENT);
		return;
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
		xattr_hex(buf, e.program_hash, 32);
		n = 64;
	} else if (!strcmp(name, ebpf_attrs[5])) {
		if (!e.bytecode)
			fuse_reply_err(req, EIO);
		else
			xattr_reply(req, e.btf, e.btf_size, size);
		return;
	}
	if (n < 0)
		fuse_reply_err(req, ENODATA);
	else
		xattr_reply(req, buf, (size_t)n, size);
}

void image_getxattr(fuse_req_t req, rvffs *fs, rvf_view *v, uint64_t ino,
		    const char *name, size_t size)
{
	if (ino == INO_KERNEL)
		kernel_getxattr(req, fs, v, name, size);
	else
		ebpf_getxattr(req, v, name, size);
}

void image_listxattr(rvffs *fs, rvf_view *v, uint64_t ino, FILE *out)
{
	(void)fs;
	rvf_kernel_info k;
	bool binding = ino == INO_KERNEL && rvf_view_kernel(v, &k) && k.has_binding;
	const char *const *names = ino == INO_KERNEL ? kernel_attrs : ebpf_attrs;
	for (size_t i = 0; names[i]; i++)
		if (names != kernel_attrs || i != KERNEL_BINDING_ATTR || binding)
			fwrite(names[i], 1, strlen(names[i]) + 1, out);
}

/* Changes field `name` of spec s to value: 0, -EINVAL, -ENOMEM. */
static int kernel_field(rvf_kernel_spec *s, const char *name, const char *value,
			size_t size, char **newcmd)
{
	unsigned long n = 0;
	if (!strcmp(name, kernel_attrs[0]) && xattr_parse_num(value, size, 255, &n))
		s->arch = (uint8_t)n;
	else if (!strcmp(name, kernel_attrs[1]) && xattr_parse_num(value, size, 255, &n))
		s->kernel_type = (uint8_t)n;
	else if (!strcmp(name, kernel_attrs[2]) && xattr_parse_num(value, size, UINT32_MAX, &n))
		s->flags = (uint32_t)n;
	else if (!strcmp(name, kernel_attrs[3]) && xattr_parse_num(value, size, 65535, &n))
		s->api_port = (uint16_t)n;
	else if (!strcmp(name, kernel_attrs[4]) && (*newcmd = strndup(value, size)))
		s->cmdline = *newcmd;
	else if (!strcmp(name, kernel_attrs[6]) && (size == 4 || size == 5))
		s->compress = !strncmp(value, "zstd", 4);
	else
		return -EINVAL;
	return 0;
}

/* Re-embeds the kernel with one header field changed. */
static int set_kernel(rvffs *fs, rvf_view *v, const char *name,
		      const char *value, size_t size)
{
	rvf_kernel_info k;
	if (!rvf_view_kernel(v, &k))
		return -ENOENT;
	if (k.has_binding) {
		/* We embed rvf-node's layout: the binding would be lost. */
		fs_error(fs, "kernel: %s: the kernel carries a KernelBinding that re-embedding would drop; "
			 "extract it and embed a new kernel instead", name);
		return -EPERM;
	}
	unsigned char *img;
	size_t len;
	char *cmd = NULL;
	rvf_error err;
	if (rvf_view_kernel_image(v, &img, &len, &cmd, &err) != RVF_OK)
		return -fs_rvf_errno(fs, "kernel", &err);
	rvf_kernel_spec s = { .arch = k.arch, .kernel_type = k.kernel_type,
			      .flags = k.flags, .api_port = k.api_port,
			      .cmdline = cmd, .compress = k.compression != 0 };
	char *newcmd = NULL;
	int rc = kernel_field(&s, name, value, size, &newcmd);
	if (!rc && rvf_store_embed_kernel(fs->store, &s, img, len, NULL, &err) != RVF_OK)
		rc = -fs_rvf_errno(fs, "kernel", &err);
	free(img);
	free(cmd);
	free(newcmd);
	return rc;
}

/* Re-embeds the eBPF program with one header field (or its BTF) changed. */
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
	if (!strcmp(name, ebpf_attrs[0]) && xattr_parse_num(value, size, 255, &n))
		s.program_type = (uint8_t)n;
	else if (!strcmp(name, ebpf_attrs[1]) && xattr_parse_num(value, size, 255, &n))
		s.attach_type = (uint8_t)n;
	else if (!strcmp(name, ebpf_attrs[2]) && xattr_parse_num(value, size, 65535, &n))
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

int image_setxattr(rvffs *fs, rvf_view *v, uint64_t ino, const char *name,
		   const char *value, size_t size)
{
	return ino == INO_KERNEL ? set_kernel(fs, v, name, value, size) :
	       set_ebpf(fs, v, name, value, size);
}
