/* lock.c - the reference-compatible writer lock.
 *
 * The reference breaks a lock only when the pid is dead AND the lock is
 * older than 30 s.  We break it as soon as the pid is dead on this host: a
 * dead process cannot write, and a crashed daemon should be remountable at
 * once.  A lock from another host is honoured for 300 s, as upstream does. */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "error.h"
#include "hash.h"
#include "io.h"

static void local_hostname(char out[64])
{
	const char *env = getenv("HOSTNAME");
	memset(out, 0, 64);
	if (env && *env) {
		snprintf(out, 63, "%s", env);
	} else {
		FILE *f = fopen("/etc/hostname", "r");
		if (f && fgets(out, 63, f)) {
			out[strcspn(out, " \t\r\n")] = '\0';
		} else if (gethostname(out, 63) != 0) {
			snprintf(out, 63, "unknown");
		}
		if (f)
			fclose(f);
	}
	out[62] = '\0'; /* the reference keeps at most 62 bytes */
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lock_encode(unsigned char out[RVF_LOCK_SIZE], uint32_t pid,
		 const char *host, uint64_t ts_ns, const uint8_t writer_id[16])
{
	memset(out, 0, RVF_LOCK_SIZE);
	st32(out, RVF_LOCK_MAGIC);
	st32(out + 4, pid);
	strncpy((char *)out + 8, host, 62);
	st64(out + 0x48, ts_ns);
	memcpy(out + 0x50, writer_id, 16);
	st32(out + 0x60, 1);
	st32(out + 0x64, crc32_update(0, out, 0x64));
}

static int read_lock(const char *path, unsigned char buf[RVF_LOCK_SIZE],
		     size_t *n)
{
	/* A FIFO, device or symlink planted as the lock is not a lock: it
	 * must neither block us nor be followed. */
	int fd = io_open_regular(path, O_RDONLY | O_NOFOLLOW, NULL);
	if (fd < 0)
		return -1;
	ssize_t r = read(fd, buf, RVF_LOCK_SIZE);
	int e = errno;
	close(fd);
	errno = e;
	if (r < 0)
		return -1;
	*n = (size_t)r;
	return 0;
}

/* True when pid is a zombie: it exited and only waits to be reaped, so it
 * holds nothing (kill(pid, 0) still succeeds on it). */
static bool pid_is_zombie(uint32_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

/* Why a held lock is not stale, or NULL when it may be broken. */
static const char *lock_is_live(const unsigned char *buf, size_t n,
				char *why, size_t why_len)
{
	if (n < RVF_LOCK_SIZE || ld32(buf) != RVF_LOCK_MAGIC)
		return NULL; /* junk: the reference breaks it too */
	uint32_t pid = ld32(buf + 4);
	char host[64], theirs[64];
	local_hostname(host);
	memcpy(theirs, buf + 8, 63);
	theirs[63] = '\0';
	uint64_t ts = ld64(buf + 0x48), now = now_ns();
	uint64_t age_s = now > ts ? (now - ts) / 1000000000ull : 0;
	if (strcmp(host, theirs) == 0) {
		if ((kill((pid_t)pid, 0) == 0 || errno == EPERM) &&
		    !pid_is_zombie(pid)) {
			snprintf(why, why_len, "held by live process %u on this host",
				 pid);
			return why;
		}
		return NULL;
	}
	if (age_s > 300)
		return NULL;
	snprintf(why, why_len, "held by process %u on host %s (%llu s old)", pid,
		 theirs, (unsigned long long)age_s);
	return why;
}

/* Moves a stale lock aside and checks it is still the one we judged, so
 * two breakers cannot remove each other's fresh locks. */
static bool break_stale(const char *path, const unsigned char *seen, size_t n)
{
	char aside[4096];
	unsigned char r[8];
	randombytes_buf(r, sizeof(r));
	/* A random name: nothing planted there in advance is replaced. */
	snprintf(aside, sizeof(aside), "%s.stale.%02x%02x%02x%02x%02x%02x%02x%02x", path,
		 r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
	if (rename(path, aside) != 0)
		return errno == ENOENT; /* already gone: retry creating */
	unsigned char now[RVF_LOCK_SIZE];
	size_t m = 0;
	bool same = read_lock(aside, now, &m) == 0 && m == n &&
		    memcmp(now, seen, n) == 0;
	if (same) {
		unlink(aside);
		return true;
	}
	/* Someone replaced it meanwhile: put theirs back unless a newer one
	 * appeared, in which case theirs is the stale one. */
	if (link(aside, path) != 0 && errno != EEXIST) {
		/* nothing sensible left to do: keep their file aside */
	}
	unlink(aside);
	return false;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One attempt: RVF_E_LOCK_HELD when someone live holds it. */
static rvf_code try_acquire(const char *store_path, rvf_lock *out,
			    rvf_error *err);

rvf_code lock_acquire(const char *store_path, unsigned wait_ms, rvf_lock *out,
		      rvf_error *err)
{
	/* A busy timeout, as SQLite's: a writer that is exiting (rvffs
	 * after fusermount -u) releases the lock within moments, so poll
	 * for it instead of failing at once. */
	uint64_t deadline = mono_ms() + wait_ms;
	unsigned nap_ms = 5;
	for (;;) {
		rvf_code rc = try_acquire(store_path, out, err);
		uint64_t now = mono_ms();
		if (rc != RVF_E_LOCK_HELD || now >= deadline)
			return rc;
		uint64_t left = deadline - now;
		struct timespec ts = { 0, (long)(left < nap_ms ? left : nap_ms) * 1000000L };
		nanosleep(&ts, NULL);
		if (nap_ms < 100)
			nap_ms *= 2;
	}
}

static rvf_code try_acquire(const char *store_path, rvf_lock *out,
			    rvf_error *err)
{
	memset(out, 0, sizeof(*out));
	size_t plen = strlen(store_path);
	out->path = malloc(plen + 6);
	if (!out->path)
		return rvf_fail(err, RVF_E_NO_MEMORY, "out of memory");
	memcpy(out->path, store_path, plen);
	memcpy(out->path + plen, ".lock", 6);

	char host[64];
	local_hostname(host);
	randombytes_buf(out->writer_id, 16);
	unsigned char rec[RVF_LOCK_SIZE];
	lock_encode(rec, (uint32_t)getpid(), host, now_ns(), out->writer_id);

	rvf_code rc = RVF_E_LOCK_HELD;
	for (int attempt = 0; attempt < 3; attempt++) {
		int fd = open(out->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			      0644);
		if (fd >= 0) {
			if (io_pwrite_all(fd, rec, sizeof(rec), 0) != 0 ||
			    io_fsync(fd) != 0) {
				int e = errno;
				close(fd);
				unlink(out->path);
				rc = rvf_fail_io(err, e, "cannot write lock file %s",
						 out->path);
				goto fail;
			}
			close(fd);
			out->held = true;
			return RVF_OK;
		}
		if (errno != EEXIST) {
			rc = rvf_fail_io(err, errno, "cannot create lock file %s",
					 out->path);
			goto fail;
		}
		unsigned char buf[RVF_LOCK_SIZE];
		size_t n = 0;
		if (read_lock(out->path, buf, &n) != 0) {
			if (errno == ENOENT)
				continue; /* released meanwhile */
			if (errno == EINVAL || errno == ELOOP)
				rc = rvf_fail(err, RVF_E_INVALID_ARGUMENT,
					      "%s: lock file %s is not a regular file (a FIFO, device or symlink); remove it by hand",
					      store_path, out->path);
			else
				rc = rvf_fail_io(err, errno, "cannot read lock file %s",
						 out->path);
			goto fail;
		}
		char why[160];
		if (lock_is_live(buf, n, why, sizeof(why))) {
			rvf_fail(err, RVF_E_LOCK_HELD,
				 "%s is locked for writing (%s): another writer has it open",
				 store_path, why);
			goto fail;
		}
		if (!break_stale(out->path, buf, n)) {
			rvf_fail(err, RVF_E_LOCK_HELD,
				 "%s: lock file %s changed while breaking a stale lock",
				 store_path, out->path);
			goto fail;
		}
	}
	rvf_fail(err, RVF_E_LOCK_HELD, "%s: could not take lock %s", store_path,
		 out->path);
fail:
	free(out->path);
	out->path = NULL;
	return rc;
}

void lock_release(rvf_lock *l)
{
	if (!l->path)
		return;
	if (l->held) {
		unsigned char buf[RVF_LOCK_SIZE];
		size_t n = 0;
		/* Remove it only if it is still ours, as the reference does. */
		if (read_lock(l->path, buf, &n) == 0 && n == RVF_LOCK_SIZE &&
		    memcmp(buf + 0x50, l->writer_id, 16) == 0)
			unlink(l->path);
	}
	free(l->path);
	l->path = NULL;
	l->held = false;
}
