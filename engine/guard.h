/* guard.h - the mapping table behind rvf_guard_install (guard.c). */
#ifndef RVF_GUARD_H
#define RVF_GUARD_H

#include <stddef.h>

/* A store mapping [base, base+len) whose SIGBUS the guard may absorb. */
void guard_map_add(const void *base, size_t len);
void guard_map_remove(const void *base);

#endif
