/* rvfctl embed/extract/remove for kernels and eBPF programs.
 *
 * On a mount point embedding and removing are control commands (the
 * daemon reads the image from its absolute path), and extracting copies
 * MNT/kernel or MNT/ebpf (the BTF comes from the user.rvf.ebpf.btf xattr). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "common.h"
#include "mount.h"

/* Epoch after a change: from the commit, or from the mount's status. */
static int finish(ctl_ctx *ctx, const char *path, bool mounted, uint32_t epoch,
		  json_t *fields, const char *human)
{
	if (mounted) {
		json_t *st;
		int rc = mnt_status(ctx, path, &st);
		if (rc) {
			json_decref(fields);
			return rc;
		}
		epoch = (uint32_t)kv_u64(st, "epoch");
		json_decref(st);
	}
	if (ctx->json) {
		json_object_set_new(fields, "epoch", json_integer(epoch));
		json_object_set_new(fields, "mounted", json_boolean(mounted));
		ctl_print_json(fields);
	} else {
		json_decref(fields);
		printf("%s (epoch %u)\n", human, epoch);
	}
	return 0;
}

/* Runs a commit on a store opened for writing. */
typedef rvf_code (*store_op)(rvf_store *s, void *arg, rvf_commit_info *info,
			     rvf_error *err);

static int on_store(ctl_ctx *ctx, const char *path, store_op op, void *arg,
		    uint32_t *epoch)
{
	rvf_store *s;
	int rc = ctl_open(ctx, path, true, &s);
	if (rc)
		return rc;
	rvf_error err;
	rvf_commit_info info = { 0 };
	if (op(s, arg, &info, &err) != RVF_OK)
		rc = ctl_report(ctx, path, &err);
	*epoch = info.epoch;
	rvf_store_close(s);
	return rc;
}

struct kernel_arg {
	const rvf_kernel_spec *spec;
	const unsigned char *img;
	size_t len;
};

static rvf_code op_embed_kernel(rvf_store *s, void *arg, rvf_commit_info *info,
				rvf_error *err)
{
	struct kernel_arg *a = arg;
	return rvf_store_embed_kernel(s, a->spec, a->img, a->len, info, err);
}

/* A control-command argument naming a file the daemon will read. */
static char *quoted_abs(const char *path)
{
	char *abs = absolute_path(path);
	char *q = abs ? mnt_quote(abs) : NULL;
	free(abs);
	return q;
}

int cmd_embed_kernel(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "arch", required_argument, NULL, 'a' },
		{ "type", required_argument, NULL, 't' },
		{ "flags", required_argument, NULL, 'f' },
		{ "api-port", required_argument, NULL, 'p' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "compress", no_argument, NULL, 'z' },
		{ "no-compress", no_argument, NULL, 'Z' },
		{ 0 },
	};
	/* Defaults from [kernel] of rvffs.conf. */
	rvf_kernel_spec spec = {
		.arch = ctx->cfg.kernel_arch, .kernel_type = ctx->cfg.kernel_type,
		.api_port = ctx->cfg.kernel_api_port,
		.compress = ctx->cfg.kernel_compress,
	};
	uint32_t v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (!parse_u32(optarg, 255, &v))
				return ctl_usage_error(ctx, "--arch must be 0..255");
			spec.arch = (uint8_t)v;
			break;
		case 't':
			if (!parse_u32(optarg, 255, &v))
				return ctl_usage_error(ctx, "--type must be 0..255");
			spec.kernel_type = (uint8_t)v;
			break;
		case 'f':
			if (!parse_u32(optarg, UINT32_MAX, &spec.flags))
				return ctl_usage_error(ctx, "--flags must be a 32-bit number");
			break;
		case 'p':
			if (!parse_u32(optarg, 65535, &v))
				return ctl_usage_error(ctx, "--api-port must be 0..65535");
			spec.api_port = (uint16_t)v;
			break;
		case 'c': spec.cmdline = optarg; break;
		case 'z': spec.compress = true; break;
		case 'Z': spec.compress = false; break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 2)
		return ctl_usage_error(ctx, "embed-kernel needs STORE and IMAGE");
	const char *path = argv[optind], *image = argv[optind + 1];
	size_t len;
	unsigned char *img = read_file(image, &len);
	if (!img)
		return ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", image, strerror(errno));
	bool mounted = mnt_detect(path);
	uint32_t epoch = 0;
	int rc;
	if (mounted) {
		char *q = quoted_abs(image), *cq = spec.cmdline ? mnt_quote(spec.cmdline) : NULL;
		char *line = NULL;
		if (!q || (spec.cmdline && !cq) ||
		    asprintf(&line, "embed-kernel %s arch=%u type=%u flags=%u api_port=%u%s%s%s",
			     q, spec.arch, spec.kernel_type, spec.flags, spec.api_port,
			     spec.compress ? " compress" : "", cq ? " cmdline=" : "",
			     cq ? cq : "") < 0)
			rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
		else
			rc = mnt_command(ctx, path, "embed-kernel", line);
		free(line);
		free(q);
		free(cq);
	} else {
		struct kernel_arg a = { &spec, img, len };
		rc = on_store(ctx, path, op_embed_kernel, &a, &epoch);
	}
	free(img);
	if (rc)
		return rc;
	char human[64];
	snprintf(human, sizeof(human), "kernel embedded: %zu bytes%s", len,
		 spec.compress ? ", zstd-compressed" : "");
	return finish(ctx, path, mounted, epoch,
		      json_pack("{s:I,s:b,s:i,s:i}", "imageSize", (json_int_t)len,
				"compressed", spec.compress, "arch", spec.arch,
				"type", spec.kernel_type), human);
}

