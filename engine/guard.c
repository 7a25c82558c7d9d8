/* guard.c - surviving a store file that shrinks under its mapping.
 *
 * Views read the store through a shared mapping; when someone truncates
 * the file (`truncate -s 100 STORE` under a mount) a read of a page past
 * the new end raises SIGBUS, which would kill the whole daemon.  With the
 * guard installed, a SIGBUS on a page of a store mapping replaces that
 * page with a page of zeros (the read completes), counts the fault and
 * returns; the caller asks rvf_guard_faults() or rvf_store_shrunk() before
 * trusting what it read and answers EIO.  Any other SIGBUS goes to the
 * handler that was there before (or kills the process as usual).
 *
 * The handler looks the address up in a fixed table of mappings kept with
 * atomics (no locks: it may interrupt a thread that holds any of them). */
#include "guard.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rvf.h"

#define GUARD_SLOTS 256

static _Atomic uintptr_t slot_start[GUARD_SLOTS], slot_end[GUARD_SLOTS];
static atomic_ulong faults;
static uintptr_t page_mask;
static struct sigaction previous;
static atomic_bool installed;

void guard_map_add(const void *base, size_t len)
{
	uintptr_t b = (uintptr_t)base;
	for (int i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t expect = 0;
		if (atomic_compare_exchange_strong(&slot_start[i], &expect, b)) {
			atomic_store(&slot_end[i], b + len);
			return;
		}
	}
	/* Table full: this mapping is unguarded (a SIGBUS on it kills). */
}

void guard_map_remove(const void *base)
{
	uintptr_t b = (uintptr_t)base;
	for (int i = 0; i < GUARD_SLOTS; i++)
		if (atomic_load(&slot_start[i]) == b) {
			atomic_store(&slot_end[i], 0);
			atomic_store(&slot_start[i], 0);
			return;
		}
}

static bool guarded(uintptr_t a)
{
	for (int i = 0; i < GUARD_SLOTS; i++) {
		uintptr_t s = atomic_load(&slot_start[i]), e = atomic_load(&slot_end[i]);
		if (s && a >= s && a < e)
			return true;
	}
	return false;
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	uintptr_t a = (uintptr_t)si->si_addr;
	if (page_mask && guarded(a)) {
		void *page = (void *)(a & page_mask);
		/* mmap is a plain system call: safe here in practice. */
		if (mmap(page, ~page_mask + 1, PROT_READ,
			 MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == page) {
			atomic_fetch_add(&faults, 1);
			return;
		}
	}
	if (previous.sa_flags & SA_SIGINFO) {
		previous.sa_sigaction(sig, si, ctx);
	} else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
		previous.sa_handler(sig);
	} else {
		/* Die of it as if no handler were there: the access repeats. */
		signal(SIGBUS, SIG_DFL);
	}
}

int rvf_guard_install(void)
{
	bool was = false;
	if (!atomic_compare_exchange_strong(&installed, &was, true))
		return 0;
	long page = sysconf(_SC_PAGESIZE);
	page_mask = ~((uintptr_t)(page > 0 ? page : 4096) - 1);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, &previous);
}

uint64_t rvf_guard_faults(void)
{
	return atomic_load(&faults);
}
