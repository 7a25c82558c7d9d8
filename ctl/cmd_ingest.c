/* rvfctl ingest: add vectors from files; each file is one atomic commit. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"

static rvf_code sink(void *ctx, size_t n, const uint64_t *ids,
		     const float *vectors, const rvf_meta_field *meta,
		     const size_t *meta_start, rvf_error *err)
{
	return rvf_ingest_add(ctx, n, ids, vectors, meta, meta_start, err);
}

int cmd_ingest(int argc, char **argv)
{
	if (argc < 3)
		return ctl_usage_error("ingest needs STORE and at least one FILE");
	rvf_store *s;
	int rc = ctl_open(argv[1], true, &s);
	if (rc)
		return rc;
	const rvf_view *v0 = rvf_store_view(s);
	uint32_t dim = rvf_view_info(v0)->dimension;
	rvf_view_release((rvf_view *)v0);
	for (int i = 2; i < argc && !rc; i++) {
		rvf_import_format fmt;
		if (!rvf_import_format_from_name(argv[i], &fmt)) {
			rc = ctl_usage_error("%s: unknown file type (use .csv .tsv .txt .jsonl .ndjson .json .fvecs .npy .f32)",
					     argv[i]);
			break;
		}
		int fd = strcmp(argv[i], "-") ? open(argv[i], O_RDONLY | O_CLOEXEC) : 0;
		if (fd < 0) {
			perror(argv[i]);
			rc = EXIT_IO;
			break;
		}
		rvf_error err;
		rvf_ingest *t;
		rvf_commit_info info;
		uint64_t rows = 0;
		rvf_code c = rvf_ingest_begin(s, &t, &err);
		if (c == RVF_OK) {
			c = rvf_import_fd(fd, argv[i], fmt, dim, sink, t, &rows, &err);
			if (c == RVF_OK)
				c = rvf_ingest_commit(t, &info, &err);
			else
				rvf_ingest_abort(t);
		}
		if (fd)
			close(fd);
		if (c != RVF_OK) {
			rc = ctl_report(&err);
			fprintf(stderr, "rvfctl: %s: nothing committed\n", argv[i]);
		} else {
			printf("%s: %llu vectors committed (epoch %u)\n", argv[i],
			       (unsigned long long)rows, info.epoch);
		}
	}
	rvf_store_close(s);
	return rc;
}