static int extract_mount(ctl_ctx *ctx, const char *mnt, const char *name,
			 const char *out, size_t *len)
{
	char *data = mnt_read(mnt, name, len);
	if (!data)
		return ctl_fail(ctx, ctl_errno_exit(errno), NULL, errno == ENOENT ?
				"%s has no %s" : "%s/%s: %s", mnt, name, strerror(errno));
	int rc = write_file(ctx, out, data, *len);
	free(data);
	return rc;
}

/* An xattr of MNT/kernel as a string ("" when absent). */
static char *kernel_attr(const char *mnt, const char *name)
{
	char path[4096], buf[4096];
	snprintf(path, sizeof(path), "%s/kernel", mnt);
	ssize_t n = getxattr(path, name, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return strdup(buf);
}

int cmd_extract_kernel(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc != 3)
		return ctl_usage_error(ctx, "extract-kernel needs STORE and OUT");
	const char *path = argv[1], *out = argv[2];
	size_t len = 0;
	int rc;
	/* What else the header and layout say, for --json and the summary. */
	char *cmdline = NULL, *layout = NULL, *comp = NULL;
	if (mnt_detect(path)) {
		rc = extract_mount(ctx, path, "kernel", out, &len);
		if (!rc) {
			cmdline = kernel_attr(path, "user.rvf.kernel.cmdline");
			layout = kernel_attr(path, "user.rvf.kernel.layout");
			comp = kernel_attr(path, "user.rvf.kernel.compression");
		}
	} else {
		rvf_store *s;
		if ((rc = ctl_open(ctx, path, false, &s)))
			return rc;
		rvf_view *v = rvf_store_view(s);
		rvf_error err;
		rvf_kernel_info k;
		unsigned char *img;
		if (rvf_view_kernel_image(v, &img, &len, &cmdline, &err) != RVF_OK) {
			rc = ctl_report(ctx, path, &err);
		} else {
			rc = write_file(ctx, out, img, len);
			free(img);
			rvf_view_kernel(v, &k);
			layout = strdup(k.layout_name);
			comp = strdup(k.compression_name);
		}
		rvf_view_release(v);
		rvf_store_close(s);
	}
	if (!rc && ctx->json) {
		json_t *o = json_pack("{s:s,s:I,s:s,s:s}", "output", out, "bytes", (json_int_t)len,
				      "layout", layout ? layout : "",
				      "compression", comp ? comp : "");
		/* a cmdline that is not UTF-8 is shown as null, not dropped silently */
		json_t *c = json_string(cmdline ? cmdline : "");
		json_object_set_new(o, "cmdline", c ? c : json_null());
		ctl_print_json(o);
	} else if (!rc)
		printf("%zu bytes written to %s (layout %s, compression %s, cmdline \"%s\")\n",
		       len, out, layout ? layout : "?", comp ? comp : "?", cmdline ? cmdline : "");
	free(cmdline);
	free(layout);
	free(comp);
	return rc;
}

