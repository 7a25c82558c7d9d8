/* rvfctl status: the store's summary in key: value lines or JSON. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

int cmd_status(int argc, char **argv)
{
	bool json = argc == 3 && !strcmp(argv[2], "--json");
	if (argc != 2 && !json)
		return ctl_usage_error("status needs STORE");
	rvf_store *s;
	int rc = ctl_open(argv[1], false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	const rvf_info *i = rvf_view_info(v);
	char fid[33], pid[33];
	hex_encode(i->identity.file_id, 16, fid);
	hex_encode(i->identity.parent_id, 16, pid);
	if (json) {
		printf("{\"dimension\":%u,\"metric\":\"%s\",\"vectors\":%llu,"
		       "\"totalVectors\":%llu,\"deleted\":%llu,\"epoch\":%u,"
		       "\"segments\":%u,\"fileSize\":%llu,\"fileId\":\"%s\","
		       "\"parentId\":\"%s\",\"lineageDepth\":%u,\"branch\":%s}\n",
		       i->dimension, rvf_metric_name(i->metric),
		       (unsigned long long)i->visible, (unsigned long long)i->own_live,
		       (unsigned long long)i->deleted, i->epoch, i->directory_len,
		       (unsigned long long)i->file_size, fid, pid,
		       i->identity.lineage_depth, i->is_branch ? "true" : "false");
	} else {
		printf("dimension: %u\nmetric: %s\nvectors: %llu\ndeleted: %llu\n"
		       "epoch: %u\nsegments: %u\nfile_size: %llu\nfile_id: %s\n"
		       "parent_id: %s\nlineage_depth: %u\n",
		       i->dimension, rvf_metric_name(i->metric),
		       (unsigned long long)i->visible, (unsigned long long)i->deleted,
		       i->epoch, i->directory_len, (unsigned long long)i->file_size,
		       fid, pid, i->identity.lineage_depth);
	}
	rvf_view_release(v);
	rvf_store_close(s);
	return 0;
}
