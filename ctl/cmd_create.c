/* rvfctl create: a new, empty store. */
#include <getopt.h>
#include <stdio.h>

#include "common.h"

int cmd_create(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dim", required_argument, NULL, 'd' },
		{ "metric", required_argument, NULL, 'm' },
		{ "profile", required_argument, NULL, 'p' },
		{ 0 },
	};
	rvf_create_options o = { .metric = RVF_METRIC_L2 };
	uint32_t profile = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!parse_u32(optarg, 65535, &o.dimension) || !o.dimension)
				return ctl_usage_error("--dim must be 1..65535, not '%s'", optarg);
			break;
		case 'm':
			if (!rvf_metric_parse(optarg, &o.metric))
				return ctl_usage_error("unknown metric '%s' (l2, cosine or ip)", optarg);
			break;
		case 'p':
			if (!parse_u32(optarg, 255, &profile))
				return ctl_usage_error("--profile must be 0..255");
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !o.dimension)
		return ctl_usage_error("create needs STORE and --dim");
	o.profile = (uint8_t)profile;
	rvf_store *s;
	rvf_error err;
	if (rvf_store_create(argv[optind], &o, &s, &err) != RVF_OK)
		return ctl_report(&err);
	rvf_store_close(s);
	return 0;
}
