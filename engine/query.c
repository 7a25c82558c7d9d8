/* query.c - rvf_view_search: exact k-NN over a view's visible rows. */
#include "accel.h"
#include "error.h"
#include "filter.h"
#include "store.h"

typedef struct filter_ctx {
	const rvf_filter *filter;
	const rvf_view *view;
} filter_ctx;

static bool accept_row(void *ctx, const search_row *row)
{
	const filter_ctx *f = ctx;
	return filter_match(f->filter, view_meta_of(f->view, row->id), row->id);
}

rvf_code rvf_view_search(const rvf_view *v, const float *queries, size_t nq,
			 size_t k, const rvf_search_options *opt, rvf_hit *out,
			 size_t *counts, rvf_error *err)
{
	/* Inherited rows carry the parent's metadata, own rows the child's
	 * (view_meta_of); a "fieldId" then names the parent's field id. */
	filter_ctx fc = { .filter = opt ? opt->filter : NULL, .view = v };
	search_request req = {
		.metric = v->info.metric,
		.dim = v->info.dimension,
		.queries = queries,
		.nq = nq,
		.k = k,
		.rows = view_rows((rvf_view *)v),
		.nrows = v->nvisible,
		.accept = fc.filter ? accept_row : NULL,
		.accept_ctx = &fc,
		.threads = opt ? opt->threads : 0,
	};
	if (v->info.dimension == 0)
		return rvf_fail(err, RVF_E_INVALID_ARGUMENT,
				"the store has dimension 0: it holds no vectors to query");
	if (!req.rows)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory indexing rows");
	rvf_view *mv = (rvf_view *)v; /* the codes are a cache behind a lock */
	bool start_build = false;
	accel_index *a = NULL;
	rvf_code rc;

	if (!req.accept)
		a = view_accel(mv, opt, &start_build);
	if (a && accel_applies(a, &req))
		rc = accel_search(a, &req, out, counts, err);
	else
		rc = search_exact(&req, out, counts, err);
	accel_release(a);
	if (start_build) /* after this search, so it does not slow it */
		view_accel_start(mv);
	return rc;
}
