/* rvfctl ingest: add vectors from files; each file is one atomic commit.
 *
 * On a mount point each file is checked here first (so bad input is
 * reported with its line, and the row count is known), then copied into
 * MNT/ingest/ under its own name: the daemon commits it when the copy is
 * closed, and close() returns the commit's result. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "mount.h"
#include "progress.h"

typedef struct feed {
	rvf_ingest *t;          /* NULL: only count (mount mode's check) */
	int fd;
	progress *bar;
} feed;

static rvf_code sink(void *ctx, size_t n, const uint64_t *ids,
		     const float *vectors, const rvf_meta_field *meta,
		     const size_t *meta_start, rvf_error *err)
{
	feed *f = ctx;
	off_t pos = lseek(f->fd, 0, SEEK_CUR);
	if (pos > 0)
		progress_update(f->bar, (uint64_t)pos);
	if (!f->t)
		return RVF_OK;
	return rvf_ingest_add(f->t, n, ids, vectors, meta, meta_start, err);
}

static uint64_t file_size(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
}

/* Parses fd, feeding t (or only counting); returns the library code. */
static rvf_code parse(int fd, const char *name, rvf_import_format fmt,
		      uint32_t dim, rvf_ingest *t, const char *label,
		      uint64_t *rows, rvf_error *err)
{
	progress bar;
	progress_begin(&bar, label, file_size(fd), true);
	feed f = { .t = t, .fd = fd, .bar = &bar };
	rvf_code c = rvf_import_fd(fd, name, fmt, dim, sink, &f, rows, err);
	progress_end(&bar);
	return c;
}

static int ingest_store(ctl_ctx *ctx, const char *path, int nfiles,
			char **files, json_t *done)
{
	rvf_store *s;
	int rc = ctl_open(ctx, path, true, &s);
	if (rc)
		return rc;
	rvf_view *v0 = rvf_store_view(s);
	uint32_t dim = rvf_view_info(v0)->dimension;
	rvf_view_release(v0);
	for (int i = 0; i < nfiles && !rc; i++) {
		const char *file = files[i];
		rvf_import_format fmt;
		rvf_import_format_from_name(file, &fmt);
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = ctl_fail(ctx, EXIT_IO, json_pack("{s:O}", "committed", done),
				      "%s: %s", file, strerror(errno));
			break;
		}
		rvf_error err;
		rvf_ingest *t;
		rvf_commit_info info;
		uint64_t rows = 0;
		rvf_code c = rvf_ingest_begin(s, &t, &err);
		if (c == RVF_OK) {
			c = parse(fd, file, fmt, dim, t, "ingest", &rows, &err);
			if (c == RVF_OK)
				c = rvf_ingest_commit(t, &info, &err);
			else
				rvf_ingest_abort(t);
		}
		close(fd);
		if (c != RVF_OK) {
			if (!ctx->json)
				fprintf(stderr, "rvfctl: %s: nothing committed\n", file);
			rc = ctl_fail(ctx, ctl_exit_code(c),
				      json_pack("{s:s,s:O}", "file", file, "committed", done),
				      "%s (%s)", err.message, rvf_code_name(c));
			break;
		}
		json_array_append_new(done, json_pack("{s:s,s:I,s:i}", "file", file,
			"rows", (json_int_t)rows, "epoch", (int)info.epoch));
		if (!ctx->json)
			printf("%s: %llu vectors committed (epoch %u)\n", file,
			       (unsigned long long)rows, info.epoch);
	}
	rvf_store_close(s);
	return rc;
}

