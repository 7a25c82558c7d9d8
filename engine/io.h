/* io.h - the engine's only door to the OS for writing: whole writes that
 * retry EINTR and short writes, fsync, rename.  A seam where tests can
 * inject faults (see io_fault_*). */
#ifndef RVF_IO_H
#define RVF_IO_H

#include <stddef.h>
#include <sys/types.h>

/* Each returns 0, or -1 with errno set. */
int io_pwrite_all(int fd, const void *buf, size_t len, off_t off);
int io_pread_all(int fd, void *buf, size_t len, off_t off);
int io_fsync(int fd);
int io_ftruncate(int fd, off_t len);
int io_rename(const char *from, const char *to);
/* The fault seam for mapping the store (view.c): 0, or the errno to fail
 * with. */
int io_map_fault(void);
/* fsync the directory that holds `path`. */
int io_fsync_dir_of(const char *path);

#endif
