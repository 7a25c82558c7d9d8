/* query.c - the query file's requests, run by librvf's query language
 * (engine/request.c, rvf_request_run); this adds the daemon's defaults and
 * its error reporting. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rvffs.h"

/* The daemon's results_max (limits.c) for a batch of `hits` results. */
static int budget(void *ctx, uint64_t hits, char **msg)
{
	return limits_results(ctx, hits, msg);
}

int query_run(rvffs *fs, rvf_view *v, const char *req, size_t len,
	      char **out, size_t *out_len)
{
	rvf_request_options opt = {
		.default_k = fs->default_k,
		.search = { .threads = fs->search_threads, .accel = fs->codes,
			    .accel_max_bytes = fs->codes_max_bytes },
		.budget = budget,
		.budget_ctx = fs,
	};
	rvf_error err;
	rvf_code rc = rvf_request_run(v, req, len, &opt, out, out_len, &err);
	if (rc == RVF_OK)
		return 0;
	if (rc == RVF_E_INVALID_ARGUMENT)
		return -EINVAL;
	if (rc == RVF_E_TOO_LARGE)
		return -E2BIG;
	if (rc == RVF_E_NO_MEMORY)
		return -ENOMEM;
	fs_rvf_errno(fs, "query", &err); /* logs the search failure */
	return -EIO;
}
