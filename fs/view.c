/* view.c - the daemon's current view of the store, and cache
 * invalidation after commits. */
#include <stdio.h>
#include <string.h>
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

/* Forgets the names of `old` that `cur` no longer has (or gives another
 * inode): every segment name when the file was rewritten, and the ids
 * that are gone.  Both id lists ascend, so one merge walk finds them. */
static void inval_names(rvffs *fs, rvf_view *old, rvf_view *cur)
{
	const rvf_info *a = rvf_view_info(old), *b = rvf_view_info(cur);
	if (a->generation != b->generation) {
		for (size_t i = 0; i < rvf_view_segment_count(old); i++) {
			char name[SEG_NAME_MAX];
			seg_name(old, i, name);
			fuse_lowlevel_notify_inval_entry(fs->se, INO_SEGMENTS, name,
							 strlen(name));
		}
	}
	bool maybe_gone = a->generation != b->generation ||
			  a->deleted != b->deleted || b->visible < a->visible ||
			  a->is_branch || b->is_branch;
	if (!maybe_gone)
		return;
	size_t j = 0, nb = (size_t)b->visible;
	for (size_t i = 0; i < (size_t)a->visible; i++) {
		uint64_t id = rvf_view_id_at(old, i);
		while (j < nb && rvf_view_id_at(cur, j) < id)
			j++;
		if (j < nb && rvf_view_id_at(cur, j) == id)
			continue;
		char name[24];
		int n = snprintf(name, sizeof(name), "%llu", (unsigned long long)id);
		fuse_lowlevel_notify_inval_entry(fs->se, INO_VECTORS, name, (size_t)n);
	}
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

/* A vector whose content changed under the same name: the kernel keeps
 * vector attributes and pages long (fs_attr_timeout, keep_cache), so drop
 * both. */
static void inval_vector(void *arg, uint64_t id)
{
	rvffs *fs = arg;
	uint64_t ino = vec_ino(fs, id);
	if (ino)
		fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
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
		uint64_t pass = fs->inval_asked;
		rvf_view *old = fs->inval_shown;
		pthread_mutex_unlock(&fs->mu);
		rvf_view *cur = rvf_store_view(fs->store);
		if (old) {
			inval_names(fs, old, cur);
			rvf_view_changed_ids(old, cur, inval_vector, fs);
		}
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
		fs->inval_shown = cur;
		fs->inval_sent = pass;
		pthread_cond_broadcast(&fs->inval_cond);
		if (old) {
			pthread_mutex_unlock(&fs->mu);
			rvf_view_release(old);
			pthread_mutex_lock(&fs->mu);
		}
	}
	pthread_mutex_unlock(&fs->mu);
	return NULL;
}

int fs_invalidator_start(rvffs *fs)
{
	pthread_cond_init(&fs->inval_cond, NULL);
	fs->inval_shown = rvf_store_view(fs->store);
	fs->seg_gen = rvf_view_info(fs->inval_shown)->generation;
	return pthread_create(&fs->inval_thread, NULL, invalidator, fs);
}

void fs_invalidator_stop(rvffs *fs)
{
	pthread_mutex_lock(&fs->mu);
	fs->inval_stop = true;
	pthread_cond_broadcast(&fs->inval_cond);
	pthread_mutex_unlock(&fs->mu);
	pthread_join(fs->inval_thread, NULL);
	if (fs->inval_shown)
		rvf_view_release(fs->inval_shown);
	fs->inval_shown = NULL;
}

/* Longest wait for the kernel to forget changed names before the request
 * that changed them returns.  Bounded: with -s (one thread) a lookup the
 * kernel holds a directory lock for cannot be answered meanwhile. */
#define INVAL_WAIT_NS 1000000000ll

void fs_invalidate(rvffs *fs, bool wait)
{
	fs_children_written(fs);
	rvf_view *v = rvf_store_view(fs->store);
	uint64_t gen = rvf_view_info(v)->generation;
	rvf_view_release(v);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += INVAL_WAIT_NS / 1000000000ll;
	pthread_mutex_lock(&fs->mu);
	fs->seg_gen = gen; /* new segment inodes from now on */
	uint64_t pass = ++fs->inval_asked;
	fs->inval_pending = true;
	pthread_cond_broadcast(&fs->inval_cond);
	/* So that the next `ls segments/` or open by name is right. */
	while (wait && fs->inval_sent < pass && !fs->inval_stop &&
	       pthread_cond_timedwait(&fs->inval_cond, &fs->mu, &until) == 0)
		;
	pthread_mutex_unlock(&fs->mu);
}
