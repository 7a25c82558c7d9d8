/* bigmem.h - large arrays on huge pages where the kernel has them.
 *
 * The first touch of each 4 KiB page is a page fault; on some virtual
 * machines one costs about 15 us (this project's CI VM: 64 MiB filled in
 * 250 ms in 4 KiB pages, in 6 ms in 2 MiB ones), so a million-row index
 * or a stream's segment buffers spent more time faulting than working.
 * big_alloc asks for transparent huge pages (madvise; a no-op where THP
 * is off).  Its memory is freed and resized with free() and realloc(). */
#ifndef RVF_BIGMEM_H
#define RVF_BIGMEM_H

#include <stddef.h>

void *big_alloc(size_t size);

#endif
