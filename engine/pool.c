/* pool.c - the worker threads behind pool_run.
 *
 * One mutex guards a list of jobs with tasks not yet taken.  A worker takes
 * the next task of the oldest job; the caller takes tasks of its own job,
 * then waits until the workers finish the ones they took.  Workers start
 * on first use (after rvffs has forked into the background) and live as
 * long as the process.
 */
#include "pool.h"

#include <pthread.h>
#include <unistd.h>

enum { MAX_WORKERS = 255 };

typedef struct job {
	pool_fn fn;
	void *ctx;
	size_t ntasks, next, done;
	struct job *link;       /* next job with tasks left */
} job;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static job *queue_head, *queue_tail;
static size_t nworkers;
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Takes one task of the first job in the queue (under mu). */
static job *take_task(size_t *task)
{
	job *j = queue_head;

	if (!j)
		return NULL;
	*task = j->next++;
	if (j->next == j->ntasks) { /* last task handed out: leave the queue */
		queue_head = j->link;
		if (!queue_head)
			queue_tail = NULL;
	}
	return j;
}

static void finish_task(job *j)
{
	pthread_mutex_lock(&mu);
	if (++j->done == j->ntasks)
		pthread_cond_broadcast(&done_cv);
	pthread_mutex_unlock(&mu);
}

static void *worker_main(void *arg)
{
	(void)arg;
	for (;;) {
		size_t task;
		job *j;

		pthread_mutex_lock(&mu);
		while (!(j = take_task(&task)))
			pthread_cond_wait(&work_cv, &mu);
		pthread_mutex_unlock(&mu);
		j->fn(j->ctx, task);
		finish_task(j);
	}
	return NULL;
}

static void start_workers(void)
{
	long c = sysconf(_SC_NPROCESSORS_ONLN);
	size_t want = c > 1 ? (size_t)c - 1 : 0;
	pthread_attr_t attr;

	if (want > MAX_WORKERS)
		want = MAX_WORKERS;
	if (pthread_attr_init(&attr) != 0)
		return;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (size_t i = 0; i < want; i++) {
		pthread_t t;

		if (pthread_create(&t, &attr, worker_main, NULL) != 0)
			break;
		nworkers++;
	}
	pthread_attr_destroy(&attr);
}

size_t pool_width(void)
{
	pthread_once(&once, start_workers);
	return nworkers + 1;
}

void pool_run(pool_fn fn, void *ctx, size_t ntasks)
{
	job j = { .fn = fn, .ctx = ctx, .ntasks = ntasks };

	if (ntasks == 0)
		return;
	if (ntasks == 1 || pool_width() == 1) {
		for (size_t t = 0; t < ntasks; t++)
			fn(ctx, t);
		return;
	}
	pthread_mutex_lock(&mu);
	if (queue_tail)
		queue_tail->link = &j;
	else
		queue_head = &j;
	queue_tail = &j;
	pthread_cond_broadcast(&work_cv);
	/* the caller works on its own job too */
	while (j.next < j.ntasks) {
		size_t task = j.next++;

		if (j.next == j.ntasks) { /* unlink: it may not be the head */
			job **pp = &queue_head, *prev = NULL;

			while (*pp != &j) {
				prev = *pp;
				pp = &(*pp)->link;
			}
			*pp = j.link;
			if (queue_tail == &j)
				queue_tail = prev;
		}
		pthread_mutex_unlock(&mu);
		fn(ctx, task);
		pthread_mutex_lock(&mu);
		j.done++;
	}
	while (j.done < j.ntasks)
		pthread_cond_wait(&done_cv, &mu);
	pthread_mutex_unlock(&mu);
}
