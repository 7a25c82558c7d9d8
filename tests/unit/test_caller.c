/* test_caller.c - fs/caller.c: borrowing a caller's file rights.
 *
 * Run as root (skipped otherwise, exit 77): a thread that took uid/gid
 * 65534's rights cannot open a 0600 root file nor create in a 0700 root
 * directory, while another thread of the same process still can (the
 * switch is per thread); a supplementary group of the caller grants what
 * that group may; after caller_leave the thread is root again. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "caller.h"

#include "check.h"

static char dir[64], secret[96], grouped[96], created[96];
static pthread_barrier_t switched, checked;

/* errno of open(path, flags), 0 when it opens. */
static int open_err(const char *path, int flags)
{
	int fd = open(path, flags | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static void *as_nobody(void *arg)
{
	(void)arg;
	gid_t group = 4242;
	caller c = { .uid = 65534, .gid = 65534, .ngroups = 0, .groups = NULL };
	caller_saved saved;
	CHECK(caller_enter(&c, &saved) == 0);
	CHECK(open_err(secret, O_RDONLY) == EACCES);
	CHECK(open_err(created, O_WRONLY | O_CREAT | O_EXCL) == EACCES);
	CHECK(open_err(grouped, O_RDONLY) == EACCES);
	pthread_barrier_wait(&switched);   /* the main thread checks now */
	pthread_barrier_wait(&checked);
	caller_leave(&saved);
	CHECK(open_err(secret, O_RDONLY) == 0);

	/* With group 4242 among its groups: the 0640 root:4242 file opens. */
	c.groups = &group;
	c.ngroups = 1;
	CHECK(caller_enter(&c, &saved) == 0);
	CHECK(open_err(grouped, O_RDONLY) == 0);
	CHECK(open_err(secret, O_RDONLY) == EACCES);
	caller_leave(&saved);

	/* A root caller changes nothing. */
	caller root = { 0 };
	CHECK(caller_enter(&root, &saved) == 0);
	CHECK(!saved.switched);
	CHECK(open_err(secret, O_RDONLY) == 0);
	caller_leave(&saved);
	return NULL;
}

int main(void)
{
	if (geteuid() != 0) {
		printf("test_caller: needs root; skipped\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "/tmp/test_caller.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	chmod(dir, 0711); /* others may reach files by name, not create */
	snprintf(secret, sizeof(secret), "%s/secret", dir);
	snprintf(grouped, sizeof(grouped), "%s/grouped", dir);
	snprintf(created, sizeof(created), "%s/created", dir);
	int fd = open(secret, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	close(fd);
	fd = open(grouped, O_WRONLY | O_CREAT | O_EXCL, 0640);
	CHECK(fd >= 0 && fchown(fd, 0, 4242) == 0 && fchmod(fd, 0640) == 0);
	close(fd);

	pthread_barrier_init(&switched, NULL, 2);
	pthread_barrier_init(&checked, NULL, 2);
	pthread_t t;
	pthread_create(&t, NULL, as_nobody, NULL);
	pthread_barrier_wait(&switched);
	/* The other thread is 65534 now; this one is still root. */
	CHECK(open_err(secret, O_RDONLY) == 0);
	pthread_barrier_wait(&checked);
	pthread_join(t, NULL);

	unlink(secret);
	unlink(grouped);
	unlink(created);
	rmdir(dir);
	return check_summary("test_caller");
}
