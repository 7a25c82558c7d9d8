/* rvfctl delete: soft-delete by ids or by filter. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

int cmd_delete(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ids", required_argument, NULL, 'i' },
		{ "filter", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	const char *ids_arg = NULL, *filter_json = NULL;
	bool json = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i': ids_arg = optarg; break;
		case 'f': filter_json = optarg; break;
		case 'j': json = true; break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || (!ids_arg == !filter_json))
		return ctl_usage_error("delete needs STORE and one of --ids or --filter");
	uint64_t *ids = NULL;
	long n = 0;
	rvf_error err;
	rvf_filter *f = NULL;
	if (ids_arg && (n = parse_ids(ids_arg, &ids)) < 0)
		return ctl_usage_error("--ids: not a list of non-negative integers");
	if (filter_json && !(f = rvf_filter_parse(filter_json, &err))) {
		free(ids);
		return ctl_report(&err);
	}
	rvf_store *s;
	int rc = ctl_open(argv[optind], true, &s);
	if (!rc) {
		rvf_commit_info info;
		rvf_code code = f ? rvf_store_delete_filter(s, f, &info, &err) :
			       rvf_store_delete(s, (size_t)n, ids, &info, &err);
		if (code != RVF_OK)
			rc = ctl_report(&err);
		else if (json)
			printf("{\"deleted\":%llu,\"epoch\":%u}\n",
			       (unsigned long long)info.accepted, info.epoch);
		else
			printf("%llu deleted (epoch %u)\n",
			       (unsigned long long)info.accepted, info.epoch);
		rvf_store_close(s);
	}
	free(ids);
	rvf_filter_free(f);
	return rc;
}
