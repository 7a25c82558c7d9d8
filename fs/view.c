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

/* Ids our own unlinks removed since the last pass. */
typedef struct id_set {
	uint64_t ids[64];
	size_t n;
} id_set;

static bool gone_by_us(const id_set *g, uint64_t id)
{
	for (size_t i = 0; i < g->n; i++)
		if (g->ids[i] == id)
			return true;
	return false;
}

void fs_unlinked_by_us(rvffs *fs, uint64_t id)
{
	pthread_mutex_lock(&fs->mu);
	/* When full, the pass tells the kernel about the rest: harmless. */
	if (fs->nself_gone < sizeof(fs->self_gone) / sizeof(fs->self_gone[0]))
		fs->self_gone[fs->nself_gone++] = id;
	pthread_mutex_unlock(&fs->mu);
}

static void inval_vector_name(rvffs *fs, uint64_t id)
{
	char name[24];
	int n = snprintf(name, sizeof(name), "%llu", (unsigned long long)id);
	fuse_lowlevel_notify_inval_entry(fs->se, INO_VECTORS, name, (size_t)n);
}

/* Every id `old` shows that `cur` does not: one merge walk of both
 * (ascending) id lists. */
static void inval_gone_walk(rvffs *fs, rvf_view *old, rvf_view *cur,
			    const id_set *gone)
{
	size_t j = 0, na = (size_t)rvf_view_info(old)->visible;
	size_t nb = (size_t)rvf_view_info(cur)->visible;
	for (size_t i = 0; i < na; i++) {
		uint64_t id = rvf_view_id_at(old, i);
		while (j < nb && rvf_view_id_at(cur, j) < id)
			j++;
		if ((j >= nb || rvf_view_id_at(cur, j) != id) && !gone_by_us(gone, id))
			inval_vector_name(fs, id);
	}
}

/* When cur only added ids to old's deletion list (both ascend, so the
 * lists agree up to each added id, found by binary search): forgets
 * those old showed, in O(added x log n) instead of a walk of every id
 * (a commit per `rm` would make `rm *` quadratic).  False, having sent
 * nothing, when cur's list is not old's plus some ids. */
static bool inval_gone_deleted(rvffs *fs, rvf_view *old, rvf_view *cur,
			       const id_set *gone)
{
	size_t na = rvf_view_deleted_count(old), nb = rvf_view_deleted_count(cur);
	if (nb < na)
		return false;
	size_t added[64], nadd = 0, j = 0;
	while (j < nb) {
		/* first x >= j where cur[x] != old[x - nadd] */
		size_t lo = j, hi = nb < na + nadd ? nb : na + nadd;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (rvf_view_deleted_at(cur, mid) == rvf_view_deleted_at(old, mid - nadd))
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo >= nb)
			break;
		if (lo - nadd < na &&
		    rvf_view_deleted_at(cur, lo) > rvf_view_deleted_at(old, lo - nadd))
			return false; /* an id of old's list is not in cur's */
		if (nadd == sizeof(added) / sizeof(added[0]))
			return false; /* many: the walk is as cheap */
		added[nadd++] = rvf_view_deleted_at(cur, lo);
		j = lo + 1;
	}
	if (nb - nadd != na)
		return false;
	for (size_t k = 0; k < nadd; k++)
		if (!gone_by_us(gone, added[k]) && rvf_view_find(old, added[k]) >= 0)
			inval_vector_name(fs, added[k]);
	return true;
}

/* Forgets the names of `old` that `cur` no longer has (or gives another
 * inode): every segment name when the file was rewritten, and the ids
 * that are gone. */
