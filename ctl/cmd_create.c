/* rvfctl create: a new, empty store. */
#include <getopt.h>
#include <stdio.h>

#include "common.h"
#include "mount.h"

int cmd_create(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dim", required_argument, NULL, 'd' },
		{ "metric", required_argument, NULL, 'm' },
		{ "profile", required_argument, NULL, 'p' },
		{ 0 },
	};
	/* The metric defaults to [create] metric of rvffs.conf. */
	rvf_create_options o = { .metric = ctx->cfg.create_metric };
	uint32_t profile = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!parse_u32(optarg, 65535, &o.dimension) || !o.dimension)
				return ctl_usage_error(ctx, "--dim must be 1..65535, not '%s'", optarg);
			break;
		case 'm':
			if (!rvf_metric_parse(optarg, &o.metric))
				return ctl_usage_error(ctx, "unknown metric '%s' (l2, cosine or ip)", optarg);
			break;
		case 'p':
			if (!parse_u32(optarg, 255, &profile))
				return ctl_usage_error(ctx, "--profile must be 0..255");
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !o.dimension)
		return ctl_usage_error(ctx, "create needs STORE and --dim");
	const char *path = argv[optind];
	if (mnt_detect(path))
		return ctl_fail(ctx, EXIT_OTHER, NULL,
				"%s is the mount point of a store; create makes a new store file",
				path);
	o.profile = (uint8_t)profile;
	rvf_store *s;
	rvf_error err;
	if (rvf_store_create(path, &o, &s, &err) != RVF_OK)
		return ctl_report(ctx, path, &err);
	rvf_view *v = rvf_store_view(s);
	uint32_t epoch = rvf_view_info(v)->epoch;
	rvf_view_release(v);
	rvf_store_close(s);
	if (ctx->json)
		ctl_print_json(json_pack("{s:s,s:i,s:s,s:i,s:i}", "store", path,
					 "dimension", (int)o.dimension, "metric",
					 rvf_metric_name(o.metric), "profile", (int)profile,
					 "epoch", (int)epoch));
	else
		printf("created %s: dimension %u, metric %s\n", path, o.dimension,
		       rvf_metric_name(o.metric));
	return 0;
}
