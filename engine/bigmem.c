/* bigmem.c - large arrays on huge pages where the kernel has them (see
 * bigmem.h). */
#include "bigmem.h"

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE (2u << 20)

void *big_alloc(size_t size)
{
	if (size < HUGE_PAGE)
		return malloc(size);
	void *p;
	if (posix_memalign(&p, HUGE_PAGE, size) != 0)
		return NULL;
	/* whole huge pages only: the rest of the last one may be another
	 * allocation's */
	size_t whole = size & ~(size_t)(HUGE_PAGE - 1);
	(void)madvise(p, whole, MADV_HUGEPAGE);
	return p;
}
