/* heap.c - the daemon's live heap, for the status file: what a user (and
 * the soak test) watches to see that a long-running mount does not grow.
 * RSS cannot say it: glibc keeps freed memory in its arenas, and under
 * AddressSanitizer the quarantine, the allocator's caches and the shadow
 * grow for a while although nothing leaks. */
#include <malloc.h>

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

unsigned long long fs_heap_bytes(void)
{
#ifdef RVFFS_ASAN
	/* ASan replaces malloc: glibc's counters would show nothing */
	return __sanitizer_get_current_allocated_bytes();
#else
	struct mallinfo2 m = mallinfo2(); /* in use, all arenas + mmapped blocks */
	return (unsigned long long)m.uordblks + m.hblkhd;
#endif
}
