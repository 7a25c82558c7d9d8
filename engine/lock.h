/* lock.h - the writer lock file `<store>.lock`, in the reference's layout. */
#ifndef RVF_LOCK_H
#define RVF_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "rvf.h"

#define RVF_LOCK_SIZE 104
#define RVF_LOCK_MAGIC 0x52564C46u /* "FLVR" on disk */

typedef struct rvf_lock {
	char *path;            /* malloc'd "<store>.lock" */
	uint8_t writer_id[16];
	bool held;
} rvf_lock;

/* Creates `<store_path>.lock` exclusively.  An existing lock is broken when
 * it is junk (short, bad magic), or its pid is dead on this host, or it is
 * older than 300 s from another host; else RVF_E_LOCK_HELD naming the
 * holder.  A live holder is waited for up to wait_ms (polling), so a writer
 * that is just exiting does not make us fail. */
rvf_code lock_acquire(const char *store_path, unsigned wait_ms, rvf_lock *out,
		      rvf_error *err);

/* Removes the lock file if it is still ours. */
void lock_release(rvf_lock *l);

/* Encodes a lock record (exposed for tests). */
void lock_encode(unsigned char out[RVF_LOCK_SIZE], uint32_t pid,
		 const char *host, uint64_t ts_ns, const uint8_t writer_id[16]);

#endif
