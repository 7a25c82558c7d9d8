/* view_text.c - how long the text of each vector file is, on all CPUs.
 *
 * A vector file shows its numbers as rvf_format_float prints them, one
 * blank between two, and a newline.  `ls -l vectors/` needs the length of
 * every such text, which is most of the cost of a first listing (about 50
 * ns a number: 0.6 s of CPU for 100k vectors of 128), so a listing asks
 * for a whole batch at once and the batch is split over the pool.
 */
#include <stdlib.h>

#include "pool.h"
#include "store.h"

enum { TASK_VECTORS = 256 }; /* about 1.5 ms of work for 128 numbers */

typedef struct lengths_job {
	const rvf_view *v;
	size_t first, n;
	uint32_t *out;
} lengths_job;

static uint32_t text_length(const rvf_view *v, size_t index, float *x)
{
	uint32_t dim = rvf_view_info(v)->dimension;
	rvf_view_vector_at(v, index, x);
	size_t len = dim ? dim : 1; /* the blanks between numbers and the newline */
	for (uint32_t d = 0; d < dim; d++)
		len += rvf_float_text_length(x[d]);
	return len <= UINT32_MAX ? (uint32_t)len : 0;
}

static void lengths_task(void *ctx, size_t task)
{
	lengths_job *j = ctx;
	size_t a = task * TASK_VECTORS, b = a + TASK_VECTORS < j->n ? a + TASK_VECTORS : j->n;
	float *x = malloc(4 * (size_t)(rvf_view_info(j->v)->dimension + 1));
	if (!x)
		return; /* left 0: the caller sizes those one by one */
	for (size_t i = a; i < b; i++)
		if (!j->out[i])
			j->out[i] = text_length(j->v, j->first + i, x);
	free(x);
}

void rvf_view_text_lengths(const rvf_view *v, size_t first, size_t n, uint32_t *out)
{
	size_t visible = rvf_view_info(v)->visible;
	if (first >= visible)
		return;
	if (n > visible - first)
		n = visible - first;
	size_t todo = 0;
	for (size_t i = 0; i < n; i++)
		todo += !out[i];
	if (!todo)
		return;
	lengths_job j = { .v = v, .first = first, .n = n, .out = out };
	pool_run(lengths_task, &j, (n + TASK_VECTORS - 1) / TASK_VECTORS);
}
