/* rvfctl filter: a MEMBERSHIP include/exclude filter, as upstream's
 * `rvf filter` (crates/rvf/rvf-cli/src/cmd/filter.rs) offers it.
 *
 * Upstream appends a MEMBERSHIP segment no manifest lists, which no reader
 * sees.  We make the filter real in the form the reference reads: OUT is a
 * copy-on-write branch of STORE (COW_MAP + MEMBERSHIP) whose membership
 * bitmap holds only the kept ids, so rvf-node opens it showing exactly
 * the ids we show.  Without -o the store itself must be a branch child:
 * the ids filtered out leave its membership (own rows among them are
 * deleted).  Visible afterwards: visible ∩ include, or visible − exclude. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "mount.h"

#define IDS_PER_COMMAND 2000

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static bool in_sorted(const uint64_t *a, size_t n, uint64_t id)
{
	return bsearch(&id, a, n, sizeof(uint64_t), cmp_u64) != NULL;
}

/* The visible ids of v that the filter drops (malloc'd; *n of them). */
static uint64_t *to_hide(const rvf_view *v, const uint64_t *ids, size_t nids,
			 bool include, size_t *n)
{
	const rvf_info *i = rvf_view_info(v);
	uint64_t *out = malloc(sizeof(uint64_t) * (i->visible ? i->visible : 1));
	*n = 0;
	if (!out)
		return NULL;
	for (size_t k = 0; k < i->visible; k++) {
		uint64_t id = rvf_view_id_at(v, k);
		if (in_sorted(ids, nids, id) != include)
			out[(*n)++] = id;
	}
	return out;
}

static int hide_in_store(ctl_ctx *ctx, const char *path, const uint64_t *ids,
			 size_t nids, bool include, uint64_t *hidden, uint64_t *visible)
{
	rvf_store *s;
	int rc = ctl_open(ctx, path, true, &s);
	if (rc)
		return rc;
	rvf_view *v = rvf_store_view(s);
	rvf_error err;
	size_t n = 0;
	uint64_t *hide = NULL;
	if (!rvf_view_info(v)->is_branch) {
		rc = ctl_fail(ctx, EXIT_REFUSED, NULL,
			      "%s is not a branch child: a MEMBERSHIP filter applies to a branch's "
			      "inherited vectors; use -o OUT to make a filtered branch", path);
	} else if (!(hide = to_hide(v, ids, nids, include, &n))) {
		rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
	} else if (n) {
		rvf_commit_info info = { 0 };
		if (rvf_store_delete(s, n, hide, &info, &err) != RVF_OK)
			rc = ctl_report(ctx, path, &err);
	}
	rvf_view_release(v);
	free(hide);
	if (!rc) {
		v = rvf_store_view(s);
		*visible = rvf_view_info(v)->visible;
		rvf_view_release(v);
		*hidden = n;
	}
	rvf_store_close(s);
	return rc;
}

/* In place on a mount: the daemon hides them (control `delete`). */
static int hide_in_mount(ctl_ctx *ctx, const char *mnt, const uint64_t *ids,
			 size_t nids, bool include, uint64_t *hidden, uint64_t *visible)
{
	char *store = mnt_store_path(mnt);
	if (!store)
		return ctl_fail(ctx, EXIT_OTHER, NULL, "%s: cannot find the mounted store file", mnt);
	rvf_store *s;
	rvf_error err;
	int rc = 0;
	if (rvf_store_open(store, RVF_OPEN_READ_ONLY, &s, &err) != RVF_OK) {
		free(store);
		return ctl_report(ctx, mnt, &err);
	}
	free(store);
	rvf_view *v = rvf_store_view(s);
	size_t n = 0;
	uint64_t *hide = NULL;
	if (!rvf_view_info(v)->is_branch)
		rc = ctl_fail(ctx, EXIT_REFUSED, NULL,
			      "%s is not a branch child: a MEMBERSHIP filter applies to a branch's "
			      "inherited vectors; use -o OUT to make a filtered branch", mnt);
	else if (!(hide = to_hide(v, ids, nids, include, &n)))
		rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
	rvf_view_release(v);
	rvf_store_close(s);
	for (size_t at = 0; !rc && at < n; at += IDS_PER_COMMAND) {
		size_t m = n - at < IDS_PER_COMMAND ? n - at : IDS_PER_COMMAND;
		char *line = malloc(8 + 21 * m);
		if (!line) {
			rc = ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
			break;
		}
		size_t len = (size_t)sprintf(line, "delete");
		for (size_t i = 0; i < m; i++)
			len += (size_t)sprintf(line + len, " %llu", (unsigned long long)hide[at + i]);
		rc = mnt_command(ctx, mnt, "filter", line);
		free(line);
	}
	free(hide);
	json_t *st;
	if (!rc && !(rc = mnt_status(ctx, mnt, &st))) {
		*visible = kv_u64(st, "vectors");
		*hidden = n;
		json_decref(st);
	}
	return rc;
}

