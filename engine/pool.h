/* pool.h - one process-wide set of worker threads for search.
 *
 * Starting threads per query costs tens of microseconds, a noticeable part
 * of a millisecond query; these workers start once and wait for work.
 */
#ifndef RVF_POOL_H
#define RVF_POOL_H

#include <stddef.h>

typedef void (*pool_fn)(void *ctx, size_t task);

/* Runs fn(ctx, t) for every t < ntasks, on the workers and on the calling
 * thread, and returns when all are done.  Safe to call from many threads
 * at once; a task must not call pool_run itself.  With no workers (one
 * CPU, or threads could not start) the tasks run here, in order. */
void pool_run(pool_fn fn, void *ctx, size_t ntasks);

/* How many threads can run tasks at once: the workers plus the caller. */
size_t pool_width(void);

#endif
