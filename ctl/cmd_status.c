/* rvfctl status: the store's summary in key: value lines or JSON.
 *
 * On a mount point it is the mount's `status` file (what the daemon
 * shows), with the same JSON keys as for a file plus pid. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mount.h"

static int status_mount(ctl_ctx *ctx, const char *mnt)
{
	json_t *st;
	int rc = mnt_status(ctx, mnt, &st);
	if (rc)
		return rc;
	if (!ctx->json) {
		const char *key;
		json_t *val;
		json_object_foreach(st, key, val)
			printf("%s: %s\n", key, json_string_value(val));
		json_decref(st);
		return 0;
	}
	/* The `manifest` file has the directory size the file mode shows. */
	char *man = mnt_read(mnt, "manifest", NULL);
	const char *d = man ? strstr(man, "\ndirectory: ") : NULL;
	json_int_t dir = d ? (json_int_t)strtoull(d + 12, NULL, 10) :
		(json_int_t)kv_u64(st, "segments");
	free(man);
	const char *metric = kv_str(st, "metric");
	const char *ro = kv_str(st, "read_only");
	const char *durable = kv_str(st, "durable");
	json_t *o = json_pack("{s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:b,s:s,s:s,s:I,s:b,s:b,s:I,s:I,s:s}",
		"dimension", (json_int_t)kv_u64(st, "dimension"),
		"metric", metric ? metric : "",
		"vectors", (json_int_t)kv_u64(st, "vectors"),
		"deleted", (json_int_t)kv_u64(st, "deleted"),
		"epoch", (json_int_t)kv_u64(st, "epoch"),
		"segments", dir,
		"fileSize", (json_int_t)kv_u64(st, "file_size"),
		"deadBytes", (json_int_t)kv_u64(st, "dead_bytes"),
		"durable", !durable || strcmp(durable, "no"),
		"fileId", kv_str(st, "file_id") ? kv_str(st, "file_id") : "",
		"parentId", kv_str(st, "parent_id") ? kv_str(st, "parent_id") : "",
		"lineageDepth", (json_int_t)kv_u64(st, "lineage_depth"),
		"readOnly", ro && !strcmp(ro, "true"),
		"mounted", 1,
		"pid", (json_int_t)kv_u64(st, "pid"),
		"heapBytes", (json_int_t)kv_u64(st, "heap_bytes"),
		"mountPoint", mnt);
	json_decref(st);
	ctl_print_json(o);
	return 0;
}

int cmd_status(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage_error(ctx, "status needs STORE");
	if (mnt_detect(argv[1]))
		return status_mount(ctx, argv[1]);
	rvf_store *s;
	int rc = ctl_open(ctx, argv[1], false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	const rvf_info *i = rvf_view_info(v);
	char fid[33], pid[33];
	hex_encode(i->identity.file_id, 16, fid);
	hex_encode(i->identity.parent_id, 16, pid);
	if (ctx->json) {
		ctl_print_json(json_pack("{s:i,s:s,s:I,s:I,s:I,s:i,s:i,s:I,s:I,s:s,s:s,s:i,s:b,s:b,s:b}",
			"dimension", (int)i->dimension, "metric", rvf_metric_name(i->metric),
			"vectors", (json_int_t)i->visible, "totalVectors", (json_int_t)i->own_live,
			"deleted", (json_int_t)i->deleted, "epoch", (int)i->epoch,
			"segments", (int)i->directory_len, "fileSize", (json_int_t)i->file_size,
			"deadBytes", (json_int_t)i->dead_bytes,
			"fileId", fid, "parentId", pid,
			"lineageDepth", (int)i->identity.lineage_depth,
			"branch", i->is_branch, "readOnly", i->frozen, "mounted", 0));
	} else {
		printf("dimension: %u\nmetric: %s\nvectors: %llu\ndeleted: %llu\n"
		       "epoch: %u\nsegments: %u\nfile_size: %llu\ndead_bytes: %llu\n"
		       "file_id: %s\nparent_id: %s\nlineage_depth: %u\n",
		       i->dimension, rvf_metric_name(i->metric),
		       (unsigned long long)i->visible, (unsigned long long)i->deleted,
		       i->epoch, i->directory_len, (unsigned long long)i->file_size,
		       (unsigned long long)i->dead_bytes,
		       fid, pid, i->identity.lineage_depth);
		if (i->is_branch)
			printf("parent_as_of: %llu of %llu bytes%s\n",
			       (unsigned long long)i->parent_as_of,
			       (unsigned long long)i->parent_size,
			       i->parent_as_of < i->parent_size ?
			       " (the parent changed since the branch; read as it was then)" : "");
	}
	rvf_view_release(v);
	rvf_store_close(s);
	return 0;
}
