/* rvfctl compact, derive, branch, freeze.
 *
 * On a mount point each is a command to the daemon's `control` file: the
 * daemon holds the writer lock, commits, and the mount shows the result
 * (after a compaction, the compacted file). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mount.h"
#include "progress.h"

/* The derivation types of the upstream CLI.  The format has no field for
 * one (FileIdentity holds only ids, hash and depth), so it is checked and
 * reported, not stored. */
static const char *const derive_types[] = {
	"clone", "filter", "merge", "quantize", "reindex", "transform", "snapshot",
};

/* Runs a control command with a spinner (the daemon gives no progress). */
static int mount_op(ctl_ctx *ctx, const char *mnt, const char *what,
		    const char *line, bool spin)
{
	progress bar;
	if (spin)
		progress_begin(&bar, what, 0, false);
	int rc = mnt_command(ctx, mnt, what, line);
	if (spin)
		progress_end(&bar);
	return rc;
}

int cmd_compact(ctl_ctx *ctx, int argc, char **argv)
{
	bool force = false;
	const char *path = NULL;
	for (int a = 1; a < argc; a++) {
		if (!strcmp(argv[a], "--force"))
			force = true;
		else if (!path)
			path = argv[a];
		else
			path = "";
	}
	if (!path || !*path)
		return ctl_usage_error(ctx, "compact needs STORE [--force]");
	uint64_t removed, size_before, size_after;
	uint32_t epoch;
	bool mounted = mnt_detect(path);
	int rc;
	if (mounted) {
		json_t *st;
		if ((rc = mnt_status(ctx, path, &st)))
			return rc;
		removed = kv_u64(st, "deleted");
		size_before = kv_u64(st, "file_size");
		json_decref(st);
		if ((rc = mount_op(ctx, path, force ? "compact force" : "compact",
				   "compact", true)) ||
		    (rc = mnt_status(ctx, path, &st)))
			return rc;
		size_after = kv_u64(st, "file_size");
		epoch = (uint32_t)kv_u64(st, "epoch");
		removed -= removed >= kv_u64(st, "deleted") ? kv_u64(st, "deleted") : removed;
		json_decref(st);
	} else {
		/* Compaction rewrites the file: the state branch children
		 * read is gone afterwards (they read a prefix of it). */
		rvf_children ch;
		if (!force && rvf_branch_children(path, &ch, NULL) == RVF_OK &&
		    ch.count) {
			size_t len = 0;
			for (size_t k = 0; k < ch.count; k++)
				len += strlen(ch.paths[k]) + 1;
			char *list = calloc(1, len + 1);
			for (size_t k = 0; list && k < ch.count; k++) {
				strcat(list, ch.paths[k]);
				if (k + 1 < ch.count)
					strcat(list, " ");
			}
			rc = ctl_fail(ctx, EXIT_OTHER, NULL,
				      "%s has %zu branch child%s beside it (%s): compacting it would cut %s off from the vectors %s inherit%s. Run `rvfctl detach CHILD` first, or compact with --force",
				      path, ch.count, ch.count == 1 ? "" : "ren",
				      list ? list : "?", ch.count == 1 ? "it" : "them",
				      ch.count == 1 ? "it" : "they", ch.count == 1 ? "s" : "");
			free(list);
			rvf_children_free(&ch);
			return rc;
		} else if (!force) {
			/* none found: nothing to say */
		} else {
			ctx->children_noted = true;
			ctl_children_note(ctx, path, "compacting (--force)");
		}
		rvf_store *s;
		if ((rc = ctl_open(ctx, path, true, &s)))
			return rc;
		rvf_view *v = rvf_store_view(s);
		size_before = rvf_view_info(v)->file_size;
		rvf_view_release(v);
		rvf_error err;
		rvf_commit_info info;
		progress bar;
		progress_begin(&bar, "compact", 0, false);
		rvf_code code = rvf_store_compact(s, &info, &err);
		progress_end(&bar);
		v = rvf_store_view(s);
		size_after = rvf_view_info(v)->file_size;
		rvf_view_release(v);
		rvf_store_close(s);
		if (code != RVF_OK)
			return ctl_report(ctx, path, &err);
		removed = info.accepted;
		epoch = info.epoch;
	}
	uint64_t reclaimed = size_before > size_after ? size_before - size_after : 0;
	if (ctx->json)
		ctl_print_json(json_pack("{s:I,s:I,s:I,s:i,s:b}", "removed",
					 (json_int_t)removed, "bytesReclaimed",
					 (json_int_t)reclaimed, "fileSize",
					 (json_int_t)size_after, "epoch", (int)epoch,
					 "mounted", mounted));
	else
		printf("compacted: %llu deleted vectors removed, %llu bytes reclaimed (epoch %u)\n",
		       (unsigned long long)removed, (unsigned long long)reclaimed, epoch);
	return 0;
}

