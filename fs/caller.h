/* caller.h - who asked (uid, gid, supplementary groups), and acting on
 * files with that identity's rights in the current thread only. */
#ifndef RVFFS_CALLER_H
#define RVFFS_CALLER_H

#include <stdbool.h>
#include <sys/types.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

typedef struct caller {
	uid_t uid;
	gid_t gid;
	int ngroups;            /* supplementary groups; 0 when unknown */
	gid_t *groups;
} caller;

/* The identity of the process that made req (a malloc'd caller), or NULL
 * when out of memory.  Groups that cannot be read are left out, which
 * only ever takes rights away. */
caller *caller_of(fuse_req_t req);
void caller_free(caller *c);

typedef struct caller_saved {
	bool switched;
	uid_t fsuid;
	gid_t fsgid;
	int ngroups;
	gid_t *groups;
} caller_saved;

/* Makes this thread's file accesses (open, create, link, rename ...) be
 * checked against c: setfsuid/setfsgid and the supplementary groups, all
 * per thread (raw system calls: glibc would change every thread).  Only a
 * daemon running as root switches, and only for a non-root caller; a
 * daemon that runs as the mounting user already has no more rights than
 * the callers it accepts.  Returns 0 or -errno (nothing changed then). */
int caller_enter(const caller *c, caller_saved *saved);
/* Back to the daemon's own identity. */
void caller_leave(caller_saved *saved);

#endif
