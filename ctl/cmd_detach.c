/* cmd_detach.c - rvfctl detach CHILD, and the warnings rvfctl prints when
 * it writes to a store that has branch children beside it. */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mount.h"

int ctl_children_note(ctl_ctx *ctx, const char *path, const char *what)
{
	(void)ctx;
	rvf_children ch;
	if (rvf_branch_children(path, &ch, NULL) != RVF_OK || ch.count == 0)
		return 0;
	fprintf(stderr, "rvfctl: warning: %s %s, which has %zu branch child%s beside it:",
		what, path, ch.count, ch.count == 1 ? "" : "ren");
	for (size_t i = 0; i < ch.count; i++)
		fprintf(stderr, " %s", ch.paths[i]);
	fputs(".\n  rvffs and rvfctl keep reading each child's parent as it was when the\n"
	      "  child was made; the reference (rvf-node) refuses a child once its parent\n"
	      "  changed (ParentHashMismatch), and a compaction of the parent cuts every\n"
	      "  child off.  `rvfctl detach CHILD` makes a child independent.\n", stderr);
	int n = (int)ch.count;
	rvf_children_free(&ch);
	return n;
}

int cmd_detach(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage_error(ctx, "detach needs CHILD");
	const char *path = argv[1];
	if (mnt_detect(path))
		return ctl_fail(ctx, EXIT_OTHER, NULL,
				"%s is a mount point: unmount it first (detach rewrites the store file)",
				path);
	rvf_store *s;
	int rc = ctl_open(ctx, path, true, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	char *parent = rvf_view_info(v)->parent_resolved ?
		       strdup(rvf_view_info(v)->parent_resolved) : NULL;
	rvf_view_release(v);
	rvf_error err;
	rvf_commit_info info;
	rvf_code code = rvf_store_detach(s, &info, &err);
	v = rvf_store_view(s);
	uint64_t visible = rvf_view_info(v)->visible;
	rvf_view_release(v);
	rvf_store_close(s);
	if (code != RVF_OK) {
		free(parent);
		return ctl_report(ctx, path, &err);
	}
	if (ctx->json)
		ctl_print_json(json_pack("{s:s,s:s?,s:I,s:I,s:i}", "store", path,
					 "parent", parent, "copied",
					 (json_int_t)info.accepted, "vectors",
					 (json_int_t)visible, "epoch", (int)info.epoch));
	else
		printf("detached %s from %s: %llu inherited vectors copied, %llu vectors (epoch %u)\n",
		       path, parent ? parent : "its parent",
		       (unsigned long long)info.accepted,
		       (unsigned long long)visible, info.epoch);
	free(parent);
	return 0;
}