/* Reports a new child store (derive or branch). */
static int report_child(ctl_ctx *ctx, const char *verb, const char *parent,
			const char *child, const char *type)
{
	rvf_store *s;
	int rc = ctl_open(ctx, child, false, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	const rvf_info *i = rvf_view_info(v);
	char fid[33], pid[33];
	hex_encode(i->identity.file_id, 16, fid);
	hex_encode(i->identity.parent_id, 16, pid);
	if (ctx->json) {
		json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:s,s:I,s:b}",
			"parent", parent, "child", child, "fileId", fid, "parentId", pid,
			"lineageDepth", (int)i->identity.lineage_depth,
			"dimension", (int)i->dimension, "metric", rvf_metric_name(i->metric),
			"vectors", (json_int_t)i->visible, "branch", i->is_branch);
		if (!strcmp(verb, "derived")) {
			json_object_set_new(o, "type", type ? json_string(type) : json_null());
			/* No field of the format can hold it: say so to scripts. */
			json_object_set_new(o, "typeRecorded", json_false());
		}
		ctl_print_json(o);
	} else {
		printf("%s %s from %s: file id %s, lineage depth %u%s%s%s\n", verb,
		       child, parent, fid, i->identity.lineage_depth,
		       type ? " (type " : "", type ? type : "",
		       type ? "; not stored: the format has no field for it)" : "");
	}
	rvf_view_release(v);
	rvf_store_close(s);
	return 0;
}

/* derive / branch of a mounted parent: the daemon creates the child. */
static int child_through_mount(ctl_ctx *ctx, const char *mnt, const char *verb,
			       const char *child, const rvf_child_options *o)
{
	char *abs = absolute_path(child);
	char *q = abs ? mnt_quote(abs) : NULL;
	char *line = NULL;
	int rc;
	if (!q) {
		rc = ctl_fail(ctx, EXIT_OTHER, NULL, "%s: cannot resolve the path", child);
	} else {
		char extra[64] = "";
		if (o && o->dimension)
			snprintf(extra, sizeof(extra), " dim=%u", o->dimension);
		if (o && o->metric >= 0)
			snprintf(extra + strlen(extra), sizeof(extra) - strlen(extra),
				 " metric=%s", rvf_metric_name((rvf_metric)o->metric));
		rc = asprintf(&line, "%s %s%s", verb, q, extra) < 0 ?
		     ctl_fail(ctx, EXIT_IO, NULL, "out of memory") :
		     mount_op(ctx, mnt, verb, line, false);
	}
	free(line);
	free(q);
	free(abs);
	return rc;
}

