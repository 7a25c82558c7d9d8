/* rvfctl delete: soft-delete by ids or by filter.
 *
 * On a mount point it is a `delete` / `delete-filter` control command;
 * the count is then how many vectors the mount stopped showing. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mount.h"

/* Ids per control command: each must fit in one write to `control`. */
#define IDS_PER_COMMAND 2000

static int delete_mount(ctl_ctx *ctx, const char *mnt, const uint64_t *ids,
			size_t n, const char *filter_json, uint64_t *deleted,
			uint32_t *epoch)
{
	json_t *st;
	int rc = mnt_status(ctx, mnt, &st);
	if (rc)
		return rc;
	uint64_t before = kv_u64(st, "vectors");
	json_decref(st);
	if (filter_json) {
		/* Compacted to one line: a command is one line.  (It parsed as
		 * a filter already, so it is JSON.) */
		json_t *j = json_loads(filter_json, JSON_DECODE_ANY, NULL);
		char *one = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
		char *line = NULL;
		json_decref(j);
		if (!one || asprintf(&line, "delete-filter %s", one) < 0)
			rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
		else
			rc = mnt_command(ctx, mnt, "delete-filter", line);
		free(line);
		free(one);
	}
	/* A very long list goes in several commits. */
	for (size_t at = 0; !filter_json && at < n && !rc; at += IDS_PER_COMMAND) {
		size_t m = n - at < IDS_PER_COMMAND ? n - at : IDS_PER_COMMAND;
		char *line = malloc(8 + 21 * m);
		if (!line)
			return ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
		size_t len = (size_t)sprintf(line, "delete");
		for (size_t i = 0; i < m; i++)
			len += (size_t)sprintf(line + len, " %llu",
					       (unsigned long long)ids[at + i]);
		rc = mnt_command(ctx, mnt, "delete", line);
		free(line);
	}
	if (rc || (rc = mnt_status(ctx, mnt, &st)))
		return rc;
	uint64_t after = kv_u64(st, "vectors");
	*epoch = (uint32_t)kv_u64(st, "epoch");
	json_decref(st);
	*deleted = before > after ? before - after : 0;
	return 0;
}

int cmd_delete(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "ids", required_argument, NULL, 'i' },
		{ "filter", required_argument, NULL, 'f' },
		{ 0 },
	};
	const char *ids_arg = NULL, *filter_json = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'i': ids_arg = optarg; break;
		case 'f': filter_json = optarg; break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || (!ids_arg == !filter_json))
		return ctl_usage_error(ctx, "delete needs STORE and one of --ids or --filter");
	const char *path = argv[optind];
	uint64_t *ids = NULL;
	long n = 0;
	rvf_error err;
	rvf_filter *f = NULL;
	if (ids_arg && (n = parse_ids(ids_arg, &ids)) < 0)
		return ctl_usage_error(ctx, "--ids: not a list of non-negative integers");
	if (filter_json && !(f = rvf_filter_parse(filter_json, &err))) {
		free(ids);
		return ctl_report(ctx, "--filter", &err);
	}
	uint64_t deleted = 0;
	uint32_t epoch = 0;
	int rc = 0;
	bool mounted = mnt_detect(path);
	if (mounted) {
		rc = delete_mount(ctx, path, ids, (size_t)n, filter_json, &deleted, &epoch);
	} else {
		rvf_store *s;
		rc = ctl_open(ctx, path, true, &s);
		if (!rc) {
			rvf_commit_info info = { 0 };
			rvf_code code = f ? rvf_store_delete_filter(s, f, &info, &err) :
				       rvf_store_delete(s, (size_t)n, ids, &info, &err);
			if (code != RVF_OK)
				rc = ctl_report(ctx, path, &err);
			deleted = info.accepted;
			epoch = info.epoch;
			if (!info.epoch) { /* nothing matched: nothing written */
				rvf_view *v = rvf_store_view(s);
				epoch = rvf_view_info(v)->epoch;
				rvf_view_release(v);
			}
			ctl_close_written(ctx, path, s);
		}
	}
	if (!rc && ctx->json)
		ctl_print_json(json_pack("{s:I,s:i,s:b}", "deleted", (json_int_t)deleted,
					 "epoch", (int)epoch, "mounted", mounted));
	else if (!rc)
		printf("%llu deleted (epoch %u)\n", (unsigned long long)deleted, epoch);
	free(ids);
	rvf_filter_free(f);
	return rc;
}
