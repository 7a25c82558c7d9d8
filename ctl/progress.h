/* progress.h - a progress bar on stderr for long operations.
 *
 * Drawn only when stderr is a terminal (never into logs or pipes), and
 * only once an operation has run for a moment, so quick commands print
 * nothing.  With a total it is a bar; without one (compact, a commit the
 * daemon runs) a spinner with the elapsed time, redrawn by a thread. */
#ifndef RVFCTL_PROGRESS_H
#define RVFCTL_PROGRESS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

typedef struct progress {
	bool on;                 /* stderr is a terminal */
	bool bytes;              /* done/total count bytes (else items) */
	const char *label;
	uint64_t total;          /* 0: unknown */
	uint64_t done;
	struct timespec start, last;
	long long delay_ns;      /* quiet until then */
	bool drawn;
	pthread_t ticker;        /* redraws a spinner when total is 0 */
	bool ticking;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;
} progress;

void progress_begin(progress *p, const char *label, uint64_t total, bool bytes);
void progress_update(progress *p, uint64_t done);
/* Clears the line. */
void progress_end(progress *p);

#endif
