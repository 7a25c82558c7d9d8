/* Linked into every program of an AddressSanitizer build, never into the
 * product (meson.build adds it when b_sanitize has address): it makes
 * LeakSanitizer's exit check cheaper without changing what it checks.
 *
 * At exit LeakSanitizer reads, word by word, the writable segments of the
 * program and its libraries.  The ASan runtime is linked into the program
 * (meson.build), so these include its 5 MB of mostly untouched tables (the
 * stack depot, 4.3 MB).  Each untouched 4 KiB page read there costs a page
 * fault that maps the shared zero page: some 1,400 faults for one rvfctl
 * run, at about 10 us each on a VM.  Instead, at the start:
 *  - the 2 MiB-aligned part of the zero-filled (.bss) range becomes huge
 *    pages (MADV_COLLAPSE, 4 MiB here): one allocation for what would be
 *    a thousand faults, and the stack depot's scattered first writes into
 *    it fault no more either;
 *  - the rest is mapped with MADV_POPULATE_READ (the zero page for what is
 *    untouched, one call instead of a fault a page, ~0.5 us a page).
 * rvfctl inspect: 95 -> 79 ms CPU under load (bench/asan_process_cost.py).
 * Memory is only mapped, never written: what the program and the checks
 * see is the same.  On a kernel without these (before 6.1 and 5.14), or
 * when no huge page is free, madvise fails and the faults stay. */
#include <link.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define HUGE_PAGE ((uintptr_t)2 << 20)

static uintptr_t round_down(uintptr_t a, uintptr_t to) { return a & ~(to - 1); }
static uintptr_t round_up(uintptr_t a, uintptr_t to) { return round_down(a + to - 1, to); }

/* One writable PT_LOAD segment [start, end), its file-backed .data up to
 * zero_start, then zero-filled .bss. */
static void prefault_segment(uintptr_t start, uintptr_t zero_start, uintptr_t end)
{
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t huge_start = round_up(zero_start, HUGE_PAGE);
	uintptr_t huge_end = round_down(end, HUGE_PAGE);

	if (huge_end > huge_start) {
		/* MADV_COLLAPSE fails on a 2 MiB block not touched yet (no page
		 * table): one page of each first */
		for (uintptr_t a = huge_start; a < huge_end; a += HUGE_PAGE)
			(void)madvise((void *)a, page, MADV_POPULATE_READ);
		(void)madvise((void *)huge_start, huge_end - huge_start, MADV_COLLAPSE);
	}
	start = round_down(start, page);
	end = round_up(end, page);
	(void)madvise((void *)start, end - start, MADV_POPULATE_READ);
}

/* The writable segments (.data, .bss) of the program and of each library:
 * the "globals" LeakSanitizer scans. */
static int prefault_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	(void)arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t start = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W))
			prefault_segment(start, start + ph->p_filesz, start + ph->p_memsz);
	}
	return 0;
}

/* Whether LeakSanitizer runs at exit: not when ASAN_OPTIONS turns it off
 * (the last detect_leaks= counts, as for the runtime). */
static int leak_check_at_exit(void)
{
	const char *opts = getenv("ASAN_OPTIONS");
	const char *last = NULL;

	for (const char *p = opts; p && (p = strstr(p, "detect_leaks=")); p++)
		last = p + strlen("detect_leaks=");
	return !last || (*last != '0' && strncmp(last, "false", 5) != 0);
}

/* After the runtime's own start (it runs from .preinit_array), before
 * main(): forked children inherit the mappings. */
__attribute__((constructor)) static void lsan_prefault(void)
{
	if (leak_check_at_exit())
		dl_iterate_phdr(prefault_module, NULL);
}
