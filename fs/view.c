/* view.c - the daemon's current view of the store, and cache
 * invalidation after commits. */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "rvffs.h"

/* A read-only mount follows a writer's commits, checking at most this
 * often (a stat of the store). */
#define REFRESH_NS 1000000000ll

rvf_view *fs_view(rvffs *fs)
{
	if (rvf_store_read_only(fs->store) && fs->read_only) {
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		pthread_mutex_lock(&fs->mu);
		long long age = (now.tv_sec - fs->last_refresh.tv_sec) * 1000000000ll +
				(now.tv_nsec - fs->last_refresh.tv_nsec);
		bool due = age > REFRESH_NS;
		if (due)
			fs->last_refresh = now;
		pthread_mutex_unlock(&fs->mu);
		if (due) {
			rvf_view *before = rvf_store_view(fs->store);
			rvf_error err;
			if (rvf_store_refresh(fs->store, &err) != RVF_OK)
				fs_error(fs, "refresh: %s", err.message);
			rvf_view *after = rvf_store_view(fs->store);
			if (after != before)
				fs_invalidate(fs, rvf_view_info(after)->file_size <
							  rvf_view_info(before)->file_size);
			rvf_view_release(before);
			rvf_view_release(after);
		}
	}
	return rvf_store_view(fs->store);
}

int fs_store_check(rvffs *fs)
{
	static atomic_bool told;
	uint64_t now = 0, want = 0;
	bool faulted = rvf_guard_faults() > 0;
	if (!faulted && !rvf_store_shrunk(fs->store, &now, &want))
		return 0;
	bool was = false;
	if (atomic_compare_exchange_strong(&told, &was, true)) {
		if (faulted)
			fs_error(fs, "%s: the store file shrank under the mount (a read past its end was caught): answering EIO until unmounted; check the file",
				 fs->store_path);
		else
			fs_error(fs, "%s: the store file shrank under the mount (%llu bytes, %llu expected): answering EIO until unmounted; check the file",
				 fs->store_path, (unsigned long long)now,
				 (unsigned long long)want);
	}
	return -EIO;
}

/* Notifications go out from their own thread: sent from inside a
 * request handler they can deadlock on the kernel's directory locks. */
static void *invalidator(void *arg)
{
	rvffs *fs = arg;
	static const fuse_ino_t inodes[] = { INO_ROOT, INO_SEGMENTS, INO_VECTORS,
					     INO_STATUS, INO_MANIFEST, INO_LINEAGE,
					     INO_WITNESS, INO_KERNEL, INO_EBPF };
	pthread_mutex_lock(&fs->mu);
	for (;;) {
		while (!fs->inval_pending && !fs->inval_stop)
			pthread_cond_wait(&fs->inval_cond, &fs->mu);
		if (fs->inval_stop)
			break;
		fs->inval_pending = false;
		pthread_mutex_unlock(&fs->mu);
		for (size_t i = 0; i < sizeof(inodes) / sizeof(inodes[0]); i++)
			fuse_lowlevel_notify_inval_inode(fs->se, inodes[i], 0, 0);
		fuse_lowlevel_notify_inval_entry(fs->se, INO_ROOT, "kernel", 6);
		fuse_lowlevel_notify_inval_entry(fs->se, INO_ROOT, "ebpf", 4);
		/* A segment not durable yet may have grown (librvf grows the
		 * newest one in place between syncs): drop its cached size
		 * and pages.  Durable segments never change. */
		rvf_view *v = rvf_store_view(fs->store);
		for (size_t i = 0; i < rvf_view_segment_count(v); i++) {
			const rvf_segment *sg = rvf_view_segment(v, i);
			if (sg->pending)
				fuse_lowlevel_notify_inval_inode(fs->se,
								 seg_ino(fs, sg->offset), 0, 0);
		}
		rvf_view_release(v);
		pthread_mutex_lock(&fs->mu);
	}
	pthread_mutex_unlock(&fs->mu);
	return NULL;
}

int fs_invalidator_start(rvffs *fs)
{
	pthread_cond_init(&fs->inval_cond, NULL);
	return pthread_create(&fs->inval_thread, NULL, invalidator, fs);
}

void fs_invalidator_stop(rvffs *fs)
{
	pthread_mutex_lock(&fs->mu);
	fs->inval_stop = true;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->mu);
	pthread_join(fs->inval_thread, NULL);
}

void fs_invalidate(rvffs *fs, bool compacted)
{
	pthread_mutex_lock(&fs->mu);
	if (compacted)
		fs->seg_gen++;
	fs->inval_pending = true;
	pthread_cond_signal(&fs->inval_cond);
	pthread_mutex_unlock(&fs->mu);
}
