/* rvfctl embed/extract/remove for kernels and eBPF programs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");
	if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
		perror(path);
		return EXIT_IO;
	}
	return 0;
}

static int commit_result(rvf_store *s, rvf_code code, rvf_error *err)
{
	int rc = code == RVF_OK ? 0 : ctl_report(err);
	rvf_store_close(s);
	return rc;
}

int cmd_embed_kernel(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "arch", required_argument, NULL, 'a' },
		{ "type", required_argument, NULL, 't' },
		{ "flags", required_argument, NULL, 'f' },
		{ "api-port", required_argument, NULL, 'p' },
		{ "cmdline", required_argument, NULL, 'c' },
		{ "compress", no_argument, NULL, 'z' },
		{ 0 },
	};
	rvf_kernel_spec spec = { 0 };
	uint32_t v;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (!parse_u32(optarg, 255, &v))
				return ctl_usage_error("--arch must be 0..255");
			spec.arch = (uint8_t)v;
			break;
		case 't':
			if (!parse_u32(optarg, 255, &v))
				return ctl_usage_error("--type must be 0..255");
			spec.kernel_type = (uint8_t)v;
			break;
		case 'f':
			if (!parse_u32(optarg, UINT32_MAX, &spec.flags))
				return ctl_usage_error("--flags must be a 32-bit number");
			break;
		case 'p':
			if (!parse_u32(optarg, 65535, &v))
				return ctl_usage_error("--api-port must be 0..65535");
			spec.api_port = (uint16_t)v;
			break;
		case 'c': spec.cmdline = optarg; break;
		case 'z': spec.compress = true; break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 2)
		return ctl_usage_error("embed-kernel needs STORE and IMAGE");
	size_t len;
	unsigned char *img = read_file(argv[optind + 1], &len);
	if (!img) {
		perror(argv[optind + 1]);
		return EXIT_IO;
	}
	rvf_store *s;
	int rc = ctl_open(argv[optind], true, &s);
	if (!rc) {
		rvf_error err;
		rc = commit_result(s, rvf_store_embed_kernel(s, &spec, img, len, NULL,
							     &err), &err);
	}
	free(img);
	return rc;
}

int cmd_extract_kernel(int argc, char **argv)
{
	if (argc != 3)
		return ctl_usage_error("extract-kernel needs STORE and OUT");
	rvf_store *s;
	int rc = ctl_open(argv[1], false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	rvf_error err;
	unsigned char *img;
	size_t len;
	if (rvf_view_kernel_image(v, &img, &len, NULL, &err) != RVF_OK) {
		rc = ctl_report(&err);
	} else {
		rc = write_file(argv[2], img, len);
		free(img);
	}
	rvf_view_release(v);
	rvf_store_close(s);
	return rc;
}

int cmd_remove_kernel(int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage_error("remove-kernel needs STORE");
	rvf_store *s;
	int rc = ctl_open(argv[1], true, &s);
	if (rc)
		return rc;
	rvf_error err;
	return commit_result(s, rvf_store_remove_kernel(s, NULL, &err), &err);
}

int cmd_embed_ebpf(int argc, char **argv)
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
				return ctl_usage_error("--prog-type must be 0..255");
			spec.program_type = (uint8_t)v;
			break;
		case 'a':
			if (!parse_u32(optarg, 255, &v))
				return ctl_usage_error("--attach-type must be 0..255");
			spec.attach_type = (uint8_t)v;
			break;
		case 'm':
			if (!parse_u32(optarg, 65535, &v))
				return ctl_usage_error("--max-dim must be 0..65535");
			spec.max_dimension = (uint16_t)v;
			break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 2)
		return ctl_usage_error("embed-ebpf needs STORE and PROG");
	size_t len, blen = 0;
	unsigned char *prog = read_file(argv[optind + 1], &len), *btf = NULL;
	if (!prog) {
		perror(argv[optind + 1]);
		return EXIT_IO;
	}
	if (btf_path && !(btf = read_file(btf_path, &blen))) {
		perror(btf_path);
		free(prog);
		return EXIT_IO;
	}
	rvf_store *s;
	int rc = ctl_open(argv[optind], true, &s);
	if (!rc) {
		rvf_error err;
		rc = commit_result(s, rvf_store_embed_ebpf(s, &spec, prog, len, btf,
							   blen, NULL, &err), &err);
	}
	free(prog);
	free(btf);
	return rc;
}

int cmd_extract_ebpf(int argc, char **argv)
{
	const char *btf_out = NULL;
	if (argc == 5 && !strcmp(argv[3], "--btf"))
		btf_out = argv[4];
	else if (argc != 3)
		return ctl_usage_error("extract-ebpf needs STORE and OUT");
	rvf_store *s;
	int rc = ctl_open(argv[1], false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	rvf_ebpf_info e;
	if (!rvf_view_ebpf(v, &e)) {
		fprintf(stderr, "rvfctl: %s has no eBPF program\n", argv[1]);
		rc = EXIT_OTHER;
	} else if (!e.bytecode) {
		fprintf(stderr, "rvfctl: %s: the eBPF segment is damaged\n", argv[1]);
		rc = EXIT_REFUSED;
	} else {
		rc = write_file(argv[2], e.bytecode, (size_t)e.program_size);
		if (!rc && btf_out)
			rc = write_file(btf_out, e.btf, e.btf_size);
	}
	rvf_view_release(v);
	rvf_store_close(s);
	return rc;
}

int cmd_remove_ebpf(int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage_error("remove-ebpf needs STORE");
	rvf_store *s;
	int rc = ctl_open(argv[1], true, &s);
	if (rc)
		return rc;
	rvf_error err;
	return commit_result(s, rvf_store_remove_ebpf(s, NULL, &err), &err);
}
