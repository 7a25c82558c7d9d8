/* commit.c - when changes become durable, and automatic compaction.
 *
 * Like a filesystem's journal: a change made through the tree is visible
 * at once (librvf's deferred mode publishes it in a new view) and becomes
 * durable together with the others at fsync/fdatasync of any file or
 * directory of the mount, at unmount, and at the latest `commit` seconds
 * after it was made (the committer thread).  With -o sync every change is
 * durable before its call returns.  After a durable commit the committer
 * compacts the store when the dead bytes pass the policy; readers keep
 * their views meanwhile (only writers wait). */
#include <errno.h>
#include <time.h>

#include "rvffs.h"

int fs_sync(rvffs *fs)
{
	if (fs->read_only || rvf_store_read_only(fs->store))
		return 0;
	rvf_error err;
	rvf_commit_info info;
	if (rvf_store_sync(fs->store, &info, &err) != RVF_OK)
		return -fs_rvf_errno(fs, "commit", &err);
	return 0;
}

/* fsync of a directory (`sync DIR`, a program's fsync of a directory
 * after renames): the same durable commit as fsync of a file. */
void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		 struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -fs_sync(fs_of(req)));
}

/* Compacts when the policy says so; true when it did. */
static bool maybe_compact(rvffs *fs)
{
	if (fs->read_only || rvf_store_read_only(fs->store) ||
	    rvf_store_streaming(fs->store))
		return false; /* a file being streamed: at a later round */
	rvf_view *v = rvf_store_view(fs->store);
	bool due = rvf_view_wants_compaction(v, &fs->compact);
	uint64_t dead = rvf_view_info(v)->dead_bytes;
	uint64_t size = rvf_view_info(v)->file_size;
	rvf_view_release(v);
	if (!due)
		return false;
	/* Branch children read a prefix of this file: a rewrite loses it.
	 * Said once (until they are gone), not at every round. */
	if (fs_children_count(fs)) {
		if (!fs->children_held)
			fs_children_block(fs, "automatic compaction held off");
		fs->children_held = true;
		return false;
	}
	fs->children_held = false;
	rvf_error err;
	if (rvf_store_compact(fs->store, NULL, &err) != RVF_OK) {
		fs_rvf_errno(fs, "automatic compaction", &err);
		return false;
	}
	fs_log(fs, LOG_INFO, "compacted %s: %llu of %llu bytes were dead",
	       fs->store_path, (unsigned long long)dead,
	       (unsigned long long)size);
	fs_invalidate(fs, true);
	return true;
}

static void *committer(void *arg)
{
	rvffs *fs = arg;
	pthread_mutex_lock(&fs->commit_mu);
	while (!fs->commit_stop) {
		struct timespec until;
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += fs->commit_s;
		while (!fs->commit_stop &&
		       pthread_cond_timedwait(&fs->commit_cond, &fs->commit_mu,
					      &until) != ETIMEDOUT)
			;
		if (fs->commit_stop)
			break;
		pthread_mutex_unlock(&fs->commit_mu);
		/* A failed commit is logged; its changes stay pending and the
		 * next round tries again. */
		if (fs_sync(fs) == 0)
			maybe_compact(fs);
		pthread_mutex_lock(&fs->commit_mu);
	}
	pthread_mutex_unlock(&fs->commit_mu);
	return NULL;
}

int fs_committer_start(rvffs *fs)
{
	pthread_mutex_init(&fs->commit_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->commit_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (fs->read_only || rvf_store_read_only(fs->store))
		return 0;
	rvf_error err;
	if (rvf_store_set_deferred(fs->store, !fs->sync_mode, &err) != RVF_OK)
		return -fs_rvf_errno(fs, "deferred commits", &err);
	if (pthread_create(&fs->commit_thread, NULL, committer, fs) != 0)
		return -EAGAIN;
	fs->commit_running = true;
	return 0;
}

void fs_committer_stop(rvffs *fs)
{
	if (fs->commit_running) {
		pthread_mutex_lock(&fs->commit_mu);
		fs->commit_stop = true;
		pthread_cond_signal(&fs->commit_cond);
		pthread_mutex_unlock(&fs->commit_mu);
		pthread_join(fs->commit_thread, NULL);
		fs->commit_running = false;
	}
	/* Unmount: everything becomes durable, then the store is compacted
	 * if it is due, so the file left behind is lean. */
	if (fs->store && fs_sync(fs) == 0)
		maybe_compact(fs);
}