static void inval_names(rvffs *fs, rvf_view *old, rvf_view *cur,
			const id_set *gone)
{
	const rvf_info *a = rvf_view_info(old), *b = rvf_view_info(cur);
	for (size_t i = 0; i < rvf_view_segment_count(old); i++) {
		/* A gap (bytes a writer had not finished, seen by a read-only
		 * mount) may have become segments since. */
		if (a->generation == b->generation && !rvf_view_segment(old, i)->gap)
			continue;
		char name[SEG_NAME_MAX];
		seg_name(old, i, name);
		fuse_lowlevel_notify_inval_entry(fs->se, INO_SEGMENTS, name,
						 strlen(name));
	}
	bool maybe_gone = a->generation != b->generation ||
			  a->deleted != b->deleted || b->visible < a->visible ||
			  a->is_branch || b->is_branch;
	if (!maybe_gone)
		return;
	/* Within one file generation, outside branches, an id only leaves
	 * by entering the deletion list. */
	bool by_deletion = a->generation == b->generation && !a->is_branch &&
			   !b->is_branch && b->deleted >= a->deleted;
	if (!by_deletion || !inval_gone_deleted(fs, old, cur, gone))
		inval_gone_walk(fs, old, cur, gone);
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

/* Shortest time between two passes, unless a request waits for one. */
#define INVAL_GAP_NS 2000000l

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
	struct timespec last = { 0, 0 };
	pthread_mutex_lock(&fs->mu);
	for (;;) {
		fs->inval_idle = true;
		while (!fs->inval_pending && !fs->inval_stop)
			pthread_cond_wait(&fs->inval_cond, &fs->mu);
		fs->inval_idle = false;
		if (fs->inval_stop)
			break;
		/* A burst of commits (a bash loop) shares one pass: each pass
		 * is several writes to /dev/fuse, and every notice about a
		 * name takes the kernel's lock of its directory. */
		struct timespec until = last;
		until.tv_nsec += INVAL_GAP_NS;
		if (until.tv_nsec >= 1000000000l) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000l;
		}
		while (!fs->inval_urgent && !fs->inval_stop &&
		       pthread_cond_timedwait(&fs->inval_cond, &fs->mu, &until) == 0)
			;
		if (fs->inval_stop)
			break;
		fs->inval_pending = false;
		fs->inval_urgent = false;
		uint64_t pass = fs->inval_asked;
		rvf_view *old = fs->inval_shown;
		id_set gone = { .n = fs->nself_gone };
		memcpy(gone.ids, fs->self_gone, gone.n * sizeof(uint64_t));
		fs->nself_gone = 0;
		pthread_mutex_unlock(&fs->mu);
		rvf_view *cur = rvf_store_view(fs->store);
		if (old) {
			inval_names(fs, old, cur, &gone);
			rvf_view_changed_ids(old, cur, inval_vector, fs);
		}
		/* The kernel keeps only what has a timeout (generated files
		 * are direct_io with none): a notification for anything else
		 * is a write to /dev/fuse per commit for nothing. */
		for (size_t i = 0; i < sizeof(inodes) / sizeof(inodes[0]); i++)
			if (fs_attr_timeout(fs, inodes[i]) > 0)
				fuse_lowlevel_notify_inval_inode(fs->se, inodes[i], 0, 0);
		if (fs_attr_timeout(fs, INO_KERNEL) > 0)
			fuse_lowlevel_notify_inval_entry(fs->se, INO_ROOT, "kernel", 6);
		if (fs_attr_timeout(fs, INO_EBPF) > 0)
			fuse_lowlevel_notify_inval_entry(fs->se, INO_ROOT, "ebpf", 4);
		/* A segment not durable yet may have grown (librvf grows the
		 * newest one in place between syncs): drop its cached size
		 * and pages.  Durable segments never change. */
		rvf_view *v = rvf_store_view(fs->store);
		bool shown = atomic_load(&fs->segs_shown);
		for (size_t i = 0; shown && i < rvf_view_segment_count(v); i++) {
			const rvf_segment *sg = rvf_view_segment(v, i);
			if (sg->pending)
				fuse_lowlevel_notify_inval_inode(fs->se,
								 seg_ino(fs, sg->offset), 0, 0);
		}
		rvf_view_release(v);
		pthread_mutex_lock(&fs->mu);
		clock_gettime(CLOCK_REALTIME, &last);
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

static void invalidate(rvffs *fs, bool wait, bool urgent)
{
	rvf_view *v = rvf_store_view(fs->store);
	uint64_t gen = rvf_view_info(v)->generation;
	rvf_view_release(v);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += INVAL_WAIT_NS / 1000000000ll;
	pthread_mutex_lock(&fs->mu);
	bool first_change = !fs->children_warned;
	fs->children_warned = true;
	fs->seg_gen = gen; /* new segment inodes from now on */
	uint64_t pass = ++fs->inval_asked;
	fs->inval_pending = true;
	if (urgent)
		fs->inval_urgent = true;
	/* Waking it during its gap between passes would only put it back
	 * to sleep: a futex round trip per commit of a bash loop. */
	if (fs->inval_idle || urgent)
		pthread_cond_broadcast(&fs->inval_cond);
	/* So that the next `ls segments/` or open by name is right. */
	while (wait && fs->inval_sent < pass && !fs->inval_stop &&
	       pthread_cond_timedwait(&fs->inval_cond, &fs->mu, &until) == 0)
		;
	pthread_mutex_unlock(&fs->mu);
	if (first_change)
		fs_children_written(fs);
}

void fs_invalidate(rvffs *fs, bool wait)
{
	invalidate(fs, wait, wait);
}

void fs_invalidate_now(rvffs *fs)
{
	invalidate(fs, false, true);
}