/* Copies fd into MNT/ingest/NAME; close() reports the daemon's commit. */
static int copy_into(ctl_ctx *ctx, const char *mnt, const char *file, int fd,
		     json_t *done)
{
	char *base = strdup(file), *dst = NULL;
	if (!base || asprintf(&dst, "%s/ingest/%s", mnt, basename(base)) < 0) {
		free(base);
		return ctl_fail(ctx, EXIT_IO, NULL, "out of memory");
	}
	size_t before = mnt_errors_len(mnt);
	int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int e = out < 0 ? errno : 0;
	progress bar;
	progress_begin(&bar, "copy", file_size(fd), true);
	size_t cap = 1 << 20;
	char *buf = malloc(cap);
	uint64_t total = 0;
	if (!buf && !e)
		e = ENOMEM;
	lseek(fd, 0, SEEK_SET);
	while (!e) {
		ssize_t r = read(fd, buf, cap);
		if (r < 0) {
			e = errno;
			break;
		}
		if (r == 0)
			break;
		for (ssize_t off = 0; off < r && !e;) {
			ssize_t w = write(out, buf + off, (size_t)(r - off));
			if (w < 0)
				e = errno;
			else
				off += w;
		}
		total += (uint64_t)r;
		progress_update(&bar, total);
	}
	progress_end(&bar);
	free(buf);
	if (out >= 0 && close(out) != 0 && !e)
		e = errno;
	int rc = 0;
	if (e) {
		char *why = mnt_new_error(mnt, before);
		if (!ctx->json)
			fprintf(stderr, "rvfctl: %s: nothing committed\n", file);
		rc = ctl_fail(ctx, ctl_errno_exit(e),
			      json_pack("{s:s,s:O}", "file", file, "committed", done),
			      "%s: %s", dst, why ? why : strerror(e));
		free(why);
	}
	free(dst);
	free(base);
	return rc;
}

static int ingest_mount(ctl_ctx *ctx, const char *mnt, int nfiles,
			char **files, json_t *done)
{
	json_t *st;
	int rc = mnt_status(ctx, mnt, &st);
	if (rc)
		return rc;
	uint32_t dim = (uint32_t)kv_u64(st, "dimension");
	json_decref(st);
	for (int i = 0; i < nfiles && !rc; i++) {
		const char *file = files[i];
		rvf_import_format fmt;
		rvf_import_format_from_name(file, &fmt);
		int fd = open(file, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = ctl_fail(ctx, EXIT_IO, json_pack("{s:O}", "committed", done),
				      "%s: %s", file, strerror(errno));
			break;
		}
		rvf_error err;
		uint64_t rows = 0;
		rvf_code c = parse(fd, file, fmt, dim, NULL, "check", &rows, &err);
		if (c != RVF_OK) {
			if (!ctx->json)
				fprintf(stderr, "rvfctl: %s: nothing committed\n", file);
			rc = ctl_fail(ctx, ctl_exit_code(c),
				      json_pack("{s:s,s:O}", "file", file, "committed", done),
				      "%s (%s)", err.message, rvf_code_name(c));
		} else {
			rc = copy_into(ctx, mnt, file, fd, done);
		}
		close(fd);
		if (rc || (rc = mnt_status(ctx, mnt, &st)))
			break;
		uint32_t epoch = (uint32_t)kv_u64(st, "epoch");
		json_decref(st);
		json_array_append_new(done, json_pack("{s:s,s:I,s:i}", "file", file,
			"rows", (json_int_t)rows, "epoch", (int)epoch));
		if (!ctx->json)
			printf("%s: %llu vectors committed (epoch %u)\n", file,
			       (unsigned long long)rows, epoch);
	}
	return rc;
}

int cmd_ingest(ctl_ctx *ctx, int argc, char **argv)
{
	if (argc < 3)
		return ctl_usage_error(ctx, "ingest needs STORE and at least one FILE");
	for (int i = 2; i < argc; i++) {
		rvf_import_format fmt;
		if (!rvf_import_format_from_name(argv[i], &fmt))
			return ctl_usage_error(ctx, "%s: unknown file type (use .csv .tsv .txt .jsonl .ndjson .json .fvecs .npy .f32)",
					       argv[i]);
	}
	json_t *done = json_array();
	bool mounted = mnt_detect(argv[1]);
	int rc = mounted ? ingest_mount(ctx, argv[1], argc - 2, argv + 2, done) :
		 ingest_store(ctx, argv[1], argc - 2, argv + 2, done);
	if (!rc && ctx->json) {
		json_int_t rows = 0;
		size_t i;
		json_t *f;
		json_array_foreach(done, i, f)
			rows += json_integer_value(json_object_get(f, "rows"));
		json_t *last = json_array_get(done, json_array_size(done) - 1);
		ctl_print_json(json_pack("{s:O,s:I,s:O,s:b}", "files", done, "rows", rows,
					 "epoch", json_object_get(last, "epoch"),
					 "mounted", mounted));
	}
	json_decref(done);
	return rc;
}
