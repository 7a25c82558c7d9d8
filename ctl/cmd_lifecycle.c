/* rvfctl compact, derive, branch, freeze. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

static bool want_json(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--json"))
			return true;
	return false;
}

int cmd_compact(int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		return ctl_usage_error("compact needs STORE");
	bool json = want_json(argc, argv);
	rvf_store *s;
	int rc = ctl_open(argv[1], true, &s);
	if (rc)
		return rc;
	rvf_error err;
	rvf_commit_info info;
	if (rvf_store_compact(s, &info, &err) != RVF_OK)
		rc = ctl_report(&err);
	else if (json)
		printf("{\"removed\":%llu,\"bytesReclaimed\":%llu,\"epoch\":%u}\n",
		       (unsigned long long)info.accepted,
		       (unsigned long long)info.bytes, info.epoch);
	else
		printf("compacted: %llu deleted vectors removed (epoch %u)\n",
		       (unsigned long long)info.accepted, info.epoch);
	rvf_store_close(s);
	return rc;
}

int cmd_derive(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dim", required_argument, NULL, 'd' },
		{ "metric", required_argument, NULL, 'm' },
		{ "type", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	rvf_child_options o = { .dimension = 0, .metric = -1 };
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!parse_u32(optarg, 65535, &o.dimension) || !o.dimension)
				return ctl_usage_error("--dim must be 1..65535");
			break;
		case 'm': {
			rvf_metric m;
			if (!rvf_metric_parse(optarg, &m))
				return ctl_usage_error("unknown metric '%s'", optarg);
			o.metric = (int)m;
			break;
		}
		case 't': break; /* derivation type: recorded by issue 4's work */
		case 'j': break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 2)
		return ctl_usage_error("derive needs PARENT and CHILD");
	rvf_store *p, *child;
	int rc = ctl_open(argv[optind], false, &p);
	if (rc)
		return rc;
	rvf_error err;
	if (rvf_store_derive(p, argv[optind + 1], &o, &child, &err) != RVF_OK)
		rc = ctl_report(&err);
	else
		rvf_store_close(child);
	rvf_store_close(p);
	return rc;
}

int cmd_branch(int argc, char **argv)
{
	if (argc < 3 || argc > 4)
		return ctl_usage_error("branch needs PARENT and CHILD");
	rvf_store *p, *child;
	int rc = ctl_open(argv[1], false, &p);
	if (rc)
		return rc;
	rvf_error err;
	if (rvf_store_branch(p, argv[2], &child, &err) != RVF_OK)
		rc = ctl_report(&err);
	else
		rvf_store_close(child);
	rvf_store_close(p);
	return rc;
}

int cmd_freeze(int argc, char **argv)
{
	if (argc < 2 || argc > 3)
		return ctl_usage_error("freeze needs STORE");
	rvf_store *s;
	int rc = ctl_open(argv[1], true, &s);
	if (rc)
		return rc;
	rvf_error err;
	rvf_commit_info info;
	if (rvf_store_freeze(s, &info, &err) != RVF_OK)
		rc = ctl_report(&err);
	rvf_store_close(s);
	return rc;
}
