/* fuzz_query.c - libFuzzer target: the query language.
 *
 * The input is the text written to the query file; librvf's
 * rvf_request_run (engine/request.c, no FUSE) parses it (plain numbers, k=/ef= tokens, JSON with "vector", "k",
 * "filter") and searches a small store made at start-up: 16 vectors of
 * dimension 4 with metadata (color string, n u64, i i64, x f64, flag bool,
 * b bytes).  The store file is unlinked right after: the view keeps the
 * mapping. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <string.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "rvf.h"

#define NVEC 16
#define DIM 4

static rvf_view *view;

static rvf_meta_field str_field(const char *n, const char *s)
{
	return (rvf_meta_field){ n, { .type = RVF_VALUE_STRING,
				      .u.str = { s, strlen(s) } } };
}

static void die(const char *what, const rvf_error *err)
{
	fprintf(stderr, "fuzz_query init: %s: %s\n", what,
		err ? err->message : strerror(errno));
	exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char dir[] = "/tmp/rvffs-fuzz-query-XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp", NULL);
	char path[sizeof(dir) + 16], lock[sizeof(dir) + 32];
	snprintf(path, sizeof(path), "%s/q.rvf", dir);
	snprintf(lock, sizeof(lock), "%s.lock", path);

	rvf_create_options opt = { .dimension = DIM, .metric = RVF_METRIC_L2 };
	rvf_store *s;
	rvf_error err;
	if (rvf_store_create(path, &opt, &s, &err) != RVF_OK)
		die("create", &err);
	static const char *const colors[] = { "red", "blue", "green" };
	float vec[NVEC * DIM];
	uint64_t ids[NVEC];
	rvf_meta_field meta[NVEC * 6];
	size_t start[NVEC + 1], m = 0;
	for (size_t i = 0; i < NVEC; i++) {
		ids[i] = i * 3 + 1;
		for (size_t d = 0; d < DIM; d++)
			vec[i * DIM + d] = (float)((i * 7 + d * 3) % 11) - 5.0f;
		start[i] = m;
		if (i % 5 == 4)
			continue; /* some rows without metadata */
		meta[m++] = str_field("color", colors[i % 3]);
		meta[m++] = (rvf_meta_field){ "n", { .type = RVF_VALUE_U64,
						     .u.u64 = i } };
		meta[m++] = (rvf_meta_field){ "i", { .type = RVF_VALUE_I64,
						     .u.i64 = (int64_t)i - 8 } };
		meta[m++] = (rvf_meta_field){ "x", { .type = RVF_VALUE_F64,
						     .u.f64 = (double)i / 4 } };
		meta[m++] = (rvf_meta_field){ "flag", { .type = RVF_VALUE_BOOL,
							.u.b = i & 1 } };
		meta[m] = str_field("b", colors[(i + 1) % 3]);
		meta[m++].value.type = RVF_VALUE_BYTES;
	}
	start[NVEC] = m;
	if (rvf_store_ingest(s, NVEC, ids, vec, meta, start, NULL, &err) != RVF_OK)
		die("ingest", &err);
	uint64_t del = 4;
	if (rvf_store_delete(s, 1, &del, NULL, &err) != RVF_OK)
		die("delete", &err);
	view = rvf_store_view(s);
	rvf_store_close(s);
	unlink(path);
	unlink(lock);
	rmdir(dir);

	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *out = NULL;
	size_t out_len = 0;
	rvf_request_options opt = { .default_k = 10, .search = { .threads = 1 } };
	rvf_error err;
	rvf_code rc = rvf_request_run(view, (const char *)data, size, &opt,
				      &out, &out_len, &err);
	FUZZ_CHECK(rc == RVF_OK || rc == RVF_E_INVALID_ARGUMENT ||
		   rc == RVF_E_NO_MEMORY);
	FUZZ_CHECK(out != NULL);
	FUZZ_CHECK(out_len == strlen(out));
	if (rc)
		FUZZ_CHECK(strncmp(out, "error: ", 7) == 0);
	fuzz_touch(out, out_len);
	fuzz_note("rc %d:\n%s", (int)rc, out);
	free(out);
	return 0;
}
