/* heap.c - the daemon's live heap, for the status file: what a user (and
 * the soak test) watches to see that a long-running mount does not grow.
 * RSS cannot say it: glibc keeps freed memory in its arenas, and under
 * AddressSanitizer the quarantine, the allocator's caches and the shadow
 * grow for a while although nothing leaks. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include "rvffs.h"

#if defined(__SANITIZE_ADDRESS__)
#define RVFFS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RVFFS_ASAN 1
#endif
#endif

#ifdef RVFFS_ASAN
/* sanitizer/allocator_interface.h, which gcc does not install */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

static unsigned long long heap_bytes_now(void)
{
#ifdef RVFFS_ASAN
	/* ASan replaces malloc: glibc's counters would show nothing */
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 m = mallinfo2(); /* in use, all arenas + mmapped blocks */
	return (unsigned long long)m.uordblks + m.hblkhd;
#endif
}

/* The count is taken again only when the rest of the status changed (a
 * commit, a compaction): a file whose bytes changed at every read would
 * make every backup of the tree differ (tar, a second `rsync -a`), and
 * its size at stat would not be its size at read.  A mount being written
 * shows a fresh count after each change. */
unsigned long long fs_heap_bytes_shown(rvffs *fs, const char *text, size_t len)
{
	pthread_mutex_lock(&fs->mu);
	bool same = fs->heap_text && fs->heap_text_len == len &&
		    memcmp(fs->heap_text, text, len) == 0;
	if (!same) {
		char *copy = malloc(len + 1);
		if (copy) {
			memcpy(copy, text, len);
			free(fs->heap_text);
			fs->heap_text = copy;
			fs->heap_text_len = len;
		}
		fs->heap_shown = heap_bytes_now();
	}
	unsigned long long b = fs->heap_shown;
	pthread_mutex_unlock(&fs->mu);
	return b;
}
