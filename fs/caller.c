/* caller.c - a request's identity, and borrowing it for file access
 * (caller.h).  The kernel checks every open, create and rename the daemon
 * makes on a caller's behalf with the thread's fsuid, fsgid and group
 * list, so a path a caller names can reach only what the caller could
 * reach himself. */
#include "caller.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

caller *caller_of(fuse_req_t req)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	caller *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->uid = ctx->uid;
	c->gid = ctx->gid;
	gid_t small[32];
	int n = fuse_req_getgroups(req, 32, small);
	if (n > 0) {
		c->groups = malloc((size_t)n * sizeof(gid_t));
		if (c->groups && n > 32 && fuse_req_getgroups(req, n, c->groups) != n)
			n = 0; /* changed meanwhile: keep none */
		else if (c->groups && n <= 32)
			for (int i = 0; i < n; i++)
				c->groups[i] = small[i];
		c->ngroups = c->groups ? n : 0;
	}
	return c;
}

void caller_free(caller *c)
{
	if (c) {
		free(c->groups);
		free(c);
	}
}

/* The thread's own group list (malloc'd), or -1. */
static int thread_groups(gid_t **out)
{
	long n = syscall(SYS_getgroups, 0, NULL);
	if (n < 0)
		return -1;
	*out = malloc(((size_t)n + 1) * sizeof(gid_t));
	if (!*out)
		return -1;
	n = syscall(SYS_getgroups, n, *out);
	if (n < 0) {
		free(*out);
		return -1;
	}
	return (int)n;
}

/* setfsuid/setfsgid return the previous value and never fail visibly:
 * asking again (with -1, an invalid id) tells whether it took. */
static bool set_fsuid(uid_t uid)
{
	syscall(SYS_setfsuid, uid);
	return (uid_t)syscall(SYS_setfsuid, (uid_t)-1) == uid;
}

static bool set_fsgid(gid_t gid)
{
	syscall(SYS_setfsgid, gid);
	return (gid_t)syscall(SYS_setfsgid, (gid_t)-1) == gid;
}

int caller_enter(const caller *c, caller_saved *saved)
{
	saved->switched = false;
	saved->groups = NULL;
	if (geteuid() != 0 || !c || c->uid == 0)
		return 0;
	saved->fsuid = (uid_t)syscall(SYS_setfsuid, (uid_t)-1);
	saved->fsgid = (gid_t)syscall(SYS_setfsgid, (gid_t)-1);
	saved->ngroups = thread_groups(&saved->groups);
	if (saved->ngroups < 0)
		return -ENOMEM;
	/* Groups and gid first: they need CAP_SETGID, which a root fsuid
	 * keeps; then the uid. */
	if (syscall(SYS_setgroups, (size_t)c->ngroups, c->groups) != 0) {
		int e = errno;
		free(saved->groups);
		saved->groups = NULL;
		return -e;
	}
	saved->switched = true;
	if (!set_fsgid(c->gid) || !set_fsuid(c->uid)) {
		caller_leave(saved);
		return -EPERM;
	}
	return 0;
}

void caller_leave(caller_saved *saved)
{
	if (!saved->switched)
		return;
	/* The uid first: back to root, which may then restore the rest. */
	bool ok = set_fsuid(saved->fsuid) && set_fsgid(saved->fsgid) &&
		  syscall(SYS_setgroups, (size_t)saved->ngroups, saved->groups) == 0;
	free(saved->groups);
	saved->groups = NULL;
	saved->switched = false;
	if (!ok) {
		/* A worker thread left with someone else's identity would
		 * serve the next request with it: better to stop. */
		fprintf(stderr, "rvffs: cannot restore the daemon's identity after a control command\n");
		abort();
	}
}
