/* test_guard.c - rvf_guard_install: a store truncated under its mapping
 * costs a counted fault and a page of zeros, not the process.
 *
 * A store of 20,000 rows is opened, its file truncated to 100 bytes, and
 * every vector read through the view: without the guard the first read
 * past the end dies of SIGBUS (checked in a forked child), with it the
 * reads complete, rvf_guard_faults() counts them and rvf_store_shrunk()
 * says so.  A SIGBUS that is not on a store mapping still kills (the
 * previous handler runs: ASan's in a sanitizer build). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rvf.h"

#include "check.h"

#define ROWS 20000
#define DIM 4

static void read_all(rvf_view *v)
{
	float x[DIM];
	volatile float sum = 0;
	for (size_t i = 0; i < ROWS; i++) {
		rvf_view_vector_at(v, i, x);
		sum += x[0];
	}
	(void)sum;
}

/* Runs fn in a child; returns the signal that killed it, 0 when it
 * exited 0, -1 when it exited otherwise (a sanitizer's report). */
static int child_signal(void (*fn)(void *), void *arg)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		fn(arg);
		_exit(0);
	}
	int st;
	waitpid(pid, &st, 0);
	if (WIFSIGNALED(st))
		return WTERMSIG(st);
	return WEXITSTATUS(st) ? -1 : 0;
}

static void unguarded_read(void *v)
{
	signal(SIGBUS, SIG_DFL);
	read_all(v);
}

static void foreign_sigbus(void *arg)
{
	(void)arg;
	if (rvf_guard_install() != 0)
		_exit(3);
	/* A mapping of our own past the end of an empty file. */
	FILE *f = tmpfile();
	char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fileno(f), 0);
	volatile char c = p[10];
	(void)c;
}

int main(void)
{
	char path[] = "/tmp/test_guard.XXXXXX";
	int fd = mkstemp(path);
	close(fd);
	unlink(path);
	rvf_create_options o = { .dimension = DIM, .metric = RVF_METRIC_L2 };
	rvf_store *s;
	rvf_error err;
	CHECK(rvf_store_create(path, &o, &s, &err) == RVF_OK);
	float *vec = malloc(sizeof(float) * ROWS * DIM);
	for (size_t i = 0; i < ROWS * DIM; i++)
		vec[i] = (float)i;
	CHECK(rvf_store_ingest(s, ROWS, NULL, vec, NULL, NULL, NULL, &err) == RVF_OK);
	free(vec);
	rvf_view *v = rvf_store_view(s);
	CHECK(!rvf_store_shrunk(s, NULL, NULL));
	CHECK(truncate(path, 100) == 0);
	uint64_t now = 0, want = 0;
	CHECK(rvf_store_shrunk(s, &now, &want) && now == 100 && want > 100000);

	CHECK(child_signal(unguarded_read, v) == SIGBUS);
	CHECK(rvf_guard_faults() == 0);
	CHECK(rvf_guard_install() == 0);
	read_all(v);   /* would die without the guard */
	CHECK(rvf_guard_faults() > 0);
	/* Foreign: the previous handler's verdict (death by SIGBUS, or an
	 * ASan report and exit in a sanitizer build): never survived. */
	int sig = child_signal(foreign_sigbus, NULL);
	CHECK(sig == SIGBUS || sig == SIGABRT || sig == -1);

	rvf_view_release(v);
	rvf_store_close(s);
	unlink(path);
	printf("test_guard: %llu faults absorbed\n",
	       (unsigned long long)rvf_guard_faults());
	return check_summary("test_guard");
}
