/* rvfctl query: exact k nearest neighbours of one vector. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

int cmd_query(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "vector", required_argument, NULL, 'v' },
		{ "k", required_argument, NULL, 'k' },
		{ "filter", required_argument, NULL, 'f' },
		{ "threads", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ 0 },
	};
	const char *vec = NULL, *filter_json = NULL;
	uint32_t k = 10, threads = 0;
	bool json = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "k:", opts, NULL)) != -1) {
		switch (c) {
		case 'v': vec = optarg; break;
		case 'k':
			if (!parse_u32(optarg, 1u << 30, &k) || k == 0)
				return ctl_usage_error("--k must be a positive integer");
			break;
		case 'f': filter_json = optarg; break;
		case 't':
			if (!parse_u32(optarg, 1024, &threads))
				return ctl_usage_error("--threads must be 0..1024");
			break;
		case 'j': json = true; break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !vec)
		return ctl_usage_error("query needs STORE and --vector");
	float *q;
	long n = parse_floats(vec, &q);
	if (n < 0)
		return ctl_usage_error("--vector: not a list of finite numbers");
	rvf_store *s;
	int rc = ctl_open(argv[optind], false, &s);
	if (rc) {
		free(q);
		return rc;
	}
	rvf_view *v = rvf_store_view(s);
	const rvf_info *info = rvf_view_info(v);
	rvf_error err;
	rvf_filter *f = NULL;
	rvf_hit *hits = NULL;
	if ((uint32_t)n != info->dimension) {
		fprintf(stderr, "rvfctl: query has %ld numbers, the store's dimension is %u\n",
			n, info->dimension);
		rc = EXIT_USAGE;
		goto out;
	}
	if (filter_json && !(f = rvf_filter_parse(filter_json, &err))) {
		rc = ctl_report(&err);
		goto out;
	}
	hits = malloc(sizeof(rvf_hit) * k);
	size_t count = 0;
	rvf_search_options so = { .threads = threads, .filter = f };
	if (!hits || rvf_view_search(v, q, 1, k, &so, hits, &count, &err) != RVF_OK) {
		rc = hits ? ctl_report(&err) : EXIT_IO;
		goto out;
	}
	if (json)
		fputs("{\"results\":[", stdout);
	for (size_t i = 0; i < count; i++) {
		if (json) {
			printf("%s{\"id\":%llu,\"distance\":", i ? "," : "",
			       (unsigned long long)hits[i].id);
			print_float(stdout, hits[i].distance);
			putchar('}');
		} else {
			printf("%llu ", (unsigned long long)hits[i].id);
			print_float(stdout, hits[i].distance);
			putchar('\n');
		}
	}
	if (json)
		puts("]}");
out:
	free(hits);
	free(q);
	rvf_filter_free(f);
	rvf_view_release(v);
	rvf_store_close(s);
	return rc;
}
