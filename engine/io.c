/* io.c - whole writes, fsync and rename, with a fault-injection seam.
 *
 * Tests set RVF_FAULT="op:n:errno" (op = write|fsync|rename|truncate|map) to
 * make the n-th such call (1-based, counted per process) fail with errno,
 * or "write:n:short" to make it write half and fail with ENOSPC.  The
 * variable is read at each call, so nothing is cached globally.
 * RVF_FAULT=count fails nothing and prints, at exit, how many calls of each
 * op the process made (what a spec's n can reach): the fault-free run from
 * which tests/pytest/test_reliability_faults.py learns a command's fault
 * points, as tests/unit/test_faults.c does in-process (io_fault_calls). */
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "rvf.h"

/* Per-op call counters: the only mutable statics, used by fault tests. */
enum { OP_WRITE, OP_FSYNC, OP_RENAME, OP_TRUNCATE, OP_MAP, OP_COUNT };
static atomic_ulong calls[OP_COUNT];
static const char *op_names[OP_COUNT] = { "write", "fsync", "rename", "truncate", "map" };

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

unsigned long io_fault_calls(const char *op)
{
	for (int i = 0; i < OP_COUNT; i++)
		if (strcmp(op, op_names[i]) == 0)
			return atomic_load(&calls[i]);
	return 0;
}

/* RVF_FAULT=count (no field matches, so injected_fault counts every call
 * and fails none): one line on stderr at exit, e.g.
 * "rvf-fault-calls: write=7 fsync=3 rename=0 truncate=0 map=1". */
__attribute__((destructor)) static void report_fault_calls(void)
{
	const char *spec = getenv("RVF_FAULT");
	if (!spec || strcmp(spec, "count") != 0)
		return;
	fputs("rvf-fault-calls:", stderr);
	for (int i = 0; i < OP_COUNT; i++)
		fprintf(stderr, " %s=%lu", op_names[i], atomic_load(&calls[i]));
	fputc('\n', stderr);
}

/* The kernel gets writes in pieces of at most 1 MiB.  From a larger write
 * the page cache takes 2 MiB folios, and on a VM whose balloon reports free
 * memory to the host those come from the blocks the host has taken back:
 * every first touch then faults into the host.  Measured on our 2-core VM,
 * 516 MB written from an 8 MiB buffer: 0.09 to 1.0 s in 8 MiB pwrites,
 * 0.06 to 0.09 s in 1 MiB pieces (cp writes 128 KiB at a time). */
#define IO_WRITE_PIECE ((size_t)1 << 20)

int io_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	struct iovec one = { (void *)buf, len };
	return io_pwritev_all(fd, &one, 1, off);
}

int io_pwritev_all(int fd, struct iovec *iov, int n, off_t off)
{
	int fault = injected_fault(OP_WRITE);
	if (fault > 0) {
		errno = fault;
		return -1;
	}
	size_t total = 0;
	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	size_t want = fault < 0 ? total / 2 : total, done = 0;
	while (done < want) {
		/* the front of iov, at most one piece of it */
		struct iovec part[8];
		int m = 0;
		size_t room = want - done < IO_WRITE_PIECE ? want - done : IO_WRITE_PIECE;
		for (; m < n && m < 8 && room > 0; m++) {
			part[m] = iov[m];
			if (part[m].iov_len > room)
				part[m].iov_len = room;
			room -= part[m].iov_len;
		}
		ssize_t w = pwritev(fd, part, m, off + (off_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			return -1;
		}
		done += (size_t)w;
		/* drop what was written from the front of iov */
		while (w > 0 && n > 0) {
			size_t k = (size_t)w < iov->iov_len ? (size_t)w : iov->iov_len;
			iov->iov_base = (char *)iov->iov_base + k;
			iov->iov_len -= k;
			w -= (ssize_t)k;
			if (!iov->iov_len) {
				iov++;
				n--;
			}
		}
		if (fault < 0 && done >= want)
			break;
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

int io_open_regular(const char *path, int flags, bool *not_regular)
{
	if (not_regular)
		*not_regular = false;
	int fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	struct stat st;
	int e = 0;
	if (fstat(fd, &st) != 0)
		e = errno;
	else if (!S_ISREG(st.st_mode))
		e = EINVAL;
	else if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
		e = errno;
	if (e) {
		close(fd);
		if (not_regular && e == EINVAL)
			*not_regular = true;
		errno = e;
		return -1;
	}
	return fd;
}

/* DIR/.BASE.<16 hex>.compact.tmp ("compact.tmp" as the reference's own
 * temp name ends, so tools that clean those find it). */
static char *random_name(const io_temp *t, const char *target)
{
	const char *slash = strrchr(target, '/');
	const char *base = slash ? slash + 1 : target;
	unsigned char r[8];
	randombytes_buf(r, sizeof(r));
	char hex[17];
	sodium_bin2hex(hex, sizeof(hex), r, sizeof(r));
	char *out = NULL;
	if (asprintf(&out, "%s/.%s.%s.compact.tmp", t->dir, base, hex) < 0)
		return NULL;
	return out;
}

int io_temp_create(io_temp *t, const char *target)
{
	t->fd = -1;
	t->name = NULL;
	char *copy = strdup(target);
	t->dir = copy ? strdup(dirname(copy)) : NULL;
	free(copy);
	if (!t->dir) {
		errno = ENOMEM;
		return -1;
	}
	t->fd = open(t->dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (t->fd >= 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -1;
	/* No O_TMPFILE here: a fresh random name, created exclusively. */
	for (int attempt = 0; attempt < 8; attempt++) {
		free(t->name);
		t->name = random_name(t, target);
		if (!t->name) {
			errno = ENOMEM;
			return -1;
		}
		t->fd = open(t->name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			     0600);
		if (t->fd >= 0 || errno != EEXIST)
			break;
	}
	if (t->fd < 0) {
		int e = errno;
		free(t->name);
		t->name = NULL;
		errno = e;
	}
	return t->fd >= 0 ? 0 : -1;
}

int io_temp_replace(io_temp *t, int target_fd, const char *target)
{
	struct stat st;
	if (fstat(target_fd, &st) != 0)
		return -1;
	/* The owner first: chown clears set-id bits, chmod sets them back. */
	if (fchown(t->fd, st.st_uid, st.st_gid) != 0 ||
	    fchmod(t->fd, st.st_mode & 07777) != 0)
		return -1;
	if (!t->name) {
		/* Give the nameless file a name: linkat through /proc (the
		 * AT_EMPTY_PATH way needs CAP_DAC_READ_SEARCH).  linkat never
		 * replaces or follows what is at the new name. */
		char proc[64];
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
		for (int attempt = 0; attempt < 8 && !t->name; attempt++) {
			char *name = random_name(t, target);
			if (!name) {
				errno = ENOMEM;
				return -1;
			}
			if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0) {
				t->name = name;
			} else {
				int e = errno;
				free(name);
				if (e != EEXIST) {
					errno = e;
					return -1;
				}
			}
		}
		if (!t->name) {
			errno = EEXIST;
			return -1;
		}
	}
	if (io_rename(t->name, target) != 0)
		return -1;
	free(t->name);
	t->name = NULL; /* renamed: nothing to remove */
	return 0;
}

void io_temp_discard(io_temp *t, bool keep_fd)
{
	if (t->fd >= 0 && !keep_fd)
		close(t->fd);
	t->fd = -1;
	if (t->name)
		unlink(t->name);
	free(t->name);
	free(t->dir);
	t->name = NULL;
	t->dir = NULL;
}