/* A new filtered branch OUT of STORE (a file or a mount point). */
static int filtered_branch(ctl_ctx *ctx, const char *path, const char *out,
			   const uint64_t *ids, size_t nids, bool include,
			   uint64_t *hidden, uint64_t *visible)
{
	if (mnt_detect(out))
		return ctl_fail(ctx, EXIT_OTHER, NULL, "%s is a mounted store; OUT must be a new file", out);
	rvf_store *p, *child;
	int rc = mnt_open_file_read_only(ctx, path, &p, NULL);
	if (rc)
		return rc;
	rvf_error err;
	if (rvf_store_branch(p, out, &child, &err) != RVF_OK) {
		rc = ctl_report(ctx, out, &err);
	} else {
		rvf_store_close(child);
		rc = hide_in_store(ctx, out, ids, nids, include, hidden, visible);
	}
	rvf_store_close(p);
	return rc;
}

int cmd_filter(ctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "include-ids", required_argument, NULL, 'i' },
		{ "exclude-ids", required_argument, NULL, 'x' },
		{ "output", required_argument, NULL, 'o' },
		{ 0 },
	};
	const char *inc = NULL, *exc = NULL, *out = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:", opts, NULL)) != -1) {
		switch (c) {
		case 'i': inc = optarg; break;
		case 'x': exc = optarg; break;
		case 'o': out = optarg; break;
		default:
			return ctl_usage_error(ctx, "usage: filter STORE --include-ids ID,...|--exclude-ids ID,... [-o OUT]");
		}
	}
	if (optind != argc - 1)
		return ctl_usage_error(ctx, "filter needs STORE");
	if (!inc == !exc)
		return ctl_usage_error(ctx, "filter needs exactly one of --include-ids and --exclude-ids");
	const char *path = argv[optind];
	bool include = inc != NULL;
	uint64_t *ids = NULL;
	long nids = parse_ids(include ? inc : exc, &ids);
	if (nids < 0)
		return ctl_usage_error(ctx, "bad id list '%s'", include ? inc : exc);
	qsort(ids, (size_t)nids, sizeof(uint64_t), cmp_u64);
	uint64_t hidden = 0, visible = 0;
	int rc = out ? filtered_branch(ctx, path, out, ids, (size_t)nids, include, &hidden, &visible) :
		 mnt_detect(path) ? hide_in_mount(ctx, path, ids, (size_t)nids, include, &hidden, &visible) :
		 hide_in_store(ctx, path, ids, (size_t)nids, include, &hidden, &visible);
	free(ids);
	if (rc)
		return rc;
	const char *mode = include ? "include" : "exclude";
	if (ctx->json)
		ctl_print_json(json_pack("{s:s,s:s,s:I,s:s,s:I,s:I}", "status", "filtered", "mode",
					 mode, "ids_count", (json_int_t)nids, "target",
					 out ? out : path, "hidden", (json_int_t)hidden, "visible",
					 (json_int_t)visible));
	else
		printf("filtered (%s %ld ids): %s shows %llu vectors, %llu hidden\n", mode, nids,
		       out ? out : path, (unsigned long long)visible, (unsigned long long)hidden);
	return 0;
}
