/* test_io.c - io.c's whole writes: every byte lands where it should, and
 * the kernel never gets more than 1 MiB in one call (a larger write lets
 * the page cache take 2 MiB folios, which on a VM with free page reporting
 * cost a host fault per 4 KiB page: see io.c).  pwrite and pwritev are
 * wrapped at link time (-Wl,--wrap; with
 * _FILE_OFFSET_BITS=64 glibc names them pwrite64 and pwritev64) to see the sizes io.c asks for. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "io.h"

#include "check.h"

#define MIB ((size_t)1 << 20)

static size_t largest_call, calls;

ssize_t __real_pwrite64(int fd, const void *buf, size_t len, off_t off);
ssize_t __wrap_pwrite64(int fd, const void *buf, size_t len, off_t off)
{
	calls++;
	if (len > largest_call)
		largest_call = len;
	return __real_pwrite64(fd, buf, len, off);
}

ssize_t __real_pwritev64(int fd, const struct iovec *iov, int n, off_t off);
ssize_t __wrap_pwritev64(int fd, const struct iovec *iov, int n, off_t off)
{
	size_t len = 0;
	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	calls++;
	if (len > largest_call)
		largest_call = len;
	return __real_pwritev64(fd, iov, n, off);
}

static int scratch_file(void)
{
	char path[] = "/tmp/rvf-test-io-XXXXXX";
	int fd = mkstemp(path);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static unsigned char *pattern(size_t len, unsigned seed)
{
	unsigned char *p = malloc(len);
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(i * 131 + seed + (i >> 12));
	return p;
}

static bool file_has(int fd, off_t at, const unsigned char *want, size_t len)
{
	unsigned char *got = malloc(len);
	bool same = io_pread_all(fd, got, len, at) == 0 && memcmp(got, want, len) == 0;
	free(got);
	return same;
}

/* 3 MiB + 17 bytes at an odd offset: four calls, none over 1 MiB. */
static void test_pwrite_in_pieces(void)
{
	int fd = scratch_file();
	size_t len = 3 * MIB + 17;
	unsigned char *data = pattern(len, 1);
	largest_call = calls = 0;
	CHECK(io_pwrite_all(fd, data, len, 4097) == 0, "errno %d", errno);
	CHECK(largest_call <= MIB, "a call of %zu bytes", largest_call);
	CHECK(calls == 4, "%zu calls", calls);
	CHECK(file_has(fd, 4097, data, len));
	free(data);
	close(fd);
}

/* A segment's header and rows (the stream's pwritev), and a buffer list
 * longer than one call takes: the pieces cut inside a buffer and between
 * buffers, and the bytes come out in order. */
static void test_pwritev_in_pieces(void)
{
	int fd = scratch_file();
	size_t lens[10] = { 64, 5 * MIB + 3, 0, 100, MIB, 1, 2, 3, 4, 700 * 1024 };
	struct iovec iov[10];
	size_t total = 0;
	for (int i = 0; i < 10; i++) {
		iov[i].iov_base = pattern(lens[i] ? lens[i] : 1, (unsigned)i);
		iov[i].iov_len = lens[i];
		total += lens[i];
	}
	unsigned char *want = malloc(total), *w = want;
	for (int i = 0; i < 10; i++) {
		memcpy(w, iov[i].iov_base, lens[i]);
		w += lens[i];
	}
	void *bases[10];
	for (int i = 0; i < 10; i++)
		bases[i] = iov[i].iov_base;
	largest_call = calls = 0;
	CHECK(io_pwritev_all(fd, iov, 10, 12345) == 0, "errno %d", errno);
	CHECK(largest_call <= MIB, "a call of %zu bytes", largest_call);
	CHECK(calls >= (total + MIB - 1) / MIB, "%zu calls", calls);
	CHECK(file_has(fd, 12345, want, total));
	for (int i = 0; i < 10; i++)
		free(bases[i]);
	free(want);
	close(fd);
}

/* RVF_FAULT=write:1:short: exactly the first half lands, then ENOSPC. */
static void test_short_fault_writes_half(void)
{
	int fd = scratch_file();
	size_t len = 3 * MIB + 2;
	unsigned char *data = pattern(len, 7);
	struct iovec iov[2] = { { data, 10 }, { data + 10, len - 10 } };
	setenv("RVF_FAULT", "write:1:short", 1);
	errno = 0;
	CHECK(io_pwritev_all(fd, iov, 2, 0) == -1 && errno == ENOSPC, "errno %d", errno);
	unsetenv("RVF_FAULT");
	struct stat st;
	CHECK(fstat(fd, &st) == 0 && (size_t)st.st_size == len / 2,
	      "%lld bytes written", (long long)st.st_size);
	CHECK(file_has(fd, 0, data, len / 2));
	free(data);
	close(fd);
}

int main(void)
{
	test_pwrite_in_pieces();
	test_pwritev_in_pieces();
	test_short_fault_writes_half();
	return check_summary("test_io");
}