int cmd_derive(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dim", required_argument, NULL, 'd' },
		{ "metric", required_argument, NULL, 'm' },
		{ "type", required_argument, NULL, 't' },
		{ 0 },
	};
	rvf_child_options o = { .dimension = 0, .metric = -1 };
	const char *type = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			if (!parse_u32(optarg, 65535, &o.dimension) || !o.dimension)
				return ctl_usage_error(ctx, "--dim must be 1..65535");
			break;
		case 'm': {
			rvf_metric m;
			if (!rvf_metric_parse(optarg, &m))
				return ctl_usage_error(ctx, "unknown metric '%s'", optarg);
			o.metric = (int)m;
			break;
		}
		case 't':
			for (size_t i = 0; i < sizeof(derive_types) / sizeof(derive_types[0]); i++)
				if (!strcmp(optarg, derive_types[i]))
					type = derive_types[i];
			if (!type)
				return ctl_usage_error(ctx, "--type must be clone, filter, merge, quantize, reindex, transform or snapshot");
			break;
		default: return EXIT_USAGE;
		}
	}
	if (optind != argc - 2)
		return ctl_usage_error(ctx, "derive needs PARENT and CHILD");
	const char *parent = argv[optind], *child = argv[optind + 1];
	if (mnt_detect(child))
		return ctl_fail(ctx, EXIT_OTHER, NULL, "%s is a mounted store; CHILD must be a new file", child);
	int rc;
	if (mnt_detect(parent)) {
		rc = child_through_mount(ctx, parent, "derive", child, &o);
	} else {
		rvf_store *p, *ch;
		if ((rc = ctl_open(ctx, parent, false, &p)))
			return rc;
		rvf_error err;
		if (rvf_store_derive(p, child, &o, &ch, &err) != RVF_OK)
			rc = ctl_report(ctx, child, &err);
		else
			rvf_store_close(ch);
		rvf_store_close(p);
	}
	return rc ? rc : report_child(ctx, "derived", parent, child, type);
}

int cmd_branch(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc != 3)
		return ctl_usage_error(ctx, "branch needs PARENT and CHILD");
	const char *parent = argv[1], *child = argv[2];
	if (mnt_detect(child))
		return ctl_fail(ctx, EXIT_OTHER, NULL, "%s is a mounted store; CHILD must be a new file", child);
	int rc;
	if (mnt_detect(parent)) {
		rc = child_through_mount(ctx, parent, "branch", child, NULL);
	} else {
		rvf_store *p, *ch;
		if ((rc = ctl_open(ctx, parent, false, &p)))
			return rc;
		rvf_error err;
		if (rvf_store_branch(p, child, &ch, &err) != RVF_OK)
			rc = ctl_report(ctx, child, &err);
		else
			rvf_store_close(ch);
		rvf_store_close(p);
	}
	return rc ? rc : report_child(ctx, "branched", parent, child, NULL);
}

int cmd_freeze(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc != 2)
		return ctl_usage_error(ctx, "freeze needs STORE");
	const char *path = argv[1];
	bool mounted = mnt_detect(path);
	uint32_t epoch;
	int rc;
	if (mounted) {
		json_t *st;
		if ((rc = mount_op(ctx, path, "freeze", "freeze", false)) ||
		    (rc = mnt_status(ctx, path, &st)))
			return rc;
		epoch = (uint32_t)kv_u64(st, "epoch");
		json_decref(st);
	} else {
		rvf_store *s;
		if ((rc = ctl_open(ctx, path, true, &s)))
			return rc;
		rvf_error err;
		rvf_commit_info info = { 0 };
		rvf_view *v = rvf_store_view(s);
		bool branch = rvf_view_info(v)->is_branch;
		rvf_view_release(v);
		if (!branch) {
			/* Only a branch child's COW_MAP records a freeze: a root
			 * store would take the next write.  Never claim it. */
			rvf_store_close(s);
			return ctl_fail(ctx, EXIT_REFUSED, NULL,
					"not frozen: %s is not a branch child, and the format records a freeze only in a branch child's COW_MAP (the next ingest would commit); make the file read-only instead (chmod a-w, or mount -o ro)",
					path);
		}
		if (rvf_store_freeze(s, &info, &err) != RVF_OK)
			rc = ctl_report(ctx, path, &err);
		v = rvf_store_view(s);
		epoch = rvf_view_info(v)->epoch;
		rvf_view_release(v);
		rvf_store_close(s);
		if (rc)
			return rc;
	}
	if (ctx->json)
		ctl_print_json(json_pack("{s:b,s:i,s:b}", "frozen", 1, "epoch",
					 (int)epoch, "mounted", mounted));
	else
		printf("frozen (epoch %u)\n", epoch);
	return 0;
}
