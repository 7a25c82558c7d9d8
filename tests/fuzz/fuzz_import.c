/* fuzz_import.c - libFuzzer targets: the import parsers (rvf_import_fd).
 *
 * Compiled once per format with -DFUZZ_FORMAT=RVF_IMPORT_CSV (JSONL, JSON,
 * FVECS, NPY): fuzz_import_csv, fuzz_import_jsonl, ...  The first input
 * byte picks the dimension (byte % 8 + 1); the rest is the file, given to
 * rvf_import_fd through a rewound memfd.  The sink touches every id,
 * component and metadata field it is handed and checks what rvf.h
 * promises about them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <math.h>
#include <string.h>

#include "fuzz_common.h"

#ifndef FUZZ_FORMAT
#error "define FUZZ_FORMAT (RVF_IMPORT_CSV, RVF_IMPORT_JSONL, ...)"
#endif

struct ctx {
	uint32_t dim;
	uint64_t rows;
};

static rvf_code sink(void *vctx, size_t n, const uint64_t *ids,
		     const float *vectors, const rvf_meta_field *meta,
		     const size_t *meta_start, rvf_error *err)
{
	struct ctx *c = vctx;
	(void)err;
	FUZZ_CHECK(n > 0);
	FUZZ_CHECK(vectors != NULL);
	if (FUZZ_FORMAT == RVF_IMPORT_FVECS || FUZZ_FORMAT == RVF_IMPORT_NPY)
		FUZZ_CHECK(ids == NULL && meta == NULL);
	if (ids)
		fuzz_touch(ids, n * sizeof(*ids));
	for (size_t i = 0; i < n * (size_t)c->dim; i++) {
		/* The parsers refuse non-finite components. */
		FUZZ_CHECK(isfinite(vectors[i]));
		fuzz_touch(&vectors[i], sizeof(float));
	}
	if (meta) {
		FUZZ_CHECK(meta_start != NULL);
		FUZZ_CHECK(meta_start[0] <= meta_start[n]);
		for (size_t i = 0; i < n; i++) {
			FUZZ_CHECK(meta_start[i] <= meta_start[i + 1]);
			fuzz_touch_fields(meta + meta_start[i],
					  meta_start[i + 1] - meta_start[i]);
		}
	}
	c->rows += n;
	return RVF_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct ctx c = { .dim = (uint32_t)(data[0] % 8) + 1 };
	int fd = fuzz_memfd("fuzz_import", data + 1, size - 1);
	if (fd < 0)
		return 0;
	uint64_t rows = 0;
	rvf_error err;
	rvf_code rc = rvf_import_fd(fd, "fuzz", FUZZ_FORMAT, c.dim, sink, &c,
				    &rows, &err);
	if (rc == RVF_OK) {
		FUZZ_CHECK(rows == c.rows);
		fuzz_note("ok: %llu rows of dimension %u\n",
			  (unsigned long long)rows, c.dim);
	} else {
		FUZZ_CHECK(rows <= c.rows);
		FUZZ_CHECK(memchr(err.message, '\0', sizeof(err.message)) != NULL);
		fuzz_touch(err.message, strlen(err.message));
		fuzz_note("%s: %s\n", rvf_code_name(rc), err.message);
	}
	close(fd);
	return 0;
}