static rvf_code op_remove_kernel(rvf_store *s, void *arg, rvf_commit_info *info,
				 rvf_error *err)
{
	(void)arg;
	return rvf_store_remove_kernel(s, info, err);
}

static rvf_code op_remove_ebpf(rvf_store *s, void *arg, rvf_commit_info *info,
			       rvf_error *err)
{
	(void)arg;
	return rvf_store_remove_ebpf(s, info, err);
}

static int remove_image(ctl_ctx *ctx, int argc, char **argv, const char *what)
{
	if (argc != 2)
		return ctl_usage_error(ctx, "remove-%s needs STORE", what);
	const char *path = argv[1];
	bool mounted = mnt_detect(path);
	bool kernel = !strcmp(what, "kernel");
	uint32_t epoch = 0;
	int rc = mounted ? mnt_command(ctx, path, kernel ? "remove-kernel" : "remove-ebpf",
				       kernel ? "remove-kernel" : "remove-ebpf") :
		 on_store(ctx, path, kernel ? op_remove_kernel : op_remove_ebpf, NULL,
			  &epoch);
	if (rc)
		return rc;
	char human[32];
	snprintf(human, sizeof(human), "%s removed", what);
	return finish(ctx, path, mounted, epoch, json_pack("{s:b}", "removed", 1), human);
}

int cmd_remove_kernel(ctl_ctx *ctx, int argc, char **argv)
{
	return remove_image(ctx, argc, argv, "kernel");
}

int cmd_remove_ebpf(ctl_ctx *ctx, int argc, char **argv)
{
	return remove_image(ctx, argc, argv, "ebpf");
}

struct ebpf_arg {
	const rvf_ebpf_spec *spec;
	const unsigned char *prog, *btf;
	size_t len, blen;
};

static rvf_code op_embed_ebpf(rvf_store *s, void *arg, rvf_commit_info *info,
			      rvf_error *err)
{
	struct ebpf_arg *a = arg;
	return rvf_store_embed_ebpf(s, a->spec, a->prog, a->len, a->btf, a->blen,
				    info, err);
}

int cmd_embed_ebpf(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "btf", required_argument, NULL, 'b' },
		{ "prog-type", required_argument, NULL, 'p' },
		{ "attach-type", required_argument, NULL, 'a' },
		{ "max-dim", required_argument, NULL, 'm' },
		{ 0 },
	};
	rvf_ebpf_spec spec = { 0 };
	const char *btf_path = NULL;
	uint32_t v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'b': btf_path = optarg; break;
		case 'p':
			if (!parse_u32(optarg, 255, &v))
				return ctl_usage_error(ctx, "--prog-type must be 0..255");
			spec.program_type = (uint8_t)v;
			break;
		case 'a':
			if (!parse_u32(optarg, 255, &v))
				return ctl_usage_error(ctx, "--attach-type must be 0..255");
			spec.attach_type = (uint8_t)v;
			break;
		case 'm':
			if (!parse_u32(optarg, 65535, &v))
				return ctl_usage_error(ctx, "--max-dim must be 0..65535");
			spec.max_dimension = (uint16_t)v;
			break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 2)
		return ctl_usage_error(ctx, "embed-ebpf needs STORE and PROG");
	const char *path = argv[optind], *prog_path = argv[optind + 1];
	size_t len, blen = 0;
	unsigned char *prog = read_file(prog_path, &len), *btf = NULL;
	if (!prog)
		return ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", prog_path, strerror(errno));
	if (btf_path && !(btf = read_file(btf_path, &blen))) {
		free(prog);
		return ctl_fail(ctx, EXIT_IO, NULL, "%s: %s", btf_path, strerror(errno));
	}
	bool mounted = mnt_detect(path);
	uint32_t epoch = 0;
	int rc;
	if (mounted) {
		char *q = quoted_abs(prog_path), *bq = btf_path ? quoted_abs(btf_path) : NULL;
		char *line = NULL;
		if (!q || (btf_path && !bq) ||
		    asprintf(&line, "embed-ebpf %s%s%s prog_type=%u attach_type=%u max_dim=%u",
			     q, bq ? " btf=" : "", bq ? bq : "", spec.program_type,
			     spec.attach_type, spec.max_dimension) < 0)
			rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
		else
			rc = mnt_command(ctx, path, "embed-ebpf", line);
		free(line);
		free(q);
		free(bq);
	} else {
		struct ebpf_arg a = { &spec, prog, btf, len, blen };
		rc = on_store(ctx, path, op_embed_ebpf, &a, &epoch);
	}
	free(prog);
	free(btf);
	if (rc)
		return rc;
	char human[80];
	snprintf(human, sizeof(human), "eBPF program embedded: %zu bytes, %zu bytes of BTF",
		 len, blen);
	return finish(ctx, path, mounted, epoch,
		      json_pack("{s:I,s:I}", "programSize", (json_int_t)len,
				"btfSize", (json_int_t)blen), human);
}

