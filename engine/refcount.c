/* refcount.c - REFCOUNT segments (0x21) from the COW map chain, as
 * upstream's `rvf rebuild-refcounts` writes them (its header layout,
 * rvf-types refcount.rs), but counted: upstream writes 1 for every
 * cluster and appends the segment outside the manifest, where no reader
 * sees it; we count the sharing along the chain and commit it. */
#include <stdlib.h>
#include <string.h>

#include "bytes.h"
#include "error.h"
#include "store.h"

#define REFCOUNT_MAGIC 0x52565243u /* "RVRC" */
#define REFCOUNT_HEADER 32
#define TAG_UNALLOCATED 0
#define TAG_PARENT 1
#define TAG_LOCAL 2

/* Tag of cluster i in a COW map (format u8, count u32, then tag u8 +
 * value u64 per cluster); -1 when the map does not hold it. */
static int cluster_tag(const cow_state *c, uint32_t i)
{
	if (c->map_len < 5 || c->map_bytes[0] != 0)
		return -1;
	uint32_t n = ld32(c->map_bytes + 1);
	if (i >= n || 5 + (uint64_t)(i + 1) * 9 > c->map_len)
		return -1;
	return c->map_bytes[5 + (size_t)i * 9];
}

static uint32_t cluster_count(const cow_state *c)
{
	if (c->map_len < 5 || c->map_bytes[0] != 0)
		return 0;
	uint32_t n = ld32(c->map_bytes + 1);
	uint64_t fit = (c->map_len - 5) / 9;
	return n <= fit ? n : (uint32_t)fit;
}

rvf_code rvf_store_rebuild_refcounts(rvf_store *s, rvf_refcount_info *out,
				     rvf_commit_info *info, rvf_error *err)
{
	memset(out, 0, sizeof(*out));
	commit c;
	rvf_code rc = commit_begin(s, &c, err);
	if (rc != RVF_OK)
		return rc;
	const rvf_view *v = c.base;
	if (!v->is_branch) {
		commit_abort(&c);
		return rvf_fail(err, RVF_E_NOT_FOUND,
				"%s has no COW map (not a branch child): no clusters to count",
				s->path);
	}
	uint32_t n = cluster_count(&v->cow);
	unsigned char *p = calloc(1, REFCOUNT_HEADER + (size_t)n);
	if (!p) {
		commit_abort(&c);
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	}
	uint32_t depth = 1;
	for (const rvf_view *a = v->parent; a; a = a->is_branch ? a->parent : NULL)
		depth++;
	for (uint32_t i = 0; i < n; i++) {
		unsigned refs = 0;
		/* Follow parent-ref links up the chain to the holder. */
		for (const rvf_view *a = v; a; a = a->parent) {
			int tag = a->is_branch ? cluster_tag(&a->cow, i) : TAG_LOCAL;
			if (tag == TAG_UNALLOCATED || tag < 0)
				break;
			refs++;
			if (tag != TAG_PARENT)
				break;
		}
		if (cluster_tag(&v->cow, i) == TAG_LOCAL)
			out->local_clusters++;
		if (refs > 255)
			refs = 255;
		p[REFCOUNT_HEADER + i] = (unsigned char)refs;
		if (refs > out->max_refcount)
			out->max_refcount = refs;
	}
	st32(p, REFCOUNT_MAGIC);
	st16(p + 4, 1);
	p[6] = 1; /* one byte per count */
	st32(p + 8, n);
	st32(p + 0x0C, out->max_refcount);
	st64(p + 0x10, REFCOUNT_HEADER);
	st32(p + 0x18, v->cow.snapshot_epoch);
	out->cluster_count = n;
	out->chain_depth = depth;
	commit_drop_type(&c, RVF_SEG_REFCOUNT);
	rc = commit_append(&c, RVF_SEG_REFCOUNT, p, REFCOUNT_HEADER + (size_t)n, err);
	free(p);
	if (rc != RVF_OK) {
		commit_abort(&c);
		return rc;
	}
	c.next.epoch = v->info.epoch + 1;
	return commit_finish(&c, info, err);
}
