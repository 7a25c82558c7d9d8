/* fuzz_common.h - helpers shared by the libFuzzer targets (tests/fuzz).
 *
 * Every target defines LLVMFuzzerTestOneInput (and may define
 * LLVMFuzzerInitialize).  Built with clang -fsanitize=fuzzer they are
 * libFuzzer binaries; built with -DFUZZ_STANDALONE and standalone_main.c
 * they are plain programs that run the files named on the command line
 * once each (tests/pytest/test_fuzz_regressions.py). */
#ifndef RVF_FUZZ_COMMON_H
#define RVF_FUZZ_COMMON_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "rvf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A harness invariant: librvf broke a promise of rvf.h.  Aborts, which
 * both libFuzzer and the standalone runner report as a crash. */
#define FUZZ_CHECK(c)                                                     \
	do {                                                              \
		if (!(c)) {                                               \
			fprintf(stderr, "%s:%d: FUZZ_CHECK(%s) failed\n", \
				__FILE__, __LINE__, #c);                  \
			abort();                                          \
		}                                                         \
	} while (0)

/* Keeps a value alive so the reads that produced it are not optimised
 * away. */
static volatile uint64_t fuzz_sink;

static inline void fuzz_touch(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0;
	for (size_t i = 0; i < n; i++)
		h = h * 31 + b[i];
	fuzz_sink += h;
}

/* A memfd holding data[size], positioned at offset 0; -1 on failure (the
 * caller then skips the input: it is not a bug of the code under test). */
static inline int fuzz_memfd(const char *name, const uint8_t *data, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t done = 0;
	while (done < size) {
		ssize_t w = write(fd, data + done, size - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			return -1;
		}
		done += (size_t)w;
	}
	if (lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Standalone builds with FUZZ_VERBOSE=1 in the environment print what each
 * input did (to check that the seeds reach what they are meant to). */
#ifdef FUZZ_STANDALONE
#define fuzz_note(...)                                                    \
	do {                                                              \
		if (getenv("FUZZ_VERBOSE"))                               \
			fprintf(stderr, "  -> " __VA_ARGS__);             \
	} while (0)
#else
#define fuzz_note(...) ((void)0)
#endif

/* Touches every byte a metadata value refers to. */
static inline void fuzz_touch_value(const rvf_value *v)
{
	switch (v->type) {
	case RVF_VALUE_STRING:
	case RVF_VALUE_BYTES:
		FUZZ_CHECK(v->u.str.len == 0 || v->u.str.ptr != NULL);
		fuzz_touch(v->u.str.ptr, v->u.str.len);
		break;
	case RVF_VALUE_I64:
		fuzz_sink += (uint64_t)v->u.i64;
		break;
	case RVF_VALUE_U64:
		fuzz_sink += v->u.u64;
		break;
	case RVF_VALUE_F64:
		fuzz_touch(&v->u.f64, sizeof(v->u.f64));
		break;
	case RVF_VALUE_BOOL:
		fuzz_sink += v->u.b;
		break;
	default:
		FUZZ_CHECK(!"unknown metadata value type");
	}
}

static inline void fuzz_touch_fields(const rvf_meta_field *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(f[i].name != NULL);
		fuzz_touch(f[i].name, strlen(f[i].name));
		fuzz_touch_value(&f[i].value);
	}
}

#endif