int cmd_extract_ebpf(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "btf", required_argument, NULL, 'b' },
		{ 0 },
	};
	const char *btf_out = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'b')
			return EXIT_USAGE;
		btf_out = optarg;
	}
	if (optind != argc - 2)
		return ctl_usage_error(ctx, "extract-ebpf needs STORE and OUT");
	const char *path = argv[optind], *out = argv[optind + 1];
	size_t len = 0, blen = 0;
	int rc;
	if (mnt_detect(path)) {
		rc = extract_mount(ctx, path, "ebpf", out, &len);
		if (!rc && btf_out) {
			char *file = NULL;
			unsigned char *btf = NULL;
			ssize_t n = -1;
			if (asprintf(&file, "%s/ebpf", path) > 0 &&
			    (n = getxattr(file, "user.rvf.ebpf.btf", NULL, 0)) >= 0 &&
			    (btf = malloc((size_t)n + 1)))
				n = getxattr(file, "user.rvf.ebpf.btf", btf, (size_t)n);
			rc = n < 0 ? ctl_fail(ctx, ctl_errno_exit(errno), NULL,
					      "%s: user.rvf.ebpf.btf: %s", file, strerror(errno)) :
			     write_file(ctx, btf_out, btf, (size_t)n);
			blen = n > 0 ? (size_t)n : 0;
			free(btf);
			free(file);
		}
	} else {
		rvf_store *s;
		if ((rc = ctl_open(ctx, path, false, &s)))
			return rc;
		rvf_view *v = rvf_store_view(s);
		rvf_ebpf_info e;
		if (!rvf_view_ebpf(v, &e)) {
			rc = ctl_fail(ctx, EXIT_OTHER, NULL, "%s has no eBPF program", path);
		} else if (!e.bytecode) {
			rc = ctl_fail(ctx, EXIT_REFUSED, NULL, "%s: the eBPF segment is damaged", path);
		} else {
			len = (size_t)e.program_size;
			blen = e.btf_size;
			rc = write_file(ctx, out, e.bytecode, len);
			if (!rc && btf_out)
				rc = write_file(ctx, btf_out, e.btf, blen);
		}
		rvf_view_release(v);
		rvf_store_close(s);
	}
	if (!rc && ctx->json) {
		json_t *o = json_pack("{s:s,s:I}", "output", out, "bytes", (json_int_t)len);
		if (btf_out) {
			json_object_set_new(o, "btf", json_string(btf_out));
			json_object_set_new(o, "btfBytes", json_integer((json_int_t)blen));
		}
		ctl_print_json(o);
	} else if (!rc) {
		printf("%zu bytes written to %s\n", len, out);
	}
	return rc;
}
