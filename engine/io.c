/* io.c - whole writes, fsync and rename, with a fault-injection seam.
 *
 * Tests set RVF_FAULT="op:n:errno" (op = write|fsync|rename|truncate|map) to
 * make the n-th such call (1-based, counted per process) fail with errno,
 * or "write:n:short" to make it write half and fail with ENOSPC.  The
 * variable is read at each call, so nothing is cached globally. */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rvf.h"

/* Per-op call counters: the only mutable statics, used by fault tests. */
static atomic_ulong calls[5];
enum { OP_WRITE, OP_FSYNC, OP_RENAME, OP_TRUNCATE, OP_MAP };
static const char *op_names[] = { "write", "fsync", "rename", "truncate", "map" };

/* 0 = no fault; >0 = errno to fail with; -1 = short write. */
static int injected_fault(int op)
{
	const char *spec = getenv("RVF_FAULT");
	if (!spec || !*spec)
		return 0;
	unsigned long n = atomic_fetch_add(&calls[op], 1) + 1;
	char name[16];
	unsigned long at;
	char what[16];
	if (sscanf(spec, "%15[a-z]:%lu:%15s", name, &at, what) != 3)
		return 0;
	if (strcmp(name, op_names[op]) != 0 || n != at)
		return 0;
	if (strcmp(what, "short") == 0)
		return -1;
	int e = atoi(what);
	return e > 0 ? e : EIO;
}

int io_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	int fault = injected_fault(OP_WRITE);
	if (fault > 0) {
		errno = fault;
		return -1;
	}
	if (fault < 0)
		len /= 2;
	while (len > 0) {
		ssize_t w = pwrite(fd, p, len, off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		off += w;
		len -= (size_t)w;
	}
	if (fault < 0) {
		errno = ENOSPC;
		return -1;
	}
	return 0;
}

int io_pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	while (len > 0) {
		ssize_t r = pread(fd, p, len, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO; /* file shorter than expected */
			return -1;
		}
		p += r;
		off += r;
		len -= (size_t)r;
	}
	return 0;
}

int io_fsync(int fd)
{
	int fault = injected_fault(OP_FSYNC);
	if (fault) {
		errno = fault > 0 ? fault : EIO;
		return -1;
	}
	return fsync(fd);
}

int io_map_fault(void)
{
	int fault = injected_fault(OP_MAP);
	return fault ? (fault > 0 ? fault : ENOMEM) : 0;
}

int io_ftruncate(int fd, off_t len)
{
	int fault = injected_fault(OP_TRUNCATE);
	if (fault) {
		errno = fault > 0 ? fault : EIO;
		return -1;
	}
	while (ftruncate(fd, len) < 0) {
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

int io_rename(const char *from, const char *to)
{
	int fault = injected_fault(OP_RENAME);
	if (fault) {
		errno = fault > 0 ? fault : EIO;
		return -1;
	}
	return rename(from, to);
}

int io_fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return -1;
	int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(copy);
	if (fd < 0)
		return -1;
	int r = io_fsync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return r;
}
