/* io.h - the engine's only door to the OS for writing: whole writes that
 * retry EINTR and short writes, fsync, rename.  A seam where tests can
 * inject faults (RVF_FAULT, see io.c; io_map_fault, io_fault_calls). */
#ifndef RVF_IO_H
#define RVF_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Each returns 0, or -1 with errno set. */
int io_pwrite_all(int fd, const void *buf, size_t len, off_t off);
int io_pread_all(int fd, void *buf, size_t len, off_t off);
/* io_pwrite_all of n buffers, one after the other (iov is consumed). */
struct iovec;
int io_pwritev_all(int fd, struct iovec *iov, int n, off_t off);
int io_fsync(int fd);
int io_ftruncate(int fd, off_t len);
int io_rename(const char *from, const char *to);
/* The fault seam for mapping the store (view.c): 0, or the errno to fail
 * with. */
int io_map_fault(void);
/* How many `op` calls ("write", "fsync", "rename", "truncate", "map")
 * this process has made while RVF_FAULT was set, the faulted one included:
 * tests/unit/test_faults.c learns from it how many fault points an
 * operation has. */
unsigned long io_fault_calls(const char *op);
/* Opens an existing file that must be a regular one: never blocks on a
 * FIFO or a device (O_NONBLOCK until checked), never becomes a terminal's
 * controller.  Returns the fd, or -1 with errno (EINVAL and
 * *not_regular = true when it is something else). */
int io_open_regular(const char *path, int flags, bool *not_regular);
/* A new file that will replace `target` by rename: created in target's
 * directory exclusively, never through a symlink (O_TMPFILE, nameless
 * until io_temp_replace; where the filesystem lacks O_TMPFILE, an
 * O_EXCL|O_NOFOLLOW file with a random name), mode 0600 until then. */
typedef struct io_temp {
	int fd;
	char *name;     /* its name once it has one, for messages and cleanup */
	char *dir;      /* target's directory */
} io_temp;
/* 0, or -1 with errno (t->fd = -1). */
int io_temp_create(io_temp *t, const char *target);
/* Gives it target's mode, owner and group (refusing with EPERM when the
 * owner cannot be kept), links it under a random name if it has none and
 * renames it over target.  0, or -1 with errno; t stays to be discarded. */
int io_temp_replace(io_temp *t, int target_fd, const char *target);
/* Closes it unless kept (keep_fd: the caller took t->fd) and removes a
 * name that was not renamed. */
void io_temp_discard(io_temp *t, bool keep_fd);
/* fsync the directory that holds `path`. */
int io_fsync_dir_of(const char *path);

#endif
