/* detach.c - making a branch child independent of its parent.
 *
 * The inherited rows the child sees are written into the child as its own
 * rows (with the parent's metadata for them), in one commit whose manifest
 * lists no COW_MAP or MEMBERSHIP: every reader then opens the child as a
 * plain store holding exactly the vectors it showed.  The file is then
 * compacted: the reference's compaction byte-scans the file and would list
 * the old, now unlisted, branch state again; after ours nothing of it is
 * left.  The lineage fields (parent id, parent hash, depth) stay, as in a
 * derived store, which nothing re-checks. */
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "store.h"

#define BATCH 4096

/* Removes from the new manifest's deletion list the ids that are about to
 * become own rows (a foreign writer may leave an inherited id there). */
static void undelete(commit *c, const uint64_t *ids, size_t n)
{
	uint32_t w = 0;
	for (uint32_t i = 0; i < c->next.deleted_len; i++) {
		uint64_t id = c->next.deleted[i];
		bool keep = true;
		for (size_t k = 0; k < n && keep; k++)
			keep = ids[k] != id;
		if (keep)
			c->next.deleted[w++] = id;
	}
	c->next.deleted_len = w;
}

/* Adds the inherited visible rows of v to t, BATCH at a time. */
static rvf_code copy_inherited(rvf_ingest *t, const rvf_view *v,
			       uint64_t *copied, rvf_error *err)
{
	uint32_t dim = v->info.dimension;
	uint64_t *ids = malloc(BATCH * sizeof(uint64_t));
	float *vecs = malloc((size_t)BATCH * dim * sizeof(float));
	size_t *mstart = malloc((BATCH + 1) * sizeof(size_t));
	size_t mcap = 4 * BATCH;
	rvf_meta_field *meta = malloc(mcap * sizeof(rvf_meta_field));
	rvf_code rc = RVF_OK;
	if (!ids || !vecs || !mstart || !meta) {
		rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
		goto out;
	}
	*copied = 0;
	size_t n = 0;
	mstart[0] = 0;
	for (size_t i = 0; i <= v->nvisible && rc == RVF_OK; i++) {
		if (i < v->nvisible && !view_own_row(v, v->visible[i].id)) {
			const search_row *r = &v->visible[i];
			ids[n] = r->id;
			memcpy(vecs + n * dim, r->data, 4 * (size_t)dim);
			const rvf_meta_field *f = NULL;
			size_t nf = rvf_view_metadata(v, r->id, &f);
			if (mstart[n] + nf > mcap) {
				size_t nc = (mstart[n] + nf) * 2;
				rvf_meta_field *g = realloc(meta, nc * sizeof(*g));
				if (!g) {
					rc = rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
					break;
				}
				meta = g;
				mcap = nc;
			}
			if (nf)
				memcpy(meta + mstart[n], f, nf * sizeof(*f));
			mstart[n + 1] = mstart[n] + nf;
			n++;
		}
		if (n && (n == BATCH || i == v->nvisible)) {
			rc = rvf_ingest_add(t, n, ids, vecs, meta, mstart, err);
			if (rc == RVF_OK)
				undelete(ingest_commit(t), ids, n);
			*copied += n;
			n = 0;
		}
	}
out:
	free(ids);
	free(vecs);
	free(mstart);
	free(meta);
	return rc;
}

static size_t count_inherited(const rvf_view *v)
{
	size_t n = 0;
	for (size_t i = 0; i < v->nvisible; i++)
		n += !view_own_row(v, v->visible[i].id);
	return n;
}

static void drop_branch_state(commit *c)
{
	c->detach = true;
	c->durable = true;
	commit_drop_type(c, RVF_SEG_COW_MAP);
	commit_drop_type(c, RVF_SEG_MEMBERSHIP);
}

/* Nothing inherited: one commit that only drops the branch state. */
static rvf_code detach_empty(commit *c, rvf_error *err)
{
	drop_branch_state(c);
	c->next.epoch = c->base->info.epoch + 1;
	return commit_finish(c, NULL, err);
}

static rvf_code detach_rows(rvf_store *s, uint64_t *copied, rvf_error *err)
{
	rvf_ingest *t;
	rvf_code rc = rvf_ingest_begin(s, &t, err);
	if (rc != RVF_OK)
		return rc;
	commit *c = ingest_commit(t);
	if (!c->base->is_branch) { /* detached meanwhile */
		rvf_ingest_abort(t);
		return RVF_OK;
	}
	rc = copy_inherited(t, c->base, copied, err);
	if (rc != RVF_OK) {
		rvf_ingest_abort(t);
		return rc;
	}
	drop_branch_state(c);
	return rvf_ingest_commit(t, NULL, err);
}

rvf_code rvf_store_detach(rvf_store *s, rvf_commit_info *info, rvf_error *err)
{
	if (info)
		memset(info, 0, sizeof(*info));
	commit c;
	rvf_code rc = commit_begin(s, &c, err);
	if (rc != RVF_OK)
		return rc;
	if (!c.base->is_branch) {
		commit_abort(&c);
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"%s is not a branch child: nothing to detach",
				rvf_store_path(s));
	}
	uint64_t copied = 0;
	if (count_inherited(c.base) == 0) {
		rc = detach_empty(&c, err);
	} else {
		commit_abort(&c);
		rc = detach_rows(s, &copied, err);
	}
	if (rc != RVF_OK)
		return rc;
	rc = rvf_store_compact(s, info, err);
	if (info)
		info->accepted = copied;
	return rc;
}
